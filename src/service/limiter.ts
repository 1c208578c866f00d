import { AppError } from '../domain/errors.js';
import type { CachedGrant, RateLimitRule } from '../cache/entry.js';
import { MemoryRateBudget, type RateBudget } from '../cache/rate-budget.js';
import type { Database } from '../store/db.js';
import { quotaRepository, type QuotaLease } from '../store/quota-repository.js';

/** Why an otherwise allowed call is refused, and when trying again can help (0: not by waiting). */
export interface Refusal {
  reason: 'RATE_LIMITED' | 'USAGE_EXCEEDED';
  retryAfterMs: number;
}

/** Of the uses decided at once, how many were admitted (the first ones, maybe none), and why the others are not. */
export interface PartialAdmission {
  admitted: number;
  refusal: Refusal;
}

export interface LimiterOptions {
  db: Database;
  /** The fleet's rate-limit budget (Redis), or this process's own (embedded). */
  budget: RateBudget;
  now?: () => number;
  /** Told when the fleet's budget cannot be reached and this replica counts alone meanwhile. */
  onBudgetFault?: (err: unknown) => void;
  /** How long a key's leased state outlives its last call before unspent quota is given back. */
  idleMs?: number;
}

/** A rate limit's leased share for the current window on this replica. */
interface RateBucket {
  window: number;
  tokens: number;
  /** The fleet's budget for this window is spent: once the tokens held here are, refuse until it ends, without asking again. */
  spent: boolean;
  leasing: Promise<void> | undefined;
  /** Calls waiting for a share: a lease asks for at least as many, so that a burst is served in one round trip. */
  waiting: number;
}

/** The key's quota as leased by this replica. */
interface QuotaBucket {
  tokens: number;
  lease: QuotaLease | undefined;
  /** The balance was 0: once the tokens held here are spent, refuse until then (a refill, or a re-check in a few seconds). */
  emptyUntil: number;
  retryAt: number;
  leasing: Promise<void> | undefined;
  share: number;
  waiting: number;
  /** The row has no quota any more (a PATCH this replica's grant has not seen yet): nothing to count. */
  gone: boolean;
}

/** One key's limits on this replica, for one version of its grant (a PATCH starts afresh). */
interface KeyState {
  version: number;
  rules: readonly RateLimitRule[];
  rate: RateBucket[];
  quota: QuotaBucket | undefined;
  usedAt: number;
}

const NEED_LEASE = Symbol('need lease');
/** How often an empty balance is read again without a refill in sight (an admin may have raised it). */
const EMPTY_RECHECK_MS = 5_000;
const MAX_ROUNDS = 20;

/** A rate-limit share: 2% of the limit per lease (at least 1), so that what replicas hold unspent stays small. */
export function rateShare(limit: number): number {
  return Math.min(10_000, Math.max(1, Math.ceil(limit / 50)));
}

/** A quota share: 2% of what is left (1 to 1,000). */
function quotaShare(remaining: number): number {
  return Math.min(1000, Math.max(1, Math.ceil(remaining / 50)));
}

/**
 * Per-key rate limits and usage quotas without a round trip per call (design: the Authenticate
 * path). Each replica leases shares: of a rate limit's budget per fixed window from Redis, of the
 * quota from PostgreSQL. A call with shares in hand is decided synchronously; a call that needs a
 * lease waits for one (shared by every call waiting on it), and a lease is renewed ahead of need.
 *
 * Guarantees: a window never allows more than `limit` calls across the fleet (every share comes out
 * of one counter); when demand stays above the limit it allows at least `limit - replicas × share`
 * (shares left unspent when the window ends). The quota never allows more calls than its balance,
 * and while calls keep reaching the replicas that hold shares it allows exactly the balance (a replica
 * spends the tokens it holds before an empty balance refuses anything there); unspent shares are
 * given back when a key goes idle and at shutdown (a replica that crashes loses
 * its share: fewer calls allowed, never more). While Redis cannot be reached each replica counts
 * rate limits on its own (up to replicas × limit per window), and a quota share cannot be leased
 * without PostgreSQL (STORAGE_UNAVAILABLE).
 */
export class Limiter {
  #o: LimiterOptions;
  #now: () => number;
  #keys = new Map<string, KeyState>();
  #alone = new MemoryRateBudget();
  #sweep: NodeJS.Timeout;

