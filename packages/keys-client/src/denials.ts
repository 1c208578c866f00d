/**
 * The one table from a deny reason to what an HTTP caller answers. The Fastify plugin, the key
 * service's forward auth and its Envoy Check all read it, so a reason means the same status
 * everywhere.
 */

/** The contract's deny reasons (proto `DenyReason`), the three announced ones included. */
export const DENY_REASONS = [
  'KEY_MALFORMED',
  'KEY_UNKNOWN',
  'KEY_REVOKED',
  'KEY_EXPIRED',
  'IP_NOT_ALLOWED',
  'SCOPE_NOT_GRANTED',
  'TOO_MANY_FAILURES',
  'RATE_LIMITED',
  'USAGE_EXCEEDED',
  'KEY_DISABLED',
] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

/** Outcomes decided before (or instead of) the key service: no key (or two) sent, no scope for the route, no answer to be had. */
export type LocalOutcome = 'KEY_MISSING' | 'KEY_CONFLICT' | 'ROUTE_NOT_MAPPED' | 'SERVICE_UNAVAILABLE';

export interface Denial {
  status: 400 | 401 | 403 | 429 | 503;
  /** Last segment of the problem `type` URL. */
  slug: string;
  title: string;
  detail: string;
}

const unauthorized = (slug: string, detail: string): Denial => ({ status: 401, slug, title: 'Unauthorized', detail });
const forbidden = (slug: string, detail: string): Denial => ({ status: 403, slug, title: 'Forbidden', detail });
const tooMany = (slug: string, detail: string): Denial => ({ status: 429, slug, title: 'Too Many Requests', detail });

export const DENIALS: Readonly<Record<DenyReason | LocalOutcome, Denial>> = Object.freeze({
  KEY_MISSING: unauthorized(
    'key-missing',
    'No API key: send it as "Authorization: Bearer <key>" or "X-API-Key: <key>".',
  ),
  // Both headers carry a key and they differ: which one the client meant is unknown.
  KEY_CONFLICT: {
    status: 400,
    slug: 'key-conflict',
    title: 'Bad Request',
    detail: 'Authorization and X-API-Key carry different keys: send one.',
  },
  KEY_MALFORMED: unauthorized('key-malformed', 'The API key is not a well-formed Otesse key.'),
  KEY_UNKNOWN: unauthorized('key-unknown', 'The API key is not valid.'),
  KEY_REVOKED: unauthorized('key-revoked', 'The API key has been revoked.'),
  KEY_EXPIRED: unauthorized('key-expired', 'The API key has expired.'),
  KEY_DISABLED: unauthorized('key-disabled', 'The API key is disabled.'),
  IP_NOT_ALLOWED: forbidden('ip-not-allowed', 'The API key may not be used from this address.'),
  SCOPE_NOT_GRANTED: forbidden('scope-not-granted', 'The API key does not grant the scope this request needs.'),
  TOO_MANY_FAILURES: tooMany(
    'too-many-failures',
    'Too many failed attempts with this key from this address; retry later.',
  ),
  RATE_LIMITED: tooMany('rate-limited', 'The API key is over its rate limit; retry later.'),
  // 429 rather than 403: usage is refilled, so the same request can succeed later.
  USAGE_EXCEEDED: tooMany('usage-exceeded', 'The API key has used up its allowed requests.'),
  // A gateway asked about a route its route map does not name: nothing grants it.
  ROUTE_NOT_MAPPED: forbidden('route-not-mapped', 'No scope is configured for this route.'),
  SERVICE_UNAVAILABLE: {
    status: 503,
    slug: 'key-service-unavailable',
    title: 'Service Unavailable',
    detail: 'The API key cannot be checked right now; retry later.',
  },
});

/** A reason this version does not know (a newer service) is still a deny: answered like an unknown key. */
export function denialFor(reason: string): Denial {
  return (DENIALS as Record<string, Denial | undefined>)[reason] ?? DENIALS.KEY_UNKNOWN;
}

/** RFC 9457 problem details. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/** A whole HTTP answer for a denial: status, headers (challenge, retry hint) and problem+json body. */
export interface DenialResponse {
  status: number;
  headers: Record<string, string>;
  body: Problem;
}

export const PROBLEM_BASE = 'https://docs.otesse.com/problems/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The HTTP answer for a deny reason or local outcome (RFC 6750 challenge on 401). */
export function denialResponse(reason: string, retryAfterMs?: number): DenialResponse {
  const d = denialFor(reason);
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE };
  if (d.status === 401) {
    headers['www-authenticate'] =
      reason === 'KEY_MISSING' ? 'Bearer realm="otesse"' : 'Bearer realm="otesse", error="invalid_token"';
  }
  if (d.status === 503) headers['retry-after'] = '1';
  // Whole seconds, rounded up (RFC 9110): a limit's window end, or a quota's next refill.
  if (retryAfterMs !== undefined && retryAfterMs > 0) headers['retry-after'] = String(Math.ceil(retryAfterMs / 1000));
  return {
    status: d.status,
    headers,
    body: { type: `${PROBLEM_BASE}${d.slug}`, title: d.title, status: d.status, detail: d.detail },
  };
}
