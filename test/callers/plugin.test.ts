// The Fastify plugin as a service author meets it, through the example bookings API in front of
// a real key service: the customer documentation's two header forms, and every deny mapped.
import net from 'node:net';
import t from 'tap';
import { DENIALS } from '@otesse/keys-client';
import { createKey, startTestApp } from '../helpers/app.js';
import { assertProblem } from '../helpers/http.js';
import { startBookings } from '../helpers/callers.js';
import { forgeKey, partsOf, randomBase62, wrongSecret } from '../helpers/keys.js';
import { leaksIn } from '../helpers/secrets.js';

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

t.test('a route with config.scope: the two documented headers, the identity, and each deny', async (t) => {
  const svc = await startTestApp(t, { FAILED_ATTEMPTS_LIMIT: '2' });
  const api = await startBookings(t, `127.0.0.1:${svc.grpcPort}`);
  const reader = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
  const writer = await createKey(svc, 'acct_1', { scopes: ['bookings:read', 'bookings:write'] });

  for (const headers of [{ authorization: `Bearer ${reader.secret}` }, { 'x-api-key': reader.secret }] as Record<
    string,
    string
  >[]) {
    const res = await api.get('/v1/bookings', headers);
    t.equal(res.status, 200, `${Object.keys(headers)[0]}: 200`);
    t.equal(res.body.account_id, 'acct_1', 'request.apiKey carries the account');
    t.ok(res.body.data.length >= 3, 'sample bookings');
  }
  const same = await api.get('/v1/bookings', { authorization: `Bearer ${reader.secret}`, 'x-api-key': reader.secret });
  t.equal(same.status, 200, 'both headers with the same key: fine');
  const conflict = await api.get('/v1/bookings', {
    authorization: `Bearer ${reader.secret}`,
    'x-api-key': writer.secret,
  });
  assertProblem(t, conflict, 400);

  const post = (key: string) =>
    api.get(
      '/v1/bookings',
      { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      {
        method: 'POST',
        body: JSON.stringify({ customer_id: 'cus_201', service: 'Oven clean', starts_at: '2026-12-09T08:00:00Z' }),
      },
    );
  const created = await post(writer.secret);
  t.same([created.status, created.body.status], [201, 'pending'], 'bookings:write may POST');
  assertProblem(t, await post(reader.secret), 403);

  const missing = await api.get('/v1/bookings');
  assertProblem(t, missing, 401);
  t.equal(missing.headers.get('www-authenticate'), 'Bearer realm="otesse"', 'challenge without an error for no key');
  const basic = await api.get('/v1/bookings', { authorization: 'Basic dXNlcjpwYXNz' });
  assertProblem(t, basic, 401);

  const revoked = await createKey(svc, 'acct_1');
  t.equal((await svc.api('POST', `/v1/accounts/acct_1/keys/${revoked.id}/revoke`, {})).status, 200);
  const rotated = await createKey(svc, 'acct_1');
  t.equal(
    (await svc.api('POST', `/v1/accounts/acct_1/keys/${rotated.id}/rotate`, { expire_previous_in: 0 })).status,
    201,
  );
  const narrow = await createKey(svc, 'acct_1', { allowed_ips: ['10.0.0.0/8'] });
  const unknown = forgeKey('live', randomBase62(partsOf(reader.secret).publicId.length), partsOf(reader.secret).secret);
  const cases: [string, Record<string, string>, string, number][] = [
    ['malformed', { authorization: 'Bearer otesse_live_sk_nope' }, '/v1/bookings', 401],
    ['unknown', { 'x-api-key': unknown }, '/v1/bookings', 401],
    ['revoked', { authorization: `Bearer ${revoked.secret}` }, '/v1/bookings', 401],
    ['expired', { authorization: `Bearer ${rotated.secret}` }, '/v1/bookings', 401],
    ['scope not granted', { authorization: `Bearer ${reader.secret}` }, '/v1/invoices', 403],
    ['address not allowed', { 'x-api-key': narrow.secret }, '/v1/bookings', 403],
  ];
  for (const [what, headers, path, status] of cases) {
    const res = await api.get(path, headers);
    t.equal(res.status, status, `${what}: ${status}`);
    assertProblem(t, res, status);
    t.equal(res.headers.get('www-authenticate') !== null, status === 401, `${what}: WWW-Authenticate only on 401`);
    if (status === 401) t.match(res.headers.get('www-authenticate'), /^Bearer /);
  }
  const revokedBody = (await api.get('/v1/bookings', { authorization: `Bearer ${revoked.secret}` })).body;
  t.equal(
    revokedBody.type,
    `https://docs.otesse.com/problems/${DENIALS.KEY_REVOKED.slug}`,
    'the problem type names the reason',
  );

  // Wrong secrets for one key id from one address: the service refuses further tries (429).
  const guesses = [];
  for (let i = 0; i < 4; i++)
    guesses.push((await api.get('/v1/bookings', { authorization: `Bearer ${wrongSecret(reader.secret)}` })).status);
  t.same(guesses.slice(0, 2), [401, 401], 'wrong secrets: 401');
  t.equal(guesses[3], 429, 'then TOO_MANY_FAILURES: 429');

  const logs = api.logs.join('');
  t.match(logs, /"authorization":"\[Redacted\]"/, 'the authorization header is logged redacted');
  t.match(logs, /"x-api-key":"\[Redacted\]"/, 'the x-api-key header is logged redacted');
  t.same(
    leaksIn(logs, [reader.secret, writer.secret, revoked.secret, narrow.secret]),
    [],
    'no key in the bookings API log',
  );
});

t.test('the key service unreachable: 503, never an allow', async (t) => {
  const api = await startBookings(t, `127.0.0.1:${await closedPort()}`, { deadlineMs: 250 });
  const started = Date.now();
  const res = await api.get('/v1/bookings', {
    authorization: `Bearer ${forgeKey('live', randomBase62(12), randomBase62(32))}`,
  });
  assertProblem(t, res, 503);
  t.equal(res.headers.get('retry-after'), '1', 'Retry-After');
  t.ok(Date.now() - started < 1500, `answered within the deadline plus slack (${Date.now() - started} ms)`);
  t.equal((await api.get('/healthz')).status, 200, 'routes without config.scope are not checked');
});

t.test('behind a trusted proxy the client address is X-Forwarded-For (Fastify trustProxy)', async (t) => {
  const svc = await startTestApp(t);
  const api = await startBookings(t, `127.0.0.1:${svc.grpcPort}`, { trustProxy: ['127.0.0.1'] });
  const key = await createKey(svc, 'acct_1', { allowed_ips: ['198.51.100.0/24'] });
  const from = (ip: string) => api.get('/v1/bookings', { 'x-api-key': key.secret, 'x-forwarded-for': ip });
  t.equal((await from('198.51.100.9')).status, 200, 'an allowed client address');
  t.equal((await from('203.0.113.9')).status, 403, 'another address');
});
