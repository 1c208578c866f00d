// A private Redis master group for tests and the soak: Debian's redis-server as a primary and
// replicas, and redis-sentinel (Debian's package; `redis-server --sentinel` when it is missing)
// watching them, each on a free loopback port with a directory of its own. The shared Redis on
// 6379 is never touched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis-server.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** The master group's name, as REDIS_SENTINEL_NAME. */
export const GROUP = 'otesse';

export interface SentinelGroupOptions {
  /** Replicas beside the primary (2). */
  replicas?: number;
  sentinels?: number;
  /** Sentinel's down-after-milliseconds: above the longest lease a replica may hold (design: revoke-holds). */
  downAfterMs?: number;
  /** PEM paths: every server and Sentinel speaks TLS only, with this certificate. */
  tls?: { cert: string; key: string; ca: string };
  password?: string;
  sentinelPassword?: string;
}

/** One process of the group: a Redis server or a Sentinel. */
export interface Member {
  port: number;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Start again with the same port, directory and configuration (it keeps its data). */
  start(): Promise<void>;
  readonly running: boolean;
}

export interface SentinelGroup {
  servers: Member[];
  sentinels: Member[];
  /** REDIS_SENTINELS. */
  setting: string;
  /** The service's settings for this group. */
  env: Record<string, string>;
  /** The primary's port as a majority of the Sentinels name it (undefined while they disagree or none answers). */
  primary(): Promise<number | undefined>;
  /** Resolves once every Sentinel knows every replica and every other Sentinel. */
  settled(timeoutMs?: number): Promise<void>;
  /** A direct connection to one server (TLS and password as configured); closed at teardown. */
  connect(port: number): Redis;
  /** Resolves the time (performance.now()) at which a Sentinel first announced a new primary, and its port. */
  nextSwitch(): Promise<{ at: number; port: number }>;
  /** SENTINEL FAILOVER: the primary, alive, hands over to a replica and is demoted. */
  failover(): Promise<void>;
  /** True once the server on `port` is a replica in sync with its primary. */
  inSync(port: number): Promise<boolean>;
}

const sentinelCommand = (): [string, string[]] =>
  spawnSync('sh', ['-c', 'command -v redis-sentinel'], { stdio: 'ignore' }).status === 0
    ? ['redis-sentinel', []]
    : ['redis-server', ['--sentinel']];

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** A process started by `launch`, restartable, killed at teardown. */
function member(t: TestLike, port: number, launch: () => ChildProcess): Member {
  let proc: ChildProcess | undefined;
  const alive = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  const m: Member = {
    port,
    get running() {
      return alive();
    },
    async start() {
      proc = launch();
      for (let i = 0; i < 200; i++) {
        if (await listening(port)) return;
        if (!alive()) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`process on :${port} did not start`);
    },
    async kill() {
      const p = proc;
      if (!p || !alive()) return;
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await done;
    },
  };
  t.teardown(() => m.kill());
  return m;
}

function tlsArgs(o: SentinelGroupOptions, port: number): string[] {
  if (!o.tls) return ['--port', String(port)];
  return [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    o.tls.cert,
    '--tls-key-file',
    o.tls.key,
    '--tls-ca-cert-file',
    o.tls.ca,
    '--tls-auth-clients',
    'no',
    '--tls-replication',
    'yes',
  ];
}

/**
 * Start the primary, its replicas and the Sentinels. Servers refuse writes once no replica has answered
 * for 2 s (min-replicas-to-write 1, min-replicas-max-lag 2), as docs/deploying.md asks of production:
 * a primary cut off from the others stops granting leases (design: revoke-holds).
 */
