import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { scratchDatabase } from './harness/database.js';

/** The shared PostgreSQL server of the machine (never stopped by tests). */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Teardown { teardown(fn: () => unknown): void }

/** A fresh database of this test's own on the shared server, dropped at teardown. */
export async function createDatabase(t: Teardown, label = 'keys'): Promise<string> {
  return scratchDatabase(t, PG_ADMIN_URL, `t_${label}_${randomBytes(5).toString('hex')}`.toLowerCase());
}

/** A Redis key prefix of this test's own, its keys deleted at teardown. */
export function redisPrefix(label = 'keys'): string {
  return `test:${label}:${randomBytes(5).toString('hex')}:`;
}

/** One query on a database (a test's own), over a connection of its own. */
export async function query(url: string, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(text, params)).rows as Record<string, unknown>[]; } finally { await c.end(); }
}
