import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { loadProto, type AuthenticateRequest, type AuthenticateResponse } from '../../src/transport/grpc/server.js';
import { createDatabase, directUrl, redisPrefix, REDIS_URL } from './db.js';

/** The HMAC key every test replica shares (design: redis-not-authority). */
export const TEST_SIGNING_KEY = 'test-signing-key-0123456789abcdef-0123456789';
export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
export const LIMITED_TOKEN = 'limited-token-0123456789abcdef';
/** `admin` may act on every account; `limited` only on acct_limited. */
export const ADMIN_TOKENS = `admin:${ADMIN_TOKEN},limited:${LIMITED_TOKEN}:acct_limited`;

/** Every log line any app wrote during this test process (to check that no secret leaks). */
export const capturedLogs: string[] = [];

interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface TestApp extends App {
  url: string;
  env: Record<string, string>;
  /** Admin API call with the admin token; JSON in, JSON out. */
  api(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; body: any; headers: Headers }>;
  /** gRPC Authenticate over a real connection. */
  authenticate(req: Partial<AuthenticateRequest>): Promise<AuthenticateResponse>;
}

/** Environment for a test service: its own database and Redis prefix, ports 0, cheap argon2. */
export async function testEnv(t: TestLike, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const database = await createDatabase(t);
  const env: Record<string, string> = {
    DATABASE_URL: database,
    // Through PgBouncer (TEST_PG_VIA_PGBOUNCER), migrations take the direct URL, as in production.
    ...(directUrl(database) !== database && !extra.DATABASE_URL ? { DATABASE_MIGRATION_URL: directUrl(database) } : {}),
    REDIS_URL,
    REDIS_PREFIX: redisPrefix(),
    CACHE_SIGNING_KEY: TEST_SIGNING_KEY,
    GRPC_PORT: '0',
    HTTP_PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_TOKENS,
    LOG_LEVEL: 'debug',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    SHUTDOWN_GRACE_MS: '2000',
    // Tests drive the admin API far faster than people do; the rate-limit tests set their own.
    ADMIN_RATE_LIMIT_PER_TOKEN: '1000000',
    ADMIN_RATE_LIMIT_PER_ADDRESS: '1000000',
    ...extra,
  };
  return env;
}

type KeyClient = grpc.Client & {
  Authenticate(req: AuthenticateRequest, cb: (err: grpc.ServiceError | null, res?: AuthenticateResponse) => void): void;
};

/** A KeyService client for a port; closed at teardown. */
export function grpcClient(t: TestLike, port: number, creds = grpc.credentials.createInsecure()) {
  const proto = grpc.loadPackageDefinition(loadProto()) as unknown as {
    otesse: { keys: { v1: { KeyService: new (a: string, c: grpc.ChannelCredentials, o?: object) => KeyClient } } };
  };
  const client = new proto.otesse.keys.v1.KeyService(`127.0.0.1:${port}`, creds);
  t.teardown(() => client.close());
  return {
    client,
    // A function of its own (no `this`): callers pass it around detached.
    authenticate: (req: Partial<AuthenticateRequest>): Promise<AuthenticateResponse> => {
      const full = { key: '', ip: '203.0.113.7', scope: 'bookings:read', ...req };
      return new Promise((resolve, reject) =>
        client.Authenticate(full, (err, res) =>
          err || !res
            ? reject(err ?? new Error('Authenticate answered neither an error nor a response'))
            : resolve(res),
        ),
      );
    },
  };
}

/** Start the whole service in this process with the test's own database and Redis prefix. */
export async function startTestApp(
  t: TestLike,
  extra: Record<string, string> = {},
  env?: Record<string, string>,
): Promise<TestApp> {
  const e = env ?? (await testEnv(t, extra));
  const sink = new Writable({
    write(chunk, _enc, cb) {
      capturedLogs.push(String(chunk));
      cb();
    },
  });
  const app = await startApp(loadConfig(e), createLogger(e.LOG_LEVEL ?? 'debug', sink));
  t.teardown(() => app.close());
  const url = `http://127.0.0.1:${app.httpPort}`;
  const client = grpcClient(t, app.grpcPort);
  const api = async (method: string, path: string, body?: unknown, token = ADMIN_TOKEN) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  return Object.assign(app, { url, env: e, api, authenticate: client.authenticate });
}

/** Create a key through the admin API; returns the resource and its secret. */
export async function createKey(app: TestApp, account = 'acct_1', body: Record<string, unknown> = {}) {
  const res = await app.api('POST', `/v1/accounts/${account}/keys`, {
    label: 'test key',
    scopes: ['bookings:read'],
    environment: 'live',
    ...body,
  });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; secret: string; [k: string]: unknown };
}
