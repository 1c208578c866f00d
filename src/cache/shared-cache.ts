import type { GrantData } from './entry.js';

/** A shared cache entry as stored: the grant and when it was read from PostgreSQL. */
export interface SharedEntry {
  data: GrantData;
  refreshedAt: number;
}

/**
 * The tier shared by replicas (Redis), keyed by key id and the key's digest. Contract:
 * - `get` resolves undefined on a miss and rejects on a fault; callers treat a fault as a miss;
 * - `set` stores unless `invalidate` has recorded a newer version for the key (invariant 4);
 * - `invalidate` removes the key's entries and records the version floor, atomically.
 */
export interface SharedCache {
  get(keyId: string, digest: string): Promise<SharedEntry | undefined>;
  set(digest: string, entry: SharedEntry): Promise<boolean>;
  invalidate(keyId: string, version: number): Promise<void>;
  close(): Promise<void>;
}

/** No shared tier (single replica): the local cache is the only one. */
export class NoSharedCache implements SharedCache {
  async get(): Promise<undefined> { return undefined; }
  async set(): Promise<boolean> { return false; }
  async invalidate(): Promise<void> {}
  async close(): Promise<void> {}
}
