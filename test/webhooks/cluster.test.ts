// Delivery across replica processes (design: outbox): every replica claims due deliveries with FOR
// UPDATE SKIP LOCKED, so each event is sent once; a replica killed with SIGKILL mid-send loses
// nothing: its claim runs out and another replica sends the event again under the same webhook-id.
import t from 'tap';
import { DELIVERY } from '../../src/domain/webhook.js';
import { createKeys, startCluster } from '../helpers/cluster.js';
import { startReceiver, type Received } from '../helpers/webhook-receiver.js';
import { addEndpoint, quiet, sqlClient } from '../helpers/webhooks.js';

const receiver = await startReceiver(t);
const { env, nodes } = await startCluster(t, 3, { WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_POLL_MS: '200' });
const sql = await sqlClient(t, env.DATABASE_URL as string);
const ACCT = 'acct_wh_cluster';
const keysPath = `/v1/accounts/${ACCT}/keys`;
const ep = await addEndpoint(nodes[0]!, ACCT, receiver.url, ['key.revoked', 'key.updated']);
receiver.state.secrets.push(ep.secret);

t.test('three replicas, 30 revokes made on all of them: each event delivered exactly once', async (t) => {
  const keys = await createKeys(nodes[0]!, 30, ACCT);
  const revoked = await Promise.all(
    keys.map((k, i) => nodes[i % nodes.length]!.api('POST', `${keysPath}/${k.id}/revoke`, { reason: `r${i}` })),
  );
  t.ok(
    revoked.every((r) => r.status === 200),
    'every revoke answered',
  );
  await receiver.until((r) => r.length >= 30, 30_000);
  await quiet(sql);
  const got = receiver.received;
  t.equal(got.length, 30, 'thirty requests, no more');
  t.equal(new Set(got.map((r) => r.id)).size, 30, 'thirty distinct webhook-ids');
  t.ok(
    got.every((r) => r.verified && r.event?.type === 'key.revoked'),
    'each verified',
  );
  t.same(new Set(got.map((r) => r.event?.data.key.id)), new Set(keys.map((k) => k.id)), 'one per key');
  const { rows } = await sql.query(
    `SELECT d.state, d.attempts, (SELECT count(*)::int FROM webhook_attempts a WHERE a.delivery_id = d.id) AS logged
     FROM webhook_deliveries d WHERE d.endpoint_id = $1`,
    [ep.id],
  );
  t.equal(rows.length, 30);
  t.ok(
    rows.every((r) => r.state === 'delivered' && r.attempts === 1 && r.logged === 1),
    'each delivery claimed and attempted once',
  );
  const { rows: by } = await sql.query('SELECT DISTINCT replica FROM webhook_attempts ORDER BY replica');
  t.ok(by.length >= 2, `attempts made by ${by.map((r) => r.replica).join(', ')}`);
});

t.test('a replica killed mid-delivery: another sends the event once its claim runs out, same webhook-id', async (t) => {
  const [k] = await createKeys(nodes[0]!, 1, ACCT);
  let hung: Received | undefined;
  receiver.state.answer = (r) => {
    if (!hung && r.event?.type === 'key.updated') {
      hung = r;
      return 'hang';
    }
    return 204;
  };
  t.equal((await nodes[1]!.api('PATCH', `${keysPath}/${k!.id}`, { label: 'changed' })).status, 200);
  await receiver.until(() => hung !== undefined);
  const eventId = hung!.id;
  const { rows } = await sql.query(
    `SELECT id, claimed_by, claimed_until, attempts,
       (extract(epoch FROM claimed_until - updated_at) * 1000)::int AS claim_ms
     FROM webhook_deliveries WHERE event_id = $1`,
    [eventId],
  );
  const claim = rows[0];
  t.match(claim.claimed_by, /^r[0-2]$/, `claimed by ${claim.claimed_by}`);
  t.equal(claim.attempts, 1);
  t.equal(claim.claim_ms, DELIVERY.claimMs, 'claimed for claimMs');
  const victim = nodes[Number(String(claim.claimed_by).slice(1))]!;
  await victim.kill();
  t.ok(victim.proc.signalCode === 'SIGKILL', 'the claimer was killed');

  await receiver.until((r) => r.filter((x) => x.id === eventId).length >= 2, DELIVERY.claimMs + 15_000);
  const again = receiver.received.filter((x) => x.id === eventId)[1] as Received;
  t.ok(
    again.at >= claim.claimed_until.getTime() - 250,
    `sent again ${again.at - claim.claimed_until.getTime()} ms after the claim ran out, not before`,
  );
  t.ok(again.verified, 'verified');
  t.equal(again.body, hung!.body, 'the same body');
  t.equal(again.event?.data.key.id, k!.id);
  await quiet(sql);
  const { rows: after } = await sql.query(
    'SELECT state, attempts, claimed_by FROM webhook_deliveries WHERE event_id = $1',
    [eventId],
  );
  t.same(after[0], { state: 'delivered', attempts: 2, claimed_by: null });
  const { rows: log } = await sql.query('SELECT n, replica, status_code FROM webhook_attempts WHERE delivery_id = $1', [
    claim.id,
  ]);
  t.equal(log.length, 1, 'the killed attempt left no record; the second one did');
  t.equal(log[0]?.n, 2);
  t.equal(log[0]?.status_code, 204);
  t.not(log[0]?.replica, claim.claimed_by, 'by another replica');
  t.equal(receiver.received.filter((x) => x.id === eventId).length, 2, 'sent twice in all: at least once, no more');
  const survivor = nodes.find((n) => n !== victim)!;
  const list = await survivor.api('GET', `/v1/accounts/${ACCT}/webhook-endpoints/${ep.id}/deliveries?limit=1`);
  t.equal(list.body.data[0].event_id, eventId);
  t.equal(list.body.data[0].state, 'delivered');
});
