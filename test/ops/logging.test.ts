// Logs as the platform stores them: JSON lines carrying the request id, and never a key
// secret or an admin token, whatever field, level or route they arrive through.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { ADMIN_TOKEN, capturedLogs, createKey, startTestApp } from '../helpers/app.js';

/** Lines logged since `from` (an index into capturedLogs), parsed. */
function linesSince(from: number): Record<string, unknown>[] {
  return capturedLogs
    .slice(from)
    .flatMap((chunk) => chunk.split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('x-request-id is echoed and logged; one is made when absent', async (t) => {
  const app = await startTestApp(t);
  const from = capturedLogs.length;
  const given = await fetch(`${app.url}/v1/scopes`, { headers: { 'x-request-id': 'gw-7f3a-0001' } });
  t.equal(given.headers.get('x-request-id'), 'gw-7f3a-0001', 'the caller’s id is echoed');
  const made = await fetch(`${app.url}/v1/accounts/acct_1/keys`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const id = made.headers.get('x-request-id');
  t.ok(id, `an id is made when none is sent (${id})`);
  const lines = linesSince(from);
  t.ok(
    lines.length > 0 && lines.every((l) => typeof l['level'] === 'number' && typeof l['time'] === 'string'),
    'every line is a JSON object',
  );
  const of = (rid: string | null) => lines.filter((l) => l['request_id'] === rid);
  t.ok(
    of('gw-7f3a-0001').some((l) => l['msg'] === 'incoming request'),
    'the incoming request is logged with the caller’s id',
  );
  t.ok(
    of('gw-7f3a-0001').some((l) => l['msg'] === 'request completed'),
    'so is its completion',
  );
  t.ok(
    of(id).some((l) => (l['res'] as { statusCode?: number } | undefined)?.statusCode === 200),
    'the made id is in the log with the status',
  );
});

t.test('no key secret and no admin token reaches the log at debug level', async (t) => {
  const app = await startTestApp(t, { LOG_LEVEL: 'debug' });
  const key = (await createKey(app)).secret;
  const secret = key.slice('otesse_live_sk_'.length + 12, -6);
  const from = capturedLogs.length;
  const send = (path: string, init: RequestInit = {}) => fetch(`${app.url}${path}`, init).then((r) => r.status);
  const json = { 'content-type': 'application/json' };
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

  const statuses = [
    // headers
    await send('/v1/accounts/acct_1/keys', {
      headers: { ...auth, 'x-api-key': key, cookie: `session=${ADMIN_TOKEN}` },
    }),
    await send('/v1/accounts/acct_1/keys', { headers: { authorization: `Bearer ${key}` } }),
    await send('/v1/accounts/acct_1/keys', { headers: { authorization: ADMIN_TOKEN } }),
    // query
    await send(`/v1/accounts/acct_1/keys?key=${key}&token=${ADMIN_TOKEN}&access_token=${ADMIN_TOKEN}&limit=5`, {
      headers: auth,
    }),
    await send(`/v1/scopes?api_key=${encodeURIComponent(key)}&x=${ADMIN_TOKEN}`),
    // URL path
    await send(`/v1/accounts/acct_1/keys/${key}`, { headers: auth }),
    await send(`/v1/accounts/acct_1/keys/${key}/revoke`, { method: 'POST', headers: { ...auth, ...json }, body: '{}' }),
    await send(`/nowhere/${key}/${ADMIN_TOKEN}`),
    await send(`/v1/accounts/${ADMIN_TOKEN}/keys`, { headers: auth }),
    // body
    await send('/v1/accounts/acct_1/keys', {
      method: 'POST',
      headers: { ...auth, ...json },
      body: JSON.stringify({ label: key, scopes: ['bookings:read'], environment: 'live', token: ADMIN_TOKEN, key }),
    }),
    await send('/v1/accounts/acct_1/keys', {
      method: 'POST',
      headers: { ...auth, ...json },
      body: `{"label": "${key}", "token": "${ADMIN_TOKEN}"`,
    }),
    await send('/v1/accounts/acct_1/keys', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/plain' },
      body: `${key} ${ADMIN_TOKEN}`,
    }),
  ];
  t.ok(
    statuses.every((s) => s >= 200 && s < 500),
    `every request answered (${statuses.join(' ')})`,
  );
  // gRPC: the key as the key, and inside fields that are invalid.
  t.equal((await app.authenticate({ key })).allowed, true);
  await t.rejects(
    app.authenticate({ key, ip: key }),
    { code: grpc.status.INVALID_ARGUMENT },
    'the key as the address: refused',
  );
  await t.rejects(
    app.authenticate({ key, scope: key }),
    { code: grpc.status.INVALID_ARGUMENT },
    'the key as the scope: refused',
  );

  // Code that logs a key by mistake, in every shape.
  const err = Object.assign(new Error(`verification failed for ${key}`), {
    code: 'E_TEST',
    detail: { key, note: `token ${ADMIN_TOKEN}` },
  });
  app.log.debug(
    { key, apiKey: key, nested: { deeper: { text: `header was Bearer ${ADMIN_TOKEN}`, list: [key, { k: key }] } } },
    `checking ${key}`,
  );
  app.log.warn({ err }, 'failed');
  app.log.error(err);
  app.log.error(new Error(`boom ${key}`), 'with a message');
  app.log.info('interpolated %s and %o and %j', key, { key }, { inner: key });
  app.log
    .child({ caller: key, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    .info({ fine: true }, 'child bindings');

  const lines = capturedLogs.slice(from).join('');
  t.ok(lines.includes('[redacted]'), 'secrets were logged and redacted');
  t.ok(lines.includes('otesse_live_sk_'), 'the key prefix remains visible for debugging');
  t.ok(lines.includes('&limit=5"'), 'the API query parameters stay readable');
  for (const [name, value] of [
    ['key secret', secret],
    ['whole key', key],
    ['admin token', ADMIN_TOKEN],
  ] as const) {
    const leaking = lines.split('\n').filter((l) => l.includes(value));
    t.same(leaking, [], `no log line contains the ${name}`);
  }
});
