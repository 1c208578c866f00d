import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import t from 'tap';
import { MemoryBus } from '../../src/cache/bus.js';
import type { CacheEntry } from '../../src/cache/entry.js';
import { LocalCache } from '../../src/cache/local-cache.js';
import type { SharedEntry } from '../../src/cache/shared-cache.js';
import { RedisSharedCache } from '../../src/cache/redis-shared-cache.js';
import { Signer } from '../../src/cache/signer.js';
import { MemoryFailureCounter } from '../../src/cache/failure-counter.js';
import { generateKey, SECRET_LENGTH } from '../../src/domain/key-format.js';
import { Authenticator } from '../../src/service/authenticator.js';
import { Hasher } from '../../src/service/hasher.js';
import { Invalidator } from '../../src/service/invalidator.js';
import { KeyService } from '../../src/service/key-service.js';
import type { Database, Queryable } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { createKey, grpcClient, startTestApp, TEST_SIGNING_KEY } from '../helpers/app.js';
import { createDatabase, redisPrefix, REDIS_URL } from '../helpers/db.js';
import { ALPHABET, forgeKey, partsOf } from '../helpers/keys.js';

t.test('a stampede of 500 concurrent first calls for one key costs one verification', async (t) => {
  const app = await startTestApp(t, { ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2' });
  const key = await createKey(app);
  const before = app.hasher.verifications;
  const answers = await Promise.all(Array.from({ length: 500 }, () => app.authenticate({ key: key.secret })));
  t.equal(answers.filter((a) => a.allowed).length, 500, 'all 500 allowed');
  t.equal(app.hasher.verifications - before, 1, 'one argon2 verification for all of them');
});

t.test(
  'unknown key ids and wrong secrets are answered without hashing; failures lock out the address, not the key',
  async (t) => {
    const app = await startTestApp(t, { FAILED_ATTEMPTS_LIMIT: '3' });
    const key = await createKey(app);
    // A well-formed key whose id was never created.
    const stranger = generateKey('live').key;
    const v0 = app.hasher.verifications;
    for (let i = 0; i < 5; i++) t.equal((await app.authenticate({ key: stranger })).reason, 'KEY_UNKNOWN');
    t.equal(app.hasher.verifications, v0, 'an unknown key id never reaches argon2');

    // A stranger who knows the (public) key id guesses secrets from one address, before the owner's first call.
    const attacker = '198.51.100.66';
    for (let i = 0; i < 3; i++)
      t.equal(
        (await app.authenticate({ key: forgeSecret(key.secret, 'ABC'[i]), ip: attacker })).reason,
        'KEY_UNKNOWN',
        'wrong secret',
      );
    t.equal(
      (await app.authenticate({ key: forgeSecret(key.secret, 'D'), ip: attacker })).reason,
      'TOO_MANY_FAILURES',
      'the guessing address is refused',
    );
    t.equal(
      (await app.authenticate({ key: forgeSecret(key.secret, 'E'), ip: '::ffff:198.51.100.66' })).reason,
      'TOO_MANY_FAILURES',
      'in IPv4-mapped IPv6 notation too',
    );
    t.equal(app.hasher.verifications, v0, 'wrong secrets never reached argon2 (refused by the check value)');
    t.equal(app.authenticator.refusedByCheck, 3, 'refused by the check value, counted');
    t.equal(
      (await app.authenticate({ key: key.secret, ip: '203.0.113.7' })).allowed,
      true,
      "the owner's first call, from elsewhere, is allowed",
    );
    t.equal(app.hasher.verifications, v0 + 1, 'with one verification');
    t.equal(
      (await app.authenticate({ key: key.secret, ip: attacker })).allowed,
      true,
      'a verified key is answered from memory even from the refused address',
    );
  },
);

t.test('3,000 wrong secrets for one key from 3,000 addresses force no argon2 verification', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  const v0 = app.hasher.verifications;
  const answers = await Promise.all(
    Array.from({ length: 3000 }, (_, i) =>
      app.authenticate({
        key: forgeSecret(key.secret, ALPHABET[i % 62]! + ALPHABET[Math.floor(i / 62) % 62]!),
        ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      }),
    ),
  );
  t.ok(
    answers.every((a) => !a.allowed),
    'all denied',
  );
  t.ok(
    app.hasher.verifications - v0 <= 1,
    `${app.hasher.verifications - v0} verifications (at most a one-in-four-billion collision)`,
  );
  const metrics = await (await fetch(`${app.url}/metrics`)).text();
  t.match(metrics, /otesse_keys_secret_check_refusals \d+/, 'refusals are a metric');
  t.equal((await app.authenticate({ key: key.secret })).allowed, true, 'the owner is not locked out');
});

t.test('a full verification queue answers RESOURCE_EXHAUSTED instead of stalling', async (t) => {
  const app = await startTestApp(t, {
    ARGON2_MEMORY_KIB: '65536',
    ARGON2_TIME_COST: '3',
    ARGON2_MAX_CONCURRENCY: '1',
    ARGON2_MAX_QUEUE: '2',
  });
  const keys = [];
  for (let i = 0; i < 12; i++) keys.push(await createKey(app));
  const client = grpcClient(t, app.grpcPort);
  const results = await Promise.all(
    keys.map((k) =>
      client.authenticate({ key: k.secret }).then(
        (r) => (r.allowed ? 'allowed' : r.reason),
        (err: grpc.ServiceError) => grpc.status[err.code],
      ),
    ),
  );
  t.ok(results.includes('RESOURCE_EXHAUSTED'), `some calls were shed: ${results.join(',')}`);
  t.ok(results.includes('allowed'), 'the ones admitted were verified');
  t.notOk(
    results.some((r) => r !== 'allowed' && r !== 'RESOURCE_EXHAUSTED'),
    'nothing else',
  );
});

/** The key with its secret replaced by `fill` repeated (checksum recomputed). */
function forgeSecret(key: string, fill = 'A'): string {
  const { environment, publicId } = partsOf(key);
  return forgeKey(environment, publicId, fill.repeat(SECRET_LENGTH).slice(0, SECRET_LENGTH));
}

t.test('a verification that read the key before a change cannot cache it after (forced interleaving)', async (t) => {
  const url = await createDatabase(t);
  const pg = new PgDatabase({ connectionString: url });
  t.teardown(() => pg.close());
  await migrate(pg);
  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  const prefix = redisPrefix();
  // Both tiers record every write attempt and its outcome.
  const writes = {
    local: [] as { version: number; stored: boolean }[],
    shared: [] as { version: number; stored: boolean }[],
  };
  const shared = new (class extends RedisSharedCache {
    override async set(digest: string, entry: SharedEntry) {
      const stored = await super.set(digest, entry);
      writes.shared.push({ version: entry.data.version, stored });
      return stored;
    }
  })({ redis, prefix, ttlMs: 60_000, signer: new Signer(TEST_SIGNING_KEY), skewMs: 250 });
  const local = new (class extends LocalCache {
    override set(entry: CacheEntry) {
      const stored = super.set(entry);
      writes.local.push({ version: entry.grant.version, stored });
      return stored;
    }
  })({ maxEntries: 100, maxAgeMs: 60_000 });
  const hasher = new Hasher({ memoryCost: 1024, timeCost: 1, parallelism: 1, maxConcurrency: 1, maxQueue: 10 });
  const log = { warn() {}, info() {} };

  // The verifier's database holds the key row it read until the test lets it go.
  let hold: Promise<void> | undefined;
  const gated: Database = {
    exec: (sql) => pg.exec(sql),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => pg.transaction(fn),
    close: async () => {},
    query: async <R>(sql: string, params?: readonly unknown[]) => {
      const out = await pg.query<R>(sql, params);
      if (hold && sql.startsWith('SELECT * FROM api_keys WHERE id')) await hold;
      return out;
    },
  };
  const invalidator = new Invalidator({
    db: pg,
    local,
    shared,
    bus: new MemoryBus({ replicaId: 'x' }),
    pollMs: 60_000,
    log,
    recentMs: 600_000,
    publishRetryMs: 1000,
  });
  await invalidator.start();
  t.teardown(() => invalidator.close());
  const keys = new KeyService({ db: pg, hasher, invalidator });
  const auth = new Authenticator({
    db: gated,
    local,
    shared,
    hasher,
    invalidator,
    freshMs: 60_000,
    staleServeMs: 0,
    failureLimit: 10,
    failures: new MemoryFailureCounter({ windowMs: 60_000 }),
  });
  const actor = { name: 'admin', sourceIp: '127.0.0.1' };
  const { row, key } = await keys.create(actor, 'acct_1', {
    label: 'l',
    scopes: ['bookings:read'],
    environment: 'live',
  });

  let release!: () => void;
  hold = new Promise<void>((r) => {
    release = r;
  });
  const inflight = auth.authenticate(key, '203.0.113.7', 'bookings:read');
  await new Promise((r) => setTimeout(r, 100)); // the verifier has read the active row and waits
  await keys.revoke(actor, 'acct_1', row.id, 'leaked');
  release();
  hold = undefined;
  await inflight;

  t.same(
    writes.local.filter((w) => w.version === 1),
    [{ version: 1, stored: false }],
    'the local cache refused the version read before the revoke',
  );
  t.notOk(
    writes.shared.some((w) => w.version === 1 && w.stored),
    'nor was it written to the shared cache',
  );
  const cached = local.get(createHash('sha256').update(key).digest('base64url'));
  t.ok(cached === undefined || cached.grant.revokedAt !== null, 'whatever the local cache holds is the revoked key');
  const inRedis = Object.values(await redis.hgetall(`${prefix}k:${row.id}`)).map(
    (v) => JSON.parse(v.slice(v.indexOf('.') + 1)).data.revokedAt,
  );
  t.notOk(inRedis.includes(null), 'whatever Redis holds is the revoked key');
  const after = await auth.authenticate(key, '203.0.113.7', 'bookings:read');
  t.equal(after.decision.allowed, false);
  t.equal(!after.decision.allowed && after.decision.reason, 'KEY_REVOKED', 'a call after the revoke is denied');
});
