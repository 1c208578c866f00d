// Traces: one trace from a calling app's route through the client, Authenticate and PostgreSQL, with
// no key or secret in any attribute; and with no OTEL_* variable, nothing of OpenTelemetry loaded.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { context, propagation, trace } from '@opentelemetry/api';
import fastifyOtel from '@fastify/otel';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ADMIN_TOKEN, testEnv } from '../helpers/app.js';
import { startBookings } from '../helpers/callers.js';
import { partsOf } from '../helpers/keys.js';
import { startReplica, waitFor } from '../helpers/replica.js';
import { loadProto, type AuthenticateRequest } from '../../src/transport/grpc/server.js';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type OtlpAttribute = { key: string; value: OtlpValue };
interface OtlpBody {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: {
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        attributes?: OtlpAttribute[];
      }[];
    }[];
  }[];
}

const valueOf = (v: OtlpValue) =>
  v.stringValue ?? v.boolValue ?? v.doubleValue ?? (v.intValue === undefined ? undefined : Number(v.intValue));
const attributesOf = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

/** An OTLP/HTTP receiver (JSON encoding) on a free loopback port: every span and every raw body it was sent. */
async function startReceiver(t: Test) {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += String(chunk);
    });
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        bodies.push(text);
        for (const rs of (JSON.parse(text) as OtlpBody).resourceSpans ?? []) {
          const service = String(attributesOf(rs.resource?.attributes)['service.name']);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
                name: s.name,
                kind: s.kind,
                attributes: attributesOf(s.attributes),
              });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, bodies };
}

/** The calling app's own tracing, as a service using the plugin would set it up, exporting to the receiver. */
function traceCallingApp(t: Test, receiver: string) {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'bookings-api' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${receiver}/v1/traces` }) })],
  });
  provider.register();
  // Fastify's own instrumentation: each app made from now on gets its route spans.
  const routes = new fastifyOtel.FastifyOtelInstrumentation({ registerOnInitialization: true });
  routes.enable();
  t.teardown(async () => {
    routes.disable();
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  });
  return provider;
}

type TracedClient = grpc.Client & {
  Authenticate(req: AuthenticateRequest, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null) => void): void;
};

/** Authenticate calls sent with a `traceparent` of the test's own (as a caller's SDK would send it); resolve the gRPC status. */
function tracedCalls(t: Test, port: number) {
  const proto = grpc.loadPackageDefinition(loadProto()) as unknown as {
    otesse: { keys: { v1: { KeyService: new (a: string, c: grpc.ChannelCredentials) => TracedClient } } };
  };
  const client = new proto.otesse.keys.v1.KeyService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  return (req: AuthenticateRequest, traceId: string, sampled: boolean) =>
    new Promise<grpc.status>((resolve) => {
      const metadata = new grpc.Metadata();
      metadata.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-${sampled ? '01' : '00'}`);
      client.Authenticate(req, metadata, (err) => resolve(err ? err.code : grpc.status.OK));
    });
}

/** The span's ancestors within its trace, nearest first. */
function ancestors(spans: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (let s = span; s.parentSpanId;) {
    const parent = spans.find((p) => p.spanId === s.parentSpanId && p.traceId === s.traceId);
    if (!parent) break;
    out.push(parent);
    s = parent;
  }
  return out;
}

