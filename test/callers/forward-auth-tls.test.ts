// Forward auth over TLS (FORWARD_AUTH_TLS_*), as production runs it: only a gateway with a
// certificate from FORWARD_AUTH_TLS_CA gets an answer, and nginx's documented proxy_ssl_* lines
// reach it. Certificates are made at test time (the gRPC mutual TLS test's helper).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { createKey, startTestApp, testEnv } from '../helpers/app.js';
import { send } from '../helpers/gateway-targets.js';
import { startNginx } from '../helpers/nginx.js';
import { makePki, type TestPki } from '../helpers/ops/certs.js';

/** GET /authorize<path> over HTTPS; resolves the status, or rejects with the TLS/socket error. */
function https(
  port: number,
  path: string,
  headers: Record<string, string>,
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer },
) {
  return new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', servername: 'localhost', port, path, headers, ...tls }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function routesFile(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'routes.yaml'), 'routes:\n  - { method: GET, path: /v1/bookings, scope: "bookings:read" }\n');
  return join(dir, 'routes.yaml');
}

const tlsEnv = (pki: TestPki, ca = true) => ({
  FORWARD_AUTH_TLS_CERT: pki.server.cert,
  FORWARD_AUTH_TLS_KEY: pki.server.key,
  ...(ca ? { FORWARD_AUTH_TLS_CA: pki.ca } : {}),
});

t.test(
  'forward auth with mutual TLS: only gateways with a certificate from FORWARD_AUTH_TLS_CA are answered',
  async (t) => {
    const pki = makePki(t);
    const svc = await startTestApp(t, { FORWARD_AUTH_PORT: '0', FORWARD_AUTH_ROUTES: routesFile(t), ...tlsEnv(pki) });
    const port = svc.forwardAuthPort ?? 0;
    const key = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
    const headers = { 'x-api-key': key.secret };
    const ca = pki.read(pki.ca);
    const client = { ca, cert: pki.read(pki.client.cert), key: pki.read(pki.client.key) };

    t.equal(
      await https(port, '/authorize/v1/bookings', headers, client),
      204,
      'a gateway with a client certificate from the CA: answered',
    );
    t.equal(await https(port, '/authorize/v1/invoices', headers, client), 403, 'and decided as usual');
    await t.rejects(
      https(port, '/authorize/v1/bookings', headers, { ca }),
      'no client certificate: the handshake fails',
    );
    await t.rejects(
      https(port, '/authorize/v1/bookings', headers, {
        ca,
        cert: pki.read(pki.stranger.cert),
        key: pki.read(pki.stranger.key),
      }),
      'a certificate from another CA: the handshake fails',
    );
    await t.rejects(
      https(port, '/authorize/v1/bookings', headers, {
        ca: pki.read(pki.stranger.ca),
        cert: client.cert,
        key: client.key,
      }),
      { code: /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/ },
      'a gateway that does not trust the server refuses it',
    );
    const plain = await send(port, 'GET', '/authorize/v1/bookings', headers).then(
      (r) => r.status,
      () => 0,
    );
    t.not(plain, 204, 'plaintext HTTP is not answered');
  },
);

t.test('FORWARD_AUTH_TLS_CERT without FORWARD_AUTH_TLS_CA: HTTPS, no client certificate asked', async (t) => {
  const pki = makePki(t);
  const svc = await startTestApp(t, {
    FORWARD_AUTH_PORT: '0',
    FORWARD_AUTH_ROUTES: routesFile(t),
    ...tlsEnv(pki, false),
  });
  const key = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
  t.equal(
    await https(
      svc.forwardAuthPort ?? 0,
      '/authorize/v1/bookings',
      { 'x-api-key': key.secret },
      { ca: pki.read(pki.ca) },
    ),
    204,
  );
});

t.test('FORWARD_AUTH_TLS_*: a half-given pair stops start-up naming the missing variable', async (t) => {
  const env = await testEnv(t);
  t.throws(() => loadConfig({ ...env, FORWARD_AUTH_TLS_CERT: '/x.crt' }), {
    message: /^FORWARD_AUTH_TLS_KEY: must be set together with FORWARD_AUTH_TLS_CERT/,
  });
  t.throws(() => loadConfig({ ...env, FORWARD_AUTH_TLS_KEY: '/x.key' }), {
    message: /^FORWARD_AUTH_TLS_CERT: must be set together/,
  });
  t.throws(() => loadConfig({ ...env, FORWARD_AUTH_TLS_CA: '/ca.crt' }), {
    message: /^FORWARD_AUTH_TLS_CERT: must be set when FORWARD_AUTH_TLS_CA is set/,
  });
  t.throws(() => loadConfig({ ...env, FORWARD_AUTH_TLS_CA: '' }), { message: /^FORWARD_AUTH_TLS_CA: is empty/ });
});

t.test("nginx auth_request over mutual TLS with docs/gateways.md's proxy_ssl_* lines", async (t) => {
  const pki = makePki(t);
  const svc = await startTestApp(t, { FORWARD_AUTH_PORT: '0', FORWARD_AUTH_ROUTES: routesFile(t), ...tlsEnv(pki) });
  const upstream = await startNginx(
    t,
    (port) => `server { listen 127.0.0.1:${port}; location / { return 200 'bookings'; } }`,
  );
  const sslLines = (withCert: boolean) => `
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${pki.ca};
      ${withCert ? `proxy_ssl_certificate ${pki.client.cert};\n      proxy_ssl_certificate_key ${pki.client.key};` : ''}`;
  const gateway = (withCert: boolean) => (port: number) => `
  server {
    listen 127.0.0.1:${port};
    location /v1/ {
      auth_request /_otesse_auth;
      proxy_pass http://127.0.0.1:${upstream.port};
    }
    location = /_otesse_auth {
      internal;
      proxy_pass https://127.0.0.1:${svc.forwardAuthPort}/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;${sslLines(withCert)}
    }
  }`;
  const key = await createKey(svc, 'acct_1', { scopes: ['bookings:read'] });
  const good = await startNginx(t, gateway(true));
  t.equal(
    (await send(good.port, 'GET', '/v1/bookings', { 'x-api-key': key.secret })).status,
    200,
    'with the client certificate: allowed',
  );
  t.equal((await send(good.port, 'GET', '/v1/bookings')).status, 401, 'and a request without a key: 401');
  const noCert = await startNginx(t, gateway(false));
  t.equal(
    (await send(noCert.port, 'GET', '/v1/bookings', { 'x-api-key': key.secret })).status,
    500,
    'without it the check cannot be reached: nginx fails closed (500)',
  );
});
