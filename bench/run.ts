/**
 * `npm run bench`: the Authenticate benchmark of the key service against a no-op gRPC server.
 *
 * 1. A fresh PostgreSQL database (bench_<random>) and a Redis prefix of its own.
 * 2. Processes: the no-op server (bench/noop-server.js), the service (dist/src/main.js, default argon2
 *    parameters) and the load generator (bench/load.js, driven over IPC).
 * 3. Keys seeded through the admin REST API; the no-op baseline and every service case run in this one
 *    run, each a fixed duration, the cold ones at a fixed count or rate.
 * 4. The cache-hit case again on a service run with --cpu-prof (and on a profiled no-op server); the profiles are summarised.
 * 5. Three replicas on the same database and Redis: revoke-to-deny time and stale allows.
 * 6. Results: a table on stdout, bench/results/<date>.json, latest.json and latest.md (a BENCH_ONLY run writes
 *    <sections>-<date>.json and .md instead, and leaves latest alone).
 * Everything stops at the end (SIGTERM); the database is dropped and the Redis keys deleted.
 *
 * Tunables (environment): BENCH_DURATION_MS (5000), BENCH_WARMUP_MS (1000), BENCH_CONCURRENCY (64),
 * BENCH_CHANNELS (4), BENCH_REVOKE_KEYS (50), BENCH_COLD_RATE (40), BENCH_PG_URL, BENCH_REDIS_URL,
 * BENCH_SKIP_PROFILE=1, BENCH_STRICT=1 (exit 1 when a target fails), BENCH_ONLY (a comma list of sections to run:
 * main, light, profile, revoke; default all), BENCH_PROFILE_DIR (keep the profiles there, each with its measured window),
 * BENCH_SERVICE_EXEC_ARGV (more node flags for the service process of the main and light sections, e.g. --cpu-prof).
 *
 * The light-load section (2 calls in flight over 2 channels, 8 over 4) pairs the cache hit and the malformed key each
 * with its own no-op run at the same load; the profile section profiles the cache hit at 64 and at 2 in flight.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { generateKey } from '../src/domain/key-format.js';
import { createDatabaseNamed, databaseUrl, dropDatabaseNamed } from '../test/helpers/harness/database.js';
import { SERVICE_ARGS, SERVICE_STARTED, waitReady } from '../test/helpers/harness/process.js';
import { percentiles } from '../test/helpers/harness/stats.js';
import { summarizeProfile } from './profile.js';
import type { BackendUse, Pools, RevokeKeyResult, RevokeResult, RunResult, RunSpec } from './lib/protocol.js';
import { LoadGenerator, startServer, stopAll, type Server } from './lib/procs.js';
import {
  casesTable,
  clientBound,
  cpuPerCall,
  machineLine,
  markdown,
  profileComparison,
  revokeTable,
  targetsTable,
  type BenchReport,
  type CaseReport,
  type RevokeReport,
  type TargetCheck,
} from './lib/report.js';
import { commitOf, describeMachine } from './lib/machine.js';
import { pidsNamed } from './lib/stats.js';
import { num } from './lib/env.js';
import { clearPrefix } from './lib/redis-prefix.js';
import { tracingEnv } from './lib/otlp-sink.js';

const DURATION_MS = num('BENCH_DURATION_MS', 5000);
const WARMUP_MS = num('BENCH_WARMUP_MS', 1000);
const CONCURRENCY = num('BENCH_CONCURRENCY', 64);
const CHANNELS = num('BENCH_CHANNELS', 4);
const REVOKE_KEYS = num('BENCH_REVOKE_KEYS', 50);
const COLD_RATE = num('BENCH_COLD_RATE', 40);
const COLD_PACED_COUNT = Math.round(COLD_RATE * 3);
const COLD_COUNT = 150;
const COLD_COUNT_CONCURRENCY = 8;
const BACKGROUND_COLD_RATE = 50;
const HIT_KEYS = 4;
/**
 * Light loads and their rounds: each round is a no-op run and a service run, in an order that
 * alternates from round to round, so that a drift of the machine weighs on both sides alike. The targets
 * are at 2 in flight; 8 in flight is shown for comparison.
 */
const LIGHT_LOADS = [
  { concurrency: 2, channels: 2, rounds: Math.max(1, num('BENCH_LIGHT_ROUNDS', 4)) },
  { concurrency: 8, channels: 4, rounds: 2 },
];
const roundName = (i: number) => String.fromCharCode(97 + i);
const ALL_SECTIONS = ['main', 'light', 'profile', 'revoke'];
const SECTIONS = new Set((process.env.BENCH_ONLY ?? ALL_SECTIONS.join(',')).split(',').map((s) => s.trim()));
const UNKNOWN_KEYS = 256;
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ACCOUNT = 'acct_bench';
const IP = '203.0.113.7';
const SCOPE = 'bookings:read';

const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/bench/
const ROOT = join(HERE, '..', '..');
/** The service as it ships: its node flags, then its script. */
const SERVICE = SERVICE_ARGS;
const LOAD = join(HERE, 'load.js');
const NOOP = join(HERE, 'noop-server.js');
const RESULTS = join(ROOT, 'bench', 'results');

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** Delete every Redis key under the prefix. */
const clearRedis = (prefix: string): Promise<number> => clearPrefix(REDIS_URL, prefix);

/** Counters of the shared backends: Redis commands by name, PostgreSQL transactions of the bench database. */
class BackendProbe {
  #redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  #pg = new pg.Client({ connectionString: PG_URL });
  #db: string;