  constructor(opts: LimiterOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    const idleMs = opts.idleMs ?? 10_000;
    this.#sweep = setInterval(() => void this.#giveBackIdle(this.#now() - idleMs), Math.max(1000, idleMs / 2));
    this.#sweep.unref();
  }

  /**
   * Count `uses` otherwise allowed calls decided at once (1, or a caller's coalesced requests):
   * undefined when all are admitted, else how many were (the first ones) and why the others are
   * not; a promise of either when a share must be leased first. Only admitted uses are counted.
   */
  admit(
    grant: CachedGrant,
    now: number,
    uses = 1,
  ): PartialAdmission | undefined | Promise<PartialAdmission | undefined> {
    if (grant.rateLimits.length === 0 && !grant.quota) return undefined;
    const state = this.#state(grant, now);
    let admitted = 0;
    while (admitted < uses) {
      const r = this.#take(grant.keyId, state, now, uses - admitted);
      if (r === NEED_LEASE) return this.#admitLater(grant, admitted, uses);
      if (typeof r !== 'number') return { admitted, refusal: r };
      admitted += r;
    }
    return undefined;
  }

  /** Give back every unspent quota share (shutdown). */
  async close(): Promise<void> {
    clearInterval(this.#sweep);
    await this.#giveBackIdle(Number.POSITIVE_INFINITY);
  }

  #state(grant: CachedGrant, now: number): KeyState {
    let state = this.#keys.get(grant.keyId);
    if (!state || state.version !== grant.version) {
      // A PATCH may have changed the limits or set a new balance: shares of the old grant are dropped, not spent.
      state = {
        version: grant.version,
        rules: grant.rateLimits,
        usedAt: now,
        rate: grant.rateLimits.map(() => ({ window: -1, tokens: 0, spent: false, leasing: undefined, waiting: 0 })),
        quota: grant.quota
          ? {
              tokens: 0,
              lease: undefined,
              emptyUntil: 0,
              retryAt: 0,
              leasing: undefined,
              // The balance is not known before the first lease: take one use (or what is waiting), not a share
              // that could be all of a small balance; the next lease is 2 % of what is left. The balance in
              // PostgreSQL then lags the uses by a token or two, and key.quota_low/exhausted are told on time.
              share: 1,
              gone: false,
              waiting: 0,
            }
          : undefined,
      };
      this.#keys.set(grant.keyId, state);
    }
    state.usedAt = now;
    return state;
  }

