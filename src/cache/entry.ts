import type { KeyGrant } from '../domain/decision.js';
import type { Environment } from '../domain/key-format.js';
import { allowlistOf, parseRule, type IpRule } from '../domain/ip.js';

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
  grant: CachedGrant;
  /** When the grant was last read from PostgreSQL (ms since epoch). */
  refreshedAt: number;
}

/** What a cache hit needs beyond the decision: the key's limits, and the allowlist as text (for Redis). */
export interface CachedGrant extends KeyGrant {
  rateLimits: readonly RateLimitRule[];
  quota: boolean;
  allowedIpText: readonly string[];
}

/**
 * Values many entries hold alike (parsed allowlist rules, scopes, account ids, environments) are kept
 * once and shared: a parsed CIDR alone costs about 300 bytes, and the local cache may hold 100,000
 * entries. Bounded: past `MAX_SHARED` distinct values the table starts again (entries keep theirs).
 */
const MAX_SHARED = 50_000;
const sharedRules = new Map<string, IpRule | undefined>();
const sharedText = new Map<string, string>();
const NONE: readonly never[] = Object.freeze([]);

function shared<T>(table: Map<string, T>, key: string, make: () => T): T {
  if (table.has(key)) return table.get(key) as T;
  if (table.size >= MAX_SHARED) table.clear();
  const value = make();
  table.set(key, value);
  return value;
}

const text = (s: string): string => shared(sharedText, s, () => s);

/**
 * Build an entry, parsing the allowlist once (and each distinct rule once per process). A stored rule
 * that does not parse makes the allowlist match no address (design: unreadable-denies); `onUnreadable`
 * is told how many rules could not be read.
 */
export function toEntry(
  digest: string,
  data: GrantData,
  refreshedAt: number,
  onUnreadable?: (keyId: string, rules: number) => void,
): CacheEntry {
  let allowedIps: readonly IpRule[] = NONE;
  if (data.allowedIps.length > 0) {
    const parsed = data.allowedIps.map((r) => shared(sharedRules, r, () => parseRule(r)));
    allowedIps = allowlistOf(parsed);
    const unreadable = parsed.reduce((n, r) => (r === undefined ? n + 1 : n), 0);
    if (unreadable > 0) onUnreadable?.(data.keyId, unreadable);
  }
  const grant: CachedGrant = {
    keyId: data.keyId,
    accountId: text(data.accountId),
    environment: text(data.environment) as Environment,
    scopes: data.scopes.map(text),
    allowedIps,
    allowedIpText: data.allowedIps.length === 0 ? NONE : data.allowedIps.map(text),
    expiresAt: data.expiresAt,
    revokedAt: data.revokedAt,
    version: data.version,
    enabled: data.enabled,
    rateLimits: data.rateLimits.length === 0 ? NONE : data.rateLimits,
    quota: data.quota,
    metadata: data.metadata,
  };
  return { digest, grant, refreshedAt };
}

/** The grant as it is written to Redis. */
export function dataOf(g: CachedGrant): GrantData {
  return {
    keyId: g.keyId,
    accountId: g.accountId,
    environment: g.environment,
    scopes: [...g.scopes],
    allowedIps: [...g.allowedIpText],
    expiresAt: g.expiresAt,
    revokedAt: g.revokedAt,
    version: g.version,
    enabled: g.enabled,
    rateLimits: [...g.rateLimits],
    quota: g.quota,
    metadata: g.metadata,
  };
}
