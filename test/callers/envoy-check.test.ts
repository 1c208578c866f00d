// Envoy's ext_authz over gRPC: envoy.service.auth.v3.Authorization/Check on the service's gRPC
// port, called the way Envoy calls it (a client over the proto subset in proto/envoy).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { CheckRequest } from '../../src/transport/envoy-check.js';
import { createKey, startTestApp } from '../helpers/app.js';
import { checkRequest as request, envoyClient, headerMap } from '../helpers/envoy.js';
import { reflect } from '../helpers/grpc.js';
import { scrape } from '../helpers/ops/prom.js';

t.test('Check: allow adds the identity and strips the key; deny is a problem+json response', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'routes.yaml'),
    'routes:\n  - { method: POST, path: /v1/bookings, scope: "bookings:write" }\n',
  );
  const app = await startTestApp(t, { FORWARD_AUTH_ROUTES: join(dir, 'routes.yaml') });
  const check = envoyClient(t, app.grpcPort);
  const key = await createKey(app, 'acct_1', { scopes: ['bookings:read'], allowed_ips: ['203.0.113.0/24'] });

  const ok = await check(request({ authorization: `Bearer ${key.secret}` }, { scope: 'bookings:read' }));
  t.equal(ok.status.code, 0, 'google.rpc.Status OK');
  t.equal(ok.http_response, 'ok_response');
  t.same(
    headerMap(ok.ok_response?.headers ?? []),
    {
      'x-otesse-key-id': key.id,
      'x-otesse-account-id': 'acct_1',
      'x-otesse-environment': 'live',
      'x-otesse-scopes': 'bookings:read',
    },
    'identity headers for the upstream',
  );
  t.ok(
    ok.ok_response?.headers.every((h) => h.append_action === 'OVERWRITE_IF_EXISTS_OR_ADD'),
    'a client cannot smuggle its own identity headers',
  );
  t.same(ok.ok_response?.headers_to_remove, ['authorization'], 'the key header is removed');
  const viaApiKey = await check(request({ 'x-api-key': key.secret }, { scope: 'bookings:read' }));
  t.same(
    [viaApiKey.status.code, viaApiKey.ok_response?.headers_to_remove],
    [0, ['x-api-key']],
    'X-API-Key works and is removed',
  );
  const raw = await check({
    attributes: {
      ...request({}, { scope: 'bookings:read' }).attributes,
      request: {
        http: {
          method: 'GET',
          path: '/v1/bookings',
          header_map: { headers: [{ key: 'x-api-key', value: '', raw_value: Buffer.from(key.secret) }] },
        },
      },
    },
  });
  t.equal(raw.status.code, 0, 'encode_raw_headers (header_map with raw_value) too');

  const cases: [string, CheckRequest, number, number][] = [
    ['no key', request({}, { scope: 'bookings:read' }), 16, 401],
    ['malformed key', request({ authorization: 'Bearer nope' }, { scope: 'bookings:read' }), 16, 401],
    ['scope not granted', request({ 'x-api-key': key.secret }, { scope: 'invoices:read' }), 7, 403],
    [
      'address not allowed',
      request({ 'x-api-key': key.secret }, { scope: 'bookings:read', ip: '198.51.100.1' }),
      7,
      403,
    ],
    [
      'scope from the route map',
      request({ 'x-api-key': key.secret }, { method: 'POST', path: '/v1/bookings?x=1' }),
      7,
      403,
    ],
    ['a route the map does not name', request({ 'x-api-key': key.secret }, { path: '/v1/other' }), 7, 403],
  ];
  for (const [what, req, code, status] of cases) {
    const res = await check(req);
    t.equal(res.status.code, code, `${what}: google.rpc code ${code}`);
    t.equal(res.http_response, 'denied_response', `${what}: denied_response`);
    const headers = headerMap(res.denied_response?.headers ?? []);
    t.equal(headers['content-type'], 'application/problem+json', `${what}: problem+json`);
    const body = JSON.parse(res.denied_response?.body ?? '{}') as { status: number; type: string };
    t.equal(body.status, status, `${what}: HTTP ${status} in the body`);
    t.equal(
      res.denied_response?.status.code,
      status === 401 ? 'Unauthorized' : 'Forbidden',
      `${what}: HttpStatus ${status}`,
    );
    t.equal('www-authenticate' in headers, status === 401, `${what}: challenge on 401 only`);
  }

  const counted = Object.fromEntries(
    (await scrape(app.url))
      .filter((s) => s.name === 'otesse_keys_gateway_checks_total' && s.labels.gateway === 'envoy')
      .map((s) => [`${s.labels.outcome} ${s.labels.reason}`, s.value]),
  );
  t.same(
    counted,
    {
      'allowed ': 3,
      'denied KEY_MISSING': 1,
      'denied KEY_MALFORMED': 1,
      'denied SCOPE_NOT_GRANTED': 2,
      'denied IP_NOT_ALLOWED': 1,
      'denied ROUTE_NOT_MAPPED': 1,
    },
    'every Check is counted in otesse_keys_gateway_checks_total, by outcome and reason',
  );

  const listed = await reflect(t, app.grpcPort, 'v1', { list_services: '' });
  t.ok(
    listed.list_services_response?.service.some((s) => s.name === 'envoy.service.auth.v3.Authorization'),
    'listed by server reflection',
  );
});
