import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { developmentToken } from './admin-token.js';
import { Disposers } from './disposers.js';
import { MemoryBus, type InvalidationBus } from './cache/bus.js';
import { MemoryFailureCounter, RedisFailureCounter, type FailureCounter } from './cache/failure-counter.js';
import { LocalCache } from './cache/local-cache.js';
import { checkRedisSetup, openRedisConnections, type RedisTarget } from './cache/open-redis.js';
import { RedisBus } from './cache/redis-bus.js';
import { RedisSharedCache } from './cache/redis-shared-cache.js';
import { Signer } from './cache/signer.js';
import { NoSharedCache, type SharedCache } from './cache/shared-cache.js';
import type { AdminToken, Config } from './config.js';
import { createLogger, wantsPrettyLogs } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ActivityService } from './service/activity-service.js';
import { Authenticator, type CallLimits } from './service/authenticator.js';
import { Limiter } from './service/limiter.js';
import { MemoryRateBudget, RedisRateBudget, type RateBudget } from './cache/rate-budget.js';
import { Hasher } from './service/hasher.js';
import { Invalidator } from './service/invalidator.js';
import { KeyService } from './service/key-service.js';
import { LeakReportService } from './service/leak-report-service.js';
import { RetentionJob } from './service/retention.js';
import { UsageRecorder } from './service/usage.js';
import { NO_TRACE, type Trace } from './service/trace.js';
import { newReplicaId } from './replica-id.js';
import { applyMigrations, openConfiguredDatabase } from './database.js';
import { FirstOfAuth, StaticTokenAuth, type AdminAuthenticator } from './transport/http/auth.js';
import { buildHttpApp } from './transport/http/app.js';
import { consoleBundleDir } from './transport/http/console.js';
import { JwtAdminAuth } from './transport/http/jwt-auth.js';
import { GrpcServer } from './transport/grpc/server.js';
import { EnvoyCheck } from './transport/envoy-check.js';
import { buildForwardAuth } from './transport/forward-auth.js';
import type { GatewayOutcome } from './transport/gateway-check.js';
import { RouteMap } from './transport/route-map.js';
import { leakedKeyRoutes } from './transport/http/routes/leaked.js';
import { GithubPublicKeys } from './transport/leak/github-keys.js';
import { buildLeakServer } from './transport/leak/server.js';
import { buildMetricsServer } from './transport/metrics/server.js';

/** What /readyz reports. */
export interface Readiness {
  ready: boolean;
  /** Shared dependencies that are degraded, in words (empty when all is well). */
  degraded: string[];
}

/** A running service: its bound ports, its parts (for tests) and an orderly close. */
export interface App {
  grpcPort: number;
  httpPort: number;
  /** The plaintext health-only port, when GRPC_HEALTH_PORT is set. */
  healthPort: number | undefined;
  /** GitHub secret scanning's listener, when LEAK_REPORT_PORT is set. */
  leakPort: number | undefined;
  /** The /metrics listener, when METRICS_PORT is set. */
  metricsPort: number | undefined;
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
  /** Ready once started and caught up; shared faults show as `degraded`, not as unready (design: readiness-is-local). */
  readiness(): Promise<Readiness>;
  /** SIGTERM: stop taking work, finish in-flight calls, flush usage, close pools. */
  close(): Promise<void>;
}

