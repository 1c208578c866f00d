// Forward auth as a platform team runs it: a real nginx with auth_request in front of the example
// bookings API, asking the key service's FORWARD_AUTH_PORT; the customer docs' two curl forms.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';
import { startBookings } from '../helpers/callers.js';
import { assertProblem } from '../helpers/http.js';
import { startNginx } from '../helpers/nginx.js';
import { metric, scrape } from '../helpers/ops/prom.js';
import { wrongSecret } from '../helpers/keys.js';

const ROUTES = `routes:
  - { method: GET, path: /v1/bookings, scope: "bookings:read" }
  - { method: POST, path: /v1/bookings, scope: "bookings:write" }
  - { method: GET, path: /v1/bookings/:id, scope: "bookings:read" }
  - { method: GET, path: /v1/customers, scope: "customers:read" }
  - { method: GET, path: /v1/invoices, scope: "invoices:read" }
`;

/** The nginx configuration of docs/gateways.md, pointed at test ports. */
const nginxHttp = (bookingsPort: number, authPort: number) => (port: number) => `
  upstream bookings { server 127.0.0.1:${bookingsPort}; keepalive 16; }
  upstream otesse_auth { server 127.0.0.1:${authPort}; keepalive 16; }
  server {
    listen 127.0.0.1:${port};
    location /v1/ {
      auth_request /_otesse_auth;
      auth_request_set $otesse_key_id $upstream_http_x_otesse_key_id;
      auth_request_set $otesse_account_id $upstream_http_x_otesse_account_id;
      auth_request_set $otesse_environment $upstream_http_x_otesse_environment;
      auth_request_set $otesse_auth_status $upstream_status;
      error_page 500 = @otesse_auth_error;
      proxy_set_header X-Otesse-Key-Id $otesse_key_id;
      proxy_set_header X-Otesse-Account-Id $otesse_account_id;
      proxy_set_header X-Otesse-Environment $otesse_environment;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://bookings;
    }
    location = /_otesse_auth {
      internal;
      proxy_pass http://otesse_auth/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Otesse-Scope "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location @otesse_auth_error {
      default_type application/problem+json;
      if ($otesse_auth_status = 400) { return 400 '{"type":"https://docs.otesse.com/problems/bad-request","title":"Bad Request","status":400,"detail":"malformed request"}'; }
      if ($otesse_auth_status = 429) { return 429 '{"type":"https://docs.otesse.com/problems/too-many-requests","title":"Too Many Requests","status":429,"detail":"retry later"}'; }
      if ($otesse_auth_status = 503) { return 503 '{"type":"https://docs.otesse.com/problems/key-service-unavailable","title":"Service Unavailable","status":503,"detail":"retry later"}'; }
      return 500;
    }
  }
`;

