import { AppError, invalid, type FieldError } from '../domain/errors.js';
import { hasHostBits, normalizeRule, parseRule, ruleWithin, type IpRule } from '../domain/ip.js';
import { readableText, TEXT_LIMITS } from '../domain/text.js';
import { statusOf, type RateLimit, type RefillInterval } from '../domain/key.js';
import { KEY_BOUNDS } from '../domain/key-bounds.js';
import {
  checkMetadata,
  checkRateLimits,
  checkRefill,
  checkRemainingUses,
  refillWithoutQuota,
} from '../domain/key-limits.js';
import type { Environment } from '../domain/key-format.js';
import { isScope } from '../domain/scopes.js';
import type { KeyLimits, KeyPatch, KeyRow } from '../store/keys-repository.js';

/**
 * What an admin asks of a key, checked before anything is written: each field alone, then against
 * the key it changes. A refusal is one VALIDATION_FAILED (or CONFLICT) that names the fields and
 * never echoes what was pasted (design: edge-validation).
 */

export interface RefillInput {
  amount: number;
  interval: RefillInterval;
}

export interface CreateInput {
  label: string;
  scopes: string[];
  environment: Environment;
  allowed_ips?: string[] | undefined;
  expires_at?: string | undefined;
  enabled?: boolean | undefined;
  rate_limits?: RateLimit[] | undefined;
  remaining_uses?: number | undefined;
  refill?: RefillInput | undefined;
  metadata?: Record<string, unknown> | undefined;
}

/** A PATCH: an absent field is left as it is; null clears (expiry, quota, refill, metadata). */
export interface PatchInput {
  label?: string | undefined;
  scopes?: string[] | undefined;
  allowed_ips?: string[] | undefined;
  expires_at?: string | null | undefined;
  enabled?: boolean | undefined;
  /** Replaces the whole list; [] removes every limit. */
  rate_limits?: RateLimit[] | undefined;
  /** null removes the quota and its refill. */
  remaining_uses?: number | null | undefined;
  refill?: RefillInput | null | undefined;
  metadata?: Record<string, unknown> | null | undefined;
}

/** A new key's fields, checked. */
export interface CheckedCreate {
  label: string;
  scopes: string[];
  allowedIps: string[];
  expiresAt: Date | null;
  limits: Partial<KeyLimits>;
}

/** The furthest a key's expiry may lie ahead (a typo like year 9999 is refused). */
export const MAX_EXPIRY_MS = 5 * 366 * 24 * 3600 * 1000;

/** A create request, checked field by field (label, scopes, addresses, expiry, then limits). */
export function checkCreate(input: CreateInput, now: () => number): CheckedCreate {
  return {
    label: readableText('label', input.label, TEXT_LIMITS.label),
    scopes: checkScopes(input.scopes),
    allowedIps: checkIps(input.allowed_ips ?? []),
    expiresAt: futureDate('expires_at', input.expires_at, now),
    limits: createLimits(input),
  };
}

/** A PATCH as the repository's patch, each present field checked. */
export function checkPatch(input: PatchInput, now: () => number): KeyPatch {
  return {
    label: input.label === undefined ? undefined : readableText('label', input.label, TEXT_LIMITS.label),
    scopes: input.scopes === undefined ? undefined : checkScopes(input.scopes),
    allowed_ips: input.allowed_ips === undefined ? undefined : checkIps(input.allowed_ips),
    expires_at:
      input.expires_at === undefined
        ? undefined
        : input.expires_at === null
          ? null
          : futureDate('expires_at', input.expires_at, now),
    enabled: input.enabled,
    rate_limits: input.rate_limits === undefined ? undefined : checkRateLimits(input.rate_limits),
    metadata:
      input.metadata === undefined || input.metadata === null ? input.metadata : checkMetadata(input.metadata).metadata,
    ...quotaPatch(input),
  };
}

/** A reason given for a revocation, when one was given. */
export function checkReason(text: string | undefined): string | undefined {
  return text === undefined ? undefined : readableText('reason', text, TEXT_LIMITS.reason);
}

/** How long a rotated key keeps working: whole seconds, at most the bound. */
export function checkGrace(graceSeconds: number): number {
  if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > KEY_BOUNDS.graceMaxSeconds) {
    throw invalid('expire_previous_in', `must be an integer from 0 to ${KEY_BOUNDS.graceMaxSeconds} seconds`);
  }
  return graceSeconds;
}

/**
 * A checked patch against the key it changes: it may not revive an expired key, nor widen a key that
 * is being rotated out, nor add a refill to a key without a quota.
 */
export function checkEdit(before: KeyRow, input: PatchInput, patch: KeyPatch, now: () => number): void {
  if (patch.expires_at !== undefined && statusOf(before, now()) === 'expired') {
    throw new AppError(
      'CONFLICT',
      `key ${before.id} has expired: it cannot be revived (create or rotate a key instead)`,
    );
  }
  if (before.replaced_by) checkRotatedEdit(before, patch, `key ${before.id} was rotated to ${before.replaced_by}`);
  if (input.refill && input.remaining_uses === undefined && before.remaining_uses === null) throw refillWithoutQuota();
}

