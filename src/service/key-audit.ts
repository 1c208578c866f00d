import { canonicalJson, metadataBytes } from '../domain/key-limits.js';
import type { NewAudit } from '../store/audit-repository.js';
import type { KeyPatch, KeyRow } from '../store/keys-repository.js';
import type { RefillInput } from './key-input.js';

/**
 * What the audit log says about a key's changes: the entry, a key's limits as entries show them, and
 * the fields a patch changes. Metadata is shown by its size only: it is the customer's data.
 */

/** Who asks: the admin token's name (the audit actor) and the request's source address. */
export interface Actor {
  name: string;
  sourceIp: string | null;
}

/** An audit entry about one key. */
export function auditEntry(actor: Actor, row: KeyRow, action: string, changes: Record<string, unknown>): NewAudit {
  return { account_id: row.account_id, key_id: row.id, actor: actor.name, action, source_ip: actor.sourceIp, changes };
}

/** A key's limits as audit entries show them: metadata by its size only (customer data; audit rows stay small). */
export function limitsAudit(k: KeyRow): Record<string, unknown> {
  return {
    enabled: k.enabled,
    rate_limits: k.rate_limits,
    remaining_uses: k.remaining_uses,
    refill: refillOf(k),
    metadata: k.metadata === null ? null : { bytes: metadataBytes(k.metadata) },
  };
}

/** `key.disabled` / `key.enabled` when only `enabled` changed, else `key.updated`. */
export function updateAction(diff: Record<string, unknown>, after: KeyRow): string {
  if (Object.keys(diff).length !== 1 || !('enabled' in diff)) return 'key.updated';
  return after.enabled ? 'key.enabled' : 'key.disabled';
}

const AUDITED: readonly (keyof KeyRow)[] = [
  'label',
  'scopes',
  'allowed_ips',
  'expires_at',
  'enabled',
  'rate_limits',
  'remaining_uses',
];

/**
 * The fields a patch changes, in API terms, from and to: `refill` as {amount, interval} or null;
 * `metadata` as {from_bytes, to_bytes} (its content is the customer's, compared whatever the key order).
 */
export function changedFields(before: KeyRow, patch: KeyPatch): Record<string, unknown> {
  const after = { ...before, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) };
  const diff: Record<string, unknown> = {};
  const show = (v: unknown) => (v instanceof Date ? v.toISOString() : v);
  for (const field of AUDITED) {
    const [from, to] = [show(before[field]), show(after[field])];
    if (canonicalJson(from) !== canonicalJson(to)) diff[field] = { from, to };
  }
  const [refillFrom, refillTo] = [refillOf(before), refillOf(after)];
  if (canonicalJson(refillFrom) !== canonicalJson(refillTo)) diff.refill = { from: refillFrom, to: refillTo };
  if (canonicalJson(before.metadata) !== canonicalJson(after.metadata)) {
    diff.metadata = { from_bytes: metadataBytes(before.metadata), to_bytes: metadataBytes(after.metadata) };
  }
  return diff;
}

function refillOf(k: Pick<KeyRow, 'refill_amount' | 'refill_interval'>): RefillInput | null {
  return k.refill_amount !== null && k.refill_interval !== null
    ? { amount: k.refill_amount, interval: k.refill_interval }
    : null;
}
