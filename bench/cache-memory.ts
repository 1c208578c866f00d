/**
 * Heap per entry of the local cache (run by bench/scale.ts as `node --expose-gc dist/bench/cache-memory.js`):
 * a LocalCache filled with 100,000 entries built with toEntry, each a key with 3 scopes and 2 CIDRs, as
 * the Authenticate path stores them. Prints one JSON line.
 */
import { createHash } from 'node:crypto';
import { LocalCache } from '../src/cache/local-cache.js';
import { toEntry } from '../src/cache/entry.js';
import { generateKey } from '../src/domain/key-format.js';

const ENTRIES = Number(process.env.CACHE_MEMORY_ENTRIES ?? 100_000);

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

// A fresh copy, as each row read from PostgreSQL (or entry parsed from Redis) brings its own strings:
// literals would be shared by every entry and hide their cost.
const fresh = (s: string) => Buffer.from(s, 'latin1').toString('latin1');

function settle(): NodeJS.MemoryUsage {
  for (let i = 0; i < 4; i++) gc?.();
  return process.memoryUsage();
}

const keys = Array.from({ length: ENTRIES }, () => generateKey('live'));
const before = settle();
const cache = new LocalCache({ maxEntries: ENTRIES, maxAgeMs: 3_600_000 });
const now = Date.now();
for (const k of keys) {
  const digest = createHash('sha256').update(k.key).digest('base64url');
  cache.set(
    toEntry(
      digest,
      {
        keyId: fresh(k.keyId),
        accountId: fresh('acct_scale_1234'),
        environment: fresh('live') as 'live',
        scopes: ['bookings:read', 'bookings:write', 'invoices:read'].map(fresh),
        allowedIps: ['203.0.113.0/24', '2001:db8::/32'].map(fresh),
        expiresAt: null,
        revokedAt: null,
        version: 1,
        enabled: true,
        rateLimits: [],
        quota: false,
        metadata: null,
      },
      now,
    ),
  );
}
const after = settle();
const per = (a: number, b: number) => Math.round((a - b) / ENTRIES);
process.stdout.write(
  `${JSON.stringify({
    entries: ENTRIES,
    heapBytesPerEntry: per(after.heapUsed, before.heapUsed),
    arrayBufferBytesPerEntry: per(after.arrayBuffers, before.arrayBuffers),
    // Still referenced here so the cache is not collected before the measure.
    held:
      cache.get(
        createHash('sha256')
          .update(keys[0]?.key ?? '')
          .digest('base64url'),
      ) !== undefined,
  })}\n`,
);
