import pg from 'pg';
import { AppError } from '../domain/errors.js';
import type { Database, Queryable } from './db.js';

// timestamptz as Date, bigint (int8) as number: our counters stay far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

/** SQLSTATE classes and socket errors that mean "the database cannot be reached". */
function isConnectionFault(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? '';
  return code.startsWith('08') || code === '57P01' || code === '57P03' || code === 'ECONNREFUSED'
    || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EPIPE' || code === 'ENOTFOUND'
    || /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e?.message ?? '');
}

function wrap(err: unknown): never {
  if (isConnectionFault(err)) throw new AppError('STORAGE_UNAVAILABLE', 'storage unavailable');
  throw err;
}

export interface PgDatabaseOptions {
  connectionString: string;
  max?: number;
  connectionTimeoutMillis?: number;
}

/** PostgreSQL server through a `pg` pool; owns the pool and closes it. */
export class PgDatabase implements Database {
  #pool: pg.Pool;

  constructor(opts: PgDatabaseOptions) {
    const config: pg.PoolConfig = {
      connectionString: opts.connectionString,
      max: opts.max ?? 10,
      connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 2000,
      query_timeout: 3000,
      application_name: 'otesse-keys',
    };
    this.#pool = new pg.Pool(config);
    // An idle client that loses its connection must not crash the process.
    this.#pool.on('error', () => {});
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<{ rows: R[] }> {
    try {
      const res = await this.#pool.query(sql, params as unknown[]);
      return { rows: res.rows as R[] };
    } catch (err) { return wrap(err); }
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try { client = await this.#pool.connect(); } catch (err) { return wrap(err); }
    const tx: Queryable = {
      query: async <R>(sql: string, params: readonly unknown[] = []) => {
        try { return { rows: (await client.query(sql, params as unknown[])).rows as R[] }; } catch (err) { return wrap(err); }
      },
    };
    try {
      await tx.query('BEGIN');
      const out = await fn(tx);
      await tx.query('COMMIT');
      client.release();
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(isConnectionFault(err) || (err as AppError).code === 'STORAGE_UNAVAILABLE');
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
