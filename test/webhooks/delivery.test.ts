// Delivery: a failed attempt is retried on the schedule under the same webhook-id, and the retry route
// makes it due now; after a secret rotation both secrets sign during the overlap; 410 Gone, or three
// days of failures, turn the endpoint off (audited) until its owner turns it on again.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { Webhook } from 'standardwebhooks';
import { RETRY_SCHEDULE_SECONDS } from '../../src/domain/webhook.js';
import { createKey, startTestApp } from '../helpers/app.js';
import { waitFor } from '../helpers/harness/process.js';
import { startReceiver, type Received } from '../helpers/webhook-receiver.js';
import { addEndpoint, deliveriesOf, hooksPath, sqlClient } from '../helpers/webhooks.js';

const app = await startTestApp(t, { WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_POLL_MS: '200' });
const sql = await sqlClient(t, app.env.DATABASE_URL as string);

/** Wait until the endpoint's deliveries satisfy `pred`; the last list read. */
async function deliveriesUntil(account: string, endpointId: string, pred: (d: any[]) => boolean, ms = 10_000) {
  let last: any[] = [];
  const ok = await waitFor(async () => pred((last = await deliveriesOf(app, account, endpointId))), ms, 100);
  if (!ok) throw new Error(`deliveries never as awaited: ${JSON.stringify(last)}`);
  return last;
}

const endpointOf = async (account: string, id: string) => (await app.api('GET', hooksPath(account, id))).body;

async function auditOf(account: string) {
  const res = await app.api('GET', `/v1/accounts/${account}/audit-log?limit=100`);
  return res.body.data as { action: string; actor: string; changes: any }[];
}

t.test(
  'receiver down then up: retried after the first delay, the same webhook-id; the list shows each attempt',
  async (t) => {
    const acct = 'acct_retry';
    const r = await startReceiver(t);
    let calls = 0;
    r.state.answer = () => (++calls === 1 ? 500 : 204);
    const ep = await addEndpoint(app, acct, r.url, ['key.created']);
    r.state.secrets.push(ep.secret);
    const k = await createKey(app, acct);
    await r.until((x) => x.length >= 1);
    const failed = await deliveriesUntil(acct, ep.id, (d) => d[0]?.attempt_log.length === 1);
    const d = failed[0];
    t.equal(d.state, 'pending', 'pending after a failure');
    t.equal(d.attempts, 1);
    t.equal(d.event_type, 'key.created');
    t.same(
      { n: d.attempt_log[0].n, status_code: d.attempt_log[0].status_code, error: d.attempt_log[0].error },
      { n: 1, status_code: 500, error: null },
      'the failed attempt with its status',
    );
    t.equal(d.attempt_log[0].response, 'no', "the receiver's answer is kept");
    const delay = Date.parse(d.next_attempt_at) - Date.parse(d.attempt_log[0].at);
    t.ok(
      Math.abs(delay - (RETRY_SCHEDULE_SECONDS[0] as number) * 1000) < 1500,
      `the next attempt is due ${delay} ms after the failure`,
    );

    await r.until((x) => x.length >= 2, 15_000);
    const [first, second] = r.received as [Received, Received];
    t.equal(second.id, first.id, 'the retry has the same webhook-id');
    t.equal(second.event?.data.key.id, k.id);
    t.ok(first.verified && second.verified, 'both verify');
    t.equal(second.body, first.body, 'the same body');
    t.ok(second.at - first.at >= 4500, `retried ${second.at - first.at} ms later, not sooner`);
    const done = await deliveriesUntil(acct, ep.id, (x) => x[0]?.state === 'delivered');
    t.equal(done[0].attempts, 2);
    t.equal(done[0].next_attempt_at, null);
    t.same(
      done[0].attempt_log.map((a: { n: number; status_code: number }) => [a.n, a.status_code]),
      [
        [2, 204],
        [1, 500],
      ],
      'newest attempt first',
    );
    t.equal(done.length, 1, 'one delivery, two attempts');
  },
);

