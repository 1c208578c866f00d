import type { Propagation } from '../../service/invalidator.js';
import { statusOf, type KeyRow } from '../../store/keys-repository.js';
import type { AuditRow } from '../../store/audit-repository.js';
import type { KeyResource } from './schemas.js';

const ROTATION_MS = 90 * 24 * 3600 * 1000;
const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The public key resource (explicit fields: the hash never leaves). */
export function keyResource(row: KeyRow, now = Date.now()): KeyResource {
  return {
    id: row.id,
    account_id: row.account_id,
    label: row.label,
    environment: row.environment,
    scopes: row.scopes,
    allowed_ips: row.allowed_ips,
    status: statusOf(row, now),
    redacted: row.redacted,
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    expires_at: iso(row.expires_at),
    revoked_at: iso(row.revoked_at),
    rotation_due_at: new Date(row.created_at.getTime() + ROTATION_MS).toISOString(),
    last_used_at: iso(row.last_used_at),
    last_used_ip: row.last_used_ip,
    replaces: row.replaces,
    replaced_by: row.replaced_by,
  };
}

export function auditEntry(row: AuditRow) {
  return {
    id: String(row.id), at: row.at.toISOString(), actor: row.actor, action: row.action,
    key_id: row.key_id, source_ip: row.source_ip, changes: row.changes,
  };
}

/** How a change reached the replicas, as the API shows it. */
export function propagationView(p: Propagation) {
  return { replicas: p.replicas, confirmed: p.confirmed, outcome: p.outcome, unconfirmed: p.unconfirmed, waited_ms: p.waitedMs, published: p.published };
}
