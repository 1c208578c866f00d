// grpc.health.v1 as the kubelet and load balancers see it: readiness ("" and the KeyService
// name) follows storage, cache and subscription; "liveness" does not; the plaintext health-only
// port answers the same while the gRPC port requires mutual TLS.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKey, startTestApp, testEnv } from '../helpers/app.js';
import { createDatabase } from '../helpers/db.js';
import { makePki } from '../helpers/ops/certs.js';
import { healthBecomes, healthChecker, keyServiceClient } from '../helpers/ops/clients.js';
import { startProxy } from '../helpers/proxy.js';
import { startRedis } from '../helpers/redis-server.js';

const READY = { '': 'SERVING', 'otesse.keys.v1.KeyService': 'SERVING', liveness: 'SERVING' };
const UNREADY = { '': 'NOT_SERVING', 'otesse.keys.v1.KeyService': 'NOT_SERVING', liveness: 'SERVING' };

t.test('readiness follows Redis and PostgreSQL, liveness does not', async (t) => {
  const redis = await startRedis(t);
  const pgUrl = new URL(await createDatabase(t));
  const pg = await startProxy(t, Number(pgUrl.port));
  pgUrl.port = String(pg.port);
  const app = await startTestApp(t, { REDIS_URL: redis.url, DATABASE_URL: pgUrl.toString(), HEARTBEAT_MS: '200' });
  const check = healthChecker(t, `127.0.0.1:${app.grpcPort}`);
  t.same(await healthBecomes(check, READY), READY, 'all SERVING once started');
  // What the kubelet's liveness probe would have seen throughout.
  const liveness: string[] = [];
  const sampler = setInterval(() => { void check('liveness').then((s) => liveness.push(s)); }, 100);
  t.teardown(() => clearInterval(sampler));

  await redis.kill();
  t.same(await healthBecomes(check, UNREADY), UNREADY, 'Redis lost: not ready, still alive');
  t.equal((await fetch(`${app.url}/readyz`)).status, 503, '/readyz agrees');
  await redis.restart();
  t.same(await healthBecomes(check, READY, 15_000), READY, 'Redis back: ready again');

  pg.cut();
  t.same(await healthBecomes(check, UNREADY), UNREADY, 'PostgreSQL lost: not ready, still alive');
  pg.heal();
  t.same(await healthBecomes(check, READY, 15_000), READY, 'PostgreSQL back: ready again');
  clearInterval(sampler);
  t.ok(liveness.length > 20, `liveness sampled ${liveness.length} times through both outages`);
  t.same([...new Set(liveness)], ['SERVING'], 'liveness never left SERVING');
});

t.test('with mutual TLS on gRPC, GRPC_HEALTH_PORT serves plaintext health only, and follows Redis', async (t) => {
  const pki = makePki(t);
  const redis = await startRedis(t);
  const app = await startTestApp(t, {
    REDIS_URL: redis.url, HEARTBEAT_MS: '200', GRPC_HEALTH_PORT: '0',
    GRPC_TLS_CERT: pki.server.cert, GRPC_TLS_KEY: pki.server.key, GRPC_TLS_CA: pki.ca,
  });
  t.ok(app.healthPort && app.healthPort !== app.grpcPort, `health port ${app.healthPort} beside gRPC ${app.grpcPort}`);
  const probe = healthChecker(t, `127.0.0.1:${app.healthPort}`);
  const mtls = grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.client.key), pki.read(pki.client.cert));
  const inside = healthChecker(t, `127.0.0.1:${app.grpcPort}`, mtls);
  t.same(await healthBecomes(probe, READY), READY, 'the plaintext probe port reports ready');
  t.same(await healthBecomes(inside, READY), READY, 'the mTLS port reports the same');
  t.match(await healthChecker(t, `127.0.0.1:${app.grpcPort}`)('liveness'), /^ERROR/, 'a plaintext probe of the gRPC port itself fails');

  const key = await createKey(app);
  const onProbePort = await keyServiceClient(t, `127.0.0.1:${app.healthPort}`).authenticate({ key: key.secret });
  t.equal(onProbePort.code, grpc.status.UNIMPLEMENTED, 'Authenticate is not served on the plaintext port');

  await redis.kill();
  t.same(await healthBecomes(probe, UNREADY), UNREADY, 'Redis lost: the probe port says not ready, still alive');
  t.same(await healthBecomes(inside, UNREADY), UNREADY, 'and so does the mTLS port');
  await redis.restart();
  t.same(await healthBecomes(probe, READY, 15_000), READY, 'Redis back: ready again on the probe port');
});

/** A TCP forwarder that counts the connections it accepted. */
async function countingProxy(t: { teardown(fn: () => unknown): void }, port: number) {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    for (const s of [client, upstream]) { sockets.add(s); s.on('error', () => {}).on('close', () => { client.destroy(); upstream.destroy(); }); }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

t.test('grpc.max_connection_age_ms: connections are recycled under steady traffic, no call fails', async (t) => {
  const env = await testEnv(t, { GRPC_MAX_CONNECTION_AGE_MS: '1000' });
  const app = await startTestApp(t, {}, env);
  const key = await createKey(app);
  const proxy = await countingProxy(t, app.grpcPort);
  const client = keyServiceClient(t, `127.0.0.1:${proxy.port}`);
  let failed = 0;
  let calls = 0;
  const end = Date.now() + 3500;
  while (Date.now() < end) {
    const r = await client.authenticate({ key: key.secret });
    calls++;
    if (r.code !== grpc.status.OK || !r.res?.allowed) failed++;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(failed, 0, `${calls} calls over 3.5 s, none failed`);
  t.ok(proxy.accepted() >= 3, `the client had to reconnect: ${proxy.accepted()} connections for a 1 s maximum age`);
});
