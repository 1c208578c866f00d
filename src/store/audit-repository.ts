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
  /** How many events the entry stands for: 1, or the refusals folded into one window. */
  count: number | string;
  /** The last of the folded refusals; null for an ordinary entry. */
  last_at: Date | null;
}

export type NewAudit = Omit<AuditRow, 'id' | 'at' | 'count' | 'last_at'>;

/** Refused admin attempts are folded per account, action, actor and source address over this window. */
export const REFUSAL_WINDOW_SECONDS = 600;

/** The audit log: written in the same transaction as the change it records. */
export const auditRepository = {
  async insert(tx: Queryable, entries: NewAudit[]): Promise<void> {
    if (entries.length === 0) return;
    await tx.query(
      `INSERT INTO audit_log (account_id, key_id, actor, action, source_ip, changes)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])`,
      [
        entries.map((e) => e.account_id),
        entries.map((e) => e.key_id),
        entries.map((e) => e.actor),
        entries.map((e) => e.action),
        entries.map((e) => e.source_ip),
        entries.map((e) => JSON.stringify(e.changes)),
      ],
    );
  },

  /**
   * A refused attempt: added to the entry of its window, or the window's first entry. The window
   * comes from the database's clock, so replicas agree on it whatever their own clocks say; the
   * unique index makes concurrent refusals, on any replica, add up in one entry.
   */
  async recordRefusal(q: Queryable, entry: NewAudit): Promise<void> {
    await q.query(
      `INSERT INTO audit_log (account_id, key_id, actor, action, source_ip, changes, count, last_at, refusal_window)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, 1, now(), to_timestamp(floor(extract(epoch FROM now()) / $7::int) * $7::int))
       ON CONFLICT (account_id, refusal_window, action, actor, (coalesce(source_ip, ''))) WHERE refusal_window IS NOT NULL
       DO UPDATE SET count = audit_log.count + 1, last_at = greatest(audit_log.last_at, EXCLUDED.last_at)`,
      [
        entry.account_id,
        entry.key_id,
        entry.actor,
        entry.action,
        entry.source_ip,
        JSON.stringify(entry.changes),
        REFUSAL_WINDOW_SECONDS,
      ],
    );
  },

  /** The account's entries, newest first; `keyId` narrows to one key; `before` is the cursor. */
  async list(
    q: Queryable,
    accountId: string,
    opts: { keyId?: string; before?: number; limit: number },
  ): Promise<AuditRow[]> {
    const { rows } = await q.query<AuditRow>(
      `SELECT * FROM audit_log WHERE account_id = $1 AND ($2::text IS NULL OR key_id = $2) AND ($3::bigint IS NULL OR id < $3)
       ORDER BY id DESC LIMIT $4`,
      [accountId, opts.keyId ?? null, opts.before ?? null, opts.limit],
    );
    return rows;
  },
};
