import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ACCOUNT_ID_PATTERN } from '../../../domain/key.js';
import type { Actor } from '../../../service/key-audit.js';
import { authorize, type Admin, type AdminAuthenticator } from '../auth.js';

export interface AccountScopeOptions {
  auth: AdminAuthenticator;
  /** Writes a refused attempt to the account's audit log (folded per window). */
  recordRefusal: (
    accountId: string,
    actor: Actor | undefined,
    sourceIp: string | null,
    detail: { status: number; method: string; route: string },
  ) => Promise<void>;
  /** Told of every refused admin attempt (metrics). */
  onRefused?: ((status: number) => void) | undefined;
}

const ACCOUNT_ID = new RegExp(ACCOUNT_ID_PATTERN);

/** The audit actor of a request that passed accountScope's authentication. */
export const who = (r: FastifyRequest) => (r as FastifyRequest & { actor: Actor }).actor;

/**
 * Every /v1/accounts/:accountId route is admin-only and account-scoped: the token is checked first
 * (401), then the parameters are validated (400: a key pasted as an account id never comes back
 * in an error), then the account is authorized (403); anything but a read needs the `admin` role.
 * Registered in each plugin that serves such routes (fastify hooks hold within their plugin).
 */
export function accountScope(app: FastifyInstance, { auth, recordRefusal, onRefused }: AccountScopeOptions): void {
  app.decorateRequest('actor', null);
  app.decorateRequest('admin', null);
  app.addHook('preValidation', async (request) => {
    const admin = await auth.authenticate(request.headers.authorization);
    (request as FastifyRequest & { admin: Admin }).admin = admin;
    (request as FastifyRequest & { actor: Actor }).actor = { name: admin.name, sourceIp: request.ip };
  });
  // Anything but a read needs the `admin` role.
  app.addHook('preHandler', async (request) => {
    authorize(
      (request as FastifyRequest & { admin: Admin }).admin,
      (request.params as { accountId: string }).accountId,
      request.method !== 'GET' && request.method !== 'HEAD',
    );
  });
  // Refused attempts are counted and, when the account id is a valid one, written to its audit log
  // (folded per window) before the answer leaves: whoever reads the log after a refusal sees it.
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode !== 401 && reply.statusCode !== 403) return payload;
    onRefused?.(reply.statusCode);
    const accountId = (request.params as { accountId?: string }).accountId;
    if (!accountId || !ACCOUNT_ID.test(accountId)) return payload;
    const actor = (request as FastifyRequest & { actor: Actor | null }).actor ?? undefined;
    await recordRefusal(accountId, actor, request.ip, {
      status: reply.statusCode,
      method: request.method,
      route: request.routeOptions.url ?? '',
    }).catch((err: unknown) => request.log.warn({ err }, 'refused attempt not written to the audit log'));
    return payload;
  });
}
