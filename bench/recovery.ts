/**
 * `npm run bench:recovery`: proof of verification survives a Redis outage.
 *
 * 10,000 hot keys (seeded straight into api_keys) on 3 replicas whose Redis connections pass through a
 * TCP proxy; every key verified once on every replica; then the proxy cuts Redis for 5 s while every
 * replica keeps authenticating all the hot keys, and after the heal until each replica has asked for
 * every key again. Counts argon2 verifications (target 0) and failed calls (target 0) in each phase.
 *
 * Options: --keys (10000), --replicas (3), --cut-seconds (5), --concurrency in flight per replica (16),
 * --cache-ttl CACHE_TTL_SECONDS of the replicas (600, so that nothing ages out between the warm-up and the cut).
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { startProxy } from '../test/helpers/proxy.js';
import { startRedis } from '../test/helpers/redis-server.js';
import {
  createDatabase,
  eachLimit,
  fleetEnv,
  guard,
  log as logAs,
  seedKeys,
  sleep,
  startFleet,
  Teardown,
  writeResult,
  type Replica,
  type SeededKey,
} from './lib/fleet.js';
import { percentiles } from '../test/helpers/harness/stats.js';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000' },
    replicas: { type: 'string', default: '3' },
    'cut-seconds': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    'cache-ttl': { type: 'string', default: '600' },
  },
});
const KEYS = Number(args.keys);
const REPLICAS = Number(args.replicas);
const CUT_MS = Number(args['cut-seconds']) * 1000;
const CONCURRENCY = Number(args.concurrency);
/** CACHE_TTL_SECONDS of the replicas: 10 min by default, so that no entry ages out during the warm-up or the run. */
const CACHE_TTL = args['cache-ttl'];
const log = (msg: string) => logAs('recovery', msg);

interface Tally {
  calls: number;
  failed: number;
  denied: number;
  codes: Record<string, number>;
  latencyMs: number[];
}
const tally = (): Tally => ({ calls: 0, failed: 0, denied: 0, codes: {}, latencyMs: [] });

/** One phase's figures, as reported. */
interface Phase {
  phase: string;
  seconds: number;
  calls: number;
  failed: number;
  denied: number;
  errorCodes: Record<string, number>;
  argon2: number;
  fromMemory: number;
  fromRedis: number;
  fromPostgres: number;
  latencyMs: ReturnType<typeof percentiles>;
}

