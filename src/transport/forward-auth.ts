import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { scrub } from '../observability/logger.js';
import { checkGatewayRequest, identityHeaders, type Authenticate, type GatewayOutcome } from './gateway-check.js';
import { errorHandler, sendProblem } from './http/problem.js';
import type { RouteMap } from './route-map.js';

export interface ForwardAuthOptions {
  authenticate: Authenticate;
  /** FORWARD_AUTH_ROUTES: the scope of a route when the gateway does not send X-Otesse-Scope. */
  routes?: RouteMap | undefined;
  /** TRUST_PROXY: proxies whose X-Forwarded-For names the client (Fastify trustProxy, by proxy-addr). */
  trustProxy?: string[] | undefined;
  logger: Logger;
  /** Observes each answer (metrics). */
  onOutcome?: (outcome: GatewayOutcome) => void;
}

const PREFIX = '/authorize';
const text = (v: string | string[] | undefined) => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The client's original method and target: nginx sends X-Original-Method/-URI (when told to),
 * Traefik X-Forwarded-Method/-Uri; Envoy's HTTP ext_authz calls `<method> /authorize<path>`.
 */
function originalRequest(request: FastifyRequest): { method: string; target: string } | undefined {
  const h = request.headers;
  const method = text(h['x-original-method']) ?? text(h['x-forwarded-method']);
  const target = text(h['x-original-uri']) ?? text(h['x-forwarded-uri']);
  if (method && target) return { method, target };
  if (request.url.startsWith(`${PREFIX}/`)) return { method: request.method, target: request.url.slice(PREFIX.length) };
  return undefined;
}

function scopeOf(request: FastifyRequest, routes: RouteMap | undefined): string | undefined {
  const given = text(request.headers['x-otesse-scope']);
  if (given) return given;
  const original = originalRequest(request);
  return original && routes?.scopeFor(original.method, original.target);
}

/** Forward auth for gateways, on its own port: 204 with the identity headers, or the table's problem+json deny. */
export async function buildForwardAuth(opts: ForwardAuthOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger.child({ transport: 'forward-auth' }),
    // One line per gateway subrequest would double the log of every request behind it; denials are logged below.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: opts.trustProxy ?? false,
    bodyLimit: 65_536,
  }) as unknown as FastifyInstance;
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => sendProblem(reply, 404, `no route ${request.method} ${scrub(request.url.split('?')[0] ?? '')}`));
  // A gateway may forward the client's body (Envoy's with_request_body): it is never read.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    const outcome = await checkGatewayRequest(opts.authenticate, { headers: request.headers, ip: request.ip, scope: scopeOf(request, opts.routes) });
    opts.onOutcome?.(outcome);
    if (outcome.allowed) return reply.code(204).headers(identityHeaders(outcome.identity)).send();
    request.log.info({ reason: outcome.reason, keyId: outcome.identity?.keyId, ip: request.ip }, 'forward auth denied');
    return reply.code(outcome.answer.status).headers({ ...outcome.answer.headers, 'x-otesse-deny-reason': outcome.reason }).send(outcome.answer.body);
  };
  app.all(PREFIX, authorize);
  app.all(`${PREFIX}/*`, authorize);
  return app;
}
