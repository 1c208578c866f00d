import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

/** Where Redis is: one server by URL, or the primary of a master group that Sentinels watch. */
export type RedisTarget = {
  /** Sentinel-watched TLS needs no URL: `tlsCa` turns TLS on for the servers and the Sentinels. */
  password?: string | undefined;
  /** PEM file of the CA that signs the servers' (and the Sentinels') certificates. */
  tlsCa?: string | undefined;
} & (
  | { url: string }
  | { sentinels: readonly { host: string; port: number }[]; name: string; sentinelPassword?: string | undefined }
);

/** The connections the shared cache and the bus use; which kind of Redis is behind them is this module's business only. */
export interface RedisConnections {
  /** Commands: cache entries, heartbeats, publishes. */
  command: Redis;
  /** Subscriptions only (a connection in subscriber mode can run nothing else). */
  subscriber: Redis;
}

/** A Redis setting that cannot work (a certificate from another CA, a refused password): start-up stops, naming it. */
export class RedisSetupError extends Error {
  override name = 'RedisSetupError';
  readonly code = 'REDIS_SETUP';
}

/** A failure of the command path (timeouts, reconnects) costs a fallback to PostgreSQL, never a stalled call. */
const BASE = {
  enableOfflineQueue: false,
  commandTimeout: 500,
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  retryStrategy: (n: number) => Math.min(50 * 2 ** n, 1000),
  // A demoted primary answers writes with READONLY, one cut off from its replicas with NOREPLICAS (when the
  // servers run min-replicas-to-write): reconnecting asks the Sentinels again, which may name another primary.
  reconnectOnError: (err: Error) => /^(READONLY|NOREPLICAS)/.test(err.message),
};

/** The CA file's contents (the configuration has checked that it reads and holds a certificate). */
function readCa(path: string | undefined): { ca: Buffer } | undefined {
  return path === undefined ? undefined : { ca: readFileSync(path) };
}

/** Options of a connection to the target (the Sentinels are asked for the primary on every (re)connect). */
function optionsFor(target: RedisTarget, extra: Record<string, unknown>): Record<string, unknown> {
  const tls = readCa(target.tlsCa);
  const common = { ...BASE, ...extra, ...(target.password === undefined ? {} : { password: target.password }) };
  if ('url' in target) return { ...common, ...(target.url.startsWith('rediss:') ? { tls: tls ?? {} } : {}) };
  return {
    ...common,
    sentinels: target.sentinels.map((s) => ({ ...s })),
    name: target.name,
    role: 'master',
    ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
    ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    // Every connection drops the moment a Sentinel announces a new primary, rather than at its first refused write.
    failoverDetector: true,
    sentinelCommandTimeout: 500,
  };
}

function connect(target: RedisTarget, extra: Record<string, unknown> = {}): Redis {
  const options = optionsFor(target, extra);
  return 'url' in target ? new Redis(target.url, options) : new Redis(options);
}

/** Open the command and subscriber connections; both follow the primary the Sentinels name. */
export function openRedisConnections(target: RedisTarget): RedisConnections {
  return { command: connect(target), subscriber: connect(target, { autoResubscribe: false }) };
}

const CERTIFICATE_ERROR = /^(UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|CERT_|ERR_TLS_CERT|HOSTNAME_MISMATCH)/;

type Probe<T> = { ok: T } | { fault: 'certificate' | 'password' | 'unreachable'; err: unknown };

/**
 * One connection, no retry, then `ask`: a refused certificate or password is told apart from an unreachable
 * server. `url`: read by ioredis, as the service's own connections read it.
 */
async function probe<T>(
  url: string | undefined,
  options: Record<string, unknown>,
  ask: (c: Redis) => Promise<T>,
): Promise<Probe<T>> {
  const once = {
    ...options,
    lazyConnect: true,
    retryStrategy: null,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
    connectTimeout: 2000,
    commandTimeout: 2000,
  };
  const client = url === undefined ? new Redis(once) : new Redis(url, once);
  let first: unknown;
  client.on('error', (err: unknown) => {
    first ??= err;
  });
  try {
    await client.connect();
    return { ok: await ask(client) };
  } catch (err) {
    const e = (first ?? err) as { code?: unknown; message?: unknown };
    if (typeof e.code === 'string' && CERTIFICATE_ERROR.test(e.code)) return { fault: 'certificate', err: e };
    if (/WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(String(e.message)))
      return { fault: 'password', err: e };
    return { fault: 'unreachable', err: e };
  } finally {
    client.disconnect();
  }
}

