/**
 * `npm run bench:callers` (also the last part of `npm run bench`): the two targets of the callers'
 * surfaces, each measured against its own baseline in the same run.
 *
 * 1. Plugin overhead: GET /v1/bookings on Fastify without the plugin, then behind
 *    @otesse/keys-client/fastify deciding locally (the default), then behind it asking for every
 *    request (localDecisions: false), alternated over rounds (each pair in both orders); 64 requests in
 *    flight over a hot set of 10 keys. Targets: local decisions >= 0.90 of the route's requests per
 *    second, the route process's CPU per request at most 3 µs above the bare route's (medians of the
 *    rounds' ratios and differences), >= 100 requests per Authenticate call. The same route servers are
 *    then counted in instructions per request under valgrind's callgrind (every thread), which the VM's
 *    drift does not move.
 * 3. Revoke response time with 20 watching callers (clients in this process, each holding a lease),
 *    against none before and after. Target: p99 at most 1.5 × without.
 * 2. Forward auth through nginx: nginx proxying alone, then nginx with auth_request to the key
 *    service's FORWARD_AUTH_PORT, same upstream (the plain route). Target: p50 added <= 1 ms.
 *
 * Processes: the key service (dist/src/main.js on PostgreSQL and Redis, a fresh database and prefix),
 * the route servers (bench/callers-server.js), nginx, and this load generator (undici, closed loop).
 * Tunables: BENCH_DURATION_MS (2000), BENCH_WARMUP_MS (500), BENCH_CONCURRENCY (64), BENCH_ROUNDS (10),
 * BENCH_INSTRUCTION_REQUESTS (10,000 per callgrind window; 0 skips that section), BENCH_INSTRUCTION_MODES
 * (plain,hook,plugin),
 * BENCH_REVOKES (200 per case), BENCH_ROUTE_NODE_ARGS (node flags of the route servers),
 * BENCH_NGINX_CONCURRENCY (8), BENCH_PG_URL, BENCH_REDIS_URL, BENCH_CALLERS_PROFILE (a directory: CPU profiles of the plugin server and the key service).
 */
import { hash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyServiceClient } from '@otesse/keys-client';
import { Pool } from 'undici';
import { createDatabaseNamed, dropDatabaseNamed } from '../test/helpers/harness/database.js';
import { SERVICE_ARGS, SERVICE_STARTED } from '../test/helpers/harness/process.js';
import { percentile } from '../test/helpers/harness/stats.js';
import { startServer, stopAll, type Server } from './lib/procs.js';
import { helperThreadsCpuMs, processCpuMs } from './lib/stats.js';
import { loadNow } from './lib/machine.js';
import { callgrindWrapper, haveCallgrind, InstructionCounter, instructionsPerIteration } from './lib/callgrind.js';
import { num } from './lib/env.js';
import { clearPrefix } from './lib/redis-prefix.js';
import { startNginx } from '../test/helpers/nginx.js';
import { metric, scrape } from '../test/helpers/ops/prom.js';

