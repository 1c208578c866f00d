import type { Queryable } from './db.js';

/** A share of a key's usage quota taken from PostgreSQL (the balance's one home). */
export interface QuotaLease {
  granted: number;
  /** The balance left after the lease. */
  remaining: number;
  /** The row's version and refill mark (µs since the epoch: exact, unlike a Date) at the lease: a share is given back only to the same ones. */
  version: number;
  refilledUs: number | null;
  /** When the balance is next set back to the refill amount (null: no refill). */
  nextRefill: Date | null;
}

/** The refill mark in µs since the epoch (a Date would round it to ms, and the mark would never match again). */
const MICROS = `(extract(epoch FROM refilled_at) * 1000000)::bigint`;

/** The start of the refill period `now` lies in (UTC day or month), or NULL without a refill. */
const PERIOD = `CASE refill_interval WHEN 'daily' THEN date_trunc('day', now(), 'UTC') WHEN 'monthly' THEN date_trunc('month', now(), 'UTC') END`;

export const quotaRepository = {
  /**
   * Take up to `want` uses from the key's balance, refilling it first when a new period has begun;
   * undefined when the key has no quota (any more). One statement, the row locked: exact across replicas.
   */
  async lease(q: Queryable, keyId: string, want: number): Promise<QuotaLease | undefined> {
    const { rows } = await q.query<{
      granted: number;
      remaining: number;
      version: number;
      refilled_us: number | null;
      next_refill: Date | null;
    }>(
      `WITH cur AS (
         SELECT id, remaining_uses, refill_amount, refilled_at, refill_interval, ${PERIOD} AS period
         FROM api_keys WHERE id = $1 AND remaining_uses IS NOT NULL FOR UPDATE
       ), base AS (
         SELECT id, period, refill_interval, refilled_at AS cur_refilled,
           CASE WHEN period IS NOT NULL AND (refilled_at IS NULL OR refilled_at < period) THEN refill_amount ELSE remaining_uses END AS balance,
           CASE WHEN period IS NOT NULL AND (refilled_at IS NULL OR refilled_at < period) THEN now() ELSE refilled_at END AS refilled
         FROM cur
       )
       UPDATE api_keys k SET remaining_uses = base.balance - LEAST($2::bigint, base.balance), refilled_at = base.refilled,
         quota_basis = CASE WHEN base.refilled IS DISTINCT FROM cur_refilled THEN base.balance ELSE k.quota_basis END
       FROM base WHERE k.id = base.id
       RETURNING LEAST($2::bigint, base.balance) AS granted, k.remaining_uses AS remaining, k.version, ${MICROS} AS refilled_us,
         CASE base.refill_interval WHEN 'daily' THEN base.period + interval '1 day' WHEN 'monthly' THEN base.period + interval '1 month' END AS next_refill`,
      [keyId, want],
    );
    const r = rows[0];
    return (
      r && {
        granted: Number(r.granted),
        remaining: Number(r.remaining),
        version: Number(r.version),
        refilledUs: r.refilled_us === null ? null : Number(r.refilled_us),
        nextRefill: r.next_refill,
      }
    );
  },

  /**
   * Give back uses leased and not spent, only if nothing changed the quota since (no PATCH: same
   * version; no refill: same mark); otherwise they are dropped, which never allows more than the quota.
   */
  async giveBack(
    q: Queryable,
    keyId: string,
    uses: number,
    lease: Pick<QuotaLease, 'version' | 'refilledUs'>,
  ): Promise<boolean> {
    const { rows } = await q.query(
      `UPDATE api_keys SET remaining_uses = remaining_uses + $2
       WHERE id = $1 AND remaining_uses IS NOT NULL AND version = $3 AND ${MICROS} IS NOT DISTINCT FROM $4::bigint RETURNING id`,
      [keyId, uses, lease.version, lease.refilledUs],
    );
    return rows.length > 0;
  },
};
