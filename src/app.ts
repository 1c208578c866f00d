import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { LocalCache } from './cache/local-cache.js';
import { adminAuth, adminTokens } from './composition/admin.js';
import { finalFlush, startTimers } from './composition/background.js';
import type { Root } from './composition/context.js';
import { gatewayCounter, metricsEndpoint } from './composition/metrics-wiring.js';
import { readinessCheck, type Readiness } from './composition/readiness.js';
import { buildCore, buildLeakReports, buildUseCases, type Core, type UseCases } from './composition/services.js';
import { migrateDatabase, openRedis, openServiceDatabase, type RedisParts } from './composition/storage.js';
import {
  addLeakRoutes,
  addWebhookRoutes,
  authenticateWith,
  buildAdminHttp,
  buildForwardAuthListener,
  buildGrpc,
  buildLeakListener,
  buildMetricsListener,
  closeListeners,
  listenAll,
  listenForwardAuth,
  type Listeners,
  type Ports,
} from './composition/transports.js';
import type { AdminToken, Config } from './config.js';
import { Disposers } from './disposers.js';
import { createLogger, wantsPrettyLogs } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { newReplicaId } from './replica-id.js';
import type { Authenticator } from './service/authenticator.js';
import type { Hasher } from './service/hasher.js';
import type { Invalidator } from './service/invalidator.js';
import type { KeyService } from './service/key-service.js';
import { NO_TRACE, type Trace } from './service/trace.js';
import type { UsageRecorder } from './service/usage.js';
import type { Database } from './store/db.js';
import type { Webhooks } from './composition/webhooks.js';
import type { GrpcServer } from './transport/grpc/server.js';
import { RouteMap } from './transport/route-map.js';

export type { Readiness } from './composition/readiness.js';

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
  /** Webhook delivery, scheduled notices and the endpoints' use cases. */
  webhooks: Webhooks;
  http: FastifyInstance;
  grpc: GrpcServer;
  /** Ready once started and caught up; shared faults show as `degraded`, not as unready (design: readiness-is-local). */
  readiness(): Promise<Readiness>;
  /** SIGTERM: stop taking work, finish in-flight calls, flush usage, close pools. */
  close(): Promise<void>;
}

/** What start-up has opened and built, handed from one phase to the next. */
interface Parts {
  db: Database;
  redis: RedisParts;
  tokens: readonly AdminToken[];
  routes: RouteMap | undefined;
  core: Core;
  useCases: UseCases;
  readiness: () => Promise<Readiness>;
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
  const root: Root = { config, log, metrics: new Metrics(), replicaId, trace };
  const routes = config.FORWARD_AUTH_ROUTES ? RouteMap.load(config.FORWARD_AUTH_ROUTES) : undefined;
  const { db, tokens, redis } = await openStorage(root, opened);
  const core = buildCore(root, db, redis);
  opened.add(core.limiter, (l) => l.close());
  const useCases = buildUseCases(root, db, redis, core);
  opened.add(core.invalidator, (i) => i.close());
  await core.invalidator.start();
  const readiness = readinessCheck(db, redis, core.invalidator);
  const parts: Parts = { db, redis, tokens, routes, core, useCases, readiness };
  const { listeners, ports } = await startListeners(root, opened, parts);
  const stopTimers = startTimers(config, log, { grpc: listeners.grpc, ...core });
  const { grpcPort, httpPort, healthPort, leakPort, metricsPort, forwardAuthPort } = ports;
  log.info(
    { grpcPort, httpPort, healthPort, leakPort, metricsPort, forwardAuthPort, replicaId },
    'otesse key service started',
  );
  const close = closer(root, parts, listeners, stopTimers);
  const { authenticator, keys } = useCases;
  const { usage, invalidator, local, hasher, webhooks } = core;
  const { http, grpc } = listeners;
  return {
    ...ports,
    replicaId,
    log,
    authenticator,
    keys,
    usage,
    invalidator,
    local,
    hasher,
    webhooks,
    http,
    grpc,
    readiness,
    close,
  };
}

/** The database (migrated), the admin tokens, then Redis: in this order, so their log lines read in it too. */
async function openStorage({ config, log, metrics, replicaId }: Root, opened: Disposers) {
  const db = opened.add(await openServiceDatabase(config, log), (d) => d.close());
  await migrateDatabase(config, db, log);
  const tokens = adminTokens(config, log);
  const redis = opened.add(await openRedis(config, replicaId, log, metrics), (r) => r.close());
  return { db, tokens, redis };
}

/** Build every listener (registering each), then listen: gRPC, admin, leak, metrics, and forward auth last. */
async function startListeners(
  root: Root,
  opened: Disposers,
  p: Parts,
): Promise<{ listeners: Listeners; ports: Ports & { forwardAuthPort: number | undefined } }> {
  const { config, metrics } = root;
  const { authenticator, keys, activity, callers } = p.useCases;
  const authenticate = authenticateWith(authenticator);
  const countGateway = gatewayCounter(metrics);
  const grpc = buildGrpc(root, authenticate, p.routes, countGateway, callers);
  const endpoint = metricsEndpoint(metrics, { ...p.core, authenticator, bus: p.redis.bus });
  const auth = adminAuth(config, p.tokens);
  const leaks = buildLeakReports(root, p.db, p.core, p.useCases);
  const adminParts = { keys, activity, auth, readiness: p.readiness, redis: p.redis, metrics: endpoint };
  const http = opened.add(await buildAdminHttp(root, adminParts), (h) => h.close());
  await addLeakRoutes(http, leaks, auth);
  await addWebhookRoutes(root, http, p.core.webhooks.service, keys, auth);
  const leakServer =
    config.LEAK_REPORT_PORT === undefined
      ? undefined
      : opened.add(await buildLeakListener(root, leaks), (s) => s.close());
  const metricsServer =
    config.METRICS_PORT === undefined
      ? undefined
      : opened.add(await buildMetricsListener(root, endpoint), (s) => s.close());
  opened.add(grpc, (g) => g.close(config.SHUTDOWN_GRACE_MS));
  const ports = await listenAll(config, { grpc, http, leakServer, metricsServer });
  const forwardAuth =
    config.FORWARD_AUTH_PORT === undefined
      ? undefined
      : opened.add(await buildForwardAuthListener(root, authenticate, p.routes, countGateway), (f) => f.close());
  const forwardAuthPort = await listenForwardAuth(config, forwardAuth);
  const listeners = { grpc, http, leakServer, metricsServer, forwardAuth };
  return { listeners, ports: { ...ports, forwardAuthPort } };
}

/**
 * SIGTERM, once however often called: stop the timers and every listener (gRPC within the grace), flush
 * usage, then close limits, invalidation, Redis and the database, in this order (design: graceful-shutdown).
 */
function closer({ config, log }: Root, p: Parts, listeners: Listeners, stopTimers: () => void): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      stopTimers();
      await closeListeners(listeners, config.SHUTDOWN_GRACE_MS);
      await finalFlush(p.core.usage, log);
      // Attempts in flight are settled; what is still due is claimed by another replica.
      await p.core.webhooks.delivery.stop();
      p.core.webhooks.sender.close();
      await p.core.limiter.close();
      await p.core.invalidator.close();
      await p.redis.close();
      await p.db.close();
      log.info({}, 'otesse key service stopped');
    })();
    return closing;
  };
}
