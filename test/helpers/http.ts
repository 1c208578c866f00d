import { ADMIN_TOKEN, type TestApp } from './app.js';

/** The assertions used here (a tap Test has them). */
interface Asserts {
  equal(...args: any[]): unknown;
  ok(...args: any[]): unknown;
  match(...args: any[]): unknown;
  same(...args: any[]): unknown;
}

export interface ApiResponse {
  status: number;
  body: any;
  headers: Headers;
}

/**
 * Assert an RFC 9457 answer: the status, application/problem+json, type/title/status/detail,
 * `errors` [{path, message}] when `paths` is given (each path must be listed), and nothing else (no stack).
 */
export function assertProblem(t: Asserts, res: ApiResponse, status: number, paths?: string[]): void {
  t.equal(res.status, status, `status ${status}: ${JSON.stringify(res.body)}`);
  t.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, 'problem+json');
  const body = (res.body ?? {}) as Record<string, unknown>;
  t.equal(typeof body.type, 'string', 'type');
  t.equal(typeof body.title, 'string', 'title');
  t.equal(body.status, status, 'status in the body');
  t.ok(typeof body.detail === 'string' && body.detail.length > 0, 'detail');
  const extra = Object.keys(body).filter((k) => !['type', 'title', 'status', 'detail', 'errors'].includes(k));
  t.same(extra, [], 'no other member (no stack)');
  if (paths) {
    const errors = body.errors as { path: unknown; message: unknown }[] | undefined;
    t.ok(Array.isArray(errors) && errors.length > 0, 'errors[] for a validation failure');
    for (const e of errors ?? [])
      t.ok(
        typeof e.path === 'string' && typeof e.message === 'string' && e.message.length > 0,
        'each error has path and message',
      );
    const listed = (errors ?? []).map((e) => e.path);
    for (const p of paths) t.ok(listed.includes(p), `errors name ${p} (got ${JSON.stringify(listed)})`);
  }
}

/** What an account looks like from the API: every key and every audit entry but refusals (to show a bad request changed nothing). */
export async function accountState(app: TestApp, account: string): Promise<{ keys: unknown[]; audit: unknown[] }> {
  const keys: unknown[] = [];
  const audit: unknown[] = [];
  for (const [path, into] of [
    [`/v1/accounts/${account}/keys`, keys],
    [`/v1/accounts/${account}/audit-log`, audit],
  ] as const) {
    let cursor: string | null = null;
    do {
      const res = await app.api('GET', `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
      into.push(...(res.body.data as unknown[]));
      cursor = res.body.next_cursor as string | null;
    } while (cursor);
  }
  // Refused attempts are audited on purpose: they are the trace of the refusal, not a change. A key's last
  // use comes from Authenticate calls through the periodic usage flush, whenever it runs: not a change either.
  const unused = keys.map((k) => ({
    ...(k as Record<string, unknown>),
    last_used_at: undefined,
    last_used_ip: undefined,
  }));
  return { keys: unused, audit: audit.filter((a) => !String((a as { action?: string }).action).startsWith('admin.')) };
}

/** A raw request (any body, any content type) with the admin token. */
export async function rawRequest(
  app: TestApp,
  method: string,
  path: string,
  body: string | undefined,
  headers: Record<string, string>,
  token?: string | null,
): Promise<ApiResponse> {
  const h: Record<string, string> = { ...headers };
  if (token !== null) h.authorization = `Bearer ${token ?? ADMIN_TOKEN}`;
  const res = await fetch(`${app.url}${path}`, { method, headers: h, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
