import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import type { ActivityService } from '../../../service/activity-service.js';
import type { KeyService } from '../../../service/key-service.js';
import type { AdminAuthenticator } from '../auth.js';
import { accountScope, who } from './account-scope.js';
import * as S from '../schemas.js';
import { auditEntry, keyResource, propagationView } from '../views.js';

export interface KeyRoutesOptions {
  keys: KeyService;
  activity: ActivityService;
  auth: AdminAuthenticator;
  /** Told of every refused admin attempt (metrics). */
  onRefused?: ((status: number) => void) | undefined;
}

type Params = Static<typeof S.KeyParams>;
const problems = { 400: S.Problem, 401: S.Problem, 403: S.Problem, 404: S.Problem, 409: S.Problem, 503: S.Problem };

/** The keys of an account, their activity and the account's audit log (admin-only, account-scoped: see accountScope). */
export async function keyRoutes(
  app: FastifyInstance,
  { keys, activity, auth, onRefused }: KeyRoutesOptions,
): Promise<void> {
  const base = '/v1/accounts/:accountId';
  accountScope(app, { auth, recordRefusal: (...a) => keys.recordRefusal(...a), onRefused });
  // Every field of these bodies is optional: a POST with no body at all means `{}`.
  const optionalBody = async (request: FastifyRequest) => {
    request.body ??= {};
  };
  const tags = ['keys'];
  const security = [{ bearer: [] }];

  app.post<{ Params: Static<typeof S.AccountParams>; Body: S.CreateBody }>(
    `${base}/keys`,
    {
      schema: {
        tags,
        security,
        summary: 'Create a key (the secret is in this response only)',
        params: S.AccountParams,
        body: S.CreateBody,
        response: { 201: S.IssuedKey, ...problems },
      },
    },
    async (request, reply) => {
      const { row, key } = await keys.create(who(request), request.params.accountId, request.body);
      return reply.code(201).send({ ...keyResource(row), secret: key });
    },
  );

  app.get<{ Params: Static<typeof S.AccountParams>; Querystring: S.ListQuery }>(
    `${base}/keys`,
    {
      schema: {
        tags,
        security,
        summary: 'List keys',
        params: S.AccountParams,
        querystring: S.ListQuery,
        response: { 200: S.KeyPage, ...problems },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await keys.list(
        request.params.accountId,
        { limit: q.limit, environment: q.environment, status: q.status, rotation: q.rotation, inGrace: q.in_grace },
        q.cursor,
      );
      return { data: page.data.map((r) => keyResource(r)), next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: Params }>(
    `${base}/keys/:keyId`,
    {
      schema: {
        tags,
        security,
        summary: 'Get a key',
        params: S.KeyParams,
        response: { 200: S.KeyResource, ...problems },
      },
    },
    async (request) => keyResource(await keys.get(request.params.accountId, request.params.keyId)),
  );

  app.patch<{ Params: Params; Body: S.PatchBody }>(
    `${base}/keys/:keyId`,
    {
      schema: {
        tags,
        security,
        summary:
          'Change label, scopes, allowed_ips, expires_at, enabled, rate_limits, remaining_uses, refill or metadata (effective on every replica at once)',
        params: S.KeyParams,
        body: S.PatchBody,
        response: { 200: S.KeyWithPropagation, ...problems },
      },
    },
    async (request) => {
      const { row, propagation } = await keys.update(
        who(request),
        request.params.accountId,
        request.params.keyId,
        request.body,
      );
      return { ...keyResource(row), propagation: propagationView(propagation) };
    },
  );

  app.post<{ Params: Params; Body: Static<typeof S.RevokeBody> | undefined }>(
    `${base}/keys/:keyId/revoke`,
    {
      preValidation: optionalBody,
      schema: {
        tags,
        security,
        summary: 'Revoke a key (idempotent; denied everywhere once this returns)',
        params: S.KeyParams,
        body: S.RevokeBody,
        response: { 200: S.KeyWithPropagation, ...problems },
      },
    },
    async (request) => {
      const { row, propagation } = await keys.revoke(
        who(request),
        request.params.accountId,
        request.params.keyId,
        request.body?.reason,
      );
      return { ...keyResource(row), propagation: propagationView(propagation) };
    },
  );

  app.post<{ Params: Params; Body: Static<typeof S.RotateBody> | undefined }>(
    `${base}/keys/:keyId/rotate`,
    {
      preValidation: optionalBody,
      schema: {
        tags,
        security,
        summary: 'Rotate: a new key; the old one works for the grace period',
        params: S.KeyParams,
        body: S.RotateBody,
        response: { 201: S.RotatedKey, ...problems },
      },
    },
    async (request, reply) => {
      const out = await keys.rotate(
        who(request),
        request.params.accountId,
        request.params.keyId,
        request.body?.expire_previous_in,
      );
      return reply.code(201).send({
        ...keyResource(out.row),
        secret: out.key,
        previous: { id: out.previous.id, expires_at: out.previous.expires_at?.toISOString() ?? null },
        propagation: propagationView(out.propagation),
      });
    },
  );

  app.post<{ Params: Static<typeof S.AccountParams>; Body: Static<typeof S.RevokeAllBody> | undefined }>(
    `${base}/keys/revoke-all`,
    {
      preValidation: optionalBody,
      schema: {
        tags,
        security,
        summary: 'Emergency: revoke every active key of the account',
        params: S.AccountParams,
        body: S.RevokeAllBody,
      },
    },
    async (request) => {
      const out = await keys.revokeAll(
        who(request),
        request.params.accountId,
        request.body?.environment,
        request.body?.reason,
      );
      return { revoked: out.revoked, propagation: propagationView(out.propagation) };
    },
  );

  app.get<{ Params: Params; Querystring: Static<typeof S.WindowQuery> }>(
    `${base}/keys/:keyId/activity`,
    {
      schema: {
        tags,
        security,
        summary: 'The key’s activity: usage per hour, addresses, denials, alerts, admin events',
        params: S.KeyParams,
        querystring: S.WindowQuery,
        response: { 200: S.ActivityBody, ...problems },
      },
    },
    async (request) => activity.activity(request.params.accountId, request.params.keyId, request.query),
  );

  app.get<{ Params: Static<typeof S.AccountParams>; Querystring: Static<typeof S.PageQuery> }>(
    `${base}/audit-log`,
    {
      schema: {
        tags: ['audit'],
        security,
        summary: 'Admin actions on the account’s keys',
        params: S.AccountParams,
        querystring: S.PageQuery,
        response: { 200: S.AuditPage, ...problems },
      },
    },
    async (request) => {
      const page = await keys.auditLog(request.params.accountId, {
        limit: request.query.limit,
        cursor: request.query.cursor,
      });
      return { data: page.data.map(auditEntry), next_cursor: page.nextCursor };
    },
  );
}
