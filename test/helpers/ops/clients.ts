import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { loadProto, type AuthenticateRequest, type AuthenticateResponse } from '../../../src/transport/grpc/server.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;
type KeyClient = grpc.Client & {
  Authenticate(
    req: AuthenticateRequest,
    md: grpc.Metadata,
    o: grpc.CallOptions,
    cb: Callback<AuthenticateResponse>,
  ): void;
};
type HealthClient = grpc.Client & {
  check(
    req: { service: string },
    md: grpc.Metadata,
    o: grpc.CallOptions,
    cb: Callback<{ status: string | number }>,
  ): void;
};

/** A call's outcome: the gRPC status, and the answer when OK. */
export interface Outcome<T> {
  code: grpc.status;
  res?: T;
  details?: string;
}

function settle<T>(run: (cb: Callback<T>) => void): Promise<Outcome<T>> {
  return new Promise((resolve) =>
    run((err, res) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, res })),
  );
}

const deadline = (ms: number) => ({ deadline: Date.now() + ms });

/** A KeyService client on any target (e.g. `ipv4:127.0.0.1:1,127.0.0.1:2`), with any credentials and channel options. */
export function keyServiceClient(
  t: TestLike,
  target: string,
  creds = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
) {
  const proto = grpc.loadPackageDefinition(loadProto()) as unknown as {
    otesse: {
      keys: { v1: { KeyService: new (a: string, c: grpc.ChannelCredentials, o?: grpc.ChannelOptions) => KeyClient } };
    };
  };
  const client = new proto.otesse.keys.v1.KeyService(target, creds, options);
  t.teardown(() => client.close());
  return {
    client,
    /** Authenticate; resolves the status instead of throwing (a 5 s deadline unless told). */
    authenticate(req: Partial<AuthenticateRequest>, timeoutMs = 5000): Promise<Outcome<AuthenticateResponse>> {
      const full = { key: '', ip: '203.0.113.7', scope: 'bookings:read', ...req };
      return settle((cb) => client.Authenticate(full, new grpc.Metadata(), deadline(timeoutMs), cb));
    },
  };
}

/** grpc.health.v1 Check on a target; resolves the status name, or the gRPC error code as `ERROR <code>`. */
export function healthChecker(t: TestLike, target: string, creds = grpc.credentials.createInsecure()) {
  const Health = grpc.makeClientConstructor(healthService, 'grpc.health.v1.Health');
  const client = new Health(target, creds) as unknown as HealthClient;
  t.teardown(() => client.close());
  return async (service: string, timeoutMs = 2000): Promise<string> => {
    const r = await settle<{ status: string | number }>((cb) =>
      client.check({ service }, new grpc.Metadata(), deadline(timeoutMs), cb),
    );
    return r.code === grpc.status.OK ? String(r.res?.status) : `ERROR ${grpc.status[r.code]}`;
  };
}

/** Poll until every check returns what is expected (or the time is up); resolves the last answers. */
export async function healthBecomes(
  check: (service: string) => Promise<string>,
  expected: Record<string, string>,
  timeoutMs = 10_000,
) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got: Record<string, string> = {};
    for (const service of Object.keys(expected)) got[service] = await check(service);
    if (Object.entries(expected).every(([s, v]) => got[s] === v) || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
}
