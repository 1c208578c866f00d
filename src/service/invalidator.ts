import type { Change, InvalidationBus, PublishResult } from '../cache/bus.js';
import type { LocalCache } from '../cache/local-cache.js';
import type { SharedCache } from '../cache/shared-cache.js';
import type { Database } from '../store/db.js';
import { changesRepository } from '../store/changes-repository.js';

export interface InvalidatorOptions {
  db: Database;
  local: LocalCache;
  shared: SharedCache;
  bus: InvalidationBus;
  pollMs: number;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Seconds from a change's commit to this replica's eviction (metrics). */
  onApplied?: (lagMs: number) => void;
}

/** What a committed change reached. */
export interface Propagation extends PublishResult {
  /** False when the shared cache or the bus could not be told (Redis down): pollers catch up. */
  published: boolean;
}

/**
 * Keeps this replica's caches consistent with the change log (design invariants 2, 3 and 5):
 * evicts on every bus message, catches up from the change log on a gap, on resubscribe and
 * every `pollMs`, and distrusts its caches while the subscription is down.
 */
export class Invalidator {
  #o: InvalidatorOptions;
  #lastSeq = 0;
  #subscribed = false;
  #caughtUp = false;
  #catchUp: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: InvalidatorOptions) {
    this.#o = opts;
  }

  /** True when caches may be trusted: subscribed and caught up with the change log. */
  get healthy(): boolean {
    return this.#subscribed && this.#caughtUp;
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Read the change log's head, subscribe, and start the backstop poll. */
  async start(): Promise<void> {
    this.#lastSeq = await changesRepository.latest(this.#o.db);
    await this.#o.bus.start({
      onMessage: (msg) => {
        this.#apply(msg.changes);
        this.#o.onApplied?.(Date.now() - msg.sentAt);
      },
      onDown: () => this.#down(),
      onUp: () => { void this.#up(); },
    });
    this.#timer = setInterval(() => { void this.catchUp().catch(() => {}); }, this.#o.pollMs);
    this.#timer.unref();
    await this.#catchUp;
  }

  /** After a commit: evict here, remove the shared entries, publish, and wait for confirmations. */
  async announce(changes: Change[]): Promise<Propagation> {
    if (changes.length === 0) return { replicas: 0, confirmed: 0, published: true };
    for (const c of changes) this.#o.local.evict(c.keyId, c.version);
    try {
      await Promise.all(changes.map((c) => this.#o.shared.invalidate(c.keyId, c.version)));
      return { ...(await this.#o.bus.publish(changes)), published: true };
    } catch (err) {
      this.#o.log.warn({ err }, 'change committed but not published; replicas will catch up from the change log');
      return { replicas: 0, confirmed: 0, published: false };
    }
  }

  #apply(changes: Change[]): void {
    let gap = false;
    for (const c of changes) {
      this.#o.local.evict(c.keyId, c.version);
      if (c.seq > this.#lastSeq + 1) gap = true;
      else if (c.seq === this.#lastSeq + 1) this.#lastSeq = c.seq;
    }
    if (gap) void this.catchUp().catch(() => {});
  }

  /** Read every change after the last one applied (one catch-up at a time). */
  catchUp(): Promise<void> {
    this.#catchUp = this.#catchUp.catch(() => {}).then(() => this.#readLog());
    return this.#catchUp;
  }

  async #readLog(): Promise<void> {
    for (;;) {
      const rows = await changesRepository.since(this.#o.db, this.#lastSeq);
      for (const r of rows) {
        this.#o.local.evict(r.key_id, r.version);
        // The publisher may have failed to reach Redis: make sure the shared entry is gone too.
        await this.#o.shared.invalidate(r.key_id, r.version).catch(() => {});
        this.#lastSeq = r.seq;
      }
      if (rows.length < 1000) return;
    }
  }

  #down(): void {
    this.#subscribed = false;
    this.#caughtUp = false;
    this.#o.local.clear();
    this.#o.log.warn({}, 'invalidation subscription lost: local cache dropped, deciding from PostgreSQL');
  }

  async #up(): Promise<void> {
    this.#subscribed = true;
    for (;;) {
      try {
        await this.catchUp();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 500));
        if (!this.#subscribed) return;
      }
    }
    this.#o.local.clear();
    this.#caughtUp = this.#subscribed;
    this.#o.log.info({ seq: this.#lastSeq }, 'invalidation subscription up and caught up');
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#o.bus.close();
  }
}
