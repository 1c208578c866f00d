// A fleet of service replicas for the soak and fault measurements (bench/soak.ts, recovery.ts,
// revoke-all.ts): a database of their own on the shared PostgreSQL, a private redis-server, replica
// processes that can be restarted under the same REPLICA_ID, keys seeded straight into api_keys.
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hash } from '@node-rs/argon2';
import pg from 'pg';
import { keyIdOf, PUBLIC_ID_LENGTH, redact, SECRET_LENGTH } from '../../src/domain/key-format.js';
import { scratchDatabase } from '../../test/helpers/harness/database.js';
import { SERVICE_ARGS, SERVICE_STARTED, waitReady } from '../../test/helpers/harness/process.js';
import { forgeKey, randomBase62 } from '../../test/helpers/keys.js';
import { KeyClient, encodeRequest, type CallResult } from './client.js';
import { startServer, type Server } from './procs.js';

const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/bench/lib/
export const ROOT = join(HERE, '..', '..', '..');
export const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const IP = '203.0.113.7';

export const log = (tag: string, msg: string) =>
  process.stderr.write(`[${tag} ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Cleanups run in reverse order at the end (the test helpers' `teardown` shape, so they can be reused here). */
export class Teardown {
  #fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.#fns.reverse())
      await Promise.resolve()
        .then(fn)
        .catch((err: unknown) => log('cleanup', String(err)));
    this.#fns = [];
  }
}

/** A database of this run's own on the shared server, dropped at the end. */
export function createDatabase(td: Teardown, label: string): Promise<string> {
  return scratchDatabase(td, PG_URL, `bench_${label}_${randomBytes(5).toString('hex')}`);
}

/** The environment every replica of a fleet shares (cheap argon2 unless BENCH_ARGON2_* say otherwise). */
export function fleetEnv(
  databaseUrl: string,
  redisUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: `bench:${randomBytes(4).toString('hex')}:`,
    CACHE_SIGNING_KEY: randomBytes(32).toString('base64'),
    ADMIN_TOKENS: `bench:${ADMIN_TOKEN}`,
    GRPC_PORT: '0',
    HTTP_PORT: '0',
    HOST: '127.0.0.1',
    ARGON2_MEMORY_KIB: process.env.BENCH_ARGON2_MEMORY_KIB ?? '1024',
    ARGON2_TIME_COST: process.env.BENCH_ARGON2_TIME_COST ?? '1',
    // info: the "started" line carries the ports bound to port 0 (only admin requests log at info).
    LOG_LEVEL: 'info',
    SHUTDOWN_GRACE_MS: '5000',
    ...extra,
  };
}

export const ADMIN_TOKEN = randomBytes(24).toString('hex');

/** How a change reached the replicas (the admin API's `propagation`). */
export interface Propagation {
  outcome?: string;
  replicas?: number;
  confirmed?: number;
  waited_ms?: number;
}

/** An admin API answer, the fields the benchmarks read: a problem (detail, title), a page, or a change's result. */
export interface ApiBody {
  detail?: string;
  title?: string;
  data?: { id: string }[];
  next_cursor?: string | null;
  revoked?: number;
  propagation?: Propagation;
  [field: string]: unknown;
}

/** One replica slot: a REPLICA_ID whose process can be stopped and started again (new ports each time). */
export class Replica {
  readonly id: string;
  readonly env: Record<string, string>;
  server: Server | undefined;
  client: KeyClient | undefined;
  /** Processes started in this slot. */
  starts = 0;

  constructor(id: string, env: Record<string, string>) {
    this.id = id;
    this.env = { ...env, REPLICA_ID: id };
  }

  get pid(): number {
    return this.server?.pid ?? -1;
  }

  /** Start the process and wait until /readyz answers 200. */
  async start(): Promise<void> {
    const spawned = performance.now();
    this.server = await startServer(this.id, SERVICE_ARGS, this.env, SERVICE_STARTED);
    this.starts++;
    this.logTo(this.server);
    this.client = new KeyClient(this.server.grpcPort, this.starts);
    const listening = performance.now();
    await this.waitReady();
    this.startTimes.push({
      listeningMs: Math.round(listening - spawned),
      readyMs: Math.round(performance.now() - spawned),
    });
  }

  /** Spawn-to-listening and spawn-to-ready of each start. */
  startTimes: { listeningMs: number; readyMs: number }[] = [];

  /** Every line the process prints after its start line goes to BENCH_LOG_DIR/<id>-<n>.log when set. */
  private logTo(server: Server): void {
    const dir = process.env.BENCH_LOG_DIR;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${this.id}-${this.starts}.log`);
    writeFileSync(file, `${server.tail()}\n`);
    const out = createWriteStream(file, { flags: 'a' });
    server.proc.stdout?.on('data', (c: Buffer) => out.write(c));
    server.proc.stderr?.on('data', (c: Buffer) => out.write(c));
    server.proc.once('exit', () => out.end());
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitReady(this.base, this.id, timeoutMs, () => this.server?.tail() ?? '');
  }

  /** SIGTERM and wait for the exit (the drain); resolves how it ended. */
  async stop(): Promise<string> {
    const s = this.server;
    if (!s) return 'not running';
    const how = await s.stop(15_000);
    this.client?.close();
    return how;
  }

  get base(): string {
    return `http://127.0.0.1:${this.server?.httpPort ?? 0}`;
  }

  authenticate(request: Buffer): Promise<CallResult> {
    if (!this.client) return Promise.resolve({ code: 14, details: 'not started' });
    try {
      return this.client.call(request, 5000);
    } catch (err) {
      // the channel was closed (the process is being stopped)
      return Promise.resolve({ code: 14, details: String(err) });
    }
  }

  async api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: ApiBody | undefined; ms: number }> {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const started = performance.now();
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text ? (JSON.parse(text) as ApiBody) : undefined,
      ms: performance.now() - started,
    };
  }

  /** A counter or gauge without labels from /metrics (NaN when absent). */
  async metric(name: string): Promise<number> {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : Number.NaN;
  }

  argon2(): Promise<number> {
    return this.metric('otesse_keys_argon2_verifications');
  }

  /** Resident memory of the process in KiB (VmRSS). */
  rssKiB(): number {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : Number.NaN;
    } catch {
      // The process has exited (a restart in progress): no sample, shown as NaN and left out of the figures.
      return Number.NaN;
    }
  }
}

