// Shares held by a replica are spent before an empty balance (or a spent window) refuses anything
// there: two Limiters are two replicas on one PostgreSQL (quota) and one budget (rate limits).
import t from 'tap';
import type { CachedGrant } from '../../src/cache/entry.js';
import { MemoryRateBudget } from '../../src/cache/rate-budget.js';
import { Limiter } from '../../src/service/limiter.js';
import { openDatabase } from '../../src/store/open-database.js';
import { createKey, startTestApp } from '../helpers/app.js';

const NOW = Date.UTC(2030, 0, 1, 12, 0, 30); // mid-window for a 60 s limit: the test never crosses into the next one
const grant = (keyId: string, over: Partial<CachedGrant>): CachedGrant => ({
  keyId,
  accountId: 'acct_1',
  environment: 'live',
  scopes: ['bookings:read'],
  allowedIps: [],
  allowedIpText: [],
  expiresAt: null,
  revokedAt: null,
  version: 1,
  enabled: true,
  metadata: null,
  rateLimits: [],
  quota: false,
  ...over,
});
const settle = () => new Promise((r) => setTimeout(r, 30));

/** Admit one use at a time until a refusal (`slowly`: letting a renewal finish between calls): the number admitted, and the refusal. */
async function spend(
  limiter: Limiter,
  g: CachedGrant,
  max: number,
  slowly = false,
): Promise<{ admitted: number; refusal?: string }> {
  for (let admitted = 0; admitted < max; admitted++) {
    const r = await limiter.admit(g, NOW);
    if (r) return { admitted, refusal: r.refusal.reason };
    if (slowly) await settle();
  }
  return { admitted: max };
}

t.test('quota: a renewal that finds the balance empty does not refuse the tokens this replica holds', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', { remaining_uses: 1000 });
  const replicas = await Promise.all(
    [0, 1].map(async () => {
      const db = await openDatabase({ url: app.env.DATABASE_URL, dataDir: '' });
      const limiter = new Limiter({ db, budget: new MemoryRateBudget(), now: () => NOW });
      t.teardown(async () => {
        await limiter.close();
        await db.close();
      });
      return limiter;
    }),
  );
  const [a, b] = replicas as [Limiter, Limiter];
  const g = grant(key.id, { quota: true });
  t.equal(await a.admit(g, NOW), undefined, 'a takes a share');
  await settle();
  const drained = await spend(b, g, 2000);
  t.equal(drained.refusal, 'USAGE_EXCEEDED', `b spends the rest of the balance (${drained.admitted})`);
  const rest = await spend(a, g, 2000, true);
  t.equal(rest.refusal, 'USAGE_EXCEEDED');
  t.equal(
    1 + drained.admitted + rest.admitted,
    1000,
    `exactly the quota in all (a spent ${rest.admitted} more of its share)`,
  );
});

t.test('rate limit: a renewal that finds the window spent does not refuse the tokens this replica holds', async (t) => {
  const budget = new MemoryRateBudget();
  const replicas = [0, 1].map(() => new Limiter({ db: undefined as never, budget, now: () => NOW }));
  t.teardown(() => Promise.all(replicas.map((l) => l.close())));
  const [a, b] = replicas as [Limiter, Limiter];
  const g = grant('key_AAAAAAAAAAAA', { rateLimits: [{ name: 'per_minute', limit: 1000, windowMs: 60_000 }] });
  t.equal(await a.admit(g, NOW), undefined, 'a takes a share');
  await settle();
  const drained = await spend(b, g, 2000);
  t.equal(drained.refusal, 'RATE_LIMITED', `b spends the rest of the window (${drained.admitted})`);
  const rest = await spend(a, g, 2000, true);
  t.equal(rest.refusal, 'RATE_LIMITED');
  t.equal(
    1 + drained.admitted + rest.admitted,
    1000,
    `exactly the limit in all (a spent ${rest.admitted} more of its share)`,
  );
});
