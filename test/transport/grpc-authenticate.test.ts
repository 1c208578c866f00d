import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { generateKey } from '../../src/domain/key-format.js';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { healthClient, reflect } from '../helpers/grpc.js';
import { forgeKey, partsOf, wrongSecret } from '../helpers/keys.js';
import { leakedLogLines } from '../helpers/secrets.js';

const FAILURE_LIMIT = 3;
const ACCOUNT = 'acct_grpc';
/** Every full key this file created: none may show up in a log line. */
const issued: string[] = [];

const app: TestApp = await startTestApp(t, { FAILED_ATTEMPTS_LIMIT: String(FAILURE_LIMIT) });

async function issue(body: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const created = await createKey(app, ACCOUNT, body);
  issued.push(created.secret);
  return { id: created.id, key: created.secret };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NOBODY = {
  key_id: '',
  account_id: '',
  environment: '',
  scopes: [] as string[],
  retry_after_ms: 0,
  metadata: '',
  allowed_uses: 0,
  local: null,
};
/**
 * The fields of an identified key's answer beyond who it is: no wait to suggest, no metadata, nothing
 * for local decisions (the caller is not watching).
 */
const PLAIN = { retry_after_ms: 0, metadata: '', local: null };
const DENIED = { ...PLAIN, allowed_uses: 0 };

t.test('an allowed call says who the caller is', async (t) => {
  const live = await issue({ scopes: ['bookings:read', 'invoices:write'] });
  const res = await app.authenticate({ key: live.key, ip: '198.51.100.4', scope: 'invoices:write' });
  t.same(res, {
    allowed: true,
    reason: 'DENY_REASON_UNSPECIFIED',
    key_id: live.id,
    account_id: ACCOUNT,
    environment: 'live',
    scopes: ['bookings:read', 'invoices:write'],
    ...PLAIN,
    allowed_uses: 1,
  });
  const again = await app.authenticate({ key: live.key, ip: '198.51.100.4', scope: 'bookings:read' });
  t.equal(again.allowed, true, 'a second call (cached) is allowed too');

  const sandbox = await issue({ environment: 'test', scopes: ['customers:read'] });
  const tres = await app.authenticate({ key: sandbox.key, ip: '2001:db8::9', scope: 'customers:read' });
  t.equal(tres.allowed, true);
  t.equal(tres.environment, 'test');
  t.equal(tres.key_id, sandbox.id);
});

t.test(
  'an answer reused from memory follows every change of the key, and a call of several uses says how many',
  async (t) => {
    const k = await issue({ scopes: ['bookings:read'], metadata: { plan: 'a' } });
    const ask = (uses?: number) =>
      app.authenticate({ key: k.key, ip: '198.51.100.4', scope: 'bookings:read', ...(uses ? { uses } : {}) });
    const first = await ask();
    t.same(await ask(), first, 'the same answer twice (the second one from memory)');
    t.same(
      {
        allowed: first.allowed,
        metadata: JSON.parse(first.metadata),
        scopes: first.scopes,
        allowed_uses: first.allowed_uses,
      },
      { allowed: true, metadata: { plan: 'a' }, scopes: ['bookings:read'], allowed_uses: 1 },
    );
    t.same(await ask(3), { ...first, allowed_uses: 3 }, 'three uses: all three allowed');

    const patched = await app.api('PATCH', `/v1/accounts/${ACCOUNT}/keys/${k.id}`, {
      metadata: { plan: 'b' },
      scopes: ['bookings:read', 'customers:read'],
    });
    t.equal(patched.status, 200);
    const after = await ask();
    t.same(
      { metadata: JSON.parse(after.metadata), scopes: after.scopes, allowed_uses: after.allowed_uses },
      { metadata: { plan: 'b' }, scopes: ['bookings:read', 'customers:read'], allowed_uses: 1 },
      'the changed metadata and scopes',
    );
    t.same(await ask(), after, 'and again from memory');
    t.equal((await app.api('POST', `/v1/accounts/${ACCOUNT}/keys/${k.id}/revoke`, {})).status, 200);
    t.same(
      await ask(),
      { ...after, allowed: false, reason: 'KEY_REVOKED', allowed_uses: 0 },
      'revoked: denied, with who the key is',
    );
  },
);

t.test('KEY_MALFORMED: garbage, empty, wrong checksum, decorated keys', async (t) => {
  const { key } = await issue();
  const lastFlipped = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
  const secretFlipped = key.slice(0, 40) + (key[40] === 'A' ? 'B' : 'A') + key.slice(41);
  for (const bad of [
    'garbage',
    '',
    'otesse_live_sk_',
    lastFlipped,
    secretFlipped,
    `Bearer ${key}`,
    ` ${key}`,
    key.toUpperCase(),
    key.replace('otesse_live_sk_', 'otesse_test_sk_'),
  ]) {
    const res = await app.authenticate({ key: bad, ip: '203.0.113.7', scope: 'bookings:read' });
    t.same(
      res,
      { allowed: false, reason: 'KEY_MALFORMED', ...NOBODY },
      `${JSON.stringify(bad.slice(0, 24))}… is malformed`,
    );
  }
  t.equal((await app.authenticate({ key, scope: 'bookings:read' })).allowed, true, 'the key itself is fine');
});

t.test('KEY_UNKNOWN: an id never created, a wrong secret, the other environment', async (t) => {
  const verificationsBefore = app.hasher.verifications;
  const neverCreated = generateKey('live').key;
  t.same(await app.authenticate({ key: neverCreated }), { allowed: false, reason: 'KEY_UNKNOWN', ...NOBODY });
  t.same(
    await app.authenticate({ key: neverCreated }),
    { allowed: false, reason: 'KEY_UNKNOWN', ...NOBODY },
    'asked again',
  );
  t.equal(app.hasher.verifications, verificationsBefore, 'unknown ids are answered without hashing');

  const { key } = await issue();
  const forged = wrongSecret(key);
  t.not(forged, key);
  t.equal(partsOf(forged).publicId, partsOf(key).publicId, 'same key id');
  t.same(await app.authenticate({ key: forged }), { allowed: false, reason: 'KEY_UNKNOWN', ...NOBODY }, 'wrong secret');

  t.equal((await app.authenticate({ key })).allowed, true, 'the real key still works after one wrong secret');

  const fresh = await issue();
  const { environment, publicId, secret } = partsOf(fresh.key);
  t.equal(environment, 'live');
  const relabelled = forgeKey('test', publicId, secret);
  t.same(
    await app.authenticate({ key: relabelled }),
    { allowed: false, reason: 'KEY_UNKNOWN', ...NOBODY },
    'the right id and secret under the other environment',
  );
  t.equal(
    (await app.authenticate({ key: fresh.key })).allowed,
    true,
    'the real key still works after a relabelled try',
  );
});

t.test('KEY_REVOKED, with the identity of the key', async (t) => {
  const { id, key } = await issue();
  t.equal((await app.authenticate({ key })).allowed, true, 'allowed (and now cached)');
  const revoked = await app.api('POST', `/v1/accounts/${ACCOUNT}/keys/${id}/revoke`, { reason: 'leaked' });
  t.equal(revoked.status, 200);
  const res = await app.authenticate({ key });
  t.same(res, {
    allowed: false,
    reason: 'KEY_REVOKED',
    key_id: id,
    account_id: ACCOUNT,
    environment: 'live',
    scopes: ['bookings:read'],
    ...DENIED,
  });
});

t.test('KEY_EXPIRED: checked on every call, cache hits included', async (t) => {
  const expiresAt = Date.now() + 2000;
  const cached = await issue({ expires_at: new Date(expiresAt).toISOString() });
  const cold = await issue({ expires_at: new Date(expiresAt).toISOString() });
  t.equal((await app.authenticate({ key: cached.key })).allowed, true, 'allowed before expiry (and now cached)');
  const verifications = app.hasher.verifications;
  await sleep(expiresAt - Date.now() + 100);
  const res = await app.authenticate({ key: cached.key });
  t.equal(res.allowed, false);
  t.equal(res.reason, 'KEY_EXPIRED', 'a cache hit after expiry is denied');
  t.equal(res.key_id, cached.id);
  t.equal(app.hasher.verifications, verifications, 'it was answered from the cache');
  const coldRes = await app.authenticate({ key: cold.key });
  t.equal(coldRes.reason, 'KEY_EXPIRED', 'a key first seen after expiry is denied');
});

t.test('IP_NOT_ALLOWED: v4, v6, CIDRs and IPv4-mapped callers', async (t) => {
  const { id, key } = await issue({
    allowed_ips: ['10.0.0.0/8', '2001:db8::/32', '::ffff:192.0.2.0/120', '198.51.100.7'],
  });
  for (const ip of [
    '10.1.2.3',
    '::ffff:10.1.2.3',
    '2001:db8:ab::5',
    '192.0.2.200',
    '::ffff:192.0.2.1',
    '198.51.100.7',
  ]) {
    t.equal((await app.authenticate({ key, ip })).allowed, true, `allowed from ${ip}`);
  }
  for (const ip of ['11.0.0.1', '::ffff:11.0.0.1', '2001:db9::1', '192.0.3.1', '198.51.100.8', '::1']) {
    const res = await app.authenticate({ key, ip });
    t.same(
      res,
      {
        allowed: false,
        reason: 'IP_NOT_ALLOWED',
        key_id: id,
        account_id: ACCOUNT,
        environment: 'live',
        scopes: ['bookings:read'],
        ...DENIED,
      },
      `denied from ${ip}`,
    );
  }
});

t.test('SCOPE_NOT_GRANTED: a scope grants exactly itself', async (t) => {
  const { id, key } = await issue({ scopes: ['bookings:write', 'webhooks:manage'] });
  t.equal((await app.authenticate({ key, scope: 'bookings:write' })).allowed, true);
  t.equal((await app.authenticate({ key, scope: 'webhooks:manage' })).allowed, true);
  for (const scope of ['bookings:read', 'customers:write', 'services:read']) {
    const res = await app.authenticate({ key, scope });
    t.equal(res.reason, 'SCOPE_NOT_GRANTED', `${scope} is not granted (write does not imply read)`);
    t.equal(res.key_id, id);
    t.same(res.scopes, ['bookings:write', 'webhooks:manage']);
  }
});

t.test('TOO_MANY_FAILURES: a key id with too many wrong secrets is refused without hashing', async (t) => {
  const warm = await issue();
  const cold = await issue();
  const other = await issue();
  t.equal((await app.authenticate({ key: warm.key })).allowed, true, 'warm is verified and cached before the attack');
  for (const target of [warm, cold]) {
    for (let i = 0; i < FAILURE_LIMIT; i++) {
      t.equal(
        (await app.authenticate({ key: wrongSecret(target.key) })).reason,
        'KEY_UNKNOWN',
        `wrong secret ${i + 1}`,
      );
    }
    const before = app.hasher.verifications;
    t.equal((await app.authenticate({ key: wrongSecret(target.key) })).reason, 'TOO_MANY_FAILURES', 'past the limit');
    t.equal((await app.authenticate({ key: wrongSecret(target.key) })).reason, 'TOO_MANY_FAILURES');
    t.equal(app.hasher.verifications, before, 'no argon2 verification past the limit');
  }
  t.equal(
    (await app.authenticate({ key: warm.key })).allowed,
    true,
    'a key verified before keeps working from the cache',
  );
  t.equal(
    (await app.authenticate({ key: cold.key })).reason,
    'TOO_MANY_FAILURES',
    'an unverified right key is refused too (design)',
  );
  t.equal((await app.authenticate({ key: other.key })).allowed, true, 'other key ids are not affected');
});

t.test('INVALID_ARGUMENT for a caller bug: bad ip, unknown scope', async (t) => {
  const { key } = await issue();
  const expectInvalid = async (req: { ip?: string; scope?: string; key?: string }, field: string) => {
    try {
      const res = await app.authenticate({ key, ...req });
      t.fail(`expected INVALID_ARGUMENT, got ${JSON.stringify(res)}`);
    } catch (err) {
      const e = err as grpc.ServiceError;
      t.equal(e.code, grpc.status.INVALID_ARGUMENT, `${JSON.stringify(req)} → INVALID_ARGUMENT`);
      t.match(e.details, field);
      t.notOk(e.details.includes(key), 'the error does not echo the key');
    }
  };
  for (const ip of ['1.2.3', '01.2.3.4', '300.1.1.1', 'abc', '', '10.0.0.0/8', ' 10.0.0.1'])
    await expectInvalid({ ip }, 'ip');
  for (const scope of ['bookings:delete', '', 'BOOKINGS:READ', 'bookings:*', 'admin'])
    await expectInvalid({ scope }, 'scope');
  await expectInvalid({ key: 'garbage', ip: 'abc' }, 'ip');
  t.equal((await app.authenticate({ key, ip: '203.0.113.7', scope: 'bookings:read' })).allowed, true);
});

t.test('grpc.health.v1 answers SERVING for the server and for liveness', async (t) => {
  const health = healthClient(t, app.grpcPort);
  t.equal(await health.check(''), 'SERVING');
  t.equal(await health.check('liveness'), 'SERVING');
  t.equal(await health.check('otesse.keys.v1.KeyService'), 'SERVING');
  await t.rejects(health.check('no.such.Service'), { code: grpc.status.NOT_FOUND });
});

t.test('server reflection lists the KeyService and describes it', async (t) => {
  for (const version of ['v1', 'v1alpha'] as const) {
    const list = await reflect(t, app.grpcPort, version, { list_services: '' });
    const names = list.list_services_response?.service.map((s) => s.name) ?? [];
    t.ok(names.includes('otesse.keys.v1.KeyService'), `${version} lists ${names.join(', ')}`);
    const file = await reflect(t, app.grpcPort, version, { file_containing_symbol: 'otesse.keys.v1.KeyService' });
    const descriptors = file.file_descriptor_response?.file_descriptor_proto ?? [];
    t.ok(descriptors.length > 0, `${version} returns the file descriptor`);
    t.ok(
      descriptors.some((d) => Buffer.from(d).toString('latin1').includes('Authenticate')),
      'it describes Authenticate',
    );
  }
});

t.test('no key created here was ever logged', async (t) => {
  t.ok(issued.length >= 10, `${issued.length} keys created`);
  t.equal(app.log.level, 'debug');
  t.same(leakedLogLines(issued), []);
});