const DURATION_MS = num('BENCH_DURATION_MS', 2000);
const WARMUP_MS = num('BENCH_WARMUP_MS', 500);
const CONCURRENCY = num('BENCH_CONCURRENCY', 64);
const NGINX_CONCURRENCY = num('BENCH_NGINX_CONCURRENCY', 8);
const ROUNDS = num('BENCH_ROUNDS', 10);
const REVOKES = num('BENCH_REVOKES', 200);
const HOT_KEYS = 10;
/** Requests per window of the instruction counts under callgrind (0: skip that section). */
const INSTRUCTION_REQUESTS = num('BENCH_INSTRUCTION_REQUESTS', 10_000);
/** The route servers counted (callers-server.js modes; BENCH_INSTRUCTION_MODES, comma separated). */
const INSTRUCTION_MODES = (process.env.BENCH_INSTRUCTION_MODES ?? 'plain,hook,plugin').split(',');
/** More node flags for every route server (BENCH_ROUTE_NODE_ARGS, space separated), e.g. --single-threaded-gc. */
const ROUTE_ARGS = (process.env.BENCH_ROUTE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const WATCHERS = 20;
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/bench/
const ROOT = join(HERE, '..', '..');
const ADMIN_TOKEN = `bench-${randomBytes(16).toString('hex')}`;

interface Measure {
  rps: number;
  /** Requests answered. */
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  statuses: Record<number, number>;
  /** CPU µs per request of each watched process (and of this load generator, `load`), over the measured period. */
  cpu?: Record<string, number>;
}

/** The request headers of worker `i` (a hot set of keys spreads over the workers), or one set for all. */
type Headers = Record<string, string> | ((worker: number) => Record<string, string>);

/** Closed loop: `concurrency` requests in flight for `ms`, or until `requests` have been sent. */
async function closedLoop(
  origin: string,
  path: string,
  headers: Headers,
  concurrency: number,
  until: { ms: number } | { requests: number },
): Promise<Measure> {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  const started0 = performance.now();
  const end = 'ms' in until ? started0 + until.ms : Number.POSITIVE_INFINITY;
  let left = 'requests' in until ? until.requests : Number.POSITIVE_INFINITY;
  const worker = async (_: unknown, i: number) => {
    const mine = typeof headers === 'function' ? headers(i) : headers;
    while (performance.now() < end && left-- > 0) {
      const started = performance.now();
      try {
        const res = await pool.request({ method: 'GET', path, headers: mine });
        await res.body.dump();
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        latencies.push(performance.now() - started);
      } catch {
        // Counted: the report prints the error count beside the statuses.
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / ((performance.now() - started0) / 1000),
    requests: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    statuses,
  };
}

async function measure(
  origin: string,
  path: string,
  headers: Headers,
  concurrency: number,
  watch: Record<string, Server> = {},
): Promise<Measure> {
  await closedLoop(origin, path, headers, concurrency, { ms: WARMUP_MS });
  const before = Object.entries(watch).map(
    ([name, s]) => [name, s.pid, processCpuMs(s.pid) ?? 0, helperThreadsCpuMs(s.pid) ?? 0] as const,
  );
  const self = process.cpuUsage();
  const m = await closedLoop(origin, path, headers, concurrency, { ms: DURATION_MS });
  const used = process.cpuUsage(self);
  const requests = Math.max(1, m.requests);
  const cpu: Record<string, number> = {};
  for (const [name, pid, ms, helpers] of before) {
    cpu[name] = (((processCpuMs(pid) ?? ms) - ms) * 1000) / requests;
    // Of which threads other than the main one (garbage collection, compilation, libuv's pool).
    cpu[`${name} off main`] = (((helperThreadsCpuMs(pid) ?? helpers) - helpers) * 1000) / requests;
  }
  cpu.load = (used.user + used.system) / requests;
  return { ...m, cpu };
}

const line = (name: string, m: Measure) =>
  `| ${name} | ${Math.round(m.rps).toLocaleString('en')} | ${m.p50.toFixed(3)} | ${m.p99.toFixed(3)} | ` +
  `${Object.entries(m.cpu ?? {})
    .map(([n, us]) => `${n} ${Math.round(us)}`)
    .join(', ')} | ${JSON.stringify(m.statuses)}${m.errors ? `, ${m.errors} errors` : ''} |`;

/**
 * A route server (`callers-server.js <mode>`, with BENCH_ROUTE_NODE_ARGS), its plugin pointed at
 * `keyService`; `nodeArgs` before the script, `wrapper` around node (callgrind).
 */
function startRoute(
  name: string,
  mode: string,
  o: { keyService?: string; nodeArgs?: string[]; wrapper?: string[] } = {},
): Promise<Server> {
  return startServer(
    name,
    [...ROUTE_ARGS, ...(o.nodeArgs ?? []), join(HERE, 'callers-server.js'), mode],
    { PATH: process.env.PATH ?? '', ...(o.keyService ? { KEY_SERVICE_ADDR: o.keyService } : {}) },
    'bench server started',
    o.wrapper ? 300_000 : 30_000,
    o.wrapper,
  );
}

/** `--cpu-prof` into BENCH_CALLERS_PROFILE as `<name>.cpuprofile`, when set. */
const profileArgs = (name: string): string[] =>
  process.env.BENCH_CALLERS_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CALLERS_PROFILE}`, `--cpu-prof-name=${name}.cpuprofile`]
    : [];

/**
 * Instructions per request of a route server (`callers-server.js <mode>`) under callgrind, every thread:
 * `requests` × 4 to warm up (the JIT), then three windows of `requests` each, and the instructions per second
 * it runs idle for 3 s (timers, beats, a collection finishing).
 */
async function instructionsPerRequest(
  mode: string,
  keyService: string,
  dir: string,
  requests: number,
  headers: Headers,
): Promise<{ windows: number[]; least: number; idlePerSecond: number; other: number }> {
  const server = await startRoute(`${mode} route under callgrind`, mode, {
    keyService,
    wrapper: callgrindWrapper(dir, mode),
  });
  try {
    const origin = `http://127.0.0.1:${server.httpPort}`;
    const counter = new InstructionCounter(server.pid, dir, mode);
    await closedLoop(origin, '/v1/bookings', headers, CONCURRENCY, { requests: requests * 4 });
    const windows: number[] = [];
    const clean: number[] = [];
    let other = 0;
    for (let i = 0; i < 3; i++) {
      await counter.zero();
      const m = await closedLoop(origin, '/v1/bookings', headers, CONCURRENCY, { requests });
      const perRequest = (await counter.dump()) / m.requests;
      windows.push(perRequest);
      // A window with another answer (a 503 when an ask outlived its deadline at valgrind's pace) took another path.
      if (m.statuses[200] === m.requests && m.errors === 0) clean.push(perRequest);
      else other += m.requests - (m.statuses[200] ?? 0) + m.errors;
    }
    await counter.zero();
    await new Promise((r) => setTimeout(r, 3000));
    const idlePerSecond = (await counter.dump()) / 3;
    // A window that took a major collection or a recompilation counts more; the least is the steady cost.
    return { windows, least: Math.min(...(clean.length ? clean : windows)), idlePerSecond, other };
  } finally {
    await server.stop(5000);
  }
}

