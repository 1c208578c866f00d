// Design untrusted-without-lease: a SUBSCRIBE that fails (here refused by a Redis ACL) is retried with
// backoff; the replica becomes ready once it succeeds, without a restart.
import { Redis } from 'ioredis';
import t from 'tap';
import { startTestApp } from '../helpers/app.js';
import { startRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/replica.js';

t.test('a refused SUBSCRIBE is retried until it succeeds', async (t) => {
  const redis = await startRedis(t);
  const admin = new Redis(redis.url);
  t.teardown(() => admin.disconnect());
  await admin.call('ACL', 'SETUSER', 'default', '-subscribe');
  const app = await startTestApp(t, { REDIS_URL: redis.url, HEARTBEAT_MS: '100', LEASE_MS: '500' });
  await new Promise((r) => setTimeout(r, 1000));
  t.equal((await fetch(`${app.url}/readyz`)).status, 503, 'not ready while SUBSCRIBE is refused');
  t.equal(app.invalidator.everReady, false);
  await admin.call('ACL', 'SETUSER', 'default', '+subscribe');
  t.ok(
    await waitFor(async () => (await fetch(`${app.url}/readyz`)).status === 200, 10_000),
    'ready once SUBSCRIBE is allowed again, without a restart',
  );
  t.ok(await waitFor(() => app.invalidator.healthy, 5000), 'and trusts its caches');
});