  constructor(db: string) {
    this.#db = db;
  }

  async open(): Promise<void> {
    await Promise.all([this.#redis.connect(), this.#pg.connect()]);
  }

  /** The Redis server's pid (INFO server), for its CPU use. */
  async redisPid(): Promise<number | undefined> {
    const m = /^process_id:(\d+)/m.exec(await this.#redis.info('server'));
    return m ? Number(m[1]) : undefined;
  }

  async snapshot(): Promise<{ redis: Record<string, number>; pgXacts: number }> {
    const [info, res] = await Promise.all([
      this.#redis.info('commandstats'),
      this.#pg.query<{ xacts: string }>(
        'SELECT xact_commit + xact_rollback AS xacts FROM pg_stat_database WHERE datname = $1',
        [this.#db],
      ),
    ]);
    const redis: Record<string, number> = {};
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) redis[m[1] ?? '?'] = Number(m[2]);
    return { redis, pgXacts: Number(res.rows[0]?.xacts ?? 0) };
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
    // At the end of the run, the figures taken: a pool that fails to close holds nothing the exit does not end.
    await this.#pg.end().catch(() => {});
  }
}

/** The admin REST API of one replica. */
function admin(server: Server, token: string) {
  const base = `http://127.0.0.1:${server.httpPort}`;
  return {
    async createKey(label: string): Promise<{ id: string; key: string }> {
      const res = await fetch(`${base}/v1/accounts/${ACCOUNT}/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ label, scopes: [SCOPE, 'bookings:write'], environment: 'live' }),
      });
      const body = (await res.json()) as { id?: string; secret?: string };
      if (res.status !== 201 || !body.id || !body.secret)
        throw new Error(`create key: HTTP ${res.status} ${JSON.stringify(body)}`);
      return { id: body.id, key: body.secret };
    },
    async patchKey(id: string, body: Record<string, unknown>): Promise<void> {
      const res = await fetch(`${base}/v1/accounts/${ACCOUNT}/keys/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 200) throw new Error(`patch key: HTTP ${res.status} ${await res.text()}`);
    },
    ready: (timeoutMs = 20_000): Promise<void> => waitReady(base, server.name, timeoutMs),
  };
}

/** A replica's argon2 verification count and storage-tier lookups, from GET /metrics. */
async function scrapeMetrics(server: Server): Promise<{ argon2: number; storage: number }> {
  const text = await fetch(`http://127.0.0.1:${server.httpPort}/metrics`).then((r) => r.text());
  // A labelled counter has no line until it is first incremented: missing is 0.
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    argon2: value(/^otesse_keys_argon2_verifications(?:\{[^}]*\})? (\d+(?:\.\d+)?)/m),
    storage: value(/^otesse_keys_cache_lookups_total\{tier="storage"\} (\d+(?:\.\d+)?)/m),
  };
}

/** Create `n` keys, a few requests at a time (argon2 hashing runs one at a time in the service anyway). */
async function seed(api: ReturnType<typeof admin>, n: number, label: string): Promise<{ id: string; key: string }[]> {
  const out: { id: string; key: string }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await api.createKey(`${label} ${i}`);
      }
    }),
  );
  return out;
}

/** Keys that fail the offline checks: empty, short, wrong prefix, bad alphabet, wrong checksum. */
function malformedKeys(): string[] {
  const out = ['', 'not-a-key', 'otesse_live_sk_', 'otesse_live_sk_tooShort123', 'Bearer otesse_live_sk_x'];
  for (let i = 0; i < 11; i++) {
    const k = generateKey(i % 2 ? 'live' : 'test').key;
    const last = k.at(-1) === 'A' ? 'B' : 'A';
    if (i < 6)
      out.push(k.slice(0, -1) + last); // checksum off by one character
    else if (i < 8)
      out.push(`otesse_prod_sk_${k.slice(15)}`); // unknown prefix
    else if (i < 10)
      out.push(`${k.slice(0, 20)}-${k.slice(21)}`); // character outside the alphabet
    else out.push(`${k}0`); // one character too long
  }
  return out;
}

const pct = (values: number[]) => percentiles(values, 3);

function revokeReport(r: RevokeResult, polled: string[]): RevokeReport {
  const all: number[] = [];
  const allSent: number[] = [];
  const perReplica: RevokeReport['perReplica'] = {};
  for (const name of polled) {
    const values = r.keys.map((k) => k.denyMs[name]).filter((v): v is number => typeof v === 'number');
    all.push(...values);
    allSent.push(...r.keys.map((k) => k.denySentMs[name]).filter((v): v is number => typeof v === 'number'));
    perReplica[name] = {
      ...pct(values),
      deniedBeforeResponse: r.keys.filter((k) => k.deniedBeforeResponse[name]).length,
      neverDenied: r.keys.filter((k) => k.denyMs[name] === null || k.denyMs[name] === undefined).length,
    };
  }
  const count = (f: (k: RevokeKeyResult) => string[]) => {
    const out: Record<string, number> = {};
    for (const k of r.keys) for (const v of f(k)) out[v] = (out[v] ?? 0) + 1;
    return out;
  };
  return {
    keys: r.keys.length,
    revokeMs: pct(r.keys.map((k) => k.revokeMs)),
    revokeToDenyMs: pct(all),
    revokeToDenySentMs: pct(allSent),
    firstDeniedCallMs: pct(
      r.keys
        .flatMap((k) =>
          polled.map((n) => {
            const a = k.denyMs[n];
            const b = k.denySentMs[n];
            return typeof a === 'number' && typeof b === 'number' ? a - b : Number.NaN;
          }),
        )
        .filter((v) => Number.isFinite(v)),
    ),
    replicaWork: {},
    perReplica,
    staleAllows: r.keys.reduce((s, k) => s + k.staleAllows, 0),
    callsAfterResponse: r.keys.reduce((s, k) => s + k.callsAfterResponse, 0),
    pollCalls: r.keys.reduce((s, k) => s + k.pollCalls, 0),
    propagation: count((k) => [
      k.propagation ? `{replicas: ${k.propagation.replicas}, confirmed: ${k.propagation.confirmed}}` : 'none',
    ]),
    firstAfterOutcomes: count((k) => Object.values(k.firstAfter)),
    statuses: count((k) => [String(k.status)]),
  };
}

