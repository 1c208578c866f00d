import { Type } from '@sinclair/typebox';
import { LIMITS } from '../../../domain/key-limits.js';
import { REFILL_INTERVALS } from '../../../domain/key.js';
import { StringEnum } from '../../../validation.js';

/** A key's named rate limits and its usage quota with their refill, as the admin API takes them. */
export const RateLimit = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: LIMITS.rateLimitName,
      pattern: LIMITS.rateLimitNamePattern,
      description: `1 to ${LIMITS.rateLimitName} characters of a-z, 0-9, _ . - ; unique within the key`,
    }),
    limit: Type.Integer({
      minimum: 1,
      maximum: LIMITS.limitMax,
      description: 'allowed calls per window, for the key across every replica',
    }),
    window_seconds: Type.Integer({
      minimum: 1,
      maximum: LIMITS.windowMax,
      description: 'the window in seconds (fixed windows aligned to the epoch)',
    }),
  },
  { additionalProperties: false },
);
export const RateLimits = Type.Array(RateLimit, {
  maxItems: LIMITS.rateLimits,
  description: `at most ${LIMITS.rateLimits} named limits, each name once; a call is allowed only while every limit has room (RATE_LIMITED otherwise)`,
});
export const RemainingUses = Type.Integer({
  minimum: 0,
  maximum: LIMITS.usesMax,
  description: 'the usage quota: allowed calls left, exactly across replicas (USAGE_EXCEEDED at 0); absent = unlimited',
});
export const Refill = Type.Object(
  {
    amount: Type.Integer({
      minimum: 1,
      maximum: LIMITS.usesMax,
      description: 'remaining_uses is set back to this at the start of each period',
    }),
    interval: StringEnum(REFILL_INTERVALS, {
      description: 'daily: each UTC midnight; monthly: the first of each UTC month',
    }),
  },
  { additionalProperties: false, description: 'refills the quota; needs remaining_uses' },
);