/** A key in its grace period may be narrowed or cut short, never widened or extended. */
function checkRotatedEdit(before: KeyRow, patch: KeyPatch, why: string): void {
  if (patch.expires_at !== undefined && extendsExpiry(before.expires_at, patch.expires_at)) {
    throw new AppError('CONFLICT', `${why}: its grace period can be shortened, not extended`);
  }
  if (patch.scopes?.some((s) => !before.scopes.includes(s)))
    throw new AppError('CONFLICT', `${why}: its scopes can be narrowed, not widened`);
  if (patch.allowed_ips !== undefined && widensAddresses(before.allowed_ips, patch.allowed_ips)) {
    throw new AppError('CONFLICT', `${why}: its allowed addresses can be narrowed, not widened`);
  }
}

/** Scopes from the catalog only, each once (a duplicate is refused, not merged), in request order. */
function checkScopes(scopes: string[]): string[] {
  // The value is not echoed: whatever was pasted there (a key, say) must not come back.
  const errors: FieldError[] = scopes.flatMap((s, i) =>
    isScope(s) ? [] : [{ path: `scopes/${i}`, message: 'not a scope of the catalog (GET /v1/scopes)' }],
  );
  scopes.forEach((s, i) => {
    if (scopes.indexOf(s) < i) errors.push({ path: `scopes/${i}`, message: 'repeats an earlier scope' });
  });
  if (scopes.length === 0) errors.push({ path: 'scopes', message: 'must hold at least one scope' });
  if (errors.length > 0) throw new AppError('VALIDATION_FAILED', 'invalid scopes', errors);
  return scopes;
}

/** Addresses and CIDRs (v4 and v6), normalised; at most KEY_BOUNDS.allowedIps. */
function checkIps(entries: string[]): string[] {
  if (entries.length > KEY_BOUNDS.allowedIps) throw invalid('allowed_ips', `at most ${KEY_BOUNDS.allowedIps} entries`);
  const errors: FieldError[] = [];
  const out = entries.map((text, i) => {
    const rule = parseRule(text.trim());
    if (!rule)
      errors.push({
        path: `allowed_ips/${i}`,
        message: 'not an IP address or CIDR range (no zone ids, no leading zeros)',
      });
    else if (hasHostBits(rule))
      errors.push({
        path: `allowed_ips/${i}`,
        message: `has bits set beyond its prefix: did you mean ${normalizeRule(rule)}?`,
      });
    return rule ? normalizeRule(rule) : '';
  });
  out.forEach((r, i) => {
    if (r && out.indexOf(r) < i) errors.push({ path: `allowed_ips/${i}`, message: 'repeats an earlier entry' });
  });
  if (errors.length > 0) throw new AppError('VALIDATION_FAILED', 'invalid allowed_ips', errors);
  return out;
}

function futureDate(path: string, text: string | undefined, now: () => number): Date | null {
  if (text === undefined) return null;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw invalid(path, 'must be an RFC 3339 date-time');
  if (date.getTime() <= now()) throw invalid(path, 'must lie in the future');
  if (date.getTime() > now() + MAX_EXPIRY_MS) throw invalid(path, 'must lie within 5 years');
  return date;
}

/** True when `next` lets in an address that `current` did not (an empty list lets in every address). */
function widensAddresses(current: string[], next: string[]): boolean {
  if (current.length === 0) return false;
  if (next.length === 0) return true;
  const old = current.map(parseRule).filter((r): r is IpRule => r !== undefined);
  return next.map(parseRule).some((r) => !r || !old.some((o) => ruleWithin(r, o)));
}

function extendsExpiry(current: Date | null, next: Date | null): boolean {
  return current !== null && (next === null || next.getTime() > current.getTime());
}

/** The quota part of a patch: setting a quota or a refill marks the current period as refilled. */
function quotaPatch(input: PatchInput): KeyPatch {
  const out: KeyPatch = {};
  if (input.remaining_uses === null) {
    if (input.refill) throw refillWithoutQuota();
    Object.assign(out, { remaining_uses: null, refill_amount: null, refill_interval: null, refilled_at: null });
  } else if (input.remaining_uses !== undefined) {
    Object.assign(out, { remaining_uses: checkRemainingUses(input.remaining_uses), refilled_at: 'now' });
  }
  if (input.refill === null && input.remaining_uses !== null)
    Object.assign(out, { refill_amount: null, refill_interval: null });
  if (input.refill) {
    const refill = checkRefill(input.refill);
    Object.assign(out, { refill_amount: refill.amount, refill_interval: refill.interval, refilled_at: 'now' });
  }
  return out;
}

/** The limits, quota and metadata of a new key, checked (a refill needs a quota). */
function createLimits(input: CreateInput): Partial<KeyLimits> {
  if (input.refill && input.remaining_uses === undefined) throw refillWithoutQuota();
  const refill = input.refill ? checkRefill(input.refill) : undefined;
  return {
    enabled: input.enabled ?? true,
    rate_limits: checkRateLimits(input.rate_limits ?? []),
    remaining_uses: input.remaining_uses === undefined ? null : checkRemainingUses(input.remaining_uses),
    refill_amount: refill?.amount ?? null,
    refill_interval: refill?.interval ?? null,
    metadata: input.metadata === undefined ? null : checkMetadata(input.metadata).metadata,
  };
}
