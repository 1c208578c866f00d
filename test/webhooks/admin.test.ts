// The endpoints' admin API: a viewer reads and never writes, another account's token is refused, bad
// input is one problem and changes nothing, an account has at most 20 endpoints, the signing secret
// shows in the create and rotate answers only, and every change is audited. Then retention: old
// events go with their deliveries and attempts.
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { MAX_ENDPOINTS } from '../../src/domain/webhook.js';
import { TEXT_LIMITS } from '../../src/domain/text.js';
import { RetentionJob } from '../../src/service/retention.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { LIMITED_TOKEN, createKey, startTestApp } from '../helpers/app.js';
import { assertProblem } from '../helpers/http.js';
import { waitFor } from '../helpers/harness/process.js';
import { adminJwt, jwksServer, jwtEnv, signingKey } from '../helpers/jwt.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { addEndpoint, deliveriesOf, hooksPath, quiet, sqlClient } from '../helpers/webhooks.js';

const key = await signingKey('ES256');
const jwks = await jwksServer(t, [key]);
const app = await startTestApp(t, {
  ...jwtEnv(jwks.url),
  WEBHOOK_ALLOW_PRIVATE: '1',
  WEBHOOK_POLL_MS: '200',
  RETENTION_WEBHOOK_DAYS: '7',
});
const sql = await sqlClient(t, app.env.DATABASE_URL as string);
const receiver = await startReceiver(t);
const A = 'acct_wh_admin';
const viewer = await adminJwt(key, { sub: 'vera@otesse.test', otesse_accounts: [A], otesse_role: 'viewer' });
const adminOfA = await adminJwt(key, { sub: 'ada@otesse.test', otesse_accounts: [A], otesse_role: 'admin' });

/** The account's endpoints and audit entries (but refusals, which are audited on purpose). */
async function state(account: string) {
  const endpoints = (await app.api('GET', hooksPath(account))).body.data;
  const audit = (await app.api('GET', `/v1/accounts/${account}/audit-log?limit=100`)).body.data.filter(
    (a: { action: string }) => !a.action.startsWith('admin.'),
  );
  const { rows } = await sql.query(
    'SELECT id, url, events, description, enabled, secret FROM webhook_endpoints ORDER BY id',
  );
  return { endpoints, audit, rows };
}

const ep = await addEndpoint(app, A, receiver.url, ['key.created'], { description: 'billing' });
receiver.state.secrets.push(ep.secret);
await createKey(app, A);
await receiver.until((r) => r.length >= 1);
await quiet(sql);
const [delivery] = await deliveriesOf(app, A, ep.id);

/** Every route of one endpoint: [method, path, body]. */
const routes = (account: string, id: string, deliveryId: string): [string, string, unknown?][] => [
  ['GET', hooksPath(account)],
  ['GET', hooksPath(account, id)],
  ['GET', `${hooksPath(account, id)}/deliveries`],
  ['POST', hooksPath(account), { url: receiver.url, events: ['key.revoked'] }],
  ['PATCH', hooksPath(account, id), { description: 'changed' }],
  ['POST', `${hooksPath(account, id)}/rotate-secret`],
  ['POST', `${hooksPath(account, id)}/test`],
  ['POST', `${hooksPath(account, id)}/deliveries/${deliveryId}/retry`],
  ['DELETE', hooksPath(account, id)],
];

t.test('a viewer reads but every write is 403 and changes nothing', async (t) => {
  const before = await state(A);
  for (const [method, path, body] of routes(A, ep.id, delivery.id)) {
    const res = await app.api(method, path, body, viewer);
    if (method === 'GET') t.equal(res.status, 200, `${method} ${path}`);
    else assertProblem(t, res, 403);
  }
  t.same(await state(A), before, 'nothing changed');
  t.equal(receiver.received.length, 1, 'no test event sent');
});