/**
 * The SHA-256 digest of a key as the client takes it (crypto.hash, base64url), of a synthetic key of the
 * hot keys' length: instructions under callgrind, and CPU µs here. Valgrind does not offer the CPU's SHA
 * extensions, so OpenSSL runs its AVX2 code there: the one part of the plugin's count the native figure
 * must replace.
 */
async function digestCost(keyLength: number): Promise<{ instructions: number; us: number }> {
  const keys = `Array.from({ length: 10 }, (_, i) => 'k'.repeat(${keyLength - 1}) + i)`;
  const script = `const c = require('node:crypto'); const keys = ${keys}; let s; for (let i = 0; i < Number(process.argv[1]); i++) s = c.hash('sha256', keys[i % 10], 'base64url');`;
  const instructions = await instructionsPerIteration(script, 100_000);
  const local = Array.from({ length: 10 }, (_, i) => 'k'.repeat(keyLength - 1) + String(i));
  const n = 500_000;
  let sink = '';
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) sink = hash('sha256', local[i % 10]!, 'base64url');
  const used = process.cpuUsage(before);
  if (sink.length !== 43) throw new Error('unexpected digest length');
  return { instructions, us: (used.user + used.system) / n };
}

interface Counted {
  modes: Map<string, { windows: number[]; least: number; idlePerSecond: number; other: number }>;
  digest: { instructions: number; us: number };
}

/** The callgrind section of the report: a row per route server, then the plugin's and the empty hook's extra. */
function instructionLines(got: Counted | undefined, bareCpuUs: number): string[] {
  if (!got) return ['', 'instructions: not counted (BENCH_INSTRUCTION_REQUESTS=0, or valgrind is not installed)'];
  const counted = got.modes;
  const rows = [...counted].map(
    ([mode, c]) =>
      `| ${mode} | ${Math.round(c.least).toLocaleString('en')} | ${c.windows.map((w) => Math.round(w).toLocaleString('en')).join(', ')}${c.other ? ` (${c.other} answers not 200: their windows left out)` : ''} | ${Math.round(c.idlePerSecond).toLocaleString('en')} |`,
  );
  const plain = counted.get('plain')?.least;
  const above = (mode: string) => {
    const c = counted.get(mode)?.least;
    if (plain === undefined || c === undefined) return `${mode}: not counted`;
    const us = ((c - plain) * bareCpuUs) / plain;
    return `${mode} ${Math.round(c - plain).toLocaleString('en')} instructions per request above the bare route (${(((c - plain) / plain) * 100).toFixed(1)} %; ×${(plain / c).toFixed(2)} of its requests on one core; ${us.toFixed(1)} µs at the bare route's ${((bareCpuUs * 1000) / plain).toFixed(3)} ns per instruction in the rounds)`;
  };
  return [
    '',
    `| route server under callgrind, ${CONCURRENCY} in flight | instructions per request (least window) | each window of ${INSTRUCTION_REQUESTS.toLocaleString('en')} requests | idle, per second |`,
    '| --- | ---: | --- | ---: |',
    ...rows,
    '',
    `instructions (every thread, after ${(INSTRUCTION_REQUESTS * 4).toLocaleString('en')} requests of warm-up): ${[
      'plugin',
      'hook',
    ]
      .filter((m) => counted.has(m))
      .map(above)
      .join('; ')}`,
    ...(plain !== undefined && counted.has('plugin')
      ? [
          `of the plugin's, the key's SHA-256 digest: ${Math.round(got.digest.instructions).toLocaleString('en')} instructions under callgrind (no SHA extensions there), ${got.digest.us.toFixed(2)} µs here; the plugin with the native digest: +${(((counted.get('plugin')!.least - plain - got.digest.instructions) * bareCpuUs) / plain + got.digest.us).toFixed(1)} µs per request (target <= 3)`,
        ]
      : []),
  ];
}

