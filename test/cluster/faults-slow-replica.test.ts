// Fault suite (design invariant 2): a replica that hears late, or not at all for a while, never
// allows what a returned revoke or narrowing PATCH took away: it confirms, or its lease runs out
// before the writer answers.
import t, { type Test } from 'tap';
import { createKeys } from '../helpers/cluster.js';
import { REDIS_URL } from '../helpers/db.js';
import { newTally, report, startReplicas, traffic, writeAndCheck } from '../helpers/faults.js';
import { startProxy } from '../helpers/proxy.js';

const redisPort = Number(new URL(REDIS_URL).port || 6379);

async function slowCluster(t: Test) {
  const proxy = await startProxy(t, redisPort);
  const { nodes } = await startReplicas(t, {}, [{}, {}, { REDIS_URL: proxy.url('redis') }]);
  const keys = await createKeys(nodes[0]!, 16);
  return { proxy, nodes: nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0]], keys };
}

for (const ms of [300, 2000]) {
  t.test(`one replica hears Redis ${ms} ms late: revokes and narrowing PATCHes hold on every replica`, async (t) => {
    const { proxy, nodes: [writer, r1, slow], keys } = await slowCluster(t);
    const tally = newTally(`subscriber delayed ${ms} ms`);
    const load = traffic([r1, slow], keys.slice(12), tally);
    proxy.delay(ms);
    await new Promise((r) => setTimeout(r, ms + 300));
    for (const [i, key] of keys.slice(0, 12).entries()) {
      t.equal(await writeAndCheck(writer, [r1, slow], key, i % 2 === 0 ? 'revoke' : 'narrow', tally), 200);
    }
    await load.stop();
    report(t, tally);
    t.equal(tally.writes, 12);
    t.equal(tally.staleAllows, 0, 'no stale allow');
    t.equal(tally.failed, 0, 'no failed call');
    const slowest = Math.max(...tally.waits);
    if (ms === 300) t.ok(Math.min(...tally.waits) >= 250, 'the writer waited for the late replica to confirm');
    else t.ok(slowest < 1500, `the writer waited for the lease to run out, not for the 2 s message (${Math.round(slowest)} ms)`);
  });
}

t.test('one replica paused (SIGSTOP) for 1.5 s across a revoke: it answers from PostgreSQL when it wakes', async (t) => {
  const { nodes: [writer, r1, paused], keys } = await slowCluster(t);
  const tally = newTally('replica paused 1.5 s (SIGSTOP)');
  const load = traffic([r1], keys.slice(12), tally);
  for (const [i, key] of keys.slice(0, 4).entries()) {
    await Promise.all([r1, paused].map((n) => n.authenticate({ key: key.secret, scope: 'bookings:write' })));
    paused.proc.kill('SIGSTOP');
    const wake = new Promise((r) => setTimeout(r, 1500)).then(() => paused.proc.kill('SIGCONT'));
    t.equal(await writeAndCheck(writer, [r1, paused], key, i % 2 === 0 ? 'revoke' : 'narrow', tally), 200);
    await wake;
  }
  await load.stop();
  report(t, tally);
  t.equal(tally.writes, 4);
  t.equal(tally.staleAllows, 0, 'no stale allow, from the paused replica either');
  t.equal(tally.failed, 0, 'no failed call');
  t.ok(Math.max(...tally.waits) < 1500, 'the writer did not wait for the paused replica to wake');
});
