import { LRUCache } from 'lru-cache';
import type { CacheEntry } from './entry.js';

export interface LocalCacheOptions {
  maxEntries: number;
  /** How long an entry may live at all (fresh time plus the stale-serve bound), ms. */
  maxAgeMs: number;
  /** How long an eviction floor is remembered: longer than any verification can take, ms. */
  floorTtlMs?: number;
  /** How many version floors are kept (default: as many as entries, at least 1,000). */
  maxFloors?: number;
  /** Clock difference tolerated between hosts (entries read elsewhere carry that host's clock), ms. */
  skewMs?: number;
  now?: () => number;
}

/** A key's version floor: the newest version of it this replica has heard of, and when it first did. */
interface Floor {
  version: number;
  learnedAt: number;
}

/**
 * The in-process tier: a bounded LRU keyed by the key's digest, with an index by key id for
 * eviction and per-key version floors so a verification that read an older version cannot
 * store it after a change (design: no-stale-write), and no grant below a floor is served from any
 * tier (design: version-floor).
 *
 * Floors are bounded: an LRU of `maxFloors`, each kept `floorTtlMs` (longer than any entry can be
 * served). A floor pushed out early is not forgotten outright: every grant read before the moment
 * its change may have committed (when it was learned, plus the clock skew) counts as superseded,
 * whatever its key — such grants are re-read from PostgreSQL, never served, so a bulk change that
 * overflows the floors costs reads, not a stale allow.
 */
export class LocalCache {
  #entries: LRUCache<string, CacheEntry>;
  #byKeyId = new Map<string, string>();
  #floors: LRUCache<string, Floor>;
  /** Grants read before this may be below a floor pushed out of `#floors` (ms, this host's clock). */
  #forgottenBefore = Number.NEGATIVE_INFINITY;
  #skewMs: number;
  #floorTtlMs: number;
  #now: () => number;
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
    this.#skewMs = opts.skewMs ?? 0;
    this.#floorTtlMs = opts.floorTtlMs ?? 600_000;
    this.#now = opts.now ?? Date.now;
    this.#floors = new LRUCache<string, Floor>({
      max: opts.maxFloors ?? Math.max(1000, opts.maxEntries),
      // Only a floor pushed out for room while it still matters is lost; one past its time has outlived every entry below it.
      dispose: (floor, _keyId, reason) => {
        if (reason === 'evict' && this.#live(floor))
          this.#forgottenBefore = Math.max(this.#forgottenBefore, floor.learnedAt + this.#skewMs);
      },
    });
  }

  /** A floor matters for `floorTtlMs` after it was learned (expiry is ours, on this clock, not the LRU's). */
  #live(floor: Floor): boolean {
    return this.#now() - floor.learnedAt < this.#floorTtlMs;
  }

  #floor(keyId: string): Floor | undefined {
    const floor = this.#floors.get(keyId);
    return floor && this.#live(floor) ? floor : undefined;
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
    if (this.superseded(entry) || entry.refreshedAt < this.#staleBefore) return false;
    const previous = this.#byKeyId.get(entry.grant.keyId);
    if (previous !== undefined && previous !== entry.digest) this.#entries.delete(previous);
    this.#entries.set(entry.digest, entry);
    this.#byKeyId.set(entry.grant.keyId, entry.digest);
    return true;
  }

  /**
   * True when the entry may be older than a change seen here: its version is below the key's floor,
   * or it was read before a floor was pushed out (design: version-floor). Its signature or origin does
   * not matter: a superseded entry may prove that its digest was verified, never grant.
   */
  superseded(entry: Pick<CacheEntry, 'grant' | 'refreshedAt'>): boolean {
    if (entry.refreshedAt < this.#forgottenBefore) return true;
    const floor = this.#floor(entry.grant.keyId);
    return floor !== undefined && entry.grant.version < floor.version;
  }

  /**
   * Invalidate the key's entry and refuse later writes of versions older than `version`. The entry
   * stays only as proof that its digest was verified, marked never fresh: the next call re-reads
   * the key from PostgreSQL (no argon2) and never decides from the old grant, nor serves it stale.
   */
  evict(keyId: string, version: number): void {
    const floor = this.#floor(keyId)?.version ?? 0;
    if (version > floor) this.#floors.set(keyId, { version, learnedAt: this.#now() });
    const digest = this.#byKeyId.get(keyId);
    const entry = digest === undefined ? undefined : this.#entries.peek(digest);
    if (digest !== undefined && entry)
      this.#entries.set(digest, { ...entry, refreshedAt: Number.NEGATIVE_INFINITY }, { noUpdateTTL: true });
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
