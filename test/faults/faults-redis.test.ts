// Fault suite (design: revoke-holds, untrusted-without-lease, readiness-is-local, redis-not-authority): Redis cut, half-open, restarted empty and restarted
// with its data. Writes keep holding on every replica, every replica stays ready and keeps
// answering, and a Redis entry that outlived a change never serves.
import { Redis } from 'ioredis';
import t from 'tap';
import { createKeys, type Node } from '../helpers/cluster.js';
import { newTally, report, startReplicas, traffic, writeAndCheck, type Tally } from '../helpers/faults.js';
import { startProxy } from '../helpers/proxy.js';
import { startRedis } from '../helpers/redis-server.js';
import { startReplica, waitFor } from '../helpers/replica.js';
import { node } from '../helpers/cluster.js';

/** Sample /readyz on every node until stopped; counts answers that were not 200. */
function readiness(nodes: Node[]) {
  let running = true;
  let samples = 0;
  let unready = 0;
  const loop = async () => {
    while (running) {
      for (const n of nodes) {
        samples++;
        if (!(await n.ready())) unready++;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const done = loop();
  return {
    stop: async () => {
      running = false;
      await done;
      return { samples, unready };
    },
  };
}

async function writes(writer: Node, checkers: Node[], keys: { id: string; secret: string }[], tally: Tally) {
  const statuses: number[] = [];
  for (const [i, key] of keys.entries())
    statuses.push(await writeAndCheck(writer, checkers, key, i % 2 === 0 ? 'revoke' : 'narrow', tally));
  return statuses;
}

t.test(
  'Redis cut, half-open, restarted with its data and restarted empty: no stale allow, no failed call, always ready',
  async (t) => {
    const redis = await startRedis(t, { persist: true });
    const proxy = await startProxy(t, redis.port);
    const { env, nodes } = await startReplicas(t, { REDIS_URL: proxy.url('redis'), CHANGE_POLL_MS: '1000' }, [
      {},
      {},
      {},
    ]);
    const [writer, r1, r2] = nodes as [Node, Node, Node];
    const keys = await createKeys(writer, 36);
    const active = keys.slice(32);
    const ready = readiness(nodes);

    const phase = async (name: string, fault: () => Promise<void>, heal: () => Promise<void>, batch: typeof keys) => {
      const tally = newTally(name);
      const load = traffic([r1, r2], active, tally);
      await fault();
      await new Promise((r) => setTimeout(r, 700)); // every lease has lapsed
      const during = await writes(writer, [r1, r2], batch.slice(0, 4), tally);
      t.ok(
        during.every((s) => s === 503),
        `${name}: writes during the fault answer 503 "committed" (${during.join(',')})`,
      );
      await new Promise((r) => setTimeout(r, 5000 - 700 - 4 * 700));
      await heal();
      t.ok(
        await waitFor(
          async () =>
            (await Promise.all(nodes.map((n) => n.metric('otesse_keys_cache_trusted')))).every((v) => v === 1),
          15_000,
        ),
        `${name}: every replica trusts its caches again`,
      );
      const after = await writes(writer, [r1, r2], batch.slice(4), tally);
      t.ok(
        after.every((s) => s === 200),
        `${name}: writes after recovery answer 200`,
      );
      await load.stop();
      report(t, tally);
      t.equal(tally.staleAllows, 0, `${name}: no stale allow`);
      t.equal(tally.failed, 0, `${name}: no failed call`);
    };

    await phase(
      'Redis cut 5 s',
      async () => proxy.cut(),
      async () => proxy.heal(),
      keys.slice(0, 8),
    );
    await phase(
      'Redis half-open 5 s',
      async () => proxy.stall(),
      async () => proxy.heal(),
      keys.slice(8, 16),
    );
    await phase(
      'Redis restarted empty',
      async () => redis.kill(),
      async () => redis.restart({ empty: true }),
      keys.slice(16, 24),
    );

    // Restarted with its data: an entry cached before a revoke comes back after it.
    const kept = keys[24]!;
    await Promise.all(nodes.map((n) => n.authenticate({ key: kept.secret })));
    const direct = new Redis(redis.url);
    t.teardown(() => direct.disconnect());
    t.ok(await direct.exists(`${env.REDIS_PREFIX}k:${kept.id}`), 'the key is cached in Redis');
    await redis.kill();
    const tally = newTally('Redis restarted with its data');
    const load = traffic([r1, r2], active, tally);
    await new Promise((r) => setTimeout(r, 700));
    t.equal(await writeAndCheck(writer, [r1, r2], kept, 'revoke', tally), 503, 'revoked while Redis is down');
    await redis.restart();
    const fresh = node(t, await startReplica(t, { ...env, REPLICA_ID: 'r9' }));
    const answers = await Promise.all([...nodes, fresh].map((n) => n.tryAuthenticate({ key: kept.secret })));
    t.same(
      answers.map((a) => a.res?.reason),
      ['KEY_REVOKED', 'KEY_REVOKED', 'KEY_REVOKED', 'KEY_REVOKED'],
      'no replica, new or old, serves the entry Redis kept',
    );
    const heldInRedis = async () =>
      Object.values(await direct.hgetall(`${env.REDIS_PREFIX}k:${kept.id}`)).map(
        (v) => JSON.parse(v.slice(v.indexOf('.') + 1)) as { data: { revokedAt: number | null } },
      );
    t.ok(
      await waitFor(async () => (await heldInRedis()).every((e) => e.data.revokedAt !== null), 10_000),
      'the replicas replaced the entry Redis kept: whatever it holds now is the revoked key',
    );
    await writes(writer, [r1, r2, fresh], keys.slice(25, 29), tally);
    await load.stop();
    report(t, tally);
    t.equal(tally.staleAllows, 0, 'no stale allow');
    t.equal(tally.failed, 0, 'no failed call');

    const seen = await ready.stop();
    t.ok(seen.samples > 50, `readiness sampled ${seen.samples} times`);
    t.equal(seen.unready, 0, 'every replica stayed ready through every Redis fault');
  },
);