  /**
   * Take up to `want` of each share, the same number from each (at least one, or none at all); starts
   * the leases that are missing, sized for `want`.
   */
  #take(keyId: string, state: KeyState, now: number, want: number): number | Refusal | typeof NEED_LEASE {
    let need = false;
    let refusal: Refusal | undefined;
    let available = Number.POSITIVE_INFINITY;
    for (let i = 0; i < state.rules.length; i++) {
      const rule = state.rules[i] as RateLimitRule;
      const b = state.rate[i] as RateBucket;
      const window = Math.floor(now / rule.windowMs);
      if (b.window !== window) {
        b.window = window;
        b.tokens = 0;
        b.spent = false;
      }
      if (b.tokens < 1) {
        // As for the quota: the window's budget being spent refuses only once this replica's tokens are.
        if (b.spent) {
          const retryAfterMs = (window + 1) * rule.windowMs - now;
          if (!refusal || retryAfterMs > refusal.retryAfterMs) refusal = { reason: 'RATE_LIMITED', retryAfterMs };
        } else {
          need = true;
          this.#leaseRate(keyId, rule, b, want);
        }
      }
      available = Math.min(available, b.tokens);
    }
    if (refusal) return refusal;
    const q = state.quota;
    if (q && !q.gone) {
      if (q.tokens < 1) {
        // The empty mark refuses only once this replica's share is spent: a renewal ahead of need may
        // find the balance empty while tokens are still held here, and they are part of the quota too.
        if (q.emptyUntil > now) return { reason: 'USAGE_EXCEEDED', retryAfterMs: Math.max(0, q.retryAt - now) };
        need = true;
        this.#leaseQuota(keyId, q, want);
      }
      available = Math.min(available, q.tokens);
    }
    if (need) return NEED_LEASE;
    // Every limit of a grant with limits holds a whole number of tokens here, at least one.
    const n = Math.min(want, available);
    for (let i = 0; i < state.rules.length; i++) {
      const b = state.rate[i] as RateBucket;
      b.tokens -= n;
      // Renew ahead of need, so that calls rarely wait for a lease.
      if (b.tokens * 4 < rateShare((state.rules[i] as RateLimitRule).limit) && !b.leasing && !b.spent)
        this.#leaseRate(keyId, state.rules[i] as RateLimitRule, b, 1);
    }
    if (q && !q.gone) {
      q.tokens -= n;
      if (q.tokens * 4 < q.share && !q.leasing && q.emptyUntil <= now) this.#leaseQuota(keyId, q, 1);
    }
    return n;
  }

  /**
   * Wait for the leases the uses not admitted yet need, then take what there is (other waiting
   * calls may take the shares first); at most MAX_ROUNDS rounds in a row without progress.
   */
  async #admitLater(grant: CachedGrant, admitted: number, uses: number): Promise<PartialAdmission | undefined> {
    for (let stalled = 0; stalled < MAX_ROUNDS;) {
      const want = uses - admitted;
      const state = this.#state(grant, this.#now());
      const buckets: { waiting: number }[] = state.quota ? [...state.rate, state.quota] : state.rate;
      for (const b of buckets) b.waiting += want;
      try {
        await Promise.all([...state.rate.map((b) => b.leasing), state.quota?.leasing]);
      } finally {
        for (const b of buckets) b.waiting -= want;
      }
      const r = this.#take(grant.keyId, state, this.#now(), want);
      if (r === NEED_LEASE) {
        stalled++;
        continue;
      }
      if (typeof r !== 'number') return { admitted, refusal: r };
      admitted += r;
      if (admitted === uses) return undefined;
      stalled = 0; // progress: the rest gets rounds of its own
    }
    throw new AppError('OVERLOADED', "too many calls are waiting for the same key's limits");
  }

  #leaseRate(keyId: string, rule: RateLimitRule, b: RateBucket, want: number): void {
    if (b.leasing) return;
    const window = b.window;
    b.leasing = this.#rateLease(keyId, rule, window, Math.max(rateShare(rule.limit), b.waiting, want))
      .then((granted) => {
        if (b.window !== window) return; // the window ended meanwhile: the share is of no use now
        if (granted === 0) b.spent = true;
        else b.tokens += granted;
      })
      .finally(() => {
        b.leasing = undefined;
      });
  }

  /** From the fleet's budget; while it cannot be reached, from this replica's own (each counts the full limit). */
  async #rateLease(keyId: string, rule: RateLimitRule, window: number, want: number): Promise<number> {
    try {
      return await this.#o.budget.lease(keyId, rule, window, want);
    } catch (err) {
      this.#o.onBudgetFault?.(err);
      return this.#alone.lease(keyId, rule, window, want);
    }
  }

  #leaseQuota(keyId: string, q: QuotaBucket, want: number): void {
    if (q.leasing) return;
    q.leasing = quotaRepository
      .lease(this.#o.db, keyId, Math.max(q.share, q.waiting, want))
      .then(
        (lease) => {
          if (!lease) {
            q.gone = true;
            return;
          }
          // A refill since the last lease: what is left of the old period's share is not this period's.
          if (q.lease && q.lease.refilledUs !== lease.refilledUs) q.tokens = 0;
          q.lease = lease;
          q.tokens += lease.granted;
          q.share = quotaShare(lease.remaining);
          if (lease.granted === 0) {
            const now = this.#now();
            const refill = lease.nextRefill?.getTime();
            q.retryAt = refill ?? 0;
            q.emptyUntil = Math.min(refill ?? Number.POSITIVE_INFINITY, now + EMPTY_RECHECK_MS);
          }
        },
        (err: unknown) => {
          throw err instanceof AppError
            ? err
            : new AppError('STORAGE_UNAVAILABLE', 'the usage quota cannot be read right now');
        },
      )
      .finally(() => {
        q.leasing = undefined;
      });
    // A call that does not wait for this lease (a renewal ahead of need) must not leave it unhandled.
    q.leasing.catch(() => {});
  }

  /** Give back the unspent quota of keys idle since `before`, and forget them. */
  async #giveBackIdle(before: number): Promise<void> {
    const jobs: Promise<unknown>[] = [];
    for (const [keyId, state] of this.#keys) {
      if (state.usedAt >= before) continue;
      this.#keys.delete(keyId);
      const q = state.quota;
      // A share that cannot be given back is lost: fewer calls allowed, never more.
      if (q?.lease && q.tokens > 0)
        jobs.push(quotaRepository.giveBack(this.#o.db, keyId, q.tokens, q.lease).catch(() => false));
    }
    await Promise.all(jobs);
  }
}
