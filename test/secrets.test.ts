// Design: secret-never-kept: the secret is never stored, logged, put in an error, or returned after creation.
// This file creates keys, takes them through every route and every deny, then searches every
// response, every database column, every Redis entry and every log line for them.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import t from 'tap';
import { secretOf } from '../src/domain/key-format.js';
import { ADMIN_TOKEN, capturedLogs, createKey, startTestApp, type TestApp } from './helpers/app.js';
import { rawRequest } from './helpers/http.js';
import { wrongSecret } from './helpers/keys.js';
import { waitFor } from './helpers/replica.js';
import { dumpDatabase, fragmentsOf, leakedLogLines, leaksIn } from './helpers/secrets.js';

const app: TestApp = await startTestApp(t, { FAILED_ATTEMPTS_LIMIT: '2' });
const ACCOUNT = 'acct_secrets';
/** Every full key handed out in this file. */
const issued: string[] = [];
/** Every answer given after a create (and, for rotate, with its own new `secret` removed). */
const answers: { what: string; text: string }[] = [];

async function call(what: string, method: string, path: string, body?: unknown) {
  const res = await app.api(method, path, body);
  answers.push({
    what,
    text: JSON.stringify({ status: res.status, headers: [...res.headers.entries()], body: res.body }),
  });
  return res;
}
async function issue(body: Record<string, unknown> = {}) {
  const k = await createKey(app, ACCOUNT, body);
  issued.push(k.secret);
  return k;
}
const keyPath = (id: string, suffix = '') => `/v1/accounts/${ACCOUNT}/keys/${id}${suffix}`;

t.test('the helper finds a secret, or any 16-character piece of it', async (t) => {
  const k = await issue();
  t.same(leaksIn('nothing here', [k.secret]), []);
  // Padded with a character outside the key alphabet: a letter next to a 15-character piece could complete a 16-character one.
  t.equal(leaksIn(`-${k.secret}-`, [k.secret]).length, 1, 'the full key');
  t.equal(leaksIn(`-${secretOf(k.secret)}-`, [k.secret]).length, 1, 'the bare secret');
  t.equal(leaksIn(`-${secretOf(k.secret).slice(9, 25)}-`, [k.secret]).length, 1, 'a 16-character piece');
  t.same(
    leaksIn(`-${secretOf(k.secret).slice(9, 24)}-`, [k.secret]),
    [],
    'a 15-character piece is below the threshold',
  );
  t.equal(fragmentsOf(k.secret).length, 2 + 17);
});