/** Two cases one after the other: in this order on even rounds, the other way round on odd ones. */
async function pair<A, B>(round: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (round % 2 === 0) {
    const first = await a();
    return [first, await b()];
  }
  const second = await b();
  return [await a(), second];
}

/** Authenticate calls the key service has answered (its /metrics). */
const authenticateCalls = async (httpPort: number) =>
  metric(await scrape(`http://127.0.0.1:${httpPort}`), 'otesse_keys_authenticate_total');

async function startKeyService(db: string, prefix: string): Promise<{ server: Server; forwardAuthPort: number }> {
  const env = {
    PATH: process.env.PATH ?? '',
    DATABASE_URL: db,
    REDIS_URL,
    REDIS_PREFIX: prefix,
    GRPC_PORT: '0',
    HTTP_PORT: '0',
    FORWARD_AUTH_PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_TOKENS: `bench:${ADMIN_TOKEN}`,
    LOG_LEVEL: 'info',
    TRUST_PROXY: '127.0.0.1',
    // The nginx below sets X-Otesse-Scope itself (proxy_set_header replaces the client's), as docs/gateways.md says.
    FORWARD_AUTH_TRUST_SCOPE_HEADER: '1',
    CACHE_SIGNING_KEY: 'bench-signing-key-0123456789abcdef-0123456789',
    ADMIN_RATE_LIMIT_PER_TOKEN: '1000000',
    ADMIN_RATE_LIMIT_PER_ADDRESS: '1000000',
  };
  const server = await startServer(
    'key service',
    [...profileArgs('key-service'), ...SERVICE_ARGS],
    env,
    SERVICE_STARTED,
  );
  const started =
    server
      .tail()
      .split('\n')
      .find((l) => l.includes(SERVICE_STARTED)) ?? '{}';
  return { server, forwardAuthPort: (JSON.parse(started) as { forwardAuthPort: number }).forwardAuthPort };
}

async function createKey(httpPort: number): Promise<{ id: string; secret: string }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/v1/accounts/acct_bench/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ label: 'bench callers', scopes: ['bookings:read'], environment: 'live' }),
  });
  if (res.status !== 201) throw new Error(`create key: ${res.status}`);
  return (await res.json()) as { id: string; secret: string };
}

