/**
 * The baseline: a gRPC server with the KeyService proto that answers every Authenticate with a
 * constant "allowed" (the same shape and about the same size as a real cache hit), and nothing
 * else. Run in its own process by bench/run.ts; prints one JSON line with its port.
 *
 *   node dist/bench/noop-server.js [--port 0] [--host 127.0.0.1]
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadProto, type AuthenticateRequest, type AuthenticateResponse } from '../src/transport/grpc/server.js';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } },
});

const ANSWER: AuthenticateResponse = Object.freeze({
  allowed: true,
  reason: 'DENY_REASON_UNSPECIFIED',
  key_id: 'key_AbCdEfGh1234',
  account_id: 'acct_bench',
  environment: 'live',
  scopes: ['bookings:read'],
  retry_after_ms: 0,
  metadata: '',
  allowed_uses: 1,
});

// The same server options as the service's GrpcServer, so the transport costs the same.
const server = new grpc.Server({
  'grpc.max_connection_age_ms': 300_000,
  'grpc.max_connection_age_grace_ms': 30_000,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.max_receive_message_length': 16 * 1024,
});
const proto = grpc.loadPackageDefinition(loadProto()) as unknown as {
  otesse: { keys: { v1: { KeyService: grpc.ServiceClientConstructor } } };
};
server.addService(proto.otesse.keys.v1.KeyService.service, {
  Authenticate: (
    call: grpc.ServerUnaryCall<AuthenticateRequest, AuthenticateResponse>,
    callback: grpc.sendUnaryData<AuthenticateResponse>,
  ) => {
    // Every use allowed, as the service answers a cache hit of a key without limits.
    const uses = call.request.uses ?? 0;
    callback(null, uses > 1 ? { ...ANSWER, allowed_uses: uses } : ANSWER);
  },
});

server.bindAsync(`${values.host}:${values.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`noop server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ msg: 'noop server started', grpcPort: port, pid: process.pid })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, 2000);
    server.tryShutdown(() => {
      clearTimeout(timer);
      process.exit(0);
    });
  });
}
