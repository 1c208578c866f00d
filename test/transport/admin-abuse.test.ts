// Admin API abuse levers: rate limits per token and per source address (429 problem+json with
// Retry-After), TRUST_PROXY for the audit source address, and edits that may not revive or widen.
import t from 'tap';
import { ADMIN_TOKEN, createKey, startTestApp } from '../helpers/app.js';
import { assertProblem, rawRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/replica.js';

t.test('rate limits: per token and per source address, 429 with Retry-After, shared by replicas through Redis', async (t) => {
  const app = await startTestApp(t, { ADMIN_RATE_LIMIT_PER_TOKEN: '5', ADMIN_RATE_LIMIT_PER_ADDRESS: '8' });
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await app.api('GET', '/v1/accounts/acct_rl/keys')).status);
  t.same(statuses, [200, 200, 200, 200, 200, 429], 'the token gets 5 a minute');
  const limited = await rawRequest(app, 'GET', '/v1/accounts/acct_rl/keys', undefined, {});
  assertProblem(t, limited, 429);
  t.ok(Number(limited.headers.get('retry-after')) > 0, `Retry-After: ${limited.headers.get('retry-after')} s`);
  // Another replica on the same Redis prefix sees the same budget.
  const twin = await startTestApp(t, {}, { ...app.env });
  // Its Redis connection must be up (a store fault lets requests through: skipOnError).
  t.ok(await waitFor(() => twin.invalidator.healthy, 10_000), 'the other replica is connected');
  t.equal((await twin.api('GET', '/v1/accounts/acct_rl/keys')).status, 429, 'the other replica refuses the same token too');
  // Wrong tokens from this address run into the per-address limit.
  const wrong: number[] = [];
  for (let i = 0; i < 4; i++) wrong.push((await rawRequest(app, 'GET', '/v1/accounts/acct_rl/keys', undefined, {}, `wrong-token-${i}-0123456789abcdef`)).status);
  t.ok(wrong.includes(429), `guessing tokens from one address is limited: ${wrong.join(',')}`);
  t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'health and metrics are not limited');
});

t.test('TRUST_PROXY: X-Forwarded-For is believed only from the listed proxies', async (t) => {
  const trusting = await startTestApp(t, { TRUST_PROXY: '127.0.0.1/32' });
  const distrusting = await startTestApp(t);
  for (const [app, expected] of [[trusting, '198.51.100.23'], [distrusting, '127.0.0.1']] as const) {
    const res = await rawRequest(app, 'POST', '/v1/accounts/acct_px/keys', JSON.stringify({ label: 'px', scopes: ['bookings:read'], environment: 'live' }),
      { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.23' }, ADMIN_TOKEN);
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
  const revive = await app.api('PATCH', `/v1/accounts/acct_ed/keys/${expiring.id}`, { expires_at: new Date(Date.now() + 86_400_000).toISOString() });
  assertProblem(t, revive, 409);
  t.equal((await app.api('GET', `/v1/accounts/acct_ed/keys/${expiring.id}`)).body.status, 'expired', 'still expired');

  const old = await createKey(app, 'acct_ed', { scopes: ['bookings:read'], allowed_ips: ['10.0.0.0/8'] });
  t.equal((await app.api('POST', `/v1/accounts/acct_ed/keys/${old.id}/rotate`, {})).status, 201);
  assertProblem(t, await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { scopes: ['bookings:read', 'bookings:write'] }), 409);
  assertProblem(t, await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { allowed_ips: [] }), 409);
  assertProblem(t, await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { allowed_ips: ['0.0.0.0/0'] }), 409);
  const narrowed = await app.api('PATCH', `/v1/accounts/acct_ed/keys/${old.id}`, { allowed_ips: ['10.1.0.0/16'] });
  t.equal(narrowed.status, 200, 'narrowing a rotated-out key is fine');
  t.same(narrowed.body.allowed_ips, ['10.1.0.0/16']);
  t.same(narrowed.body.scopes, ['bookings:read'], 'scopes unchanged');
});
