import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import { scrub } from '../../observability/logger.js';
import { createAjv } from '../../validation.js';
import { consolePlugin } from './console.js';
import { errorHandler, sendProblem } from './problem.js';
import adminRateLimit, { type AdminRateLimitOptions } from './rate-limit.js';
import { keyRoutes, type KeyRoutesOptions } from './routes/keys.js';
import { sessionRoutes } from './routes/session.js';
import { systemRoutes, type SystemRoutesOptions } from './routes/system.js';

export interface HttpAppOptions extends KeyRoutesOptions, SystemRoutesOptions {
  logger: Logger;
  bodyLimit: number;
  /** Proxies (addresses, CIDRs) whose X-Forwarded-For is believed for the source address; none by default. */
  trustProxy?: readonly string[] | undefined;
  rateLimit?: AdminRateLimitOptions | undefined;
  tls?: { cert: string; key: string } | undefined;
  onResponse?: (route: string, method: string, status: number, seconds: number) => void;
  /** Swagger UI at /docs (the OpenAPI description at /openapi.json is served either way); default on. */
  docs?: boolean | undefined;
  /** The built dashboard (index.html and assets), served at /console/; unset or missing: no dashboard. */
  consoleDir?: string | undefined;
  /** CONSOLE_HOST_ORIGINS, told to the dashboard page. */
  consoleHostOrigins?: readonly string[] | undefined;
}

/**
 * Bodies are validated as sent (no type coercion: `null` is not 0); querystrings and params are
 * text, so there numbers and booleans are coerced from their string form. Instances of this app's
 * own (not the shared checkers'): two apps in one process may compile the same schemas.
 */
function validators() {
  return { body: createAjv('json'), text: createAjv('text') };
}

/** The admin API: Fastify with schemas on every route, problem+json errors and the OpenAPI description. */
export async function buildHttpApp(opts: HttpAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimit,
    // A caller's x-request-id is kept only when it looks like an id (it lands in every log line).
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(given) && !/otesse_(live|test)_sk_/.test(given)
        ? given
        : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: 'request_id' }),
    trustProxy: opts.trustProxy && opts.trustProxy.length > 0 ? [...opts.trustProxy] : false,
    ...(opts.tls ? { https: { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) } } : {}),
  }) as unknown as FastifyInstance;

  const ajv = validators();
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? ajv.body : ajv.text).compile(schema));
  // JSON only: any other body is 415 (Fastify answers that for types without a parser).
  app.removeContentTypeParser(['text/plain']);
  app.setErrorHandler(errorHandler);
  // The path is the client's text (a key pasted in a URL must not come back in an error).
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 404, `no route ${request.method} ${scrub(request.url.split('?')[0] ?? '')}`),
  );
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  if (opts.onResponse) {
    const observe = opts.onResponse;
    app.addHook('onResponse', async (request, reply) => {
      observe(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
    });
  }

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Otesse key service admin API',
        version: '1.0.0',
        description: 'Issue, inspect, rotate and revoke Otesse API keys.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'an ADMIN_TOKENS token, or a JWT from the admin identity provider (ADMIN_JWKS_URL)',
          },
        },
      },
    },
  });
  if (opts.docs ?? true) await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  if (opts.rateLimit) await app.register(adminRateLimit, opts.rateLimit);
  await app.register(systemRoutes, { readiness: opts.readiness, metrics: opts.metrics });
  await app.register(keyRoutes, {
    keys: opts.keys,
    activity: opts.activity,
    auth: opts.auth,
    onRefused: opts.onRefused,
  });
  await app.register(sessionRoutes, { auth: opts.auth });
  if (opts.consoleDir && existsSync(join(opts.consoleDir, 'index.html')))
    await app.register(consolePlugin, { dir: opts.consoleDir, hostOrigins: opts.consoleHostOrigins });
  else if (opts.consoleDir)
    opts.logger.warn({ dir: opts.consoleDir }, 'the dashboard is not built (npm run build): /console is off');
  return app;
}
