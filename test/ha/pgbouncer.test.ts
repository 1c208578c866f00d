// The service behind PgBouncer (Debian's `pgbouncer`, started here on a free port in front of the
// shared PostgreSQL): in transaction mode it works, with the migrations on DATABASE_MIGRATION_URL
// (a direct connection); in statement mode it refuses to start with one line naming DATABASE_URL.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t, { type Test } from 'tap';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { RetentionJob } from '../../src/service/retention.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { createKey, startTestApp, testEnv, type TestApp } from '../helpers/app.js';
import { directUrl, PG_ADMIN_URL, query } from '../helpers/db.js';
import { startPgBouncer } from '../helpers/pgbouncer.js';

const RETENTION_LOCK = 7_336_013;
const keyPath = (id: string) => `/v1/accounts/acct_1/keys/${id}`;

/**
 * A login role without CREATE on the schema, given only data rights on what the migrations make:
 * a migration that ran over DATABASE_URL (as this role) would fail, so a started service proves they ran
 * over DATABASE_MIGRATION_URL. Dropped at teardown.
 */
async function appRole(t: Test, databaseUrl: string): Promise<string> {
  const role = `t_app_${randomBytes(5).toString('hex')}`;
  await query(PG_ADMIN_URL, `CREATE ROLE ${role} LOGIN`);
  t.teardown(async () => {
    // The database may be dropped already (then nothing of the role is left in it).
    await query(databaseUrl, `DROP OWNED BY ${role}`).catch(() => undefined);
    await query(PG_ADMIN_URL, `DROP ROLE IF EXISTS ${role}`);
  });
  await query(
    databaseUrl,
    `ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${role}`,
  );
  await query(
    databaseUrl,
    `ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${role}`,
  );
  return role;
}

const databaseName = (url: string) => new URL(url).pathname.slice(1);

t.test('transaction pooling: two replicas through PgBouncer, migrations over the direct URL', async (t) => {
  const env = await testEnv(t);
  const direct = directUrl(env.DATABASE_URL ?? '');
  const role = await appRole(t, direct);
  const bouncer = await startPgBouncer(t, { mode: 'transaction', users: [role] });
  const pooled = bouncer.url(databaseName(direct), { user: role });
  const [canCreate] = await query(direct, `SELECT has_schema_privilege('${role}', 'public', 'CREATE') AS ok`);
  t.equal(canCreate?.ok, false, 'the service role cannot run DDL: migrations must take the direct URL');

  const shared = { ...env, DATABASE_URL: pooled, DATABASE_MIGRATION_URL: direct };
  const a = await startTestApp(t, {}, shared);
  const b = await startTestApp(t, {}, shared);
  const [ledger] = await query(direct, 'SELECT count(*)::int AS n FROM schema_migrations');
  t.ok(Number(ledger?.n) > 0, 'migrations applied (over DATABASE_MIGRATION_URL)');

  // Create on one replica, decide on the other; revoke on the first, the other denies at once (design: revoke-holds).
  const key = await createKey(a);
  t.equal((await b.authenticate({ key: key.secret })).allowed, true, 'a key made on A is allowed on B');
  t.equal((await a.api('POST', `${keyPath(key.id)}/revoke`, { reason: 'test' })).status, 200, 'revoked on A');
  const denied = await b.authenticate({ key: key.secret });
  t.same([denied.allowed, denied.reason], [false, 'KEY_REVOKED'], 'B denies as soon as the revoke has returned');

  await changeLogUnderConcurrency(t, a, b, direct);
  await usageFlush(t, a, b);
  await retentionLock(t, pooled, direct);
  t.match(
    bouncer.log(),
    new RegExp(`login attempt: db=${databaseName(direct)} user=${role}`),
    'the service did go through PgBouncer',
  );
});