t.test(
  "one trace runs from the calling app's route through the client and Authenticate to PostgreSQL, with no key in it",
  async (t) => {
    const receiver = await startReceiver(t);
    const env = await testEnv(t, {
      LOG_LEVEL: 'info',
      REPLICA_ID: 'traced-r0',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    const replica = await startReplica(t, env);
    const admin = `http://127.0.0.1:${replica.httpPort}`;

    // An admin request continuing a trace of the caller's, as a gateway or console would send it.
    const adminTrace = randomBytes(16).toString('hex');
    const created = await fetch(`${admin}/v1/accounts/acct_1/keys`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        'content-type': 'application/json',
        traceparent: `00-${adminTrace}-${randomBytes(8).toString('hex')}-01`,
      },
      body: JSON.stringify({ label: 'traced', scopes: ['bookings:read'], environment: 'live' }),
    });
    t.equal(created.status, 201);
    const { id: keyId, secret: key } = (await created.json()) as { id: string; secret: string };

    const provider = traceCallingApp(t, receiver.url);
    const bookings = await startBookings(t, `127.0.0.1:${replica.grpcPort}`);
    t.equal(
      (await bookings.get('/v1/bookings', { authorization: `Bearer ${key}` })).status,
      200,
      'the first call: PostgreSQL and argon2',
    );
    t.equal(
      (await bookings.get('/v1/bookings', { authorization: `Bearer ${key}` })).status,
      200,
      'the second: from memory',
    );
    await provider.forceFlush();

    const isAuthenticate = (s: ReceivedSpan) =>
      s.service === 'otesse-keys' &&
      s.attributes['otesse.key_id'] === keyId &&
      s.attributes['otesse.tier'] !== undefined;
    const isDatabase = (s: ReceivedSpan) =>
      s.service === 'otesse-keys' &&
      (s.attributes['db.system'] === 'postgresql' ||
        s.attributes['db.system.name'] === 'postgresql' ||
        s.attributes['db.system'] === 'redis' ||
        s.attributes['db.system.name'] === 'redis');
    const found = await waitFor(() => {
      const first = receiver.spans.find((s) => isAuthenticate(s) && s.attributes['otesse.tier'] === 'argon2');
      return Boolean(
        first &&
        receiver.spans.some((s) => isDatabase(s) && ancestors(receiver.spans, s).includes(first)) &&
        receiver.spans.filter(isAuthenticate).length >= 2 &&
        receiver.spans.some((s) => s.traceId === adminTrace && s.attributes['otesse.key_id'] === keyId),
      );
    }, 15_000);
    t.ok(
      found,
      `the spans arrived (${receiver.spans.length} spans: ${[...new Set(receiver.spans.map((s) => `${s.service}:${s.name}`))].join(', ')})`,
    );

    const auth = receiver.spans.find((s) => isAuthenticate(s) && s.attributes['otesse.tier'] === 'argon2');
    if (!auth) return;
    t.match(
      auth.attributes,
      {
        'otesse.key_id': keyId,
        'otesse.account_id': 'acct_1',
        'otesse.outcome': 'allowed',
        'otesse.scope': 'bookings:read',
        'otesse.tier': 'argon2',
      },
      'Authenticate says which key, what it decided and which tier answered',
    );
    t.notOk('otesse.deny_reason' in auth.attributes, 'no deny reason on an allow');
    const inTrace = receiver.spans.filter((s) => s.traceId === auth.traceId);
    const above = ancestors(receiver.spans, auth);
    const client = above.find(
      (s) => s.service === 'bookings-api' && s.name === 'otesse.keys.v1.KeyService/Authenticate',
    );
    t.ok(client, "beneath the client's call");
    t.equal(client?.kind, 3, 'a client span');
    t.equal(client?.attributes['otesse.outcome'], 'allowed');
    t.ok(
      above.find((s) => s.service === 'bookings-api' && s.attributes['http.route'] === '/v1/bookings'),
      "beneath the calling app's route span, in one trace",
    );
    const db = inTrace.filter((s) => isDatabase(s) && ancestors(receiver.spans, s).includes(auth));
    t.ok(db.length > 0, `PostgreSQL or Redis beneath Authenticate (${db.map((s) => s.name).join(', ')})`);
    t.ok(
      inTrace.some((s) => s.name === 'otesse.argon2.verify' && ancestors(receiver.spans, s).includes(auth)),
      'the verification as a span beneath it',
    );
    const again = receiver.spans.filter(isAuthenticate).find((s) => s !== auth);
    t.equal(again?.attributes['otesse.tier'], 'memory', 'the second call was answered from memory');
    t.match(
      auth,
      {
        name: 'grpc.otesse.keys.v1.KeyService/Authenticate',
        kind: 2,
        parentSpanId: client?.spanId,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': 'otesse.keys.v1.KeyService',
          'rpc.method': 'Authenticate',
          'rpc.grpc.status_code': 0,
        },
      },
      "a server span, the client span's child, with the gRPC instrumentation's attributes",
    );

    // Parent-based sampling (the default): a caller's unsampled trace makes no span here, a sampled one does.
    const call = tracedCalls(t, replica.grpcPort);
    const [unsampled, sampled, failed] = [1, 2, 3].map(() => randomBytes(16).toString('hex'));
    t.equal(await call({ key, ip: '203.0.113.7', scope: 'bookings:read' }, unsampled!, false), grpc.status.OK);
    t.equal(await call({ key, ip: '203.0.113.7', scope: 'bookings:read' }, sampled!, true), grpc.status.OK);
    t.equal(
      await call({ key, ip: 'not an address', scope: 'bookings:read' }, failed!, true),
      grpc.status.INVALID_ARGUMENT,
    );
    const spanOf = (traceId: string) => receiver.spans.find((s) => s.traceId === traceId && s.kind === 2);
    t.ok(await waitFor(() => Boolean(spanOf(sampled!) && spanOf(failed!)), 15_000), 'the sampled calls made spans');
    t.match(spanOf(sampled!)?.attributes, { 'otesse.tier': 'memory', 'otesse.key_id': keyId });
    t.match(spanOf(failed!)?.attributes, { 'rpc.grpc.status_code': grpc.status.INVALID_ARGUMENT });
    t.notOk(
      receiver.spans.some((s) => s.traceId === unsampled),
      'the unsampled call made none (it was exported before the sampled one, had it been recorded)',
    );

    const adminSpans = receiver.spans.filter((s) => s.traceId === adminTrace && s.service === 'otesse-keys');
    t.ok(
      adminSpans.some((s) => s.attributes['http.route'] === '/v1/accounts/:accountId/keys'),
      "the admin route continues the caller's trace",
    );
    const logged = replica.logs.filter((l) => l.includes(`"trace_id":"${adminTrace}"`));
    t.ok(logged.length > 0, "the admin request's log lines carry its trace id");
    t.ok(
      logged.every((l) => /"span_id":"[0-9a-f]{16}"/.test(l)),
      'and a span id',
    );

    const digest = createHash('sha256').update(key).digest('base64url');
    const everything = receiver.bodies.join('\n');
    for (const [name, secret] of [
      ['key', key],
      ['secret', partsOf(key).secret],
      ['key digest', digest],
      ['admin token', ADMIN_TOKEN],
    ] as const) {
      t.notOk(everything.includes(secret), `no ${name} anywhere in what was exported`);
    }
  },
);