function refuse<T>(p: Probe<T>, what: string, passwordVariable: string): void {
  if (!('fault' in p)) return;
  if (p.fault === 'certificate') {
    const code = (p.err as { code: string }).code;
    throw new RedisSetupError(
      `REDIS_TLS_CA: ${what}'s certificate is not signed by this CA (the system's CAs when unset) or does not name its address (${code})`,
    );
  }
  if (p.fault === 'password') throw new RedisSetupError(`${passwordVariable}: refused by ${what}`);
}

/** What the start-up check found: a warning for the log, when there is one. */
export interface RedisCheck {
  /** The primary's address, when a Sentinel named it. */
  primary?: string;
  warnings: string[];
}

/**
 * Connect once to the Sentinels and the primary before serving: a CA or password that they refuse stops
 * start-up with RedisSetupError naming the setting (a mistake that no retry mends), while an unreachable
 * Redis is a degraded mode, not a reason to stay down (design: readiness-is-local).
 * `minDownAfterMs`: how long Sentinel must wait before it promotes a replica (design: revoke-holds, in the failover).
 */
export async function checkRedisSetup(target: RedisTarget, minDownAfterMs: number): Promise<RedisCheck> {
  const tls = readCa(target.tlsCa);
  const server = (host: string, port: number) => ({
    host,
    port,
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(tls ? { tls } : {}),
  });
  if ('url' in target) {
    const p = await probe(target.url, optionsFor(target, {}), (c) => c.ping());
    refuse(p, 'the Redis server', target.password ? 'REDIS_PASSWORD' : 'REDIS_URL');
    return {
      warnings: 'fault' in p ? ['Redis unreachable at start-up: deciding from PostgreSQL until it answers'] : [],
    };
  }
  const asked = await Promise.all(
    target.sentinels.map(async (s) => {
      const p = await probe(
        undefined,
        {
          host: s.host,
          port: s.port,
          ...(target.sentinelPassword ? { password: target.sentinelPassword } : {}),
          ...(tls ? { tls } : {}),
        },
        async (c) => ({
          addr: await c.call('SENTINEL', 'get-master-addr-by-name', target.name),
          master: await c
            .call('SENTINEL', 'master', target.name)
            .catch(() => /* only for the down-after warning */ null),
        }),
      );
      refuse(p, `the Sentinel ${s.host}:${s.port}`, 'REDIS_SENTINEL_PASSWORD');
      return p;
    }),
  );
  const answers = asked.flatMap((p) => ('ok' in p ? [p.ok] : []));
  if (answers.length === 0)
    return { warnings: ['no Sentinel reachable at start-up: deciding from PostgreSQL until one answers'] };
  const named = answers.find((a) => Array.isArray(a.addr));
  if (!named) throw new RedisSetupError(`REDIS_SENTINEL_NAME: no Sentinel watches a master group of that name`);
  const [host, port] = named.addr as [string, string];
  const p = await probe(undefined, server(host, Number(port)), (c) => c.ping());
  refuse(p, `the Redis primary ${host}:${port}`, 'REDIS_PASSWORD');
  const warnings =
    'fault' in p
      ? [`the Redis primary ${host}:${port} is unreachable at start-up: deciding from PostgreSQL until it answers`]
      : [];
  const downAfter = downAfterMs(named.master);
  if (downAfter !== undefined && downAfter < minDownAfterMs) {
    warnings.push(
      `Sentinel down-after-milliseconds is ${downAfter}: below LEASE_MS + CLOCK_SKEW_MS (${minDownAfterMs}), a replica may still hold a lease from the old primary when a new one takes writes (see docs/deploying.md)`,
    );
  }
  return { primary: `${host}:${port}`, warnings };
}

/** `down-after-milliseconds` from SENTINEL MASTER's flat field list (or map, under RESP3). */
function downAfterMs(reply: unknown): number | undefined {
  let value: unknown;
  if (Array.isArray(reply)) value = reply[reply.indexOf('down-after-milliseconds') + 1];
  else if (reply && typeof reply === 'object') value = (reply as Record<string, unknown>)['down-after-milliseconds'];
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
