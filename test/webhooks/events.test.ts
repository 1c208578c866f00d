// Every event type reaches an endpoint that asked for it, signed (verified with the standardwebhooks
// package by the receiver), with the data it promises and never a key's secret; an endpoint gets only
// the types it asked for, and a disabled one gets nothing (design: outbox).
import t, { type Test } from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { addEndpoint, eventsOf, hooksPath, quiet, sqlClient } from '../helpers/webhooks.js';
import { WEBHOOK_EVENT_TYPES } from '../../src/domain/webhook.js';

const app = await startTestApp(t, {
  WEBHOOK_ALLOW_PRIVATE: '1',
  WEBHOOK_POLL_MS: '200',
  // The scheduled notices run only when this test says so.
  WEBHOOK_SCHEDULE_MS: '86400000',
});
const sql = await sqlClient(t, app.env.DATABASE_URL as string);
const ACCT = 'acct_events';
const keys = `/v1/accounts/${ACCT}/keys`;
/** Every key secret made here: none may appear in any body. */
const secrets: string[] = [];
const make = async (label: string, account = ACCT) => {
  const k = await createKey(app, account, { label });
  secrets.push(k.secret);
  return k;
};

const all = await startReceiver(t);
const only = await startReceiver(t);
const off = await startReceiver(t);
const everything = [...WEBHOOK_EVENT_TYPES];
const allEp = await addEndpoint(app, ACCT, all.url, everything);
const onlyEp = await addEndpoint(app, ACCT, only.url, ['key.revoked']);
const offEp = await addEndpoint(app, ACCT, off.url, everything);
all.state.secrets.push(allEp.secret);
only.state.secrets.push(onlyEp.secret);
off.state.secrets.push(offEp.secret);
t.equal((await app.api('PATCH', hooksPath(ACCT, offEp.id), { enabled: false })).status, 200, 'one endpoint disabled');

/** The one verified event of `type` about `keyId` the all-events endpoint got (waits for it). */
async function one(type: string, keyId: string) {
  await all.until((r) => eventsOf(r, type, keyId).length > 0);
  await quiet(sql);
  const got = eventsOf(all.received, type, keyId);
  if (got.length !== 1) throw new Error(`${got.length} ${type} events for ${keyId}, not one`);
  return got[0] as NonNullable<(typeof got)[0]>;
}

/** The key as every event shows it: these four fields, nothing else (no hash, no metadata). */
const summary = (k: Record<string, unknown>) => ({
  id: k.id,
  label: k.label,
  redacted: k.redacted,
  environment: k.environment,
});

t.test('key.created: the key, who made it, the event id as webhook-id', async (t) => {
  const k = await make('created here');
  const e = await one('key.created', k.id);
  t.same(e.data, { account_id: ACCT, key: summary(k), created_by: 'admin' });
  const raw = all.received.find((r) => r.event === e);
  t.equal(raw?.id, e.id, 'webhook-id is the event id');
  t.match(e.id, /^evt_[A-Za-z0-9]{20}$/);
  t.ok(Math.abs(Date.parse(e.created_at) - Date.now()) < 60_000, 'created_at is now');
});

t.test('key.updated on PATCH names the changed fields', async (t) => {
  const k = await make('before');
  t.equal((await app.api('PATCH', `${keys}/${k.id}`, { label: 'after' })).status, 200);
  const e = await one('key.updated', k.id);
  t.same(e.data.key, summary({ ...k, label: 'after' }));
  t.same(e.data.changed, ['label']);
  t.equal(e.data.enabled, true);
  t.equal(e.data.by, 'admin');
});

