// Admin API abuse levers: rate limits per token and per source address (429 problem+json with
// Retry-After), TRUST_PROXY for the audit source address, and edits that may not revive or widen.
import t from 'tap';
import { ADMIN_TOKEN, LIMITED_TOKEN, createKey, startTestApp } from '../helpers/app.js';
import { REDIS_URL } from '../helpers/db.js';
import { assertProblem, rawRequest } from '../helpers/http.js';
import { startProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/replica.js';

t.test(
  'rate limits: per token and per source address, 429 with Retry-After, shared by replicas through Redis',
  async (t) => {
    const app = await startTestApp(t, { ADMIN_RATE_LIMIT_PER_TOKEN: '5', ADMIN_RATE_LIMIT_PER_ADDRESS: '8' });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await app.api('GET', '/v1/accounts/acct_rl/keys')).status);
    t.same(statuses, [200, 200, 200, 200, 200, 429], 'the token gets 5 a minute');
    const limited = await rawRequest(app, 'GET', '/v1/accounts/acct_rl/keys', undefined, {});
    assertProblem(t, limited, 429);
    t.ok(Number(limited.headers.get('retry-after')) > 0, `Retry-After: ${limited.headers.get('retry-after')} s`);
    // Another replica on the same Redis prefix sees the same budget.
    const twin = await startTestApp(t, {}, { ...app.env });
    // Its Redis connection must be up: it counts this token's requests only in Redis, not in its own memory.
    t.ok(await waitFor(() => twin.invalidator.healthy, 10_000), 'the other replica is connected');
    t.equal(
      (await twin.api('GET', '/v1/accounts/acct_rl/keys')).status,
      429,
      'the other replica refuses the same token too',
    );
    // Wrong tokens from this address run into the per-address limit.
    const wrong: number[] = [];
    for (let i = 0; i < 4; i++)
      wrong.push(
        (await rawRequest(app, 'GET', '/v1/accounts/acct_rl/keys', undefined, {}, `wrong-token-${i}-0123456789abcdef`))
          .status,
      );
    t.ok(wrong.includes(429), `guessing tokens from one address is limited: ${wrong.join(',')}`);
    t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'health and metrics are not limited');
  },
);

t.test(
  'rate limits: with Redis cut, each replica still holds every limit on its own, and counts the faults',
  async (t) => {
    const proxy = await startProxy(t, Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname);
    const app = await startTestApp(t, {
      REDIS_URL: proxy.url('redis'),
      ADMIN_RATE_LIMIT_PER_TOKEN: '5',
      ADMIN_RATE_LIMIT_PER_ADDRESS: '8',
    });
    t.ok(await waitFor(() => app.invalidator.healthy, 10_000), 'connected through the proxy');
    proxy.cut();
    t.ok(await waitFor(() => !app.invalidator.healthy, 10_000), 'the cut is seen');
    const faults = async () => {
      const text = await (await fetch(`${app.url}/metrics`)).text();
      return Number(/^otesse_keys_rate_budget_faults_total\{limits="admin"\} (\d+)/m.exec(text)?.[1]);
    };
    const before = await faults();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await app.api('GET', '/v1/accounts/acct_rlcut/keys')).status);
    t.same(statuses, [200, 200, 200, 200, 200, 429], 'the token still gets 5 a minute from this replica');
    const counted = (await faults()) - before;
    t.ok(counted >= 5, `every count Redis did not answer is a fault: ${counted}`);
    const limited = await rawRequest(app, 'GET', '/v1/accounts/acct_rlcut/keys', undefined, {});
    assertProblem(t, limited, 429);
  },
);

t.test('TRUST_PROXY: X-Forwarded-For is believed only from the listed proxies', async (t) => {
  const trusting = await startTestApp(t, { TRUST_PROXY: '127.0.0.1/32' });
  const distrusting = await startTestApp(t);
  for (const [app, expected] of [
    [trusting, '198.51.100.23'],
    [distrusting, '127.0.0.1'],
  ] as const) {
    const res = await rawRequest(
      app,
      'POST',
      '/v1/accounts/acct_px/keys',
      JSON.stringify({ label: 'px', scopes: ['bookings:read'], environment: 'live' }),
      { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.23' },
      ADMIN_TOKEN,
    );
    t.equal(res.status, 201);
    const audit = await app.api('GET', '/v1/accounts/acct_px/audit-log');
    t.equal(audit.body.data[0].source_ip, expected, `audit source ${expected}`);
  }
});

t.test('edits: an expired key is not revived, a rotated-out key is not widened (409, nothing changed)', async (t) => {
  const app = await startTestApp(t);
  const soon = new Date(Date.now() + 1500).toISOString();
  const expiring = await createKey(app, 'acct_ed', { expires_at: soon });
  await new Promise((r) => setTimeout(r, 1700));
  const revive = await app.api('PATCH', `/v1/accounts/acct_ed/keys/${expiring.id}`, {
    expires_at: new Date(Date.now() + 86_400_000).toISOString(),
  });
  assertProblem(t, revive, 409);
  t.equal((await app.api('GET', `/v1/accounts/acct_ed/keys/${expiring.id}`)).body.status, 'expired', 'still expired');

  const old = await createKey(app, 'acct_ed', { scopes: ['bookings:read'], allowed_ips: ['10.0.0.0/8'] });
  t.equal((await app.api('POST', `/v1/accounts/acct_ed/keys/${old.id}/rotate`, {})).status, 201);
  assertProblem(
    t,
    await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { scopes: ['bookings:read', 'bookings:write'] }),
    409,
  );
  assertProblem(t, await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { allowed_ips: [] }), 409);
  assertProblem(t, await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { allowed_ips: ['0.0.0.0/0'] }), 409);
  const narrowed = await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { allowed_ips: ['10.1.0.0/16'] });
  t.equal(narrowed.status, 200, 'narrowing a rotated-out key is fine');
  t.same(narrowed.body.allowed_ips, ['10.1.0.0/16']);
  t.same(narrowed.body.scopes, ['bookings:read'], 'scopes unchanged');
});

