import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { MemoryBus, type InvalidationBus } from '../cache/bus.js';
import { MemoryFailureCounter, RedisFailureCounter, type FailureCounter } from '../cache/failure-counter.js';
import { checkRedisSetup, openRedisConnections, type RedisTarget } from '../cache/open-redis.js';
import { MemoryRateBudget, RedisRateBudget, type RateBudget } from '../cache/rate-budget.js';
import { RedisBus } from '../cache/redis-bus.js';
import { RedisSharedCache } from '../cache/redis-shared-cache.js';
import { NoSharedCache, type SharedCache } from '../cache/shared-cache.js';
import { Signer } from '../cache/signer.js';
import type { Config } from '../config.js';
import { applyMigrations, openConfiguredDatabase } from '../database.js';
import type { Metrics } from '../observability/metrics.js';
import type { Database } from '../store/db.js';

/** Redis's parts, or their in-process stand-ins when no Redis is configured. */
export interface RedisParts {
  shared: SharedCache;
  bus: InvalidationBus;
  failures: FailureCounter;
  budget: RateBudget;
  client?: Redis;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** The service's pool (or the embedded PGlite when there is no DATABASE_URL). */
export async function openServiceDatabase(config: Config, log: Logger): Promise<Database> {
  if (!config.DATABASE_URL)
    log.info({ dir: join(config.DATA_DIR, 'pg') }, 'no DATABASE_URL: using the embedded PostgreSQL (PGlite)');
  return openConfiguredDatabase(config, 'service', {
    onIdleError: (err) =>
      log.warn({ err }, 'PostgreSQL: an idle pooled connection failed; the pool opens another for the next query'),
  });
}

/** Apply the migrations, saying which ones ran. */
export async function migrateDatabase(config: Config, db: Database, log: Logger): Promise<void> {
  const applied = await applyMigrations(config, db);
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
}

/** One Redis server (REDIS_URL) or the primary that Sentinels name; undefined: in-process. */
function redisTarget(config: Config): RedisTarget | undefined {
  const common = { password: config.REDIS_PASSWORD, tlsCa: config.REDIS_TLS_CA };
  if (config.REDIS_URL) return { ...common, url: config.REDIS_URL };
  if (config.REDIS_SENTINELS && config.REDIS_SENTINEL_NAME) {
    return {
      ...common,
      sentinels: config.REDIS_SENTINELS,
      name: config.REDIS_SENTINEL_NAME,
      sentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    };
  }
  return undefined;
}

/** Redis's parts when it is configured (and signed), else the in-process ones. */
export async function openRedis(config: Config, replicaId: string, log: Logger, metrics: Metrics): Promise<RedisParts> {
  const target = redisTarget(config);
  if (!target || !config.CACHE_SIGNING_KEY) {
    log.info({}, 'no REDIS_URL: in-process cache and bus (run one replica only)');
    return inProcessParts(config, replicaId);
  }
  const checked = await checkRedisSetup(target, config.LEASE_MS + config.CLOCK_SKEW_MS);
  for (const warning of checked.warnings) log.warn({ primary: checked.primary }, warning);
  return redisParts(config, replicaId, target, log, metrics, config.CACHE_SIGNING_KEY);
}

function inProcessParts(config: Config, replicaId: string): RedisParts {
  return {
    shared: new NoSharedCache(),
    bus: new MemoryBus({ replicaId, leaseMs: config.LEASE_MS }),
    ping: async () => true,
    close: async () => {},
    failures: new MemoryFailureCounter({ windowMs: config.FAILED_ATTEMPTS_WINDOW_SECONDS * 1000 }),
    budget: new MemoryRateBudget(),
  };
}

/** Input from Redis that fails its signature or shape is counted, and logged once per kind. */
function rejectObserver(metrics: Metrics, log: Logger): (kind: string) => void {
  const logged = new Set<string>();
  return (kind) => {
    metrics.redisRejected.inc({ kind });
    if (!logged.has(kind)) {
      logged.add(kind);
      log.warn(
        { kind },
        'dropped unreadable or unauthenticated input from Redis (logged once per kind; see otesse_keys_redis_rejected_total)',
      );
    }
  };
}

function redisParts(
  config: Config,
  replicaId: string,
  target: RedisTarget,
  log: Logger,
  metrics: Metrics,
  signingKey: string,
): RedisParts {
  const { command: redis, subscriber } = openRedisConnections(target);
  redis.on('error', (err: Error) => log.debug({ err }, 'redis error'));
  const onError = (err: unknown) => log.debug({ err }, 'redis subscriber error');
  const signer = new Signer(signingKey);
  const onReject = rejectObserver(metrics, log);
  const prefix = config.REDIS_PREFIX;
  return {
    shared: new RedisSharedCache({
      redis,
      prefix,
      signer,
      skewMs: config.CLOCK_SKEW_MS,
      onReject,
      ttlMs: (config.CACHE_TTL_SECONDS + config.STALE_SERVE_SECONDS) * 1000,
    }),
    bus: new RedisBus({
      replicaId,
      redis,
      subscriber,
      prefix,
      signer,
      leaseMs: config.LEASE_MS,
      skewMs: config.CLOCK_SKEW_MS,
      heartbeatMs: config.HEARTBEAT_MS,
      onError,
      onReject,
    }),
    client: redis,
    budget: new RedisRateBudget({ redis, prefix }),
    failures: new RedisFailureCounter({ redis, prefix, windowMs: config.FAILED_ATTEMPTS_WINDOW_SECONDS * 1000 }),
    // A failed ping is the answer (not PONG): /readyz reports Redis as unreachable.
    ping: async () => (await redis.ping().catch(() => '')) === 'PONG',
    close: async () => {
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}
