import type { Redis } from 'ioredis';
import type { SharedCache, SharedEntry } from './shared-cache.js';

const SET_IF_CURRENT = `
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) < floor then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

const INVALIDATE = `
redis.call('DEL', KEYS[1])
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > floor then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
return 1`;

export interface RedisSharedCacheOptions {
  redis: Redis;
  /** Namespace for every Redis key (tests use their own). */
  prefix: string;
  ttlMs: number;
  /** How long a version floor lives: longer than any verification can take. */
  floorTtlMs?: number;
}

/** The shared tier in Redis: a hash per key id whose fields are key digests. Does not own the client. */
export class RedisSharedCache implements SharedCache {
  #redis: Redis;
  #prefix: string;
  #ttlMs: number;
  #floorTtlMs: number;

  constructor(opts: RedisSharedCacheOptions) {
    this.#redis = opts.redis;
    this.#prefix = opts.prefix;
    this.#ttlMs = opts.ttlMs;
    this.#floorTtlMs = opts.floorTtlMs ?? 3_600_000;
  }

  #keys(keyId: string): [string, string] {
    return [`${this.#prefix}k:${keyId}`, `${this.#prefix}v:${keyId}`];
  }

  async get(keyId: string, digest: string): Promise<SharedEntry | undefined> {
    const raw = await this.#redis.hget(this.#keys(keyId)[0], digest);
    return raw ? (JSON.parse(raw) as SharedEntry) : undefined;
  }

  async set(digest: string, entry: SharedEntry): Promise<boolean> {
    const [hash, floor] = this.#keys(entry.data.keyId);
    const stored = await this.#redis.eval(SET_IF_CURRENT, 2, hash, floor, digest, JSON.stringify(entry),
      String(entry.data.version), String(this.#ttlMs));
    return stored === 1;
  }

  async invalidate(keyId: string, version: number): Promise<void> {
    const [hash, floor] = this.#keys(keyId);
    await this.#redis.eval(INVALIDATE, 2, hash, floor, String(version), String(this.#floorTtlMs));
  }

  async close(): Promise<void> {}
}
