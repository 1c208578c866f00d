import type { Queryable } from './db.js';

/** One committed change to a key, in commit order. */
export interface ChangeRow {
  seq: number;
  key_id: string;
  version: number;
  kind: string;
}

// Serialises change-log appends so that sequence numbers are gap-free in commit order.
const CHANGE_LOCK = 7_336_012;

/** The change log of design: revoke-holds. */
export const changesRepository = {
  /** Append changes inside the caller's transaction (call it last, just before commit). */
  async record(tx: Queryable, changes: { keyId: string; version: number; kind: string }[]): Promise<ChangeRow[]> {
    if (changes.length === 0) return [];
    await tx.query('SELECT pg_advisory_xact_lock($1)', [CHANGE_LOCK]);
    const { rows } = await tx.query<ChangeRow>(
      `INSERT INTO key_changes (seq, key_id, version, kind)
       SELECT (SELECT COALESCE(max(seq), 0) FROM key_changes) + n, key_id, version, kind
       FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS c(key_id, version, kind, n)
       RETURNING seq, key_id, version, kind`,
      [changes.map((c) => c.keyId), changes.map((c) => c.version), changes.map((c) => c.kind)],
    );
    return rows.sort((a, b) => a.seq - b.seq);
  },

  /** Changes after `seq`, oldest first, at most `limit`. */
  async since(q: Queryable, seq: number, limit = 1000): Promise<ChangeRow[]> {
    const { rows } = await q.query<ChangeRow>(
      'SELECT seq, key_id, version, kind FROM key_changes WHERE seq > $1 ORDER BY seq LIMIT $2',
      [seq, limit],
    );
    return rows;
  },

  /** The newest version of every key changed within the last `windowMs` (version floors, Redis repair). */
  async recent(q: Queryable, windowMs: number): Promise<{ keyId: string; version: number }[]> {
    const { rows } = await q.query<{ key_id: string; version: string }>(
      `SELECT key_id, max(version) AS version FROM key_changes
       WHERE at > now() - make_interval(secs => $1::double precision / 1000) GROUP BY key_id`,
      [windowMs],
    );
    return rows.map((r) => ({ keyId: r.key_id, version: Number(r.version) }));
  },

  async latest(q: Queryable): Promise<number> {
    const { rows } = await q.query<{ seq: number | null }>('SELECT max(seq) AS seq FROM key_changes');
    return Number(rows[0]?.seq ?? 0);
  },
};
