/**
 * `npm run soak [-- --minutes N]`: the soak (not part of `npm test`).
 *
 * Five replicas (dist/src/main.js) on a database of their own and a private redis-server (append-only,
 * so a restart keeps its data); steady Authenticate load on every replica; every second a revoke or a
 * narrowing PATCH on a random replica, each other replica asked right after the response (an allow of
 * the old decision is a stale allow); one replica restarted every minute (SIGTERM, then started again
 * with the same REPLICA_ID; r0 is never restarted, so it shows memory over the whole run); Redis
 * killed and started again once, mid-run.
 *
 * Options: --minutes N (10), --rate calls/s over all replicas (200), --keys active keys (300), --redis-at seconds
 * into the load when Redis is killed (default: half-way plus 15 s, or 5 s for runs under 2 minutes); --failover: Redis is a
 * primary, two replicas and three Sentinels instead, and every two minutes from the first one a Sentinel failover
 * (alternately the primary SIGKILLed, then started again to come back as a replica, and SENTINEL FAILOVER); a
 * further target: every replica trusts its caches again within 10 s of each promotion.
 * Targets: 0 stale allows, 0 failed calls outside the restarted replica's own drain, memory flat (±10 %): the mean RSS
 * of each process over the last quarter of the run against the first quarter (start and end samples are printed too).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRedis } from '../test/helpers/redis-server.js';
import { startSentinelGroup } from '../test/helpers/redis-sentinel.js';
import { failoverLoop, type FailoverRecord } from './lib/failover.js';
import * as grpc from '@grpc/grpc-js';
import type { CallResult } from './lib/client.js';
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
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '200' },
    keys: { type: 'string', default: '300' },
    'redis-at': { type: 'string' },
    failover: { type: 'boolean', default: false },
  },
});
const MINUTES = Number(args.minutes);
/** Redis behind Sentinels (a primary, two replicas, three Sentinels) and a failover every two minutes, from the first minute. */
const FAILOVER = args.failover === true;
const RATE = Number(args.rate);
const ACTIVE_KEYS = Number(args.keys);
const REPLICAS = 5;
/** Every minute; a shorter run (a try-out) restarts every 20 s so that it sees restarts too. */
const RESTART_EVERY_MS = MINUTES >= 2 ? 60_000 : 20_000;
const ACCOUNT = 'acct_soak';
const log = (msg: string) => logAs('soak', msg);

type State = 'up' | 'draining' | 'down';
interface Slot {
  replica: Replica;
  state: State;
  generation: number;
}

/** What one replica process did and used. */
interface Instance {
  replica: string;
  pid: number;
  startedAtS: number;
  stoppedAtS?: number;
  rssAtReadyKiB: number;
  rssBaselineKiB?: number;
  rssEndKiB?: number;
  argon2?: number;
  drainMs?: number;
  exit?: string;
  rssSamplesKiB: number[];
}

const counts = {
  calls: 0,
  ok: 0,
  errorsInDrain: 0,
  errorsElsewhere: 0,
  deniedActive: 0,
  skippedWhileDown: 0,
  skippedFullPipe: 0,
  errorCodes: {} as Record<string, number>,
};
const writes = {
  attempted: 0,
  committed: 0,
  status503: 0,
  failed: [] as { at: number; status: number; detail: string }[],
  revokes: 0,
  narrows: 0,
  checks: 0,
  staleAllows: 0,
  staleAfter503: 0,
  checkErrors: 0,
  waitMs: [] as number[],
  outcomes: {} as Record<string, number>,
  staleDetails: [] as unknown[],
};
const series: {
  t: number;
  calls: number;
  errors: number;
  rssKiB: Record<string, number>;
  heapMiB: Record<string, number>;
}[] = [];

let t0 = Date.now();
const since = () => Math.round((Date.now() - t0) / 100) / 10;

