// Request targets a client may send to make a gateway's route map read one route while the service
// behind it serves another, for the forward auth and Envoy Check tests (design: client-cannot-choose).
import { request } from 'node:http';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP request: node:http sends the path as given (fetch would resolve `..` first). */
export function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += String(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Targets that would borrow another route's scope, or that the upstream may read otherwise: each is refused. */
export const NON_CANONICAL: Array<[string, string, string]> = [
  // [what, method, target] for a key holding webhooks:manage (or bookings:read for /v1/bookings/…).
  ['dot-dot segment', 'POST', '/v1/webhooks/../bookings'],
  ['percent-encoded dot-dot', 'POST', '/v1/webhooks/%2e%2e/bookings'],
  ['percent-encoded dot-dot, upper case', 'POST', '/v1/webhooks/%2E%2E/bookings'],
  ['half-encoded dot-dot', 'POST', '/v1/webhooks/.%2e/bookings'],
  ['dot-dot then an encoded slash', 'POST', '/v1/webhooks/..%2Fbookings'],
  ['dot-dot then an encoded slash, lower case', 'POST', '/v1/webhooks/..%2fbookings'],
  ['dot segment', 'POST', '/v1/webhooks/./x'],
  ['dot-dot with a path parameter', 'POST', '/v1/webhooks/..;/bookings'],
  ['encoded backslash', 'POST', '/v1/webhooks/..%5Cbookings'],
  ['raw backslash', 'POST', '/v1/webhooks/..\\bookings'],
  ['empty segment', 'POST', '/v1/webhooks//x'],
  ['encoded NUL', 'POST', '/v1/webhooks/x%00'],
  ['malformed percent-encoding', 'POST', '/v1/webhooks/%zz'],
  ['double-encoded dot-dot', 'POST', '/v1/webhooks/%252e%252e/bookings'],
  ['up two levels under a parameter route', 'GET', '/v1/bookings/..%2F..%2Fadmin'],
  ['a trailing slash (an empty last segment)', 'GET', '/v1/bookings/'],
];
