import type { GrantData } from './entry.js';

/** A shared cache entry as stored: the grant and when it was read from PostgreSQL. */
export interface SharedEntry {
  data: GrantData;
  refreshedAt: number;
}

/** A key's new version, for invalidation. */
export interface KeyVersion {
  keyId: string;
  version: number;
}

/**
 * The tier shared by replicas (Redis), keyed by key id and the key's digest. Contract:
 * - `get` resolves undefined on a miss, and on an entry that fails authentication or parsing
 *   (design: redis-not-authority: Redis is not an authority); it rejects on a fault; callers treat a
 *   fault as a miss;
 * - `set` stores unless `invalidate` has recorded a newer version for the key (design: no-stale-write);
 * - `invalidate` removes the keys' entries and records their version floors, in batches; it
 *   rejects when any batch failed.
 */
export interface SharedCache {
  get(keyId: string, digest: string): Promise<SharedEntry | undefined>;
  set(digest: string, entry: SharedEntry): Promise<boolean>;
  invalidate(changes: readonly KeyVersion[]): Promise<void>;
  close(): Promise<void>;
}

/** No shared tier (single replica): the local cache is the only one. */
export class NoSharedCache implements SharedCache {
  async get(): Promise<undefined> {
    return undefined;
  }
  async set(): Promise<boolean> {
    return false;
  }
  async invalidate(): Promise<void> {}
  async close(): Promise<void> {}
}