t.test('rate limits follow the matched route: an encoded path and /v1/me are limited like any /v1 route', async (t) => {
  const app = await startTestApp(t, { ADMIN_RATE_LIMIT_PER_TOKEN: '3', ADMIN_RATE_LIMIT_PER_ADDRESS: '1000' });
  const encoded: number[] = [];
  for (let i = 0; i < 5; i++) encoded.push((await app.api('GET', '/v1/%61ccounts/acct_enc/keys')).status);
  t.same(encoded, [200, 200, 200, 429, 429], 'the router decodes /v1/%61ccounts/...: so does the limit');
  t.equal(
    (await app.api('GET', '/v1/accounts/acct_enc/keys')).status,
    429,
    'one budget whatever the spelling of the path',
  );
  const me: number[] = [];
  const other = `other-token-${'x'.repeat(20)}`;
  for (let i = 0; i < 5; i++) me.push((await app.api('GET', '/v1/me', undefined, other)).status);
  t.same(me, [401, 401, 401, 429, 429], '/v1/me is no free oracle for guessing tokens');
});

t.test(
  'refused requests are limited per source address; callers without a token do not share one budget',
  async (t) => {
    const app = await startTestApp(t, {
      ADMIN_RATE_LIMIT_PER_TOKEN: '1000',
      ADMIN_RATE_LIMIT_PER_ADDRESS: '4',
      TRUST_PROXY: '127.0.0.1/32',
    });
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const guesses: number[] = [];
    for (let i = 0; i < 6; i++)
      guesses.push(
        (await rawRequest(app, 'GET', '/v1/me', undefined, from('198.51.100.7'), `guess-${i}-0123456789abcdef`)).status,
      );
    t.same(guesses, [401, 401, 401, 401, 429, 429], 'a new wrong token each time still runs into the address limit');
    const v6: number[] = [];
    for (let i = 1; i <= 5; i++)
      v6.push(
        (await rawRequest(app, 'GET', '/v1/me', undefined, from(`2001:db8:5:6::${i}`), `guess6-${i}-0123456789abcdef`))
          .status,
      );
    t.same(v6, [401, 401, 401, 401, 429], 'a fresh address in the same IPv6 /64 is the same budget');
    const bare: number[] = [];
    for (let i = 0; i < 5; i++)
      bare.push((await rawRequest(app, 'GET', '/v1/scopes', undefined, from('198.51.100.8'), null)).status);
    t.same(bare, [200, 200, 200, 200, 429], 'no token: limited by address');
    t.equal(
      (await rawRequest(app, 'GET', '/v1/scopes', undefined, from('198.51.100.9'), null)).status,
      200,
      'another address without a token is not refused for the first one',
    );
  },
);

t.test(
  'refused attempts are folded: one audit entry per account, reason and address per 10 minutes, with a count',
  async (t) => {
    const app = await startTestApp(t, { TRUST_PROXY: '127.0.0.1/32' });
    const victim = 'acct_victim';
    await createKey(app, victim);
    const wrong = (i: number) => `wrong-${i}-0123456789abcdef`;
    // In parallel: concurrent refusals for one window must add up in one entry, never make two.
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        rawRequest(
          app,
          i % 2 ? 'GET' : 'POST',
          `/v1/accounts/${victim}/keys`,
          i % 2 ? undefined : '{}',
          { 'content-type': 'application/json' },
          wrong(i),
        ),
      ),
    );
    for (let i = 0; i < 3; i++) await app.api('POST', `/v1/accounts/${victim}/keys/revoke-all`, {}, LIMITED_TOKEN);
    await rawRequest(
      app,
      'GET',
      `/v1/accounts/${victim}/keys`,
      undefined,
      { 'x-forwarded-for': '198.51.100.50' },
      wrong(99),
    );
    type Entry = {
      action: string;
      actor: string;
      source_ip: string;
      count: number;
      last_at: string;
      at: string;
      changes: Record<string, unknown>;
    };
    const refusals = async () =>
      ((await app.api('GET', `/v1/accounts/${victim}/audit-log?limit=100`)).body.data as Entry[]).filter((e) =>
        e.action.startsWith('admin.'),
      );
    t.ok(
      await waitFor(async () => (await refusals()).reduce((n, e) => n + e.count, 0) === 64, 10_000, 100),
      'every refusal is counted',
    );
    const entries = await refusals();
    const summary = entries.map((e) => [e.action, e.actor, e.source_ip, e.count]).sort();
    t.same(
      summary,
      [
        ['admin.forbidden', 'limited', '127.0.0.1', 3],
        ['admin.unauthenticated', 'unauthenticated', '127.0.0.1', 60],
        ['admin.unauthenticated', 'unauthenticated', '198.51.100.50', 1],
      ],
      '64 refusals, 3 entries',
    );
    const flood = entries.find((e) => e.count === 60);
    t.ok(flood && Date.parse(flood.last_at) >= Date.parse(flood.at), 'first and last time of the window');
    t.notOk(JSON.stringify(entries).includes('wrong-'), 'never the presented token');
    const normal = ((await app.api('GET', `/v1/accounts/${victim}/audit-log?limit=100`)).body.data as Entry[]).find(
      (e) => e.action === 'key.created',
    );
    t.equal(normal?.count, 1, 'an ordinary entry counts 1');
  },
);
