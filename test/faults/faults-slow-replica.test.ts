// Fault suite (design: revoke-holds): a replica that hears late, or not at all for a while, never
// allows what a returned revoke or narrowing PATCH took away: it confirms, or its lease runs out
// before the writer answers. One cluster, three faults in turn on its third replica.
import t from 'tap';
import { createKeys } from '../helpers/cluster.js';
import { REDIS_URL } from '../helpers/db.js';
import { newTally, report, startReplicas, traffic, waitsOf, writeAndCheck } from '../helpers/faults.js';
import { startProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/replica.js';

const redisPort = Number(new URL(REDIS_URL).port || 6379);
const proxy = await startProxy(t, redisPort);
const { nodes } = await startReplicas(t, {}, [{}, {}, { REDIS_URL: proxy.url('redis') }]);
const [writer, r1, slow] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
const keys = await createKeys(writer, 22);
const active = keys.slice(18);

for (const [ms, batch] of [
  [300, keys.slice(0, 8)],
  [2000, keys.slice(8, 14)],
] as const) {
  t.test(`one replica hears Redis ${ms} ms late: revokes and narrowing PATCHes hold on every replica`, async (t) => {
    const tally = newTally(`subscriber delayed ${ms} ms`);
    const load = traffic([r1, slow], active, tally);
    proxy.delay(ms);
    await new Promise((r) => setTimeout(r, ms + 300));
    for (const [i, key] of batch.entries()) {
      t.equal(await writeAndCheck(writer, [r1, slow], key, i % 2 === 0 ? 'revoke' : 'narrow', tally), 200);
    }
    proxy.delay(0);
    await load.stop();
    report(t, tally);
    t.equal(tally.writes, batch.length);
    t.equal(tally.staleAllows, 0, 'no stale allow');
    t.equal(tally.failed, 0, 'no failed call');
    const slowest = Math.max(...waitsOf(tally));
    if (ms === 300) {
      // A write published while the late replica held its lease waits for its confirmation. On a loaded machine its
      // lease may lapse now and then (heartbeats come back late too); a write made then is not bound to it, and the
      // checks above show that replica decided from PostgreSQL meanwhile.
      const bound = tally.rounds.filter((r) => r.replicas === nodes.length);
      t.ok(
        bound.length > 0,
        `some writes were published while every replica held a lease (${tally.rounds.map((r) => r.replicas).join(', ')})`,
      );
      t.ok(
        bound.every((r) => r.waited >= 250),
        `each of those waited for the late replica (${bound.map((r) => Math.round(r.waited)).join(', ')} ms)`,
      );
    } else
      t.ok(
        slowest < 1500,
        `the writer waited for the lease to run out, not for the 2 s message (${Math.round(slowest)} ms)`,
      );
  });
}

t.test(
  'one replica paused (SIGSTOP) for 1.5 s across a revoke: it answers from PostgreSQL when it wakes',
  async (t) => {
    // The delayed bytes of the previous case have all arrived, and the replica holds its lease again.
    t.ok(
      await waitFor(async () => (await slow.metric('otesse_keys_cache_trusted')) === 1, 15_000),
      'the replica trusts its caches again',
    );
    const tally = newTally('replica paused 1.5 s (SIGSTOP)');
    const load = traffic([r1], active, tally);
    for (const [i, key] of keys.slice(14, 18).entries()) {
      const scope = i % 2 === 0 ? 'bookings:read' : 'bookings:write';
      await Promise.all([r1, slow].map((n) => n.authenticate({ key: key.secret, scope })));
      slow.proc.kill('SIGSTOP');
      const wake = new Promise((r) => setTimeout(r, 1500)).then(() => slow.proc.kill('SIGCONT'));
      // Warmed before the pause: the write is made while the replica is stopped.
      t.equal(
        await writeAndCheck(writer, [r1, slow], key, i % 2 === 0 ? 'revoke' : 'narrow', tally, { warm: false }),
        200,
      );
      await wake;
    }
    await load.stop();
    report(t, tally);
    t.equal(tally.writes, 4);
    t.equal(tally.staleAllows, 0, 'no stale allow, from the paused replica either');
    t.equal(tally.failed, 0, 'no failed call');
    // A replica that wakes finds its subscription silent for too long and reconnects: while it does it holds
    // no lease, and a write made then need not wait for it. A write made while it held one waits it out.
    const waits = waitsOf(tally);
    t.ok(
      waits.some((w) => w >= 500),
      `the writer waited out the paused replica's lease (waits ${waits.map(Math.round).join(', ')} ms)`,
    );
    t.ok(Math.max(...waits) < 1400, `and not for it to wake (${Math.round(Math.max(...waits))} ms at most)`);
  },
);
