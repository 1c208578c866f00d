import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Authenticates what replicas exchange through Redis (design: redis-not-authority): a payload is stored
 * or sent as `<mac>.<payload>`, the MAC an HMAC-SHA256 under CACHE_SIGNING_KEY bound to a context
 * (the channel or the cache key), so a valid value cannot be replayed under another name.
 */
export class Signer {
  #key: Buffer;

  constructor(secret: string) {
    this.#key = Buffer.from(secret, 'utf8');
  }

  #mac(context: string, payload: string): string {
    return createHmac('sha256', this.#key).update(context).update('\n').update(payload).digest('base64url');
  }

  sign(context: string, payload: string): string {
    return `${this.#mac(context, payload)}.${payload}`;
  }

  /** The payload when the MAC holds for this context, else undefined. */
  open(context: string, signed: unknown): string | undefined {
    if (typeof signed !== 'string') return undefined;
    const dot = signed.indexOf('.');
    if (dot !== 43) return undefined; // base64url of 32 bytes
    const payload = signed.slice(dot + 1);
    const given = Buffer.from(signed.slice(0, dot), 'utf8');
    const want = Buffer.from(this.#mac(context, payload), 'utf8');
    return given.length === want.length && timingSafeEqual(given, want) ? payload : undefined;
  }
}

/** JSON.parse that never throws: undefined for anything that is not an object. */
export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    // Not JSON: unreadable input from Redis, which the caller drops and counts.
    return undefined;
  }
}
