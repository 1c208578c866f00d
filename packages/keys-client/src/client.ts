import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { DenyReason } from './denials.js';
import { KeyServiceError, KeyServiceUnavailableError } from './errors.js';
import { digestOf, LocalDecisions, type LocalDecisionLimits } from './local.js';
import { loadKeysProto, SERVICE_NAME } from './proto.js';
import { WatchLoop, type WatchCall } from './watch.js';
import { callerContext, callSpan, type CallerContext } from './trace.js';

/** Who the caller is, as the key service identified the key. */
export interface ApiKeyIdentity {
  keyId: string;
  accountId: string;
  environment: 'live' | 'test';
  scopes: string[];
  /** The key's metadata (a JSON object set by the account's admins), or null. */
  metadata: Record<string, unknown> | null;
}

export interface AuthenticateInput {
  /** The key exactly as the client sent it (the token after `Bearer `, or the `X-API-Key` value). */
  key: string;
  /** The client's address, IPv4 or IPv6. */
  ip: string;
  /** The scope the request needs, e.g. `bookings:read`. */
  scope: string;
}

export type AuthenticateResult =
  | { allowed: true; identity: ApiKeyIdentity }
  /** `reason` is a DenyReason, or the name (or number) of a reason newer than this client. */
  /** `retryAfterMs`: for RATE_LIMITED and USAGE_EXCEEDED, when trying again can help (absent: not by waiting). */
  | { allowed: false; reason: DenyReason | (string & {}); identity?: ApiKeyIdentity; retryAfterMs?: number };

/** PEM contents (not paths): `ca` alone is TLS; with `cert` and `key` it is mutual TLS. */
export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the server's certificate must carry, when it differs from the address's host. */
  serverName?: string;
}

export interface KeyServiceClientOptions {
  /** `host:port`, or `dns:///otesse-keys-headless:50051` to spread calls over every address of a headless Service. */
  address: string;
  /** Per call, retries included (default 250 ms). */
  deadlineMs?: number;
  /** Attempts per call when the service answers UNAVAILABLE (default 3, at most 5). */
  maxAttempts?: number;
  /** TLS (or mutual TLS); unset: plaintext, as inside a service mesh. */
  tls?: TlsOptions;
  /** HTTP/2 ping interval on idle-looking connections (default 30 s). */
  keepaliveMs?: number;
  /** Extra grpc-js channel options (they win over the defaults). */
  channelOptions?: grpc.ChannelOptions;
  /**
   * One call in flight per key, address, scope and deadline: requests made in the same turn of the
   * event loop, or while that call is in flight, are decided together by the next call (default
   * true). Each is still decided after it arrived (a revoke that has returned is seen) and counted
   * by the service (usage, rate limits, quota).
   */
  coalesce?: boolean;
  /**
   * Decide in this process what the service allowed before (default true): a call the service allowed
   * for a key, address and scope is allowed again from memory, counted and reported to the service in
   * batches, while this client holds the service's lease; a revoke or a narrowing change returns only
   * once this client has applied it or its lease has run out (the service's design:
   * callers-hold-leases). Keys with rate limits or a quota are asked every time. `false` asks the
   * service for every request; an object sets the cache's bounds.
   */
  localDecisions?: boolean | LocalDecisionLimits;
}

interface RawResponse {
  allowed: boolean;
  reason: string | number;
  key_id: string;
  account_id: string;
  environment: string;
  scopes: string[];
  retry_after_ms: number;
  metadata: string;
  allowed_uses: number;
  local: { version: number; expires_at_ms: number } | null;
}

type RawClient = grpc.Client & {
  Watch(): WatchCall;
  Authenticate(
    req: AuthenticateInput & { uses: number; watching: boolean },
    meta: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: RawResponse) => void,
  ): void;
};

/** Statuses that mean "no decision could be had", as opposed to a caller's bug. */
const UNAVAILABLE = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.CANCELLED,
]);

/** Round robin over every resolved address; UNAVAILABLE retried with jittered exponential backoff (grpc-js's retry policy). */
function serviceConfig(maxAttempts: number): string {
  return JSON.stringify({
    loadBalancingConfig: [{ round_robin: {} }],
    // grpc-js refuses a retry policy of fewer than 2 attempts: one attempt is no policy at all.
    methodConfig:
      maxAttempts < 2
        ? []
        : [
            {
              name: [{ service: SERVICE_NAME }],
              retryPolicy: {
                maxAttempts,
                initialBackoff: '0.01s',
                maxBackoff: '0.08s',
                backoffMultiplier: 2,
                retryableStatusCodes: ['UNAVAILABLE'],
              },
            },
          ],
  });
}

function credentials(tls: TlsOptions | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const buf = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.from(v));
  return grpc.credentials.createSsl(buf(tls.ca), buf(tls.key), buf(tls.cert));
}

