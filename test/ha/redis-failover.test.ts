// Redis Sentinel failover (design: revoke-holds, untrusted-without-lease, readiness-is-local, version-floor):
// three Redis servers (a primary and two replicas) under three Sentinels, three service replicas
// under steady Authenticate load, a revoke every 200 ms checked at once on the other replicas. The
// primary is SIGKILLed and Sentinel promotes a replica: no stale allow, no failed call, every replica
// ready throughout and trusting its caches again within 10 s of the promotion. Then the old primary
// comes back (with the data it had, as a primary at first) and Sentinel makes it a replica: nothing changes.
// Last, SENTINEL FAILOVER hands over from a primary that stays up: every connection leaves it for the new one.
// Run by `npm run test:ha` (kept out of npm test); it takes about a minute.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { testEnv } from '../helpers/app.js';
import { createKeys, node, type Node } from '../helpers/cluster.js';
import { FAULT_ENV, newTally, report, writeAndCheck } from '../helpers/faults.js';
import { startSentinelGroup } from '../helpers/redis-sentinel.js';
import { startReplica, waitFor } from '../helpers/replica.js';

const LEASE_MS = Number(FAULT_ENV.LEASE_MS);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Authenticate valid keys on every node in a loop; a call that is not an allow is a failure (kept with its time and code). */
function load(nodes: Node[], keys: { secret: string }[]) {
  let running = true;
  const failures: { at: number; code: grpc.status; node: number }[] = [];
  let calls = 0;
  const loop = async (n: Node, index: number) => {
    for (let i = 0; running; i++) {
      const r = await n.tryAuthenticate({ key: keys[(i + index) % keys.length]!.secret });
      calls++;
      if (r.code !== grpc.status.OK || !r.res?.allowed)
        failures.push({ at: performance.now(), code: r.code, node: index });
      await sleep(5);
    }
  };
  const done = Promise.all(nodes.map(loop));
  return {
    failures,
    calls: () => calls,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** Sample /readyz and the trusted gauge of every node every 100 ms. */
function watch(nodes: Node[]) {
  let running = true;
  const samples: Sample[] = [];
  const done = (async () => {
    while (running) {
      const [ready, trusted] = await Promise.all([
        Promise.all(nodes.map((n) => n.ready())),
        Promise.all(nodes.map(async (n) => (await n.metric('otesse_keys_cache_trusted')) === 1)),
      ]);
      samples.push({ at: performance.now(), ready, trusted });
      await sleep(100);
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

type Sample = { at: number; ready: boolean[]; trusted: boolean[] };

/** From when, after `from`, every sample up to `to` shows every replica trusting its caches; undefined when the last one does not. */
function trustedFrom(samples: Sample[], from: number, to: number): number | undefined {
  const range = samples.filter((s) => s.at > from && s.at <= to);
  const lastBad = range.findLastIndex((s) => !s.trusted.every(Boolean));
  if (lastBad === range.length - 1) return undefined;
  return lastBad === -1 ? range[0]?.at : range[lastBad + 1]!.at;
}

/** Wait until the latest sample shows every replica trusted, and then one second more. */
async function trustedNow(samples: Sample[], timeoutMs: number): Promise<boolean> {
  const ok = await waitFor(async () => samples.at(-1)?.trusted.every(Boolean) === true, timeoutMs);
  await sleep(1000);
  return ok;
}

t.test('Sentinel failover: primary SIGKILLed, a replica promoted, the old primary back as a replica', async (t) => {
  const group = await startSentinelGroup(t, { downAfterMs: 5000 });
  await group.settled();
  const env = await testEnv(t, { LOG_LEVEL: 'info', ...FAULT_ENV, ...group.env });
  delete env.REDIS_URL;
  const first = node(t, await startReplica(t, { ...env, REPLICA_ID: 'r0' }));
  const rest = await Promise.all(['r1', 'r2'].map((id) => startReplica(t, { ...env, REPLICA_ID: id })));
  const nodes = [first, ...rest.map((r) => node(t, r))];
  const keys = await createKeys(first, 320);
  const active = keys.slice(0, 12);
  let next = 12;
  t.ok(
    await waitFor(
      async () => (await Promise.all(nodes.map((n) => n.metric('otesse_keys_cache_trusted')))).every((v) => v === 1),
      10_000,
    ),
    'every replica trusts its caches through the Sentinel-named primary',
  );

  const tally = newTally('Sentinel failover');
  const statuses: { at: number; status: number }[] = [];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing && next < keys.length; i++) {
      const started = performance.now();
      const w = nodes[i % 3]!;
      const status = await writeAndCheck(
        w,
        nodes.filter((n) => n !== w),
        keys[next++]!,
        'revoke',
        tally,
      );
      statuses.push({ at: started, status });
      await sleep(Math.max(0, 200 - (performance.now() - started)));
    }
  })();
  const traffic = load(nodes, active);
  const seen = watch(nodes);
  await sleep(3000);

  const oldPrimary = group.servers[0]!;
  const switched = group.nextSwitch();
  await sleep(200);
  await oldPrimary.kill();
  const killedAt = performance.now();
  const promotion = await Promise.race([switched, sleep(30_000).then(() => undefined)]);
  t.ok(promotion, 'Sentinel promoted a replica');
  if (!promotion) return;
  t.not(promotion.port, oldPrimary.port, `the new primary is :${promotion.port}`);
  t.ok(await trustedNow(seen.samples, 10_000), 'every replica trusts its caches again');
  await sleep(2000);

  // The old primary comes back with its data, as a primary, until Sentinel makes it a replica of the new one.
  t.ok(
    await waitFor(async () => (await group.primary()) === promotion.port, 10_000),
    'every Sentinel names the new primary',
  );
  const backAt = performance.now();
  const trustedAgain = trustedFrom(seen.samples, promotion.at, backAt);
  await oldPrimary.start();
  const old = group.connect(oldPrimary.port);
  t.ok(
    await waitFor(
      async () => /role:slave/.test(await old.info('replication').catch(() => /* not up yet: asked again */ '')),
      30_000,
    ),
    'the old primary is a replica now',
  );
  t.ok(
    await waitFor(
      async () => /master_link_status:up/.test(await old.info('replication').catch(() => /* asked again */ '')),
      20_000,
    ),
    'and in sync with the new primary',
  );
  await sleep(3000);
  const untrustedAfterBack = seen.samples.filter((s) => s.at > backAt && !s.trusted.every(Boolean)).length;

  // SENTINEL FAILOVER: the primary stays up and is demoted; every connection must leave it (a write there answers READONLY).
  const handedOver = group.nextSwitch();
  await sleep(200);
  await group.failover();
  const handover = await Promise.race([handedOver, sleep(30_000).then(() => undefined)]);
  t.ok(handover && handover.port !== promotion.port, `SENTINEL FAILOVER promoted :${handover?.port}`);
  if (!handover) return;
  t.ok(await waitFor(() => group.inSync(promotion.port), 30_000), 'the demoted primary is a replica in sync');
  t.ok(await trustedNow(seen.samples, 10_000), 'every replica trusts its caches again after the handover');
  await sleep(2000);
  const trustedAfterHandover = trustedFrom(seen.samples, handover.at, performance.now());

  writing = false;
  await writer;
  await traffic.stop();
  await seen.stop();
  report(t, tally);
  const unready = seen.samples.filter((s) => !s.ready.every(Boolean)).length;
  const tolerated = traffic.failures.filter(
    (f) => f.code === grpc.status.UNAVAILABLE && f.at >= killedAt && f.at <= killedAt + LEASE_MS,
  );
  const byCode = traffic.failures.reduce<Record<string, number>>(
    (m, f) => ({ ...m, [f.code]: (m[f.code] ?? 0) + 1 }),
    {},
  );
  const figures = {
    calls: traffic.calls(),
    failed_calls: traffic.failures.length,
    failed_by_code: byCode,
    revokes: tally.writes,
    revokes_503: statuses.filter((s) => s.status === 503).length,
    stale_allows: tally.staleAllows,
    kill_to_promotion_ms: Math.round(promotion.at - killedAt),
    promotion_to_trusted_ms: trustedAgain && Math.round(trustedAgain - promotion.at),
    handover_to_trusted_ms: trustedAfterHandover && Math.round(trustedAfterHandover - handover.at),
    samples: seen.samples.length,
    unready_samples: unready,
    untrusted_samples_after_old_primary_back: untrustedAfterBack,
  };
  t.comment(`FAILOVER ${JSON.stringify(figures)}`);
  t.ok(tally.writes >= 50, `${tally.writes} revokes checked`);
  t.equal(tally.staleAllows, 0, 'no stale allow');
  t.equal(
    traffic.failures.length - tolerated.length,
    0,
    `no failed Authenticate with a valid key (${JSON.stringify(byCode)})`,
  );
  t.ok(
    trustedAgain !== undefined && trustedAgain - promotion.at <= 10_000,
    `every replica trusted for good ${figures.promotion_to_trusted_ms} ms after the promotion`,
  );
  t.ok(
    trustedAfterHandover !== undefined && trustedAfterHandover - handover.at <= 10_000,
    `every replica trusted for good ${figures.handover_to_trusted_ms} ms after the handover`,
  );
  t.equal(unready, 0, 'every replica stayed ready throughout (design: readiness-is-local)');
  t.equal(
    untrustedAfterBack,
    0,
    'the old primary coming back as a replica changed nothing: every replica kept trusting its caches',
  );
  t.ok(
    statuses.every((s) => s.status === 200 || s.status === 503),
    `every revoke answered 200, or 503 "committed" (${[...new Set(statuses.map((s) => s.status))].join(',')})`,
  );
});
