import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { KeyServiceClient, type KeyServiceClientOptions } from '@otesse/keys-client';
import { KEY_HEADER_REDACT_PATHS } from '@otesse/keys-client/fastify';
import { buildBookingsApp } from '../../examples/bookings-api/app.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A KeyServiceClient closed at teardown. */
export function keysClient(t: TestLike, opts: KeyServiceClientOptions): KeyServiceClient {
  const client = new KeyServiceClient(opts);
  t.teardown(() => client.close());
  return client;
}

export interface Bookings {
  app: FastifyInstance;
  url: string;
  /** Every line the bookings API logged. */
  logs: string[];
  get(
    path: string,
    headers?: Record<string, string>,
    init?: RequestInit,
  ): Promise<{ status: number; body: any; headers: Headers }>;
}

/**
 * The example bookings API on a free port, asking the key service at `keyServiceAddr`. Its logger
 * writes request headers on purpose (debug level, a req serializer with headers) so a test sees
 * that the redaction, not the serializer's silence, keeps the key out.
 */
export async function startBookings(
  t: TestLike,
  keyServiceAddr: string,
  extra: { trustProxy?: string[]; deadlineMs?: number } = {},
): Promise<Bookings> {
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const client = keysClient(t, { address: keyServiceAddr, deadlineMs: extra.deadlineMs ?? 2000 });
  const app = await buildBookingsApp({
    client,
    trustProxy: extra.trustProxy ?? false,
    logger: {
      level: 'debug',
      stream,
      redact: KEY_HEADER_REDACT_PATHS,
      serializers: { req: (req) => ({ method: req.method, url: req.url, headers: req.headers }) },
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  return {
    app,
    url,
    logs,
    async get(path, headers = {}, init = {}) {
      const res = await fetch(`${url}${path}`, { headers, ...init });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON */
      }
      return { status: res.status, body, headers: res.headers };
    },
  };
}
