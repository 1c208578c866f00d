/**
 * `npm run bench:callers` (also the last part of `npm run bench`): the two targets of the callers'
 * surfaces, each measured against its own baseline in the same run.
 *
 * 1. Plugin overhead: GET /v1/bookings on Fastify without the plugin, then with (twice, alternated)
 *    @otesse/keys-client/fastify (key cached in the key service), 64 requests in flight.
 *    Target: with / without >= 0.85 of the requests per second.
 * 2. Forward auth through nginx: nginx proxying alone, then nginx with auth_request to the key
 *    service's FORWARD_AUTH_PORT, same upstream (the plain route). Target: p50 added <= 1 ms.
 *
 * Processes: the key service (dist/src/main.js on PostgreSQL and Redis, a fresh database and prefix),
 * the route servers (bench/callers-server.js), nginx, and this load generator (undici, closed loop).
 * Tunables: BENCH_DURATION_MS (5000), BENCH_WARMUP_MS (1000), BENCH_CONCURRENCY (64),
 * BENCH_NGINX_CONCURRENCY (8), BENCH_PG_URL, BENCH_REDIS_URL, BENCH_CALLERS_PROFILE (a directory: CPU profiles of the plugin server and the key service).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { createDatabaseNamed, dropDatabaseNamed } from '../test/helpers/harness/database.js';
import { SERVICE_ARGS, SERVICE_STARTED } from '../test/helpers/harness/process.js';
import { percentile } from '../test/helpers/harness/stats.js';
import { startServer, stopAll, type Server } from './lib/procs.js';
import { processCpuMs } from './lib/stats.js';
import { num } from './lib/env.js';
import { clearPrefix } from './lib/redis-prefix.js';
import { startNginx } from '../test/helpers/nginx.js';
import { metric, scrape } from '../test/helpers/ops/prom.js';

const DURATION_MS = num('BENCH_DURATION_MS', 5000);
const WARMUP_MS = num('BENCH_WARMUP_MS', 1000);
const CONCURRENCY = num('BENCH_CONCURRENCY', 64);
const NGINX_CONCURRENCY = num('BENCH_NGINX_CONCURRENCY', 8);
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/bench/
const ROOT = join(HERE, '..', '..');
const ADMIN_TOKEN = `bench-${randomBytes(16).toString('hex')}`;

interface Measure {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  statuses: Record<number, number>;
  /** CPU µs per request of each watched process (and of this load generator, `load`), over the measured period. */
  cpu?: Record<string, number>;
}

