// Version floors are bounded in number, and a floor pushed out for room is not forgotten outright
// (design: version-floor): every grant read before its change may have committed counts as superseded.
import t from 'tap';
import { toEntry, type GrantData } from '../../src/cache/entry.js';
import { LocalCache } from '../../src/cache/local-cache.js';

const data = (keyId: string, version: number): GrantData => ({
  keyId,
  accountId: 'acct_1',
  environment: 'live',
  scopes: ['bookings:read'],
  allowedIps: [],
  expiresAt: null,
  revokedAt: null,
  version,
  enabled: true,
  rateLimits: [],
  quota: false,
  metadata: null,
});
const entry = (keyId: string, version: number, refreshedAt: number) =>
  toEntry(`digest-${keyId}`, data(keyId, version), refreshedAt);

t.test("a grant below its key's floor is superseded, and is not stored", async (t) => {
  let clock = 10_000;
  const cache = new LocalCache({ maxEntries: 100, maxAgeMs: 60_000, now: () => clock });
  cache.evict('key_A', 3);
  t.equal(cache.superseded(entry('key_A', 2, clock + 5)), true, 'version 2 after a change to 3, however recently read');
  t.equal(cache.set(entry('key_A', 2, clock + 5)), false, 'not stored');
  t.equal(cache.superseded(entry('key_A', 3, clock)), false, 'the version of the change is current');
  t.equal(cache.superseded(entry('key_B', 1, clock - 50_000)), false, 'other keys are untouched');
  clock += 1;
  cache.evict('key_A', 2);
  t.equal(cache.superseded(entry('key_A', 2, clock)), true, 'an older change heard late does not lower the floor');
});

t.test(
  'floors pushed out for room: every grant read before the lost change may have committed is superseded',
  async (t) => {
    let clock = 100_000;
    const cache = new LocalCache({ maxEntries: 100, maxAgeMs: 60_000, maxFloors: 3, skewMs: 250, now: () => clock });
    cache.evict('key_A', 2);
    const learnedA = clock;
    clock += 1000;
    for (const id of ['key_B', 'key_C', 'key_D']) cache.evict(id, 5);
    // key_A's floor is gone: its replayed version 1, read before the change, must still not serve.
    t.equal(
      cache.superseded(entry('key_A', 1, learnedA - 10)),
      true,
      "key_A's old grant (read before its change) is superseded",
    );
    t.equal(
      cache.superseded(entry('key_Z', 7, learnedA + 100)),
      true,
      'so is any grant read within the clock skew of that change',
    );
    t.equal(cache.set(entry('key_Z', 7, learnedA + 100)), false, 'and it is not stored');
    t.equal(
      cache.superseded(entry('key_A', 2, learnedA + 251)),
      false,
      'a grant read after it (beyond the skew) is current',
    );
    t.equal(cache.set(entry('key_Z', 7, clock)), true, 'and is stored');
    t.equal(cache.superseded(entry('key_D', 4, clock)), true, 'the floors kept still hold');
  },
);

t.test('a floor that expires has outlived every entry below it: nothing else is distrusted', async (t) => {
  let clock = 100_000;
  const cache = new LocalCache({ maxEntries: 100, maxAgeMs: 60_000, maxFloors: 2, floorTtlMs: 1000, now: () => clock });
  cache.evict('key_A', 2);
  clock += 2000;
  t.equal(
    cache.superseded(entry('key_A', 1, clock - 1500)),
    false,
    'expired: the entry is judged by its age elsewhere',
  );
  for (const id of ['key_B', 'key_C']) cache.evict(id, 5);
  t.equal(cache.superseded(entry('key_Z', 1, clock - 10)), false, 'an expired floor pushed out later moves nothing');
});
