import type { Environment } from './key-format.js';

/** A named rate limit: at most `limit` allowed calls per fixed window of `window_seconds`, across every replica. */
export interface RateLimit {
  name: string;
  limit: number;
  window_seconds: number;
}

/** An account id as the admin API, JWT claims and URLs carry it. */
export const ACCOUNT_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';

/** When a quota refills: each UTC midnight, or the first of each UTC month. */
export const REFILL_INTERVALS = Object.freeze(['daily', 'monthly'] as const);
export type RefillInterval = (typeof REFILL_INTERVALS)[number];

export const KEY_STATUSES = Object.freeze(['active', 'revoked', 'expired'] as const);
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** A key as the use cases see it (never the secret nor its hash). */
export interface Key {
  id: string;
  account_id: string;
  environment: Environment;
  label: string;
  scopes: string[];
  allowed_ips: string[];
  redacted: string;
  created_at: Date;
  created_by: string;
  expires_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  replaces: string | null;
  replaced_by: string | null;
  version: number;
  last_used_at: Date | null;
  last_used_ip: string | null;
  /** False: refused with KEY_DISABLED until enabled again (revoking stays final). */
  enabled: boolean;
  /** Named limits, enforced across replicas in fixed windows aligned to the epoch. */
  rate_limits: RateLimit[];
  /** The usage quota's balance; null = unlimited. */
  remaining_uses: number | null;
  refill_amount: number | null;
  refill_interval: RefillInterval | null;
  refilled_at: Date | null;
  /** A JSON object returned by Authenticate, never used for the decision; null = none. */
  metadata: Record<string, unknown> | null;
}

/** The status of a key at `now`: revoked is final, expired once its expiry passed (disabling is not a status). */
export function statusOf(key: Pick<Key, 'revoked_at' | 'expires_at'>, now = Date.now()): KeyStatus {
  if (key.revoked_at) return 'revoked';
  if (key.expires_at && key.expires_at.getTime() <= now) return 'expired';
  return 'active';
}
