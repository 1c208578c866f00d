// Traces with the OpenTelemetry SDK, configured by the standard OTEL_* variables. main.ts imports this
// module only when tracingRequested() says so, and before the app: the instrumentations must patch
// grpc-js, pg, ioredis and pino before those are loaded.
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import fastifyOtel from '@fastify/otel';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { PinoInstrumentation } from '@opentelemetry/instrumentation-pino';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { defaultResource, envDetector, hostDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { ConfigError } from '../config.js';
import type { Headers, ServerSpan, Trace, TraceAttributes } from '../service/trace.js';

/** Modules the instrumentations patch when the app imports them (the loader hook intercepts nothing else). */
const PATCHED = ['@grpc/grpc-js', 'pg', 'ioredis', 'pino', 'http', 'https', 'node:http', 'node:https'];
/** Probes and scrapes: a span every few seconds that says nothing. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
/** URL attributes whose query string is dropped (a client may put a credential in it). */
const URL_ATTRIBUTES = ['url.full', 'url.path', 'http.url', 'http.target'];
/**
 * gRPC methods the transport traces itself through Trace.serve, left out of the gRPC instrumentation (which
 * builds a context, a span and wrappers for every call, sampled or not). The instrumentation matches the
 * method's name alone (the part after the last `/`), on the server and on clients; no other service here
 * has a method of this name.
 */
const SERVED_METHODS = ['Authenticate'];
/** Reads the headers the configured propagators ask for (traceparent, tracestate, baggage), and no others. */
const HEADERS: TextMapGetter<Headers> = { get: (headers, name) => headers(name), keys: () => [] };

export interface Tracing {
  trace: Trace;
  /** Export what is buffered and stop (SIGTERM, after the app has closed). */
  shutdown(): Promise<void>;
}

/** Start the SDK; `replicaId` and the package's version become resource attributes. */
export async function startTracing(replicaId: string): Promise<Tracing> {
  const protocol = protocolOf(process.env);
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: PATCHED } });
  let opened!: (exporter: SpanExporter) => void;
  const exporter = new RedactingExporter(
    new Promise<SpanExporter>((resolve) => {
      opened = resolve;
    }),
  );
  const sdk = new NodeSDK({
    ...(process.env.OTEL_SERVICE_NAME ? {} : { serviceName: 'otesse-keys' }),
    resource: defaultResource().merge(
      resourceFromAttributes({ 'service.version': packageVersion(), 'service.instance.id': replicaId }),
    ),
    resourceDetectors: [envDetector, hostDetector],
    traceExporter: exporter,
    // Prometheus serves the metrics, and logs stay on stdout where they are redacted: traces only.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: instrumentations(),
  });
  sdk.start();
  // Loaded after start: the exporters and the logger's scrubber load grpc-js and pino, which must be patched first.
  opened(await exporterFor(protocol));
  exporter.scrub = (await import('./logger.js')).scrub;
  const tracer = trace.getTracer('otesse-keys', packageVersion());
  return {
    trace: {
      on: true,
      recording: () => trace.getActiveSpan()?.isRecording() === true,
      serve: (name, headers, attributes, fn) => serve(tracer, name, headers, attributes, fn),
      setAttributes: (attributes) => {
        trace.getActiveSpan()?.setAttributes(defined(attributes));
      },
      // Only beneath a recorded span: an unsampled Authenticate has none, and its argon2 verification must not
      // start a trace of its own.
      span: (name, fn, attributes) =>
        trace.getActiveSpan()?.isRecording() !== true
          ? fn()
          : tracer.startActiveSpan(name, { attributes: defined(attributes ?? {}) }, async (span) => {
              try {
                return await fn();
              } catch (err) {
                // The error's code, not its message: messages may quote input.
                const code = (err as { code?: unknown }).code;
                span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? code : 'error' });
                throw err;
              } finally {
                span.end();
              }
            }),
    },
    shutdown: () => sdk.shutdown(),
  };
}

/**
 * Trace.serve: the caller's context from its headers, and the span started with the sampler the SDK built
 * from OTEL_TRACES_SAMPLER; only a recorded span is made active (as the gRPC instrumentation would: a
 * SERVER span with its rpc.* attributes). An unsampled call pays for the sampling decision alone.
 */
function serve<T>(
  tracer: Tracer,
  name: string,
  headers: Headers,
  attributes: TraceAttributes,
  fn: (span: ServerSpan | undefined) => T,
): T {
  const parent = propagation.extract(ROOT_CONTEXT, headers, HEADERS);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
  if (!span.isRecording()) return fn(undefined);
  span.setAttributes(defined(attributes));
  return context.with(trace.setSpan(parent, span), fn, undefined, ended(span));
}

