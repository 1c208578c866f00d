/**
 * `npm run bench:scale`: the at-scale targets, in one run.
 *
 * 1. Two databases of their own (bench_scale_<random>), seeded by the seed:scale code: 1,000 keys and
 *    1,000,000 keys (one shared argon2id hash with the service's default parameters).
 * 2. A service process on each (dist/src/main.js), each with its own Redis prefix.
 * 3. Cold lookups: sampled keys spread over the table, each authenticated once for the first time, one
 *    call in flight, the two databases alternating in blocks (a drift of the machine weighs on both).
 * 4. Cache hits on those keys, 64 in flight over 4 channels (bench/load.js), runs alternating.
 * 5. The admin list (with each filter), activity and audit-log routes of the 10,000-key account, following
 *    cursors to the end, and EXPLAIN (ANALYZE, BUFFERS) of every query behind them.
 * 6. The local cache's heap per entry at 100,000 entries (dist/bench/cache-memory.js, --expose-gc).
 * Results: a table on stdout, bench/results/scale-<date>.json and scale-latest.md. Everything is stopped,
 * the databases dropped and the Redis keys deleted at the end, on failure too.
 *
 * Tunables (environment): SCALE_KEYS (1000000), SCALE_SMALL_KEYS (1000), SCALE_COLD (300 per size),
 * SCALE_HIT_MS (5000), BENCH_PG_URL, BENCH_REDIS_URL, BENCH_STRICT=1 (exit 1 when a target is missed).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRequest, outcomeOf } from './lib/client.js';
import { num } from './lib/env.js';
import {
  createDatabase,
  fleetEnv,
  guard,
  IP,
  log as logAs,
  Replica,
  ROOT,
  Teardown,
  writeResult,
} from './lib/fleet.js';
import { percentiles } from '../test/helpers/harness/stats.js';
import { commitOf, cpuModel, loadNow } from './lib/machine.js';
import { LoadGenerator } from './lib/procs.js';
import type { RunResult } from './lib/protocol.js';
import { clearPrefix } from './lib/redis-prefix.js';
import { routePlans } from './lib/scale-plans.js';
import { markdownReport, targets, textReport, type Latency, type ScaleReport } from './lib/scale-report.js';
import { seedScale, type SeedResult } from './lib/seed-scale.js';

const LARGE = num('SCALE_KEYS', 1_000_000);
const SMALL = num('SCALE_SMALL_KEYS', 1000);
const COLD = num('SCALE_COLD', 300);
const COLD_BLOCK = 25;
const WARMUP = 10;
const HIT_MS = num('SCALE_HIT_MS', 5000);
const ROUTE_P99_MS = 50;
const BYTES_PER_ENTRY = 1024;
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SCOPE = 'bookings:read';
const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/bench/

const log = (msg: string) => logAs('scale', msg);
const lat = (ms: number[]): Latency => ({ count: ms.length, ...percentiles(ms, 1) });

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

interface Size {
  keys: number;
  seed: SeedResult;
  seconds: number;
  replica: Replica;
  cold: string[];
  /** Sampled keys outside `cold`: a first lookup each warms up the process (JIT, PostgreSQL connections). */
  warmup: string[];
}

/** A database of its own, seeded, and a service process on it. */
async function size(td: Teardown, keys: number, sample: number): Promise<Size> {
  const url = await createDatabase(td, 'scale');
  log(`seeding ${keys.toLocaleString('en-US')} keys into ${new URL(url).pathname.slice(1)}`);
  const t = performance.now();
  const seed = await seedScale({ databaseUrl: url, keys, sample, log });
  const seconds = (performance.now() - t) / 1000;
  log(`seeded in ${seconds.toFixed(1)} s`);
  const env = fleetEnv(url, REDIS_URL, {
    ADMIN_RATE_LIMIT_PER_TOKEN: '1000000',
    ADMIN_RATE_LIMIT_PER_ADDRESS: '1000000',
  });
  const prefix = env.REDIS_PREFIX ?? '';
  td.teardown(async () => log(`deleted ${await clearPrefix(REDIS_URL, prefix)} Redis keys under ${prefix}`));
  const replica = new Replica(`service-${keys}`, env);
  td.teardown(() => replica.stop());
  const picked = shuffled(seed.sample);
  return { keys, seed, seconds, replica, cold: picked.slice(0, COLD), warmup: picked.slice(COLD, COLD + WARMUP) };
}

