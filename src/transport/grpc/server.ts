import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { Decision } from '../../domain/decision.js';
import type { AuthResult, CallLimits } from '../../service/authenticator.js';
import type { LocalGrant } from '../../service/caller-watch.js';
import { NO_TRACE, type ServerSpan, type Trace } from '../../service/trace.js';
import { statusOf } from './status.js';
import { watchHandler, type WatchOpener } from './watch.js';

/** The proto of the contract, resolved from src/ or dist/src/. */
export const PROTO_ROOT = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../../proto/' : '../../../proto/', import.meta.url),
);
export const PROTO_FILE = 'otesse/keys/v1/keys.proto';
export const SERVICE_NAME = 'otesse.keys.v1.KeyService';
/** Health service name that reports liveness only (does not follow storage). */
export const LIVENESS = 'liveness';
/** Authenticate's server span: the name, kind and rpc.* attributes the gRPC instrumentation gives the other methods. */
const AUTHENTICATE_SPAN = `grpc.${SERVICE_NAME}/Authenticate`;
const AUTHENTICATE_ATTRIBUTES = Object.freeze({
  'rpc.system': 'grpc',
  'rpc.service': SERVICE_NAME,
  'rpc.method': 'Authenticate',
});

/** Load the KeyService proto (once per server or client). */
export function loadProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    defaults: true,
    longs: Number,
  });
}

export interface AuthenticateRequest {
  key: string;
  ip: string;
  scope: string;
  /** 0 (unset) or 1: one request; more: a caller's coalesced requests. */
  uses?: number;
  /** The caller holds a Watch lease (an allow then carries `local` when it may decide the call itself). */
  watching?: boolean;
}

export interface AuthenticateResponse {
  allowed: boolean;
  reason: string;
  key_id: string;
  account_id: string;
  environment: string;
  scopes: string[];
  retry_after_ms: number;
  metadata: string;
  allowed_uses: number;
  local?: { version: number; expires_at_ms: number } | null;
}

export interface TlsFiles {
  cert: string;
  key: string;
  /** When set, callers must present a certificate from this CA (mutual TLS). */
  ca?: string | undefined;
}

export interface GrpcServerOptions {
  /** A result at once when memory decides (no promise, answered in the same tick), else a promise. */
  authenticate(
    key: string,
    ip: string,
    scope: string,
    limits?: CallLimits,
    uses?: number,
    watching?: boolean,
  ): AuthResult | Promise<AuthResult>;
  /** Callers' Watch streams (design: callers-hold-leases); unset: Watch answers UNIMPLEMENTED. */
  watch?: WatchOpener | undefined;
  log: { error(obj: object, msg: string): void };
  maxConnectionAgeMs: number;
  tls?: TlsFiles | undefined;
  /** More services on the same server (Envoy's Check), listed by reflection too. */
  services?: { definition: protoLoader.PackageDefinition; addToServer(server: grpc.Server): void }[];
  /** Observes each call (metrics); `code` is the gRPC status. */
  onCall?: (result: AuthResult | undefined, code: grpc.status, seconds: number) => void;
  /**
   * Authenticate's server spans (the gRPC instrumentation is told to leave that method alone: see
   * src/observability/tracing.ts); the other methods are traced by the instrumentation.
   */
  trace?: Trace;
}

/**
 * The caller's deadline and cancellation, so no verification starts for a call that has ended; read only
 * when a verification is about to start (a cache hit never looks).
 */
class CallEnd implements CallLimits {
  readonly #call: grpc.ServerUnaryCall<unknown, unknown>;

  constructor(call: grpc.ServerUnaryCall<unknown, unknown>) {
    this.#call = call;
  }

  get deadline(): number | undefined {
    const d = this.#call.getDeadline();
    return d instanceof Date ? d.getTime() : Number.isFinite(d) && d !== Infinity ? Number(d) : undefined;
  }

  cancelled(): boolean {
    return this.#call.cancelled;
  }
}

