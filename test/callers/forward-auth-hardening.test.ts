// Forward auth against a client that tries to choose what it is checked against: its own
// X-Otesse-Scope, or a request target whose dot segments, encoded separators or empty segments
// make the route map see one route while the upstream serves another (design: client-cannot-choose).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { createKey, startTestApp, testEnv, type TestApp } from '../helpers/app.js';
import { NON_CANONICAL, send } from '../helpers/gateway-targets.js';
import { startNginx } from '../helpers/nginx.js';

const ROUTES = `routes:
  - { method: GET, path: /v1/bookings, scope: "bookings:read" }
  - { method: GET, path: /v1/bookings/:id, scope: "bookings:read" }
  - { method: DELETE, path: /v1/bookings/:id, scope: "bookings:write" }
  - { method: ANY, path: /v1/webhooks/*, scope: "webhooks:manage" }
`;

function routesFile(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'routes.yaml'), ROUTES);
  return join(dir, 'routes.yaml');
}

/** The three ways a gateway names the client's request to forward auth. */
const forms = {
  nginx: (port: number, method: string, target: string, headers: Record<string, string>) =>
    send(port, 'GET', '/authorize', { ...headers, 'x-original-method': method, 'x-original-uri': target }),
  traefik: (port: number, method: string, target: string, headers: Record<string, string>) =>
    send(port, 'GET', '/authorize', { ...headers, 'x-forwarded-method': method, 'x-forwarded-uri': target }),
  'envoy http': (port: number, method: string, target: string, headers: Record<string, string>) =>
    send(port, method, `/authorize${target}`, headers),
};

t.test("a client's own X-Otesse-Scope is not believed unless the operator says the gateway sets it", async (t) => {
  const routes = routesFile(t);
  const svc = await startTestApp(t, { FORWARD_AUTH_PORT: '0', FORWARD_AUTH_ROUTES: routes });
  const port = svc.forwardAuthPort ?? 0;
  const reader = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
  for (const [form, ask] of Object.entries(forms)) {
    const res = await ask(port, 'DELETE', '/v1/bookings/b_1', {
      'x-api-key': reader.secret,
      'x-otesse-scope': 'bookings:read',
    });
    t.equal(
      res.status,
      403,
      `${form}: DELETE /v1/bookings/b_1 with X-Otesse-Scope: bookings:read is decided by the route map (bookings:write)`,
    );
    t.equal(res.headers['x-otesse-deny-reason'], 'SCOPE_NOT_GRANTED', `${form}: scope not granted`);
  }
  const noRoute = await send(port, 'GET', '/authorize', {
    'x-api-key': reader.secret,
    'x-otesse-scope': 'bookings:read',
  });
  t.equal(
    noRoute.headers['x-otesse-deny-reason'],
    'ROUTE_NOT_MAPPED',
    'a header alone, with no original request, names no route',
  );

  const trusting = await startTestApp(t, {
    FORWARD_AUTH_PORT: '0',
    FORWARD_AUTH_ROUTES: routes,
    FORWARD_AUTH_TRUST_SCOPE_HEADER: '1',
  });
  const key = await createKey(trusting, 'acct_1', { scopes: ['bookings:read'] });
  const believed = await send(trusting.forwardAuthPort ?? 0, 'GET', '/authorize', {
    'x-api-key': key.secret,
    'x-otesse-scope': 'bookings:read',
    'x-forwarded-method': 'DELETE',
    'x-forwarded-uri': '/v1/bookings/b_1',
  });
  t.equal(believed.status, 204, 'FORWARD_AUTH_TRUST_SCOPE_HEADER=1: the gateway sets the header, so it is believed');
  const stillChecked = await send(trusting.forwardAuthPort ?? 0, 'GET', '/authorize', {
    'x-api-key': key.secret,
    'x-otesse-scope': 'bookings:read',
    'x-forwarded-method': 'GET',
    'x-forwarded-uri': '/v1/webhooks/../bookings',
  });
  t.equal(stillChecked.status, 400, 'a trusted scope header does not let a non-canonical target through');
  const unknown = await send(trusting.forwardAuthPort ?? 0, 'GET', '/authorize', {
    'x-api-key': key.secret,
    'x-otesse-scope': 'bookings:delete',
  });
  t.match(
    { status: unknown.status, body: JSON.parse(unknown.body) },
    { status: 400, body: { type: /\/bad-request$/ } },
    "a declared scope outside the catalog: 400 (the gateway operator's mistake, said plainly)",
  );
});

t.test('FORWARD_AUTH_TRUST_SCOPE_HEADER: 1 or 0; anything else stops start-up naming it', async (t) => {
  const env = await testEnv(t);
  t.equal(loadConfig(env).FORWARD_AUTH_TRUST_SCOPE_HEADER, '0', 'off by default');
  t.equal(loadConfig({ ...env, FORWARD_AUTH_TRUST_SCOPE_HEADER: '1' }).FORWARD_AUTH_TRUST_SCOPE_HEADER, '1');
  t.throws(() => loadConfig({ ...env, FORWARD_AUTH_TRUST_SCOPE_HEADER: '' }), {
    message: /^FORWARD_AUTH_TRUST_SCOPE_HEADER: is empty/,
  });
  t.throws(() => loadConfig({ ...env, FORWARD_AUTH_TRUST_SCOPE_HEADER: 'yes' }), {
    message: /^FORWARD_AUTH_TRUST_SCOPE_HEADER: /,
  });
});