t.test("another account's token gets 403 on every route, and changes nothing", async (t) => {
  const before = await state(A);
  for (const [method, path, body] of routes(A, ep.id, delivery.id)) {
    assertProblem(t, await app.api(method, path, body, LIMITED_TOKEN), 403);
    const other = await adminJwt(key, { sub: 'bob', otesse_accounts: ['acct_other'], otesse_role: 'admin' });
    assertProblem(t, await app.api(method, path, body, other), 403);
  }
  // Our token, another account's endpoint id under our account: not found, not theirs.
  const theirs = await addEndpoint(app, 'acct_wh_theirs', receiver.url, ['key.created']);
  t.equal((await app.api('GET', hooksPath(A, theirs.id), undefined, adminOfA)).status, 404);
  t.equal((await app.api('DELETE', hooksPath(A, theirs.id), undefined, adminOfA)).status, 404);
  t.equal((await app.api('GET', hooksPath('acct_wh_theirs', theirs.id))).status, 200, 'still there');
  t.same((await state(A)).endpoints, before.endpoints, 'nothing changed');
});

t.test('bad input: one problem+json 400 naming the field, and nothing changes', async (t) => {
  const ok = { url: receiver.url, events: ['key.created'] };
  const create: [string, unknown, string][] = [
    ['an unknown event', { ...ok, events: ['key.created', 'key.exploded'] }, 'events/1'],
    ['no events', { ...ok, events: [] }, 'events'],
    ['events missing', { url: receiver.url }, 'events'],
    ['an event twice', { ...ok, events: ['key.created', 'key.created'] }, 'events'],
    ['a too long description', { ...ok, description: 'd'.repeat(TEXT_LIMITS.webhookDescription + 1) }, 'description'],
    ['a control character', { ...ok, description: 'ops\u0007team' }, 'description'],
    ['an unknown field', { ...ok, secret: 'whsec_mine' }, 'secret'],
    ['not a URL', { ...ok, url: 'not a url' }, 'url'],
    ['another scheme', { ...ok, url: `ftp://127.0.0.1:${receiver.port}/` }, 'url'],
    ['a URL with credentials', { ...ok, url: `http://u:p@127.0.0.1:${receiver.port}/` }, 'url'],
    ['a too long URL', { ...ok, url: `${receiver.url}?${'q'.repeat(TEXT_LIMITS.webhookUrl)}` }, 'url'],
  ];
  const before = await state(A);
  for (const [what, body, path] of create) {
    const res = await app.api('POST', hooksPath(A), body);
    t.test(what, async (t) => assertProblem(t, res, 400, [path]));
  }
  const patches: [string, unknown, string][] = [
    ['an empty change', {}, ''],
    ['an unknown event', { events: ['nope'] }, 'events/0'],
    ['enabled not a boolean', { enabled: 'yes' }, 'enabled'],
    ['a control character', { description: 'a\u001bb' }, 'description'],
  ];
  for (const [what, body, path] of patches) {
    const res = await app.api('PATCH', hooksPath(A, ep.id), body);
    t.test(`PATCH: ${what}`, async (t) => assertProblem(t, res, 400, path ? [path] : undefined));
  }
  for (const id of ['whe_short', `whe_${'a'.repeat(19)}!`, 'key_abcdefghijkl', `WHE_${'a'.repeat(20)}`]) {
    for (const method of ['GET', 'PATCH', 'DELETE']) {
      const res = await app.api(
        method,
        hooksPath(A, encodeURIComponent(id)),
        method === 'PATCH' ? { enabled: false } : undefined,
      );
      assertProblem(t, res, 400, ['endpointId']);
    }
  }
  assertProblem(t, await app.api('POST', `${hooksPath(A, ep.id)}/deliveries/whd_bad/retry`), 400, ['deliveryId']);
  assertProblem(t, await app.api('GET', `${hooksPath(A, ep.id)}/deliveries?limit=0`), 400, ['limit']);
  assertProblem(t, await app.api('GET', hooksPath(A, `whe_${'b'.repeat(20)}`)), 404);
  t.same(await state(A), before, 'nothing changed, nothing audited');
});

