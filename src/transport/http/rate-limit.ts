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
  /** A shared count Redis did not answer: this request was counted by this replica alone. */
  onStoreFault?: ((err: unknown) => void) | undefined;
}

type Limit = ReturnType<FastifyInstance['createRateLimit']>;
interface Limits {
  perAddress: Limit;
  perToken: Limit;
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

/** The two limits over one store, made in a scope of their own (each store registers the plugin once). */
async function limitsIn(app: FastifyInstance, opts: AdminRateLimitOptions, shared: boolean): Promise<Limits> {
  let made: Limits | undefined;
  await app.register(async (scope) => {
    await scope.register(rateLimit, {
      global: false,
      // Faults of the shared store reach the hook below, which counts them and lets this replica's count decide.
      skipOnError: false,
      ...(shared && opts.redis ? { redis: opts.redis, nameSpace: `${opts.prefix}rl:` } : {}),
    });
    made = {
      perAddress: scope.createRateLimit({
        max: opts.perAddress,
        timeWindow: 60_000,
        keyGenerator: (req) => addressKey(req.ip),
      }),
      perToken: scope.createRateLimit({
        max: opts.perToken,
        timeWindow: 60_000,
        keyGenerator: (req) => `token:${tokenKey(req.headers.authorization ?? '')}`,
      }),
    };
  });
  if (!made) throw new Error('the rate-limit scope did not load');
  return made;
}

/**
 * Rate limits on the admin API, per token and per source address, with @fastify/rate-limit's
 * stores. Each replica counts every limit in memory, and with Redis the fleet shares a second
 * count: a request is refused by either. So one replica never serves more than the limit, and
 * when Redis does not answer (a fault, or slower than its command timeout) the fleet allows at
 * most replicas × limit, never an unlimited admin API, and never refuses because of Redis.
 * A request without a token is limited by its address only (one shared "no token" bucket would
 * let one caller exhaust it for everybody).
 */
async function adminRateLimit(app: FastifyInstance, opts: AdminRateLimitOptions): Promise<void> {
  const replica = await limitsIn(app, opts, false);
  const fleet = opts.redis ? await limitsIn(app, opts, true) : undefined;
  const refuse = (reply: FastifyReply, ttlInSeconds: number) => {
    reply.header('retry-after', String(ttlInSeconds));
    return sendProblem(reply, 429, `too many admin requests; retry in ${ttlInSeconds} s`);
  };
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!limited(request)) return undefined;
    const names =
      request.headers.authorization === undefined ? (['perAddress'] as const) : (['perAddress', 'perToken'] as const);
    for (const name of names) {
      const here = await replica[name](request);
      if (!here.isAllowed && here.isExceeded) return refuse(reply, here.ttlInSeconds);
      if (!fleet) continue;
      try {
        const shared = await fleet[name](request);
        if (!shared.isAllowed && shared.isExceeded) return refuse(reply, shared.ttlInSeconds);
      } catch (err) {
        opts.onStoreFault?.(err);
      }
    }
    return undefined;
  });
}

export default fp(adminRateLimit, { name: 'otesse-admin-rate-limit', fastify: '5.x' });