t.test('key.rotated for the old key and key.created for the new one', async (t) => {
  const k = await make('rotating');
  const res = await app.api('POST', `${keys}/${k.id}/rotate`, {});
  t.equal(res.status, 201, JSON.stringify(res.body));
  secrets.push(res.body.secret);
  const rotated = await one('key.rotated', k.id);
  t.equal(rotated.data.replaced_by, res.body.id);
  t.equal(rotated.data.previous_expires_at, res.body.previous.expires_at);
  t.same(rotated.data.key, summary(k));
  const created = await one('key.created', res.body.id);
  t.equal(created.data.replaces, k.id);
  t.same(created.data.key, summary(res.body));
});

t.test('key.revoked with its reason; revoke-all sends one per key', async (t) => {
  const k = await make('revoked one');
  t.equal((await app.api('POST', `${keys}/${k.id}/revoke`, { reason: 'no longer needed' })).status, 200);
  const e = await one('key.revoked', k.id);
  t.same(e.data.key, summary(k));
  t.equal(e.data.reason, 'no longer needed');
  t.equal(e.data.by, 'admin');
  t.ok(
    eventsOf(only.received, 'key.revoked', k.id).length === 1,
    'the endpoint that asked for key.revoked only got it too',
  );

  // Another account: revoke-all there touches only its keys.
  const other = 'acct_events_all';
  const ep = await addEndpoint(app, other, all.url, ['key.revoked']);
  all.state.secrets.push(ep.secret);
  const three = [await make('a', other), await make('b', other), await make('c', other)];
  const res = await app.api('POST', `/v1/accounts/${other}/keys/revoke-all`, { reason: 'incident' });
  t.equal(res.body.revoked, 3);
  await all.until((r) => three.every((x) => eventsOf(r, 'key.revoked', x.id).length > 0));
  await quiet(sql);
  for (const x of three) {
    const got = eventsOf(all.received, 'key.revoked', x.id);
    t.equal(got.length, 1, `one key.revoked for ${x.id}`);
    t.equal(got[0]?.data.account_id, other);
    t.equal(got[0]?.data.via, 'revoke-all');
    t.equal(got[0]?.data.reason, 'incident');
  }
});

t.test('key.leaked says where it was found, and by whom', async (t) => {
  const k = await make('leaky');
  const res = await app.api('POST', `${keys}/leaked`, {
    keys: [k.secret],
    source: 'paste-scanner',
    url: 'https://paste.example/abc',
  });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.results[0].outcome, 'revoked');
  const e = await one('key.leaked', k.id);
  t.equal(e.data.source, 'paste-scanner');
  t.equal(e.data.url, 'https://paste.example/abc');
  t.equal(e.data.outcome, 'revoked');
  t.same(e.data.key, summary(k));
  t.equal((await one('key.revoked', k.id)).data.key.id, k.id, 'and the revoke it caused');
});

/** Two scheduled runs (the second must find nothing new), then deliver. */
async function twoRuns(t: Test) {
  const first = await app.webhooks.notices.runOnce();
  t.equal(first.ran, true);
  t.ok(first.events >= 1, `the first run wrote ${first.events} event(s)`);
  t.same(await app.webhooks.notices.runOnce(), { ran: true, events: 0 }, 'a second run sends nothing again');
  app.webhooks.delivery.nudge();
}

t.test('key.rotation_due 14 days before the 90-day mark and at it, once each', async (t) => {
  const k = await make('old key');
  await sql.query(`UPDATE api_keys SET created_at = now() - interval '76 days 1 hour' WHERE id = $1`, [k.id]);
  await twoRuns(t);
  const notice = await one('key.rotation_due', k.id);
  t.equal(notice.data.days_left, 14);
  const { rows } = await sql.query('SELECT created_at FROM api_keys WHERE id = $1', [k.id]);
  t.equal(notice.data.due_at, new Date(rows[0].created_at.getTime() + 90 * 86_400_000).toISOString());
  t.same(notice.data.key, summary(k));

  await sql.query(`UPDATE api_keys SET created_at = now() - interval '90 days 1 hour' WHERE id = $1`, [k.id]);
  await twoRuns(t);
  await all.until((r) => eventsOf(r, 'key.rotation_due', k.id).length >= 2);
  await quiet(sql);
  const got = eventsOf(all.received, 'key.rotation_due', k.id);
  t.same(
    got.map((e) => e.data.days_left),
    [14, 0],
    'one notice at 14 days, one at the mark',
  );
});

