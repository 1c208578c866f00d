import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';

interface TestLike {
  teardown(fn: () => unknown): void;
}

const require = createRequire(import.meta.url);
/** The reflection protos shipped with @grpc/reflection (build/src/index.js → build/proto/). */
const REFLECTION_PROTO_DIR = join(dirname(require.resolve('@grpc/reflection')), '..', 'proto');

type Unary<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;

/** grpc.health.v1 Check against a port; resolves the status name (or rejects with the gRPC error). */
export function healthClient(t: TestLike, port: number) {
  const Health = grpc.makeClientConstructor(healthService, 'grpc.health.v1.Health');
  const client = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    check: Unary<{ service: string }, { status: string | number }>;
  };
  t.teardown(() => client.close());
  return {
    check: (serviceName: string) =>
      new Promise<string>((resolve, reject) => {
        client.check({ service: serviceName }, (err, res) =>
          err || !res
            ? reject(err ?? new Error('Check answered neither an error nor a response'))
            : resolve(String(res.status)),
        );
      }),
  };
}

export interface ReflectionAnswer {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** One request on grpc.reflection.<version>.ServerReflection/ServerReflectionInfo (a bidi stream). */
export async function reflect(
  t: TestLike,
  port: number,
  version: 'v1' | 'v1alpha',
  request: Record<string, string>,
): Promise<ReflectionAnswer> {
  const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [REFLECTION_PROTO_DIR],
    keepCase: true,
    enums: String,
    longs: Number,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const Ctor = pkg.grpc.reflection[version]?.ServerReflection;
  if (!Ctor) throw new Error(`no reflection ${version} in the proto`);
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    ServerReflectionInfo(): grpc.ClientDuplexStream<Record<string, string>, ReflectionAnswer>;
  };
  t.teardown(() => client.close());
  const stream = client.ServerReflectionInfo();
  return new Promise((resolve, reject) => {
    stream.once('data', (answer: ReflectionAnswer) => {
      resolve(answer);
      stream.end();
    });
    stream.once('error', reject);
    stream.write(request);
  });
}
