import t from 'tap';
import type { AuthResult } from '../../src/service/authenticator.js';
import { createKey, startTestApp, testEnv, type TestApp } from '../helpers/app.js';
import { waitFor } from '../helpers/replica.js';

t.test(
  'after a lost subscription, an entry Redis kept is re-read from PostgreSQL once, not fetched from Redis on every call',
  async (t) => {
    // Two replicas on one database and one Redis prefix: b finds in Redis what a verified.
    const env = await testEnv(t);
    const a = await startTestApp(t, {}, env);
    const b = await startTestApp(t, {}, env);
    t.ok(await waitFor(() => a.invalidator.healthy && b.invalidator.healthy), 'both replicas trust their caches');
    const key = await createKey(a);
    const auth = async (app: TestApp): Promise<AuthResult> =>
      app.authenticator.authenticate(key.secret, '203.0.113.7', 'bookings:read');
    t.equal((await auth(a)).decision.allowed, true, 'verified on a, which stores the entry in Redis');
    t.equal((await auth(b)).path, 'redis', 'b takes it from Redis');
    const verifications = b.hasher.verifications;
    // What b's invalidator does when its subscription drops; trust has come back since.
    b.local.markAllStale();
    // Trust comes back only after a catch-up, never within the millisecond of the loss: a read begun then is never cached.
    await new Promise((r) => setTimeout(r, 5));
    const paths: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await auth(b);
      t.equal(r.decision.allowed, true, `call ${i + 1} allowed`);
      paths.push(r.path);
    }
    t.same(
      paths,
      ['storage', 'memory', 'memory'],
      'one re-read from PostgreSQL, then memory (not Redis on every call)',
    );
    t.equal(b.hasher.verifications, verifications, 'no argon2: the entry was proof of verification');
  },
);
