// Fault suite (design: revoke-holds, change-log-catch-up, storage-down-bounded, redis-not-authority): PostgreSQL cut and slowed during admin writes, the
// writer killed between commit and publish, and junk on every channel and in every Redis key.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import t from 'tap';
import { Signer } from '../../src/cache/signer.js';
import { TEST_SIGNING_KEY } from '../helpers/app.js';
import { createKeys, type Node } from '../helpers/cluster.js';
import { createDatabase, REDIS_URL } from '../helpers/db.js';
import { newTally, report, startReplicas, traffic, writeAndCheck } from '../helpers/faults.js';
import { forgeKey } from '../helpers/keys.js';
import { startProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/replica.js';

const redisPort = Number(new URL(REDIS_URL).port || 6379);

t.test('PostgreSQL cut for 5 s, then slowed by 500 ms, during admin writes', async (t) => {
  const url = new URL(await createDatabase(t));
  const pg = await startProxy(t, Number(url.port));
  url.port = String(pg.port);
  const { nodes } = await startReplicas(t, { DATABASE_URL: url.toString() }, [{}, {}, {}]);
  const [writer, r1, r2] = nodes as [Node, Node, Node];
  const keys = await createKeys(writer, 12);
  const tally = newTally('PostgreSQL cut 5 s, then slowed 500 ms');
  await Promise.all([r1, r2].map((n) => Promise.all(keys.slice(8).map((k) => n.authenticate({ key: k.secret })))));
  const load = traffic([r1, r2], keys.slice(8), tally);

  pg.cut();
  const refused: number[] = [];
  for (const [i, key] of keys.slice(0, 4).entries())
    refused.push(await writeAndCheck(writer, [r1, r2], key, i % 2 ? 'narrow' : 'revoke', tally));
  t.same(refused, [503, 503, 503, 503], 'writes answer 503 while PostgreSQL is cut');
  await new Promise((r) => setTimeout(r, 3000));
  pg.heal();
  for (const key of keys.slice(0, 4))
    t.equal(
      (await writer.api('GET', `/v1/accounts/acct_1/keys/${key.id}`)).body.status,
      'active',
      'a refused write changed nothing',
    );

  pg.delay(500);
  for (const [i, key] of keys.slice(4, 6).entries())
    t.equal(await writeAndCheck(writer, [r1, r2], key, i % 2 ? 'narrow' : 'revoke', tally), 200, 'slow but done');
  pg.delay(0);
  for (const [i, key] of keys.slice(6, 8).entries())
    await writeAndCheck(writer, [r1, r2], key, i % 2 ? 'narrow' : 'revoke', tally);
  await load.stop();
  report(t, tally);
  t.equal(tally.writes, 4);
  t.equal(tally.staleAllows, 0, 'no stale allow');
  t.equal(tally.failed, 0, 'no failed call: verified keys served from memory through the outage');
});

t.test(
  'the writer killed (SIGKILL) between commit and publish: the change holds everywhere within the poll bound',
  async (t) => {
    const proxy = await startProxy(t, redisPort);
    const { nodes } = await startReplicas(t, { CHANGE_POLL_MS: '500' }, [{ REDIS_URL: proxy.url('redis') }, {}, {}]);
    const [writer, r1, r2] = nodes as [Node, Node, Node];
    const [key] = (await createKeys(writer, 1)) as [{ id: string; secret: string }];
    await Promise.all([r1, r2].map((n) => n.authenticate({ key: key.secret })));
    proxy.cut(); // the writer commits, then keeps failing to publish ...
    void writer.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {}).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    await writer.kill(); // ... and dies before it could
    const killedAt = Date.now();
    const row = await r1.api('GET', `/v1/accounts/acct_1/keys/${key.id}`);
    t.equal(row.body.status, 'revoked', 'the revoke was committed');
    const denied = await waitFor(
      async () =>
        (await Promise.all([r1, r2].map((n) => n.authenticate({ key: key.secret })))).every(
          (a) => a.reason === 'KEY_REVOKED',
        ),
      5000,
      20,
    );
    const took = Date.now() - killedAt;
    t.ok(denied, `every replica denies it ${took} ms after the kill (poll 500 ms)`);
    t.ok(took < 1500, 'within the poll bound');
    const later = await Promise.all([r1, r2].map((n) => n.authenticate({ key: key.secret })));
    t.notOk(
      later.some((a) => a.allowed),
      'and keeps denying it',
    );
    t.comment(
      `FAULT ${JSON.stringify({ case: 'writer killed between commit and publish', writes: 1, stale_allows: 0, held_everywhere_after_ms: took })}`,
    );
  },
);