/** The metadata text as an object; text that is not a JSON object (a service bug) is dropped, never thrown. */
function metadataOf(text: string | undefined): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    // The decision stands without it: a caller must not fail a request on the service's bad metadata text.
    return null;
  }
}

/** One request's result; `allowed`: whether this one is among the call's allowed uses. */
function toResult(res: RawResponse, allowed: boolean): AuthenticateResult {
  const identity: ApiKeyIdentity | undefined = res.key_id
    ? {
        keyId: res.key_id,
        accountId: res.account_id,
        environment: res.environment as 'live' | 'test',
        scopes: [...res.scopes],
        metadata: metadataOf(res.metadata),
      }
    : undefined;
  if (allowed && identity) return { allowed: true, identity };
  // Some uses allowed and this one not: `reason` says why (a rate limit or the quota).
  const reason = allowed || res.reason === 'DENY_REASON_UNSPECIFIED' ? 'KEY_UNKNOWN' : String(res.reason);
  const retry = Number(res.retry_after_ms ?? 0) > 0 ? { retryAfterMs: Number(res.retry_after_ms) } : {};
  return identity ? { allowed: false, reason, identity, ...retry } : { allowed: false, reason, ...retry };
}

/**
 * The most requests one call decides: the service's limit, which the proto states (`uses`, at most 1000).
 * A copy, since the client never loads the service: test/callers/package.test.ts holds the three to one value.
 */
export const MAX_USES = 1000;

/** A request waiting for its decision. */
interface Waiter {
  resolve(result: AuthenticateResult): void;
  reject(err: Error): void;
  /** Epoch ms. */
  deadline: number;
}

/** Requests with one deadline, key, address and scope, made before their call: one call decides them. */
interface Batch {
  id: string;
  req: AuthenticateInput;
  waiters: Waiter[];
  /** The first request's trace context: the call continues that trace (the others' requests are decided by it too). */
  context: CallerContext;
}

/** An allow, as the plugin and callers receive it. */
type Allowed = AuthenticateResult & { allowed: true };

function failure(err: grpc.ServiceError | null): KeyServiceError {
  const code = err?.code ?? grpc.status.UNKNOWN;
  const name = grpc.status[code] ?? 'UNKNOWN';
  // `details` is the server's text (it never holds the key); the request is not quoted.
  const message = `key service: ${name}${err?.details ? `: ${err.details}` : ''}`;
  return UNAVAILABLE.has(code) ? new KeyServiceUnavailableError(name, message) : new KeyServiceError(name, message);
}

const expired = () =>
  new KeyServiceUnavailableError('DEADLINE_EXCEEDED', 'key service: DEADLINE_EXCEEDED: no answer within the deadline');

/** A client of `otesse.keys.v1.KeyService`: one per process, shared by every request. */
export class KeyServiceClient {
  #client: RawClient;
  #deadlineMs: number;
  #coalesce: boolean;
  /** Requests not asked yet, by deadline, key, address and scope. */
  #batches = new Map<string, Batch>();
  /** Calls in flight by batch id: the next requests wait for them to return (more than one only when a batch filled up). */
  #inflight = new Map<string, number>();
  #scheduled = false;
  /** Local decisions (undefined when off, or once the service turned out to have no Watch). */
  #local: LocalDecisions | undefined;
  #watch: WatchLoop | undefined;

