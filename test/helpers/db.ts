import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The shared PostgreSQL server of the machine (never stopped by tests). */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Teardown { teardown(fn: () => unknown): void }

function urlFor(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh database of this test's own on the shared server, dropped at teardown. */
export async function createDatabase(t: Teardown, label = 'keys'): Promise<string> {
  const name = `t_${label}_${randomBytes(5).toString('hex')}`.toLowerCase();
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  return urlFor(name);
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