/** Start `n` replicas: the first migrates the database, the others start together. */
export async function startFleet(td: Teardown, n: number, env: Record<string, string>): Promise<Replica[]> {
  const replicas = Array.from({ length: n }, (_, i) => new Replica(`r${i}`, env));
  td.teardown(() => Promise.all(replicas.map((r) => r.stop())));
  await replicas[0]!.start();
  await Promise.all(replicas.slice(1).map((r) => r.start()));
  return replicas;
}

/** A seeded key: its id, the full key (with its secret) and the request for it, encoded once. */
export interface SeededKey {
  id: string;
  key: string;
  request: Buffer;
  writeRequest: Buffer;
}

/**
 * Insert `n` active keys of `account` straight into api_keys. They share one secret (one argon2
 * hash computed once) under different public ids, so seeding 10,000 keys takes a second, while the
 * service still verifies each key id on its own.
 */
export async function seedKeys(databaseUrl: string, account: string, n: number): Promise<SeededKey[]> {
  const secret = randomBase62(SECRET_LENGTH);
  const phc = await hash(secret, {
    memoryCost: Number(process.env.BENCH_ARGON2_MEMORY_KIB ?? 1024),
    timeCost: Number(process.env.BENCH_ARGON2_TIME_COST ?? 1),
    parallelism: 1,
  });
  const keys = Array.from({ length: n }, () => {
    const key = forgeKey('live', randomBase62(PUBLIC_ID_LENGTH), secret);
    const id = keyIdOf(key.slice('otesse_live_sk_'.length, 'otesse_live_sk_'.length + PUBLIC_ID_LENGTH));
    return {
      id,
      key,
      request: encodeRequest({ key, ip: IP, scope: 'bookings:read' }),
      writeRequest: encodeRequest({ key, ip: IP, scope: 'bookings:write' }),
    };
  });
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    for (let i = 0; i < keys.length; i += 2000) {
      const batch = keys.slice(i, i + 2000);
      await c.query(
        `INSERT INTO api_keys (id, account_id, environment, label, scopes, secret_hash, redacted, created_by)
         SELECT id, $2, 'live', 'bench ' || id, ARRAY['bookings:read', 'bookings:write'], $3, red, 'bench'
         FROM unnest($1::text[], $4::text[]) AS t(id, red)`,
        [batch.map((k) => k.id), account, phc, batch.map((k) => redact(k.key))],
      );
    }
  } finally {
    await c.end();
  }
  return keys;
}

/** Run `fn` over `items` with `concurrency` workers. */
export async function eachLimit<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/** Write `bench/results/<name>-<timestamp>.json`; returns its path. */
export function writeResult(name: string, data: unknown): string {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(
    dir,
    `${name}-${new Date()
      .toISOString()
      .replace(/[:.]/g, '-')
      .replace(/-\d{3}Z$/, 'Z')}.json`,
  );
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** Stop on ^C and on a watchdog, cleaning up first. */
export function guard(td: Teardown, tag: string, maxMs: number): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(tag, `${signal}: stopping`);
      void td.run().finally(() => process.exit(130));
    });
  }
  setTimeout(() => {
    log(tag, `watchdog: over ${Math.round(maxMs / 60_000)} min; stopping`);
    void td.run().finally(() => process.exit(3));
  }, maxMs).unref();
}
