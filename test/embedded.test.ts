// The embedded default: no DATABASE_URL (PGlite under DATA_DIR), no REDIS_URL (in-process cache
// and bus), no ADMIN_TOKENS (a development token in DATA_DIR/admin-token). One file: PGlite is slow to start.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { capturedLogs, startTestApp, type TestApp } from './helpers/app.js';
import { leakedLogLines } from './helpers/secrets.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const dataDir = mkdtempSync(join(tmpdir(), 'otesse-embedded-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const env: Record<string, string> = {
  DATA_DIR: dataDir,
  GRPC_PORT: '0',
  HTTP_PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'debug',
  ARGON2_MEMORY_KIB: '1024',
  ARGON2_TIME_COST: '1',
  SHUTDOWN_GRACE_MS: '2000',
  // The webhook receiver below listens on 127.0.0.1.
  WEBHOOK_ALLOW_PRIVATE: '1',
};
const tokenPath = join(dataDir, 'admin-token');
const logsSince = (from: number) => capturedLogs.slice(from).join('');

t.test('first start: PGlite, in-process cache, a development token', async (t) => {
  const logStart = capturedLogs.length;
  const app: TestApp = await startTestApp(t, {}, env);
  const mode = statSync(tokenPath).mode & 0o777;
  t.equal(mode.toString(8), '600', 'the token file is readable by its owner only');
  const token = readFileSync(tokenPath, 'utf8').trim();
  t.ok(token.length >= 16, 'a token was generated');
  const logs = logsSince(logStart);
  t.ok(logs.includes(tokenPath), 'the log says where the token is');
  t.notOk(logs.includes(token), 'the log does not hold the token');
  t.match(logs, /embedded PostgreSQL/);
  t.match(logs, /migrations applied/);

  const ready = await app.api('GET', '/readyz');
  t.same(ready.body, { status: 'ready', degraded: [] }, 'ready without Redis');
  t.equal(
    (await app.api('GET', '/v1/accounts/acct_e/keys')).status,
    401,
    'the test admin token is not configured here',
  );
  // Webhooks on PGlite: the outbox, the SKIP LOCKED claim and the advisory locks run there too.
  const receiver = await startReceiver(t);
  const endpoint = await app.api(
    'POST',
    '/v1/accounts/acct_e/webhook-endpoints',
    { url: receiver.url, events: ['key.created', 'key.revoked'] },
    token,
  );
  t.equal(endpoint.status, 201, 'a webhook endpoint is created on the embedded database');
  receiver.state.secrets.push(endpoint.body.secret);
  t.same(await app.webhooks.notices.runOnce(), { ran: true, events: 0 }, 'the scheduled notices run (nothing due)');
  const created = await app.api(
    'POST',
    '/v1/accounts/acct_e/keys',
    { label: 'embedded', scopes: ['services:read'], environment: 'test' },
    token,
  );
  t.equal(created.status, 201, 'the development token administers keys');
  t.equal(created.body.created_by, 'dev');
  const allowed = await app.authenticate({ key: created.body.secret, ip: '127.0.0.1', scope: 'services:read' });
  t.equal(allowed.allowed, true);
  t.equal(allowed.key_id, created.body.id);
  const revokeMe = await app.api(
    'POST',
    '/v1/accounts/acct_e/keys',
    { label: 'short-lived', scopes: ['services:read'], environment: 'test' },
    token,
  );
  t.equal((await app.authenticate({ key: revokeMe.body.secret, scope: 'services:read' })).allowed, true);
  t.equal((await app.api('POST', `/v1/accounts/acct_e/keys/${revokeMe.body.id}/revoke`, {}, token)).status, 200);
  t.equal(
    (await app.authenticate({ key: revokeMe.body.secret, scope: 'services:read' })).reason,
    'KEY_REVOKED',
    'the in-process bus evicts on revoke',
  );
  const events = await receiver.until((r) => r.length >= 3);
  t.ok(
    events.every((r) => r.verified),
    'each delivery verifies with standardwebhooks',
  );
  t.same(
    events.map((r) => `${r.event?.type} ${r.event?.data.key.id}`).sort(),
    [`key.created ${created.body.id}`, `key.created ${revokeMe.body.id}`, `key.revoked ${revokeMe.body.id}`].sort(),
    'key.created twice and key.revoked, delivered from the embedded outbox',
  );
  await app.close();

  await t.test('second start on the same DATA_DIR: the same token, the key still works', async (t) => {
    const restartLogs = capturedLogs.length;
    const again: TestApp = await startTestApp(t, {}, env);
    t.equal(readFileSync(tokenPath, 'utf8').trim(), token, 'the token is kept');
    t.notMatch(logsSince(restartLogs), /migrations applied/, 'nothing to migrate the second time');
    const res = await again.authenticate({ key: created.body.secret, ip: '127.0.0.1', scope: 'services:read' });
    t.equal(res.allowed, true, 'the key authenticates after a restart');
    t.equal(
      (await again.authenticate({ key: revokeMe.body.secret, scope: 'services:read' })).reason,
      'KEY_REVOKED',
      'and a revoke holds',
    );
    const list = await again.api('GET', '/v1/accounts/acct_e/keys', undefined, token);
    t.equal(list.status, 200);
    t.same(
      list.body.data.map((k: { id: string }) => k.id).sort(),
      [created.body.id, revokeMe.body.id].sort(),
      'both keys are listed',
    );
    t.same(leakedLogLines([created.body.secret, revokeMe.body.secret]), [], 'no key in the log');
    t.notOk(logsSince(0).includes(token), 'no admin token in the log');
  });
});
