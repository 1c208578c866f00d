import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Database } from './db.js';

/** Where the SQL migrations live: the package root's migrations/, from src/ or from dist/src/. */
export const MIGRATIONS_DIR =
  ['../../migrations/', '../../../migrations/']
    .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
    .find((dir) => existsSync(dir)) ?? 'migrations/';

// Any constant works: it only has to be the same for every replica.
const MIGRATION_LOCK = 7_336_011;
const CREATE_LEDGER =
  'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())';

/**
 * Apply every migration not yet applied, in file-name order, each in its own transaction.
 * Safe when several replicas start at once: a transaction-scoped advisory lock serialises them,
 * and each one re-reads what is applied after taking it. Returns the names it applied.
 */
export async function migrate(db: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const applied: string[] = [];
  for (const name of files) {
    const sql = await readFile(`${dir}${name}`, 'utf8');
    const done = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.query(CREATE_LEDGER);
      const { rows } = await tx.query('SELECT 1 FROM schema_migrations WHERE name = $1', [name]);
      if (rows.length > 0) return false;
      for (const statement of splitStatements(sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
      return true;
    });
    if (done) applied.push(name);
  }
  return applied;
}

/** The migrations of `dir` that `db` does not record as applied (all of them when it has no ledger). */
export async function unappliedMigrations(db: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const { rows } = await db.query<{ ledger: string | null }>("SELECT to_regclass('schema_migrations')::text AS ledger");
  if (!rows[0]?.ledger) return files;
  const applied = new Set(
    (await db.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name),
  );
  return files.filter((f) => !applied.has(f));
}

/** Split a migration script on the semicolons that end statements (our migrations hold no functions). */
function splitStatements(sql: string): string[] {
  return sql
    .replace(/--.*$/gm, '')
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
}