  constructor(opts: KeyServiceClientOptions) {
    this.#deadlineMs = opts.deadlineMs ?? 250;
    this.#coalesce = opts.coalesce ?? true;
    const proto = grpc.loadPackageDefinition(loadKeysProto()) as unknown as {
      otesse: {
        keys: { v1: { KeyService: new (a: string, c: grpc.ChannelCredentials, o: grpc.ChannelOptions) => RawClient } };
      };
    };
    this.#client = new proto.otesse.keys.v1.KeyService(opts.address, credentials(opts.tls), {
      'grpc.service_config': serviceConfig(Math.min(5, Math.max(1, opts.maxAttempts ?? 3))),
      'grpc.keepalive_time_ms': opts.keepaliveMs ?? 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      // A replica that went away is retried soon, not after grpc's default second or more.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 5_000,
      ...(opts.tls?.serverName
        ? { 'grpc.ssl_target_name_override': opts.tls.serverName, 'grpc.default_authority': opts.tls.serverName }
        : {}),
      ...opts.channelOptions,
    });
    const local = opts.localDecisions ?? true;
    if (local !== false) this.#local = new LocalDecisions(local === true ? {} : local);
  }

  /** The stream that holds the lease, opened with the first request. */
  #watching(): LocalDecisions | undefined {
    const local = this.#local;
    if (local === undefined) return undefined;
    if (this.#watch === undefined) this.#watch = new WatchLoop(() => this.#client.Watch(), local);
    else if (!this.#watch.supported) this.#local = undefined;
    return this.#local;
  }

  /**
   * The answer from memory when this client may give one (local decisions on, the lease held, the same
   * key, address and scope allowed before); undefined otherwise: then ask `authenticate`. The use is
   * counted and reported to the service.
   */
  decideLocally(input: AuthenticateInput): Allowed | undefined {
    return this.#local === undefined ? undefined : this.#watching()?.decide(input.key, input.ip, input.scope);
  }

  /**
   * May this key, from this address, do this scope? A deny is a result; a fault throws
   * KeyServiceUnavailableError (no decision: fail closed) or KeyServiceError (a bad ip or scope).
   */
  authenticate(input: AuthenticateInput, opts: { deadlineMs?: number } = {}): Promise<AuthenticateResult> {
    const known = this.decideLocally(input);
    if (known !== undefined) return Promise.resolve(known);
    const budget = opts.deadlineMs ?? this.#deadlineMs;
    const deadline = Date.now() + budget;
    const req = { key: input.key, ip: input.ip, scope: input.scope };
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, deadline };
      if (!this.#coalesce) return this.#ask({ id: '', req, waiters: [waiter], context: callerContext() });
      // Requests with another deadline are asked apart: a call's deadline is its earliest request's.
      const id = `${budget}\u0000${req.key}\u0000${req.ip}\u0000${req.scope}`;
      const batch = this.#batches.get(id);
      if (!batch) this.#batches.set(id, { id, req, waiters: [waiter], context: callerContext() });
      else if (batch.waiters.push(waiter) === MAX_USES) {
        // Full: asked now; the next request starts another.
        this.#batches.delete(id);
        this.#ask(batch);
      }
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  /** The end of a turn of the event loop: a call for each batch without one in flight; the others wait for theirs to return. */
  #flush = (): void => {
    this.#scheduled = false;
    for (const batch of this.#batches.values()) {
      if (this.#inflight.has(batch.id)) continue; // asked when the call in flight returns
      this.#batches.delete(batch.id);
      this.#ask(batch);
    }
  };

  /** One call deciding the batch (the first `allowed_uses` requests are allowed); every request of it arrived before. */
  #ask(batch: Batch): void {
    const now = Date.now();
    let deadline = Number.POSITIVE_INFINITY;
    const waiters: Waiter[] = [];
    for (const w of batch.waiters) {
      if (w.deadline <= now) w.reject(expired());
      else {
        waiters.push(w);
        deadline = Math.min(deadline, w.deadline);
      }
    }
    if (waiters.length === 0) return;
    const { id } = batch;
    if (id) this.#inflight.set(id, (this.#inflight.get(id) ?? 0) + 1);
    const metadata = new grpc.Metadata();
    const span = callSpan(batch.context, metadata, waiters.length);
    const local = this.#watching();
    const watching = local?.leaseValid() === true;
    const epoch = local?.epoch ?? 0;
    const sentAt = performance.now();
    const call = () =>
      this.#client.Authenticate(
        { ...batch.req, uses: waiters.length, watching },
        metadata,
        { deadline: new Date(deadline) },
        (err, res) => {
          if (id) this.#returned(id);
          span?.end(
            err || !res
              ? { error: grpc.status[err?.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN' }
              : { allowed: res.allowed, reason: res.allowed ? undefined : String(res.reason) },
          );
          if (err || !res) {
            for (const w of waiters) w.reject(failure(err));
            return;
          }
          // A service older than `uses` answers 0 allowed uses for an allow: it counted one; ask one by one from now on.
          if (res.allowed && !res.allowed_uses && waiters.length > 1) this.#coalesce = false;
          const allowed = res.allowed ? res.allowed_uses || waiters.length : 0;
          if (local && res.local && allowed === waiters.length) {
            const { key, ip, scope } = batch.req;
            const result = toResult(res, true) as Allowed;
            const grant = { version: res.local.version, expiresAtMs: res.local.expires_at_ms };
            local.learn(digestOf(key), ip, scope, result, grant, epoch, sentAt);
          }
          for (let i = 0; i < waiters.length; i++) (waiters[i] as Waiter).resolve(toResult(res, i < allowed));
        },
      );
    if (span) span.run(call);
    else call();
  }

  /** A call returned: the requests that waited for it are asked now, in one call. */
  #returned(id: string): void {
    const left = (this.#inflight.get(id) ?? 1) - 1;
    if (left > 0) {
      this.#inflight.set(id, left);
      return;
    }
    this.#inflight.delete(id);
    const waiting = this.#batches.get(id);
    if (waiting) {
      this.#batches.delete(id);
      this.#ask(waiting);
    }
  }

  /** Wait until the channel is connected (optional: calls connect on their own). */
  waitForReady(timeoutMs = 5_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Give up the lease, report the last uses decided from memory (up to 2 s), then close the channel. */
  async close(): Promise<void> {
    const watch = this.#watch;
    this.#local = undefined;
    await watch?.close();
    this.#client.close();
  }
}
