import type { Queryable } from './db.js';

export interface AuditRow {
  id: number;
  account_id: string;
  key_id: string | null;
  at: Date;
  actor: string;
  action: string;
  source_ip: string | null;
  changes: Record<string, unknown>;
}

export type NewAudit = Omit<AuditRow, 'id' | 'at'>;

/** The audit log: written in the same transaction as the change it records. */
export const auditRepository = {
  async insert(tx: Queryable, entries: NewAudit[]): Promise<void> {
    if (entries.length === 0) return;
    await tx.query(
      `INSERT INTO audit_log (account_id, key_id, actor, action, source_ip, changes)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])`,
      [entries.map((e) => e.account_id), entries.map((e) => e.key_id), entries.map((e) => e.actor),
        entries.map((e) => e.action), entries.map((e) => e.source_ip), entries.map((e) => JSON.stringify(e.changes))]);
  },

  /** The account's entries, newest first; `keyId` narrows to one key; `before` is the cursor. */
  async list(q: Queryable, accountId: string, opts: { keyId?: string; before?: number; limit: number }): Promise<AuditRow[]> {
    const { rows } = await q.query<AuditRow>(
      `SELECT * FROM audit_log WHERE account_id = $1 AND ($2::text IS NULL OR key_id = $2) AND ($3::bigint IS NULL OR id < $3)
       ORDER BY id DESC LIMIT $4`, [accountId, opts.keyId ?? null, opts.before ?? null, opts.limit]);
    return rows;
  },
};
