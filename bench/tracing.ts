/**
 * `npm run bench:tracing`: what tracing costs per Authenticate cache hit, measured side by side.
 *
 * One database of the run's own on the shared PostgreSQL, a private redis-server, and four replicas of
 * the built service, each on the node binary running this script (process.execPath):
 *   - off:        no OTEL_* variable (nothing of OpenTelemetry loaded);
 *   - 1 %:        traceidratio 0.01, exported to an OTLP sink in this process (lib/otlp-sink.ts);
 *   - 100 %:      traceidratio 1, the same;
 *   - always_off: the 1 % variables with OTEL_TRACES_SAMPLER=always_off (the SDK and instrumentations
 *                 loaded, nothing sampled: the floor of "tracing on").
 * A hot key set (4 keys, as the main section of bench/run.ts) is verified on each, then each replica gets an
 * unrecorded warm-up block. Then BENCH_ROUNDS rounds: in each, the load generator (bench/load.ts) drives
 * every replica in turn, the order rotated by one from round to round, with the same closed-loop cache-hit
 * load as run.ts's main section (BENCH_CONCURRENCY 64 in flight over BENCH_CHANNELS 4 connections), for
 * BENCH_WARMUP_MS (1000, unrecorded: new connections) and then BENCH_BLOCK_S seconds measured. The measured
 * figure is the replica process's CPU time (/proc/<pid>/stat, all threads) over its block divided by the
 * calls it answered: µs per call. Per round each variant's µs per call is divided by the off replica's of the
 * same round; the report gives the median of those ratios over the rounds (and min, max), which a drift of
 * the machine over minutes moves far less than one sequential run against another.
 *
 * Output: a table on stdout, bench/results/tracing-<time>.json. Target: 1 % ≤ 1.10 × off (median ratio).
 * Tunables: BENCH_ROUNDS (10), BENCH_BLOCK_S (5), BENCH_WARMUP_MS (1000), BENCH_CONCURRENCY (64),
 * BENCH_CHANNELS (4), BENCH_PG_URL, BENCH_STRICT=1 (exit 1 when the target is missed).
 * On the image's runtime: `npm run build && npx -y -p node@24 -- node dist/bench/tracing.js`.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from '../test/helpers/redis-server.js';
import { num } from './lib/env.js';
import {
  createDatabase,
  fleetEnv,
  guard,
  IP,
  log as logAs,
  Replica,
  ROOT,
  seedKeys,
  Teardown,
  writeResult,
} from './lib/fleet.js';
import { tracingEnv } from './lib/otlp-sink.js';
import { LoadGenerator, stopAll } from './lib/procs.js';
import type { RunResult, RunSpec } from './lib/protocol.js';
import { cpuPerCall, machineLine } from './lib/report.js';
import { commitOf, describeMachine, loadNow } from './lib/machine.js';

const ROUNDS = Math.round(num('BENCH_ROUNDS', 10));
const BLOCK_S = num('BENCH_BLOCK_S', 5);
const WARMUP_MS = num('BENCH_WARMUP_MS', 1000);
const CONCURRENCY = num('BENCH_CONCURRENCY', 64);
const CHANNELS = num('BENCH_CHANNELS', 4);
/** The first, unrecorded block on each replica (JIT, caches, pools). */
const FIRST_WARMUP_MS = 3000;
const HIT_KEYS = 4;
const ACCOUNT = 'acct_bench_tracing';
const SCOPE = 'bookings:read';
const TARGET = 1.1;
/** A round counts as quiet when every block's "others" (CPU of everything but the replica and the load generator) stayed below this, % of a core. */
const QUIET_OTHER_PERCENT = 25;
const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/bench/
const log = (msg: string) => logAs('tracing', msg);

type VariantId = 'off' | '1%' | '100%' | 'always_off';
interface Variant {
  id: VariantId;
  title: string;
  replicaId: string;
  env: Record<string, string>;
}

