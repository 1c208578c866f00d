import * as grpc from '@grpc/grpc-js';
import type { AuthenticateRequest, AuthenticateResponse } from '../../src/transport/grpc/server.js';
import { ADMIN_TOKEN, grpcClient, testEnv } from './app.js';
import { startReplica, type Replica } from './replica.js';
import { probeReady } from './harness/process.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A replica with REST and gRPC clients. */
export interface Node extends Replica {
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  authenticate(req: Partial<AuthenticateRequest>): Promise<AuthenticateResponse>;
  /** Authenticate that resolves the gRPC status instead of throwing. */
  tryAuthenticate(req: Partial<AuthenticateRequest>): Promise<{ code: grpc.status; res?: AuthenticateResponse }>;
  ready(): Promise<boolean>;
  metric(name: string): Promise<number>;
}

/** Wrap a replica with clients. */
export function node(t: TestLike, r: Replica): Node {
  const client = grpcClient(t, r.grpcPort);
  const base = `http://127.0.0.1:${r.httpPort}`;
  return Object.assign(r, {
    async api(method: string, path: string, body?: unknown) {
      const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    authenticate: client.authenticate,
    async tryAuthenticate(req: Partial<AuthenticateRequest>) {
      try {
        return { code: grpc.status.OK, res: await client.authenticate(req) };
      } catch (err) {
        return { code: (err as grpc.ServiceError).code ?? grpc.status.UNKNOWN };
      }
    },
    async ready() {
      return (await probeReady(base)).status === 200;
    },
    async metric(name: string) {
      const text = await (await fetch(`${base}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line ? Number(line.split(' ')[1]) : Number.NaN;
    },
  });
}

/** Start `n` replica processes on one database and one Redis (from `extra` or the shared one). */
export async function startCluster(t: TestLike, n: number, extra: Record<string, string> = {}) {
  const env = await testEnv(t, { LOG_LEVEL: 'info', ...extra });
  const nodes: Node[] = [];
  // The first one migrates; the others start together.
  nodes.push(node(t, await startReplica(t, { ...env, REPLICA_ID: 'r0' })));
  const rest = await Promise.all(
    Array.from({ length: n - 1 }, (_, i) => startReplica(t, { ...env, REPLICA_ID: `r${i + 1}` })),
  );
  nodes.push(...rest.map((r) => node(t, r)));
  return { env, nodes };
}

/** Create keys through one replica. */
export async function createKeys(n: Node, count: number, account = 'acct_1', body: Record<string, unknown> = {}) {
  const out: { id: string; secret: string }[] = [];
  for (let i = 0; i < count; i++) {
    const res = await n.api('POST', `/v1/accounts/${account}/keys`, {
      label: `k${i}`,
      scopes: ['bookings:read', 'bookings:write'],
      environment: 'live',
      ...body,
    });
    if (res.status !== 201) throw new Error(`create failed ${res.status} ${JSON.stringify(res.body)}`);
    out.push({ id: res.body.id, secret: res.body.secret });
  }
  return out;
}