function record(slot: Slot, generation: number, r: CallResult): void {
  counts.calls++;
  if (r.code === grpc.status.OK && r.allowed) {
    counts.ok++;
    return;
  }
  const inDrain = slot.generation !== generation || slot.state !== 'up';
  if (r.code !== grpc.status.OK) {
    const name = `${inDrain ? 'drain' : 'elsewhere'}:${r.code}`;
    counts.errorCodes[name] = (counts.errorCodes[name] ?? 0) + 1;
    if (inDrain) counts.errorsInDrain++;
    else {
      counts.errorsElsewhere++;
      if (counts.errorsElsewhere <= 20) log(`call failed on ${slot.replica.id}: ${r.code} ${r.details ?? ''}`);
    }
  } else {
    counts.deniedActive++;
    if (counts.deniedActive <= 20) log(`active key denied on ${slot.replica.id}: reason ${r.reason}`);
  }
}

/** Open-loop load on one slot: `perSecond` calls, in ticks of 20 ms, at most 64 in flight. */
function load(slot: Slot, keys: SeededKey[], perSecond: number, running: () => boolean): Promise<void> {
  let inflight = 0;
  let i = Math.floor(Math.random() * keys.length);
  let debt = 0;
  let last = performance.now();
  return (async () => {
    while (running()) {
      const now = performance.now();
      debt += (perSecond * (now - last)) / 1000; // by elapsed time: a late timer does not lower the rate
      last = now;
      while (debt >= 1) {
        debt--;
        if (slot.state === 'down') {
          counts.skippedWhileDown++;
          continue;
        }
        if (inflight >= 64) {
          counts.skippedFullPipe++;
          continue;
        }
        inflight++;
        const generation = slot.generation;
        const key = keys[i++ % keys.length]!;
        void slot.replica.authenticate(key.request).then((r) => {
          inflight--;
          record(slot, generation, r);
        });
      }
      await sleep(20);
    }
    while (inflight > 0) await sleep(10);
  })();
}

/** Warm a key on `checkers`, change it on `writer`, then ask each checker at once: an allow is stale. */
async function writeAndCheck(writer: Slot, checkers: Slot[], key: SeededKey): Promise<void> {
  const kind = Math.random() < 0.5 ? 'revoke' : 'narrow';
  const request = kind === 'revoke' ? key.request : key.writeRequest;
  await Promise.all([writer, ...checkers].map((s) => s.replica.authenticate(request)));
  writes.attempted++;
  const res = await (
    kind === 'revoke'
      ? writer.replica.api('POST', `/v1/accounts/${ACCOUNT}/keys/${key.id}/revoke`, {})
      : writer.replica.api('PATCH', `/v1/accounts/${ACCOUNT}/keys/${key.id}`, { scopes: ['bookings:read'] })
  ).catch((err: unknown): Awaited<ReturnType<Replica['api']>> => ({ status: 0, body: { detail: String(err) }, ms: 0 }));
  const committed = res.status === 200 || (res.status === 503 && /committed/.test(String(res.body?.detail)));
  if (!committed) {
    writes.failed.push({ at: since(), status: res.status, detail: String(res.body?.detail ?? res.body?.title ?? '') });
    log(`${kind} on ${writer.replica.id} answered ${res.status}: ${JSON.stringify(res.body)}`);
    return;
  }
  writes.committed++;
  if (kind === 'revoke') writes.revokes++;
  else writes.narrows++;
  if (res.status === 503) writes.status503++;
  writes.waitMs.push(res.ms);
  const outcome = String(res.body?.propagation?.outcome ?? (res.status === 503 ? 'pending (503)' : 'none'));
  writes.outcomes[outcome] = (writes.outcomes[outcome] ?? 0) + 1;
  const answers = await Promise.all(checkers.map(async (s) => ({ s, r: await s.replica.authenticate(request) })));
  for (const { s, r } of answers) {
    writes.checks++;
    if (r.code !== grpc.status.OK) {
      writes.checkErrors++;
      continue;
    }
    if (!r.allowed) continue;
    writes.staleAllows++;
    if (res.status === 503) writes.staleAfter503++;
    const detail = {
      at: since(),
      kind,
      key: key.id,
      writer: writer.replica.id,
      checker: s.replica.id,
      checkerState: s.state,
      status: res.status,
      propagation: res.body?.propagation,
    };
    writes.staleDetails.push(detail);
    log(`STALE ALLOW ${JSON.stringify(detail)}`);
  }
}

