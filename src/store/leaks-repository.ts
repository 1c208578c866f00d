import type { Queryable } from './db.js';

/** One report of a real key seen in public (never the token itself). */
export interface LeakRow {
  id: number;
  key_id: string;
  account_id: string;
  reported_at: Date;
  reporter: string;
  source: string;
  url: string | null;
  outcome: 'revoked' | 'already_revoked';
}

export type NewLeak = Omit<LeakRow, 'id' | 'reported_at'>;

/** Leak reports of keys: written by the leak-report use case, read by the activity route. */
export const leaksRepository = {
  async insert(q: Queryable, leaks: NewLeak[]): Promise<void> {
    if (leaks.length === 0) return;
    await q.query(
      `INSERT INTO key_leaks (key_id, account_id, reporter, source, url, outcome)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`,
      [
        leaks.map((l) => l.key_id),
        leaks.map((l) => l.account_id),
        leaks.map((l) => l.reporter),
        leaks.map((l) => l.source),
        leaks.map((l) => l.url),
        leaks.map((l) => l.outcome),
      ],
    );
  },

  /** The key's most recent reports, newest first. */
  async forKey(q: Queryable, keyId: string, limit = 100): Promise<LeakRow[]> {
    const { rows } = await q.query<LeakRow>('SELECT * FROM key_leaks WHERE key_id = $1 ORDER BY id DESC LIMIT $2', [
      keyId,
      limit,
    ]);
    return rows;
  },
};
