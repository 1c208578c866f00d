import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MIGRATIONS_DIR, migrate } from '../../src/store/migrations.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { createDatabase } from '../helpers/db.js';

const FILES = readdirSync(MIGRATIONS_DIR)
  .filter((f) => f.endsWith('.sql'))
  .sort();
const TABLES = [
  'activity_batches',
  'api_keys',
  'audit_log',
  'key_addresses',
  'key_changes',
  'key_denied_addresses',
  'key_leaks',
  'key_usage_hourly',
  'schema_migrations',
  'webhook_attempts',
  'webhook_deliveries',
  'webhook_endpoints',
  'webhook_events',
  'webhook_notices',
];

function open(t: { teardown(fn: () => unknown): void }, url: string): PgDatabase {
  const db = new PgDatabase({ connectionString: url, max: 2 });
  t.teardown(() => db.close());
  return db;
}

async function tables(db: PgDatabase): Promise<string[]> {
  const { rows } = await db.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
  );
  return rows.map((r) => r.table_name);
}

t.test('applied twice: the second run applies nothing', async (t) => {
  t.ok(FILES.length > 0, `${FILES.length} migration files`);
  const db = open(t, await createDatabase(t, 'mig'));
  t.same(await migrate(db), FILES, 'the first run applies every file, in order');
  t.same(await tables(db), TABLES);
  t.same(await migrate(db), [], 'the second run applies nothing');
  const { rows } = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
  t.same(
    rows.map((r) => r.name),
    FILES,
    'one ledger row per file',
  );
  await db.query(`INSERT INTO api_keys (id, account_id, environment, label, scopes, secret_hash, redacted, created_by)
    VALUES ('key_000000000001', 'acct', 'live', 'l', '{bookings:read}', '$argon2id$x', 'r', 'admin')`);
  t.same(await migrate(db), [], 'and a third, with data in place, changes nothing');
  t.equal((await db.query('SELECT * FROM api_keys')).rows.length, 1, 'data kept');
});

t.test('applied concurrently: five replicas starting at once all succeed, once', async (t) => {
  const url = await createDatabase(t, 'mig');
  const dbs = Array.from({ length: 5 }, () => open(t, url));
  const results = await Promise.all(dbs.map((db) => migrate(db)));
  t.equal(results.length, 5, 'every migrate() resolved');
  t.same(results.flat().sort(), FILES, 'each file was applied by exactly one of them');
  const db = dbs[0] as PgDatabase;
  t.same(await tables(db), TABLES, 'every table exists, once');
  const { rows } = await db.query<{ name: string; n: number }>(
    'SELECT name, count(*)::int AS n FROM schema_migrations GROUP BY name ORDER BY name',
  );
  t.same(
    rows,
    FILES.map((name) => ({ name, n: 1 })),
    'one ledger row per file',
  );
});

t.test('a failing migration is rolled back whole, and applied once fixed', async (t) => {
  const dir = `${mkdtempSync(join(tmpdir(), 'otesse-mig-'))}/`;
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    `${dir}001_one.sql`,
    'CREATE TABLE one (id int PRIMARY KEY);\n-- a comment; with a semicolon\nINSERT INTO one VALUES (1);',
  );
  writeFileSync(`${dir}002_two.sql`, 'CREATE TABLE two (id int);\nINSERT INTO nowhere VALUES (1);');
  const db = open(t, await createDatabase(t, 'mig'));
  await t.rejects(migrate(db, dir), 'the broken file fails the run');
  t.same(
    await tables(db),
    ['one', 'schema_migrations'],
    'the good file stays applied; nothing of the broken one remains',
  );
  t.same((await db.query('SELECT name FROM schema_migrations')).rows, [{ name: '001_one.sql' }]);
  writeFileSync(`${dir}002_two.sql`, 'CREATE TABLE two (id int);\nINSERT INTO two VALUES (2);');
  t.same(await migrate(db, dir), ['002_two.sql'], 'only the fixed file is applied');
  t.same((await db.query('SELECT id FROM two')).rows, [{ id: 2 }]);
  t.same((await db.query('SELECT id FROM one')).rows, [{ id: 1 }], 'the first file ran once');
});
