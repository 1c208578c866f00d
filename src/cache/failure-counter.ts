import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';

/**
 * Failed attempts per (key id, source address), shared by replicas (design: no-remote-lockout): a
 * stranger's wrong guesses lock out the stranger's address, never the key. Contract:
 * - `count` resolves the failures recorded within the window; it never rejects (a fault of the
 *   shared store falls back to this replica's own count);
 * - `add` records one failure; it never rejects.
 */
export interface FailureCounter {
  count(keyId: string, ip: string): Promise<number>;
  add(keyId: string, ip: string): Promise<void>;
}

/** This replica's own count (the embedded default, and the fallback when Redis fails). */
export class MemoryFailureCounter implements FailureCounter {
  #counts: LRUCache<string, number>;

  constructor(opts: { windowMs: number; max?: number }) {
    this.#counts = new LRUCache({ max: opts.max ?? 100_000, ttl: opts.windowMs });
  }

  async count(keyId: string, ip: string): Promise<number> {
    return this.#counts.get(`${keyId}|${ip}`) ?? 0;
  }

  async add(keyId: string, ip: string): Promise<void> {
    const k = `${keyId}|${ip}`;
    this.#counts.set(k, (this.#counts.get(k) ?? 0) + 1, { noUpdateTTL: this.#counts.has(k) });
  }
}

/** Counts in Redis (INCR with an expiry set by the first failure), this replica's own as the fallback. */
export class RedisFailureCounter implements FailureCounter {
  #redis: Redis;
  #prefix: string;
  #windowMs: number;
  #local: MemoryFailureCounter;

  constructor(opts: { redis: Redis; prefix: string; windowMs: number }) {
    this.#redis = opts.redis;
    this.#prefix = opts.prefix;
    this.#windowMs = opts.windowMs;
    this.#local = new MemoryFailureCounter({ windowMs: opts.windowMs });
  }

  #key(keyId: string, ip: string): string {
    return `${this.#prefix}f:${keyId}:${ip}`;
  }

  async count(keyId: string, ip: string): Promise<number> {
    const local = await this.#local.count(keyId, ip);
    const shared = await this.#redis.get(this.#key(keyId, ip)).then(
      (v) => Number(v ?? 0),
      () => 0,
    );
    return Math.max(local, Number.isFinite(shared) ? shared : 0);
  }

  async add(keyId: string, ip: string): Promise<void> {
    await this.#local.add(keyId, ip);
    const k = this.#key(keyId, ip);
    // Redis unreachable: this replica's own count (above) still refuses the address here.
    await this.#redis
      .multi()
      .incr(k)
      .pexpire(k, this.#windowMs, 'NX')
      .exec()
      .catch(() => undefined);
  }
}
