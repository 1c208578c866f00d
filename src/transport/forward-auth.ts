import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { scrub } from '../observability/logger.js';
import {
  badRequest,
  checkGatewayRequest,
  identityHeaders,
  type Authenticate,
  type GatewayOutcome,
} from './gateway-check.js';
import { errorHandler, sendProblem } from './http/problem.js';
import type { RouteMap } from './route-map.js';

export interface ForwardAuthOptions {
  authenticate: Authenticate;
  /** FORWARD_AUTH_ROUTES: the scope of each route. */
  routes?: RouteMap | undefined;
  /**
   * FORWARD_AUTH_TRUST_SCOPE_HEADER: the operator declares that the gateway sets X-Otesse-Scope
   * (and strips the client's). Otherwise the header is ignored (design: client-cannot-choose).
   */
  trustScopeHeader?: boolean | undefined;
  /** FORWARD_AUTH_TLS_*: serve HTTPS; with `ca`, gateways must present a certificate it signed. */
  tls?: { cert: string; key: string; ca?: string | undefined } | undefined;
  /** TRUST_PROXY: proxies whose X-Forwarded-For names the client (Fastify trustProxy, by proxy-addr). */
  trustProxy?: string[] | undefined;
  logger: Logger;
  /** Observes each answer (metrics). */
  onOutcome?: (outcome: GatewayOutcome) => void;
}

const PREFIX = '/authorize';
const text = (v: string | string[] | undefined) => (typeof v === 'string' && v !== '' ? v : undefined);

type Original = { method: string; target: string } | 'conflict' | undefined;

/**
 * The client's original method and target. Envoy's HTTP ext_authz calls `<method> /authorize<path>`;
 * nginx sends X-Original-Method/-URI (as configured), Traefik X-Forwarded-Method/-Uri. A gateway
 * passes the client's own headers along, so a client could add the other pair to pick a cheaper
 * scope: both pairs present and different is refused.
 */
function originalRequest(request: FastifyRequest): Original {
  if (request.url.startsWith(`${PREFIX}/`)) return { method: request.method, target: request.url.slice(PREFIX.length) };
  const h = request.headers;
  const pairs = [
    [h['x-original-method'], h['x-original-uri']],
    [h['x-forwarded-method'], h['x-forwarded-uri']],
  ]
    .map(([m, u]) => ({ method: text(m), target: text(u) }))
    .filter((p): p is { method: string; target: string } => p.method !== undefined && p.target !== undefined);
  const [first, second] = pairs;
  if (first && second && (first.method.toUpperCase() !== second.method.toUpperCase() || first.target !== second.target))
    return 'conflict';
  return first;
}

const CONFLICT = badRequest('ORIGINAL_CONFLICT', 'X-Original-Method/-URI and X-Forwarded-Method/-Uri disagree');
/** Fastify could not read the URL of `/authorize<path>` itself (a malformed percent-encoding). */
const BAD_URL = badRequest(
  'TARGET_NOT_CANONICAL',
  'the request path holds a malformed percent-encoding',
  'target-not-canonical',
);

function httpsOptions(tls: ForwardAuthOptions['tls']) {
  if (!tls) return {};
  const ca = tls.ca ? readFileSync(tls.ca) : undefined;
  return {
    https: {
      cert: readFileSync(tls.cert),
      key: readFileSync(tls.key),
      ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
    },
  };
}

/** Forward auth for gateways, on its own port: 204 with the identity headers, or the table's problem+json deny. */
export async function buildForwardAuth(opts: ForwardAuthOptions): Promise<FastifyInstance> {
  const answer = (request: FastifyRequest, reply: FastifyReply, outcome: GatewayOutcome) => {
    opts.onOutcome?.(outcome);
    if (outcome.allowed) return reply.code(204).headers(identityHeaders(outcome.identity)).send();
    request.log.info({ reason: outcome.reason, keyId: outcome.identity?.keyId, ip: request.ip }, 'forward auth denied');
    return reply
      .code(outcome.answer.status)
      .headers({ ...outcome.answer.headers, 'x-otesse-deny-reason': outcome.reason })
      .send(outcome.answer.body);
  };
  const app = Fastify({
    loggerInstance: opts.logger.child({ transport: 'forward-auth' }),
    // One line per gateway subrequest would double the log of every request behind it; denials are logged below.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: opts.trustProxy ?? false,
    bodyLimit: 65_536,
    ...httpsOptions(opts.tls),
    frameworkErrors: (err, request, reply) => {
      if (err.code === 'FST_ERR_BAD_URL') void answer(request, reply, BAD_URL);
      else void sendProblem(reply, 400, 'bad request');
    },
  }) as unknown as FastifyInstance;
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 404, `no route ${request.method} ${scrub(request.url.split('?')[0] ?? '')}`),
  );
  // A gateway may forward the client's body (Envoy's with_request_body): it is never read.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    const original = originalRequest(request);
    if (original === 'conflict') return answer(request, reply, CONFLICT);
    const fixedScope = opts.trustScopeHeader ? text(request.headers['x-otesse-scope']) : undefined;
    const outcome = await checkGatewayRequest(opts.authenticate, opts.routes, {
      headers: request.headers,
      ip: request.ip,
      method: original?.method,
      target: original?.target,
      fixedScope,
    });
    return answer(request, reply, outcome);
  };
  app.all(PREFIX, authorize);
  app.all(`${PREFIX}/*`, authorize);
  return app;
}
