/** The admin REST API as the CLI calls it: global fetch, the admin token, problem+json errors. */

/** Exit codes of `otesse-keys` (README): 0 ok or allowed, 1 denied or refused by the API, 2 usage, 3 service unreachable or failing. */
export const EXIT = { OK: 0, DENIED: 1, USAGE: 2, UNAVAILABLE: 3 } as const;

/** A failure that ends the command with an exit code and one message on stderr. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(exitCode: number, message: string) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

interface Problem {
  title?: string;
  detail?: string;
  errors?: { path: string; message: string }[];
}

function describe(status: number, body: unknown): string {
  const p = (body ?? {}) as Problem;
  const fields = (p.errors ?? []).map((e) => `\n  ${e.path}: ${e.message}`).join('');
  return `${status} ${p.title ?? ''}: ${p.detail ?? 'no detail'}${fields}`;
}

export class AdminApi {
  readonly #url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.#url = url.replace(/\/+$/, '');
    this.#token = token;
  }

  /**
   * One call; resolves the JSON body of a 2xx, throws CliError otherwise (4xx: 1, unreachable or 5xx: 3).
   * `T` is what the API documents for the route: only printed, so it is taken on trust.
   */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.#url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new CliError(EXIT.UNAVAILABLE, `cannot reach the admin API at ${this.#url}: ${why}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON (a proxy's HTML error page, say): its start is the detail shown; the status says what failed.
      parsed = { detail: text.slice(0, 200) };
    }
    if (res.ok) return parsed as T;
    throw new CliError(res.status >= 500 ? EXIT.UNAVAILABLE : EXIT.DENIED, describe(res.status, parsed));
  }
}

/** `/v1/accounts/<account>/keys[/<key>]` with both ids escaped. */
export function keysPath(account: string, keyId?: string, tail = ''): string {
  return `/v1/accounts/${encodeURIComponent(account)}/keys${keyId === undefined ? '' : `/${encodeURIComponent(keyId)}`}${tail}`;
}

/** `/v1/accounts/<account>/webhook-endpoints[/<endpoint>]` with both ids escaped. */
export function webhooksPath(account: string, endpointId?: string, tail = ''): string {
  return `/v1/accounts/${encodeURIComponent(account)}/webhook-endpoints${endpointId === undefined ? '' : `/${encodeURIComponent(endpointId)}`}${tail}`;
}
