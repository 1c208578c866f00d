// A rolling restart as clients see it: SIGTERM one of two replicas while a round-robin client
// keeps 32 calls in flight. No call fails, the replica exits 0 in time, and every call it
// answered is counted in the activity log (its usage was flushed on the way out).
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';
import { wrongSecret } from '../helpers/keys.js';
import { keyServiceClient } from '../helpers/ops/clients.js';
import { metric, scrape } from '../helpers/ops/prom.js';

const ROUND_ROBIN = { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('SIGTERM under round-robin load: zero failed calls, exit 0, usage flushed', async (t) => {
  // Usage is flushed only on the way out (the periodic flush is pushed out of reach). argon2 is
  // costly here so that wrong-secret calls (verified every time) are in flight for a while.
  const { nodes } = await startCluster(t, 2, {
    ACTIVITY_FLUSH_MS: '600000',
    SHUTDOWN_GRACE_MS: '5000',
    ARGON2_MEMORY_KIB: '32768',
    ARGON2_TIME_COST: '2',
    FAILED_ATTEMPTS_LIMIT: '1000',
  });
  const [a, b] = nodes as [Node, Node];
  const keys = await createKeys(a, 4);
  const client = keyServiceClient(
    t,
    `ipv4:127.0.0.1:${a.grpcPort},127.0.0.1:${b.grpcPort}`,
    grpc.credentials.createInsecure(),
    ROUND_ROBIN,
  );

  const tally = { started: 0, allowed: 0, denied: 0, failures: new Map<string, number>() };
  const end = Date.now() + 3000;
  // 28 workers send good keys (answered from memory), 4 send wrong secrets (argon2 each time).
  const worker = async (w: number) => {
    for (let i = w; Date.now() < end; i++) {
      const k = keys[i % keys.length]!;
      const slow = w < 4;
      tally.started++;
      const r = await client.authenticate({ key: slow ? wrongSecret(k.secret) : k.secret });
      if (r.code === grpc.status.OK && r.res?.allowed === !slow) tally[slow ? 'denied' : 'allowed']++;
      else {
        const what = r.code === grpc.status.OK ? `denied ${r.res?.reason}` : `${grpc.status[r.code]} ${r.details}`;
        tally.failures.set(what, (tally.failures.get(what) ?? 0) + 1);
      }
    }
  };
  const load = Promise.all(Array.from({ length: 32 }, (_, w) => worker(w)));

  await sleep(1000);
  const allowedBy = async (n: Node) =>
    metric(await scrape(`http://127.0.0.1:${n.httpPort}`), 'otesse_keys_authenticate_total', { outcome: 'allowed' });
  const bBefore = await allowedBy(b);
  t.ok(bBefore > 0, `b was taking its share (${bBefore} allowed in the first second, a ${await allowedBy(a)})`);
  const stopping = Date.now();
  const code = await b.stop();
  const stopMs = Date.now() - stopping;
  await load;

  t.same(Object.fromEntries(tally.failures), {}, `all ${tally.started} calls the client started succeeded`);
  t.equal(code, 0, 'b exited 0');
  t.ok(stopMs < 5000, `b stopped in ${stopMs} ms, within SHUTDOWN_GRACE_MS`);
  t.ok(
    b.logs.some((l) => l.includes('otesse key service stopped')),
    'b logged an orderly stop',
  );

  const aServed = await allowedBy(a);
  let counted = 0;
  let deniedCounted = 0;
  for (const k of keys) {
    const res = await a.api('GET', `/v1/accounts/acct_1/keys/${k.id}/activity`);
    counted += res.body.totals.allowed as number;
    deniedCounted += (res.body.totals.denied.KEY_UNKNOWN ?? 0) as number;
  }
  t.equal(counted, tally.allowed, `the activity log counts every allowed call (${tally.allowed})`);
  t.equal(deniedCounted, tally.denied, `and every wrong-secret deny (${tally.denied})`);
  t.ok(counted - aServed >= bBefore, `b flushed its ${counted - aServed} calls on the way out`);
});
