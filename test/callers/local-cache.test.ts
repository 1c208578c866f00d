// The client's memory of allowed calls (design: callers-hold-leases), without a service: what may be
// decided, for how long, and what an invalidation, a floor or a lost stream takes away.
import t from 'tap';
import { digestOf, LocalDecisions } from '../../packages/keys-client/src/local.js';

const TERMS = { leaseMs: 200, beatMs: 50, floorMs: 60_000 };
const KEY = 'otesse_live_sk_test-key-not-a-real-one';
const allowed = (keyId = 'key_1', metadata: Record<string, unknown> | null = null) => ({
  allowed: true as const,
  identity: { keyId, accountId: 'acct_1', environment: 'live' as const, scopes: ['bookings:read'], metadata },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cache with a lease held now. */
function leased(limits = {}) {
  const local = new LocalDecisions(limits);
  local.opened(TERMS);
  local.echoed(local.nextBeat());
  return local;
}

t.test('decides only what was allowed, for the same address and scope, while the lease holds', async (t) => {
  const local = new LocalDecisions();
  local.opened(TERMS);
  local.learn(
    digestOf(KEY),
    '203.0.113.7',
    'bookings:read',
    allowed(),
    { version: 1, expiresAtMs: 0 },
    0,
    performance.now(),
  );
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'no lease yet: not decided');
  local.echoed(local.nextBeat());
  t.match(local.decide(KEY, '203.0.113.7', 'bookings:read'), { allowed: true, identity: { keyId: 'key_1' } });
  t.notOk(local.decide(KEY, '203.0.113.8', 'bookings:read'), 'another address');
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:write'), 'another scope');
  t.notOk(local.decide(`${KEY}x`, '203.0.113.7', 'bookings:read'), 'another key');
  t.match(local.takeUses(), [{ key_id: 'key_1', ip: '203.0.113.7', count: 1 }], 'only the one decided use counted');
  await sleep(250);
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'the lease ran out (no echo for 200 ms): not decided');
});

t.test('uses are counted per key and address and taken once', async (t) => {
  const local = leased();
  local.learn(
    digestOf(KEY),
    '203.0.113.7',
    'bookings:read',
    allowed(),
    { version: 1, expiresAtMs: 0 },
    0,
    performance.now(),
  );
  for (let i = 0; i < 5; i++) local.decide(KEY, '203.0.113.7', 'bookings:read');
  const uses = local.takeUses();
  t.match(uses, [{ key_id: 'key_1', ip: '203.0.113.7', count: 5 }]);
  t.same(local.takeUses(), [], 'taken once');
});

t.test('an invalidation evicts older versions; a floor refuses an answer decided before it', async (t) => {
  const local = leased();
  const d = digestOf(KEY);
  local.learn(d, '203.0.113.7', 'bookings:read', allowed(), { version: 3, expiresAtMs: 0 }, 0, performance.now());
  local.invalidate([{ key_id: 'key_1', version: 3 }]);
  t.ok(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'the same version: kept');
  local.invalidate([{ key_id: 'key_1', version: 4 }]);
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'a later version: evicted');
  local.learn(d, '203.0.113.7', 'bookings:read', allowed(), { version: 3, expiresAtMs: 0 }, 0, performance.now());
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'an answer from version 3 after the floor 4: not kept');
  local.learn(d, '203.0.113.7', 'bookings:read', allowed(), { version: 4, expiresAtMs: 0 }, 0, performance.now());
  t.ok(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'version 4: kept');
});

t.test('expiry is checked on every decision', async (t) => {
  const local = leased();
  local.learn(
    digestOf(KEY),
    '203.0.113.7',
    'bookings:read',
    allowed(),
    { version: 1, expiresAtMs: Date.now() + 100 },
    0,
    performance.now(),
  );
  t.ok(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'before expiry');
  await sleep(150);
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'after: asked (the service says KEY_EXPIRED)');
});

t.test('a lost stream: nothing decided, answers to calls sent before it are not kept', async (t) => {
  const local = leased();
  const epoch = local.epoch;
  const sent = performance.now();
  local.lost();
  t.notOk(local.leaseValid(), 'no lease');
  local.opened(TERMS);
  local.echoed(local.nextBeat());
  local.learn(digestOf(KEY), '203.0.113.7', 'bookings:read', allowed(), { version: 1, expiresAtMs: 0 }, epoch, sent);
  t.notOk(local.decide(KEY, '203.0.113.7', 'bookings:read'), 'an answer to a call sent on the lost stream: not kept');
  t.equal(local.size, 0);
});

t.test('memory survives a short absence; a long one (half the floor window) is forgotten', async (t) => {
  const local = new LocalDecisions();
  local.opened({ ...TERMS, floorMs: 200 });
  local.echoed(local.nextBeat());
  local.learn(
    digestOf(KEY),
    '203.0.113.7',
    'bookings:read',
    allowed(),
    { version: 1, expiresAtMs: 0 },
    local.epoch,
    performance.now(),
  );
  local.lost();
  local.opened({ ...TERMS, floorMs: 200 });
  t.equal(local.size, 1, 'back at once: kept (the versions sent on opening evict what changed)');
  local.lost();
  await sleep(120);
  local.opened({ ...TERMS, floorMs: 200 });
  t.equal(local.size, 0, 'away 120 ms of a 200 ms window: forgotten');
});

t.test('bounded by entries and by bytes, oldest first out; identities are frozen', async (t) => {
  const byCount = leased({ maxEntries: 3 });
  for (let i = 0; i < 5; i++)
    byCount.learn(
      digestOf(`${KEY}${i}`),
      '203.0.113.7',
      'bookings:read',
      allowed(`key_${i}`),
      { version: 1, expiresAtMs: 0 },
      0,
      performance.now(),
    );
  t.equal(byCount.size, 3, 'three entries');
  t.notOk(byCount.decide(`${KEY}0`, '203.0.113.7', 'bookings:read'), 'the oldest went first');
  t.ok(byCount.decide(`${KEY}4`, '203.0.113.7', 'bookings:read'), 'the newest stays');

  const byBytes = leased({ maxBytes: 20_000 });
  const big = { blob: 'x'.repeat(3000) };
  for (let i = 0; i < 10; i++)
    byBytes.learn(
      digestOf(`${KEY}${i}`),
      '203.0.113.7',
      'bookings:read',
      allowed(`key_${i}`, big),
      { version: 1, expiresAtMs: 0 },
      0,
      performance.now(),
    );
  t.ok(byBytes.size < 10 && byBytes.size >= 2, `metadata of 6 KB each under 20 KB: ${byBytes.size} kept`);
  const r = byBytes.decide(`${KEY}9`, '203.0.113.7', 'bookings:read');
  t.ok(
    r && Object.isFrozen(r.identity) && Object.isFrozen(r.identity.scopes),
    'the shared identity cannot be changed by a route',
  );
});
