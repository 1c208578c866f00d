import type { GrantData } from '../cache/entry.js';
import type { KeyRow } from '../store/keys-repository.js';

/** The cacheable part of a key row. */
export function grantData(row: KeyRow): GrantData {
  return {
    keyId: row.id,
    accountId: row.account_id,
    environment: row.environment,
    scopes: row.scopes,
    allowedIps: row.allowed_ips,
    expiresAt: row.expires_at?.getTime() ?? null,
    revokedAt: row.revoked_at?.getTime() ?? null,
    version: Number(row.version),
    enabled: row.enabled,
    rateLimits: row.rate_limits.map((l) => ({ name: l.name, limit: l.limit, windowMs: l.window_seconds * 1000 })),
    quota: row.remaining_uses !== null,
    metadata: row.metadata === null ? null : JSON.stringify(row.metadata),
  };
}
