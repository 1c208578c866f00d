import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { sendProblem } from './problem.js';

export interface AdminRateLimitOptions {
  /** Admin requests per minute per bearer token (whatever it is: a wrong one is limited too). */
  perToken: number;
  /** Admin requests per minute per source address. */
  perAddress: number;
  /** Shared by replicas when set (the limit is for the fleet, not per replica). */
  redis?: Redis | undefined;
  prefix: string;
}

/** The token's digest, never the token, names its bucket (Redis keys are not secret). */
const tokenKey = (header: string | undefined) => createHash('sha256').update(header ?? '').digest('base64url').slice(0, 22);

/**
 * Rate limits on the admin API (/v1/accounts/...), per token and per source address, with
 * @fastify/rate-limit's stores (Redis when configured). Its own hook runs both limits: the plugin's
 * hook runs one per request. A fault of the store lets the request through (`skipOnError`).
 */
async function adminRateLimit(app: FastifyInstance, opts: AdminRateLimitOptions): Promise<void> {
  await app.register(rateLimit, { global: false, skipOnError: true, ...(opts.redis ? { redis: opts.redis, nameSpace: `${opts.prefix}rl:` } : {}) });
  const limits = [
    app.createRateLimit({ max: opts.perAddress, timeWindow: 60_000, keyGenerator: (req) => `ip:${req.ip}` }),
    app.createRateLimit({ max: opts.perToken, timeWindow: 60_000, keyGenerator: (req) => `token:${tokenKey(req.headers.authorization)}` }),
  ];
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.url.startsWith('/v1/accounts/')) return undefined;
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
