// The caller's trace carried into the key service. @opentelemetry/api is an optional peer: without it,
// or without an SDK registered in the caller's process, nothing is recorded or sent (its no-op API).
import type * as Api from '@opentelemetry/api';
import type { Metadata } from '@grpc/grpc-js';
import { SERVICE_NAME } from './proto.js';

// Not installed is the usual case for a caller that does not trace: the client then works without it.
const api: typeof Api | undefined = await import('@opentelemetry/api').catch(() => undefined);

/** The caller's context when a request was made: its call continues that trace. */
export type CallerContext = Api.Context | undefined;

/** A call's span: ended once with its outcome. */
export interface CallSpan {
  /** Runs `fn` in the span's context (a gRPC instrumentation of the caller then nests under it). */
  run(fn: () => void): void;
  end(outcome: { allowed: boolean; reason?: string | undefined } | { error: string }): void;
}

const setter: Api.TextMapSetter<Metadata> = { set: (carrier, key, value) => carrier.set(key, value) };

/** The active context, to be given back to callSpan when the request is asked. */
export function callerContext(): CallerContext {
  return api?.context.active();
}

/** A client span for one Authenticate call, its `traceparent` written into `metadata`; never the key. */
export function callSpan(parent: CallerContext, metadata: Metadata, uses: number): CallSpan | undefined {
  if (!api || !parent) return undefined;
  const span = api.trace.getTracer('@otesse/keys-client').startSpan(
    `${SERVICE_NAME}/Authenticate`,
    {
      kind: api.SpanKind.CLIENT,
      attributes: {
        'rpc.system': 'grpc',
        'rpc.service': SERVICE_NAME,
        'rpc.method': 'Authenticate',
        'otesse.uses': uses,
      },
    },
    parent,
  );
  const context = api.trace.setSpan(parent, span);
  api.propagation.inject(context, metadata, setter);
  const otel = api;
  return {
    run: (fn) => otel.context.with(context, fn),
    end: (outcome) => {
      if ('error' in outcome) span.setStatus({ code: otel.SpanStatusCode.ERROR, message: outcome.error });
      else
        span.setAttributes({
          'otesse.outcome': outcome.allowed ? 'allowed' : 'denied',
          ...(outcome.reason ? { 'otesse.deny_reason': outcome.reason } : {}),
        });
      span.end();
    },
  };
}
