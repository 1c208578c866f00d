import type { Change, InvalidationBus, PublishResult } from '../cache/bus.js';
import type { LocalCache } from '../cache/local-cache.js';
import type { KeyVersion, SharedCache } from '../cache/shared-cache.js';
import { AppError } from '../domain/errors.js';
import type { Database } from '../store/db.js';
import { changesRepository } from '../store/changes-repository.js';

export interface InvalidatorOptions {
  db: Database;
  local: LocalCache;
  shared: SharedCache;
  bus: InvalidationBus;
  pollMs: number;
  /** How far back the change log is read at start (version floors) and after an outage (Redis repair), ms. */
  recentMs: number;
  /** How long a writer keeps trying to publish before it answers that the change is only committed, ms. */
  publishRetryMs: number;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Seconds from a change's commit to this replica's eviction (metrics). */
  onApplied?: (lagMs: number) => void;
  /** Each announcement's outcome (`pending`: committed, not published) and wait (metrics). */
  onPropagated?: (outcome: string, waitedMs: number) => void;
  now?: () => number;
}

/** What a committed change reached (design: revoke-holds). */
export interface Propagation extends PublishResult {
  /** False only for a change that needed no announcement (nothing changed). */
  published: boolean;
}

const NOTHING: Propagation = {
  replicas: 0,
  confirmed: 0,
  outcome: 'confirmed',
  unconfirmed: [],
  waitedMs: 0,
  published: true,
};

/**
 * Keeps this replica's caches consistent with the change log (design: revoke-holds, change-log-catch-up, untrusted-without-lease):
 * evicts on every bus message, catches up from the change log on a gap, on resubscribe and
 * every `pollMs`, and trusts its caches only while it holds the bus lease and is caught up.
 */
export class Invalidator {
  #o: InvalidatorOptions;
  #now: () => number;
  #lastSeq = 0;
  #subscribed = false;
  #caughtUp = false;
  #repairing = false;
  #everReady = false;
  #outages = 0;
  /** Bumped whenever something may have been missed: a catch-up started before it cannot restore trust. */
  #epoch = 0;
  #catchUp: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  /** Shared-cache invalidations that failed: retried on every poll. */
  #repair = new Map<string, number>();