export async function startSentinelGroup(t: TestLike, opts: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const root = mkdtempSync(join(tmpdir(), 'otesse-sentinel-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ports = await Promise.all(Array.from({ length: 1 + (opts.replicas ?? 2) }, () => freePort()));
  const primaryPort = ports[0]!;
  const auth = opts.password ? ['--requirepass', opts.password, '--masterauth', opts.password] : [];
  const servers = ports.map((port, i) => {
    const dir = join(root, `redis-${i}`);
    mkdirSync(dir);
    const args = [
      ...tlsArgs(opts, port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--min-replicas-to-write',
      '1',
      '--min-replicas-max-lag',
      '2',
      ...auth,
      ...(i === 0 ? [] : ['--replicaof', '127.0.0.1', String(primaryPort)]),
    ];
    return member(t, port, () => spawn('redis-server', args, { stdio: 'ignore' }));
  });
  for (const s of servers) await s.start();

  const [command, extra] = sentinelCommand();
  const sentinelPorts = await Promise.all(Array.from({ length: opts.sentinels ?? 3 }, () => freePort()));
  const sentinels = sentinelPorts.map((port, i) => {
    const file = join(root, `sentinel-${i}.conf`);
    const tls = opts.tls
      ? [
          `port 0`,
          `tls-port ${port}`,
          `tls-cert-file ${opts.tls.cert}`,
          `tls-key-file ${opts.tls.key}`,
          `tls-ca-cert-file ${opts.tls.ca}`,
          'tls-auth-clients no',
          'tls-replication yes',
        ]
      : [`port ${port}`];
    writeFileSync(
      file,
      [
        ...tls,
        'bind 127.0.0.1',
        `dir ${root}`,
        `sentinel monitor ${GROUP} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${GROUP} ${opts.downAfterMs ?? 5000}`,
        `sentinel failover-timeout ${GROUP} 10000`,
        `sentinel parallel-syncs ${GROUP} 4`,
        ...(opts.password ? [`sentinel auth-pass ${GROUP} ${opts.password}`] : []),
        ...(opts.sentinelPassword
          ? [`requirepass ${opts.sentinelPassword}`, `sentinel sentinel-pass ${opts.sentinelPassword}`]
          : []),
        '',
      ].join('\n'),
    );
    return member(t, port, () => spawn(command, [file, ...extra], { stdio: 'ignore' }));
  });
  for (const s of sentinels) await s.start();

  const tls = opts.tls ? { tls: { ca: readFileSync(opts.tls.ca) } } : {};
  const clients: Redis[] = [];
  t.teardown(() => {
    for (const c of clients) c.disconnect();
  });
  const open = (port: number, password: string | undefined, extraOpts: Record<string, unknown> = {}) => {
    const c = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      ...(password ? { password } : {}),
      ...tls,
      ...extraOpts,
    });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };
  const askSentinel = async <T>(port: number, ...args: string[]): Promise<T | undefined> => {
    const c = open(port, opts.sentinelPassword, { connectTimeout: 1000, commandTimeout: 1000 });
    try {
      await c.connect();
      return (await c.call('SENTINEL', ...args)) as T;
    } catch {
      return undefined; /* a Sentinel down or not started: no answer from it */
    } finally {
      c.disconnect();
    }
  };
  const setting = sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',');
  const group: SentinelGroup = {
    servers,
    sentinels,
    setting,
    env: {
      REDIS_SENTINELS: setting,
      REDIS_SENTINEL_NAME: GROUP,
      ...(opts.password ? { REDIS_PASSWORD: opts.password } : {}),
      ...(opts.sentinelPassword ? { REDIS_SENTINEL_PASSWORD: opts.sentinelPassword } : {}),
      ...(opts.tls ? { REDIS_TLS_CA: opts.tls.ca } : {}),
    },
    async primary() {
      const named = await Promise.all(
        sentinels
          .filter((s) => s.running)
          .map((s) => askSentinel<[string, string]>(s.port, 'get-master-addr-by-name', GROUP)),
      );
      const votes = new Map<number, number>();
      for (const n of named) if (Array.isArray(n)) votes.set(Number(n[1]), (votes.get(Number(n[1])) ?? 0) + 1);
      for (const [port, n] of votes) if (n * 2 > sentinels.length) return port;
      return undefined;
    },
    async settled(timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      const fields = (reply: unknown) => {
        if (!Array.isArray(reply)) return (reply ?? {}) as Record<string, unknown>;
        return Object.fromEntries(Array.from({ length: reply.length / 2 }, (_, i) => [reply[2 * i], reply[2 * i + 1]]));
      };
      while (Date.now() < until) {
        const states = await Promise.all(sentinels.map((s) => askSentinel<unknown>(s.port, 'master', GROUP)));
        if (
          states.every((st) => {
            const f = fields(st);
            return (
              Number(f['num-slaves']) === servers.length - 1 &&
              Number(f['num-other-sentinels']) === sentinels.length - 1
            );
          })
        )
          return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error('the Sentinels did not find every replica and each other in time');
    },
    connect(port) {
      return open(port, opts.password, { lazyConnect: false, retryStrategy: () => 100 });
    },
    async failover() {
      for (const s of sentinels) {
        if (!s.running) continue;
        if ((await askSentinel<string>(s.port, 'failover', GROUP)) === 'OK') return;
      }
      throw new Error('no Sentinel accepted SENTINEL FAILOVER');
    },
    async inSync(port) {
      const c = open(port, opts.password, { connectTimeout: 1000, commandTimeout: 1000 });
      try {
        await c.connect();
        const info = await c.info('replication');
        return /role:slave/.test(info) && /master_link_status:up/.test(info);
      } catch {
        return false; /* down or loading: not in sync yet */
      } finally {
        c.disconnect();
      }
    },
    nextSwitch() {
      return new Promise((resolve) => {
        const subs = sentinels.map((s) =>
          open(s.port, opts.sentinelPassword, { lazyConnect: false, retryStrategy: () => 100 }),
        );
        let done = false;
        for (const sub of subs) {
          sub.on('message', (_channel: string, message: string) => {
            // "<name> <old-ip> <old-port> <new-ip> <new-port>"
            const parts = message.split(' ');
            if (done || parts[0] !== GROUP) return;
            done = true;
            resolve({ at: performance.now(), port: Number(parts[4]) });
            for (const x of subs) x.disconnect();
          });
          // A Sentinel that is down is not listened to; the others announce the switch too.
          void sub.subscribe('+switch-master').catch(() => {});
        }
      });
    },
  };
  return group;
}