async function main(): Promise<number> {
  const td = new Teardown();
  guard(td, 'soak', (MINUTES + 10) * 60_000);
  // Every replica process's log is kept (a failure is only worth as much as what explains it).
  process.env.BENCH_LOG_DIR ??= mkdtempSync(join(tmpdir(), 'otesse-soak-'));
  log(`replica logs in ${process.env.BENCH_LOG_DIR}`);
  const instances: Instance[] = [];
  let restartLog: { at: number; replica: string; drainMs: number; downMs: number; exit: string }[] = [];
  let redisRestart: { at: number; downMs: number } | undefined;
  try {
    const db = await createDatabase(td, 'soak');
    // With --failover, Sentinel waits longer than a lease (plus the servers' min-replicas-max-lag) before it promotes (docs/deploying.md).
    const group = FAILOVER ? await startSentinelGroup(td, { downAfterMs: 6000 }) : undefined;
    await group?.settled();
    const redis = group ? undefined : await startRedis(td, { persist: true });
    const env = fleetEnv(db, redis?.url ?? '', group?.env);
    if (group) delete env.REDIS_URL;
    log(
      `${REPLICAS} replicas, ${MINUTES} min, ${RATE} calls/s, ${ACTIVE_KEYS} active keys; redis ${group ? `Sentinels ${group.setting}` : `:${redis?.port}`}, ${env.REDIS_PREFIX}`,
    );
    const replicas = await startFleet(td, REPLICAS, env);
    const slots: Slot[] = replicas.map((replica) => ({ replica, state: 'up', generation: 1 }));
    const instanceOf = new Map<string, Instance>();
    const begin = (s: Slot) => {
      const inst: Instance = {
        replica: s.replica.id,
        pid: s.replica.pid,
        startedAtS: since(),
        rssAtReadyKiB: s.replica.rssKiB(),
        rssSamplesKiB: [],
      };
      instances.push(inst);
      instanceOf.set(s.replica.id, inst);
    };
    slots.forEach(begin);

    const active = await seedKeys(db, ACCOUNT, ACTIVE_KEYS);
    const writeKeys = await seedKeys(db, ACCOUNT, Math.ceil(MINUTES * 60 * 1.1) + 30);
    log(
      `seeded ${active.length} active keys and ${writeKeys.length} keys to change; warming the active keys on every replica`,
    );
    await Promise.all(
      slots.map((s) =>
        eachLimit(active, 8, async (k) => {
          await s.replica.authenticate(k.request);
        }),
      ),
    );
    const argon2AfterWarm = (await Promise.all(slots.map((s) => s.replica.argon2()))).reduce((a, b) => a + b, 0);

    t0 = Date.now();
    let running = true;
    const endAt = Date.now() + MINUTES * 60_000;
    const loads = slots.map((s) => load(s, active, RATE / REPLICAS, () => running));
    // Memory after 15 s of load is the baseline (start-up and JIT growth are not a leak).
    let baselineTaken = false;
    const sampler = (async () => {
      let last = { calls: 0, errors: 0 };
      for (let n = 1; running; n++) {
        await sleep(1000);
        if (n % 10 !== 0) continue;
        const rssKiB = Object.fromEntries(slots.map((s) => [s.replica.id, s.replica.rssKiB()]));
        const heapMiB = Object.fromEntries(
          await Promise.all(
            slots.map(async (s): Promise<[string, number]> => [
              s.replica.id,
              // A replica that cannot answer /metrics (being restarted) shows NaN for this sample, like its RSS.
              Math.round(
                ((await s.replica.metric('nodejs_heap_size_used_bytes').catch(() => Number.NaN)) / 2 ** 20) * 10,
              ) / 10,
            ]),
          ),
        );
        for (const s of slots)
          if (s.state === 'up' && Number.isFinite(rssKiB[s.replica.id]))
            instanceOf.get(s.replica.id)?.rssSamplesKiB.push(rssKiB[s.replica.id]!);
        const errors = counts.errorsElsewhere + counts.errorsInDrain;
        series.push({ t: since(), calls: counts.calls - last.calls, errors: errors - last.errors, rssKiB, heapMiB });
        last = { calls: counts.calls, errors };
        if (!baselineTaken && n >= 20) {
          baselineTaken = true;
          for (const s of slots) {
            const inst = instanceOf.get(s.replica.id);
            if (inst) inst.rssBaselineKiB = rssKiB[s.replica.id];
          }
        }
        log(
          `t=${since()}s calls ${counts.calls} (${series.at(-1)?.calls}/10 s) errors ${counts.errorsElsewhere} elsewhere, ${counts.errorsInDrain} in drain; ` +
            `writes ${writes.committed} stale ${writes.staleAllows}; rss/heap MiB ${slots.map((s) => `${s.replica.id}=${Math.round((rssKiB[s.replica.id] ?? 0) / 1024)}/${heapMiB[s.replica.id]}`).join(' ')}`,
        );
      }
    })();

    let current: Promise<void> = Promise.resolve();
    /** The slot about to be restarted: no new write round uses it. */
    let restarting: Slot | undefined;
    let keyIndex = 0;
    const writer = (async () => {
      while (running && Date.now() < endAt) {
        const next = Date.now() + 1000;
        const up = slots.filter((s) => s.state === 'up' && s !== restarting);
        const key = writeKeys[keyIndex++];
        if (up.length >= 2 && key) {
          const w = up[Math.floor(Math.random() * up.length)]!;
          current = writeAndCheck(
            w,
            up.filter((s) => s !== w),
            key,
          ).catch((err: unknown) => {
            log(`write round failed: ${String(err)}`);
          });
          await current;
        }
        await sleep(Math.max(0, next - Date.now()));
      }
    })();

    const restarter = (async () => {
      const redisAt =
        args['redis-at'] !== undefined
          ? t0 + Number(args['redis-at']) * 1000
          : t0 + (MINUTES * 60_000) / 2 + (MINUTES >= 2 ? 15_000 : 5_000);
      for (let k = 0; ; k++) {
        const due = t0 + (k + 1) * RESTART_EVERY_MS;
        while (Date.now() < Math.min(due, endAt) && running) {
          if (redis && !redisRestart && Date.now() >= redisAt) {
            log('Redis: SIGKILL, down 2 s, started again with its data');
            const at = since();
            const started = Date.now();
            await redis.kill();
            await sleep(2000);
            await redis.restart();
            redisRestart = { at, downMs: Date.now() - started };
          }
          await sleep(200);
        }
        if (Date.now() >= endAt || !running) return;
        const slot = slots[1 + (k % (REPLICAS - 1))]!;
        restarting = slot;
        await sleep(0);
        await current; // never in the middle of a write round
        const inst = instanceOf.get(slot.replica.id)!;
        // Read just before its SIGTERM; a replica that cannot answer shows NaN in the report rather than ending the soak.
        inst.argon2 = await slot.replica.argon2().catch(() => Number.NaN);
        inst.rssEndKiB = slot.replica.rssKiB();
        log(`restarting ${slot.replica.id} (pid ${slot.replica.pid}): SIGTERM`);
        const at = since();
        const stopped = Date.now();
        slot.state = 'draining';
        slot.generation++;
        const exit = await slot.replica.stop();
        const drainMs = Date.now() - stopped;
        slot.state = 'down';
        await slot.replica.start();
        inst.stoppedAtS = at;
        inst.drainMs = drainMs;
        inst.exit = exit;
        begin(slot);
        slot.generation++;
        slot.state = 'up';
        restarting = undefined;
        restartLog = [...restartLog, { at, replica: slot.replica.id, drainMs, downMs: Date.now() - stopped, exit }];
        log(
          `${slot.replica.id} back (pid ${slot.replica.pid}) after ${Date.now() - stopped} ms (drain ${drainMs} ms, exit ${exit}; start ${JSON.stringify(slot.replica.startTimes.at(-1))})`,
        );
        // A fresh process's baseline: after 15 s of load.
        setTimeout(() => {
          const i = instanceOf.get(slot.replica.id);
          if (i && i.rssBaselineKiB === undefined) i.rssBaselineKiB = slot.replica.rssKiB();
        }, 15_000).unref();
      }
    })();

    const failovers: Promise<FailoverRecord[]> = group
      ? failoverLoop({
          group,
          everyMs: 120_000,
          firstAtMs: 60_000,
          t0,
          endAt,
          running: () => running,
          log,
          trusted: async () =>
            (
              await Promise.all(
                slots
                  .filter((s) => s.state === 'up')
                  .map((s) =>
                    s.replica.metric('otesse_keys_cache_trusted').catch(() => /* no answer: not trusted yet */ 0),
                  ),
              )
            ).every((v) => v === 1),
        })
      : Promise.resolve([]);
    await writer;
    await restarter;
    const failoverLog = await failovers;
    running = false;
    await Promise.all([...loads, sampler]);
    for (const s of slots) {
      const inst = instanceOf.get(s.replica.id)!;
      // A replica that cannot answer /metrics at the end shows NaN in the report, and so does the argon2 total.
      inst.argon2 = await s.replica.argon2().catch(() => Number.NaN);
      inst.rssEndKiB = s.replica.rssKiB();
    }

    const argon2Total = instances.reduce((a, i) => a + (i.argon2 ?? 0), 0);
    const memory = slots.map((s) => {
      const first = instances.find((i) => i.replica === s.replica.id)!;
      const last = instanceOf.get(s.replica.id)!;
      const change =
        last === first && first.rssBaselineKiB
          ? (first.rssEndKiB! - first.rssBaselineKiB) / first.rssBaselineKiB
          : undefined;
      return {
        replica: s.replica.id,
        restarts: instances.filter((i) => i.replica === s.replica.id).length - 1,
        startKiB: first.rssBaselineKiB ?? first.rssAtReadyKiB,
        endKiB: last.rssEndKiB ?? Number.NaN,
        changeSameProcess: change === undefined ? null : Math.round(change * 1000) / 10,
      };
    });
    // RSS saw-tooths by 20-30 MiB as V8 grows and returns its heap, so one sample at each end says little:
    // each process's mean over the first quarter of its samples (after 20 s) against the last quarter.
    const trend = instances
      .filter((i) => i.rssSamplesKiB.length >= 8)
      .map((i) => {
        const xs = i.rssSamplesKiB.slice(2);
        const q = Math.max(1, Math.floor(xs.length / 4));
        const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
        const first = mean(xs.slice(0, q));
        const last = mean(xs.slice(-q));
        return {
          replica: i.replica,
          pid: i.pid,
          wholeRun: i.stoppedAtS === undefined && instances.find((x) => x.replica === i.replica) === i,
          samples: xs.length,
          firstQuarterMiB: Math.round(first / 1024),
          lastQuarterMiB: Math.round(last / 1024),
          changePercent: Math.round(((last - first) / first) * 1000) / 10,
          minMiB: Math.round(Math.min(...xs) / 1024),
          maxMiB: Math.round(Math.max(...xs) / 1024),
        };
      });
    // Judged on the processes that ran the whole time: a restarted one grows for its first minutes to the same plateau.
    const whole = trend.filter((m) => m.wholeRun);
    // null: too short a run to judge (under 80 s of samples).
    const flat = whole.length === 0 ? null : whole.every((m) => Math.abs(m.changePercent) <= 10);
    const result = {
      kind: 'soak',
      startedAt: new Date(t0).toISOString(),
      logs: process.env.BENCH_LOG_DIR,
      minutes: MINUTES,
      replicas: REPLICAS,
      rate: RATE,
      activeKeys: ACTIVE_KEYS,
      calls: counts,
      writes: { ...writes, waitMs: percentiles(writes.waitMs, 1) },
      argon2: { afterWarmUp: argon2AfterWarm, total: argon2Total },
      restarts: restartLog,
      redisRestart,
      failovers: failoverLog,
      memory,
      memoryTrend: trend,
      instances,
      series,
      startTimes: Object.fromEntries(slots.map((s) => [s.replica.id, s.replica.startTimes])),
      targets: {
        staleAllows0: writes.staleAllows === 0,
        failedOutsideDrain0: counts.errorsElsewhere === 0 && counts.deniedActive === 0,
        memoryFlat10: flat,
        failoversTrusted10s: FAILOVER
          ? failoverLog.length > 0 &&
            failoverLog.every((f) => !f.error && f.trustedMs !== undefined && f.trustedMs <= 10_000)
          : null,
      },
    };
    const file = writeResult('soak', result);
    console.log(`soak ${MINUTES} min, ${REPLICAS} replicas, ${ACTIVE_KEYS} active keys, ${RATE} calls/s`);
    console.log(
      `calls ${counts.calls}: ok ${counts.ok}, errors outside a drain ${counts.errorsElsewhere}, errors on the restarted replica during its drain ${counts.errorsInDrain}, active keys denied ${counts.deniedActive}`,
    );
    console.log(
      `writes ${writes.committed} committed of ${writes.attempted} (${writes.revokes} revokes, ${writes.narrows} narrowing PATCHes; ${writes.status503} answered 503 committed), outcomes ${JSON.stringify(writes.outcomes)}, wait ms ${JSON.stringify(percentiles(writes.waitMs, 1))}`,
    );
    console.log(
      `checks ${writes.checks}: stale allows ${writes.staleAllows} (after a 503: ${writes.staleAfter503}), check errors ${writes.checkErrors}`,
    );
    console.log(`argon2 verifications ${argon2Total} (${argon2AfterWarm} in the warm-up)`);
    for (const f of failoverLog)
      console.log(
        `failover @${f.at}s ${f.kind} :${f.from} -> :${f.to}: promoted after ${f.promotionMs} ms, every replica trusted ${f.trustedMs} ms later, old primary a replica in sync after ${f.oldPrimaryReplicaMs} ms${f.error ? `; ${f.error}` : ''}`,
      );
    console.log(
      `replica restarts ${restartLog.map((r) => `${r.replica}@${r.at}s drain ${r.drainMs} ms`).join(', ') || 'none'}; Redis restart ${redisRestart ? `@${redisRestart.at}s, down ${redisRestart.downMs} ms` : 'none'}`,
    );
    for (const m of memory)
      console.log(
        `memory ${m.replica}: ${Math.round(m.startKiB / 1024)} MiB -> ${Math.round(m.endKiB / 1024)} MiB${m.changeSameProcess === null ? ` (${m.restarts} restart(s): end is a newer process)` : ` (${m.changeSameProcess}% same process)`}`,
      );
    for (const m of trend)
      console.log(
        `memory trend ${m.replica} (pid ${m.pid}, ${m.wholeRun ? 'the whole run' : 'restarted'}, ${m.samples} samples every 10 s): mean ${m.firstQuarterMiB} MiB in the first quarter, ${m.lastQuarterMiB} MiB in the last (${m.changePercent}%), range ${m.minMiB}-${m.maxMiB} MiB`,
      );
    console.log(`targets: ${JSON.stringify(result.targets)}`);
    console.log(`written ${file}`);
    return Object.values(result.targets).every((v) => v !== false) ? 0 : 1;
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
