/**
 * All the use cases know of tracing: they say what happened through this, never through the
 * OpenTelemetry SDK, so the domain and the stores stay free of it (the implementation is
 * src/observability/tracing.ts, loaded only when tracing is configured).
 *
 * Attribute values are ids, counts, names and outcomes: never a key, a secret, a hash of one or a
 * token (design: secret-never-kept).
 */
export type TraceAttributes = Record<string, string | number | boolean | undefined>;

export interface Trace {
  /** False when tracing is off: a caller skips building attributes on its hot path. */
  readonly on: boolean;
  /** Attributes on the current span (the RPC, request or child span being served); nothing without one. */
  setAttributes(attributes: TraceAttributes): void;
  /** `fn` in a child span of the current one, ended when its promise settles (a rejection marks it failed). */
  span<T>(name: string, fn: () => Promise<T>, attributes?: TraceAttributes): Promise<T>;
}

/** Tracing off: nothing is recorded and `fn` runs as it is. */
export const NO_TRACE: Trace = Object.freeze({
  on: false,
  setAttributes: () => {},
  span: <T>(_name: string, fn: () => Promise<T>) => fn(),
});
