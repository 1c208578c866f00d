import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { sendProblem } from '../http/problem.js';

export interface MetricsServerOptions {
  logger: Logger;
  metrics: { contentType: string; render(): Promise<string> };
}

/**
 * `/metrics` on a listener of its own (METRICS_PORT), so a NetworkPolicy can open it to the
 * monitoring namespace without opening the admin API. Scrapes are not logged (one line every
 * few seconds per scraper says nothing).
 */
export async function buildMetricsServer(opts: MetricsServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  app.get('/metrics', async (_request, reply) =>
    reply.type(opts.metrics.contentType).send(await opts.metrics.render()),
  );
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, 404, 'this listener serves only GET /metrics'));
  return app;
}