/** One replica's measured block. */
interface Block {
  variant: VariantId;
  /** Its place in the round's order (0 first). */
  position: number;
  at: string;
  calls: number;
  callsPerSec: number;
  /** % of one core over the block: the replica, the load generator, everything else on the machine. */
  serverCpuPercent: number;
  loadGenCpuPercent: number;
  otherCpuPercent: number;
  /** The replica's CPU (all threads) per answered call. */
  cpuUsPerCall: number;
  p50Ms: number;
  p99Ms: number;
  outcomes: Record<string, number>;
  unexpected: number;
}

interface Round {
  round: number;
  loadavg: number[];
  order: VariantId[];
  blocks: Block[];
  /** µs per call of each variant over the off replica's in this round. */
  ratios: Record<VariantId, number>;
}

/** The middle value (mean of the two middle ones for an even count); NaN when empty. */
function median(values: readonly number[]): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
const spread = (values: readonly number[]) => {
  const v = values.filter((x) => Number.isFinite(x));
  return { median: median(v), min: Math.min(...v), max: Math.max(...v) };
};

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '–');
const pct = (ratio: number) =>
  Number.isFinite(ratio) ? `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)} %` : '–';

async function main(td: Teardown): Promise<number> {
  const startedAt = new Date();
  // Registered first, so it runs last: any child left running (one that failed to start, say) is stopped.
  td.teardown(() => stopAll(5000));
  log('measuring the machine (1 s idle sample)');
  const mach = await describeMachine();
  log(machineLine(mach));

  const db = await createDatabase(td, 'tracing');
  const redis = await startRedis(td);
  const base = fleetEnv(db, redis.url);
  const sampled1 = await tracingEnv('0.01');
  const sampled100 = await tracingEnv('1');
  const variants: Variant[] = [
    { id: 'off', title: 'tracing off', replicaId: 'tracing-off', env: {} },
    { id: '1%', title: 'tracing 1 %', replicaId: 'tracing-1pct', env: sampled1.env },
    { id: '100%', title: 'tracing 100 %', replicaId: 'tracing-100pct', env: sampled100.env },
    {
      id: 'always_off',
      title: 'loaded, always_off',
      replicaId: 'tracing-always-off',
      env: { ...sampled1.env, OTEL_TRACES_SAMPLER: 'always_off' },
    },
  ];
  const replicas = new Map(variants.map((v) => [v.id, new Replica(v.replicaId, { ...base, ...v.env })]));
  td.teardown(() => Promise.all([...replicas.values()].map((r) => r.stop())));
  // The first migrates the database; the others start together.
  const [first, ...rest] = [...replicas.values()];
  await first!.start();
  await Promise.all(rest.map((r) => r.start()));
  log(
    `replicas up on ${process.execPath} (${process.version}): ` +
      variants.map((v) => `${v.id} pid ${replicas.get(v.id)!.pid}`).join(', '),
  );

  // The hot keys, each verified once on every replica (the cold path), then answered from its cache.
  const keys = await seedKeys(db, ACCOUNT, HIT_KEYS);
  for (const [id, r] of replicas) {
    for (const k of keys) {
      const res = await r.authenticate(k.request);
      if (!res.allowed) throw new Error(`warming ${id}: key ${k.id} not allowed (${JSON.stringify(res)})`);
    }
  }

  const load = new LoadGenerator(join(HERE, 'load.js'), { PATH: process.env.PATH ?? '' }, ['--max-semi-space-size=32']);
  td.teardown(() => load.stop());
  const spec = (v: Variant, warmupMs: number, durationMs: number): RunSpec => {
    const r = replicas.get(v.id)!;
    return {
      name: v.title,
      port: r.server!.grpcPort,
      channels: CHANNELS,
      ip: IP,
      scope: SCOPE,
      pools: { hit: keys.map((k) => k.key), malformed: [], unknown: [], cold: [] },
      expect: 'by-kind',
      main: { mode: 'closed', concurrency: CONCURRENCY, warmupMs, durationMs, pattern: { hit: 1 } },
      watch: { server: r.pid },
    };
  };
  const run = (v: Variant, warmupMs: number, durationMs: number) =>
    load.request<RunResult>({ cmd: 'run', spec: spec(v, warmupMs, durationMs) }, warmupMs + durationMs + 60_000);

  for (const v of variants) {
    log(`warm-up block on ${v.id}`);
    await run(v, 0, FIRST_WARMUP_MS);
  }

  const rounds: Round[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const order = variants.map((_, j) => variants[(i + j) % variants.length]!);
    const roundLoad = loadNow();
    const blocks: Block[] = [];
    for (const [position, v] of order.entries()) {
      const at = new Date().toISOString();
      const r = await run(v, WARMUP_MS, BLOCK_S * 1000);
      blocks.push({
        variant: v.id,
        position,
        at,
        calls: r.main.calls,
        callsPerSec: Math.round(r.main.throughput),
        serverCpuPercent: r.cpu.processes.server ?? Number.NaN,
        loadGenCpuPercent: r.cpu.processes.load ?? Number.NaN,
        otherCpuPercent: r.cpu.other,
        cpuUsPerCall: Math.round(cpuPerCall(r) * 100) / 100,
        p50Ms: r.main.latencyMs.p50,
        p99Ms: r.main.latencyMs.p99,
        outcomes: r.main.outcomes,
        unexpected: r.main.unexpected,
      });
    }
    const us = (id: VariantId) => blocks.find((b) => b.variant === id)?.cpuUsPerCall ?? Number.NaN;
    const ratios = Object.fromEntries(
      variants.map((v) => [v.id, Math.round((us(v.id) / us('off')) * 10_000) / 10_000]),
    ) as Record<VariantId, number>;
    rounds.push({ round: i + 1, loadavg: roundLoad, order: order.map((v) => v.id), blocks, ratios });
    log(
      `round ${i + 1}/${ROUNDS} (load ${roundLoad.join(' ')}): ` +
        blocks.map((b) => `${b.variant} ${f1(b.cpuUsPerCall)} µs (×${f3(ratios[b.variant])})`).join(', '),
    );
  }

  const summary = variants.map((v) => {
    const blocks = rounds.map((r) => r.blocks.find((b) => b.variant === v.id)!);
    return {
      variant: v.id,
      title: v.title,
      cpuUsPerCall: spread(blocks.map((b) => b.cpuUsPerCall)),
      ratioToOff: spread(rounds.map((r) => r.ratios[v.id])),
      callsPerSec: median(blocks.map((b) => b.callsPerSec)),
      p99Ms: median(blocks.map((b) => b.p99Ms)),
      otherCpuPercent: median(blocks.map((b) => b.otherCpuPercent)),
    };
  });
  const onePct = summary.find((s) => s.variant === '1%')!.ratioToOff.median;
  // Other work on the machine takes CPU from the load generator, and a replica answering fewer calls a second
  // spends more per call: the rounds in which no block shared the machine with much else, apart.
  const quiet = rounds.filter((r) => r.blocks.every((b) => b.otherCpuPercent < QUIET_OTHER_PERCENT));
  const quietRatios = Object.fromEntries(
    variants.map((v) => [v.id, quiet.length ? spread(quiet.map((r) => r.ratios[v.id])) : undefined]),
  );
  const met = onePct <= TARGET;
  const unexpected = rounds.flatMap((r) => r.blocks).reduce((a, b) => a + b.unexpected, 0);
  const empty = rounds.flatMap((r) => r.blocks).filter((b) => b.calls === 0).length;
  const config = {
    rounds: ROUNDS,
    blockS: BLOCK_S,
    warmupMs: WARMUP_MS,
    firstWarmupMs: FIRST_WARMUP_MS,
    concurrency: CONCURRENCY,
    channels: CHANNELS,
    hitKeys: HIT_KEYS,
    node: process.version,
    execPath: process.execPath,
    variants: variants.map((v) => ({ id: v.id, title: v.title, replicaId: v.replicaId, env: v.env })),
  };
  const file = writeResult('tracing', {
    kind: 'tracing',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    commit: commitOf(ROOT),
    machine: mach,
    loadavgAtEnd: loadNow(),
    config,
    summary,
    target: { name: '1 % ≤ 1.10 × off (median of the per-round ratios)', measured: onePct, met },
    quietRounds: {
      otherCpuBelowPercent: QUIET_OTHER_PERCENT,
      rounds: quiet.map((r) => r.round),
      ratioToOff: quietRatios,
    },
    unexpectedAnswers: unexpected,
    rounds,
  });

  const out = [
    '',
    `${machineLine(mach)}; node binary ${process.execPath}.`,
    `Commit ${commitOf(ROOT)}. ${ROUNDS} rounds; each: the 4 replicas in turn (order rotated each round), ${CONCURRENCY} calls in flight over ` +
      `${CHANNELS} connections to ${HIT_KEYS} hot keys, ${WARMUP_MS} ms unrecorded then ${BLOCK_S} s measured. ` +
      `Load average at the end ${loadNow().join(' ')}.`,
    '',
    '| variant | median × off | min–max × off | median µs/call | min–max µs/call | calls/s (median) | p99 ms (median) | others % (median) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...summary.map(
      (s) =>
        `| ${s.title} | ${f3(s.ratioToOff.median)} (${pct(s.ratioToOff.median)}) | ${f3(s.ratioToOff.min)}–${f3(s.ratioToOff.max)} | ` +
        `${f1(s.cpuUsPerCall.median)} | ${f1(s.cpuUsPerCall.min)}–${f1(s.cpuUsPerCall.max)} | ${Math.round(s.callsPerSec)} | ${f3(s.p99Ms)} | ${f1(s.otherCpuPercent)} |`,
    ),
    '',
    `Target: 1 % ≤ ${TARGET.toFixed(2)} × off: ${f3(onePct)} — ${met ? 'met' : 'not met'}`,
    `Quiet rounds only (every block's others < ${QUIET_OTHER_PERCENT} % of a core): ${quiet.length} of ${ROUNDS}` +
      (quiet.length
        ? `; median × off ${variants
            .filter((v) => v.id !== 'off')
            .map((v) => `${v.id} ${f3(quietRatios[v.id]?.median ?? Number.NaN)}`)
            .join(', ')}`
        : ''),
    '',
    'Rounds: per variant µs/call (× off; server CPU % of a core, calls/s, others %):',
    '',
    `| round | load | order | ${variants.map((v) => v.title).join(' | ')} |`,
    `| ---: | --- | --- | ${variants.map(() => '---:').join(' | ')} |`,
    ...rounds.map((r) => {
      const cell = (id: VariantId) => {
        const b = r.blocks.find((x) => x.variant === id)!;
        return `${f1(b.cpuUsPerCall)} (×${f3(r.ratios[id])}; ${f1(b.serverCpuPercent)} %, ${b.callsPerSec}/s, ${f1(b.otherCpuPercent)})`;
      };
      return `| ${r.round} | ${r.loadavg.map(f2).join(' ')} | ${r.order.join(' ')} | ${variants.map((v) => cell(v.id)).join(' | ')} |`;
    }),
    '',
    unexpected || empty
      ? `**Broken run:** ${unexpected} answers other than ALLOWED, ${empty} blocks without an answered call.`
      : 'Every answer ALLOWED.',
    `Written ${file}`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  if (unexpected > 0 || empty > 0) return 1;
  return process.env.BENCH_STRICT === '1' && !met ? 1 : 0;
}

const td = new Teardown();
// Setup and warm-up (~2 min) and every block with its lead-in and connection set-up, with room to spare.
guard(td, 'tracing', 5 * 60_000 + ROUNDS * 4 * (BLOCK_S * 1000 + WARMUP_MS + 5000) * 2);
void main(td)
  .catch((err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  })
  .then(async (code) => {
    await td.run();
    process.exit(code);
  });
