import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable } from './db.js';

/** Embedded PostgreSQL (PGlite) in a directory: the default when no DATABASE_URL is set. One connection. */
export class PgliteDatabase implements Database {
  #db: PGlite;

  private constructor(db: PGlite) {
    this.#db = db;
  }

  /** Open (creating on first start) the database under `dataDir`. */
  static async open(dataDir: string): Promise<PgliteDatabase> {
    mkdirSync(dataDir, { recursive: true });
    const db = await PGlite.create(dataDir, { parsers: { 20: (v: string) => Number(v) } });
    return new PgliteDatabase(db);
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<{ rows: R[] }> {
    const res = await this.#db.query<R>(sql, params as unknown[]);
    return { rows: res.rows };
  }

  async exec(sql: string): Promise<void> {
    await this.#db.exec(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#db.transaction(async (t) =>
      fn({
        query: async <R>(sql: string, params: readonly unknown[] = []) => ({
          rows: (await t.query<R>(sql, params as unknown[])).rows,
        }),
      }),
    );
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}