/** Revoke each key in turn: each response's time, ms, sorted. */
async function revokeTimes(httpPort: number, keys: { id: string }[]): Promise<number[]> {
  const times: number[] = [];
  for (const key of keys) {
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/accounts/acct_bench/keys/${key.id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    await res.text();
    if (res.status !== 200) throw new Error(`revoke: ${res.status}`);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

/** `count` clients in this process, each holding a Watch lease (it decided a key once). */
async function watchers(grpcPort: number, secret: string, count: number): Promise<KeyServiceClient[]> {
  const clients = Array.from({ length: count }, () => new KeyServiceClient({ address: `127.0.0.1:${grpcPort}` }));
  const input = { key: secret, ip: '127.0.0.1', scope: 'bookings:read' };
  for (const c of clients) {
    const until = performance.now() + 10_000;
    while (!c.decideLocally(input)) {
      if (performance.now() > until) throw new Error('a watching client got no lease in 10 s');
      await c.authenticate(input);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return clients;
}

const nginxConf = (upstream: number, auth: number) => (port: number) => `
  upstream app { server 127.0.0.1:${upstream}; keepalive 64; }
  upstream otesse_auth { server 127.0.0.1:${auth}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location /plain/ {
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://app/;
    }
    location /auth/ {
      auth_request /_otesse_auth;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://app/;
    }
    location = /_otesse_auth {
      internal;
      proxy_pass http://otesse_auth/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Otesse-Scope "bookings:read";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_http_version 1.1; proxy_set_header Connection "";
    }
  }
`;

async function main(): Promise<void> {
  const loadAtStart = loadNow().join(' ');
  const dbName = `bench_callers_${randomBytes(4).toString('hex')}`;
  const db = await createDatabaseNamed(PG_URL, dbName);
  const prefix = `bench:${randomBytes(4).toString('hex')}:`;
  const teardowns: (() => unknown)[] = [];
  try {
    const { server: keys, forwardAuthPort } = await startKeyService(db, prefix);
    const hot: string[] = [];
    for (let i = 0; i < HOT_KEYS; i++) hot.push((await createKey(keys.httpPort)).secret);
    const key = hot[0]!;
    const keyService = `127.0.0.1:${keys.grpcPort}`;
    const plain = await startRoute('plain route', 'plain', { nodeArgs: profileArgs('plain-route') });
    const plugin = await startRoute('plugin route', 'plugin', { keyService, nodeArgs: profileArgs('plugin-route') });
    const remote = await startRoute('plugin route, asking', 'plugin-remote', { keyService });
    const both = await startRoute('bare and protected routes in one process', 'both', { keyService });
    const hooked = await startRoute('route with an empty onRequest hook', 'hook');
    const auth = { authorization: `Bearer ${key}` };
    const hotAuth = (worker: number) => ({ authorization: `Bearer ${hot[worker % hot.length]!}` });

    // The ceiling of any design that asks over gRPC per request: the same plugin against a server that answers at once.
    const noop = await startServer(
      'noop',
      [join(HERE, 'noop-server.js')],
      { PATH: process.env.PATH ?? '' },
      'noop server started',
    );
    const pluginNoop = await startRoute('plugin route, no-op service', 'plugin-remote', {
      keyService: `127.0.0.1:${noop.grpcPort}`,
    });

    // Round after round, each pair back to back in alternate orders: the machine's drift falls on every side of the ratios.
    interface Round {
      without: Measure;
      local: Measure;
      asking: Measure;
      /** The one process with both routes: unprotected, then protected (local decisions). */
      sameBare: Measure;
      sameLocal: Measure;
      /** The route with an onRequest hook that does nothing: the floor of a check before the handler. */
      emptyHook: Measure;
      perCall: { local: number; asking: number };
    }
    const pairs: Round[] = [];
    /** Requests the route served (warm-up and measured period) per Authenticate call it made meanwhile. */
    const served = async (m: () => Promise<Measure>) => {
      const before = await authenticateCalls(keys.httpPort);
      const got = await m();
      const calls = (await authenticateCalls(keys.httpPort)) - before;
      return { m: got, perCall: (got.rps * (DURATION_MS + WARMUP_MS)) / 1000 / Math.max(1, calls) };
    };
    const plainRoute = () =>
      measure(`http://127.0.0.1:${plain.httpPort}`, '/v1/bookings', hotAuth, CONCURRENCY, { route: plain });
    const pluginRoute = () =>
      served(() =>
        measure(`http://127.0.0.1:${plugin.httpPort}`, '/v1/bookings', hotAuth, CONCURRENCY, { route: plugin, keys }),
      );
    const bareInBoth = () =>
      measure(`http://127.0.0.1:${both.httpPort}`, '/bare/v1/bookings', hotAuth, CONCURRENCY, { route: both });
    const protectedInBoth = () =>
      measure(`http://127.0.0.1:${both.httpPort}`, '/v1/bookings', hotAuth, CONCURRENCY, { route: both });
    for (let round = 0; round < ROUNDS; round++) {
      const [without, local] = await pair(round, plainRoute, pluginRoute);
      const emptyHook = await measure(`http://127.0.0.1:${hooked.httpPort}`, '/v1/bookings', hotAuth, CONCURRENCY, {
        route: hooked,
      });
      const [sameBare, sameLocal] = await pair(round, bareInBoth, protectedInBoth);
      // Asking keeps the key service busiest: last in the round, away from the pairs.
      const asking = await served(() =>
        measure(`http://127.0.0.1:${remote.httpPort}`, '/v1/bookings', hotAuth, CONCURRENCY, { route: remote, keys }),
      );
      pairs.push({
        without,
        local: local.m,
        asking: asking.m,
        sameBare,
        sameLocal,
        emptyHook,
        perCall: { local: local.perCall, asking: asking.perCall },
      });
    }
    // The same cases counted in instructions under callgrind (every thread): the figure the VM's drift cannot move.
    const counted =
      INSTRUCTION_REQUESTS > 0 && haveCallgrind()
        ? await (async () => {
            const dir = mkdtempSync(join(tmpdir(), 'otesse-callgrind-'));
            teardowns.push(() => rmSync(dir, { recursive: true, force: true }));
            const got = await Promise.all(
              INSTRUCTION_MODES.map((mode) =>
                instructionsPerRequest(mode, keyService, dir, INSTRUCTION_REQUESTS, hotAuth),
              ),
            );
            const modes = new Map(INSTRUCTION_MODES.map((mode, i) => [mode, got[i]!]));
            return { modes, digest: await digestCost(hot[0]!.length) };
          })()
        : undefined;
    const withNoop = await measure(`http://127.0.0.1:${pluginNoop.httpPort}`, '/v1/bookings', hotAuth, CONCURRENCY, {
      route: pluginNoop,
      noop,
    });

    const nginx = await startNginx(
      { teardown: (fn) => teardowns.push(fn) },
      nginxConf(plain.httpPort, forwardAuthPort),
    );
    const origin = `http://127.0.0.1:${nginx.port}`;
    const proxied = await measure(origin, '/plain/v1/bookings', auth, NGINX_CONCURRENCY);
    const checked = await measure(origin, '/auth/v1/bookings', auth, NGINX_CONCURRENCY);

    // Revokes: none watching, 20 watching, none again (A, B, A).
    const toRevoke: { id: string }[] = [];
    for (let i = 0; i < REVOKES * 3; i++) toRevoke.push(await createKey(keys.httpPort));
    const alone1 = await revokeTimes(keys.httpPort, toRevoke.slice(0, REVOKES));
    const watching = await watchers(keys.grpcPort, key, WATCHERS);
    const withWatchers = await revokeTimes(keys.httpPort, toRevoke.slice(REVOKES, 2 * REVOKES));
    await Promise.all(watching.map((c) => c.close()));
    const alone2 = await revokeTimes(keys.httpPort, toRevoke.slice(2 * REVOKES));
    const alone = [...alone1, ...alone2].sort((a, b) => a - b);
    const revokeRow = (name: string, times: number[]) =>
      `| ${name} | ${times.length} | ${percentile(times, 50).toFixed(2)} | ${percentile(times, 99).toFixed(2)} |`;
    const revokeRatio = percentile(withWatchers, 99) / percentile(alone, 99);

    const mean = (pick: (p: Round) => number) => pairs.reduce((n, p) => n + pick(p), 0) / pairs.length;
    /** Per round, then the median: a round's two blocks are seconds apart, the rounds minutes (the VM drifts). */
    const perRound = (pick: (p: Round) => number) => {
      const values = pairs.map(pick);
      return {
        median: percentile(
          [...values].sort((a, b) => a - b),
          50,
        ),
        values,
      };
    };
    type Case = Exclude<keyof Round, 'perCall'>;
    /** Case `a` against case `b`, round by round: the ratio of requests per second, the route CPU µs above. */
    const against = (a: Case, b: Case) => ({
      rps: perRound((p) => p[a].rps / p[b].rps),
      cpu: perRound((p) => (p[a].cpu?.route ?? 0) - (p[b].cpu?.route ?? 0)),
    });
    const list = (r: { values: number[] }, digits: number) => r.values.map((v) => v.toFixed(digits)).join(', ');
    const { rps: ratio, cpu: cpuAbove } = against('local', 'without');
    const { rps: sameRatio, cpu: sameCpuAbove } = against('sameLocal', 'sameBare');
    const { rps: hookRatio, cpu: hookCpu } = against('emptyHook', 'without');
    const { rps: askingRatio, cpu: cpuAboveAsking } = against('asking', 'without');
    const perCall = Math.min(...pairs.map((p) => p.perCall.local));
    const added = checked.p50 - proxied.p50;
    const out = [
      `Callers' surfaces (${new Date().toISOString()}, Node ${process.version}): ${DURATION_MS} ms per case after ${WARMUP_MS} ms warm-up; load average at start ${loadAtStart}`,
      '',
      '| case | requests/s | p50 ms | p99 ms | CPU µs per request | answers |',
      '| --- | ---: | ---: | ---: | --- | --- |',
      ...pairs.flatMap((p, i) => [
        line(`Fastify route, no plugin, ${CONCURRENCY} in flight, ${HOT_KEYS} keys (round ${i + 1})`, p.without),
        line(`same route behind @otesse/keys-client/fastify, local decisions (round ${i + 1})`, p.local),
        line(`same route behind the plugin, localDecisions: false (round ${i + 1})`, p.asking),
        line(`the route with an empty onRequest hook, no plugin (round ${i + 1})`, p.emptyHook),
        line(`one process with both: the route unprotected (round ${i + 1})`, p.sameBare),
        line(`one process with both: the route behind the plugin, local decisions (round ${i + 1})`, p.sameLocal),
      ]),
      line(`the plugin asking the no-op gRPC server (answers at once), ${CONCURRENCY} in flight`, withNoop),
      line(`nginx proxying alone, ${NGINX_CONCURRENCY} in flight`, proxied),
      line(`nginx + auth_request to forward auth, ${NGINX_CONCURRENCY} in flight`, checked),
      '',
      '| revokes | n | p50 ms | p99 ms |',
      '| --- | ---: | ---: | ---: |',
      revokeRow('no watching caller (before and after)', alone),
      revokeRow(`${WATCHERS} watching callers`, withWatchers),
      ...instructionLines(counted, perRound((p) => p.without.cpu?.route ?? 0).median),
      '',
      `medians of the ${ROUNDS} rounds' ratios and differences (each round's values in brackets):`,
      `plugin, local decisions: ${ratio.median.toFixed(2)} of the route without it (${list(ratio, 2)}; target >= 0.90: ${ratio.median >= 0.9 ? 'met' : 'NOT met'})`,
      `plugin, local decisions: route CPU ${cpuAbove.median.toFixed(1)} µs per request above the bare route's (${list(cpuAbove, 1)}; target <= 3: ${cpuAbove.median <= 3 ? 'met' : 'NOT met'})`,
      `plugin, local decisions, inside one process (protected against unprotected route): ${sameRatio.median.toFixed(2)} of the requests per second (${list(sameRatio, 2)}), route CPU ${sameCpuAbove.median.toFixed(1)} µs per request above (${list(sameCpuAbove, 1)})`,
      `an empty onRequest hook (no plugin): ${hookRatio.median.toFixed(2)} of the route (${list(hookRatio, 2)}), route CPU ${hookCpu.median.toFixed(1)} µs per request above (${list(hookCpu, 1)}; the floor of any check before the handler)`,
      `plugin, local decisions: at least ${perCall.toFixed(0)} requests per Authenticate call (target >= 100: ${perCall >= 100 ? 'met' : 'NOT met'})`,
      `plugin, asking every request: ${askingRatio.median.toFixed(2)} of the route, route CPU +${cpuAboveAsking.median.toFixed(1)} µs per request, ${mean((p) => p.perCall.asking).toFixed(1)} requests per call; against the no-op server: ${(withNoop.rps / mean((p) => p.without.rps)).toFixed(2)}`,
      `revoke p99 with ${WATCHERS} watching callers: ${revokeRatio.toFixed(2)} × without (target <= 1.5: ${revokeRatio <= 1.5 ? 'met' : 'NOT met'})`,
      `forward auth through nginx: +${added.toFixed(3)} ms p50 over nginx alone (target <= 1 ms: ${added <= 1 ? 'met' : 'NOT met'})`,
    ].join('\n');
    process.stdout.write(`${out}\n`);
    writeFileSync(join(ROOT, 'bench', 'results', 'callers-latest.md'), `${out}\n`);
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    await stopAll();
    await dropDatabaseNamed(PG_URL, dbName).catch((err: unknown) =>
      process.stderr.write(`bench:callers: database ${dbName} left behind: ${String(err)}\n`),
    );
    await clearPrefix(REDIS_URL, prefix);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:callers failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
