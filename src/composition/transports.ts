import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { ActivityService } from '../service/activity-service.js';
import type { Authenticator, CallLimits } from '../service/authenticator.js';
import type { KeyService } from '../service/key-service.js';
import type { LeakReportService } from '../service/leak-report-service.js';
import type { WebhookService } from '../service/webhook-service.js';
import { EnvoyCheck } from '../transport/envoy-check.js';
import { buildForwardAuth } from '../transport/forward-auth.js';
import type { GatewayOutcome } from '../transport/gateway-check.js';
import { GrpcServer, type GrpcServerOptions } from '../transport/grpc/server.js';
import type { WatchOpener } from '../transport/grpc/watch.js';
import { buildHttpApp } from '../transport/http/app.js';
import type { AdminAuthenticator } from '../transport/http/auth.js';
import { consoleBundleDir } from '../transport/http/console.js';
import { leakedKeyRoutes } from '../transport/http/routes/leaked.js';
import { webhookRoutes } from '../transport/http/routes/webhooks.js';
import { GithubPublicKeys } from '../transport/leak/github-keys.js';
import { buildLeakServer } from '../transport/leak/server.js';
import { buildMetricsServer } from '../transport/metrics/server.js';
import type { RouteMap } from '../transport/route-map.js';
import type { Root } from './context.js';
import { grpcCallObserver, type MetricsEndpoint } from './metrics-wiring.js';
import type { Readiness } from './readiness.js';
import { rateLimitFaults } from './services.js';
import type { RedisParts } from './storage.js';

/** The one Authenticate use case, as every transport calls it. */
export type Authenticate = GrpcServerOptions['authenticate'];

/** Counts one gateway's decisions (see metrics-wiring). */
type CountGateway = (gateway: string) => (o: GatewayOutcome) => void;

/** The listeners a replica serves on; the optional ones exist only when their port is configured. */
export interface Listeners {
  grpc: GrpcServer;
  http: FastifyInstance;
  leakServer: FastifyInstance | undefined;
  metricsServer: FastifyInstance | undefined;
  forwardAuth: FastifyInstance | undefined;
}

/** The ports bound by `listenAll` (0 in the configuration picks a free one). */
export interface Ports {
  grpcPort: number;
  healthPort: number | undefined;
  httpPort: number;
  leakPort: number | undefined;
  metricsPort: number | undefined;
}

/** The admin API's use cases and the parts it reports on. */
export interface AdminHttpParts {
  keys: KeyService;
  activity: ActivityService;
  auth: AdminAuthenticator;
  readiness: () => Promise<Readiness>;
  redis: RedisParts;
  /** Served on the admin port only when there is no METRICS_PORT. */
  metrics: MetricsEndpoint;
}

export function authenticateWith(authenticator: Authenticator): Authenticate {
  return (k: string, ip: string, scope: string, limits?: CallLimits, uses?: number, watching?: boolean) =>
    authenticator.authenticate(k, ip, scope, limits, uses, watching);
}

/** gRPC: Authenticate and Envoy's Check on one server (not yet listening). */
export function buildGrpc(
  { config, log, metrics, trace }: Root,
  authenticate: Authenticate,
  routes: RouteMap | undefined,
  countGateway: CountGateway,
  watch?: WatchOpener,
): GrpcServer {
  return new GrpcServer({
    authenticate,
    watch,
    services: [
      new EnvoyCheck({ authenticate, routes, trustProxy: config.TRUST_PROXY, log, onOutcome: countGateway('envoy') }),
    ],
    log,
    maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
    tls:
      config.GRPC_TLS_CERT && config.GRPC_TLS_KEY
        ? { cert: config.GRPC_TLS_CERT, key: config.GRPC_TLS_KEY, ca: config.GRPC_TLS_CA }
        : undefined,
    onCall: grpcCallObserver(metrics),
    trace,
  });
}

/** The admin API (REST, console, docs, health), not yet listening. */
export async function buildAdminHttp(root: Root, parts: AdminHttpParts): Promise<FastifyInstance> {
  const { config, log, metrics } = root;
  return buildHttpApp({
    // Swagger UI is a page of third-party script on the admin origin: off in production unless asked for.
    docs: config.ADMIN_API_DOCS === undefined ? config.NODE_ENV !== 'production' : config.ADMIN_API_DOCS === '1',
    logger: log,
    bodyLimit: config.BODY_LIMIT_BYTES,
    keys: parts.keys,
    activity: parts.activity,
    auth: parts.auth,
    consoleDir: consoleBundleDir(),
    consoleHostOrigins: config.CONSOLE_HOST_ORIGINS,
    readiness: parts.readiness,
    trustProxy: config.TRUST_PROXY,
    onRefused: (status) => metrics.adminRefused.inc({ status: String(status) }),
    rateLimit: {
      perToken: config.ADMIN_RATE_LIMIT_PER_TOKEN,
      perAddress: config.ADMIN_RATE_LIMIT_PER_ADDRESS,
      redis: parts.redis.client,
      prefix: config.REDIS_PREFIX,
      onStoreFault: rateLimitFaults(root, 'admin'),
    },
    // With METRICS_PORT, /metrics lives there only: the admin port (and whoever reaches it) does not serve it.
    metrics: config.METRICS_PORT === undefined ? parts.metrics : undefined,
    tls:
      config.HTTP_TLS_CERT && config.HTTP_TLS_KEY
        ? { cert: config.HTTP_TLS_CERT, key: config.HTTP_TLS_KEY }
        : undefined,
    onResponse: (route, method, status, seconds) =>
      metrics.http.observe({ route, method, status: String(status) }, seconds),
  });
}

