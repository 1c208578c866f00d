import t from 'tap';
import pg from 'pg';
import { BIG_ACCOUNT, seedScale } from '../../bench/lib/seed-scale.js';
import { wrongSecret } from '../helpers/keys.js';
import { startTestApp, testEnv } from '../helpers/app.js';
import { PG_ADMIN_URL } from '../helpers/db.js';

async function databaseExists(name: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rows.length > 0;
  } finally {
    await c.end();
  }
}

t.test('seed:scale loads keys that the service authenticates, in a database dropped afterwards', async (t) => {
  let database = '';
  await t.test('2,000 keys', async (t) => {
    const env = await testEnv(t);
    database = new URL(env.DATABASE_URL ?? '').pathname.slice(1);
    const seed = await seedScale({ databaseUrl: env.DATABASE_URL ?? '', keys: 2000, bigAccountKeys: 500, sample: 20 });
    t.equal(seed.rows.api_keys, 2000);
    t.ok((seed.rows.audit_log ?? 0) >= 2000, 'every key has its creation in the audit log');
    t.ok((seed.rows.key_usage_hourly ?? 0) > 0 && (seed.rows.key_addresses ?? 0) > 0, 'the large account has activity');
    t.equal(seed.sample.length, 20);

    const c = new pg.Client({ connectionString: env.DATABASE_URL });
    await c.connect();
    t.teardown(() => c.end());
    const big = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE account_id = $1', [
      BIG_ACCOUNT,
    ]);
    t.equal(big.rows[0]?.n, 500);
    // The sample is spread through the table, not its first rows.
    const ids = seed.sample.map((k) => `key_${k.slice('otesse_live_sk_'.length, 'otesse_live_sk_'.length + 12)}`);
    const rank = await c.query<{ lo: number; hi: number }>(
      `SELECT min(n)::int AS lo, max(n)::int AS hi FROM (SELECT id, row_number() OVER (ORDER BY created_at) AS n FROM api_keys) r WHERE id = ANY($1)`,
      [ids],
    );
    t.ok((rank.rows[0]?.hi ?? 0) - (rank.rows[0]?.lo ?? 0) > 1000, 'sampled keys span more than half of the table');

    await t.rejects(
      seedScale({ databaseUrl: env.DATABASE_URL ?? '', keys: 10 }),
      /not empty/,
      'never seeds a database that holds keys',
    );

    const app = await startTestApp(t, {}, env);
    for (const key of seed.sample) {
      const res = await app.authenticate({ key });
      t.ok(res.allowed, `${key.slice(0, 27)}… authenticates`);
    }
    const sample = seed.sample[0] ?? '';
    t.equal((await app.authenticate({ key: wrongSecret(sample) })).allowed, false, 'a wrong secret does not');
    const page = await app.api('GET', `/v1/accounts/${BIG_ACCOUNT}/keys?limit=100`);
    t.equal(page.body.data.length, 100);
    t.type(page.body.next_cursor, 'string');
  });
  t.equal(await databaseExists(database), false, `its database ${database} was dropped`);
});
