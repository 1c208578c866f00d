/** The one thing the store needs from a database: parameterised queries and transactions. */
export interface Queryable {
  /** Run one statement; rows come back as plain objects. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[] }>;
}

/**
 * A PostgreSQL database (server through `pg`, or embedded PGlite). Contract:
 * - `transaction` runs `fn` in one transaction: commit when it resolves, rollback when it throws;
 * - a connection fault surfaces as an error whose `code` is `STORAGE_UNAVAILABLE` (see isUnavailable);
 * - `close` releases every connection it opened.
 */
export interface Database extends Queryable {
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Run a script of several statements (migrations). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}
