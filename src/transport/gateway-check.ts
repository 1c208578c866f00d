import {
  denialResponse,
  keyFromHeaders,
  PROBLEM_BASE,
  PROBLEM_CONTENT_TYPE,
  type DenialResponse,
  type HeaderValue,
} from '@otesse/keys-client';
import type { Identity } from '../domain/decision.js';
import { AppError } from '../domain/errors.js';
import { checkRequestTarget } from '../domain/request-target.js';
import type { AuthResult } from '../service/authenticator.js';
import { STATUS } from './http/problem.js';
import type { RouteMap } from './route-map.js';

/** The one Authenticate use case, as the transports call it. */
export type Authenticate = (key: string, ip: string, scope: string) => AuthResult | Promise<AuthResult>;

export type GatewayOutcome =
  /** `keyHeaders`: where the key was, so a gateway can strip it before the upstream sees it. */
  | { allowed: true; identity: Identity; keyHeaders: string[] }
  | { allowed: false; reason: string; answer: DenialResponse; identity?: Identity | undefined };

const refuse = (reason: string, identity?: Identity, retryAfterMs?: number): GatewayOutcome => ({
  allowed: false,
  reason,
  answer: denialResponse(reason, retryAfterMs),
  identity,
});

/** A request the gateway (or its client) got wrong: 400 problem+json, said plainly. */
export function badRequest(reason: string, detail: string, slug = 'bad-request'): GatewayOutcome {
  return {
    allowed: false,
    reason,
    answer: {
      status: 400,
      headers: { 'content-type': PROBLEM_CONTENT_TYPE },
      body: { type: `${PROBLEM_BASE}${slug}`, title: 'Bad Request', status: 400, detail },
    },
  };
}

/** What a gateway says about the client's request. */
export interface GatewayRequest {
  headers: { authorization?: HeaderValue; 'x-api-key'?: HeaderValue };
  ip: string;
  /** The client's method and request target, when the gateway sends them. */
  method?: string | undefined;
  target?: string | undefined;
  /** A scope the operator's configuration sets (Envoy's context_extensions, a declared X-Otesse-Scope). */
  fixedScope?: string | undefined;
}

/**
 * The scope a request needs: the operator's fixed scope, else the route map's. A target not in its
 * one canonical form is refused first, however the scope is found (design: client-cannot-choose).
 */
function scopeOf(
  req: GatewayRequest,
  routes: RouteMap | undefined,
): { scope: string | undefined } | { refused: GatewayOutcome } {
  const checked = req.target === undefined ? undefined : checkRequestTarget(req.target);
  if (checked && !checked.ok) {
    return { refused: badRequest('TARGET_NOT_CANONICAL', checked.detail, 'target-not-canonical') };
  }
  if (req.fixedScope) return { scope: req.fixedScope };
  return { scope: checked && req.method !== undefined ? routes?.scopeFor(req.method, checked.path) : undefined };
}

/**
 * A gateway's question for forward auth and Envoy Check alike: check the target, find the scope
 * and the key, call Authenticate, and map the decision through the client package's one table.
 */
export async function checkGatewayRequest(
  authenticate: Authenticate,
  routes: RouteMap | undefined,
  req: GatewayRequest,
): Promise<GatewayOutcome> {
  const found = scopeOf(req, routes);
  if ('refused' in found) return found.refused;
  if (found.scope === undefined) return refuse('ROUTE_NOT_MAPPED');
  const key = keyFromHeaders(req.headers);
  if (key.kind === 'conflict') return refuse('KEY_CONFLICT');
  if (key.kind === 'missing') return refuse('KEY_MISSING');
  let result: AuthResult;
  try {
    result = await authenticate(key.key, req.ip, found.scope);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    // The key cannot be checked now (storage, load, argon2): the same 503 the admin API answers for it.
    if (STATUS[err.code] === 503) return refuse('SERVICE_UNAVAILABLE');
    // A gateway that sent a scope outside the catalog or an address that is none: its operator's bug.
    if (err.code === 'VALIDATION_FAILED') return badRequest('BAD_REQUEST', err.message);
    throw err;
  }
  const d = result.decision;
  if (d.allowed) return { allowed: true, identity: d.identity, keyHeaders: key.headers };
  return refuse(d.reason, d.identity, d.retryAfterMs);
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
