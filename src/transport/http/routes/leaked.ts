import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { TEXT_LIMITS } from '../../../domain/text.js';
import { MAX_UNVOUCHED_VERIFICATIONS, type LeakReportService } from '../../../service/leak-report-service.js';
import { authorize, type Admin, type AdminAuthenticator } from '../auth.js';
import * as S from '../schemas.js';

export interface LeakedRoutesOptions {
  leaks: LeakReportService;
  auth: AdminAuthenticator;
}

const LeakedBody = Type.Object(
  {
    keys: Type.Array(Type.String({ maxLength: 1024 }), {
      minItems: 1,
      maxItems: 1000,
      description: 'the tokens found (any text: only real keys of this account count)',
    }),
    source: S.Readable(
      TEXT_LIMITS.leakSource,
      'what found them (the scanner, or "incident-1234"); goes into the revoke reason',
    ),
    url: Type.Optional(S.Readable(TEXT_LIMITS.leakUrl, 'where they were published')),
  },
  { additionalProperties: false },
);
const LeakedResult = Type.Object({
  token_hash: Type.String({ description: 'SHA-256 hex of the token as sent (never the token)' }),
  token_type: Type.String({ description: 'always otesse_api_key' }),
  label: Type.Union(
    [
      Type.Unsafe<'true_positive' | 'false_positive'>({ type: 'string', enum: ['true_positive', 'false_positive'] }),
      Type.Null(),
    ],
    {
      description:
        'true_positive: a key of this account, now revoked or revoked before; null: not checked (see outcome)',
    },
  ),
  key_id: Type.Union([Type.String(), Type.Null()], { description: 'the key, for a true positive' }),
  outcome: Type.Union(
    [Type.Literal('revoked'), Type.Literal('already_revoked'), Type.Literal('not_checked'), Type.Null()],
    {
      description:
        `not_checked: the token names a key made before check values existed and the report already spent its ` +
        `${MAX_UNVOUCHED_VERIFICATIONS} argon2 verifications on such keys, or its key's stored hash could not be verified (a fault of the service); ` +
        'nothing was decided or changed: report it again',
    },
  ),
});
const LeakedResponse = Type.Object({
  results: Type.Array(LeakedResult, { description: 'one per entry of keys, in order' }),
});
const problems = { 400: S.Problem, 401: S.Problem, 403: S.Problem, 413: S.Problem, 503: S.Problem };
/** 1,000 keys of ~70 characters do not fit the admin API's default body limit. */
const BODY_LIMIT = 262_144;

/** `POST /v1/accounts/:accountId/keys/leaked`: other scanners and incident responders report keys of an account. */
export async function leakedKeyRoutes(app: FastifyInstance, { leaks, auth }: LeakedRoutesOptions): Promise<void> {
  app.post<{ Params: Static<typeof S.AccountParams>; Body: Static<typeof LeakedBody> }>(
    '/v1/accounts/:accountId/keys/leaked',
    {
      bodyLimit: BODY_LIMIT,
      // 401 first, then the parameters and body are validated, then the account and the role are authorized.
      preValidation: async (request) => {
        (request as typeof request & { leakAdmin?: Admin }).leakAdmin = await auth.authenticate(
          request.headers.authorization,
        );
      },
      preHandler: async (request) => {
        authorize((request as typeof request & { leakAdmin: Admin }).leakAdmin, request.params.accountId, true);
      },
      schema: {
        tags: ['keys'],
        security: [{ bearer: [] }],
        params: S.AccountParams,
        body: LeakedBody,
        response: { 200: LeakedResponse, ...problems },
        summary:
          'Report leaked keys: each real key of this account is verified, revoked everywhere (reason "leaked: <source> <url>") and marked leaked in its activity',
      },
    },
    async (request) => {
      const admin = (request as typeof request & { leakAdmin: Admin }).leakAdmin;
      const { keys, source, url } = request.body;
      const verdicts = await leaks.report(
        { name: admin.name, sourceIp: request.ip },
        keys.map((token) => ({ token, source, url })),
        { accountId: request.params.accountId, channel: source },
      );
      return {
        results: verdicts.map((v) => ({
          token_hash: v.tokenHash,
          token_type: 'otesse_api_key',
          label: v.label,
          key_id: v.keyId,
          outcome: v.outcome,
        })),
      };
    },
  );
}