interface RedisParts {
  shared: SharedCache;
  bus: InvalidationBus;
  failures: FailureCounter;
  budget: RateBudget;
  client?: Redis;
  ping(): Promise<boolean>;
  close(): Promise<void>;
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

async function openRedis(config: Config, replicaId: string, log: Logger, metrics: Metrics): Promise<RedisParts> {
  const target = redisTarget(config);
  if (!target || !config.CACHE_SIGNING_KEY) {
    log.info({}, 'no REDIS_URL: in-process cache and bus (run one replica only)');
    return {
      shared: new NoSharedCache(),
      bus: new MemoryBus({ replicaId }),
      ping: async () => true,
      close: async () => {},
      failures: new MemoryFailureCounter({ windowMs: config.FAILED_ATTEMPTS_WINDOW_SECONDS * 1000 }),
      budget: new MemoryRateBudget(),
    };
  }
  const checked = await checkRedisSetup(target, config.LEASE_MS + config.CLOCK_SKEW_MS);
  for (const warning of checked.warnings) log.warn({ primary: checked.primary }, warning);
  const { command: redis, subscriber } = openRedisConnections(target);
  redis.on('error', (err: Error) => log.debug({ err }, 'redis error'));
  const onError = (err: unknown) => log.debug({ err }, 'redis subscriber error');
  const signer = new Signer(config.CACHE_SIGNING_KEY);
  const logged = new Set<string>();
  const onReject = (kind: string) => {
    metrics.redisRejected.inc({ kind });
    if (!logged.has(kind)) {
      logged.add(kind);
      log.warn(
        { kind },
        'dropped unreadable or unauthenticated input from Redis (logged once per kind; see otesse_keys_redis_rejected_total)',
      );
    }
  };
  return {
    shared: new RedisSharedCache({
      redis,
      prefix: config.REDIS_PREFIX,
      signer,
      skewMs: config.CLOCK_SKEW_MS,
      onReject,
      ttlMs: (config.CACHE_TTL_SECONDS + config.STALE_SERVE_SECONDS) * 1000,
    }),
    bus: new RedisBus({
      replicaId,
      redis,
      subscriber,
      prefix: config.REDIS_PREFIX,
      signer,
      leaseMs: config.LEASE_MS,
      skewMs: config.CLOCK_SKEW_MS,
      heartbeatMs: config.HEARTBEAT_MS,
      onError,
      onReject,
    }),
    client: redis,
    budget: new RedisRateBudget({ redis, prefix: config.REDIS_PREFIX }),
    failures: new RedisFailureCounter({
      redis,
      prefix: config.REDIS_PREFIX,
      windowMs: config.FAILED_ATTEMPTS_WINDOW_SECONDS * 1000,
    }),
    // A failed ping is the answer (not PONG): /readyz reports Redis as unreachable.
    ping: async () => (await redis.ping().catch(() => '')) === 'PONG',
    close: async () => {
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}

/** Admin identity: ADMIN_TOKENS first, then (when configured) JWTs of signed-in people. */
function adminAuth(config: Config, tokens: readonly AdminToken[]): AdminAuthenticator {
  const backends: AdminAuthenticator[] = [new StaticTokenAuth(tokens)];
  if (config.ADMIN_JWKS_URL && config.ADMIN_JWT_ISSUER && config.ADMIN_JWT_AUDIENCE) {
    backends.push(
      new JwtAdminAuth({
        jwksUrl: config.ADMIN_JWKS_URL,
        issuer: config.ADMIN_JWT_ISSUER,
        audience: config.ADMIN_JWT_AUDIENCE,
      }),
    );
  }
  return new FirstOfAuth(backends);
}

/** `fn`, called at most once a minute whatever the rate of calls (for log lines about a lasting fault). */
function oncePerMinute<A>(fn: (arg: A) => void): (arg: A) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (arg) => {
    if (Date.now() - last < 60_000) return;
    last = Date.now();
    fn(arg);
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

/** Listen and return the bound port (0 picks a free one). */
async function listenOn(server: FastifyInstance, host: string, port: number | undefined): Promise<number> {
  await server.listen({ host, port: port ?? 0 });
  return (server.server.address() as { port: number }).port;
}

/**
 * The composition root: build every part from the configuration and start both transports.
 * `trace`: the use cases' spans and attributes (main.ts passes it when tracing is configured).
 */
export async function startApp(config: Config, logger?: Logger, trace: Trace = NO_TRACE): Promise<App> {
  const log =
    logger ??
    createLogger(config.LOG_LEVEL, undefined, { pretty: wantsPrettyLogs(config.NODE_ENV, process.stdout.isTTY) });
  const opened = new Disposers();
  try {
    return await start(config, log, opened, trace);
  } catch (err) {
    // A start-up that fails part way (a port taken, say) closes what it opened, then fails as before.
    await opened.disposeAll((e) => log.warn({ err: e }, 'closing after a failed start-up failed'));
    throw err;
  }
}

/** Every part opened is registered in `opened` as soon as it exists. */
async function start(config: Config, log: Logger, opened: Disposers, trace: Trace): Promise<App> {
  const replicaId = config.REPLICA_ID ?? newReplicaId();
  const metrics = new Metrics();
  const routes = config.FORWARD_AUTH_ROUTES ? RouteMap.load(config.FORWARD_AUTH_ROUTES) : undefined;
  if (!config.DATABASE_URL)
    log.info({ dir: join(config.DATA_DIR, 'pg') }, 'no DATABASE_URL: using the embedded PostgreSQL (PGlite)');
  const db = opened.add(
    await openConfiguredDatabase(config, 'service', {
      onIdleError: (err) =>
        log.warn({ err }, 'PostgreSQL: an idle pooled connection failed; the pool opens another for the next query'),
    }),
    (d) => d.close(),
  );
  const applied = await applyMigrations(config, db);
  if (applied.length > 0) log.info({ applied }, 'migrations applied');

  let tokens = config.ADMIN_TOKENS ?? [];
  // Production never makes a token of its own (the configuration requires ADMIN_TOKENS or JWTs there).
  if (!config.ADMIN_TOKENS && config.NODE_ENV !== 'production') {
    const dev = developmentToken(config.DATA_DIR);
    tokens = [dev.token];
    log.warn({ path: dev.path }, 'no ADMIN_TOKENS: a development admin token is kept in this file (name "dev")');
  }

  const redis = opened.add(await openRedis(config, replicaId, log, metrics), (r) => r.close());
  const maxAgeMs = (config.CACHE_TTL_SECONDS + config.STALE_SERVE_SECONDS) * 1000;
  // Floors must outlive any entry that Redis may still hold (its TTL) and any verification in flight.
  const recentMs = maxAgeMs + config.CLOCK_SKEW_MS + 60_000;
  const local = new LocalCache({
    maxEntries: config.CACHE_MAX_ENTRIES,
    maxAgeMs,
    floorTtlMs: recentMs + 60_000,
    skewMs: config.CLOCK_SKEW_MS,
  });
  const hasher = new Hasher({
    memoryCost: config.ARGON2_MEMORY_KIB,
    timeCost: config.ARGON2_TIME_COST,
    parallelism: config.ARGON2_PARALLELISM,
    maxConcurrency: config.ARGON2_MAX_CONCURRENCY,
    maxQueue: config.ARGON2_MAX_QUEUE,
    adminConcurrency: config.ARGON2_ADMIN_CONCURRENCY,
    onFault: oncePerMinute((err: unknown) =>
      log.error(
        { err },
        'argon2 could not verify a stored hash: answered UNAVAILABLE, not counted as a wrong secret (logged once a minute; see otesse_keys_argon2_faults)',
      ),
    ),
  });
  const invalidator = new Invalidator({
    db,
    local,
    shared: redis.shared,
    bus: redis.bus,
    pollMs: config.CHANGE_POLL_MS,
    log,
    recentMs,
    publishRetryMs: config.LEASE_MS + config.CLOCK_SKEW_MS,
    onApplied: (ms) => metrics.invalidationLag.observe(ms / 1000),
    onPropagated: (outcome, ms) => {
      metrics.propagations.inc({ outcome });
      metrics.propagationWait.observe(ms / 1000);
    },
  });
  const dropLog = oncePerMinute((n: number) =>
    log.error(
      { dropped: n },
      'usage counts dropped: flushes keep failing and the in-memory bound is reached (logged once a minute)',
    ),
  );
  const usage = new UsageRecorder({
    db,
    replicaId,
    maxEntries: config.USAGE_MAX_ENTRIES,
    onFlush: (ok) => metrics.usageFlushes.inc({ result: ok ? 'ok' : 'failed' }),
    onDrop: (n) => {
      metrics.usageDropped.inc(n);
      dropLog(n);
    },
  });
  const retention = new RetentionJob({
    db,
    policy: {
      changesDays: config.RETENTION_CHANGES_DAYS,
      activityBatchesDays: config.RETENTION_ACTIVITY_BATCHES_DAYS,
      usageDays: config.RETENTION_USAGE_DAYS,
      auditDays: config.RETENTION_AUDIT_DAYS,
    },
  });
  const limiter = opened.add(
    new Limiter({
      db,
      budget: redis.budget,
      onBudgetFault: oncePerMinute((err: unknown) =>
        log.warn(
          { err },
          'rate limits: Redis unreachable, this replica counts each limit on its own meanwhile (logged once a minute)',
        ),
      ),
    }),
    (l) => l.close(),
  );
  const unreadableLog = oncePerMinute((o: { keyId: string; rules: number }) =>
    log.warn(
      o,
      "a key's stored allowlist has rules that cannot be read: the key is denied from every address (logged once a minute; see otesse_keys_unreadable_data_total)",
    ),
  );
  const supersededLog = oncePerMinute((keyId: string) =>
    log.warn(
      { keyId },
      "a Redis cache entry below this replica's version floor was read (replayed or left over): not served (logged once a minute; see otesse_keys_superseded_entries_total)",
    ),
  );
  const authenticator = new Authenticator({
    db,
    local,
    shared: redis.shared,
    hasher,
    invalidator,
    usage,
    limiter,
    trace,
    freshMs: config.CACHE_TTL_SECONDS * 1000,
    staleServeMs: config.STALE_SERVE_SECONDS * 1000,
    failureLimit: config.FAILED_ATTEMPTS_LIMIT,
    failures: redis.failures,
    onUnreadable: (keyId, rules) => {
      metrics.unreadableData.inc({ field: 'allowed_ips' }, 1);
      unreadableLog({ keyId, rules });
    },
    onSuperseded: (keyId) => {
      metrics.supersededEntries.inc();
      supersededLog(keyId);
    },
  });
  const keys = new KeyService({ db, hasher, invalidator, trace });
  const activity = new ActivityService({ db, keys, flush: () => usage.flush() });
  opened.add(invalidator, (i) => i.close());
  await invalidator.start();

  const readiness = async (): Promise<Readiness> => {
    const degraded: string[] = [];
    if (
      !(await db.query('SELECT 1').then(
        () => true,
        () => false,
      ))
    )
      degraded.push('storage unreachable: serving verified keys within the stale bound');
    if (!(await redis.ping())) degraded.push('redis unreachable: deciding from PostgreSQL');
    const bus = invalidator.degraded;
    if (bus) degraded.push(bus);
    return { ready: invalidator.everReady, degraded };
  };

  const authenticate = (k: string, ip: string, scope: string, limits?: CallLimits, uses?: number) =>
    authenticator.authenticate(k, ip, scope, limits, uses);
  // Gateway decisions are counted apart from Authenticate calls: they include the gateway's own refusals (no key, no route).
  const countGateway = (gateway: string) => (o: GatewayOutcome) =>
    metrics.gatewayChecks.inc({
      gateway,
      outcome: o.allowed ? 'allowed' : 'denied',
      reason: o.allowed ? '' : o.reason,
    });
  const grpc = new GrpcServer({
    authenticate,
    services: [
      new EnvoyCheck({ authenticate, routes, trustProxy: config.TRUST_PROXY, log, onOutcome: countGateway('envoy') }),
    ],
    log,
    maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
    tls:
      config.GRPC_TLS_CERT && config.GRPC_TLS_KEY
        ? { cert: config.GRPC_TLS_CERT, key: config.GRPC_TLS_KEY, ca: config.GRPC_TLS_CA }
        : undefined,
    onCall: (result, code, seconds) => {
      if (!result) {
        metrics.answer(`error_${code}`, '', '', 'error', false, seconds);
        return;
      }
      const d = result.decision;
      // A tier answered only when it held the key's grant (not for remembered unknown ids).
      metrics.answer(
        d.allowed ? 'allowed' : 'denied',
        d.allowed ? '' : d.reason,
        d.identity?.environment ?? '',
        result.path,
        d.identity !== undefined,
        seconds,
      );
    },
  });
  const metricsEndpoint = {
    contentType: metrics.contentType,
    render: () => {
      metrics.argonQueue.set(hasher.queued);
      metrics.argonRunning.set(hasher.running);
      metrics.argonVerifications.set(hasher.verifications);
      metrics.argonFaults.set(hasher.faults);
      metrics.checkRefusals.set(authenticator.refusedByCheck);
      metrics.subscribed.set(redis.bus.subscribed ? 1 : 0);
      metrics.trusted.set(invalidator.healthy ? 1 : 0);
      return metrics.render();
    },
  };
  const auth = adminAuth(config, tokens);
  const leaks = new LeakReportService({ db, hasher, keys, trace });
  const http = opened.add(
    await buildHttpApp({
      // Swagger UI is a page of third-party script on the admin origin: off in production unless asked for.
      docs: config.ADMIN_API_DOCS === undefined ? config.NODE_ENV !== 'production' : config.ADMIN_API_DOCS === '1',
      logger: log,
      bodyLimit: config.BODY_LIMIT_BYTES,
      keys,
      activity,
      auth,
      consoleDir: consoleBundleDir(),
      consoleHostOrigins: config.CONSOLE_HOST_ORIGINS,
      readiness,
      trustProxy: config.TRUST_PROXY,
      onRefused: (status) => metrics.adminRefused.inc({ status: String(status) }),
      rateLimit: {
        perToken: config.ADMIN_RATE_LIMIT_PER_TOKEN,
        perAddress: config.ADMIN_RATE_LIMIT_PER_ADDRESS,
        redis: redis.client,
        prefix: config.REDIS_PREFIX,
      },
      // With METRICS_PORT, /metrics lives there only: the admin port (and whoever reaches it) does not serve it.
      metrics: config.METRICS_PORT === undefined ? metricsEndpoint : undefined,
      tls:
        config.HTTP_TLS_CERT && config.HTTP_TLS_KEY
          ? { cert: config.HTTP_TLS_CERT, key: config.HTTP_TLS_KEY }
          : undefined,
      onResponse: (route, method, status, seconds) =>
        metrics.http.observe({ route, method, status: String(status) }, seconds),
    }),
    (h) => h.close(),
  );
  await http.register(leakedKeyRoutes, { leaks, auth });
  const leakServer =
    config.LEAK_REPORT_PORT === undefined
      ? undefined
      : opened.add(
          await buildLeakServer({
            logger: log,
            leaks,
            registry: metrics.registry,
            publicKeys: new GithubPublicKeys({
              url: config.GITHUB_SECRET_SCANNING_KEYS_URL,
              onFetchError: (err) => log.warn({ err }, 'GitHub secret-scanning public keys could not be fetched'),
            }),
          }),
          (s) => s.close(),
        );
  const metricsServer =
    config.METRICS_PORT === undefined
      ? undefined
      : opened.add(await buildMetricsServer({ logger: log, metrics: metricsEndpoint }), (s) => s.close());

  opened.add(grpc, (g) => g.close(config.SHUTDOWN_GRACE_MS));
  const grpcPort = await grpc.listen(config.HOST, config.GRPC_PORT);
  const healthPort =
    config.GRPC_HEALTH_PORT === undefined ? undefined : await grpc.listenHealth(config.HOST, config.GRPC_HEALTH_PORT);
  await http.listen({ host: config.HOST, port: config.HTTP_PORT });
  const httpPort = (http.server.address() as { port: number }).port;
  const leakPort = leakServer && (await listenOn(leakServer, config.HOST, config.LEAK_REPORT_PORT));
  const metricsPort = metricsServer && (await listenOn(metricsServer, config.HOST, config.METRICS_PORT));
  const forwardAuth =
    config.FORWARD_AUTH_PORT === undefined
      ? undefined
      : opened.add(
          await buildForwardAuth({
            authenticate,
            routes,
            trustProxy: config.TRUST_PROXY,
            logger: log,
            onOutcome: countGateway('forward_auth'),
            trustScopeHeader: config.FORWARD_AUTH_TRUST_SCOPE_HEADER === '1',
            tls:
              config.FORWARD_AUTH_TLS_CERT && config.FORWARD_AUTH_TLS_KEY
                ? {
                    cert: config.FORWARD_AUTH_TLS_CERT,
                    key: config.FORWARD_AUTH_TLS_KEY,
                    ca: config.FORWARD_AUTH_TLS_CA,
                  }
                : undefined,
          }),
          (f) => f.close(),
        );
  await forwardAuth?.listen({ host: config.HOST, port: config.FORWARD_AUTH_PORT });
  const forwardAuthPort = forwardAuth && (forwardAuth.server.address() as { port: number }).port;

  // Readiness follows this replica only: once caught up it stays SERVING through shared faults.
  const readyTimer = setInterval(() => {
    grpc.setReady(invalidator.everReady);
  }, 1000);
  readyTimer.unref();
  grpc.setReady(invalidator.everReady);
  const flushTimer = setInterval(() => {
    usage.flush().catch((err: unknown) => log.warn({ err }, 'usage flush failed; kept for the next one'));
  }, config.ACTIVITY_FLUSH_MS);
  flushTimer.unref();
  const retentionTimer = setInterval(() => {
    retention.runOnce().then(
      (r) => {
        if (r.ran) log.info({ deleted: r.deleted }, 'retention: old records pruned');
      },
      (err: unknown) => log.warn({ err }, 'retention run failed; retried at the next interval'),
    );
  }, config.RETENTION_INTERVAL_MS);
  retentionTimer.unref();

  log.info(
    { grpcPort, httpPort, healthPort, leakPort, metricsPort, forwardAuthPort, replicaId },
    'otesse key service started',
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(readyTimer);
      clearInterval(flushTimer);
      clearInterval(retentionTimer);
      await Promise.all([
        grpc.close(config.SHUTDOWN_GRACE_MS),
        http.close(),
        leakServer?.close(),
        metricsServer?.close(),
        forwardAuth?.close(),
      ]);
      await finalFlush(usage, log);
      await limiter.close();
      await invalidator.close();
      await redis.close();
      await db.close();
      log.info({}, 'otesse key service stopped');
    })();
    return closing;
  };

  return {
    grpcPort,
    httpPort,
    healthPort,
    leakPort,
    metricsPort,
    forwardAuthPort,
    replicaId,
    log,
    authenticator,
    keys,
    usage,
    invalidator,
    local,
    hasher,
    http,
    grpc,
    readiness,
    close,
  };
}