/** Map a decision on `uses` uses to the contract's response. */
export function toResponse(d: Decision, uses = 1, allowedUses?: number, local?: LocalGrant): AuthenticateResponse {
  const id = d.identity;
  const allowed = d.allowed ? uses : (allowedUses ?? 0);
  return {
    ...(local ? { local: { version: local.version, expires_at_ms: local.expiresAt ?? 0 } } : {}),
    // Some uses allowed, the others refused by the key's limits: allowed, with the reason for the others.
    allowed: allowed > 0,
    reason: d.allowed ? 'DENY_REASON_UNSPECIFIED' : d.reason,
    key_id: id?.keyId ?? '',
    account_id: id?.accountId ?? '',
    environment: id?.environment ?? '',
    // Only read by the encoder: the grant's own array, not a copy.
    scopes: id ? (id.scopes as string[]) : [],
    retry_after_ms: d.allowed ? 0 : (d.retryAfterMs ?? 0),
    metadata: id?.metadata ?? '',
    allowed_uses: allowed,
  };
}

/** `callback`, ending the call's span first with its gRPC status (as the gRPC instrumentation does). */
function ending(
  span: ServerSpan,
  callback: grpc.sendUnaryData<AuthenticateResponse>,
): grpc.sendUnaryData<AuthenticateResponse> {
  return (err, value) => {
    const code = err?.code ?? grpc.status.OK;
    span.end({ 'rpc.grpc.status_code': code }, code === grpc.status.OK ? undefined : grpc.status[code]);
    callback(err, value);
  };
}

/** The gRPC transport: KeyService, grpc.health.v1 and reflection on one server. */
export class GrpcServer {
  readonly health = new HealthImplementation({
    '': 'NOT_SERVING',
    [SERVICE_NAME]: 'NOT_SERVING',
    [LIVENESS]: 'SERVING',
  });
  #server: grpc.Server;
  #healthServer: grpc.Server | undefined;
  #o: GrpcServerOptions;
  #trace: Trace;
  #inflight = 0;
  #encode: (value: AuthenticateResponse) => Buffer;
  /**
   * One use's answer, encoded once: an allow per grant (a cache hit sends bytes made when the grant was
   * first used; weak, so a grant replaced in the cache takes its bytes with it; grants are never changed in
   * place), a deny of a key never identified per reason (nothing else is in it).
   */
  #allows = new WeakMap<object, Buffer>();
  /** The same for a watching caller's allow that carries `local` (its version and expiry are the grant's). */
  #localAllows = new WeakMap<object, Buffer>();
  #anonymousDenies = new Map<string, Buffer>();

