import { AppError, invalid, type FieldError } from './errors.js';
import { REFILL_INTERVALS, type RateLimit, type RefillInterval } from './key.js';

/** Bounds of the limits, quota and metadata of a key; the API schema states the same. */
export const LIMITS = Object.freeze({
  rateLimits: 5,
  rateLimitName: 32,
  rateLimitNamePattern: '^[a-z0-9_.-]+$',
  limitMax: 1_000_000_000,
  windowMax: 86_400,
  usesMax: Number.MAX_SAFE_INTEGER,
  metadataBytes: 4096,
  metadataDepth: 5,
  metadataKey: 100,
});

const NAME = new RegExp(LIMITS.rateLimitNamePattern);
const isInt = (v: unknown, min: number, max: number): v is number =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;

/** At most 5 named limits, each name once (a duplicate is refused, not merged), in request order. */
export function checkRateLimits(limits: readonly RateLimit[]): RateLimit[] {
  if (limits.length > LIMITS.rateLimits) throw invalid('rate_limits', `at most ${LIMITS.rateLimits} limits per key`);
  const errors: FieldError[] = [];
  limits.forEach((l, i) => {
    if (typeof l.name !== 'string' || l.name.length < 1 || l.name.length > LIMITS.rateLimitName || !NAME.test(l.name)) {
      errors.push({
        path: `rate_limits/${i}/name`,
        message: `1 to ${LIMITS.rateLimitName} characters of a-z, 0-9, _ . -`,
      });
    } else if (limits.findIndex((o) => o.name === l.name) < i) {
      errors.push({ path: `rate_limits/${i}/name`, message: 'repeats the name of an earlier limit' });
    }
    if (!isInt(l.limit, 1, LIMITS.limitMax))
      errors.push({ path: `rate_limits/${i}/limit`, message: `an integer from 1 to ${LIMITS.limitMax}` });
    if (!isInt(l.window_seconds, 1, LIMITS.windowMax)) {
      errors.push({
        path: `rate_limits/${i}/window_seconds`,
        message: `an integer from 1 to ${LIMITS.windowMax} seconds`,
      });
    }
  });
  if (errors.length > 0) throw new AppError('VALIDATION_FAILED', 'invalid rate_limits', errors);
  return limits.map((l) => ({ name: l.name, limit: l.limit, window_seconds: l.window_seconds }));
}

/** A quota balance: an integer from 0 to 2^53-1. */
export function checkRemainingUses(uses: number): number {
  if (!isInt(uses, 0, LIMITS.usesMax))
    throw invalid('remaining_uses', `an integer from 0 to ${LIMITS.usesMax}, or null for no quota`);
  return uses;
}

/** A refill of the quota at the start of each UTC day or month. */
export function checkRefill(refill: { amount: number; interval: RefillInterval }): {
  amount: number;
  interval: RefillInterval;
} {
  const errors: FieldError[] = [];
  if (!isInt(refill.amount, 1, LIMITS.usesMax))
    errors.push({ path: 'refill/amount', message: `an integer from 1 to ${LIMITS.usesMax}` });
  if (!REFILL_INTERVALS.includes(refill.interval))
    errors.push({ path: 'refill/interval', message: 'daily or monthly' });
  if (errors.length > 0) throw new AppError('VALIDATION_FAILED', 'invalid refill', errors);
  return { amount: refill.amount, interval: refill.interval };
}

/** The refusal of a refill on a key without a quota. */
export function refillWithoutQuota(): AppError {
  return invalid('refill', 'a refill needs a quota: set remaining_uses too (it is null: unlimited)');
}

/**
 * A JSON object of at most 4096 bytes (as compact JSON, UTF-8), at most 5 levels of objects and
 * arrays, keys of at most 100 characters, and text PostgreSQL's jsonb stores (no NUL, no lone
 * surrogate). Errors name `metadata` only and never echo a key or a value: it is the customer's data.
 * Returns the metadata and its size in bytes.
 */
export function checkMetadata(value: unknown): { metadata: Record<string, unknown>; bytes: number } {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid('metadata', 'must be a JSON object (or null to clear it)');
  const problem = shapeProblem(value, 1);
  if (problem) throw invalid('metadata', problem);
  const bytes = jsonBytes(value);
  if (bytes > LIMITS.metadataBytes)
    throw invalid('metadata', `must be at most ${LIMITS.metadataBytes} bytes as JSON (this is ${bytes})`);
  return { metadata: value as Record<string, unknown>, bytes };
}

/** The size of metadata as compact JSON in UTF-8 bytes (the same whatever the key order). */
export function metadataBytes(metadata: Record<string, unknown> | null): number | null {
  return metadata === null ? null : jsonBytes(metadata);
}

const jsonBytes = (value: object): number => Buffer.byteLength(JSON.stringify(value), 'utf8');

// NUL is refused by jsonb; a lone surrogate is not well-formed Unicode (jsonb refuses it too).
// eslint-disable-next-line no-control-regex -- NUL is the character this looks for
const UNSTORABLE = /\u0000|\p{Cs}/u;

/** Why a container (at `depth`, the top object being 1) cannot be stored, or undefined. */
function shapeProblem(value: object, depth: number): string | undefined {
  if (depth > LIMITS.metadataDepth) return `must nest objects and arrays at most ${LIMITS.metadataDepth} levels deep`;
  for (const [k, v] of Object.entries(value)) {
    if (!Array.isArray(value) && k.length > LIMITS.metadataKey)
      return `keys must be at most ${LIMITS.metadataKey} characters`;
    if (UNSTORABLE.test(k) || (typeof v === 'string' && UNSTORABLE.test(v)))
      return 'text must not contain a NUL character or a lone surrogate';
    if (v !== null && typeof v === 'object') {
      const inner = shapeProblem(v as object, depth + 1);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** JSON with object keys sorted, to compare metadata whatever order jsonb gives its keys back in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