/** The revoke report of a run without the revoke section. */
function emptyRevoke(): RevokeReport {
  const none = { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  return {
    keys: 0,
    revokeMs: none,
    revokeToDenyMs: none,
    revokeToDenySentMs: none,
    firstDeniedCallMs: none,
    replicaWork: {},
    perReplica: {},
    staleAllows: 0,
    callsAfterResponse: 0,
    pollCalls: 0,
    propagation: {},
    firstAfterOutcomes: {},
    statuses: {},
  };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const t0 = performance.now();
  const suffix = randomBytes(5).toString('hex');
  const dbName = `bench_${suffix}`;
  const prefix = `bench:${suffix}:`;
  const adminToken = randomBytes(24).toString('hex');
  const tmp = mkdtempSync(join(tmpdir(), 'otesse-bench-'));
  const serviceEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DATABASE_URL: databaseUrl(PG_URL, dbName),
    REDIS_URL,
    REDIS_PREFIX: prefix,
    GRPC_PORT: '0',
    HTTP_PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_TOKENS: `bench:${adminToken}`,
    LOG_LEVEL: 'info',
    SHUTDOWN_GRACE_MS: '5000',
    DATA_DIR: join(tmp, 'data'),
    // Seeding goes through the admin API far faster than people do.
    CACHE_SIGNING_KEY: 'bench-signing-key-0123456789abcdef-0123456789',
    ADMIN_RATE_LIMIT_PER_TOKEN: '1000000',
    ADMIN_RATE_LIMIT_PER_ADDRESS: '1000000',
  };
  let dbCreated = false;
  let load: LoadGenerator | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= cleanupOnce());
  const cleanupOnce = async () => {
    // The load generator may be what failed (or be gone already): stopAll below ends whatever is left of it.
    await load?.stop().catch(() => {});
    await stopAll();
    if (dbCreated)
      await dropDatabaseNamed(PG_URL, dbName).catch((err: unknown) => log(`drop database: ${String(err)}`));
    const deleted = await clearRedis(prefix).catch((err: unknown) => {
      log(`clear Redis keys under ${prefix}: ${String(err)}`);
      return -1;
    });
    rmSync(tmp, { recursive: true, force: true });
    log(`cleaned up: database ${dbName} dropped, ${deleted} Redis keys under ${prefix} deleted`);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const watchdog = setTimeout(() => {
    log('watchdog: the bench ran over 15 minutes; stopping everything');
    void cleanup().finally(() => process.exit(3));
  }, 15 * 60_000);
  watchdog.unref();

  try {
    log('measuring the machine (1 s idle sample)');
    const mach = await describeMachine();
    log(machineLine(mach));
    if (mach.idleBusyPercent > 10)
      log(
        `warning: the machine is already ${mach.idleBusyPercent}% busy before the bench starts; numbers will be noisy`,
      );

    await createDatabaseNamed(PG_URL, dbName);
    dbCreated = true;
    log(`database ${dbName}, Redis prefix ${prefix}`);

    const noop = await startServer('noop', [NOOP], { PATH: serviceEnv.PATH ?? '' }, 'noop server started');
    const serviceArgv = (process.env.BENCH_SERVICE_EXEC_ARGV ?? '').split(' ').filter(Boolean);
    const tracing = await tracingEnv(process.env.BENCH_TRACING);
    Object.assign(serviceEnv, tracing.env);
    log(tracing.describe);
    const service = await startServer('service', [...serviceArgv, ...SERVICE], serviceEnv, SERVICE_STARTED);
    const api = admin(service, adminToken);
    await api.ready();
    // The load generator's flags: a larger young generation cuts its GC work (about a fifth of its CPU), which on
    // 2 cores is CPU taken from the server. BENCH_LOAD_EXEC_ARGV adds flags (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p").
    const loadArgv = [
      '--max-semi-space-size=32',
      ...(process.env.BENCH_LOAD_EXEC_ARGV ?? '').split(' ').filter(Boolean),
    ];
    load = new LoadGenerator(LOAD, { PATH: serviceEnv.PATH ?? '' }, loadArgv);
    log(
      `no-op server pid ${noop.pid} :${noop.grpcPort}; service pid ${service.pid} grpc :${service.grpcPort} http :${service.httpPort}; load generator pid ${load.pid}`,
    );

    // Keys. Cold pools are sized for what each case can consume (each cold key is used once).
    // argon2 at ~15 ms and one at a time caps cold verifications near 70/s, plus what can wait in flight.
    const main = SECTIONS.has('main') ? 1 : 0;
    const mixColdCount = main * (Math.ceil((70 * (WARMUP_MS + DURATION_MS)) / 1000) + CONCURRENCY);
    const backgroundColdCount = main * (Math.ceil((BACKGROUND_COLD_RATE * (WARMUP_MS + DURATION_MS)) / 1000) + 30);
    const totalKeys = HIT_KEYS + main * (HIT_KEYS + COLD_PACED_COUNT + COLD_COUNT) + mixColdCount + backgroundColdCount;
    log(`seeding ${totalKeys} keys through the admin API (argon2id hash each, default parameters)`);
    const seedStart = performance.now();
    const seeded = await seed(api, totalKeys, 'bench');
    const keys = seeded.map((k) => k.key);
    const seedSeconds = (performance.now() - seedStart) / 1000;
    log(`seeded in ${seedSeconds.toFixed(1)} s`);
    let at = 0;
    const take = (n: number) => {
      const out = keys.slice(at, at + n);
      at += n;
      return out;
    };
    const hit = take(HIT_KEYS);
    // Keys with two rate limits and a quota, none of which the bench exhausts.
    const limitedHit = take(main * HIT_KEYS);
    for (const k of seeded.slice(HIT_KEYS, HIT_KEYS + limitedHit.length)) {
      await api.patchKey(k.id, {
        remaining_uses: 1e12,
        rate_limits: [
          { name: 'per_second', limit: 1e9, window_seconds: 1 },
          { name: 'per_minute', limit: 1e9, window_seconds: 60 },
        ],
      });
    }
    const coldPaced = take(main * COLD_PACED_COUNT);
    const coldCount = take(main * COLD_COUNT);
    const coldMix = take(mixColdCount);
    const coldBackground = take(backgroundColdCount);
    const unknown = Array.from({ length: UNKNOWN_KEYS }, () => generateKey('live').key);
    const malformed = malformedKeys();
    const pools = (cold: string[] = []): Pools => ({ hit, malformed, unknown, cold });

    const base = { channels: CHANNELS, ip: IP, scope: SCOPE };
    const closed = (pattern: RunSpec['main']['pattern'], concurrency = CONCURRENCY): RunSpec['main'] => ({
      mode: 'closed',
      concurrency,
      warmupMs: WARMUP_MS,
      durationMs: DURATION_MS,
      pattern,
    });
    const closedTimeout = WARMUP_MS + DURATION_MS + 60_000;
    const probe = new BackendProbe(dbName);
    await probe.open();
    type Snapshot = Awaited<ReturnType<BackendProbe['snapshot']>>;
    const backendUse = (a: Snapshot, b: Snapshot, calls: number): BackendUse => {
      const redisByCommand: Record<string, number> = {};
      let redis = 0;
      for (const [cmd, n] of Object.entries(b.redis)) {
        const d = n - (a.redis[cmd] ?? 0) - (cmd === 'info' ? 1 : 0); // our own INFO
        redis += d;
        if (d / calls > 0.001) redisByCommand[cmd] = Math.round((d / calls) * 1000) / 1000;
      }
      return {
        redisPerCall: Math.round((redis / calls) * 1000) / 1000,
        redisByCommand,
        pgXactsPerCall: Math.round(((b.pgXacts - a.pgXacts) / calls) * 1000) / 1000,
      };
    };
    const redisPid = await probe.redisPid();
    const runCase = async (given: RunSpec, timeoutMs = closedTimeout): Promise<RunResult> => {
      log(`case ${given.name}`);
      // PostgreSQL and Redis are measured too, so that "rest" is work outside the system under test.
      const spec: RunSpec = {
        ...given,
        watch: { ...given.watch, postgres: pidsNamed('postgres'), ...(redisPid ? { redis: redisPid } : {}) },
      };
      let first: Promise<Snapshot> | undefined;
      let last: Promise<Snapshot> | undefined;
      load!.onWindow = (phase) => {
        const snap = probe.snapshot();
        // Only marks it handled until it is awaited below, where a failure surfaces and fails the case.
        snap.catch(() => {});
        if (phase === 'start') first = snap;
        else last = snap;
      };
      const r = await load!.request<RunResult>({ cmd: 'run', spec }, timeoutMs).finally(() => {
        load!.onWindow = undefined;
      });
      const calls = r.main.calls + (r.background?.calls ?? 0);
      if (first && last && calls > 0) r.backend = backendUse(await first, await last, calls);
      const m = r.main;
      log(
        `  ${m.throughput.toFixed(0)} calls/s, p50 ${m.latencyMs.p50.toFixed(3)} ms, p99 ${m.latencyMs.p99.toFixed(3)} ms; ` +
          `cpu server ${r.cpu.processes.server ?? '?'}% load ${r.cpu.processes.load ?? '?'}% pg ${r.cpu.processes.postgres ?? '?'}% redis ${r.cpu.processes.redis ?? '?'}% rest ${r.cpu.other}%` +
          (r.backend
            ? `; per call: ${r.backend.redisPerCall} Redis commands, ${r.backend.pgXactsPerCall} PG transactions`
            : '') +
          (r.background
            ? `; background ${r.background.throughput.toFixed(1)}/s p99 ${r.background.latencyMs.p99.toFixed(1)} ms`
            : ''),
      );
      return r;
    };
    const onNoop = { ...base, port: noop.grpcPort, expect: 'allowed' as const, watch: { server: noop.pid } };
    const onService = (s: Server) => ({
      ...base,
      port: s.grpcPort,
      expect: 'by-kind' as const,
      watch: { server: s.pid },
    });

    // Each group of service cases is preceded by its own no-op run, and its ratios are to that run:
    // a slow drift of the machine (or other work on it) then weighs on both sides alike.
    const cases: CaseReport[] = [];
    let baselineId = '';
    /** `ratio`: false for none, true for the last no-op run, or the id of the no-op run to compare with. */
    const add = (
      id: string,
      title: string,
      target: 'noop' | 'service',
      result: RunResult,
      ratio: boolean | string = true,
    ) => {
      if (target === 'noop') baselineId = id;
      const baseline = typeof ratio === 'string' ? ratio : ratio ? baselineId : undefined;
      cases.push({ id, title, target, result, baselineId: target === 'service' ? baseline : undefined });
    };
    const noopCase = async (n: number, before: string) =>
      add(
        `noop-${n}`,
        `no-op server (baseline for ${before})`,
        'noop',
        await runCase({ ...onNoop, name: `noop ${n}`, pools: pools(), main: closed({ hit: 1 }) }),
      );
    if (SECTIONS.has('main')) {
      await noopCase(1, 'the next three rows');
      add(
        'hit',
        'cache hit (4 keys, warmed)',
        'service',
        await runCase({ ...onService(service), name: 'cache hit', pools: pools(), main: closed({ hit: 1 }) }),
      );
      add(
        'malformed',
        'malformed key',
        'service',
        await runCase({ ...onService(service), name: 'malformed key', pools: pools(), main: closed({ malformed: 1 }) }),
      );
      add(
        'hit-limited',
        'cache hit, keys with two rate limits and a quota (4 keys)',
        'service',
        await runCase({
          ...onService(service),
          name: 'cache hit, limited',
          pools: { ...pools(), hit: limitedHit },
          main: closed({ hit: 1 }),
        }),
      );
      await noopCase(2, 'the next four rows');
      add(
        'unknown',
        `unknown key (${UNKNOWN_KEYS} well-formed ids, remembered)`,
        'service',
        await runCase({ ...onService(service), name: 'unknown key', pools: pools(), main: closed({ unknown: 1 }) }),
      );
      add(
        'cold-paced',
        `cold verification, ${COLD_RATE}/s open loop (${COLD_PACED_COUNT} keys)`,
        'service',
        await runCase(
          {
            ...onService(service),
            name: 'cold paced',
            pools: pools(coldPaced),
            main: { mode: 'paced', ratePerSec: COLD_RATE, count: COLD_PACED_COUNT, pattern: { cold: 1 } },
          },
          120_000,
        ),
        false,
      );
      add(
        'cold-count',
        `cold verification, ${COLD_COUNT_CONCURRENCY} in flight (${COLD_COUNT} keys)`,
        'service',
        await runCase(
          {
            ...onService(service),
            name: 'cold saturated',
            pools: pools(coldCount),
            main: { mode: 'count', concurrency: COLD_COUNT_CONCURRENCY, count: COLD_COUNT, pattern: { cold: 1 } },
          },
          120_000,
        ),
        false,
      );
      add(
        'mix',
        'mix 90% hit / 5% malformed / 4% unknown / 1% cold',
        'service',
        await runCase({
          ...onService(service),
          name: 'mix',
          pools: pools(coldMix),
          main: closed({ hit: 90, malformed: 5, unknown: 4, cold: 1 }),
        }),
      );
      await noopCase(3, 'the next row');
      add(
        'hit-bg',
        `cache hit while ${BACKGROUND_COLD_RATE} cold verifications/s run`,
        'service',
        await runCase({
          ...onService(service),
          name: 'cache hit + cold background',
          pools: pools(coldBackground),
          main: closed({ hit: 1 }),
          background: { ratePerSec: BACKGROUND_COLD_RATE, pattern: { cold: 1 } },
        }),
      );
    }

    // Light load: most callers have a few calls in flight, where per-call costs are not hidden by batching.
    // Each pair is run twice (A B A B) and judged on both: a light-load run moves with the machine more than a busy one.
    if (SECTIONS.has('light')) {
      // Both servers and the load generator warmed at this load first (not recorded): the first light run must not pay for JIT.
      const warm = (spec: RunSpec) =>
        runCase({
          ...spec,
          main: { mode: 'closed', concurrency: 2, warmupMs: 0, durationMs: 2000, pattern: spec.main.pattern },
        });
      await warm({ ...onNoop, name: 'warm-up no-op', pools: pools(), main: closed({ hit: 1 }) });
      await warm({
        ...onService(service),
        name: 'warm-up service',
        pools: pools(),
        main: closed({ hit: 1, malformed: 1 }),
      });
      for (const l of LIGHT_LOADS) {
        const at = { ...base, channels: l.channels };
        const light = (pattern: RunSpec['main']['pattern']): RunSpec['main'] => closed(pattern, l.concurrency);
        const tag = `${l.concurrency} in flight over ${l.channels} channels`;
        for (const kind of ['hit', 'malformed'] as const) {
          for (let i = 0; i < l.rounds; i++) {
            const round = roundName(i);
            const noopId = `noop-l${l.concurrency}-${kind}-${round}`;
            const runNoop = async () =>
              add(
                noopId,
                `no-op server, ${tag} (${kind} ${round})`,
                'noop',
                await runCase({ ...onNoop, ...at, name: `noop ${tag}`, pools: pools(), main: light({ hit: 1 }) }),
              );
            const runService = async () =>
              add(
                `${kind}-l${l.concurrency}-${round}`,
                `${kind === 'hit' ? 'cache hit' : 'malformed key'}, ${tag} (${round})`,
                'service',
                await runCase({
                  ...onService(service),
                  ...at,
                  name: `${kind} ${tag}`,
                  pools: pools(),
                  main: light({ [kind]: 1 }),
                }),
                noopId,
              );
            if (i % 2 === 0) {
              await runNoop();
              await runService();
            } else {
              await runService();
              await runNoop();
            }
          }
        }
      }
    }

    log(`stopping the service: ${await service.stop()}`);

    // The cache-hit case on a service process run with --cpu-prof, and the same load on a profiled no-op
    // server for comparison (what the transport alone costs, and its garbage collection).
    let profile: BenchReport['profile'] = null;
    let profileLight: BenchReport['profile'] = null;
    if (process.env.BENCH_SKIP_PROFILE !== '1' && SECTIONS.has('profile')) {
      const profiled = async (
        name: string,
        command: readonly string[],
        env: Record<string, string>,
        started: string,
        spec: (s: Server) => RunSpec,
      ) => {
        const dir = join(tmp, `prof-${name}`);
        mkdirSync(dir, { recursive: true });
        const spawnedAt = performance.timeOrigin + performance.now();
        const server = await startServer(
          `${name} (profiled)`,
          ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.cpuprofile`, ...command],
          env,
          started,
        );
        if (server.httpPort) await admin(server, adminToken).ready();
        const result = await runCase(spec(server));
        log(`stopping the profiled ${name}: ${await server.stop()}`);
        const file = readdirSync(dir)
          .map((f) => join(dir, f))
          .find((f) => f.endsWith('.cpuprofile'));
        if (!file) {
          log(`warning: no .cpuprofile was written by ${name}`);
          return undefined;
        }
        // The profile starts with the process; trim 100 ms at both ends of the measured window for slack.
        const window = {
          fromMs: result.windowEpochMs.start - spawnedAt + 100,
          toMs: result.windowEpochMs.end - spawnedAt - 100,
        };
        const summary = summarizeProfile(file, window);
        if (process.env.BENCH_PROFILE_DIR) {
          mkdirSync(process.env.BENCH_PROFILE_DIR, { recursive: true });
          copyFileSync(file, join(process.env.BENCH_PROFILE_DIR, `${name}.cpuprofile`));
          writeFileSync(join(process.env.BENCH_PROFILE_DIR, `${name}.window.json`), JSON.stringify(window));
        }
        summary.file = `${name}.cpuprofile`;
        log(`profile of ${name}: ${summary.sampledMs} ms sampled in the window`);
        return { caseResult: result, summary };
      };
      const pair = async (tag: string, at: { concurrency: number; channels: number }) => {
        const main = closed({ hit: 1 }, at.concurrency);
        const svc = await profiled(`service${tag}`, SERVICE, serviceEnv, SERVICE_STARTED, (s) => ({
          ...onService(s),
          channels: at.channels,
          name: `cache hit (service profiled, ${at.concurrency} in flight)`,
          pools: pools(),
          main,
        }));
        const noopRun = await profiled(
          `noop${tag}`,
          [NOOP],
          { PATH: serviceEnv.PATH ?? '' },
          'noop server started',
          (s) => ({
            ...onNoop,
            port: s.grpcPort,
            channels: at.channels,
            watch: { server: s.pid },
            name: `no-op (profiled, ${at.concurrency} in flight)`,
            pools: pools(),
            main,
          }),
        );
        return svc ? { ...svc, noop: noopRun } : null;
      };
      profile = await pair('', { concurrency: CONCURRENCY, channels: CHANNELS });
      const light = LIGHT_LOADS[0];
      if (light) profileLight = await pair('-light', light);
    }

    let revoke: RevokeReport = emptyRevoke();
    if (SECTIONS.has('revoke')) {
      // Revoke-to-deny on three replicas.
      log('starting 3 replicas for revoke-to-deny');
      const replicas: Server[] = [];
      for (const n of [1, 2, 3]) {
        replicas.push(
          await startServer(`replica ${n}`, SERVICE, { ...serviceEnv, REPLICA_ID: `bench-r${n}` }, SERVICE_STARTED),
        );
      }
      await Promise.all(replicas.map((r) => admin(r, adminToken).ready()));
      const revokeKeys = await seed(admin(replicas[0] as Server, adminToken), REVOKE_KEYS, 'revoke');
      const names = replicas.map((r) => r.name);
      log(`revoking ${revokeKeys.length} keys on replica 1, polling replicas 2 and 3`);
      const before = await Promise.all(replicas.map((r) => scrapeMetrics(r)));
      const revokeRaw = await load.request<RevokeResult>(
        {
          cmd: 'revoke',
          spec: {
            replicas: replicas.map((r) => ({ name: r.name, grpcPort: r.grpcPort, httpPort: r.httpPort })),
            adminToken,
            accountId: ACCOUNT,
            keys: revokeKeys,
            ip: IP,
            scope: SCOPE,
            timeoutMs: 10_000,
          },
        },
        300_000,
      );
      const after = await Promise.all(replicas.map((r) => scrapeMetrics(r)));
      revoke = revokeReport(revokeRaw, names.slice(1));
      revoke.replicaWork = Object.fromEntries(
        replicas.map((r, i) => [
          r.name,
          {
            argon2Verifications: (after[i]?.argon2 ?? Number.NaN) - (before[i]?.argon2 ?? Number.NaN),
            storageLookups: (after[i]?.storage ?? Number.NaN) - (before[i]?.storage ?? Number.NaN),
          },
        ]),
      );
      for (const r of replicas) log(`stopping ${r.name}: ${await r.stop()}`);
    }
    log(`stopping the no-op server: ${await noop.stop()}`);
    await probe.close();

    // Ratios, targets, report.
    const byId = (id: string) => cases.find((c) => c.id === id);
    for (const c of cases) {
      const b = c.baselineId ? byId(c.baselineId)?.result.main : undefined;
      if (b) {
        const m = c.result.main;
        const bc = cases.find((x) => x.id === c.baselineId)?.result;
        c.ratio = {
          throughput: m.throughput / b.throughput,
          p50: m.latencyMs.p50 / b.latencyMs.p50,
          p99: m.latencyMs.p99 / b.latencyMs.p99,
          cpu: bc ? cpuPerCall(c.result) / cpuPerCall(bc) : Number.NaN,
        };
      }
    }
    const noops = cases.filter((c) => c.target === 'noop').map((c) => c.result.main);
    const r2 = (n: number | undefined) => (n === undefined ? '–' : n.toFixed(2));
    const check = (name: string, value: number | undefined, target: string, pass: boolean): TargetCheck => ({
      name,
      measured: r2(value),
      target,
      pass,
    });
    const hitR = byId('hit')?.ratio;
    const malR = byId('malformed')?.ratio;
    const bgR = byId('hit-bg')?.ratio;
    const limR = byId('hit-limited')?.ratio;
    const targets: TargetCheck[] = [];
    if (SECTIONS.has('main')) {
      targets.push(
        check('cache hit: throughput / no-op', hitR?.throughput, '≥ 0.90', (hitR?.throughput ?? 0) >= 0.9),
        check('cache hit: p99 / no-op p99', hitR?.p99, '≤ 1.30', (hitR?.p99 ?? Infinity) <= 1.3),
        check('malformed key: throughput / no-op', malR?.throughput, '≥ 0.95', (malR?.throughput ?? 0) >= 0.95),
        check(
          `cache hit while ${BACKGROUND_COLD_RATE} cold/s run: p99 / no-op p99`,
          bgR?.p99,
          '≤ 2.00',
          (bgR?.p99 ?? Infinity) <= 2,
        ),
        check(
          'cache hit, two rate limits and a quota: throughput / no-op',
          limR?.throughput,
          '≥ 0.85',
          (limR?.throughput ?? 0) >= 0.85,
        ),
        check(
          'cache hit, two rate limits and a quota: p99 / no-op p99',
          limR?.p99,
          '≤ 1.50',
          (limR?.p99 ?? Infinity) <= 1.5,
        ),
      );
    }
    if (SECTIONS.has('light')) {
      // At 2 in flight a hit and a malformed key cost what a no-op call costs. Over every round: the
      // server's CPU per call pooled (all its CPU over all its calls, each side), and the mean of the rounds' p99 ratios.
      const rounds = LIGHT_LOADS[0]?.rounds ?? 0;
      for (const kind of ['hit', 'malformed'] as const) {
        const pairs = Array.from({ length: rounds }, (_, i) => byId(`${kind}-l2-${roundName(i)}`))
          .map((c) => ({ c, b: c?.baselineId ? byId(c.baselineId) : undefined }))
          .filter((p): p is { c: CaseReport; b: CaseReport } => p.c?.ratio !== undefined && p.b !== undefined);
        const complete = pairs.length === rounds && rounds > 0;
        // Each side's CPU over all its calls: the rounds' CPU per call, weighted by their calls.
        const pooled = (side: 'c' | 'b') => {
          const runs = pairs.map((p) => p[side].result);
          return (
            runs.reduce((a, r) => a + cpuPerCall(r) * r.main.calls, 0) / runs.reduce((a, r) => a + r.main.calls, 0)
          );
        };
        const cpu = complete ? pooled('c') / pooled('b') : undefined;
        const p99 = complete ? pairs.reduce((a, p) => a + (p.c.ratio?.p99 ?? Number.NaN), 0) / pairs.length : undefined;
        const what = kind === 'hit' ? 'cache hit' : 'malformed key';
        targets.push(
          check(
            `${what}, 2 in flight: p99 / no-op p99 (mean of ${rounds} rounds)`,
            p99,
            '≤ 1.20',
            (p99 ?? Infinity) <= 1.2,
          ),
          check(
            `${what}, 2 in flight: server CPU per call / no-op (${rounds} rounds pooled)`,
            cpu,
            '≤ 1.10',
            (cpu ?? Infinity) <= 1.1,
          ),
        );
      }
    }
    if (SECTIONS.has('revoke')) {
      targets.push({
        name: 'stale allows after a revoke response',
        measured: String(revoke.staleAllows),
        target: '0',
        pass: revoke.staleAllows === 0,
      });
    }
    const bgStream = byId('hit-bg')?.result.background;
    const correctness: TargetCheck[] = [
      ...cases.map((c) => ({
        name: `${c.title}: answers other than expected${c.result.main.unexpectedSamples.length ? ` (${c.result.main.unexpectedSamples.join('; ')})` : ''}`,
        measured: String(c.result.main.unexpected + (c.result.background?.unexpected ?? 0)),
        target: '0',
        pass: c.result.main.unexpected + (c.result.background?.unexpected ?? 0) === 0,
      })),
      ...cases
        .filter((c) => c.result.main.coldExhausted > 0)
        .map((c) => ({
          name: `${c.title}: cold calls that found the pool empty`,
          measured: String(c.result.main.coldExhausted),
          target: '0',
          pass: false,
        })),
      ...(SECTIONS.has('main')
        ? [
            {
              name: 'background cold stream: calls sent per second',
              measured: bgStream?.sentPerSec?.toFixed(1) ?? '–',
              target: `${BACKGROUND_COLD_RATE} ± 10%`,
              pass: Math.abs((bgStream?.sentPerSec ?? 0) - BACKGROUND_COLD_RATE) <= BACKGROUND_COLD_RATE * 0.1,
            },
            {
              name: 'background cold stream: answers per second (the service kept up)',
              measured: bgStream?.throughput.toFixed(1) ?? '–',
              target: `${BACKGROUND_COLD_RATE} ± 10%`,
              pass: Math.abs((bgStream?.throughput ?? 0) - BACKGROUND_COLD_RATE) <= BACKGROUND_COLD_RATE * 0.1,
            },
          ]
        : []),
      ...(SECTIONS.has('revoke')
        ? [
            {
              name: 'revoke: every polled replica denied each key',
              measured: String(Object.values(revoke.perReplica).reduce((s, v) => s + v.neverDenied, 0)),
              target: '0 never denied',
              pass: Object.values(revoke.perReplica).every((v) => v.neverDenied === 0),
            },
          ]
        : []),
    ];
    const finishedAt = new Date();
    const report: BenchReport = {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationS: (performance.now() - t0) / 1000,
      commit: commitOf(ROOT),
      machine: mach,
      config: {
        concurrency: CONCURRENCY,
        channels: CHANNELS,
        warmupMs: WARMUP_MS,
        durationMs: DURATION_MS,
        coldRate: COLD_RATE,
        coldCount: COLD_COUNT,
        coldCountConcurrency: COLD_COUNT_CONCURRENCY,
        backgroundColdRate: BACKGROUND_COLD_RATE,
        hitKeys: HIT_KEYS,
        unknownKeys: UNKNOWN_KEYS,
        revokeKeys: REVOKE_KEYS,
        argon2: 'service defaults (m=19456 KiB, t=2, p=1)',
        logLevel: 'info',
      },
      seeding: { keys: totalKeys, seconds: seedSeconds, perKeyMs: (seedSeconds * 1000) / totalKeys },
      cases,
      baselines: {
        throughput: {
          min: Math.min(...noops.map((m) => m.throughput)),
          max: Math.max(...noops.map((m) => m.throughput)),
        },
        p99: {
          min: Math.min(...noops.map((m) => m.latencyMs.p99)),
          max: Math.max(...noops.map((m) => m.latencyMs.p99)),
        },
      },
      targets,
      correctness,
      revoke,
      profile,
      profileLight,
    };

    const md = markdown(report);
    const bound = clientBound(report);
    process.stdout.write(
      `\n${casesTable(report)}\n\n${bound ? `${bound}\n\n` : ''}${targetsTable(targets)}\n\n${targetsTable(correctness)}\n\n${revokeTable(revoke)}\n\n`,
    );
    if (profile) {
      const top = profile.summary.topSelf
        .slice(0, 15)
        .map((r) => `  ${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}`);
      const mods = profile.summary.byModule.slice(0, 8).map((r) => `  ${r.pct.toFixed(1).padStart(5)}%  ${r.name}`);
      process.stdout.write(
        `CPU profile (cache hit, ${profile.summary.sampledMs} ms sampled; % of busy time), top self time:\n${top.join('\n')}\nby module:\n${mods.join('\n')}\n\n`,
      );
      if (profile.noop) process.stdout.write(`${profileComparison(profile, profile.noop)}\n\n`);
    }
    if (profileLight?.noop)
      process.stdout.write(
        `At ${LIGHT_LOADS[0]?.concurrency ?? 2} in flight:\n${profileComparison(profileLight, profileLight.noop)}\n\n`,
      );
    mkdirSync(RESULTS, { recursive: true });
    const stamp = startedAt
      .toISOString()
      .replace(/:/g, '-')
      .replace(/\.\d+Z$/, 'Z');
    const json = `${JSON.stringify(report, null, 2)}\n`;
    // A run of some sections only (BENCH_ONLY) does not replace latest: it is kept under its sections' names.
    const partial = `${[...SECTIONS].join('-')}-${stamp}`;
    const files: Record<string, string> = ALL_SECTIONS.every((s) => SECTIONS.has(s))
      ? { [`${stamp}.json`]: json, 'latest.json': json, 'latest.md': md }
      : { [`${partial}.json`]: json, [`${partial}.md`]: md };
    for (const [name, text] of Object.entries(files)) writeFileSync(join(RESULTS, name), text);
    process.stdout.write(
      `Written: ${Object.keys(files)
        .map((f) => `bench/results/${f}`)
        .join(', ')}\n`,
    );
    const failed = [...targets, ...correctness].filter((t) => !t.pass);
    if (failed.length > 0) process.stdout.write(`Missed: ${failed.map((t) => t.name).join('; ')}\n`);
    return process.env.BENCH_STRICT === '1' && failed.length > 0 ? 1 : 0;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