const PROBE = fileURLToPath(new URL('../fixtures/loaded-modules.mjs', import.meta.url));

/** The modules a replica loaded from start to SIGTERM. */
async function loadedBy(t: Test, extra: Record<string, string>): Promise<string[]> {
  const out = join(tmpdir(), `otesse-modules-${randomBytes(6).toString('hex')}.txt`);
  const env = await testEnv(t, {
    LOG_LEVEL: 'info',
    NODE_OPTIONS: `--import=${PROBE}`,
    LOADED_MODULES_OUT: out,
    ...extra,
  });
  const replica = await startReplica(t, env);
  t.equal(await replica.stop(), 0, 'stopped cleanly');
  return readFileSync(out, 'utf8').split('\n');
}

t.test('with no OTEL_* variable set, nothing of OpenTelemetry is loaded', async (t) => {
  // The API alone is a no-op without an SDK, and prom-client loads it anyway (for exemplars): everything else counts.
  const isOtel = (m: string) =>
    /[/\\](@opentelemetry|@fastify[/\\]otel|import-in-the-middle|require-in-the-middle)[/\\]/.test(m) &&
    !/[/\\]@opentelemetry[/\\]api[/\\]/.test(m);
  const off = await loadedBy(t, {});
  t.ok(
    off.some((m) => m.includes('/pg/')),
    "the probe sees the service's modules",
  );
  t.same(off.filter(isOtel), [], 'no SDK, exporter, instrumentation or loader hook');
  const on = await loadedBy(t, { OTEL_TRACES_EXPORTER: 'console', OTEL_BSP_SCHEDULE_DELAY: '100' });
  t.ok(
    on.some((m) => m.includes('@opentelemetry/sdk-node')),
    'the probe does see the SDK when tracing is asked for',
  );
});
