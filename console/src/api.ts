/** A REST client of the key service's /v1 API: the console knows nothing else of the server. */

export interface FieldError {
  path: string;
  message: string;
}

/** An API refusal in words: the problem's detail and its per-field errors (problem+json `errors[].path`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
  }

  /** The messages for one field: `allowed_ips` also collects `allowed_ips/3`, said as "entry 4". */
  about(field: string): string[] {
    return this.errors
      .filter((e) => e.path === field || e.path.startsWith(`${field}/`))
      .map((e) => {
        const index = /^[^/]+\/(\d+)$/.exec(e.path)?.[1];
        return index === undefined ? e.message : `Entry ${Number(index) + 1}: ${e.message}`;
      });
  }
}

export interface Key {
  id: string;
  account_id: string;
  label: string;
  environment: 'live' | 'test';
  scopes: string[];
  allowed_ips: string[];
  status: 'active' | 'revoked' | 'expired';
  redacted: string;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  rotation_due_at: string;
  last_used_at: string | null;
  last_used_ip: string | null;
  replaces: string | null;
  replaced_by: string | null;
  enabled: boolean;
  rate_limits: { name: string; limit: number; window_seconds: number }[];
  remaining_uses: number | null;
  refill: { amount: number; interval: 'daily' | 'monthly'; refilled_at: string | null } | null;
  metadata: Record<string, unknown> | null;
}
export type Issued = Key & { secret: string };
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}
export interface Me {
  name: string;
  role: 'admin' | 'viewer';
  accounts: string[] | null;
}
export interface AuditEntry {
  id: string;
  at: string;
  actor: string;
  action: string;
  key_id: string | null;
  source_ip: string | null;
  changes: Record<string, unknown>;
}
export interface Activity {
  totals: { allowed: number; denied: Record<string, number> };
  series: { start: string; allowed: number; denied: number }[];
  addresses: { ip: string; first_seen: string; last_seen: string; count: number }[];
  alerts: { type: string; at: string; message: string; ip?: string }[];
  events: {
    id: string;
    action: string;
    actor: string;
    at: string;
    source_ip: string | null;
    changes: Record<string, unknown>;
  }[];
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  /** Why the service turned it off: the receiver answered 410 (`gone`), or every attempt failed for 3 days. */
  disabled_reason: 'gone' | 'failing' | null;
  failing_since: string | null;
  previous_secret_until: string | null;
  created_at: string;
  updated_at: string;
}
export type WebhookEndpointWithSecret = WebhookEndpoint & { secret: string };
export interface DeliveryAttempt {
  n: number;
  at: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  response: string | null;
}
export interface Delivery {
  id: string;
  event_id: string;
  event_type: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: string | null;
  created_at: string;
  /** Newest first. */
  attempt_log: DeliveryAttempt[];
}

/** One signed-in client: the bearer token lives in this object only (memory), never in storage or the URL. */
export class Api {
  readonly #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        referrerPolicy: 'no-referrer',
        cache: 'no-store',
      });
    } catch {
      // A network failure: the browser's own error says no more (its developer tools show the request); the person is told.
      throw new ApiError(0, 'The key service cannot be reached. Check your connection and try again.');
    }
    const text = await res.text();
    const parsed = text ? safeJson(text) : undefined;
    if (!res.ok) {
      const p = (parsed ?? {}) as { detail?: string; title?: string; errors?: FieldError[] };
      throw new ApiError(
        res.status,
        p.detail ?? p.title ?? `The request failed (HTTP ${res.status}).`,
        Array.isArray(p.errors) ? p.errors : [],
      );
    }
    return parsed as T;
  }

  me = () => this.call<Me>('GET', '/v1/me');
  scopes = () => fetch('/v1/scopes').then((r) => r.json() as Promise<{ data: string[] }>);
  keys = (account: string, query: URLSearchParams) => this.call<Page<Key>>('GET', `${acct(account)}/keys?${query}`);
  create = (account: string, body: unknown) => this.call<Issued>('POST', `${acct(account)}/keys`, body);
  update = (account: string, id: string, body: unknown) =>
    this.call<Key>('PATCH', `${acct(account)}/keys/${enc(id)}`, body);
  revoke = (account: string, id: string, reason?: string) =>
    this.call<Key>('POST', `${acct(account)}/keys/${enc(id)}/revoke`, reason ? { reason } : {});
  rotate = (account: string, id: string, grace: number) =>
    this.call<Issued>('POST', `${acct(account)}/keys/${enc(id)}/rotate`, { expire_previous_in: grace });
  revokeAll = (account: string, environment: string, reason?: string) =>
    this.call<{ revoked: number }>(
      'POST',
      `${acct(account)}/keys/revoke-all`,
      reason ? { environment, reason } : { environment },
    );
  activity = (account: string, id: string) => this.call<Activity>('GET', `${acct(account)}/keys/${enc(id)}/activity`);
  audit = (account: string, cursor?: string) =>
    this.call<Page<AuditEntry>>('GET', `${acct(account)}/audit-log?limit=20${cursor ? `&cursor=${enc(cursor)}` : ''}`);

  endpoints = (account: string) => this.call<{ data: WebhookEndpoint[] }>('GET', hooks(account));
  createEndpoint = (account: string, body: unknown) =>
    this.call<WebhookEndpointWithSecret>('POST', hooks(account), body);
  updateEndpoint = (account: string, id: string, body: unknown) =>
    this.call<WebhookEndpoint>('PATCH', hooks(account, id), body);
  deleteEndpoint = (account: string, id: string) => this.call<undefined>('DELETE', hooks(account, id));
  rotateEndpointSecret = (account: string, id: string) =>
    this.call<WebhookEndpointWithSecret>('POST', hooks(account, id, '/rotate-secret'));
  testEndpoint = (account: string, id: string) => this.call<{ event_id: string }>('POST', hooks(account, id, '/test'));
  deliveries = (account: string, id: string, cursor?: string) =>
    this.call<Page<Delivery>>(
      'GET',
      hooks(account, id, `/deliveries?limit=20${cursor ? `&cursor=${enc(cursor)}` : ''}`),
    );
  retryDelivery = (account: string, id: string, deliveryId: string) =>
    this.call<undefined>('POST', hooks(account, id, `/deliveries/${enc(deliveryId)}/retry`));
}

const enc = encodeURIComponent;
const acct = (account: string) => `/v1/accounts/${enc(account)}`;
const hooks = (account: string, id?: string, tail = '') =>
  `${acct(account)}/webhook-endpoints${id === undefined ? '' : `/${enc(id)}`}${tail}`;

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page): the caller falls back to a message built from the HTTP status.
    return undefined;
  }
}
