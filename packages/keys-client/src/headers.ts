/** Where an Otesse key travels, as the customer documentation says: `Authorization: Bearer` or `X-API-Key`. */

export type HeaderValue = string | string[] | undefined;

export type KeyFromHeaders =
  | { kind: 'key'; key: string; headers: ('authorization' | 'x-api-key')[] }
  | { kind: 'missing' }
  /** Both headers carry a key and they differ: which one the client meant is unknown. */
  | { kind: 'conflict' };

const one = (v: HeaderValue): string | undefined => (Array.isArray(v) ? v.join(', ') : v);

/** The token of a Bearer credential, or undefined for any other scheme or an empty one. */
export function bearerToken(authorization: HeaderValue): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(one(authorization) ?? '');
  return m?.[1];
}

/** Find the key in request headers (lower-case names, as Node gives them). */
export function keyFromHeaders(headers: { authorization?: HeaderValue; 'x-api-key'?: HeaderValue }): KeyFromHeaders {
  const bearer = bearerToken(headers.authorization);
  const apiKey = one(headers['x-api-key'])?.trim() || undefined;
  if (bearer !== undefined && apiKey !== undefined) {
    return bearer === apiKey
      ? { kind: 'key', key: bearer, headers: ['authorization', 'x-api-key'] }
      : { kind: 'conflict' };
  }
  if (bearer !== undefined) return { kind: 'key', key: bearer, headers: ['authorization'] };
  if (apiKey !== undefined) return { kind: 'key', key: apiKey, headers: ['x-api-key'] };
  return { kind: 'missing' };
}

/** pino redact paths for both key headers: give them to the logger of a service that uses the plugin. */
export const KEY_HEADER_REDACT_PATHS = ['req.headers.authorization', 'req.headers["x-api-key"]'];
