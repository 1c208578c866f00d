import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { SCOPES } from '../../../domain/scopes.js';
import { sendProblem } from '../problem.js';
import * as S from '../schemas.js';

export interface SystemRoutesOptions {
  /** Why the service is not ready, or an empty list when it is. */
  readiness(): Promise<string[]>;
  metrics?: { contentType: string; render(): Promise<string> } | undefined;
}

/** Health, readiness, the scope catalog and metrics: no admin token needed. */
export async function systemRoutes(app: FastifyInstance, opts: SystemRoutesOptions): Promise<void> {
  app.get('/v1/scopes', {
    schema: { tags: ['scopes'], summary: 'The scope catalog', response: { 200: Type.Object({ data: Type.Array(S.Scope) }) } },
  }, async () => ({ data: [...SCOPES] }));

  app.get('/healthz', { schema: { tags: ['health'], summary: 'Alive', response: { 200: Type.Object({ status: Type.String() }) } } },
    async () => ({ status: 'ok' }));

  app.get('/readyz', {
    schema: { tags: ['health'], summary: 'Ready: storage, cache and subscription reachable',
      response: { 200: Type.Object({ status: Type.String() }), 503: S.Problem } },
  }, async (_request, reply) => {
    const problems = await opts.readiness();
    if (problems.length === 0) return { status: 'ready' };
    return sendProblem(reply, 503, `not ready: ${problems.join(', ')}`);
  });

  if (opts.metrics) {
    const metrics = opts.metrics;
    app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics (text exposition format)' } }, async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()));
  }
}
