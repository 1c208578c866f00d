import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { developmentToken } from './admin-token.js';
import { MemoryBus, type InvalidationBus } from './cache/bus.js';
import { LocalCache } from './cache/local-cache.js';
import { RedisBus } from './cache/redis-bus.js';
import { RedisSharedCache } from './cache/redis-shared-cache.js';
import { NoSharedCache, type SharedCache } from './cache/shared-cache.js';
import type { Config } from './config.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ActivityService } from './service/activity-service.js';
import { Authenticator } from './service/authenticator.js';
import { Hasher } from './service/hasher.js';
import { Invalidator } from './service/invalidator.js';
import { KeyService } from './service/key-service.js';
import { UsageRecorder } from './service/usage.js';
import { migrate } from './store/migrations.js';
import { openDatabase } from './store/open-database.js';
import { AdminAuth } from './transport/http/auth.js';
import { buildHttpApp } from './transport/http/app.js';
import { GrpcServer } from './transport/grpc/server.js';
import { EnvoyCheck } from './transport/envoy-check.js';
import { buildForwardAuth } from './transport/forward-auth.js';
import { RouteMap } from './transport/route-map.js';

/** A running service: its bound ports, its parts (for tests) and an orderly close. */
export interface App {
  grpcPort: number;
  httpPort: number;
  /** The plaintext health-only port, when GRPC_HEALTH_PORT is set. */
  healthPort: number | undefined;
  /** The forward auth port for gateways, when FORWARD_AUTH_PORT is set. */
  forwardAuthPort: number | undefined;
  replicaId: string;
  log: Logger;
  authenticator: Authenticator;
  keys: KeyService;
  usage: UsageRecorder;
  invalidator: Invalidator;
  local: LocalCache;
  hasher: Hasher;
  http: FastifyInstance;
  grpc: GrpcServer;
  /** Why the service is not ready (empty when ready). */
  readiness(): Promise<string[]>;
  /** SIGTERM: stop taking work, finish in-flight calls, flush usage, close pools. */
  close(): Promise<void>;
}

interface RedisParts { shared: SharedCache; bus: InvalidationBus; ping(): Promise<boolean>; close(): Promise<void> }

function openRedis(config: Config, replicaId: string, log: Logger): RedisParts {
  if (!config.REDIS_URL) {
    log.info({}, 'no REDIS_URL: in-process cache and bus (run one replica only)');
    return { shared: new NoSharedCache(), bus: new MemoryBus({ replicaId }), ping: async () => true, close: async () => {} };
  }
  const options = { enableOfflineQueue: false, commandTimeout: 500, maxRetriesPerRequest: 1, connectTimeout: 2000,
    retryStrategy: (n: number) => Math.min(50 * 2 ** n, 1000) };
  const redis = new Redis(config.REDIS_URL, options);
  const subscriber = new Redis(config.REDIS_URL, { ...options, autoResubscribe: false });
  redis.on('error', (err: Error) => log.debug({ err }, 'redis error'));
  const onError = (err: unknown) => log.debug({ err }, 'redis subscriber error');
  return {
    shared: new RedisSharedCache({ redis, prefix: config.REDIS_PREFIX, ttlMs: (config.CACHE_TTL_SECONDS + config.STALE_SERVE_SECONDS) * 1000 }),
    bus: new RedisBus({ replicaId, redis, subscriber, prefix: config.REDIS_PREFIX, confirmTimeoutMs: config.REVOKE_CONFIRM_TIMEOUT_MS,
      heartbeatMs: config.HEARTBEAT_MS, onError }),
    ping: async () => (await redis.ping().catch(() => '')) === 'PONG',
    close: async () => { redis.disconnect(); subscriber.disconnect(); },
  };
}

/** SIGTERM's last write of usage counts: retried with backoff for a few seconds, and a loss is logged as an error. */
async function finalFlush(usage: UsageRecorder, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await usage.flush();
      return;
    } catch (err) {
      if (attempt === 5) {
        log.error({ err, lost: usage.unflushed }, 'usage counts could not be written before exit');
        return;
      }
      log.warn({ err, attempt }, 'final usage flush failed; retrying');
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }
}

