// The argon2 budget: admin hashing cannot starve Authenticate, and a call that has ended
// (deadline passed, cancelled) never starts a verification.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKey, grpcClient, startTestApp } from '../helpers/app.js';

const SLOW = {
  ARGON2_MEMORY_KIB: '65536',
  ARGON2_TIME_COST: '3',
  ARGON2_MAX_CONCURRENCY: '1',
  ARGON2_ADMIN_CONCURRENCY: '1',
};

t.test('a bulk create does not delay a cold Authenticate: admin hashing has its own lane', async (t) => {
  const app = await startTestApp(t, SLOW);
  const cold = await createKey(app);
  const finished: string[] = [];
  const creates = Array.from({ length: 8 }, (_, i) =>
    createKey(app, 'acct_bulk').then(() => {
      finished.push(`create ${i}`);
    }),
  );
  await new Promise((r) => setTimeout(r, 20));
  const auth = app.authenticate({ key: cold.secret }).then((r) => {
    finished.push('authenticate');
    return r;
  });
  t.equal((await auth).allowed, true);
  await Promise.all(creates);
  const at = finished.indexOf('authenticate');
  // Behind the admin queue it would finish last (9th); beside it, among the first. On a loaded machine the two lanes
  // share the cores with other work, so the order among the first few varies: ahead of half the queue is the claim.
  t.ok(
    at < finished.length / 2,
    `the verification ran beside the admin queue, not after it (finished ${at + 1} of ${finished.length})`,
  );
});

t.test('a call whose deadline passed while queued does not start a verification', async (t) => {
  const app = await startTestApp(t, { ...SLOW, ARGON2_MAX_QUEUE: '100' });
  const keys = [];
  for (let i = 0; i < 6; i++) keys.push(await createKey(app));
  const { client } = grpcClient(t, app.grpcPort);
  const call = (key: string, deadlineMs: number) =>
    new Promise<string>((resolve) => {
      (
        client as unknown as {
          Authenticate: (
            r: object,
            m: grpc.Metadata,
            o: grpc.CallOptions,
            cb: (e: grpc.ServiceError | null, r?: { allowed: boolean }) => void,
          ) => void;
        }
      ).Authenticate(
        { key, ip: '203.0.113.7', scope: 'bookings:read' },
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => resolve(err ? grpc.status[err.code] : res?.allowed ? 'allowed' : 'denied'),
      );
    });
  const before = app.hasher.verifications;
  const first = call(keys[0]!.secret, 10_000);
  const hurried = keys.slice(1).map((k) => call(k.secret, 30));
  const answers = await Promise.all(hurried);
  t.same(
    answers,
    ['DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED'],
    'the hurried callers gave up',
  );
  t.equal(await first, 'allowed');
  await new Promise((r) => setTimeout(r, 500)); // let any queued work drain
  t.equal(
    app.hasher.verifications - before,
    1,
    'only the call still waiting was verified: the ended ones never started hashing',
  );
});
