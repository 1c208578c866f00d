import type { Propagation } from '../../service/invalidator.js';
import { rotationDueAt } from '../../domain/key-bounds.js';
import { statusOf, type Key } from '../../domain/key.js';
import type { KeyResource } from './schemas.js';

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The public key resource (explicit fields: the hash never leaves). */
export function keyResource(key: Key, now = Date.now()): KeyResource {
  return {
    id: key.id,
    account_id: key.account_id,
    label: key.label,
    environment: key.environment,
    scopes: key.scopes,
    allowed_ips: key.allowed_ips,
    status: statusOf(key, now),
    redacted: key.redacted,
    created_at: key.created_at.toISOString(),
    created_by: key.created_by,
    expires_at: iso(key.expires_at),
    revoked_at: iso(key.revoked_at),
    rotation_due_at: rotationDueAt(key.created_at).toISOString(),
    last_used_at: iso(key.last_used_at),
    last_used_ip: key.last_used_ip,
    replaces: key.replaces,
    replaced_by: key.replaced_by,
    enabled: key.enabled,
    rate_limits: key.rate_limits.map((l) => ({ name: l.name, limit: l.limit, window_seconds: l.window_seconds })),
    remaining_uses: key.remaining_uses,
    refill:
      key.refill_amount !== null && key.refill_interval !== null
        ? { amount: key.refill_amount, interval: key.refill_interval, refilled_at: iso(key.refilled_at) }
        : null,
    metadata: key.metadata,
  };
}

/** An audit entry as the API shows it: `at` is its first event, `last_at` its last (they differ for folded refusals). */
export function auditEntry(entry: {
  id: number;
  at: Date;
  actor: string;
  action: string;
  key_id: string | null;
  source_ip: string | null;
  changes: Record<string, unknown>;
  count: number | string;
  last_at: Date | null;
}) {
  return {
    id: String(entry.id),
    at: entry.at.toISOString(),
    actor: entry.actor,
    action: entry.action,
    key_id: entry.key_id,
    source_ip: entry.source_ip,
    changes: entry.changes,
    count: Number(entry.count),
    last_at: (entry.last_at ?? entry.at).toISOString(),
  };
}

/** How a change reached the replicas, as the API shows it. */
export function propagationView(p: Propagation) {
  return {
    replicas: p.replicas,
    confirmed: p.confirmed,
    outcome: p.outcome,
    unconfirmed: p.unconfirmed,
    waited_ms: p.waitedMs,
    published: p.published,
  };
}