t.test('key.expiring at 7 days and 1 day, then key.expired, once each', async (t) => {
  const k = await make('expiring');
  const setExpiry = (interval: string) =>
    sql.query(`UPDATE api_keys SET expires_at = now() + interval '${interval}' WHERE id = $1`, [k.id]);
  await setExpiry('6 days 23 hours');
  await twoRuns(t);
  t.equal((await one('key.expiring', k.id)).data.days_left, 7);
  await setExpiry('23 hours');
  await twoRuns(t);
  await all.until((r) => eventsOf(r, 'key.expiring', k.id).length >= 2);
  await setExpiry('-1 minute');
  await twoRuns(t);
  const expired = await one('key.expired', k.id);
  t.equal(expired.data.days_left, 0);
  const { rows } = await sql.query('SELECT expires_at FROM api_keys WHERE id = $1', [k.id]);
  t.equal(expired.data.expires_at, rows[0].expires_at.toISOString());
  t.same(
    eventsOf(all.received, 'key.expiring', k.id).map((e) => e.data.days_left),
    [7, 1],
  );
});

t.test('key.new_address once per address a key is first used from (from the usage flush)', async (t) => {
  const k = await make('roaming');
  for (const ip of ['203.0.113.7', '198.51.100.23'])
    t.equal((await app.authenticate({ key: k.secret, ip })).allowed, true);
  await app.usage.flush();
  await all.until((r) => eventsOf(r, 'key.new_address', k.id).length >= 2);
  t.equal((await app.authenticate({ key: k.secret, ip: '203.0.113.7' })).allowed, true, 'a known address again');
  await app.usage.flush();
  app.webhooks.delivery.nudge();
  await quiet(sql);
  const got = eventsOf(all.received, 'key.new_address', k.id);
  t.same(
    got.map((e) => e.data.ip).sort(),
    ['198.51.100.23', '203.0.113.7'],
    'one event per new address, none for a repeat',
  );
  for (const e of got) t.ok(!Number.isNaN(Date.parse(e.data.first_seen)), 'first_seen');
});

t.test('key.quota_low under 10 % of the balance, key.quota_exhausted at 0, once each', async (t) => {
  const k = await make('metered');
  t.equal((await app.api('PATCH', `${keys}/${k.id}`, { remaining_uses: 50 })).status, 200);
  let allowed = 0;
  for (let i = 0; i < 60; i++) {
    const res = await app.authenticate({ key: k.secret, ip: '203.0.113.7' });
    if (!res.allowed) break;
    allowed++;
    // Flushed after each call, as a busy replica would every few seconds: each balance is seen.
    await app.usage.flush();
  }
  t.equal(allowed, 50, 'the quota allowed its balance');
  app.webhooks.delivery.nudge();
  await all.until((r) => eventsOf(r, 'key.quota_exhausted', k.id).length > 0);
  await quiet(sql);
  const low = eventsOf(all.received, 'key.quota_low', k.id);
  const out = eventsOf(all.received, 'key.quota_exhausted', k.id);
  t.equal(low.length, 1, 'one key.quota_low');
  t.equal(out.length, 1, 'one key.quota_exhausted');
  t.ok(low[0] && low[0].data.remaining_uses > 0 && low[0].data.remaining_uses < 5, 'low: under 10 % of 50, not 0');
  t.equal(low[0]?.data.of, 50);
  t.equal(out[0]?.data.remaining_uses, 0);
  t.equal(out[0]?.data.of, 50);
  t.equal(out[0]?.data.refill, null);
});