/** The composition root: build every part from the configuration and start both transports. */
export async function startApp(config: Config, logger?: Logger): Promise<App> {
  const log = logger ?? createLogger(config.LOG_LEVEL);
  const replicaId = config.REPLICA_ID ?? `${hostname()}-${randomUUID().slice(0, 8)}`;
  const metrics = new Metrics();
  const routes = config.FORWARD_AUTH_ROUTES ? RouteMap.load(config.FORWARD_AUTH_ROUTES) : undefined;
  if (!config.DATABASE_URL) log.info({ dir: join(config.DATA_DIR, 'pg') }, 'no DATABASE_URL: using the embedded PostgreSQL (PGlite)');
  const db = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR });
  const applied = await migrate(db);
  if (applied.length > 0) log.info({ applied }, 'migrations applied');

  let tokens = config.ADMIN_TOKENS;
  if (!tokens) {
    const dev = developmentToken(config.DATA_DIR);
    tokens = [dev.token];
    log.warn({ path: dev.path }, 'no ADMIN_TOKENS: a development admin token is kept in this file (name "dev")');
  }

  const redis = openRedis(config, replicaId, log);
  const local = new LocalCache({ maxEntries: config.CACHE_MAX_ENTRIES, maxAgeMs: (config.CACHE_TTL_SECONDS + config.STALE_SERVE_SECONDS) * 1000 });
  const hasher = new Hasher({ memoryCost: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST, parallelism: config.ARGON2_PARALLELISM,
    maxConcurrency: config.ARGON2_MAX_CONCURRENCY, maxQueue: config.ARGON2_MAX_QUEUE });
  const invalidator = new Invalidator({ db, local, shared: redis.shared, bus: redis.bus, pollMs: config.CHANGE_POLL_MS, log,
    onApplied: (ms) => metrics.invalidationLag.observe(ms / 1000) });
  const usage = new UsageRecorder({ db, replicaId, onFlush: (ok) => metrics.usageFlushes.inc({ result: ok ? 'ok' : 'failed' }) });
  const authenticator = new Authenticator({ db, local, shared: redis.shared, hasher, invalidator, usage,
    freshMs: config.CACHE_TTL_SECONDS * 1000, staleServeMs: config.STALE_SERVE_SECONDS * 1000,
    failureLimit: config.FAILED_ATTEMPTS_LIMIT, failureWindowMs: config.FAILED_ATTEMPTS_WINDOW_SECONDS * 1000 });
  const keys = new KeyService({ db, hasher, invalidator });
  const activity = new ActivityService({ db, keys, flush: () => usage.flush() });
  await invalidator.start();

  const readiness = async (): Promise<string[]> => {
    const problems: string[] = [];
    if (!(await db.query('SELECT 1').then(() => true, () => false))) problems.push('storage unreachable');
    if (!(await redis.ping())) problems.push('cache unreachable');
    if (!invalidator.healthy) problems.push('invalidation not subscribed or not caught up');
    return problems;
  };

  const authenticate = (k: string, ip: string, scope: string) => authenticator.authenticate(k, ip, scope);
  const grpc = new GrpcServer({
    authenticate,
    services: [new EnvoyCheck({ authenticate, routes, log })],
    log, maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
    tls: config.GRPC_TLS_CERT && config.GRPC_TLS_KEY ? { cert: config.GRPC_TLS_CERT, key: config.GRPC_TLS_KEY, ca: config.GRPC_TLS_CA } : undefined,
    onCall: (result, code, seconds) => {
      if (!result) {
        metrics.decisions.inc({ outcome: `error_${code}`, reason: '', environment: '' });
        metrics.latency.observe({ path: 'error' }, seconds);
        return;
      }
      const d = result.decision;
      metrics.decisions.inc({ outcome: d.allowed ? 'allowed' : 'denied', reason: d.allowed ? '' : d.reason, environment: d.identity?.environment ?? '' });
      metrics.latency.observe({ path: result.path }, seconds);
      // A tier answered only when it held the key's grant (not for remembered unknown ids).
      if (result.path !== 'parse' && d.identity) metrics.cacheLookups.inc({ tier: result.path });
    },
  });
  const http = await buildHttpApp({
    logger: log, bodyLimit: config.BODY_LIMIT_BYTES, keys, activity, auth: new AdminAuth(tokens), readiness,
    metrics: { contentType: metrics.contentType, render: () => {
      metrics.argonQueue.set(hasher.queued);
      metrics.argonRunning.set(hasher.running);
      metrics.argonVerifications.set(hasher.verifications);
      metrics.subscribed.set(invalidator.healthy ? 1 : 0);
      return metrics.render();
    } },
    tls: config.HTTP_TLS_CERT && config.HTTP_TLS_KEY ? { cert: config.HTTP_TLS_CERT, key: config.HTTP_TLS_KEY } : undefined,
    onResponse: (route, method, status, seconds) => metrics.http.observe({ route, method, status: String(status) }, seconds),
  });

  const grpcPort = await grpc.listen(config.HOST, config.GRPC_PORT);
  const healthPort = config.GRPC_HEALTH_PORT === undefined ? undefined : await grpc.listenHealth(config.HOST, config.GRPC_HEALTH_PORT);
  await http.listen({ host: config.HOST, port: config.HTTP_PORT });
  const httpPort = (http.server.address() as { port: number }).port;
  const forwardAuth = config.FORWARD_AUTH_PORT === undefined ? undefined
    : await buildForwardAuth({ authenticate, routes, trustProxy: config.TRUST_PROXY, logger: log });
  await forwardAuth?.listen({ host: config.HOST, port: config.FORWARD_AUTH_PORT });
  const forwardAuthPort = forwardAuth && (forwardAuth.server.address() as { port: number }).port;

  const readyTimer = setInterval(() => {
    void readiness().then((p) => grpc.setReady(p.length === 0));
  }, 1000);
  readyTimer.unref();
  grpc.setReady((await readiness()).length === 0);
  const flushTimer = setInterval(() => {
    usage.flush().catch((err: unknown) => log.warn({ err }, 'usage flush failed; kept for the next one'));
  }, config.ACTIVITY_FLUSH_MS);
  flushTimer.unref();

  log.info({ grpcPort, httpPort, healthPort, forwardAuthPort, replicaId }, 'otesse key service started');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(readyTimer);
      clearInterval(flushTimer);
      await Promise.all([grpc.close(config.SHUTDOWN_GRACE_MS), http.close(), forwardAuth?.close()]);
      await finalFlush(usage, log);
      await invalidator.close();
      await redis.close();
      await db.close();
      log.info({}, 'otesse key service stopped');
    })();
    return closing;
  };

  return { grpcPort, httpPort, healthPort, forwardAuthPort, replicaId, log, authenticator, keys, usage, invalidator, local, hasher, http, grpc, readiness, close };
}