/** Each key once, one call in flight: the time of a first lookup (PostgreSQL read and argon2id verification). */
async function coldBlock(s: Size, keys: string[], into: number[]): Promise<void> {
  for (const key of keys) {
    const started = performance.now();
    const r = await s.replica.authenticate(encodeRequest({ key, ip: IP, scope: SCOPE }));
    into.push(performance.now() - started);
    if (outcomeOf(r) !== 'ALLOWED')
      throw new Error(`cold lookup on ${s.keys} keys: ${outcomeOf(r)} ${r.details ?? ''}`);
  }
}

async function coldLookups(small: Size, large: Size): Promise<ScaleReport['cold']> {
  const ms = { small: [] as number[], large: [] as number[] };
  await coldBlock(small, small.warmup, []);
  await coldBlock(large, large.warmup, []);
  const before = { small: await small.replica.argon2(), large: await large.replica.argon2() };
  for (let i = 0; i < COLD; i += COLD_BLOCK) {
    await coldBlock(small, small.cold.slice(i, i + COLD_BLOCK), ms.small);
    await coldBlock(large, large.cold.slice(i, i + COLD_BLOCK), ms.large);
  }
  return {
    small: lat(ms.small),
    large: lat(ms.large),
    argon2Verifications: {
      small: (await small.replica.argon2()) - before.small,
      large: (await large.replica.argon2()) - before.large,
    },
  };
}

async function hitRuns(load: LoadGenerator, small: Size, large: Size): Promise<ScaleReport['hit']> {
  const out: ScaleReport['hit'] = { small: [], large: [], p99Ms: { small: [], large: [] } };
  for (const [name, s] of [
    ['small', small],
    ['large', large],
    ['large', large],
    ['small', small],
  ] as const) {
    const server = s.replica.server;
    if (!server) throw new Error('service not running');
    const r = await load.request<RunResult>(
      {
        cmd: 'run',
        spec: {
          name: `cache hit, ${s.keys} keys`,
          port: server.grpcPort,
          channels: 4,
          ip: IP,
          scope: SCOPE,
          pools: { hit: s.cold, malformed: [], unknown: [], cold: [] },
          expect: 'by-kind',
          watch: { server: server.pid },
          main: { mode: 'closed', concurrency: 64, warmupMs: 1000, durationMs: HIT_MS, pattern: { hit: 1 } },
        },
      },
      HIT_MS + 60_000,
    );
    if (r.main.unexpected > 0) throw new Error(`cache hit on ${s.keys} keys: ${r.main.unexpectedSamples.join('; ')}`);
    log(
      `cache hit, ${s.keys} keys: ${r.main.throughput.toFixed(0)} calls/s, p99 ${r.main.latencyMs.p99.toFixed(2)} ms`,
    );
    out[name].push(r.main.throughput);
    out.p99Ms[name].push(r.main.latencyMs.p99);
  }
  return out;
}

/** `count` requests of a paged route, following next_cursor and starting over at the end. */
async function walk(
  r: Replica,
  path: string,
  count: number,
  seen?: (item: { id: string }) => void,
): Promise<{ ms: number[]; errors: number }> {
  const ms: number[] = [];
  let errors = 0;
  let cursor: string | null = null;
  while (ms.length < count) {
    const res = await r.api('GET', cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : path);
    ms.push(res.ms);
    if (res.status !== 200) {
      errors++;
      cursor = null;
      continue;
    }
    for (const item of res.body?.data ?? []) seen?.(item);
    cursor = res.body?.next_cursor ?? null;
  }
  return { ms, errors };
}

