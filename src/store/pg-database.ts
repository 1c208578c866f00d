import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { AppError } from '../domain/errors.js';
import type { Database, Queryable } from './db.js';

// timestamptz as Date, bigint (int8) as number: our counters stay far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

/** SQLSTATE classes and socket errors that mean "the database cannot be reached". */
export function isConnectionFault(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? '';
  return (
    code.startsWith('08') ||
    code === '57P01' ||
    code === '57P03' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'EPIPE' ||
    code === 'ENOTFOUND' ||
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      e?.message ?? '',
    )
  );
}

function wrap(err: unknown): never {
  if (isConnectionFault(err)) throw new AppError('STORAGE_UNAVAILABLE', 'storage unavailable');
  throw err;
}

export interface PgDatabaseOptions {
  connectionString: string;
  /** TLS to the server (see pg-connection.ts); unset: as the URL says. */
  ssl?: ConnectionOptions | undefined;
  max?: number;
  connectionTimeoutMillis?: number;
  /**
   * An idle pooled connection failed (the server restarted, a proxy or firewall cut it): pg drops that
   * client and the next query opens another, so no call fails here, but the fault is told so it can be
   * logged. Without it, a process warning is emitted.
   */
  onIdleError?: (err: Error) => void;
}

/** PostgreSQL server through a `pg` pool; owns the pool and closes it. */
export class PgDatabase implements Database {
  #pool: pg.Pool;
  #idleErrors = 0;

  constructor(opts: PgDatabaseOptions) {
    const config: pg.PoolConfig = {
      connectionString: opts.connectionString,
      ...(opts.ssl ? { ssl: opts.ssl } : {}),
      max: opts.max ?? 10,
      connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 2000,
      query_timeout: 3000,
      application_name: 'otesse-keys',
    };
    this.#pool = new pg.Pool(config);
    // Unhandled, pg's 'error' event for an idle client would crash the process; ignored, it would hide the fault.
    const told =
      opts.onIdleError ??
      ((err: Error) => process.emitWarning(`PostgreSQL: an idle pooled connection failed: ${err.message}`));
    this.#pool.on('error', (err) => {
      this.#idleErrors++;
      told(err);
    });
  }

  /** Idle pooled connections that failed since start. */
  get idleErrors(): number {
    return this.#idleErrors;
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<{ rows: R[] }> {
    try {
      const res = await this.#pool.query(sql, params as unknown[]);
      return { rows: res.rows as R[] };
    } catch (err) {
      return wrap(err);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      return wrap(err);
    }
    const tx: Queryable = {
      query: async <R>(sql: string, params: readonly unknown[] = []) => {
        try {
          return { rows: (await client.query(sql, params as unknown[])).rows as R[] };
        } catch (err) {
          return wrap(err);
        }
      },
    };
    try {
      await tx.query('BEGIN');
      const out = await fn(tx);
      await tx.query('COMMIT');
      client.release();
      return out;
    } catch (err) {
      // The caller gets the transaction's own error; a ROLLBACK that fails as well says the connection is
      // unusable, so the client is destroyed instead of going back to the pool.
      const rolledBack = await client.query('ROLLBACK').then(
        () => true,
        () => false,
      );
      client.release(!rolledBack || isConnectionFault(err) || (err as AppError).code === 'STORAGE_UNAVAILABLE');
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