/** Changes committed on both replicas at once: the change log stays gap-free (its lock is transaction-scoped). */
async function changeLogUnderConcurrency(t: Test, a: TestApp, b: TestApp, direct: string): Promise<void> {
  const made = await Promise.all(Array.from({ length: 12 }, (_, i) => createKey(i % 2 ? a : b)));
  await Promise.all(made.map((k, i) => (i % 2 ? b : a).api('POST', `${keyPath(k.id)}/revoke`, {})));
  const [log] = await query(
    direct,
    'SELECT count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM key_changes',
  );
  t.equal(
    Number(log?.n),
    Number(log?.hi) - Number(log?.lo) + 1,
    `change log gap-free under concurrent writers (${Number(log?.n)} changes)`,
  );
  for (const k of made) t.equal((await a.authenticate({ key: k.secret })).reason, 'KEY_REVOKED');
}

/** Usage counted on B, flushed through PgBouncer, read on A. */
async function usageFlush(t: Test, a: TestApp, b: TestApp): Promise<void> {
  const key = await createKey(a);
  for (let i = 0; i < 5; i++) await b.authenticate({ key: key.secret });
  await b.usage.flush();
  const activity = await a.api('GET', `${keyPath(key.id)}/activity`);
  t.equal(activity.body.totals.allowed, 5, 'usage flushed by B is read by A');
}

/** The retention job's lock, transaction-scoped, holds through transaction pooling. */
async function retentionLock(t: Test, pooled: string, direct: string): Promise<void> {
  const db = new PgDatabase({ connectionString: pooled });
  t.teardown(() => db.close());
  const job = new RetentionJob({
    db,
    policy: { changesDays: 1, activityBatchesDays: 1, usageDays: 1, auditDays: 365, webhookDays: 30 },
  });
  await query(
    direct,
    `UPDATE key_changes SET at = now() - interval '3 days' WHERE seq < (SELECT max(seq) FROM key_changes)`,
  );
  const holder = new pg.Client({ connectionString: direct });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('BEGIN');
  await holder.query('SELECT pg_advisory_xact_lock($1)', [RETENTION_LOCK]);
  t.same(await job.runOnce(), { ran: false, deleted: {} }, 'another holder of the lock: this run skips');
  await holder.query('COMMIT');
  const run = await job.runOnce();
  t.equal(run.ran, true, 'lock free: the run prunes');
  t.ok((run.deleted.key_changes ?? 0) > 0, `old changes pruned through PgBouncer (${run.deleted.key_changes})`);
}

t.test('statement pooling: the service refuses to start with one line naming DATABASE_URL', async (t) => {
  const env = await testEnv(t);
  const direct = directUrl(env.DATABASE_URL ?? '');
  const bouncer = await startPgBouncer(t, { mode: 'statement' });
  const pooled = bouncer.url(databaseName(direct));
  for (const migration of [{ DATABASE_MIGRATION_URL: direct }, {}]) {
    const config = loadConfig({ ...env, DATABASE_URL: pooled, ...migration });
    await t.rejects(
      startApp(config, createLogger('silent')),
      { message: /^DATABASE_URL: the server does not keep a transaction on one connection .*pool_mode=transaction/ },
      migration.DATABASE_MIGRATION_URL ? 'with DATABASE_MIGRATION_URL direct' : 'without DATABASE_MIGRATION_URL',
    );
  }
  const [tables] = await query(direct, "SELECT to_regclass('schema_migrations')::text AS ledger");
  t.equal(tables?.ledger, null, 'refused before any migration ran');
});

t.test(
  'DATABASE_MIGRATION_URL naming another database: refused, the service does not start on an empty schema',
  async (t) => {
    const env = await testEnv(t);
    const other = await testEnv(t);
    await t.rejects(
      startApp(loadConfig({ ...env, DATABASE_MIGRATION_URL: other.DATABASE_URL ?? '' }), createLogger('silent')),
      { message: /^DATABASE_MIGRATION_URL: the migrations applied there are not seen through DATABASE_URL/ },
    );
  },
);