function ended(span: Span): ServerSpan {
  return {
    end: (attributes, failure) => {
      span.setAttributes(defined(attributes));
      if (failure !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
      span.end();
    },
  };
}

function instrumentations() {
  return [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (req) => QUIET_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
    }),
    new fastifyOtel.FastifyOtelInstrumentation({
      registerOnInitialization: true,
      instrumentHooks: false,
      ignorePaths: ({ url }) => QUIET_PATHS.has(url),
    }),
    new GrpcInstrumentation({ ignoreGrpcMethods: SERVED_METHODS }),
    // Background work (the change-log poll, heartbeats) would be a trace each: only inside a request.
    new PgInstrumentation({ requireParentSpan: true }),
    // The command's name only: its arguments hold cache keys (a digest of the API key) and signed entries.
    new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command) => command }),
    new UndiciInstrumentation(),
    // trace_id and span_id on log lines; the lines themselves are not sent: they are redacted on stdout only.
    new PinoInstrumentation({ disableLogSending: true }),
  ];
}

type Protocol = 'grpc' | 'http/json' | 'http/protobuf' | 'console';

/** The exporter the variables name; anything else is a configuration error naming the variable. */
function protocolOf(env: NodeJS.ProcessEnv): Protocol {
  const exporters = (env.OTEL_TRACES_EXPORTER ?? 'otlp')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (exporters.length !== 1 || !['otlp', 'console'].includes(exporters[0] ?? '')) {
    throw new ConfigError(`OTEL_TRACES_EXPORTER: one of otlp, console or none (got "${env.OTEL_TRACES_EXPORTER}")`);
  }
  if (exporters[0] === 'console') return 'console';
  const protocol =
    (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim() || 'http/protobuf';
  if (protocol !== 'grpc' && protocol !== 'http/json' && protocol !== 'http/protobuf') {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_PROTOCOL: one of grpc, http/protobuf or http/json (got "${protocol}")`);
  }
  return protocol;
}

/** The exporter reads its endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables itself. */
async function exporterFor(protocol: Protocol): Promise<SpanExporter> {
  switch (protocol) {
    case 'grpc':
      return new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter();
    case 'http/json':
      return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
    case 'http/protobuf':
      return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
    case 'console':
      return new (await import('@opentelemetry/sdk-trace')).ConsoleSpanExporter();
  }
}

/**
 * The last guard before spans leave the process (design: secret-never-kept): every string attribute,
 * event attribute and status message is scrubbed as log lines are (key-shaped text and bearer
 * credentials), and URLs lose their query string. The use cases set ids only; this catches what an
 * instrumentation copies from a request.
 */
class RedactingExporter implements SpanExporter {
  #inner: Promise<SpanExporter>;
  scrub: (text: string) => string = (text) => text;

  constructor(inner: Promise<SpanExporter>) {
    this.#inner = inner;
  }

  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    for (const span of spans) this.#redact(span);
    void this.#inner.then((e) => e.export(spans, done));
  }

  #redact(span: ReadableSpan): void {
    const attributes = span.attributes;
    for (const name of URL_ATTRIBUTES) {
      const value = attributes[name];
      if (typeof value === 'string') attributes[name] = value.split('?')[0];
    }
    delete attributes['url.query'];
    this.#scrubAll(attributes);
    for (const event of span.events) if (event.attributes) this.#scrubAll(event.attributes);
    if (span.status.message) (span.status as { message?: string }).message = this.scrub(span.status.message);
  }

  #scrubAll(attributes: Attributes): void {
    for (const [name, value] of Object.entries(attributes)) {
      if (typeof value === 'string') attributes[name] = this.scrub(value);
      else if (Array.isArray(value))
        attributes[name] = value.map((v: unknown) => (typeof v === 'string' ? this.scrub(v) : v)) as string[];
    }
  }

  async shutdown(): Promise<void> {
    await (await this.#inner).shutdown();
  }

  async forceFlush(): Promise<void> {
    await (await this.#inner).forceFlush?.();
  }
}

/** OpenTelemetry takes no undefined values: an attribute left out is absent. */
function defined(attributes: TraceAttributes): Attributes {
  const out: Attributes = {};
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined) out[name] = value;
  return out;
}

let version: string | undefined;
/** The service's version from its package.json (dist/src/observability/ or src/observability/ below it). */
function packageVersion(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    if (version) break;
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'otesse-key-service') version = pkg.version;
    } catch {
      // not there: the other layout
    }
  }
  return (version ??= 'unknown');
}