/** Closed loop: `concurrency` requests in flight for `ms`; latency of each in ms. */
async function closedLoop(
  origin: string,
  path: string,
  headers: Record<string, string>,
  concurrency: number,
  ms: number,
): Promise<Measure> {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  const end = performance.now() + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const started = performance.now();
      try {
        const res = await pool.request({ method: 'GET', path, headers });
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
    rps: latencies.length / (ms / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    statuses,
  };
}

async function measure(
  origin: string,
  path: string,
  headers: Record<string, string>,
  concurrency: number,
  watch: Record<string, Server> = {},
): Promise<Measure> {
  await closedLoop(origin, path, headers, concurrency, WARMUP_MS);
  const before = Object.entries(watch).map(([name, s]) => [name, s.pid, processCpuMs(s.pid) ?? 0] as const);
  const self = process.cpuUsage();
  const m = await closedLoop(origin, path, headers, concurrency, DURATION_MS);
  const used = process.cpuUsage(self);
  const requests = Math.max(1, m.rps * (DURATION_MS / 1000));
  const cpu: Record<string, number> = {};
  for (const [name, pid, ms] of before) cpu[name] = (((processCpuMs(pid) ?? ms) - ms) * 1000) / requests;
  cpu.load = (used.user + used.system) / requests;
  return { ...m, cpu };
}

const line = (name: string, m: Measure) =>
  `| ${name} | ${Math.round(m.rps).toLocaleString('en')} | ${m.p50.toFixed(3)} | ${m.p99.toFixed(3)} | ` +
  `${Object.entries(m.cpu ?? {})
    .map(([n, us]) => `${n} ${Math.round(us)}`)
    .join(', ')} | ${JSON.stringify(m.statuses)}${m.errors ? `, ${m.errors} errors` : ''} |`;

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
    CACHE_SIGNING_KEY: 'bench-signing-key-0123456789abcdef-0123456789',
    ADMIN_RATE_LIMIT_PER_TOKEN: '1000000',
    ADMIN_RATE_LIMIT_PER_ADDRESS: '1000000',
  };
  const profile = process.env.BENCH_CALLERS_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CALLERS_PROFILE}`, '--cpu-prof-name=key-service.cpuprofile']
    : [];
  const server = await startServer('key service', [...profile, ...SERVICE_ARGS], env, SERVICE_STARTED);
  const started =
    server
      .tail()
      .split('\n')
      .find((l) => l.includes(SERVICE_STARTED)) ?? '{}';
  return { server, forwardAuthPort: (JSON.parse(started) as { forwardAuthPort: number }).forwardAuthPort };
}

async function createKey(httpPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/v1/accounts/acct_bench/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ label: 'bench callers', scopes: ['bookings:read'], environment: 'live' }),
  });
  if (res.status !== 201) throw new Error(`create key: ${res.status}`);
  return ((await res.json()) as { secret: string }).secret;
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
  const loadAtStart = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const dbName = `bench_callers_${randomBytes(4).toString('hex')}`;
  const db = await createDatabaseNamed(PG_URL, dbName);
  const prefix = `bench:${randomBytes(4).toString('hex')}:`;
  const teardowns: (() => unknown)[] = [];
  try {
    const { server: keys, forwardAuthPort } = await startKeyService(db, prefix);
    const key = await createKey(keys.httpPort);
    const plain = await startServer(
      'plain route',
      [join(HERE, 'callers-server.js'), 'plain'],
      { PATH: process.env.PATH ?? '' },
      'bench server started',
    );
    const profile = process.env.BENCH_CALLERS_PROFILE
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CALLERS_PROFILE}`]
      : [];
    const plugin = await startServer(
      'plugin route',
      [...profile, join(HERE, 'callers-server.js'), 'plugin'],
      { PATH: process.env.PATH ?? '', KEY_SERVICE_ADDR: `127.0.0.1:${keys.grpcPort}` },
      'bench server started',
    );
    const auth = { authorization: `Bearer ${key}` };

    // The ceiling of any design that asks over gRPC per request: the same plugin against a server that answers at once.
    const noop = await startServer(
      'noop',
      [join(HERE, 'noop-server.js')],
      { PATH: process.env.PATH ?? '' },
      'noop server started',
    );
    const pluginNoop = await startServer(
      'plugin route, no-op service',
      [join(HERE, 'callers-server.js'), 'plugin'],
      { PATH: process.env.PATH ?? '', KEY_SERVICE_ADDR: `127.0.0.1:${noop.grpcPort}` },
      'bench server started',
    );

    // A, B, A, B: the machine's drift over the run falls on both sides of the ratio.
    const pairs: { without: Measure; withPlugin: Measure }[] = [];
    let perCall = 0;
    for (let round = 0; round < 2; round++) {
      const without = await measure(`http://127.0.0.1:${plain.httpPort}`, '/v1/bookings', auth, CONCURRENCY, {
        route: plain,
      });
      const callsBefore = await authenticateCalls(keys.httpPort);
      const withPlugin = await measure(`http://127.0.0.1:${plugin.httpPort}`, '/v1/bookings', auth, CONCURRENCY, {
        route: plugin,
        keys,
      });
      // Warm-up and measured period together: the requests the plugin route served against the calls it made.
      perCall =
        (withPlugin.rps * (DURATION_MS + WARMUP_MS)) /
        1000 /
        Math.max(1, (await authenticateCalls(keys.httpPort)) - callsBefore);
      pairs.push({ without, withPlugin });
    }
    const withNoop = await measure(`http://127.0.0.1:${pluginNoop.httpPort}`, '/v1/bookings', auth, CONCURRENCY, {
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

    const sum = (pick: (p: { without: Measure; withPlugin: Measure }) => Measure) =>
      pairs.reduce((n, p) => n + pick(p).rps, 0);
    const ratio = sum((p) => p.withPlugin) / sum((p) => p.without);
    const added = checked.p50 - proxied.p50;
    const out = [
      `Callers' surfaces (${new Date().toISOString()}): ${DURATION_MS} ms per case after ${WARMUP_MS} ms warm-up; load average at start ${loadAtStart}`,
      '',
      '| case | requests/s | p50 ms | p99 ms | CPU µs per request | answers |',
      '| --- | ---: | ---: | ---: | --- | --- |',
      ...pairs.flatMap((p, i) => [
        line(`Fastify route, no plugin, ${CONCURRENCY} in flight (round ${i + 1})`, p.without),
        line(
          `same route behind @otesse/keys-client/fastify (key cached), ${CONCURRENCY} in flight (round ${i + 1})`,
          p.withPlugin,
        ),
      ]),
      line(
        `same route behind the plugin, pointed at the no-op gRPC server (answers at once), ${CONCURRENCY} in flight`,
        withNoop,
      ),
      line(`nginx proxying alone, ${NGINX_CONCURRENCY} in flight`, proxied),
      line(`nginx + auth_request to forward auth, ${NGINX_CONCURRENCY} in flight`, checked),
      '',
      `plugin: ${ratio.toFixed(2)} of the route without it, both rounds (${pairs.map((p) => (p.withPlugin.rps / p.without.rps).toFixed(2)).join(', ')}; ` +
        `target >= 0.85: ${ratio >= 0.85 ? 'met' : 'NOT met'}); against the no-op server: ${(withNoop.rps / (sum((p) => p.without) / 2)).toFixed(2)}`,
      `plugin: about ${perCall.toFixed(1)} requests per Authenticate call (coalesced: same key, address, scope)`,
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
