// Retention: old records are pruned by one replica at a time; recent ones, the newest change and
// a year of audit log always stay.
import pg from 'pg';
import t from 'tap';
import { RetentionJob } from '../../src/service/retention.js';
import { migrate } from '../../src/store/migrations.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { createDatabase } from '../helpers/db.js';

const POLICY = { changesDays: 7, activityBatchesDays: 7, usageDays: 400, auditDays: 730, webhookDays: 30 };

t.test('one run prunes what is past retention; a concurrent run on another replica skips', async (t) => {
  const url = await createDatabase(t, 'retention');
  const dbs = [new PgDatabase({ connectionString: url }), new PgDatabase({ connectionString: url })];
  t.teardown(() => Promise.all(dbs.map((d) => d.close())));
  await migrate(dbs[0]!);
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  t.teardown(() => sql.end());
  const ago = (days: number) => new Date(Date.now() - days * 86_400_000);
  for (let i = 1; i <= 2000; i++) {
    await sql.query('INSERT INTO key_changes (seq, key_id, version, kind, at) VALUES ($1, $2, 1, $3, $4)', [
      i,
      `key_${String(i).padStart(12, '0')}`,
      'revoked',
      ago(i <= 1990 ? 30 : 1),
    ]);
  }
  await sql.query(
    `INSERT INTO key_changes (seq, key_id, version, kind, at) VALUES (2001, 'key_zzzzzzzzzzzz', 2, 'revoked', $1)`,
    [ago(60)],
  );
  await sql.query(`INSERT INTO activity_batches (id, applied_at) VALUES ('old', $1), ('new', now())`, [ago(8)]);
  await sql.query(
    `INSERT INTO key_usage_hourly VALUES ('key_a', $1, 'ALLOWED', 1), ('key_a', date_trunc('hour', now()), 'ALLOWED', 1)`,
    [ago(401)],
  );
  await sql.query(
    `INSERT INTO key_addresses VALUES ('key_a', '10.0.0.1', $1, $1, 1), ('key_a', '10.0.0.2', now(), now(), 1)`,
    [ago(500)],
  );
  await sql.query(`INSERT INTO key_denied_addresses VALUES ('key_a', '10.0.0.9', 'KEY_UNKNOWN', $1, 1)`, [ago(500)]);
  await sql.query(
    `INSERT INTO audit_log (account_id, actor, action, at) VALUES ('a', 'x', 'key.created', $1), ('a', 'x', 'key.created', $2), ('a', 'x', 'key.created', now())`,
    [ago(800), ago(400)],
  );

  const jobs = dbs.map((db) => new RetentionJob({ db, policy: POLICY, batch: 500 }));
  // Another replica holds the lock (its run is under way): this one skips.
  await sql.query('BEGIN');
  await sql.query('SELECT pg_advisory_xact_lock(7336013)');
  t.same(
    await jobs[0]!.runOnce(),
    { ran: false, deleted: {} },
    'a replica skips while another one prunes (advisory lock)',
  );
  await sql.query('COMMIT');
  const done = await jobs[1]!.runOnce();
  t.equal(done.ran, true, 'then runs');
  t.same(
    done.deleted,
    {
      key_changes: 1990,
      activity_batches: 1,
      key_usage_hourly: 1,
      key_addresses: 1,
      key_denied_addresses: 1,
      audit_log: 1,
      webhook_events: 0,
    },
    'each table pruned by its own retention, in batches',
  );
  const count = async (table: string) => Number((await sql.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
  t.equal(await count('key_changes'), 11, 'recent changes kept');
  t.equal(
    Number((await sql.query('SELECT max(seq) FROM key_changes')).rows[0].max),
    2001,
    'the newest change is kept even when old: sequence numbers continue from it',
  );
  t.equal(await count('audit_log'), 2, 'the audit log keeps anything younger than its retention (at least a year)');
  t.same((await jobs[0]!.runOnce()).deleted.key_changes, 0, 'a second run finds nothing more');
});
