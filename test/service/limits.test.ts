// Limits and quotas in one replica: a refill at the start of a period, unspent quota given back at shutdown,
// and the new denials in the activity's counts.
import t from 'tap';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { query } from '../helpers/db.js';

const call = (app: TestApp, key: string) => app.authenticate({ key, ip: '203.0.113.7', scope: 'bookings:read' });

const sql = (app: TestApp, text: string, params: unknown[]) => query(app.env.DATABASE_URL as string, text, params);

t.test('a daily refill sets the balance back to its amount once a new day has begun', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', { remaining_uses: 3, refill: { amount: 5, interval: 'daily' } });
  for (let i = 0; i < 3; i++) t.equal((await call(app, key.secret)).allowed, true);
  const empty = await call(app, key.secret);
  t.equal(empty.reason, 'USAGE_EXCEEDED');
  const midnight = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1);
  t.ok(
    Math.abs(Number(empty.retry_after_ms) - (midnight - Date.now())) < 10_000,
    `retry_after_ms says when: the next UTC midnight (${empty.retry_after_ms} ms)`,
  );
  // Yesterday's refill: the next lease starts a new period. (A label change makes every replica read the key again.)
  await sql(app, `UPDATE api_keys SET refilled_at = now() - interval '1 day' WHERE id = $1`, [key.id]);
  t.equal((await app.api('PATCH', `/v1/accounts/acct_1/keys/${key.id}`, { label: 'next day' })).status, 200);
  const answers = [];
  for (let i = 0; i < 6; i++) answers.push((await call(app, key.secret)).reason);
  t.same(
    answers,
    [...Array(5).fill('DENY_REASON_UNSPECIFIED'), 'USAGE_EXCEEDED'],
    'the refill amount, then refused again',
  );
  const [row] = await sql(
    app,
    "SELECT remaining_uses, refilled_at > now() - interval '1 minute' AS today FROM api_keys WHERE id = $1",
    [key.id],
  );
  t.same(row, { remaining_uses: 0, today: true }, 'refilled today, and used up');
});

t.test('unspent shares of the quota go back to the balance at shutdown', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', { remaining_uses: 1000 });
  for (let i = 0; i < 3; i++) t.equal((await call(app, key.secret)).allowed, true);
  const [held] = await sql(app, 'SELECT remaining_uses FROM api_keys WHERE id = $1', [key.id]);
  t.ok(
    Number(held?.remaining_uses) < 997,
    `a share is held while the replica runs (${String(held?.remaining_uses)} shown)`,
  );
  await app.close();
  const [after] = await sql(app, 'SELECT remaining_uses FROM api_keys WHERE id = $1', [key.id]);
  t.equal(Number(after?.remaining_uses), 997, 'exactly the 3 calls made are spent');
});

t.test('rate-limited, disabled and over-quota calls are counted per reason in the activity', async (t) => {
  const app = await startTestApp(t);
  const limited = await createKey(app, 'acct_1', {
    rate_limits: [{ name: 'per_minute', limit: 2, window_seconds: 60 }],
  });
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(await call(app, limited.secret));
  t.same(
    answers.map((a) => a.reason),
    ['DENY_REASON_UNSPECIFIED', 'DENY_REASON_UNSPECIFIED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'],
  );
  t.ok(
    answers.slice(2).every((a) => Number(a.retry_after_ms) > 0 && Number(a.retry_after_ms) <= 60_000),
    'with the time until the window ends',
  );
  const quota = await createKey(app, 'acct_1', { remaining_uses: 0 });
  await call(app, quota.secret);
  const disabled = await createKey(app, 'acct_1', { enabled: false });
  await call(app, disabled.secret);
  await app.usage.flush();
  const denied = async (id: string) =>
    (await app.api('GET', `/v1/accounts/acct_1/keys/${id}/activity`)).body.totals.denied;
  t.same(await denied(limited.id), { RATE_LIMITED: 3 });
  t.same(await denied(quota.id), { USAGE_EXCEEDED: 1 });
  t.same(await denied(disabled.id), { KEY_DISABLED: 1 });
});
