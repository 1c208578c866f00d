// One call for several requests: the `uses` field of Authenticate (each use counted: usage, rate
// limits, quota) and the client's coalescing: one call in flight per key, address, scope and
// deadline, the requests made meanwhile asked together by the next one (each decided after it arrived).
// Local decisions are off here: every request goes to the service (test/callers/local-decisions.test.ts
// covers the other way).
import t from 'tap';
import { KeyServiceUnavailableError } from '@otesse/keys-client';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { keysClient } from '../helpers/callers.js';
import { query } from '../helpers/db.js';
import { metric, scrape } from '../helpers/ops/prom.js';
import { startProxy } from '../helpers/proxy.js';

/** Authenticate calls this replica has answered, all outcomes. */
const calls = async (app: TestApp) => metric(await scrape(app.url), 'otesse_keys_authenticate_total');

async function totals(app: TestApp, id: string): Promise<{ allowed: number; denied: Record<string, number> }> {
  await app.usage.flush();
  return (await app.api('GET', `/v1/accounts/acct_1/keys/${id}/activity`)).body.totals;
}

t.test('uses: one call decides several requests, each counted', async (t) => {
  const app = await startTestApp(t);
  const plain = await createKey(app);
  const seven = await app.authenticate({ key: plain.secret, uses: 7 });
  t.match(seven, { allowed: true, allowed_uses: 7, reason: 'DENY_REASON_UNSPECIFIED' }, 'no limits: all 7 allowed');
  const one = await app.authenticate({ key: plain.secret });
  t.match(one, { allowed: true, allowed_uses: 1 }, 'uses unset: one');
  const wrongScope = await app.authenticate({ key: plain.secret, scope: 'invoices:read', uses: 4 });
  t.match(wrongScope, { allowed: false, allowed_uses: 0, reason: 'SCOPE_NOT_GRANTED' }, 'a deny denies every use');
  t.match(
    await totals(app, plain.id),
    { allowed: 8, denied: { SCOPE_NOT_GRANTED: 4 } },
    'the activity counts each use',
  );

  const limited = await createKey(app, 'acct_1', {
    rate_limits: [{ name: 'per_minute', limit: 10, window_seconds: 60 }],
  });
  const partial = await app.authenticate({ key: limited.secret, uses: 25 });
  t.match(
    partial,
    { allowed: true, allowed_uses: 10, reason: 'RATE_LIMITED' },
    'a rate limit of 10: the first 10 of 25 allowed',
  );
  t.ok(
    Number(partial.retry_after_ms) > 0 && Number(partial.retry_after_ms) <= 60_000,
    'with the time until the window ends',
  );
  t.match(
    await app.authenticate({ key: limited.secret, uses: 3 }),
    { allowed: false, allowed_uses: 0, reason: 'RATE_LIMITED' },
    'then none',
  );
  t.match(await totals(app, limited.id), { allowed: 10, denied: { RATE_LIMITED: 18 } });

  const quota = await createKey(app, 'acct_1', { remaining_uses: 30 });
  t.match(await app.authenticate({ key: quota.secret, uses: 20 }), { allowed: true, allowed_uses: 20 });
  t.match(
    await app.authenticate({ key: quota.secret, uses: 20 }),
    { allowed: true, allowed_uses: 10, reason: 'USAGE_EXCEEDED' },
    'a quota of 30: 20, then 10 of 20',
  );
  const [row] = await query(app.env.DATABASE_URL as string, 'SELECT remaining_uses FROM api_keys WHERE id = $1', [
    quota.id,
  ]);
  t.equal(Number(row?.remaining_uses), 0, 'the balance is spent exactly');

  const malformed = await app.authenticate({ key: 'otesse_live_sk_nope', uses: 5 });
  t.match(malformed, { allowed: false, allowed_uses: 0, reason: 'KEY_MALFORMED' });
  for (const uses of [1001, 4_000_000_000]) {
    const err = await app.authenticate({ key: plain.secret, uses }).catch((e: { code: number; details: string }) => e);
    t.match(err, { code: 3, details: /uses/ }, `uses ${uses}: INVALID_ARGUMENT`);
  }
  t.match(await totals(app, plain.id), { allowed: 8 }, 'refused calls counted nothing');
});

t.test('the client asks once for the requests made together', async (t) => {
  const app = await startTestApp(t);
  const client = keysClient(t, { address: `127.0.0.1:${app.grpcPort}`, deadlineMs: 5000, localDecisions: false });
  await client.waitForReady();
  const key = await createKey(app);
  const input = { key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' };
  await client.authenticate(input); // cached in the key service
  const before = await calls(app);
  const burst = await Promise.all(Array.from({ length: 64 }, () => client.authenticate(input)));
  t.equal(burst.filter((r) => r.allowed).length, 64, '64 requests at once: all allowed');
  const asked = (await calls(app)) - before;
  t.equal(asked, 1, 'in one call');
  t.match(await totals(app, key.id), { allowed: 65 }, 'and each request counted');
  t.not(burst[0], burst[1], 'each request gets its own result');
  t.not(
    (burst[0] as { identity: { scopes: string[] } }).identity.scopes,
    (burst[1] as { identity: { scopes: string[] } }).identity.scopes,
  );

  const beforeMany = await calls(app);
  const many = await Promise.all(Array.from({ length: 1001 }, () => client.authenticate(input)));
  t.equal(many.filter((r) => r.allowed).length, 1001, '1,001 requests at once: all allowed');
  t.equal((await calls(app)) - beforeMany, 2, 'in two calls: a call decides at most 1,000');
  t.match(await totals(app, key.id), { allowed: 1066 }, 'each counted');

  const mixed = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      client.authenticate({ ...input, scope: i % 2 ? 'invoices:read' : 'bookings:read' }),
    ),
  );
  t.same(
    mixed.map((r) => r.allowed),
    Array.from({ length: 20 }, (_, i) => i % 2 === 0),
    'requests for another scope are asked apart',
  );
  const elsewhere = await Promise.all(
    Array.from({ length: 10 }, (_, i) => client.authenticate({ ...input, ip: i % 2 ? '198.51.100.1' : '203.0.113.7' })),
  );
  t.equal(elsewhere.filter((r) => r.allowed).length, 10, 'and for another address');

  const limited = await createKey(app, 'acct_1', {
    rate_limits: [{ name: 'per_minute', limit: 10, window_seconds: 60 }],
  });
  const over = await Promise.all(
    Array.from({ length: 40 }, () => client.authenticate({ ...input, key: limited.secret })),
  );
  t.equal(over.filter((r) => r.allowed).length, 10, 'a rate limit of 10 with 40 requests at once: exactly 10 allowed');
  t.ok(
    over
      .filter((r) => !r.allowed)
      .every(
        (r) =>
          !r.allowed && r.reason === 'RATE_LIMITED' && (r.retryAfterMs ?? 0) > 0 && r.identity?.keyId === limited.id,
      ),
    'the other 30: RATE_LIMITED, with the wait and the identity',
  );
});