t.test('a request target not in its one canonical form is refused (400) in every forward auth form', async (t) => {
  const svc = await startTestApp(t, { FORWARD_AUTH_PORT: '0', FORWARD_AUTH_ROUTES: routesFile(t) });
  const port = svc.forwardAuthPort ?? 0;
  const key = await createKey(svc, 'acct_1', { scopes: ['webhooks:manage', 'bookings:read'] });
  const headers = { 'x-api-key': key.secret };
  for (const [form, ask] of Object.entries(forms)) {
    t.equal(
      (await ask(port, 'POST', '/v1/webhooks/w_1', headers)).status,
      204,
      `${form}: the canonical target is allowed`,
    );
    t.equal(
      (await ask(port, 'GET', '/v1/bookings/b_1?x=..%2F', headers)).status,
      204,
      `${form}: the query string is not the path`,
    );
    for (const [what, method, target] of NON_CANONICAL) {
      const res = await ask(port, method, target, headers);
      t.equal(res.status, 400, `${form}: ${what} (${target}): 400`);
      t.match(res.headers['content-type'], /^application\/problem\+json/, `${form}: ${what}: problem+json`);
      t.match(
        JSON.parse(res.body),
        { status: 400, title: 'Bad Request', type: /\/target-not-canonical$/ },
        `${form}: ${what}: says why`,
      );
      t.equal(res.headers['x-otesse-deny-reason'], 'TARGET_NOT_CANONICAL', `${form}: ${what}: reason`);
      t.notOk(res.body.includes(key.secret), `${form}: ${what}: the key is not echoed`);
    }
  }
});

/** nginx in front: location /v1/ with auth_request, the subrequest going to `authPort`. */
const nginxHttp = (authPort: number, upstreamPort: number) => (port: number) => `
  upstream otesse_auth { server 127.0.0.1:${authPort}; }
  server {
    listen 127.0.0.1:${port};
    location /v1/ {
      auth_request /_otesse_auth;
      auth_request_set $otesse_auth_status $upstream_status;
      error_page 500 = @otesse_auth_error;
      proxy_pass http://127.0.0.1:${upstreamPort};
    }
    location = /_otesse_auth {
      internal;
      proxy_pass http://otesse_auth/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Otesse-Scope "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
    }
    location @otesse_auth_error {
      default_type application/problem+json;
      if ($otesse_auth_status = 400) { return 400 '{"type":"https://docs.otesse.com/problems/bad-request","title":"Bad Request","status":400,"detail":"malformed request"}'; }
      return 500;
    }
  }
`;

/** An HTTP server that records the requests it gets and answers `status`. */
async function recorder(t: { teardown(fn: () => unknown): void }, status: number) {
  const seen: Array<{ method?: string; url?: string; original?: string }> = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, original: req.headers['x-original-uri'] as string | undefined });
    res.statusCode = status;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { seen, port: (server.address() as { port: number }).port };
}

t.test('through a real nginx: the raw target reaches the check, and the check refuses it', async (t) => {
  // What nginx hands the check: $request_uri is the client's target as sent, although nginx
  // resolved the dot segments (encoded ones and %2F included) for its own location matching, and
  // proxies the raw one upstream. (/v1/bookings/..%2F..%2Fadmin resolves to /admin, outside
  // location /v1/: nginx answers 404 itself; under a catch-all location it would reach the check.)
  const probe = await recorder(t, 204);
  const upstream = await recorder(t, 200);
  const seenBy = await startNginx(t, nginxHttp(probe.port, upstream.port));
  const sent = [
    '/v1/webhooks/../bookings',
    '/v1/webhooks/%2e%2e/bookings',
    '/v1/webhooks/..%2Fbookings',
    '/v1/bookings/..%2Fb_2',
  ];
  for (const target of sent)
    t.equal(
      (await send(seenBy.port, 'POST', target)).status,
      200,
      `${target}: nginx routes it to /v1/ and asks the check`,
    );
  t.same(
    probe.seen.map((s) => s.original),
    sent,
    'X-Original-URI carries the target exactly as the client sent it',
  );
  t.same(
    upstream.seen.map((s) => s.url),
    sent,
    'and the upstream gets it unresolved too: the check must not read it as another route',
  );

  const svc: TestApp = await startTestApp(t, {
    FORWARD_AUTH_PORT: '0',
    FORWARD_AUTH_ROUTES: routesFile(t),
    TRUST_PROXY: '127.0.0.1',
  });
  const api = await recorder(t, 200);
  const nginx = await startNginx(t, nginxHttp(svc.forwardAuthPort ?? 0, api.port));
  const key = await createKey(svc, 'acct_1', { scopes: ['webhooks:manage'] });
  t.equal(
    (await send(nginx.port, 'POST', '/v1/webhooks/w_1', { 'x-api-key': key.secret })).status,
    200,
    'a webhooks route: allowed',
  );
  for (const target of ['/v1/webhooks/../bookings', '/v1/webhooks/%2e%2e/bookings', '/v1/webhooks/..%2Fbookings']) {
    const res = await send(nginx.port, 'POST', target, { 'x-api-key': key.secret });
    t.equal(res.status, 400, `POST ${target} with a webhooks:manage key: 400, not the bookings API`);
  }
  t.same(
    api.seen.map((s) => s.url),
    ['/v1/webhooks/w_1'],
    'the upstream saw only the allowed request',
  );
  const spoofed = await send(nginx.port, 'DELETE', '/v1/webhooks/w_1', {
    'x-api-key': key.secret,
    'x-otesse-scope': 'bookings:read',
  });
  t.equal(spoofed.status, 200, "the client's X-Otesse-Scope changes nothing (webhooks:manage from the route map)");
});