  constructor(opts: GrpcServerOptions) {
    this.#o = opts;
    this.#trace = opts.trace ?? NO_TRACE;
    this.#server = new grpc.Server({
      'grpc.max_connection_age_ms': opts.maxConnectionAgeMs,
      'grpc.max_connection_age_grace_ms': 30_000,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.max_receive_message_length': 16 * 1024,
    });
    const pkg = loadProto();
    const proto = grpc.loadPackageDefinition(pkg) as unknown as {
      otesse: { keys: { v1: { KeyService: grpc.ServiceClientConstructor } } };
    };
    const service = proto.otesse.keys.v1.KeyService.service;
    const method = service.Authenticate as grpc.MethodDefinition<AuthenticateRequest, AuthenticateResponse>;
    const encode = method.responseSerialize;
    this.#encode = encode;
    // An answer already encoded (see #bytes) goes out as it is; any other is encoded as usual.
    const serialize = (value: AuthenticateResponse | Buffer): Buffer =>
      value instanceof Buffer ? value : encode(value as AuthenticateResponse);
    this.#server.addService(
      { ...service, Authenticate: { ...method, responseSerialize: serialize } },
      {
        Authenticate: this.#authenticate.bind(this),
        ...(opts.watch ? { Watch: watchHandler(opts.watch, opts.log) } : {}),
      },
    );
    this.health.addToServer(this.#server);
    for (const extra of opts.services ?? []) extra.addToServer(this.#server);
    const described = Object.assign(
      {},
      pkg,
      ...(opts.services ?? []).map((s) => s.definition),
    ) as protoLoader.PackageDefinition;
    new ReflectionService(described).addToServer(this.#server);
  }

  /** Calls being answered now. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Readiness as reported to `grpc.health.v1` (liveness is reported separately). */
  setReady(ready: boolean): void {
    const status: ServingStatus = ready ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    this.health.setStatus(SERVICE_NAME, status);
  }

  /**
   * Tracing on, a call is served in a server span only when the sampler records it; the others cost the
   * sampling decision and nothing else (no context, span or wrapped call).
   */
  #authenticate(
    call: grpc.ServerUnaryCall<AuthenticateRequest, AuthenticateResponse>,
    callback: grpc.sendUnaryData<AuthenticateResponse>,
  ): void {
    if (!this.#trace.on) {
      this.#serve(call, callback);
      return;
    }
    const headers = (name: string) => {
      const values = call.metadata.get(name);
      return values.length > 0 ? values.join(',') : undefined;
    };
    this.#trace.serve(AUTHENTICATE_SPAN, headers, AUTHENTICATE_ATTRIBUTES, (span) => {
      this.#serve(call, span ? ending(span, callback) : callback);
    });
  }

  #serve(
    call: grpc.ServerUnaryCall<AuthenticateRequest, AuthenticateResponse>,
    callback: grpc.sendUnaryData<AuthenticateResponse>,
  ): void {
    const started = performance.now();
    const { key, ip, scope } = call.request;
    const uses = call.request.uses || 1;
    let answer: AuthResult | Promise<AuthResult>;
    try {
      answer = this.#o.authenticate(key, ip, scope, new CallEnd(call), uses, call.request.watching === true);
    } catch (err) {
      this.#fail(err, started, callback);
      return;
    }
    if (!(answer instanceof Promise)) {
      this.#answer(answer, uses, started, callback);
      return;
    }
    this.#inflight++;
    answer.then(
      (result) => {
        this.#inflight--;
        this.#answer(result, uses, started, callback);
      },
      (err: unknown) => {
        this.#inflight--;
        this.#fail(err, started, callback);
      },
    );
  }

  #answer(result: AuthResult, uses: number, started: number, callback: grpc.sendUnaryData<AuthenticateResponse>): void {
    this.#o.onCall?.(result, grpc.status.OK, (performance.now() - started) / 1000);
    const bytes = uses === 1 ? this.#bytes(result.decision, result.local) : undefined;
    (callback as grpc.sendUnaryData<AuthenticateResponse | Buffer>)(
      null,
      bytes ?? toResponse(result.decision, uses, result.allowedUses, result.local),
    );
  }

  /** The encoded answer to one use, when the same bytes answer every such call (see #allows). */
  #bytes(d: Decision, local: LocalGrant | undefined): Buffer | undefined {
    if (d.allowed)
      return local ? this.#once(this.#localAllows, d.identity, d, local) : this.#once(this.#allows, d.identity, d);
    return d.identity === undefined && d.retryAfterMs === undefined
      ? this.#once(this.#anonymousDenies, d.reason, d)
      : undefined;
  }

  /** The bytes kept under `key`, encoded from `d` the first time. */
  #once<K>(
    cache: { get(key: K): Buffer | undefined; set(key: K, bytes: Buffer): unknown },
    key: K,
    d: Decision,
    local?: LocalGrant,
  ): Buffer {
    let bytes = cache.get(key);
    if (bytes === undefined) cache.set(key, (bytes = this.#encode(toResponse(d, 1, undefined, local))));
    return bytes;
  }

  #fail(err: unknown, started: number, callback: grpc.sendUnaryData<AuthenticateResponse>): void {
    const status = statusOf(err, (e) => this.#o.log.error({ err: e }, 'Authenticate failed'));
    this.#o.onCall?.(undefined, status.code, (performance.now() - started) / 1000);
    callback(status);
  }

  #credentials(): grpc.ServerCredentials {
    const tls = this.#o.tls;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    const ca = tls.ca ? readFileSync(tls.ca) : null;
    return grpc.ServerCredentials.createSsl(
      ca,
      [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }],
      ca !== null,
    );
  }

  /** Bind (port 0 picks a free port) and resolve the bound port. */
  async listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(`${host}:${port}`, this.#credentials(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
  }

  /** Serve grpc.health.v1 alone, in plaintext, on another port (kubelet probes cannot do mutual TLS). */
  async listenHealth(host: string, port: number): Promise<number> {
    this.#healthServer = new grpc.Server();
    this.health.addToServer(this.#healthServer);
    const server = this.#healthServer;
    return new Promise((resolve, reject) => {
      server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
  }

  /** Stop taking calls, let in-flight ones finish (up to `graceMs`), then close. */
  async close(graceMs: number): Promise<void> {
    this.health.setStatus(LIVENESS, 'NOT_SERVING');
    this.setReady(false);
    await Promise.all(
      [this.#server, this.#healthServer].map((server) =>
        server === undefined
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              const timer = setTimeout(() => {
                server.forceShutdown();
                resolve();
              }, graceMs);
              server.tryShutdown(() => {
                clearTimeout(timer);
                resolve();
              });
            }),
      ),
    );
  }
}