/** GET from a chosen local address (to be a client the key service does not trust as a proxy). */
function getFrom(
  localAddress: string,
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, localAddress }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('nginx auth_request in front of the bookings API', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'routes.yaml'), ROUTES);
  const svc = await startTestApp(t, {
    FORWARD_AUTH_PORT: '0',
    FORWARD_AUTH_ROUTES: join(dir, 'routes.yaml'),
    TRUST_PROXY: '127.0.0.1',
    FAILED_ATTEMPTS_LIMIT: '2',
  });
  t.ok(svc.forwardAuthPort && svc.forwardAuthPort !== svc.httpPort, 'forward auth has its own port');
  const api = await startBookings(t, `127.0.0.1:${svc.grpcPort}`);
  const nginx = await startNginx(t, nginxHttp(Number(new URL(api.url).port), svc.forwardAuthPort ?? 0));
  const host = `http://127.0.0.1:${nginx.port}`;
  const key = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
  const revoked = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
  t.equal((await svc.api('POST', `/v1/accounts/acct_1/keys/${revoked.id}/revoke`, {})).status, 200);

  // The customer documentation's two commands, verbatim but for the host.
  const bearer = await fetch(`${host}/v1/bookings`, { headers: { Authorization: `Bearer ${key.secret}` } });
  t.equal(bearer.status, 200, 'curl -H "Authorization: Bearer otesse_live_sk_..." https://host/v1/bookings: 200');
  t.equal(((await bearer.json()) as { account_id: string }).account_id, 'acct_1', 'the bookings API saw the identity');
  const apiKey = await fetch(`${host}/v1/bookings`, { headers: { 'X-API-Key': key.secret } });
  t.equal(apiKey.status, 200, 'curl -H "X-API-Key: otesse_live_sk_..." https://host/v1/bookings: 200');

  const none = await fetch(`${host}/v1/bookings`);
  t.equal(none.status, 401, 'no key: 401 from nginx');
  t.match(none.headers.get('www-authenticate'), /^Bearer /, 'nginx passes the WWW-Authenticate challenge');
  t.match(await none.text(), /nginx/, 'answered by nginx itself (the bookings API never saw it)');
  t.equal(
    (await fetch(`${host}/v1/bookings`, { headers: { Authorization: `Bearer ${revoked.secret}` } })).status,
    401,
    'revoked key: 401',
  );
  t.equal(
    (await fetch(`${host}/v1/invoices`, { headers: { 'X-API-Key': key.secret } })).status,
    403,
    'wrong scope (route map): 403',
  );
  t.equal(
    (await fetch(`${host}/v1/bookings/bk_1001`, { headers: { 'X-API-Key': key.secret } })).status,
    404,
    'a pattern route is mapped (then the API has no such route)',
  );
  t.equal(
    (await fetch(`${host}/v1/services`, { headers: { 'X-API-Key': key.secret } })).status,
    403,
    'a route the map does not name: 403',
  );

  const spoofed = await fetch(`${host}/v1/invoices`, {
    headers: {
      'X-API-Key': key.secret,
      'X-Otesse-Scope': 'bookings:read',
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Uri': '/v1/bookings',
    },
  });
  t.equal(
    spoofed.status,
    400,
    'a client cannot pick its scope: its X-Otesse-Scope is ignored, and X-Forwarded-* that disagree are refused (400, passed on by the recipe)',
  );
  const spoofedScope = await fetch(`${host}/v1/invoices`, {
    headers: { 'X-API-Key': key.secret, 'X-Otesse-Scope': 'bookings:read' },
  });
  t.equal(spoofedScope.status, 403, "the client's own X-Otesse-Scope is not believed");

  const guesses: number[] = [];
  for (let i = 0; i < 4; i++)
    guesses.push((await fetch(`${host}/v1/bookings`, { headers: { 'X-API-Key': wrongSecret(key.secret) } })).status);
  t.same([guesses[0], guesses[3]], [401, 429], 'TOO_MANY_FAILURES: 429 through the documented error_page recipe');

  // The forward auth endpoint itself.
  const direct = `http://127.0.0.1:${svc.forwardAuthPort}`;
  const original = (method: string, uri: string) => ({ 'x-original-method': method, 'x-original-uri': uri });
  const allow = await fetch(`${direct}/authorize`, {
    headers: { 'x-api-key': key.secret, ...original('GET', '/v1/bookings') },
  });
  t.equal(allow.status, 204, 'X-Original-Method/-URI of a mapped route: 204');
  t.same(
    [
      allow.headers.get('x-otesse-key-id'),
      allow.headers.get('x-otesse-account-id'),
      allow.headers.get('x-otesse-environment'),
    ],
    [key.id, 'acct_1', 'live'],
    'identity headers',
  );
  const deny = await fetch(`${direct}/authorize`, {
    headers: { authorization: `Bearer ${key.secret}`, ...original('GET', '/v1/invoices') },
  });
  assertProblem(t, { status: deny.status, headers: deny.headers, body: await deny.json() }, 403);
  const conflict = await fetch(`${direct}/authorize`, {
    headers: {
      'x-api-key': key.secret,
      ...original('GET', '/v1/bookings'),
      'x-forwarded-method': 'GET',
      'x-forwarded-uri': '/v1/invoices',
    },
  });
  assertProblem(t, { status: conflict.status, headers: conflict.headers, body: await conflict.json() }, 400);
  // Envoy's HTTP ext_authz: `<original method> /authorize<original path>`, scope from the route map.
  const envoyHttp = (method: string, path: string) =>
    fetch(`${direct}/authorize${path}`, { method, headers: { 'x-api-key': key.secret } });
  t.equal(
    (await envoyHttp('GET', '/v1/bookings?page=2')).status,
    204,
    'Envoy HTTP mode: GET /v1/bookings is bookings:read',
  );
  t.equal(
    (await envoyHttp('POST', '/v1/bookings')).status,
    403,
    'Envoy HTTP mode: POST /v1/bookings needs bookings:write',
  );
  t.equal(
    (await fetch(`http://127.0.0.1:${svc.httpPort}/authorize`, { headers: { 'x-api-key': key.secret } })).status,
    404,
    'not on the admin port',
  );

  // X-Forwarded-For is believed from TRUST_PROXY only.
  const narrow = await createKey(svc, 'acct_1', { scopes: ['bookings:read'], allowed_ips: ['198.51.100.0/24'] });
  const via = (local: string) =>
    getFrom(local, svc.forwardAuthPort ?? 0, '/authorize', {
      'x-api-key': narrow.secret,
      ...original('GET', '/v1/bookings'),
      'x-forwarded-for': '198.51.100.9',
    });
  t.equal((await via('127.0.0.1')).status, 204, 'from a trusted proxy: the forwarded client address counts');
  t.equal((await via('127.0.0.2')).status, 403, 'from anyone else: X-Forwarded-For is ignored');

  const samples = await scrape(`http://127.0.0.1:${svc.httpPort}`);
  const count = (outcome: string, reason: string) =>
    metric(samples, 'otesse_keys_gateway_checks_total', { gateway: 'forward_auth', outcome, reason });
  t.ok(count('allowed', '') >= 5, `allowed subrequests are counted (${count('allowed', '')})`);
  for (const reason of ['KEY_MISSING', 'KEY_REVOKED', 'SCOPE_NOT_GRANTED', 'TOO_MANY_FAILURES', 'IP_NOT_ALLOWED']) {
    t.ok(count('denied', reason) >= 1, `denied ${reason}: counted (${count('denied', reason)})`);
  }
});

t.test('a bad FORWARD_AUTH_ROUTES stops start-up naming the variable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'routes.yaml'), 'routes:\n  - { method: GET, path: /v1/x, scope: "bookings:delete" }\n');
  await t.rejects(startTestApp(t, { FORWARD_AUTH_PORT: '0', FORWARD_AUTH_ROUTES: join(dir, 'routes.yaml') }), {
    message: /^FORWARD_AUTH_ROUTES: routes\.0\.scope: not a scope of the catalog$/,
  });
  await t.rejects(startTestApp(t, { FORWARD_AUTH_ROUTES: join(dir, 'missing.yaml') }), {
    message: /^FORWARD_AUTH_ROUTES: /,
  });
});
