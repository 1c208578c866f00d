import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { parseAddress } from '../../domain/ip.js';
import { sendProblem } from './problem.js';

export interface AdminRateLimitOptions {
  /** Admin requests per minute per bearer token (whatever it is: a wrong one is limited too). */
  perToken: number;
  /** Admin requests per minute per source address (an IPv6 /64 counts as one address). */
  perAddress: number;
  /** Shared by replicas when set (the limit is for the fleet, not per replica). */
  redis?: Redis | undefined;
  prefix: string;
}

/** The token's digest, never the token, names its bucket (Redis keys are not secret). */
const tokenKey = (header: string) => createHash('sha256').update(header).digest('base64url').slice(0, 22);

/**
 * The source address's bucket: an IPv6 host usually holds a whole /64, so the /64 is the unit
 * (a fresh address per request must not mean a fresh budget); IPv4-mapped IPv6 is IPv4.
 */
export function addressKey(ip: string): string {
  const address = parseAddress(ip);
  if (!address) return `ip:${ip}`;
  if (address.kind() === 'ipv4') return `ip:${address.toString()}`;
  return `ip6:${address.toNormalizedString().split(':').slice(0, 4).join(':')}::/64`;
}

/**
 * Whether a request is limited: every route under /v1, judged on the route the router matched
 * (never the raw URL: the router decodes /v1/%61ccounts/... into /v1/accounts/...). Health,
 * readiness, metrics, the OpenAPI description and the console's files are not.
 */
const limited = (request: FastifyRequest) => request.routeOptions.url?.startsWith('/v1/') === true;

/**
 * Rate limits on the admin API, per token and per source address, with @fastify/rate-limit's
 * stores (Redis when configured). Its own hook runs both limits: the plugin's hook runs one per
 * request. A request without a token is limited by its address only (one shared "no token"
 * bucket would let one caller exhaust it for everybody). A fault of the store lets the request
 * through (`skipOnError`).
 */
async function adminRateLimit(app: FastifyInstance, opts: AdminRateLimitOptions): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    skipOnError: true,
    ...(opts.redis ? { redis: opts.redis, nameSpace: `${opts.prefix}rl:` } : {}),
  });
  const perAddress = app.createRateLimit({
    max: opts.perAddress,
    timeWindow: 60_000,
    keyGenerator: (req) => addressKey(req.ip),
  });
  const perToken = app.createRateLimit({
    max: opts.perToken,
    timeWindow: 60_000,
    keyGenerator: (req) => `token:${tokenKey(req.headers.authorization ?? '')}`,
  });
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!limited(request)) return undefined;
    const limits = request.headers.authorization === undefined ? [perAddress] : [perAddress, perToken];
    for (const limit of limits) {
      const r = await limit(request);
      if (!r.isAllowed && r.isExceeded) {
        reply.header('retry-after', String(r.ttlInSeconds));
        return sendProblem(reply, 429, `too many admin requests; retry in ${r.ttlInSeconds} s`);
      }
    }
    return undefined;
  });
}

export default fp(adminRateLimit, { name: 'otesse-admin-rate-limit', fastify: '5.x' });