async function routes(large: Size): Promise<ScaleReport['routes']> {
  const r = large.replica;
  const base = `/v1/accounts/${large.seed.bigAccount}`;
  const keyIds = new Set<string>();
  const out: ScaleReport['routes'] = [];
  const add = (name: string, w: { ms: number[]; errors: number }) => {
    out.push({ name, latency: lat(w.ms), errors: w.errors });
    log(
      `${name}: p50 ${percentiles(w.ms, 1).p50} ms, p99 ${percentiles(w.ms, 1).p99} ms${w.errors ? `, ${w.errors} errors` : ''}`,
    );
  };
  add('GET /keys?limit=50, every page', await walk(r, `${base}/keys?limit=50`, 300, (k) => keyIds.add(k.id)));
  for (const filter of ['status=revoked', 'status=expired', 'in_grace=true', 'rotation=due', 'environment=test']) {
    add(`GET /keys?${filter}, every page`, await walk(r, `${base}/keys?limit=20&${filter}`, 200));
  }
  // Busy keys (720 hours of usage, 20 addresses) alternate with ordinary keys of the account.
  const ordinary = shuffled([...keyIds]);
  const ids = Array.from(
    { length: 300 },
    (_, i) =>
      (i % 2 === 0 ? large.seed.busyKeyIds[(i / 2) % large.seed.busyKeyIds.length] : ordinary[i % ordinary.length]) ??
      '',
  );
  const activity = { ms: [] as number[], errors: 0 };
  for (const id of ids) {
    const res = await r.api('GET', `${base}/keys/${id}/activity`);
    activity.ms.push(res.ms);
    if (res.status !== 200) activity.errors++;
  }
  add('GET /keys/{id}/activity', activity);
  add('GET /audit-log?limit=50, every page', await walk(r, `${base}/audit-log?limit=50`, 300));
  return out;
}

function cacheMemory(): ScaleReport['cacheMemory'] {
  const out = execFileSync(process.execPath, ['--expose-gc', join(HERE, 'cache-memory.js')], { encoding: 'utf8' });
  return JSON.parse(out) as ScaleReport['cacheMemory'];
}

async function main(): Promise<number> {
  const td = new Teardown();
  guard(td, 'scale', 30 * 60_000);
  const startedAt = new Date();
  const t0 = performance.now();
  const load = new LoadGenerator(join(HERE, 'load.js'), { PATH: process.env.PATH ?? '' }, ['--max-semi-space-size=32']);
  td.teardown(() => load.stop());
  try {
    const small = await size(td, SMALL, Math.min(SMALL, COLD + WARMUP));
    const large = await size(td, LARGE, Math.max(COLD + WARMUP, 1000));
    await Promise.all([small.replica.start(), large.replica.start()]);
    log(`cold lookups: ${COLD} keys on each database, ${COLD_BLOCK} at a time alternating, one in flight`);
    const cold = await coldLookups(small, large);
    log(
      `cold p50/p99: ${cold.small.p50}/${cold.small.p99} ms at ${SMALL} keys, ${cold.large.p50}/${cold.large.p99} ms at ${LARGE} keys`,
    );
    const hit = await hitRuns(load, small, large);
    const routeResults = await routes(large);
    const plans = await routePlans(large.replica.env.DATABASE_URL ?? '', {
      account: large.seed.bigAccount,
      busyKeyId: large.seed.busyKeyIds[0] ?? '',
    });
    await Promise.all([small.replica.stop(), large.replica.stop()]);
    log('local cache memory at 100,000 entries');
    const memory = cacheMemory();
    const a = large.seed.argon2;
    const partial: Omit<ScaleReport, 'targets'> = {
      startedAt: startedAt.toISOString(),
      durationS: (performance.now() - t0) / 1000,
      commit: commitOf(ROOT),
      machine: {
        cpu: cpuModel(),
        cores: cpus().length,
        node: process.version,
        loadavgAtStart: loadNow(),
      },
      seeding: [small, large].map((s) => ({
        keys: s.keys,
        seconds: s.seconds,
        rows: s.seed.rows,
        argon2: `m=${a.memoryCost} KiB, t=${a.timeCost}, p=${a.parallelism}`,
        note: `one argon2id hash (m=${a.memoryCost} KiB, t=${a.timeCost}) computed once and reused for every row: the keys share one secret under distinct public ids; every lookup still reads its own row and runs a full verification`,
      })),
      cold,
      hit,
      routes: routeResults,
      plans,
      cacheMemory: memory,
    };
    const report: ScaleReport = { ...partial, targets: targets(partial, ROUTE_P99_MS, BYTES_PER_ENTRY) };
    process.stdout.write(`\n${textReport(report)}\n\n`);
    const file = writeResult('scale', report);
    writeFileSync(join(ROOT, 'bench', 'results', 'scale-latest.md'), `${markdownReport(report)}\n`);
    process.stdout.write(`Written: ${file}, bench/results/scale-latest.md\n`);
    const missed = report.targets.filter((t) => !t.pass);
    if (missed.length > 0) process.stdout.write(`Missed: ${missed.map((t) => t.name).join('; ')}\n`);
    return process.env.BENCH_STRICT === '1' && missed.length > 0 ? 1 : 0;
  } finally {
    await td.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
