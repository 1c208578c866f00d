// A start-up that fails part way (a port already taken) rejects with its error and leaves nothing
// open behind it: no PostgreSQL connection, no Redis connection, no listener, no timer holding
// the process (a supervisor restarts it; a test process ends).
import net from 'node:net';
import { Redis } from 'ioredis';
import t from 'tap';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { testEnv } from '../helpers/app.js';
import { PG_ADMIN_URL, query } from '../helpers/db.js';
import { freePort, startRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/replica.js';

/** A loopback port held by another listener for the rest of the test. */
async function takenPort(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

/** True when nothing listens on `port` any more (binding it works). */
async function free(port: number): Promise<boolean> {
  const server = net.createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (bound) await new Promise<void>((r) => server.close(() => r()));
  return bound;
}

const CASES = [
  // The admin port is bound after the pool, Redis, the change-log poll and the gRPC listener are up.
  ['HTTP_PORT taken', 'HTTP_PORT'],
  // The leak listener is bound after the admin API too.
  ['LEAK_REPORT_PORT taken', 'LEAK_REPORT_PORT'],
] as const;

for (const [name, variable] of CASES) {
  t.test(`${name}: start-up rejects with the bind error and closes the pool, Redis and the listeners`, async (t) => {
    const redis = await startRedis(t);
    const probe = new Redis(redis.url);
    t.teardown(() => probe.disconnect());
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const env = await testEnv(t, {
      REDIS_URL: redis.url,
      GRPC_PORT: String(grpcPort),
      HTTP_PORT: String(httpPort),
      LEAK_REPORT_PORT: '0',
    });
    env[variable] = String(await takenPort(t));
    const database = new URL(env.DATABASE_URL ?? '').pathname.slice(1);
    const pgConnections = async () =>
      Number(
        (await query(PG_ADMIN_URL, 'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [database]))[0]?.n,
      );
    const redisClients = async () =>
      String(await probe.call('CLIENT', 'LIST'))
        .split('\n')
        .filter(Boolean).length;

    await t.rejects(
      startApp(loadConfig(env), createLogger('silent')),
      { code: 'EADDRINUSE' },
      'the bind error, as it was',
    );

    t.ok(
      await waitFor(async () => (await pgConnections()) === 0, 3000),
      `no connection to the test database left (${await pgConnections()})`,
    );
    t.ok(
      await waitFor(async () => (await redisClients()) === 1, 3000),
      `no Redis connection left but this test's (${await redisClients()})`,
    );
    t.ok(await free(grpcPort), 'the gRPC port is free again');
    if (variable !== 'HTTP_PORT') t.ok(await free(httpPort), 'the admin port is free again');
  });
}
