import type { Redis } from 'ioredis';
import { isKeyId } from '../domain/key-format.js';
import type { GrantData } from './entry.js';
import type { KeyVersion, SharedCache, SharedEntry } from './shared-cache.js';
import { parseObject, type Signer } from './signer.js';

const SET_IF_CURRENT = `
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) < floor then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

// KEYS: hash1, floor1, hash2, floor2, ...; ARGV: version1, version2, ..., floor ttl last.
const INVALIDATE = `
local ttl = ARGV[#ARGV]
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  local v = ARGV[(i + 1) / 2]
  local floor = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if tonumber(v) > floor then redis.call('SET', KEYS[i + 1], v, 'PX', ttl) end
end
return 1`;

const BATCH = 500;

export interface RedisSharedCacheOptions {
  redis: Redis;
  /** Namespace for every Redis key (tests use their own). */
  prefix: string;
  signer: Signer;
  ttlMs: number;
  /** Clock difference tolerated between hosts: an entry read later than that in the future is refused. */
  skewMs: number;
  /** How long a version floor lives: longer than any verification can take. */
  floorTtlMs?: number;
  now?: () => number;
  onReject?: (kind: 'entry') => void;
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isTime = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));
const isRule = (v: unknown): boolean => {
  const r = v as Record<string, unknown> | null;
  return (
    !!r &&
    typeof r.name === 'string' &&
    Number.isSafeInteger(r.limit) &&
    (r.limit as number) > 0 &&
    Number.isSafeInteger(r.windowMs) &&
    (r.windowMs as number) > 0
  );
};

/** A grant read back from Redis: every field checked, nothing trusted by shape alone. */
function readGrant(v: unknown): GrantData | undefined {
  const d = v as Record<string, unknown> | null;
  if (
    !d ||
    typeof d !== 'object' ||
    typeof d.keyId !== 'string' ||
    typeof d.accountId !== 'string' ||
    (d.environment !== 'live' && d.environment !== 'test') ||
    !isStringArray(d.scopes) ||
    !isStringArray(d.allowedIps) ||
    !isTime(d.expiresAt) ||
    !isTime(d.revokedAt) ||
    !Number.isSafeInteger(d.version) ||
    typeof d.enabled !== 'boolean' ||
    typeof d.quota !== 'boolean' ||
    !(d.metadata === null || typeof d.metadata === 'string') ||
    !Array.isArray(d.rateLimits) ||
    !d.rateLimits.every(isRule)
  )
    return undefined;
  return d as unknown as GrantData;
}

/** The shared tier in Redis: a hash per key id whose fields are key digests. Does not own the client. */
export class RedisSharedCache implements SharedCache {
  #o: RedisSharedCacheOptions;
  #floorTtlMs: number;
  #now: () => number;

  constructor(opts: RedisSharedCacheOptions) {
    this.#o = opts;
    this.#floorTtlMs = opts.floorTtlMs ?? 3_600_000;
    this.#now = opts.now ?? Date.now;
  }

  #keys(keyId: string): [string, string] {
    return [`${this.#o.prefix}k:${keyId}`, `${this.#o.prefix}v:${keyId}`];
  }

  /** The MAC binds the entry to its key id and digest, so it cannot be moved to another key. */
  #context(keyId: string, digest: string): string {
    return `entry:${keyId}:${digest}`;
  }

  async get(keyId: string, digest: string): Promise<SharedEntry | undefined> {
    const raw = await this.#o.redis.hget(this.#keys(keyId)[0], digest);
    if (raw === null) return undefined;
    const entry = this.#read(keyId, digest, raw);
    if (!entry) this.#o.onReject?.('entry');
    return entry;
  }

  #read(keyId: string, digest: string, raw: string): SharedEntry | undefined {
    const obj = parseObject(this.#o.signer.open(this.#context(keyId, digest), raw) ?? '');
    const data = readGrant(obj?.data);
    const refreshedAt = obj?.refreshedAt;
    if (!data || data.keyId !== keyId || typeof refreshedAt !== 'number' || !Number.isFinite(refreshedAt))
      return undefined;
    // An entry from the future would stay fresh for ever.
    if (refreshedAt > this.#now() + this.#o.skewMs) return undefined;
    return { data, refreshedAt };
  }

  async set(digest: string, entry: SharedEntry): Promise<boolean> {
    if (!isKeyId(entry.data.keyId)) return false;
    const [hash, floor] = this.#keys(entry.data.keyId);
    const value = this.#o.signer.sign(this.#context(entry.data.keyId, digest), JSON.stringify(entry));
    const stored = await this.#o.redis.eval(
      SET_IF_CURRENT,
      2,
      hash,
      floor,
      digest,
      value,
      String(entry.data.version),
      String(this.#o.ttlMs),
    );
    return stored === 1;
  }

  async invalidate(changes: readonly KeyVersion[]): Promise<void> {
    const batches: Promise<unknown>[] = [];
    for (let i = 0; i < changes.length; i += BATCH) {
      const batch = changes.slice(i, i + BATCH);
      const keys = batch.flatMap((c) => this.#keys(c.keyId));
      batches.push(
        this.#o.redis.eval(
          INVALIDATE,
          keys.length,
          ...keys,
          ...batch.map((c) => String(c.version)),
          String(this.#floorTtlMs),
        ),
      );
    }
    const results = await Promise.allSettled(batches);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async close(): Promise<void> {}
}
