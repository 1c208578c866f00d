import type { Database, Queryable } from '../store/db.js';

/** How long each kind of record is kept, in days. */
export interface RetentionPolicy {
  changesDays: number;
  activityBatchesDays: number;
  usageDays: number;
  auditDays: number;
  webhookDays: number;
}

export interface RetentionOptions {
  db: Database;
  policy: RetentionPolicy;
  /** Rows deleted per statement, so one run never holds a huge delete. */
  batch?: number;
}

// Any constant: the same for every replica, so one replica prunes at a time.
const RETENTION_LOCK = 7_336_013;

/** Each table's rule: the rows older than its retention, by its time column. */
const TABLES: { table: string; column: string; days: (p: RetentionPolicy) => number; extra?: string }[] = [
  // The newest change is always kept: sequence numbers continue from it (design: change-log-catch-up).
  {
    table: 'key_changes',
    column: 'at',
    days: (p) => p.changesDays,
    extra: 'AND seq < (SELECT max(seq) FROM key_changes)',
  },
  { table: 'activity_batches', column: 'applied_at', days: (p) => p.activityBatchesDays },
  { table: 'key_usage_hourly', column: 'hour', days: (p) => p.usageDays },
  { table: 'key_addresses', column: 'last_seen', days: (p) => p.usageDays },
  { table: 'key_denied_addresses', column: 'last_seen', days: (p) => p.usageDays },
  { table: 'audit_log', column: 'at', days: (p) => p.auditDays },
  // Deliveries and attempts go with their event (ON DELETE CASCADE).
  { table: 'webhook_events', column: 'created_at', days: (p) => p.webhookDays },
];

/**
 * Deletes what has outlived its retention. Several replicas run it; a transaction-scoped advisory
 * lock lets one of them at a time do the work and the others skip the run.
 */
export class RetentionJob {
  #o: RetentionOptions;

  constructor(opts: RetentionOptions) {
    this.#o = opts;
  }

  /** One run: `ran` false when another replica holds the lock; `deleted` counts per table. */
  async runOnce(): Promise<{ ran: boolean; deleted: Record<string, number> }> {
    return this.#o.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [
        RETENTION_LOCK,
      ]);
      if (!rows[0]?.locked) return { ran: false, deleted: {} };
      const deleted: Record<string, number> = {};
      for (const t of TABLES)
        deleted[t.table] = await this.#prune(tx, t.table, t.column, t.days(this.#o.policy), t.extra ?? '');
      return { ran: true, deleted };
    });
  }

  async #prune(tx: Queryable, table: string, column: string, days: number, extra: string): Promise<number> {
    const batch = this.#o.batch ?? 10_000;
    let total = 0;
    for (;;) {
      const { rows } = await tx.query<{ n: string }>(
        `WITH gone AS (DELETE FROM ${table} WHERE ctid IN (
           SELECT ctid FROM ${table} WHERE ${column} < now() - make_interval(days => $1) ${extra} LIMIT $2) RETURNING 1)
         SELECT count(*) AS n FROM gone`,
        [days, batch],
      );
      const n = Number(rows[0]?.n ?? 0);
      total += n;
      if (n < batch) return total;
    }
  }
}