t.test('every route after the create: no secret in any answer', async (t) => {
  const a = await issue({ allowed_ips: ['10.0.0.0/8'], scopes: ['bookings:read', 'invoices:read'] });
  const b = await issue({ environment: 'test' });
  const c = await issue();
  for (const k of [a, b, c]) {
    await app.authenticate({ key: k.secret, ip: '10.1.2.3', scope: 'bookings:read' });
    await app.authenticate({ key: k.secret, ip: '192.0.2.1', scope: 'invoices:read' });
    await app.authenticate({ key: k.secret, ip: '10.1.2.3', scope: 'webhooks:manage' });
  }
  for (let i = 0; i < 3; i++) await app.authenticate({ key: wrongSecret(c.secret) });

  t.equal((await call('get', 'GET', keyPath(a.id))).status, 200);
  t.equal((await call('list', 'GET', `/v1/accounts/${ACCOUNT}/keys?limit=100`)).status, 200);
  t.equal((await call('patch', 'PATCH', keyPath(a.id), { label: 'renamed', scopes: ['bookings:read'] })).status, 200);
  t.equal((await call('activity', 'GET', keyPath(a.id, '/activity'))).status, 200);

  const rotated = await app.api('POST', keyPath(b.id, '/rotate'), { expire_previous_in: 600 });
  t.equal(rotated.status, 201);
  issued.push(rotated.body.secret);
  t.equal(rotated.body.secret.length, b.secret.length, 'the rotate answer holds the new secret');
  const { secret: _new, ...rotatedRest } = rotated.body as Record<string, unknown>;
  answers.push({
    what: 'rotate (without its own new secret)',
    text: JSON.stringify({ headers: [...rotated.headers.entries()], body: rotatedRest }),
  });
  t.equal((await call('previous after rotate', 'GET', keyPath(b.id))).body.replaced_by, rotated.body.id);
  await app.authenticate({ key: rotated.body.secret, scope: 'bookings:read' });

  t.equal((await call('revoke', 'POST', keyPath(c.id, '/revoke'), { reason: 'test' })).status, 200);
  t.equal((await call('revoke again', 'POST', keyPath(c.id, '/revoke'), {})).status, 200);
  t.equal((await call('audit-log', 'GET', `/v1/accounts/${ACCOUNT}/audit-log?limit=100`)).status, 200);
  t.equal((await call('activity of a rotated key', 'GET', keyPath(b.id, '/activity'))).status, 200);
  t.equal((await call('activity of a revoked key', 'GET', keyPath(c.id, '/activity'))).status, 200);
  t.equal(
    (await call('revoke-all', 'POST', `/v1/accounts/${ACCOUNT}/keys/revoke-all`, { environment: 'test' })).status,
    200,
  );
  t.equal((await call('list after all', 'GET', `/v1/accounts/${ACCOUNT}/keys?limit=100`)).status, 200);
  const metrics = await rawRequest(app, 'GET', '/metrics', undefined, {}, null);
  t.equal(metrics.status, 200);
  answers.push({ what: 'metrics', text: String(metrics.body) });

  t.ok(answers.length >= 13);
  for (const { what, text } of answers) t.same(leaksIn(text, issued), [], `${what}: no secret`);
});

