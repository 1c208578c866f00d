import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { AdminAuthenticator } from '../auth.js';
import * as S from '../schemas.js';

export interface SessionRoutesOptions {
  auth: AdminAuthenticator;
}

const Me = Type.Object({
  name: Type.String({ description: 'the audit actor: the token name, or `jwt:` and the JWT `sub`' }),
  role: Type.Union([Type.Literal('admin'), Type.Literal('viewer')]),
  accounts: Type.Union([Type.Array(Type.String()), Type.Null()], {
    description: 'the accounts it may touch; null: every account',
  }),
});

/** `GET /v1/me`: who the bearer is, so a front-end can show only what that admin may do. */
export async function sessionRoutes(app: FastifyInstance, { auth }: SessionRoutesOptions): Promise<void> {
  app.get(
    '/v1/me',
    {
      schema: {
        tags: ['session'],
        security: [{ bearer: [] }],
        summary: 'The admin behind the bearer token: name, role, accounts',
        response: { 200: Me, 401: S.Problem, 503: S.Problem },
      },
    },
    async (request) => {
      const admin = await auth.authenticate(request.headers.authorization);
      return { name: admin.name, role: admin.role, accounts: admin.accounts ? [...admin.accounts].sort() : null };
    },
  );
}