t.test('a small quota: no notice after one use, key.quota_exhausted once the balance is spent', async (t) => {
  const k = await createKey(app, ACCT, { label: 'ten uses', remaining_uses: 10 });
  secrets.push(k.secret);
  t.equal((await app.authenticate({ key: k.secret, ip: '203.0.113.7' })).allowed, true);
  await app.usage.flush();
  app.webhooks.delivery.nudge();
  await quiet(sql);
  const told = () => [
    ...eventsOf(all.received, 'key.quota_low', k.id),
    ...eventsOf(all.received, 'key.quota_exhausted', k.id),
  ];
  t.same(told(), [], 'nine uses left: neither low nor exhausted');
  let allowed = 1;
  for (let i = 0; i < 12; i++) {
    if (!(await app.authenticate({ key: k.secret, ip: '203.0.113.7' })).allowed) break;
    allowed++;
    await app.usage.flush();
  }
  t.equal(allowed, 10);
  app.webhooks.delivery.nudge();
  await all.until((r) => eventsOf(r, 'key.quota_exhausted', k.id).length > 0);
  await quiet(sql);
  t.same(
    told().map((e) => [e.type, e.data.remaining_uses]),
    [['key.quota_exhausted', 0]],
    'exhausted once, at the end',
  );
});

t.test('webhook.test goes to the endpoint asked, whatever events it chose', async (t) => {
  const res = await app.api('POST', `${hooksPath(ACCT, onlyEp.id)}/test`);
  t.equal(res.status, 202);
  t.match(res.body.event_id, /^evt_/);
  const [got] = await only.until((r) => r.some((x) => x.id === res.body.event_id));
  t.ok(got);
  const e = only.received.find((x) => x.id === res.body.event_id);
  t.equal(e?.verified, true);
  t.equal(e?.event?.type, 'webhook.test');
  t.equal(e?.event?.data.endpoint_id, onlyEp.id);
  t.equal(e?.event?.data.account_id, ACCT);
  await quiet(sql);
  t.notOk(
    all.received.some((x) => x.id === res.body.event_id),
    'the other endpoints of the account do not get it',
  );
  t.equal(
    (await app.api('POST', `${hooksPath(ACCT, offEp.id)}/test`)).status,
    409,
    'a disabled endpoint is not tested',
  );
});

t.test('each endpoint got only what it asked for; the disabled one nothing; no secret anywhere', async (t) => {
  await quiet(sql);
  t.ok(all.received.length >= 20, `${all.received.length} deliveries to the all-events endpoint`);
  t.ok(
    [...all.received, ...only.received].every((r) => r.verified && r.event?.id === r.id),
    'every request verified, its webhook-id the event id',
  );
  t.same(
    new Set(all.received.map((r) => r.event?.type)),
    new Set([...WEBHOOK_EVENT_TYPES]),
    'the all-events endpoint got every type',
  );
  t.same(
    new Set(only.received.map((r) => r.event?.type)),
    new Set(['key.revoked', 'webhook.test']),
    'the key.revoked endpoint got key.revoked (and the test it was sent) only',
  );
  t.ok(eventsOf(only.received, 'key.revoked').length >= 2);
  t.equal(off.connections, 0, 'the disabled endpoint was never called');
  const { rows } = await sql.query('SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1', [
    offEp.id,
  ]);
  t.equal(rows[0].n, 0, 'nor was anything written to the outbox for it');
  const bodies = [...all.received, ...only.received].map((r) => r.body).join('\n');
  t.ok(secrets.length >= 12, `${secrets.length} key secrets to look for`);
  for (const s of secrets) t.notOk(bodies.includes(s), 'no key secret in any body');
  t.notMatch(bodies, /otesse_(live|test)_sk_[0-9A-Za-z]{20}|secret_hash/, 'no whole key nor a hash at all');
  const { rows: stored } = await sql.query('SELECT body FROM webhook_events');
  const outbox = stored.map((r) => r.body as string).join('\n');
  for (const s of secrets) t.notOk(outbox.includes(s), 'nor in the outbox');
});