t.test('the retry route makes a delivery due now, under the same webhook-id', async (t) => {
  const acct = 'acct_retry_route';
  const r = await startReceiver(t);
  r.state.answer = () => 503;
  const ep = await addEndpoint(app, acct, r.url, ['key.created']);
  r.state.secrets.push(ep.secret);
  await createKey(app, acct);
  const [d] = await deliveriesUntil(acct, ep.id, (x) => x[0]?.attempt_log.length === 1);
  // As if late in the schedule: the next attempt an hour away.
  await sql.query(`UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = $1`, [d.id]);
  r.state.answer = () => 204;
  const retry = await app.api('POST', `${hooksPath(acct, ep.id)}/deliveries/${d.id}/retry`);
  t.equal(retry.status, 202);
  await r.until((x) => x.length >= 2, 5000);
  t.equal(r.received[1]?.id, d.event_id, 'sent now, the same webhook-id');
  const [after] = await deliveriesUntil(acct, ep.id, (x) => x[0]?.state === 'delivered');
  t.equal(after.attempts, 2);
  // A delivered one is sent again too (the receiver lost it), still under its id.
  t.equal((await app.api('POST', `${hooksPath(acct, ep.id)}/deliveries/${d.id}/retry`)).status, 202);
  await r.until((x) => x.length >= 3, 5000);
  t.equal(r.received[2]?.id, d.event_id);
  t.ok(r.received.every((x) => x.verified));
  t.equal(
    (await app.api('POST', `${hooksPath(acct, ep.id)}/deliveries/whd_${'a'.repeat(20)}/retry`)).status,
    404,
    'an unknown delivery is 404',
  );
  const other = await addEndpoint(app, acct, r.url, ['key.revoked']);
  t.equal(
    (await app.api('POST', `${hooksPath(acct, other.id)}/deliveries/${d.id}/retry`)).status,
    404,
    "another endpoint's delivery is 404",
  );
  t.ok(
    (await auditOf(acct)).some((a) => a.action === 'webhook_delivery.retried' && a.changes.delivery_id === d.id),
    'the retry is audited',
  );
  t.equal((await app.api('PATCH', hooksPath(acct, ep.id), { enabled: false })).status, 200);
  const refused = await app.api('POST', `${hooksPath(acct, ep.id)}/deliveries/${d.id}/retry`);
  t.equal(refused.status, 409, 'a retry to a disabled endpoint is refused, as a test event is');
});

/** The v1 signatures of a request. */
const signatures = (r: Received) => r.signature.split(' ');
const verifies = (secret: string, r: Received) => {
  try {
    new Webhook(secret).verify(r.body, {
      'webhook-id': r.id,
      'webhook-timestamp': r.timestamp,
      'webhook-signature': r.signature,
    });
    return true;
  } catch {
    // A signature that does not verify with this secret: the answer asked for.
    return false;
  }
};

t.test('after rotate-secret both secrets sign during the overlap; each verifies alone', async (t) => {
  const acct = 'acct_rotate_secret';
  const r = await startReceiver(t);
  const ep = await addEndpoint(app, acct, r.url, ['key.created']);
  const old = ep.secret;
  await createKey(app, acct);
  await r.until((x) => x.length >= 1);
  t.equal(signatures(r.received[0] as Received).length, 1, 'one signature before the rotation');
  t.ok(verifies(old, r.received[0] as Received));

  const res = await app.api('POST', `${hooksPath(acct, ep.id)}/rotate-secret`);
  t.equal(res.status, 200);
  const fresh = res.body.secret as string;
  t.match(fresh, /^whsec_/);
  t.not(fresh, old);
  const until = Date.parse(res.body.previous_secret_until);
  t.ok(Math.abs(until - Date.now() - 24 * 3_600_000) < 60_000, 'the overlap lasts 24 hours');
  await createKey(app, acct);
  await r.until((x) => x.length >= 2);
  const during = r.received[1] as Received;
  t.equal(signatures(during).length, 2, 'two v1 signatures during the overlap');
  t.ok(signatures(during).every((s) => s.startsWith('v1,')));
  t.ok(verifies(old, during), 'verifies with the old secret alone');
  t.ok(verifies(fresh, during), 'verifies with the new secret alone');
  t.notOk(verifies(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, during), 'not with any secret');

  // The overlap over: the new secret alone.
  await sql.query(`UPDATE webhook_endpoints SET previous_secret_until = now() - interval '1 second' WHERE id = $1`, [
    ep.id,
  ]);
  await createKey(app, acct);
  await r.until((x) => x.length >= 3);
  const after = r.received[2] as Received;
  t.equal(signatures(after).length, 1, 'one signature after the overlap');
  t.ok(verifies(fresh, after));
  t.notOk(verifies(old, after), 'the old secret no longer verifies');
  t.equal((await endpointOf(acct, ep.id)).previous_secret_until, null);
});