  constructor(opts: InvalidatorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** True when caches may be trusted now: lease held and caught up with the change log. */
  trusted(now: number): boolean {
    return this.#caughtUp && this.#o.bus.leaseValid(now);
  }

  get healthy(): boolean {
    return this.trusted(this.#now());
  }

  /** Subscribed and caught up at least once since start (readiness, design: readiness-is-local). */
  get everReady(): boolean {
    return this.#everReady;
  }

  /** Why caches are not trusted now, or undefined. */
  get degraded(): string | undefined {
    if (!this.#subscribed) return 'invalidation subscription lost: deciding from PostgreSQL';
    if (!this.#caughtUp) return 'catching up with the change log: deciding from PostgreSQL';
    if (!this.#o.bus.leaseValid(this.#now()))
      return 'invalidation lease lapsed (heartbeats late): deciding from PostgreSQL';
    return undefined;
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  /**
   * Read the change log's head, seed version floors from its recent changes, subscribe, catch up from
   * the head, and start the poll. The head is read first: a change committed between the two reads is
   * then read again by the catch-up, rather than missed by both (design: version-floor).
   */
  async start(): Promise<void> {
    this.#lastSeq = await changesRepository.latest(this.#o.db);
    for (const c of await changesRepository.recent(this.#o.db, this.#o.recentMs))
      this.#o.local.evict(c.keyId, c.version);
    await this.#o.bus.start({
      onMessage: (msg) => {
        this.#apply(msg.changes);
        this.#o.onApplied?.(this.#now() - msg.sentAt);
      },
      onDown: () => this.#down(),
      onUp: () => {
        void this.#up();
      },
      onMissed: () => this.#missed(),
    });
    this.#timer = setInterval(() => {
      void this.#poll();
    }, this.#o.pollMs);
    this.#timer.unref();
    await this.#catchUp;
  }

  /**
   * After a commit: evict here, remove the shared entries, publish, and wait until every replica
   * confirmed or its lease ran out. Throws PROPAGATION_PENDING when the change could not be published.
   */
  async announce(changes: Change[]): Promise<Propagation> {
    if (changes.length === 0) return NOTHING;
    for (const c of changes) this.#o.local.evict(c.keyId, c.version);
    await this.#invalidateShared(changes);
    const started = this.#now();
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.#o.bus.publish(changes);
        this.#o.onPropagated?.(result.outcome, result.waitedMs);
        return { ...result, published: true };
      } catch (err) {
        const elapsed = this.#now() - started;
        if (elapsed >= this.#o.publishRetryMs) {
          this.#o.onPropagated?.('pending', elapsed);
          const holdsBy = new Date(this.#now() + this.#o.pollMs + 1000);
          this.#o.log.warn(
            { err, changes: changes.length },
            'change committed but not published; replicas catch up from the change log',
          );
          throw new AppError(
            'PROPAGATION_PENDING',
            `the change is committed; Redis could not be reached to announce it, so it holds on every replica by ${holdsBy.toISOString()} (the next change-log poll)`,
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, this.#o.publishRetryMs - elapsed)));
      }
    }
  }

  /** Remove shared entries; what fails is retried on every poll (the version floors on replicas guard meanwhile). */
  async #invalidateShared(changes: readonly KeyVersion[]): Promise<void> {
    try {
      await this.#o.shared.invalidate(changes);
    } catch (err) {
      for (const c of changes) this.#repair.set(c.keyId, Math.max(c.version, this.#repair.get(c.keyId) ?? 0));
      this.#o.log.warn({ err, changes: changes.length }, 'shared cache entries not removed; retried on the next poll');
    }
  }

  #apply(changes: Change[]): void {
    let gap = false;
    for (const c of changes) {
      this.#o.local.evict(c.keyId, c.version);
      if (c.seq > this.#lastSeq + 1) gap = true;
      else if (c.seq === this.#lastSeq + 1) this.#lastSeq = c.seq;
    }
    // A failed catch-up leaves trust as it is and is tried again by the next poll.
    if (gap) void this.catchUp().catch(() => {});
  }

  /** Read every change after the last one applied (one catch-up at a time); restores trust when nothing was missed meanwhile. */
  catchUp(): Promise<void> {
    // The previous catch-up's failure was its caller's to see; this one starts afresh.
    this.#catchUp = this.#catchUp
      .catch(() => {})
      .then(async () => {
        const epoch = this.#epoch;
        await this.#readLog();
        if (epoch === this.#epoch && this.#subscribed && !this.#repairing && !this.#caughtUp) {
          this.#caughtUp = true;
          this.#everReady = true;
          this.#o.log.info({ seq: this.#lastSeq }, 'invalidation subscribed and caught up: caches trusted');
        }
      });
    return this.#catchUp;
  }

  async #readLog(): Promise<void> {
    for (;;) {
      const rows = await changesRepository.since(this.#o.db, this.#lastSeq);
      for (const r of rows) this.#o.local.evict(r.key_id, r.version);
      // The publisher may have failed to reach Redis: make sure the shared entries are gone too.
      if (rows.length > 0) await this.#invalidateShared(rows.map((r) => ({ keyId: r.key_id, version: r.version })));
      const last = rows[rows.length - 1];
      if (last) this.#lastSeq = last.seq;
      if (rows.length < 1000) return;
    }
  }

  async #poll(): Promise<void> {
    if (this.#repair.size > 0) {
      const pending = [...this.#repair].map(([keyId, version]) => ({ keyId, version }));
      this.#repair.clear();
      await this.#invalidateShared(pending);
    }
    // A failed poll is tried again on the next tick; trust is unchanged meanwhile.
    await this.catchUp().catch(() => {});
  }

  /** An unreadable message on the changes channel: it may have been a change; distrust until caught up. */
  #missed(): void {
    this.#epoch++;
    this.#caughtUp = false;
    // Until a catch-up succeeds (the next poll retries) the caches are not trusted.
    void this.catchUp().catch(() => {});
  }

  #down(): void {
    this.#epoch++;
    this.#subscribed = false;
    this.#caughtUp = false;
    this.#outages++;
    // Keep the proof that each digest was verified; only the grants must be re-read (no argon2).
    this.#o.local.markAllStale();
    this.#o.log.warn({}, 'invalidation subscription lost: deciding from PostgreSQL until subscribed and caught up');
  }

  async #up(): Promise<void> {
    this.#subscribed = true;
    const afterOutage = this.#outages > 0;
    this.#repairing = afterOutage;
    for (;;) {
      try {
        // Redis may have kept entries across the outage (or a failover lost our deletes): remove every recent change's.
        if (afterOutage) await this.#repairRecent();
        this.#repairing = false;
        await this.catchUp();
        return;
      } catch {
        // PostgreSQL or Redis unreachable: still untrusted; try again shortly while subscribed.
        await new Promise((r) => setTimeout(r, 500));
        if (!this.#subscribed) return;
      }
    }
  }

  async #repairRecent(): Promise<void> {
    const recent = await changesRepository.recent(this.#o.db, this.#o.recentMs);
    for (const c of recent) this.#o.local.evict(c.keyId, c.version);
    await this.#o.shared.invalidate(recent);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#caughtUp = false;
    await this.#o.bus.close();
  }
}