t.test('a key sent where it does not belong is not echoed in errors', async (t) => {
  const k = await issue();
  const echoes: { what: string; text: string }[] = [];
  const raw = async (what: string, path: string, headers: Record<string, string>, token?: string | null) => {
    const res = await rawRequest(app, 'GET', path, undefined, headers, token);
    echoes.push({ what, text: JSON.stringify({ status: res.status, body: res.body }) });
    return res;
  };
  t.equal((await raw('api key as admin token', `/v1/accounts/${ACCOUNT}/keys`, {}, k.secret)).status, 401);
  t.equal(
    (await raw('api key in X-API-Key', `/v1/accounts/${ACCOUNT}/keys`, { 'x-api-key': k.secret }, null)).status,
    401,
  );
  t.equal((await raw('key in an unknown path', `/v1/${k.secret}`, {})).status, 404);
  t.equal((await raw('key in a query', `/v1/accounts/${ACCOUNT}/keys?key=${k.secret}`, {})).status, 400);
  t.equal((await raw('key as key id', `/v1/accounts/${ACCOUNT}/keys/${k.secret}`, {})).status, 400);
  t.equal((await raw('key as cursor', `/v1/accounts/${ACCOUNT}/keys?cursor=${k.secret}`, {})).status, 400);
  t.equal((await raw('key as request id', `/v1/accounts/${ACCOUNT}/keys`, { 'x-request-id': k.secret })).status, 200);
  for (const { what, text } of echoes) t.same(leaksIn(text, [k.secret]), [], `${what}: not echoed`);

  for (const req of [{ ip: k.secret }, { scope: k.secret }, { ip: `10.0.0.1 ${k.secret}` }]) {
    const err = await app.authenticate({ key: k.secret, ...req }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    t.equal(err?.code, grpc.status.INVALID_ARGUMENT);
    t.same(leaksIn(`${err?.details} ${err?.message}`, [k.secret]), [], 'not in the gRPC error');
  }
});

t.test('the database holds no secret: only the argon2id hash', async (t) => {
  const rows = await dumpDatabase(app.env.DATABASE_URL ?? '');
  const tables = new Set(rows.map((r) => r.table));
  for (const table of ['api_keys', 'audit_log', 'key_usage_hourly', 'key_addresses', 'key_changes'])
    t.ok(tables.has(table), `${table} was dumped`);
  t.ok(rows.length > 50, `${rows.length} values searched`);
  const leaks = rows.flatMap((r) => leaksIn(r.value, issued).map((l) => `${r.table}.${r.column}: ${l}`));
  t.same(leaks, []);
  const digests = issued.flatMap((key) =>
    [key, secretOf(key)].flatMap((text) =>
      ['sha256', 'sha512', 'sha1', 'md5'].flatMap((algo) =>
        (['hex', 'base64', 'base64url'] as const).map((enc) => createHash(algo).update(text).digest(enc)),
      ),
    ),
  );
  const all = rows.map((r) => r.value).join('\n');
  t.same(
    digests.filter((d) => all.includes(d)),
    [],
    'no fast digest of a key or secret is stored either',
  );
  const hashes = rows.filter((r) => r.column === 'secret_hash');
  t.equal(hashes.length, issued.length, 'one hash per key');
  for (const h of hashes) t.match(h.value, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
});

t.test('the Redis cache holds no secret (entries are keyed by a digest)', async (t) => {
  const k = await issue();
  const redis = new Redis(app.env.REDIS_URL ?? '');
  t.teardown(() => redis.disconnect());
  const prefix = app.env.REDIS_PREFIX ?? '';
  // A verification fills Redis only while the replica trusts its caches (a starved CI box may drop that briefly).
  const cached = await waitFor(
    async () => {
      app.local.clear();
      if (!(await app.authenticate({ key: k.secret })).allowed) return false;
      return (await redis.exists(`${prefix}k:${k.id}`)) === 1;
    },
    15_000,
    200,
  );
  t.ok(cached, `the verified key is in Redis (invalidator healthy: ${app.invalidator.healthy})`);
  const names: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    names.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const values: string[] = [];
  for (const name of names) {
    const type = await redis.type(name);
    if (type === 'hash') values.push(name, ...Object.entries(await redis.hgetall(name)).flat());
    else if (type === 'string') values.push(name, (await redis.get(name)) ?? '');
    else values.push(name);
  }
  t.same(leaksIn(values.join('\n'), issued), []);
});

t.test('a key logged on purpose is redacted, whatever the shape', async (t) => {
  const k = await issue();
  const key = k.secret;
  app.log.info({ key, nested: { note: `x ${key}` } }, `msg ${key}`);
  app.log.debug({ detail: { deeper: [key] }, apiKey: key }, `debug line ${key}`);
  app.log.warn(`format %s`, key);
  app.log.error(new Error(`bare error ${key}`));
  app.log.error({ err: new Error(`wrapped ${key}`) }, 'wrapped error');
  app.log.child({ request_id: key }).info('child line');
  const line = (marker: string) => capturedLogs.find((l) => l.includes(marker));
  for (const marker of [
    '"msg":"msg ',
    '"msg":"debug line ',
    '"msg":"format ',
    'bare error',
    'wrapped error',
    'child line',
  ]) {
    const found = line(marker);
    t.ok(found, `${marker} was logged`);
    t.same(leaksIn(found ?? '', [key]), [], `${marker}: no secret`);
    t.match(found, /otesse_live_sk_/, `${marker}: the redacted prefix is kept for debugging`);
  }
});

t.test('no log line of this suite holds a secret (at debug level)', async (t) => {
  t.equal(app.log.level, 'debug');
  t.ok(
    capturedLogs.some((l) => l.includes('"level":20')),
    'debug lines are captured',
  );
  t.ok(
    capturedLogs.some((l) => l.includes(ACCOUNT)),
    'request lines are captured',
  );
  t.ok(issued.length >= 7, `${issued.length} keys`);
  t.same(leakedLogLines(issued), []);
  t.notOk(
    capturedLogs.some((l) => l.includes(ADMIN_TOKEN)),
    'nor the admin token',
  );
});
