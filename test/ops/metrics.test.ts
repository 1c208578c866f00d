// /metrics as an operator reads it: after known traffic, the counters and histograms say
// exactly what happened.
import t from 'tap';
import { createKey, startTestApp, testEnv } from '../helpers/app.js';
import { metric, has, scrape } from '../helpers/ops/prom.js';
import { waitFor } from '../helpers/replica.js';

const DECISIONS = 'otesse_keys_authenticate_total';
const LATENCY = 'otesse_keys_authenticate_seconds_count';
const TIERS = 'otesse_keys_cache_lookups_total';
const LAG = 'otesse_keys_invalidation_lag_seconds';
const HTTP = 'otesse_keys_http_request_seconds_count';

t.test(
  'decisions by reason and environment, latency by path, cache tiers, HTTP routes, invalidation lag',
  async (t) => {
    // Two replicas on one database and one Redis prefix: b finds in Redis what a verified.
    const env = await testEnv(t);
    const a = await startTestApp(t, {}, env);
    const b = await startTestApp(t, {}, env);
    const live = await createKey(a);
    const sandbox = await createKey(a, 'acct_1', { environment: 'test' });
    t.equal(
      (await a.api('POST', '/v1/accounts/acct_1/keys', { label: '', scopes: [], environment: 'live' })).status,
      400,
      'a bad create',
    );
    for (const junk of ['/wp-login.php', '/a/b/c', `/v1/${'x'.repeat(40)}`])
      t.equal((await a.api('GET', junk)).status, 404);

    for (let i = 0; i < 3; i++) t.equal((await a.authenticate({ key: live.secret })).allowed, true);
    for (let i = 0; i < 2; i++)
      t.equal((await a.authenticate({ key: live.secret, scope: 'bookings:write' })).reason, 'SCOPE_NOT_GRANTED');
    t.equal((await a.authenticate({ key: 'otesse_live_sk_not-a-key' })).reason, 'KEY_MALFORMED');
    t.equal((await a.authenticate({ key: sandbox.secret })).allowed, true);
    t.ok(await waitFor(async () => b.invalidator.healthy), 'b subscribed (it trusts Redis only then)');
    t.equal((await b.authenticate({ key: live.secret })).allowed, true, 'b: answered from Redis');

    const m = await scrape(a.url);
    t.equal(metric(m, DECISIONS, { outcome: 'allowed', environment: 'live' }), 3, '3 allowed live');
    t.equal(metric(m, DECISIONS, { outcome: 'allowed', environment: 'test' }), 1, '1 allowed test');
    t.equal(
      metric(m, DECISIONS, { outcome: 'denied', reason: 'SCOPE_NOT_GRANTED', environment: 'live' }),
      2,
      '2 SCOPE_NOT_GRANTED',
    );
    t.equal(metric(m, DECISIONS, { outcome: 'denied', reason: 'KEY_MALFORMED' }), 1, '1 KEY_MALFORMED');
    t.equal(metric(m, DECISIONS), 7, 'nothing else counted');
    // live: storage once then memory 4 times; sandbox: storage once; the malformed key: parse.
    t.same(
      ['parse', 'memory', 'redis', 'storage'].map((path) => metric(m, LATENCY, { path })),
      [1, 4, 0, 2],
      'histogram counts by path',
    );
    t.same(
      ['memory', 'redis', 'storage'].map((tier) => metric(m, TIERS, { tier })),
      [4, 0, 2],
      'cache lookups by tier',
    );
    t.ok(
      metric(m, 'otesse_keys_authenticate_seconds_bucket', { path: 'memory', le: '0.025' }) >= 1,
      'memory answers land in fast buckets',
    );
    const mb = await scrape(b.url);
    t.equal(metric(mb, LATENCY, { path: 'redis' }), 1, 'b: one answer by the redis path');
    t.equal(metric(mb, TIERS, { tier: 'redis' }), 1, 'b: one redis hit');
    t.equal(metric(mb, 'otesse_keys_argon2_verifications'), 0, 'b: no argon2 verification');
    t.equal(metric(m, 'otesse_keys_argon2_verifications'), 2, 'a: one verification per key');

    const create = { route: '/v1/accounts/:accountId/keys', method: 'POST' };
    t.equal(metric(m, HTTP, { ...create, status: '201' }), 2, 'two creates answered 201');
    t.equal(metric(m, HTTP, { ...create, status: '400' }), 1, 'one create answered 400');
    t.equal(
      metric(m, HTTP, { route: 'unmatched', status: '404' }),
      3,
      'unknown paths share one "unmatched" route label',
    );
    t.notOk(
      m.some((s) => s.labels['route']?.includes('wp-login')),
      'no label per unknown path',
    );
    t.ok(has(m, 'otesse_keys_argon2_queue_depth'), 'argon2 queue depth exported');

    t.equal(metric(mb, `${LAG}_count`), 0, 'no invalidation seen by b yet');
    t.equal((await a.api('POST', `/v1/accounts/acct_1/keys/${live.id}/revoke`, {})).status, 200);
    const after = await scrape(b.url);
    t.equal(metric(after, `${LAG}_count`), 1, 'b observed the lag of the revoke');
    const lag = metric(after, `${LAG}_sum`);
    t.ok(lag >= 0 && lag < 1, `invalidation lag ${(lag * 1000).toFixed(1)} ms`);
    t.equal(metric(after, 'otesse_keys_invalidation_subscribed'), 1, 'b is subscribed');
  },
);

t.test('argon2 queue depth shows verifications waiting', async (t) => {
  // One verification at a time, each slow enough to see the queue.
  const app = await startTestApp(t, { ARGON2_MAX_CONCURRENCY: '1', ARGON2_MEMORY_KIB: '32768', ARGON2_TIME_COST: '3' });
  const keys = [];
  for (let i = 0; i < 6; i++) keys.push(await createKey(app));
  const calls = Promise.all(keys.map((k) => app.authenticate({ key: k.secret })));
  let deepest = 0;
  let settled = false;
  void calls.finally(() => {
    settled = true;
  });
  while (!settled) {
    deepest = Math.max(deepest, metric(await scrape(app.url), 'otesse_keys_argon2_queue_depth'));
    await new Promise((r) => setTimeout(r, 5));
  }
  t.ok(
    (await calls).every((r) => r.allowed),
    'every cold key verified',
  );
  t.ok(deepest >= 2, `queue depth seen at ${deepest} while 6 cold keys waited for 1 slot`);
  t.equal(metric(await scrape(app.url), 'otesse_keys_argon2_queue_depth'), 0, 'and back to 0');
});

t.test('event-loop lag is exported and shows a stall', async (t) => {
  const app = await startTestApp(t);
  const before = await scrape(app.url);
  for (const name of [
    'nodejs_eventloop_lag_seconds',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_eventloop_lag_max_seconds',
  ]) {
    t.ok(has(before, name), `${name} exported`);
  }
  // Block the event loop for 300 ms from a timer callback, as a slow synchronous handler would.
  await new Promise<void>((r) =>
    setTimeout(() => {
      const until = Date.now() + 300;
      while (Date.now() < until);
      r();
    }, 30),
  );
  await new Promise((r) => setTimeout(r, 100));
  const max = metric(await scrape(app.url), 'nodejs_eventloop_lag_max_seconds');
  t.ok(max >= 0.2, `a 300 ms stall shows as max lag ${max.toFixed(3)} s`);
});
