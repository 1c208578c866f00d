import { LRUCache } from 'lru-cache';
import type { CacheEntry } from './entry.js';

export interface LocalCacheOptions {
  maxEntries: number;
  /** How long an entry may live at all (fresh time plus the stale-serve bound), ms. */
  maxAgeMs: number;
  /** How long an eviction floor is remembered: longer than any verification can take, ms. */
  floorTtlMs?: number;
}

/**
 * The in-process tier: a bounded LRU keyed by the key's digest, with an index by key id for
 * eviction and per-key version floors so a verification that read an older version cannot
 * store it after a change (design invariant 4).
 */
export class LocalCache {
  #entries: LRUCache<string, CacheEntry>;
  #byKeyId = new Map<string, string>();
  #floors: LRUCache<string, number>;
  /** Entries refreshed before this are not fresh (the subscription was lost meanwhile). */
  #staleBefore = Number.NEGATIVE_INFINITY;

  constructor(opts: LocalCacheOptions) {
    this.#entries = new LRUCache<string, CacheEntry>({
      max: opts.maxEntries,
      ttl: opts.maxAgeMs,
      // Read the clock on each lookup rather than lru-cache's default of caching it for 1 ms behind a timer:
      // that timer is a setTimeout per millisecond of traffic, which at light load is one per call.
      ttlResolution: 0,
      dispose: (entry, digest, reason) => {
        if (reason === 'set') return; // replaced in place: the index still points at it
        if (this.#byKeyId.get(entry.grant.keyId) === digest) this.#byKeyId.delete(entry.grant.keyId);
      },
    });
    this.#floors = new LRUCache<string, number>({ max: Math.max(1000, opts.maxEntries), ttl: opts.floorTtlMs ?? 600_000, ttlResolution: 0 });
  }

  get(digest: string): CacheEntry | undefined {
    const entry = this.#entries.get(digest);
    return entry && entry.refreshedAt < this.#staleBefore ? { ...entry, refreshedAt: Number.NEGATIVE_INFINITY } : entry;
  }

  /**
   * Store unless a change newer than the entry's version has been seen, or the entry was refreshed
   * before the subscription was last lost (it would never be fresh here: the caller re-reads it once
   * from PostgreSQL instead); returns whether stored.
   */
  set(entry: CacheEntry): boolean {
    if (this.superseded(entry.grant.keyId, entry.grant.version) || entry.refreshedAt < this.#staleBefore) return false;
    const previous = this.#byKeyId.get(entry.grant.keyId);
    if (previous !== undefined && previous !== entry.digest) this.#entries.delete(previous);
    this.#entries.set(entry.digest, entry);
    this.#byKeyId.set(entry.grant.keyId, entry.digest);
    return true;
  }

  /** True when a change newer than `version` of the key has been seen here. */
  superseded(keyId: string, version: number): boolean {
    const floor = this.#floors.get(keyId);
    return floor !== undefined && version < floor;
  }

  /**
   * Invalidate the key's entry and refuse later writes of versions older than `version`. The entry
   * stays only as proof that its digest was verified, marked never fresh: the next call re-reads
   * the key from PostgreSQL (no argon2) and never decides from the old grant, nor serves it stale.
   */
  evict(keyId: string, version: number): void {
    const floor = this.#floors.get(keyId) ?? 0;
    if (version > floor) this.#floors.set(keyId, version);
    const digest = this.#byKeyId.get(keyId);
    const entry = digest === undefined ? undefined : this.#entries.peek(digest);
    if (digest !== undefined && entry) this.#entries.set(digest, { ...entry, refreshedAt: Number.NEGATIVE_INFINITY }, { noUpdateTTL: true });
  }

  /**
   * The subscription was lost: we cannot know what we missed. Every entry stays as proof that its
   * digest was verified, but none is fresh: each is re-read from PostgreSQL (no argon2) before use.
   */
  markAllStale(now = Date.now()): void {
    this.#staleBefore = now + 1;
  }

  /** Drop every entry. Floors stay. */
  clear(): void {
    this.#entries.clear();
    this.#byKeyId.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