t.test('410 Gone turns the endpoint off (audited); turning it on again resumes', async (t) => {
  const acct = 'acct_gone';
  const r = await startReceiver(t);
  r.state.answer = () => 410;
  const ep = await addEndpoint(app, acct, r.url, ['key.created']);
  r.state.secrets.push(ep.secret);
  await createKey(app, acct);
  await r.until((x) => x.length >= 1);
  t.ok(await waitFor(async () => (await endpointOf(acct, ep.id)).enabled === false, 5000), 'disabled');
  const off = await endpointOf(acct, ep.id);
  t.equal(off.disabled_reason, 'gone');
  const [d] = await deliveriesUntil(acct, ep.id, (x) => x[0]?.state === 'failed');
  t.equal(d.attempts, 1, 'not retried');
  t.equal(d.next_attempt_at, null);
  const entry = (await auditOf(acct)).find((a) => a.action === 'webhook_endpoint.disabled');
  t.equal(entry?.actor, 'otesse-keys');
  t.equal(entry?.changes.endpoint_id, ep.id);
  t.equal(entry?.changes.reason, 'gone');

  await createKey(app, acct);
  t.equal((await deliveriesOf(app, acct, ep.id)).length, 1, 'nothing is queued for a disabled endpoint');

  r.state.answer = () => 204;
  const on = await app.api('PATCH', hooksPath(acct, ep.id), { enabled: true });
  t.equal(on.status, 200);
  t.equal(on.body.enabled, true);
  t.equal(on.body.disabled_reason, null, 'the reason is cleared');
  const k = await createKey(app, acct);
  await r.until((x) => x.some((y) => y.event?.data.key.id === k.id));
  await deliveriesUntil(acct, ep.id, (x) => x[0]?.state === 'delivered');
  t.equal(r.received.length, 2, 'the event made while off was never sent');
  const updated = (await auditOf(acct)).find((a) => a.action === 'webhook_endpoint.updated');
  t.same(updated?.changes.enabled, { from: false, to: true }, 'turning it on is audited');
});

t.test(
  'an endpoint failing for 3 days is turned off at its next failure (audited); 2 days is not enough',
  async (t) => {
    const acct = 'acct_failing';
    const r = await startReceiver(t);
    r.state.answer = () => 500;
    const days3 = await addEndpoint(app, acct, r.url, ['key.created']);
    const days2 = await addEndpoint(app, acct, r.url, ['key.created']);
    await sql.query(`UPDATE webhook_endpoints SET failing_since = now() - interval '3 days 1 minute' WHERE id = $1`, [
      days3.id,
    ]);
    await sql.query(`UPDATE webhook_endpoints SET failing_since = now() - interval '2 days' WHERE id = $1`, [days2.id]);
    await createKey(app, acct);
    await r.until((x) => x.length >= 2);
    t.ok(await waitFor(async () => (await endpointOf(acct, days3.id)).enabled === false, 5000), 'disabled');
    const off = await endpointOf(acct, days3.id);
    t.equal(off.disabled_reason, 'failing');
    t.ok(Date.now() - Date.parse(off.failing_since) > 3 * 86_400_000, 'failing_since is kept');
    await deliveriesUntil(acct, days2.id, (x) => x[0]?.attempt_log.length === 1);
    const still = await endpointOf(acct, days2.id);
    t.equal(still.enabled, true, 'two days of failures: still on');
    t.equal(still.disabled_reason, null);
    const disabled = (await auditOf(acct)).filter((a) => a.action === 'webhook_endpoint.disabled');
    t.equal(disabled.length, 1, 'one audit entry');
    t.equal(disabled[0]?.changes.endpoint_id, days3.id);
    t.equal(disabled[0]?.changes.reason, 'failing');
    t.equal(disabled[0]?.actor, 'otesse-keys');
  },
);

t.test('a redirect is not followed: the attempt failed with 302, the other address never called', async (t) => {
  const acct = 'acct_redirect';
  const target = await startReceiver(t);
  let hits = 0;
  const redirector = createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.writeHead(302, { location: target.url }).end());
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        redirector.closeAllConnections();
        redirector.close(() => resolve());
      }),
  );
  const port = (redirector.address() as AddressInfo).port;
  const ep = await addEndpoint(app, acct, `http://127.0.0.1:${port}/hooks`, ['key.created']);
  await createKey(app, acct);
  const [d] = await deliveriesUntil(acct, ep.id, (x) => x[0]?.attempt_log.length === 1);
  t.equal(hits, 1);
  t.equal(d.attempt_log[0].status_code, 302);
  t.equal(d.state, 'pending', 'not delivered: retried later, at the same URL');
  t.equal(target.connections, 0, 'the Location was never followed');
  t.equal((await endpointOf(acct, ep.id)).failing_since !== null, true, 'the endpoint counts as failing');
});
