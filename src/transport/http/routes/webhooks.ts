import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import type { WebhookService } from '../../../service/webhook-service.js';
import type { DeliveryRow, EndpointRow } from '../../../store/webhook-repository.js';
import * as S from '../schemas.js';
import { accountScope, who, type AccountScopeOptions } from './account-scope.js';

export interface WebhookRoutesOptions extends AccountScopeOptions {
  webhooks: WebhookService;
}

type Params = Static<typeof S.EndpointParams>;
const problems = { 400: S.Problem, 401: S.Problem, 403: S.Problem, 404: S.Problem, 409: S.Problem, 503: S.Problem };
const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The endpoint as the API shows it: never its secrets. */
function endpointResource(e: EndpointRow): Static<typeof S.Endpoint> {
  return {
    id: e.id,
    url: e.url,
    events: e.events,
    description: e.description,
    enabled: e.enabled,
    disabled_reason: e.disabled_reason as 'gone' | 'failing' | null,
    failing_since: iso(e.failing_since),
    previous_secret_until:
      e.previous_secret_until && e.previous_secret_until.getTime() > Date.now() ? iso(e.previous_secret_until) : null,
    created_at: e.created_at.toISOString(),
    updated_at: e.updated_at.toISOString(),
  };
}

function deliveryResource(d: DeliveryRow) {
  return {
    id: d.id,
    event_id: d.event_id,
    event_type: d.event_type,
    state: d.state,
    attempts: d.attempts,
    next_attempt_at: iso(d.next_attempt_at),
    created_at: d.created_at.toISOString(),
    attempt_log: d.attempt_log.map((a) => ({ ...a, at: a.at.toISOString() })),
  };
}

/** An account's webhook endpoints and their deliveries (admin-only, account-scoped, audited; `viewer` reads). */
export async function webhookRoutes(app: FastifyInstance, opts: WebhookRoutesOptions): Promise<void> {
  const { webhooks } = opts;
  accountScope(app, opts);
  const base = '/v1/accounts/:accountId/webhook-endpoints';
  const one = `${base}/:endpointId`;
  const tags = ['webhooks'];
  const security = [{ bearer: [] }];

  app.post<{ Params: Static<typeof S.AccountParams>; Body: S.EndpointBody }>(
    base,
    {
      schema: {
        tags,
        security,
        summary: 'Create a webhook endpoint (its signing secret is in this response only)',
        params: S.AccountParams,
        body: S.EndpointBody,
        response: { 201: S.EndpointWithSecret, ...problems },
      },
    },
    async (request, reply) => {
      const { row, secret } = await webhooks.create(who(request), request.params.accountId, request.body);
      return reply.code(201).send({ ...endpointResource(row), secret });
    },
  );

  app.get<{ Params: Static<typeof S.AccountParams> }>(
    base,
    {
      schema: {
        tags,
        security,
        summary: 'List webhook endpoints',
        params: S.AccountParams,
        response: { 200: S.EndpointList, ...problems },
      },
    },
    async (request) => ({ data: (await webhooks.list(request.params.accountId)).map(endpointResource) }),
  );

  app.get<{ Params: Params }>(
    one,
    {
      schema: {
        tags,
        security,
        summary: 'Get a webhook endpoint',
        params: S.EndpointParams,
        response: { 200: S.Endpoint, ...problems },
      },
    },
    async (request) => endpointResource(await webhooks.get(request.params.accountId, request.params.endpointId)),
  );

  app.patch<{ Params: Params; Body: S.EndpointPatchBody }>(
    one,
    {
      schema: {
        tags,
        security,
        summary: 'Change the URL, events, description or enabled',
        params: S.EndpointParams,
        body: S.EndpointPatchBody,
        response: { 200: S.Endpoint, ...problems },
      },
    },
    async (request) =>
      endpointResource(
        await webhooks.update(who(request), request.params.accountId, request.params.endpointId, request.body),
      ),
  );

  app.delete<{ Params: Params }>(
    one,
    {
      schema: {
        tags,
        security,
        summary: 'Delete a webhook endpoint (its pending deliveries are dropped)',
        params: S.EndpointParams,
        response: problems,
      },
    },
    async (request, reply) => {
      await webhooks.delete(who(request), request.params.accountId, request.params.endpointId);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: Params }>(
    `${one}/rotate-secret`,
    {
      schema: {
        tags,
        security,
        summary: 'A new signing secret (in this response only); the old one keeps signing beside it for 24 hours',
        params: S.EndpointParams,
        response: { 200: S.EndpointWithSecret, ...problems },
      },
    },
    async (request) => {
      const { row, secret } = await webhooks.rotateSecret(
        who(request),
        request.params.accountId,
        request.params.endpointId,
      );
      return { ...endpointResource(row), secret };
    },
  );

  app.post<{ Params: Params }>(
    `${one}/test`,
    {
      schema: {
        tags,
        security,
        summary: 'Send a webhook.test event to this endpoint',
        params: S.EndpointParams,
        response: { 202: S.TestSent, ...problems },
      },
    },
    async (request, reply) => {
      const { eventId } = await webhooks.test(who(request), request.params.accountId, request.params.endpointId);
      return reply.code(202).send({ event_id: eventId });
    },
  );

  app.get<{ Params: Params; Querystring: Static<typeof S.PageQuery> }>(
    `${one}/deliveries`,
    {
      schema: {
        tags,
        security,
        summary: 'Deliveries to this endpoint, newest first, each with its attempts',
        params: S.EndpointParams,
        querystring: S.PageQuery,
        response: { 200: S.DeliveryPage, ...problems },
      },
    },
    async (request) => {
      const page = await webhooks.deliveries(request.params.accountId, request.params.endpointId, {
        limit: request.query.limit,
        cursor: request.query.cursor,
      });
      return { data: page.data.map(deliveryResource), next_cursor: page.nextCursor };
    },
  );

  app.post<{ Params: Static<typeof S.DeliveryParams> }>(
    `${one}/deliveries/:deliveryId/retry`,
    {
      schema: {
        tags,
        security,
        summary: 'Attempt a delivery again now (the same webhook-id)',
        params: S.DeliveryParams,
        response: { 202: { type: 'null' }, ...problems },
      },
    },
    async (request, reply) => {
      const p = request.params;
      await webhooks.retry(who(request), p.accountId, p.endpointId, p.deliveryId);
      return reply.code(202).send();
    },
  );
}
