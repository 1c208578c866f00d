/**
 * All the use cases know of tracing: they say what happened through this, never through the
 * OpenTelemetry SDK, so the domain and the stores stay free of it (the implementation is
 * src/observability/tracing.ts, loaded only when tracing is configured).
 *
 * Attribute values are ids, counts, names and outcomes: never a key, a secret, a hash of one or a
 * token (design: secret-never-kept).
 */
export type TraceAttributes = Record<string, string | number | boolean | undefined>;

/** A server span that is being recorded; the transport ends it when the call is answered. */
export interface ServerSpan {
  /** Set `attributes` and end; `failure` (a code, never input) marks the span failed. */
  end(attributes: TraceAttributes, failure?: string): void;
}

/** An incoming call's headers (gRPC metadata), read only for the ones the propagators ask for. */
export type Headers = (name: string) => string | undefined;

export interface Trace {
  /** False when tracing is off: a caller skips building attributes on its hot path. */
  readonly on: boolean;
  /** Whether the current span is recorded: a caller builds attributes only then (most calls are not sampled). */
  recording(): boolean;
  /** Attributes on the current span (the RPC, request or child span being served); nothing without one. */
  setAttributes(attributes: TraceAttributes): void;
  /**
   * `fn` in a child span of the current one, ended when its promise settles (a rejection marks it failed);
   * without a recorded current span, `fn` runs as it is (no trace of its own).
   */
  span<T>(name: string, fn: () => Promise<T>, attributes?: TraceAttributes): Promise<T>;
  /**
   * An incoming call's handler: when the sampler records a server span `name` continuing the caller's
   * trace (from `headers`), `fn` runs in it and is given it to end; otherwise `fn(undefined)` runs as
   * it is, with no context, span or wrapping built for the call. `attributes` are set on a recorded span only.
   */
  serve<T>(name: string, headers: Headers, attributes: TraceAttributes, fn: (span: ServerSpan | undefined) => T): T;
}

/** Tracing off: nothing is recorded and `fn` runs as it is. */
export const NO_TRACE: Trace = Object.freeze({
  on: false,
  recording: () => false,
  setAttributes: () => {},
  span: <T>(_name: string, fn: () => Promise<T>) => fn(),
  serve: <T>(_name: string, _headers: Headers, _attributes: TraceAttributes, fn: (span: undefined) => T) =>
    fn(undefined),
});
