import { randomBytes } from 'node:crypto';
import pg from 'pg';
import tap from 'tap';
import { scratchDatabase } from './harness/database.js';
import { startPgBouncer, type PgBouncer } from './pgbouncer.js';

/** The shared PostgreSQL server of the machine (never stopped by tests). */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * TEST_PG_VIA_PGBOUNCER=1: the test databases are reached through a PgBouncer in transaction mode
 * (one per test process), and test services run their migrations on the direct URL (see directUrl).
 */
const VIA_PGBOUNCER = process.env.TEST_PG_VIA_PGBOUNCER === '1';
let bouncer: Promise<PgBouncer> | undefined;
const direct = new Map<string, string>();

/** A fresh database of this test's own on the shared server, dropped at teardown. */
export async function createDatabase(t: Teardown, label = 'keys'): Promise<string> {
  const name = `t_${label}_${randomBytes(5).toString('hex')}`.toLowerCase();
  const url = await scratchDatabase(t, PG_ADMIN_URL, name);
  if (!VIA_PGBOUNCER) return url;
  bouncer ??= startPgBouncer(tap, { mode: 'transaction' });
  const pooled = (await bouncer).url(name);
  direct.set(pooled, url);
  return pooled;
}

/** The URL that reaches a test database without a pooler (the same URL unless TEST_PG_VIA_PGBOUNCER is set). */
export function directUrl(url: string): string {
  return direct.get(url) ?? url;
}

/** A Redis key prefix of this test's own, its keys deleted at teardown. */
export function redisPrefix(label = 'keys'): string {
  return `test:${label}:${randomBytes(5).toString('hex')}:`;
}

/** One query on a database (a test's own), over a connection of its own. */
export async function query(url: string, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}