/** Counters of one replica that the phases are measured with. */
async function counters(r: Replica): Promise<{ argon2: number; memory: number; redis: number; storage: number }> {
  const text = await (await fetch(`${r.base}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    argon2: value(/^otesse_keys_argon2_verifications (\d+)/m),
    memory: value(/^otesse_keys_cache_lookups_total\{tier="memory"\} (\d+)/m),
    redis: value(/^otesse_keys_cache_lookups_total\{tier="redis"\} (\d+)/m),
    storage: value(/^otesse_keys_cache_lookups_total\{tier="storage"\} (\d+)/m),
  };
}

async function main(): Promise<number> {
  const td = new Teardown();
  guard(td, 'recovery', 20 * 60_000);
  try {
    const db = await createDatabase(td, 'recovery');
    const redis = await startRedis(td);
    const proxy = await startProxy(td, redis.port);
    const replicas = await startFleet(td, REPLICAS, fleetEnv(db, proxy.url('redis'), { CACHE_TTL_SECONDS: CACHE_TTL }));
    const keys = await seedKeys(db, 'acct_recovery', KEYS);
    log(`${REPLICAS} replicas, ${KEYS} keys seeded; warming every key on every replica`);
    const warmStarted = performance.now();
    // One replica after the other: the first verifies with argon2, the others may find the entry in Redis.
    for (const r of replicas) {
      await eachLimit(keys, CONCURRENCY, async (k) => {
        const res = await r.authenticate(k.request);
        if (res.code !== grpc.status.OK || !res.allowed)
          throw new Error(`warm-up: ${k.id} on ${r.id}: ${res.code} ${res.details ?? res.reason}`);
      });
    }
    const warmMs = performance.now() - warmStarted;
    const sum = async () => {
      const all = await Promise.all(replicas.map(counters));
      return all.reduce((a, c) => ({
        argon2: a.argon2 + c.argon2,
        memory: a.memory + c.memory,
        redis: a.redis + c.redis,
        storage: a.storage + c.storage,
      }));
    };
    const afterWarm = await sum();
    log(
      `warm in ${(warmMs / 1000).toFixed(1)} s: ${afterWarm.argon2} argon2 verifications, ${afterWarm.redis} from Redis`,
    );

    // Steady load: every replica cycles through all the keys, CONCURRENCY calls in flight each.
    let phase: Tally = tally();
    let running = true;
    const sweeps = replicas.map(() => 0);
    const loops = replicas.map((r, ri) =>
      Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, w) => {
          for (let i = w; running; i += CONCURRENCY) {
            if (i >= keys.length) {
              i -= keys.length;
              if (w === 0) sweeps[ri]!++;
            }
            const k = keys[i] as SeededKey;
            const t = phase;
            const started = performance.now();
            const res = await r.authenticate(k.request);
            t.calls++;
            t.latencyMs.push(performance.now() - started);
            if (res.code !== grpc.status.OK) {
              t.failed++;
              t.codes[String(res.code)] = (t.codes[String(res.code)] ?? 0) + 1;
            } else if (!res.allowed) {
              t.failed++;
              t.denied++;
            }
          }
        }),
      ),
    );

    const phases: Phase[] = [];
    const close = async (name: string, started: number, before: Awaited<ReturnType<typeof sum>>) => {
      const t = phase;
      phase = tally();
      const after = await sum();
      const row = {
        phase: name,
        seconds: Math.round((performance.now() - started) / 100) / 10,
        calls: t.calls,
        failed: t.failed,
        denied: t.denied,
        errorCodes: t.codes,
        argon2: after.argon2 - before.argon2,
        fromMemory: after.memory - before.memory,
        fromRedis: after.redis - before.redis,
        fromPostgres: after.storage - before.storage,
        latencyMs: percentiles(t.latencyMs, 1),
      };
      phases.push(row);
      log(`${name}: ${JSON.stringify(row)}`);
      return after;
    };

    let mark = performance.now();
    let base = afterWarm;
    await sleep(5000);
    base = await close('before', mark, base);

    log(`cutting Redis for ${CUT_MS / 1000} s`);
    mark = performance.now();
    proxy.cut();
    await sleep(CUT_MS);
    proxy.heal();
    base = await close('outage', mark, base);

    // Recovery: until every replica trusts its caches again and has asked for every key once more.
    mark = performance.now();
    const healed = performance.now();
    const trustedAfterMs: Record<string, number> = {};
    const sweepsAtHeal = [...sweeps];
    const deadline = healed + 120_000;
    while (performance.now() < deadline) {
      for (const r of replicas) {
        if (trustedAfterMs[r.id] === undefined && (await r.metric('otesse_keys_cache_trusted')) === 1)
          trustedAfterMs[r.id] = Math.round(performance.now() - healed);
      }
      const trusted = Object.keys(trustedAfterMs).length === replicas.length;
      const maxTrusted = Math.max(0, ...Object.values(trustedAfterMs));
      // Two sweeps past the heal: the first may have started before trust came back.
      if (
        trusted &&
        sweeps.every((s, i) => s >= sweepsAtHeal[i]! + 2) &&
        performance.now() - healed > maxTrusted + 1000
      )
        break;
      await sleep(250);
    }
    base = await close('recovery', mark, base);
    mark = performance.now();
    await sleep(5000);
    await close('after', mark, base);
    running = false;
    await Promise.all(loops);

    const outage = phases.find((p) => p.phase === 'outage')!;
    const recovery = phases.find((p) => p.phase === 'recovery')!;
    const failed = phases.reduce((a, p) => a + Number(p.failed), 0);
    const result = {
      kind: 'recovery',
      at: new Date().toISOString(),
      cacheTtlSeconds: Number(CACHE_TTL),
      keys: KEYS,
      replicas: REPLICAS,
      cutMs: CUT_MS,
      concurrencyPerReplica: CONCURRENCY,
      warmUp: { seconds: Math.round(warmMs / 100) / 10, argon2: afterWarm.argon2, fromRedis: afterWarm.redis },
      phases,
      trustedAfterHealMs: trustedAfterMs,
      targets: {
        argon2DuringOutageAndRecovery0: Number(outage.argon2) + Number(recovery.argon2) === 0,
        failedCalls0: failed === 0,
      },
    };
    const file = writeResult('recovery', result);
    console.log(
      `recovery: ${KEYS} hot keys on ${REPLICAS} replicas (CACHE_TTL_SECONDS=${CACHE_TTL}), Redis cut for ${CUT_MS / 1000} s`,
    );
    console.log(
      `warm-up ${result.warmUp.seconds} s, ${afterWarm.argon2} argon2 verifications (${afterWarm.redis} entries found in Redis)`,
    );
    for (const p of phases) {
      console.log(
        `${String(p.phase).padEnd(8)} ${String(p.seconds).padStart(6)} s  calls ${p.calls}  failed ${p.failed}  argon2 ${p.argon2}  ` +
          `memory ${p.fromMemory} redis ${p.fromRedis} postgres ${p.fromPostgres}  latency ms ${JSON.stringify(p.latencyMs)}`,
      );
    }
    console.log(`caches trusted again after the heal (ms): ${JSON.stringify(trustedAfterMs)}`);
    console.log(`targets: ${JSON.stringify(result.targets)}`);
    console.log(`written ${file}`);
    return Object.values(result.targets).every(Boolean) ? 0 : 1;
  } finally {
    await td.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
