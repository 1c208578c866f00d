import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';
import { startProxy } from '../helpers/proxy.js';
import { startRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/replica.js';

const ENV = { CHANGE_POLL_MS: '60000', HEARTBEAT_MS: '200', CACHE_TTL_SECONDS: '600' };

/**
 * Authenticate every key on every node in a loop until stopped; tallies what came back.
 * `revoked` holds keys whose revoke has returned (an allow is stale), `revoking` keys whose revoke was sent.
 */
function traffic(nodes: Node[], keys: { secret: string; id: string }[], revoked: Set<string>, revoking: Set<string>) {
  const tally = { calls: 0, errors: 0, staleAllows: 0, wrongDenies: 0 };
  let running = true;
  const loop = async (n: Node) => {
    for (let i = 0; running && i < 100_000; i++) {
      const k = keys[i % keys.length]!;
      const wasRevoked = revoked.has(k.id);
      const r = await n.tryAuthenticate({ key: k.secret });
      tally.calls++;
      if (r.code !== grpc.status.OK || !r.res) tally.errors++;
      else if (r.res.allowed && wasRevoked) tally.staleAllows++;
      else if (!r.res.allowed && !revoking.has(k.id)) tally.wrongDenies++;
    }
  };
  const done = Promise.all(nodes.map(loop));
  return { tally, stop: async () => { running = false; await done; return tally; } };
}

t.test('Redis killed and restarted mid-traffic: every call answered correctly, revokes hold throughout', async (t) => {
  const redis = await startRedis(t);
  const { nodes } = await startCluster(t, 3, { ...ENV, REDIS_URL: redis.url });
  const [a, b, c] = nodes as [Node, Node, Node];
  const keys = await createKeys(a, 12);
  const revoked = new Set<string>();
  const revoking = new Set<string>();
  const load = traffic([b, c], keys, revoked, revoking);
  await new Promise((r) => setTimeout(r, 300));

  await redis.kill();
  t.ok(await waitFor(async () => !(await b.ready()) && !(await c.ready())), 'replicas report not ready without Redis');
  for (const k of keys.slice(0, 4)) {
    revoking.add(k.id);
    const res = await a.api('POST', `/v1/accounts/acct_1/keys/${k.id}/revoke`, {});
    t.equal(res.status, 200, 'revoke still commits with Redis down');
    t.equal(res.body.propagation.published, false, 'and says it could not be published');
    revoked.add(k.id);
    for (const n of [b, c]) t.equal((await n.authenticate({ key: k.secret })).reason, 'KEY_REVOKED', 'denied from PostgreSQL while Redis is down');
  }
  await new Promise((r) => setTimeout(r, 300));

  await redis.restart();
  t.ok(await waitFor(async () => (await b.ready()) && (await c.ready()), 15_000), 'ready again after resubscribing and catching up');
  for (const k of keys.slice(4, 8)) {
    revoking.add(k.id);
    const res = await a.api('POST', `/v1/accounts/acct_1/keys/${k.id}/revoke`, {});
    revoked.add(k.id);
    t.equal(res.body.propagation.confirmed, 3, 'confirmed by all three after recovery');
    for (const n of [b, c]) t.equal((await n.authenticate({ key: k.secret })).reason, 'KEY_REVOKED');
  }
  const tally = await load.stop();
  t.ok(tally.calls > 200, `traffic ran throughout (${tally.calls} calls)`);
  t.equal(tally.errors, 0, 'no call failed');
  t.equal(tally.staleAllows, 0, 'no revoked key was allowed');
  t.equal(tally.wrongDenies, 0, 'no active key was denied');
});

t.test('a half-open Redis (socket open, nothing passes) is detected by the heartbeat', async (t) => {
  const redis = await startRedis(t);
  const proxy = await startProxy(t, redis.port);
  const { nodes } = await startCluster(t, 3, { ...ENV, REDIS_URL: proxy.url('redis') });
  const [a, b] = nodes as [Node, Node, Node];
  const [k1, k2] = await createKeys(a, 2) as [{ id: string; secret: string }, { id: string; secret: string }];
  t.equal((await b.authenticate({ key: k1.secret })).allowed, true, 'cached on b');

  proxy.stall();
  t.ok(await waitFor(async () => !(await b.ready()), 5000), 'b notices the silent subscription and reports not ready');
  const res = await a.api('POST', `/v1/accounts/acct_1/keys/${k1.id}/revoke`, {});
  t.equal(res.status, 200);
  t.equal((await b.authenticate({ key: k1.secret })).reason, 'KEY_REVOKED', 'b decides from PostgreSQL, not its dropped cache');
  t.equal((await b.authenticate({ key: k2.secret })).allowed, true, 'and still allows what is allowed');

  proxy.heal();
  t.ok(await waitFor(async () => b.ready(), 15_000), 'ready again once Redis answers');
  const again = await a.api('POST', `/v1/accounts/acct_1/keys/${k2.id}/revoke`, {});
  t.equal(again.body.propagation.confirmed, 3);
  t.equal((await b.authenticate({ key: k2.secret })).reason, 'KEY_REVOKED');
});
