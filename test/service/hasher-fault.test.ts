// An argon2 failure (a stored hash that does not decode, the native module failing, memory exhausted)
// is a fault: the caller gets an error, never KEY_UNKNOWN, and it counts toward no lockout
// (design: no-remote-lockout), while it is reported for the log and the metrics.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { AppError } from '../../src/domain/errors.js';
import { Hasher } from '../../src/service/hasher.js';
import { capturedLogs, createKey, startTestApp } from '../helpers/app.js';
import { query } from '../helpers/db.js';

const CHEAP = { memoryCost: 1024, timeCost: 1, parallelism: 1, maxConcurrency: 2, maxQueue: 10 };
/** A stored hash argon2 cannot decode: what a damaged row or a bad restore leaves behind. */
const CORRUPT = '$argon2id$v=19$m=1024,t=1,p=1$not-a-salt';

t.test('a stored hash argon2 cannot verify answers UNAVAILABLE, never KEY_UNKNOWN, and locks nobody out', async (t) => {
  const app = await startTestApp(t, { FAILED_ATTEMPTS_LIMIT: '2' });
  const key = await createKey(app);
  const [row] = await query(app.env.DATABASE_URL!, 'SELECT secret_hash FROM api_keys WHERE id = $1', [key.id]);
  await query(app.env.DATABASE_URL!, 'UPDATE api_keys SET secret_hash = $2 WHERE id = $1', [key.id, CORRUPT]);

  // More calls than the failure limit: were a fault a wrong secret, the last would be TOO_MANY_FAILURES.
  for (let i = 0; i < 4; i++) {
    const answer = await app.authenticate({ key: key.secret }).then(
      (r) => `answered ${r.allowed ? 'allowed' : r.reason}`,
      (err: grpc.ServiceError) => grpc.status[err.code],
    );
    t.equal(answer, 'UNAVAILABLE', `call ${i + 1}: a fault, not a decision`);
  }
  t.equal(app.hasher.faults, 4, 'each fault is counted');

  // Once the row is mended, the owner is not locked out from that address, and nothing remembered the secret as wrong.
  await query(app.env.DATABASE_URL!, 'UPDATE api_keys SET secret_hash = $2 WHERE id = $1', [key.id, row!.secret_hash]);
  const after = await app.authenticate({ key: key.secret });
  t.equal(after.allowed, true, 'the key works again from the same address');
  t.notOk(
    capturedLogs.some((l) => l.includes(key.secret)),
    'the secret was never logged',
  );
});

t.test(
  'a leak report of a key whose hash cannot be verified leaves it not_checked, not a false positive',
  async (t) => {
    const app = await startTestApp(t);
    const key = await createKey(app);
    await query(app.env.DATABASE_URL!, 'UPDATE api_keys SET secret_hash = $2 WHERE id = $1', [key.id, CORRUPT]);
    const res = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: [key.secret], source: 'scanner' });
    t.equal(res.status, 200);
    t.match(
      res.body.results[0],
      { label: null, key_id: null, outcome: 'not_checked' },
      'nothing decided: report it again',
    );
    t.equal((await app.api('GET', `/v1/accounts/acct_1/keys/${key.id}`)).body.status, 'active', 'nothing revoked');
    t.equal(app.hasher.faults, 1);
  },
);

t.test('the Hasher reports a fault and throws HASHER_FAULT; a wrong secret stays a plain false', async (t) => {
  const reported: unknown[] = [];
  const hasher = new Hasher({ ...CHEAP, onFault: (err) => reported.push(err) });
  const phc = await hasher.hash('the-right-secret');
  t.equal(await hasher.verify(phc, 'a-wrong-secret'), false, 'a wrong secret is an answer');
  t.equal(hasher.faults, 0);
  const fault = await hasher.verify('not a PHC string', 'the-right-secret').then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(fault instanceof AppError && fault.code === 'HASHER_FAULT', 'Authenticate lane: HASHER_FAULT');
  t.notMatch(
    (fault as Error).message,
    /PHC|argon2id|the-right-secret/,
    'the message (sent to callers) names neither the hash nor the secret',
  );
  await t.rejects(
    hasher.verifyForAdmin(CORRUPT, 'the-right-secret'),
    { code: 'HASHER_FAULT' },
    'admin lane: HASHER_FAULT',
  );
  t.equal(hasher.faults, 2, 'both counted');
  t.equal(reported.length, 2, "both reported with argon2's own error, for the log");
  t.ok(reported.every((e) => e instanceof Error && !e.message.includes('the-right-secret')));
});