t.test(`at most ${MAX_ENDPOINTS} endpoints per account, even when created at once`, async (t) => {
  const acct = 'acct_wh_many';
  const results = await Promise.all(
    Array.from({ length: MAX_ENDPOINTS + 4 }, () =>
      app.api('POST', hooksPath(acct), { url: receiver.url, events: ['key.revoked'] }),
    ),
  );
  t.equal(results.filter((r) => r.status === 201).length, MAX_ENDPOINTS);
  const refused = results.filter((r) => r.status !== 201);
  t.equal(refused.length, 4);
  for (const r of refused) assertProblem(t, r, 409);
  t.equal((await app.api('GET', hooksPath(acct))).body.data.length, MAX_ENDPOINTS);
  const created = (await app.api('GET', `/v1/accounts/${acct}/audit-log?limit=100`)).body.data.filter(
    (a: { action: string }) => a.action === 'webhook_endpoint.created',
  );
  t.equal(created.length, MAX_ENDPOINTS, 'only the created ones are audited');
  // One deleted: room for one more.
  const first = results.find((r) => r.status === 201)?.body.id as string;
  t.equal((await app.api('DELETE', hooksPath(acct, first))).status, 204);
  t.equal((await app.api('POST', hooksPath(acct), { url: receiver.url, events: ['key.revoked'] })).status, 201);
});

t.test('the secret shows in the create and rotate answers only; every change is audited', async (t) => {
  const acct = 'acct_wh_audit';
  const r = await startReceiver(t);
  const foreign = { url: r.url, events: ['key.created'] };
  assertProblem(t, await app.api('POST', hooksPath(acct), foreign, adminOfA), 403);
  const made = await app.api('POST', hooksPath(acct), { ...foreign, description: 'first' });
  t.equal(made.status, 201);
  const id = made.body.id as string;
  const secrets = [made.body.secret as string];
  r.state.secrets.push(made.body.secret);
  const patched = await app.api('PATCH', hooksPath(acct, id), {
    url: `${r.url}/v2`,
    events: ['key.created', 'key.revoked'],
    description: null,
  });
  t.equal(patched.status, 200);
  t.notOk('secret' in patched.body, 'no secret in the PATCH answer');
  const rotated = await app.api('POST', `${hooksPath(acct, id)}/rotate-secret`);
  t.equal(rotated.status, 200);
  t.match(rotated.body.secret, /^whsec_/);
  secrets.push(rotated.body.secret);
  r.state.secrets.push(rotated.body.secret);
  const tested = await app.api('POST', `${hooksPath(acct, id)}/test`);
  t.equal(tested.status, 202);
  await r.until((x) => x.some((y) => y.id === tested.body.event_id && y.verified));
  await quiet(sql);
  const [d] = await deliveriesOf(app, acct, id);
  t.equal((await app.api('POST', `${hooksPath(acct, id)}/deliveries/${d.id}/retry`)).status, 202);
  await r.until((x) => x.filter((y) => y.id === tested.body.event_id).length >= 2);
  await quiet(sql);

  const reads = [
    await app.api('GET', hooksPath(acct)),
    await app.api('GET', hooksPath(acct, id)),
    await app.api('GET', `${hooksPath(acct, id)}/deliveries`),
    await app.api('GET', `/v1/accounts/${acct}/audit-log?limit=100`),
  ];
  for (const res of reads) {
    t.equal(res.status, 200);
    const text = JSON.stringify(res.body);
    for (const s of secrets) t.notOk(text.includes(s), 'no signing secret in a read');
    t.notMatch(text, /whsec_|"secret"/, 'not even its name');
  }
  t.equal(reads[1]?.body.url, `${r.url}/v2`);
  t.equal(reads[1]?.body.description, null);

  t.equal((await app.api('DELETE', hooksPath(acct, id))).status, 204);
  t.equal((await app.api('GET', hooksPath(acct, id))).status, 404, 'gone');
  t.equal((await app.api('DELETE', hooksPath(acct, id))).status, 404, 'deleting twice is 404');
  const { rows } = await sql.query('SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1', [id]);
  t.equal(rows[0].n, 0, 'its deliveries went with it');

  const audit = (await app.api('GET', `/v1/accounts/${acct}/audit-log?limit=100`)).body.data as {
    action: string;
    actor: string;
    changes: Record<string, any>;
  }[];
  const mine = audit.filter((a) => a.action.startsWith('webhook_')).reverse();
  t.same(
    mine.map((a) => a.action),
    [
      'webhook_endpoint.created',
      'webhook_endpoint.updated',
      'webhook_endpoint.secret_rotated',
      'webhook_endpoint.tested',
      'webhook_delivery.retried',
      'webhook_endpoint.deleted',
    ],
    'every change, in order',
  );
  t.ok(
    mine.every((a) => a.actor === 'admin' && a.changes.endpoint_id === id),
    'by whom, on which endpoint',
  );
  t.same(mine[0]?.changes, { endpoint_id: id, url: r.url, events: ['key.created'], description: 'first' });
  t.same(mine[1]?.changes.url, { from: r.url, to: `${r.url}/v2` });
  t.same(mine[1]?.changes.events, { from: ['key.created'], to: ['key.created', 'key.revoked'] });
  t.same(mine[1]?.changes.description, { from: 'first', to: null });
  t.ok(Date.parse(mine[2]?.changes.previous_secret_until) > Date.now(), 'the overlap end');
  t.equal(mine[3]?.changes.event_id, tested.body.event_id);
  t.equal(mine[4]?.changes.delivery_id, d.id);
  t.equal(mine[5]?.changes.url, `${r.url}/v2`);
});

