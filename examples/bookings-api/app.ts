import fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import otesseKeys, { KEY_HEADER_REDACT_PATHS } from '@otesse/keys-client/fastify';
import type { KeyServiceClient } from '@otesse/keys-client';
import { bookings, customers, invoices, type Booking } from './data.js';

export interface BookingsAppOptions {
  /** The key service address (used when `client` is not given). */
  keyServiceAddr?: string;
  client?: KeyServiceClient;
  logger?: FastifyServerOptions['logger'];
  /** Fastify's trustProxy: which proxies' X-Forwarded-For gives request.ip (the address the key is checked from). */
  trustProxy?: FastifyServerOptions['trustProxy'];
}

const newBooking = {
  type: 'object',
  required: ['customer_id', 'service', 'starts_at'],
  additionalProperties: false,
  properties: {
    customer_id: { type: 'string', minLength: 1, maxLength: 64 },
    service: { type: 'string', minLength: 1, maxLength: 200 },
    starts_at: { type: 'string', format: 'date-time' },
  },
} as const;

/** The Otesse bookings API: every route protected by one plugin registration and one route option. */
export async function buildBookingsApp(opts: BookingsAppOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? { level: 'info', redact: KEY_HEADER_REDACT_PATHS };
  const app = fastify({ logger, trustProxy: opts.trustProxy ?? false });
  await app.register(otesseKeys, { client: opts.client, address: opts.keyServiceAddr });

  app.get('/v1/bookings', { config: { scope: 'bookings:read' } }, async (request) => ({
    account_id: request.apiKey?.accountId,
    data: bookings,
  }));
  app.post<{ Body: Omit<Booking, 'id' | 'status'> }>(
    '/v1/bookings',
    { config: { scope: 'bookings:write' }, schema: { body: newBooking } },
    async (request, reply) => {
      const booking: Booking = { id: `bk_${1001 + bookings.length}`, ...request.body, status: 'pending' };
      bookings.push(booking);
      return reply.code(201).send(booking);
    },
  );
  app.get('/v1/customers', { config: { scope: 'customers:read' } }, async () => ({ data: customers }));
  app.get('/v1/invoices', { config: { scope: 'invoices:read' } }, async () => ({ data: invoices }));
  app.get('/healthz', async () => ({ status: 'ok' }));
  return app;
}
