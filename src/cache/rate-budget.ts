import type { Redis } from 'ioredis';
import type { RateLimitRule } from './entry.js';

/**
 * The global budget of a key's rate limit in one fixed window (aligned to the epoch), from which
 * replicas lease shares. Contract: `lease` grants at most `want`, and never more in all than the
 * limit per window across every replica that uses the same store; it resolves 0 when the window's
 * budget is spent, and rejects only when the store cannot be reached.
 */
export interface RateBudget {
  lease(keyId: string, rule: RateLimitRule, window: number, want: number): Promise<number>;
}

/** One process's budget: the embedded default, and each replica's own while Redis is unreachable. */
export class MemoryRateBudget implements RateBudget {
  #used = new Map<string, { window: number; used: number }>();

  async lease(keyId: string, rule: RateLimitRule, window: number, want: number): Promise<number> {
    const id = `${keyId}|${rule.name}|${rule.windowMs}`;
    let slot = this.#used.get(id);
    if (!slot || slot.window !== window) {
      slot = { window, used: 0 };
      this.#used.set(id, slot);
    }
    const granted = Math.max(0, Math.min(want, rule.limit - slot.used));
    slot.used += granted;
    return granted;
  }
}

// Grant min(want, limit - used) and count it, in one step; the counter lives one window past its own.
const LEASE = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[1]) - used
if room <= 0 then return 0 end
local granted = math.min(tonumber(ARGV[2]), room)
redis.call('INCRBY', KEYS[1], granted)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return granted`;

/** The fleet's budget in Redis: a counter per key, limit name, window length and window. */
export class RedisRateBudget implements RateBudget {
  #redis: Redis;
  #prefix: string;

  constructor(opts: { redis: Redis; prefix: string }) {
    this.#redis = opts.redis;
    this.#prefix = opts.prefix;
  }

  async lease(keyId: string, rule: RateLimitRule, window: number, want: number): Promise<number> {
    const key = `${this.#prefix}rl:${keyId}:${rule.name}:${rule.windowMs}:${window}`;
    const granted = await this.#redis.eval(LEASE, 1, key, rule.limit, want, rule.windowMs * 2);
    return typeof granted === 'number' ? granted : 0;
  }
}
