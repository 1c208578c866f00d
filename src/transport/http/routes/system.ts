import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { SCOPES } from '../../../domain/scopes.js';
import { sendProblem } from '../problem.js';
import * as S from '../schemas.js';

export interface SystemRoutesOptions {
  /** Ready once started and caught up; shared faults listed in `degraded` (design: readiness-is-local). */
  readiness: () => Promise<{ ready: boolean; degraded: string[] }>;
  metrics?: { contentType: string; render(): Promise<string> } | undefined;
}

/** Health, readiness, the scope catalog and metrics: no admin token needed. */
export async function systemRoutes(app: FastifyInstance, opts: SystemRoutesOptions): Promise<void> {
  app.get(
    '/v1/scopes',
    {
      schema: {
        tags: ['scopes'],
        summary: 'The scope catalog',
        response: { 200: Type.Object({ data: Type.Array(S.Scope) }) },
      },
    },
    async () => ({ data: [...SCOPES] }),
  );

  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'Alive', response: { 200: Type.Object({ status: Type.String() }) } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Ready: started, subscribed and caught up once',
        description:
          'A fault every replica shares (Redis down, PostgreSQL slow) does not make a replica unready: it is named in ' +
          '`degraded` while the replica keeps answering correctly (design: readiness-is-local). 503 only before the first catch-up.',
        response: {
          200: Type.Object({
            status: Type.Union([Type.Literal('ready'), Type.Literal('degraded')]),
            degraded: Type.Array(Type.String()),
          }),
          503: S.Problem,
        },
      },
    },
    async (_request, reply) => {
      const { ready, degraded } = await opts.readiness();
      if (!ready)
        return sendProblem(
          reply,
          503,
          `not ready: starting (not yet subscribed and caught up)${degraded.length ? `; ${degraded.join('; ')}` : ''}`,
        );
      return { status: degraded.length === 0 ? 'ready' : 'degraded', degraded };
    },
  );

  if (opts.metrics) {
    const metrics = opts.metrics;
    app.get(
      '/metrics',
      { schema: { tags: ['health'], summary: 'Prometheus metrics (text exposition format)' } },
      async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
    );
  }
}