t.test('a revoke that has returned holds for every later request, though a call was in flight', async (t) => {
  const app = await startTestApp(t);
  const client = keysClient(t, { address: `127.0.0.1:${app.grpcPort}`, deadlineMs: 5000, localDecisions: false });
  const key = await createKey(app);
  const input = { key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' };
  t.equal((await client.authenticate(input)).allowed, true);
  let running = true;
  let load = 0;
  // 8 loops on the same key: a call for it is nearly always in flight, with requests queued behind it.
  const loops = Array.from({ length: 8 }, async () => {
    while (running) {
      await client.authenticate(input);
      load++;
    }
  });
  await new Promise((r) => setTimeout(r, 200));
  const before = await calls(app);
  const loadBefore = load;
  const revoked = await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, { reason: 'test' });
  t.equal(revoked.status, 200);
  const after = await Promise.all(Array.from({ length: 20 }, () => client.authenticate(input)));
  t.same(
    after.filter((r) => r.allowed || r.reason !== 'KEY_REVOKED'),
    [],
    'every request made after the revoke returned: KEY_REVOKED',
  );
  const asked = (await calls(app)) - before;
  running = false;
  await Promise.all(loops);
  t.ok(load - loadBefore > asked, `the load was coalesced meanwhile (${load - loadBefore} requests in ${asked} calls)`);
});

t.test('a request made while a call is in flight waits for it, and is decided after it arrived', async (t) => {
  const app = await startTestApp(t);
  const proxy = await startProxy(t, app.grpcPort);
  const client = keysClient(t, { address: `127.0.0.1:${proxy.port}`, deadlineMs: 5000, localDecisions: false });
  const key = await createKey(app);
  const input = { key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' };
  t.equal((await client.authenticate(input)).allowed, true);
  proxy.delay(1000); // answers come back a second late; requests reach the service at once
  const before = await calls(app);
  const first = client.authenticate(input);
  await new Promise((r) => setTimeout(r, 50));
  const second = client.authenticate(input);
  const third = client.authenticate(input);
  const revokedAt = Date.now();
  t.equal((await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {})).status, 200);
  t.ok(Date.now() - revokedAt < 900, 'the revoke returned while the first call was in flight');
  t.equal((await calls(app)) - before, 1, 'the second and third requests were not asked yet');
  t.equal((await first).allowed, true, 'the call in flight was decided before the revoke');
  t.match(
    [await second, await third],
    [
      { allowed: false, reason: 'KEY_REVOKED' },
      { allowed: false, reason: 'KEY_REVOKED' },
    ],
    'the requests that waited for it are decided after the revoke',
  );
  t.equal((await calls(app)) - before, 2, 'together, in one call');
});

t.test('deadlines: a request with another deadline is asked apart; past its deadline it fails closed', async (t) => {
  const app = await startTestApp(t);
  const proxy = await startProxy(t, app.grpcPort);
  const client = keysClient(t, { address: `127.0.0.1:${proxy.port}`, deadlineMs: 5000, localDecisions: false });
  await client.waitForReady();
  const key = await createKey(app);
  const input = { key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' };
  t.equal((await client.authenticate(input)).allowed, true);
  proxy.delay(500);
  const first = client.authenticate(input, { deadlineMs: 3000 });
  await new Promise((r) => setTimeout(r, 50));
  // Behind the first call it would be answered after ~1,000 ms, past its deadline: with another deadline, it is asked at once.
  const started = Date.now();
  const short = await client.authenticate(input, { deadlineMs: 900 });
  t.equal(short.allowed, true, `a request with a shorter deadline is answered in time (${Date.now() - started} ms)`);
  t.equal((await first).allowed, true);

  proxy.delay(2000);
  const slow = client.authenticate(input, { deadlineMs: 500 });
  await new Promise((r) => setTimeout(r, 20));
  const queued = [client.authenticate(input, { deadlineMs: 490 }), client.authenticate(input, { deadlineMs: 490 })];
  const patient = client.authenticate(input, { deadlineMs: 4000 });
  const errors = await Promise.all([slow, ...queued].map((p) => p.catch((e: unknown) => e)));
  t.ok(
    errors.every((e) => e instanceof KeyServiceUnavailableError && e.code === 'DEADLINE_EXCEEDED'),
    'past the deadline: unavailable (fail closed)',
  );
  t.equal(
    (await patient).allowed,
    true,
    'a request with a longer deadline, made in the same turn, is asked apart and waits its own time',
  );
});
