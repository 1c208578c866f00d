// Envoy Check against a client that tries to choose what it is checked against: a request target
// that the route map would read as another route, or an X-Forwarded-For naming an allowed address
// (design: client-cannot-choose).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';
import { checkRequest, envoyClient, headerMap } from '../helpers/envoy.js';
import { NON_CANONICAL } from '../helpers/gateway-targets.js';

function routesFile(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'routes.yaml'),
    `routes:
  - { method: GET, path: /v1/bookings/:id, scope: "bookings:read" }
  - { method: ANY, path: /v1/webhooks/*, scope: "webhooks:manage" }
`,
  );
  return join(dir, 'routes.yaml');
}

t.test('Check refuses a request target not in its one canonical form: denied, HTTP 400', async (t) => {
  const app = await startTestApp(t, { FORWARD_AUTH_ROUTES: routesFile(t) });
  const check = envoyClient(t, app.grpcPort);
  const key = await createKey(app, 'acct_1', { scopes: ['webhooks:manage', 'bookings:read'] });
  const headers = { 'x-api-key': key.secret };
  t.equal(
    (await check(checkRequest(headers, { method: 'POST', path: '/v1/webhooks/w_1' }))).status.code,
    0,
    'the canonical target: allowed',
  );
  t.equal(
    (await check(checkRequest(headers, { path: '/v1/bookings/b_1?next=..%2F' }))).status.code,
    0,
    'the query string is not the path',
  );

  const targets: Array<[string, string, string]> = [...NON_CANONICAL, ['raw NUL', 'GET', '/v1/bookings/b\u00001']];
  for (const [what, method, path] of targets) {
    for (const scope of [undefined, 'webhooks:manage']) {
      const res = await check(checkRequest(headers, { method, path, ...(scope ? { scope } : {}) }));
      const label = `${what} (${JSON.stringify(path)}), scope from ${scope ? 'context_extensions' : 'the route map'}`;
      t.equal(res.status.code, 7, `${label}: denied`);
      t.equal(res.denied_response?.status.code, 'BadRequest', `${label}: HTTP 400 for the client`);
      t.equal(
        headerMap(res.denied_response?.headers ?? [])['x-otesse-deny-reason'],
        'TARGET_NOT_CANONICAL',
        `${label}: reason`,
      );
      t.match(
        JSON.parse(res.denied_response?.body ?? '{}'),
        { status: 400, type: /\/target-not-canonical$/ },
        `${label}: problem+json body`,
      );
    }
  }
});

t.test('Check believes x-forwarded-for only from a peer in TRUST_PROXY, rightmost untrusted hop first', async (t) => {
  const app = await startTestApp(t, { TRUST_PROXY: '10.0.0.0/8' });
  const check = envoyClient(t, app.grpcPort);
  const key = await createKey(app, 'acct_1', { scopes: ['bookings:read'], allowed_ips: ['198.51.100.0/24'] });
  const ask = (ip: string, xff: string) =>
    check(checkRequest({ 'x-api-key': key.secret, 'x-forwarded-for': xff }, { scope: 'bookings:read', ip }));
  const cases: Array<[string, string, string, number]> = [
    ['behind a trusted load balancer', '10.1.2.3', '198.51.100.9', 0],
    ['through two trusted hops', '10.1.2.3', '198.51.100.9, 10.0.0.5', 0],
    ['a client that prepends an allowed address', '10.1.2.3', '198.51.100.9, 203.0.113.50', 7],
    ['an untrusted peer: its header is ignored', '203.0.113.7', '198.51.100.9', 7],
  ];
  for (const [what, ip, xff, code] of cases)
    t.equal((await ask(ip, xff)).status.code, code, `${what}: ${code === 0 ? 'allowed' : 'denied'}`);
  const deny = await ask('10.1.2.3', '198.51.100.9, 203.0.113.50');
  t.equal(
    headerMap(deny.denied_response?.headers ?? [])['x-otesse-deny-reason'],
    'IP_NOT_ALLOWED',
    'the address the allowlist saw is the client',
  );

  const plain = await startTestApp(t, {});
  const direct = envoyClient(t, plain.grpcPort);
  const other = await createKey(plain, 'acct_1', { scopes: ['bookings:read'], allowed_ips: ['198.51.100.0/24'] });
  const res = await direct(
    checkRequest(
      { 'x-api-key': other.secret, 'x-forwarded-for': '198.51.100.9' },
      { scope: 'bookings:read', ip: '10.1.2.3' },
    ),
  );
  t.equal(res.status.code, 7, 'no TRUST_PROXY: x-forwarded-for is never believed');
});
