import { denialResponse, keyFromHeaders, type DenialResponse, type HeaderValue } from '@otesse/keys-client';
import type { Identity } from '../domain/decision.js';
import { AppError } from '../domain/errors.js';
import type { AuthResult } from '../service/authenticator.js';

/** The one Authenticate use case, as the transports call it. */
export type Authenticate = (key: string, ip: string, scope: string) => AuthResult | Promise<AuthResult>;

export type GatewayOutcome =
  /** `keyHeaders`: where the key was, so a gateway can strip it before the upstream sees it. */
  | { allowed: true; identity: Identity; keyHeaders: string[] }
  | { allowed: false; reason: string; answer: DenialResponse; identity?: Identity | undefined };

const refuse = (reason: string, identity?: Identity, retryAfterMs?: number): GatewayOutcome => (
  { allowed: false, reason, answer: denialResponse(reason, retryAfterMs), identity });

/**
 * A gateway's question for forward auth and Envoy Check alike: find the key in the request's
 * headers, call Authenticate, and map the decision through the client package's one table.
 */
export async function checkGatewayRequest(authenticate: Authenticate, req: {
  headers: { authorization?: HeaderValue; 'x-api-key'?: HeaderValue };
  ip: string;
  scope: string | undefined;
}): Promise<GatewayOutcome> {
  if (req.scope === undefined) return refuse('ROUTE_NOT_MAPPED');
  const found = keyFromHeaders(req.headers);
  if (found.kind === 'conflict') return refuse('KEY_CONFLICT');
  if (found.kind === 'missing') return refuse('KEY_MISSING');
  let result: AuthResult;
  try {
    result = await authenticate(found.key, req.ip, req.scope);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    if (err.code === 'STORAGE_UNAVAILABLE' || err.code === 'OVERLOADED') return refuse('SERVICE_UNAVAILABLE');
    if (err.code === 'VALIDATION_FAILED') return { allowed: false, reason: 'BAD_REQUEST', answer: badRequest(err.message) };
    throw err;
  }
  const d = result.decision;
  if (d.allowed) return { allowed: true, identity: d.identity, keyHeaders: found.headers };
  return refuse(d.reason, d.identity, d.retryAfterMs);
}

/** A gateway that sent a scope outside the catalog or an address that is none: its operator's bug, said plainly. */
function badRequest(detail: string): DenialResponse {
  const answer = denialResponse('KEY_CONFLICT');
  return { ...answer, body: { ...answer.body, type: 'https://docs.otesse.com/problems/bad-request', detail } };
}

/** The identity headers a gateway passes upstream on allow. */
export function identityHeaders(identity: Identity): Record<string, string> {
  return {
    'x-otesse-key-id': identity.keyId,
    'x-otesse-account-id': identity.accountId,
    'x-otesse-environment': identity.environment,
    'x-otesse-scopes': identity.scopes.join(','),
  };
}