t.test('junk on every channel and in every Redis key: no crash, no grant, revokes still hold', async (t) => {
  const { env, nodes } = await startReplicas(t, {}, [{}, {}, {}]);
  const [writer, r1, r2] = nodes as [Node, Node, Node];
  const keys = await createKeys(writer, 10);
  const p = env.REDIS_PREFIX!;
  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  const junk = [
    'x',
    '',
    '{}',
    'null',
    '[]',
    '{"o":"r0","a":"1","t":1,"c":[[1,"key_x",1]]}',
    '\u0000\uffff',
    'A'.repeat(43) + '.{}',
    JSON.stringify({ o: 'r0', a: 'x', t: 0, c: [[999999, 'key_AAAAAAAAAAAA', 1]] }),
    '1'.repeat(100_000),
  ];
  const channels = [`${p}changes`, ...nodes.flatMap((_, i) => [`${p}ack:r${i}`, `${p}beat:r${i}`]), `${p}other`];
  for (const ch of channels) for (const j of junk) await redis.publish(ch, j);

  // Junk entries under every key of a real key, a forged entry for a made-up key, and a correctly signed
  // entry from the future for a revoked key (it would otherwise stay fresh for ever).
  const [victim, revoked] = keys as [{ id: string; secret: string }, { id: string; secret: string }];
  const digest = (k: string) => createHash('sha256').update(k).digest('base64url');
  for (const j of junk) await redis.hset(`${p}k:${victim.id}`, digest(victim.secret), j);
  await redis.set(`${p}v:${victim.id}`, 'not a number');
  await redis.zadd(`${p}replicas`, '99999999999999', 'ghost', '1', 'x');
  const made = forgeKey('live', 'ZZZZZZZZZZZZ', 'S'.repeat(32));
  const grant = (id: string, revokedAt: number | null) => ({
    keyId: id,
    accountId: 'acct_1',
    environment: 'live',
    scopes: ['bookings:read'],
    allowedIps: [],
    expiresAt: null,
    revokedAt,
    version: 99,
  });
  await redis.hset(
    `${p}k:key_ZZZZZZZZZZZZ`,
    digest(made),
    JSON.stringify({ data: grant('key_ZZZZZZZZZZZZ', null), refreshedAt: Date.now() }),
  );
  t.equal((await writer.api('POST', `/v1/accounts/acct_1/keys/${revoked.id}/revoke`, {})).status, 200);
  const signer = new Signer(TEST_SIGNING_KEY);
  await redis.hset(
    `${p}k:${revoked.id}`,
    digest(revoked.secret),
    signer.sign(
      `entry:${revoked.id}:${digest(revoked.secret)}`,
      JSON.stringify({ data: grant(revoked.id, null), refreshedAt: Date.now() + 3_600_000 }),
    ),
  );
  // A correctly signed entry moved to another key's digest.
  await redis.hset(
    `${p}k:${revoked.id}`,
    digest(made),
    signer.sign(
      `entry:${revoked.id}:${digest(revoked.secret)}`,
      JSON.stringify({ data: grant(revoked.id, null), refreshedAt: Date.now() }),
    ),
  );

  const tally = newTally('junk on every channel and key');
  for (const n of nodes) {
    t.equal((await n.authenticate({ key: made })).allowed, false, 'a forged entry for a made-up key grants nothing');
    t.equal(
      (await n.authenticate({ key: revoked.secret })).reason,
      'KEY_REVOKED',
      'an entry from the future grants nothing',
    );
    t.equal(
      (await n.authenticate({ key: victim.secret })).allowed,
      true,
      'a junk entry is ignored: the real key still works',
    );
  }
  for (const [i, key] of keys.slice(2).entries())
    await writeAndCheck(writer, [r1, r2], key, i % 2 ? 'narrow' : 'revoke', tally);
  report(t, tally);
  t.equal(tally.staleAllows, 0, 'no stale allow');
  for (const n of nodes) {
    t.equal(n.proc.exitCode, null, 'still running');
    t.ok(
      (await n.metric('otesse_keys_redis_rejected_total{kind="changes"}')) > 0 || (await n.ready()),
      'alive and answering',
    );
  }
  const rejected = await Promise.all(
    ['changes', 'beat', 'ack', 'entry'].map((k) => r1.metric(`otesse_keys_redis_rejected_total{kind="${k}"}`)),
  );
  t.ok(
    rejected.every((v) => v > 0),
    `dropped input counted by kind (changes, beat, ack, entry: ${rejected.join(', ')})`,
  );
  t.ok(
    r1.logs.some((l) => l.includes('dropped unreadable or unauthenticated input from Redis')),
    'and logged',
  );
});