t.test('retention: events older than RETENTION_WEBHOOK_DAYS go with their deliveries and attempts', async (t) => {
  const acct = 'acct_wh_retention';
  const r = await startReceiver(t);
  let n = 0;
  // The first attempt fails: the old events have attempts of both kinds.
  r.state.answer = () => (++n === 1 ? 500 : 204);
  const e = await addEndpoint(app, acct, r.url, ['key.created', 'key.revoked']);
  const k1 = await createKey(app, acct);
  await createKey(app, acct);
  await app.api('POST', `/v1/accounts/${acct}/keys/${k1.id}/revoke`, {});
  await r.until((x) => x.length >= 3);
  // Old: the first two events (made 8 days ago, beyond the 7 days kept).
  const events = (
    await sql.query('SELECT id FROM webhook_events WHERE account_id = $1 ORDER BY created_at, id', [acct])
  ).rows.map((x) => x.id as string);
  t.equal(events.length, 3);
  const old = (
    await sql.query(`SELECT ev.id FROM webhook_events ev WHERE ev.account_id = $1 AND ev.type = 'key.created'`, [acct])
  ).rows.map((x) => x.id as string);
  t.equal(old.length, 2);
  await sql.query(`UPDATE webhook_events SET created_at = now() - interval '8 days' WHERE id = ANY($1)`, [old]);
  const counts = async () =>
    (
      await sql.query(
        `SELECT (SELECT count(*)::int FROM webhook_events WHERE account_id = $1) AS events,
           (SELECT count(*)::int FROM webhook_deliveries WHERE endpoint_id = $2) AS deliveries,
           (SELECT count(*)::int FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
            WHERE d.endpoint_id = $2) AS attempts`,
        [acct, e.id],
      )
    ).rows[0];
  // The receiver answers before the attempt is recorded: wait for the three first attempts.
  t.ok(await waitFor(async () => (await counts()).attempts >= 3, 5000, 50), 'every delivery attempted');
  t.equal((await counts()).deliveries, 3);

  const config = loadConfig(app.env);
  t.equal(config.RETENTION_WEBHOOK_DAYS, 7);
  const db = new PgDatabase({ connectionString: app.env.DATABASE_URL as string });
  t.teardown(() => db.close());
  const job = new RetentionJob({
    db,
    policy: {
      changesDays: config.RETENTION_CHANGES_DAYS,
      activityBatchesDays: config.RETENTION_ACTIVITY_BATCHES_DAYS,
      usageDays: config.RETENTION_USAGE_DAYS,
      auditDays: config.RETENTION_AUDIT_DAYS,
      webhookDays: config.RETENTION_WEBHOOK_DAYS,
    },
  });
  const run = await job.runOnce();
  t.equal(run.ran, true);
  t.equal(run.deleted.webhook_events, 2, 'the two old events');
  const after = await counts();
  t.equal(after.events, 1, 'the recent event is kept');
  t.equal(after.deliveries, 1, 'the old deliveries went with their events');
  const { rows: left } = await sql.query(
    `SELECT count(*)::int AS n FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
     WHERE d.event_id = ANY($1)`,
    [old],
  );
  t.equal(left[0].n, 0, 'and their attempts');
  t.ok(after.attempts >= 1, 'the recent delivery keeps its attempts');
  const list = await deliveriesOf(app, acct, e.id);
  t.same(
    list.map((d) => d.event_type),
    ['key.revoked'],
    'the deliveries list shows the recent one only',
  );
});
