import type { KeyGrant } from '../domain/decision.js';
import type { Environment } from '../domain/key-format.js';
import { parseRule, type IpRule } from '../domain/ip.js';

/** A verified key's grant as it crosses process boundaries (JSON in Redis). */
export interface GrantData {
  keyId: string;
  accountId: string;
  environment: Environment;
  scopes: string[];
  allowedIps: string[];
  expiresAt: number | null;
  revokedAt: number | null;
  version: number;
  enabled: boolean;
  /** Named limits; `windowMs` = window_seconds × 1000. */
  rateLimits: RateLimitRule[];
  /** True when the key has a usage quota (its balance lives in PostgreSQL, never in a cache). */
  quota: boolean;
  /** JSON text, or null. */
  metadata: string | null;
}

export interface RateLimitRule {
  name: string;
  limit: number;
  windowMs: number;
}

/** What the caches hold for one verified key: never the key, only its digest. */
export interface CacheEntry {
  digest: string;
  data: GrantData;
  grant: CachedGrant;
  /** When the grant was last read from PostgreSQL (ms since epoch). */
  refreshedAt: number;
}

/** What a cache hit needs beyond the decision: the key's limits. */
export interface CachedGrant extends KeyGrant {
  rateLimits: readonly RateLimitRule[];
  quota: boolean;
}

/** Build an entry, parsing the allowlist once. */
export function toEntry(digest: string, data: GrantData, refreshedAt: number): CacheEntry {
  const allowedIps = data.allowedIps.map(parseRule).filter((r): r is IpRule => r !== undefined);
  return { digest, data, refreshedAt, grant: { ...data, allowedIps } };
}
