// grpc.health.v1 as the kubelet and load balancers see it (design: readiness-is-local): readiness ("" and
// the KeyService name) says whether this replica can serve: not ready until first subscribed and
// caught up, then SERVING through faults every replica shares (Redis, PostgreSQL), which show in
// the body of /readyz instead; "liveness" never follows dependencies; the plaintext health-only
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
import { waitFor } from '../helpers/replica.js';

const READY = { '': 'SERVING', 'otesse.keys.v1.KeyService': 'SERVING', liveness: 'SERVING' };
const UNREADY = { '': 'NOT_SERVING', 'otesse.keys.v1.KeyService': 'NOT_SERVING', liveness: 'SERVING' };

async function readyz(
  url: string,
): Promise<{ status: number; body: { status?: string; degraded?: string[]; detail?: string } }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status?: string; degraded?: string[] } };
}

t.test('not ready until first subscribed and caught up; then shared faults never flip readiness', async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const pgUrl = new URL(await createDatabase(t));
  const pg = await startProxy(t, Number(pgUrl.port));
  pgUrl.port = String(pg.port);
  const app = await startTestApp(t, {
    REDIS_URL: redis.url,
    DATABASE_URL: pgUrl.toString(),
    HEARTBEAT_MS: '100',
    LEASE_MS: '500',
  });
  const check = healthChecker(t, `127.0.0.1:${app.grpcPort}`);
  t.same(await healthBecomes(check, UNREADY), UNREADY, 'started without Redis: alive, not ready (never subscribed)');
  t.equal((await readyz(app.url)).status, 503, '/readyz 503 before the first catch-up');
  await redis.restart();
  t.same(await healthBecomes(check, READY, 15_000), READY, 'subscribed and caught up: ready');
  const key = await createKey(app);

  // What the kubelet's probes would have seen from now on.
  const seen: string[] = [];
  const sampler = setInterval(() => {
    void Promise.all([check(''), check('liveness')]).then((s) => seen.push(...s));
  }, 100);
  t.teardown(() => clearInterval(sampler));

  await redis.kill();
  t.ok(
    await waitFor(
      async () => (await readyz(app.url)).body.degraded?.some((d) => d.startsWith('redis unreachable')) ?? false,
    ),
    '/readyz names Redis as degraded',
  );
  await new Promise((r) => setTimeout(r, 1500));
  const down = await readyz(app.url);
  t.equal(down.status, 200, '/readyz stays 200 through a Redis outage');
  t.equal(down.body.status, 'degraded');
  t.equal(
    (await app.authenticate({ key: key.secret })).allowed,
    true,
    'and the replica keeps answering from PostgreSQL',
  );
  await redis.restart();
  t.ok(
    await waitFor(async () => (await readyz(app.url)).body.status === 'ready', 15_000),
    'Redis back: no longer degraded',
  );

  pg.cut();
  t.ok(
    await waitFor(
      async () => (await readyz(app.url)).body.degraded?.some((d) => d.startsWith('storage unreachable')) ?? false,
    ),
    '/readyz names PostgreSQL as degraded',
  );
  await new Promise((r) => setTimeout(r, 1500));
  t.equal((await readyz(app.url)).status, 200, 'still 200');
  t.equal(
    (await app.authenticate({ key: key.secret })).allowed,
    true,
    'the verified key serves within the stale bound',
  );
  pg.heal();
  t.ok(await waitFor(async () => (await readyz(app.url)).body.status === 'ready', 15_000), 'PostgreSQL back');
  clearInterval(sampler);
  t.ok(seen.length > 20, `probes sampled ${seen.length} times through both outages`);
  t.same([...new Set(seen)], ['SERVING'], 'readiness and liveness never left SERVING');
});

t.test(
  'with mutual TLS on gRPC, GRPC_HEALTH_PORT serves plaintext health only and stays SERVING through a Redis outage',
  async (t) => {
    const pki = makePki(t);
    const redis = await startRedis(t);
    const app = await startTestApp(t, {
      REDIS_URL: redis.url,
      HEARTBEAT_MS: '200',
      GRPC_HEALTH_PORT: '0',
      GRPC_TLS_CERT: pki.server.cert,
      GRPC_TLS_KEY: pki.server.key,
      GRPC_TLS_CA: pki.ca,
    });
    t.ok(
      app.healthPort && app.healthPort !== app.grpcPort,
      `health port ${app.healthPort} beside gRPC ${app.grpcPort}`,
    );
    const probe = healthChecker(t, `127.0.0.1:${app.healthPort}`);
    const mtls = grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.client.key), pki.read(pki.client.cert));
    const inside = healthChecker(t, `127.0.0.1:${app.grpcPort}`, mtls);
    t.same(await healthBecomes(probe, READY), READY, 'the plaintext probe port reports ready');
    t.same(await healthBecomes(inside, READY), READY, 'the mTLS port reports the same');
    t.match(
      await healthChecker(t, `127.0.0.1:${app.grpcPort}`)('liveness'),
      /^ERROR/,
      'a plaintext probe of the gRPC port itself fails',
    );

    const key = await createKey(app);
    const onProbePort = await keyServiceClient(t, `127.0.0.1:${app.healthPort}`).authenticate({ key: key.secret });
    t.equal(onProbePort.code, grpc.status.UNIMPLEMENTED, 'Authenticate is not served on the plaintext port');

    await redis.kill();
    await new Promise((r) => setTimeout(r, 1500));
    t.same(await healthBecomes(probe, READY), READY, 'Redis lost: the probe port still says SERVING');
    t.same(await healthBecomes(inside, READY), READY, 'and so does the mTLS port');
  },
);

/** A TCP forwarder that counts the connections it accepted. */
async function countingProxy(t: { teardown(fn: () => unknown): void }, port: number) {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {}).on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
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
