import type { Environment } from './key-format.js';
import type { Address, IpRule } from './ip.js';
import { ipAllowed } from './ip.js';

/** The contract's deny reasons (the proto's DenyReason without UNSPECIFIED), defined once here. */
export const DENY_REASONS = Object.freeze([
  'KEY_MALFORMED',
  'KEY_UNKNOWN',
  'KEY_REVOKED',
  'KEY_EXPIRED',
  'IP_NOT_ALLOWED',
  'SCOPE_NOT_GRANTED',
  'TOO_MANY_FAILURES',
  'RATE_LIMITED',
  'USAGE_EXCEEDED',
  'KEY_DISABLED',
] as const);
export type DenyReason = (typeof DENY_REASONS)[number];

/** What a decision needs to know about a verified key (also what caches hold). */
export interface KeyGrant {
  keyId: string;
  accountId: string;
  environment: Environment;
  scopes: readonly string[];
  allowedIps: readonly IpRule[];
  expiresAt: number | null;
  revokedAt: number | null;
  version: number;
  /** False: refused with KEY_DISABLED (an admin may enable it again). */
  enabled: boolean;
  /** The key's metadata as JSON text, for the caller; never read by the decision. */
  metadata: string | null;
}

/** Who the caller is, when the key was identified (the grant itself serves: nothing is copied per call). */
export type Identity = Pick<KeyGrant, 'keyId' | 'accountId' | 'environment' | 'scopes' | 'metadata'>;

export type Decision =
  | { allowed: true; identity: Identity }
  /** `retryAfterMs`: RATE_LIMITED and USAGE_EXCEEDED only, when waiting helps. */
  | { allowed: false; reason: DenyReason; identity?: Identity; retryAfterMs?: number };

/**
 * Decide from a verified key: revocation, expiry, address, then scope. Pure. A revocation does not
 * depend on the clock (design: revocation-ignores-clocks): `revokedAt` set means revoked.
 */
export function decide(grant: KeyGrant, ip: Address, scope: string, now: number): Decision {
  const identity: Identity = grant;
  if (grant.revokedAt !== null) return { allowed: false, reason: 'KEY_REVOKED', identity };
  if (!grant.enabled) return { allowed: false, reason: 'KEY_DISABLED', identity };
  if (grant.expiresAt !== null && grant.expiresAt <= now) return { allowed: false, reason: 'KEY_EXPIRED', identity };
  if (!ipAllowed(grant.allowedIps, ip)) return { allowed: false, reason: 'IP_NOT_ALLOWED', identity };
  if (!grant.scopes.includes(scope)) return { allowed: false, reason: 'SCOPE_NOT_GRANTED', identity };
  return { allowed: true, identity };
}

/** A deny with no identity (the key was never identified). */
export function deny(reason: DenyReason): Decision {
  return { allowed: false, reason };
}
