/**
 * A Fastify route for bench/callers.ts, in its own process: `plain` (no plugin), `plugin`
 * (@otesse/keys-client/fastify with the route's config.scope, key service at KEY_SERVICE_ADDR, local
 * decisions on, as by default), `plugin-remote` (the same with local decisions off: every request asked) or
 * `both` (the plugin with local decisions, and the same route unprotected under /bare: the plugin's cost
 * measured inside one process, where nothing else differs) or `hook` (no plugin: an onRequest hook that
 * only calls done(), the floor of any check Fastify runs before the handler).
 * Prints one JSON line with its port, as the other bench servers do.
 */
import fastify from 'fastify';
import otesseKeys from '@otesse/keys-client/fastify';

const mode = process.argv[2];
const app = fastify({ logger: false });
if (mode === 'plugin' || mode === 'plugin-remote' || mode === 'both')
  await app.register(otesseKeys, {
    address: process.env.KEY_SERVICE_ADDR ?? 'localhost:50051',
    clientOptions: { localDecisions: mode !== 'plugin-remote' },
  });
if (mode === 'hook') app.addHook('onRequest', (_request, _reply, done) => done());
const rows = [{ id: 'bk_1001', service: 'Deep clean', starts_at: '2026-12-01T09:00:00Z' }];
app.get('/v1/bookings', { config: { scope: 'bookings:read' } }, async () => ({ data: rows }));
if (mode === 'both') app.get('/bare/v1/bookings', async () => ({ data: rows }));
await app.listen({ host: '127.0.0.1', port: 0 });
const port = (app.server.address() as { port: number }).port;
process.stdout.write(`${JSON.stringify({ msg: 'bench server started', grpcPort: 0, httpPort: port, mode })}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
