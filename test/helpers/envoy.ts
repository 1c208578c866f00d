import * as grpc from '@grpc/grpc-js';
import { ENVOY_SERVICE, loadEnvoyProto, type CheckRequest } from '../../src/transport/envoy-check.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface HeaderOption {
  header: { key: string; value: string };
  append_action: string;
}
/** CheckResponse as the proto-loader client decodes it (enums as names). */
export interface CheckAnswer {
  status: { code: number; message: string };
  http_response?: string;
  ok_response?: { headers: HeaderOption[]; headers_to_remove: string[] };
  denied_response?: { status: { code: string }; headers: HeaderOption[]; body: string };
}
type CheckClient = grpc.Client & {
  Check(req: CheckRequest, cb: (err: grpc.ServiceError | null, res?: CheckAnswer) => void): void;
};

/** Check over the proto subset in proto/envoy, the way Envoy calls it; closed at teardown. */
export function envoyClient(t: TestLike, port: number) {
  const pkg = grpc.loadPackageDefinition(loadEnvoyProto()) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: new (a: string, c: grpc.ChannelCredentials) => CheckClient } } } };
  };
  const client = new pkg.envoy.service.auth.v3.Authorization(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  return (req: CheckRequest) =>
    new Promise<CheckAnswer>((resolve, reject) =>
      client.Check(req, (err, res) => (res ? resolve(res) : reject(err ?? new Error('no answer')))),
    );
}

/** Check with bytes in and bytes out (an identity serializer): nothing of this repository's proto is used. */
export function rawCheckClient(t: TestLike, port: number) {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const identity = (b: Buffer) => b;
  return (bytes: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(`/${ENVOY_SERVICE}/Check`, identity, identity, bytes, (err, res) =>
        res ? resolve(res) : reject(err ?? new Error('no answer')),
      );
    });
}

/** A CheckRequest as Envoy builds it for an HTTP request. */
export function checkRequest(
  headers: Record<string, string>,
  opts: { scope?: string; ip?: string; method?: string; path?: string } = {},
): CheckRequest {
  return {
    attributes: {
      source: { address: { socket_address: { address: opts.ip ?? '203.0.113.7' } } },
      request: {
        http: {
          method: opts.method ?? 'GET',
          path: opts.path ?? '/v1/bookings',
          headers: { ':authority': 'api.otesse.com', ...headers },
        },
      },
      context_extensions: opts.scope ? { scope: opts.scope } : {},
    },
  };
}

export const headerMap = (options: HeaderOption[]) =>
  Object.fromEntries(options.map((o) => [o.header.key, o.header.value]));