/** GitHub secret scanning's listener (LEAK_REPORT_PORT), not yet listening. */
export async function buildLeakListener(
  { config, log, metrics }: Root,
  leaks: LeakReportService,
): Promise<FastifyInstance> {
  return buildLeakServer({
    logger: log,
    leaks,
    registry: metrics.registry,
    publicKeys: new GithubPublicKeys({
      url: config.GITHUB_SECRET_SCANNING_KEYS_URL,
      onFetchError: (err) => log.warn({ err }, 'GitHub secret-scanning public keys could not be fetched'),
    }),
  });
}

/** The admin API's route for reported leaks (the same use case as GitHub's listener). */
export async function addLeakRoutes(
  http: FastifyInstance,
  leaks: LeakReportService,
  auth: AdminAuthenticator,
): Promise<void> {
  await http.register(leakedKeyRoutes, { leaks, auth });
}

/** The admin API's webhook endpoint routes (account-scoped and audited as the keys' routes are). */
export async function addWebhookRoutes(
  { metrics }: Root,
  http: FastifyInstance,
  webhooks: WebhookService,
  keys: KeyService,
  auth: AdminAuthenticator,
): Promise<void> {
  await http.register(webhookRoutes, {
    webhooks,
    auth,
    recordRefusal: (...a) => keys.recordRefusal(...a),
    onRefused: (status) => metrics.adminRefused.inc({ status: String(status) }),
  });
}

/** /metrics on a listener of its own (METRICS_PORT), not yet listening. */
export async function buildMetricsListener({ log }: Root, endpoint: MetricsEndpoint): Promise<FastifyInstance> {
  return buildMetricsServer({ logger: log, metrics: endpoint });
}

/** Forward auth for gateways (FORWARD_AUTH_PORT), not yet listening. */
export async function buildForwardAuthListener(
  { config, log }: Root,
  authenticate: Authenticate,
  routes: RouteMap | undefined,
  countGateway: CountGateway,
): Promise<FastifyInstance> {
  return buildForwardAuth({
    authenticate,
    routes,
    trustProxy: config.TRUST_PROXY,
    logger: log,
    onOutcome: countGateway('forward_auth'),
    trustScopeHeader: config.FORWARD_AUTH_TRUST_SCOPE_HEADER === '1',
    tls:
      config.FORWARD_AUTH_TLS_CERT && config.FORWARD_AUTH_TLS_KEY
        ? { cert: config.FORWARD_AUTH_TLS_CERT, key: config.FORWARD_AUTH_TLS_KEY, ca: config.FORWARD_AUTH_TLS_CA }
        : undefined,
  });
}

/** Listen and return the bound port (0 picks a free one). */
async function listenOn(server: FastifyInstance, host: string, port: number | undefined): Promise<number> {
  await server.listen({ host, port: port ?? 0 });
  return (server.server.address() as { port: number }).port;
}

/** gRPC (and its health-only port), the admin API, then the leak and metrics listeners, one after another. */
export async function listenAll(
  config: Config,
  l: Pick<Listeners, 'grpc' | 'http' | 'leakServer' | 'metricsServer'>,
): Promise<Ports> {
  const grpcPort = await l.grpc.listen(config.HOST, config.GRPC_PORT);
  const healthPort =
    config.GRPC_HEALTH_PORT === undefined ? undefined : await l.grpc.listenHealth(config.HOST, config.GRPC_HEALTH_PORT);
  await l.http.listen({ host: config.HOST, port: config.HTTP_PORT });
  const httpPort = (l.http.server.address() as { port: number }).port;
  const leakPort = l.leakServer && (await listenOn(l.leakServer, config.HOST, config.LEAK_REPORT_PORT));
  const metricsPort = l.metricsServer && (await listenOn(l.metricsServer, config.HOST, config.METRICS_PORT));
  return { grpcPort, healthPort, httpPort, leakPort, metricsPort };
}

/** Forward auth's bound port, once it listens (undefined without FORWARD_AUTH_PORT). */
export async function listenForwardAuth(
  config: Config,
  forwardAuth: FastifyInstance | undefined,
): Promise<number | undefined> {
  await forwardAuth?.listen({ host: config.HOST, port: config.FORWARD_AUTH_PORT });
  return forwardAuth && (forwardAuth.server.address() as { port: number }).port;
}

/** Stop taking work on every listener at once; gRPC lets in-flight calls finish within `graceMs`. */
export async function closeListeners(l: Listeners, graceMs: number): Promise<void> {
  await Promise.all([
    l.grpc.close(graceMs),
    l.http.close(),
    l.leakServer?.close(),
    l.metricsServer?.close(),
    l.forwardAuth?.close(),
  ]);
}
