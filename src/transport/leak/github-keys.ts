import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { checker } from '../../validation.js';

/** GitHub's published list: `GET meta/public_keys/secret_scanning`. */
const checkKeyList = checker(
  Type.Object({
    public_keys: Type.Array(
      Type.Object({
        key_identifier: Type.String({ minLength: 1 }),
        key: Type.String({ minLength: 1 }),
        is_current: Type.Optional(Type.Boolean()),
      }),
    ),
  }),
  'json',
);

/** The key list could not be read and no key is cached: the report cannot be checked now (503; GitHub retries). */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}

export interface GithubPublicKeysOptions {
  url: string;
  /** An unknown identifier refetches the list at most this often (GitHub rotates keys rarely). */
  minRefetchMs?: number;
  /**
   * The list is trusted this long after it was read; then it is read again, so a key GitHub
   * retired stops being trusted. Unreadable past this age: reports get 503 (GitHub retries). Default 1 h.
   */
  maxAgeMs?: number;
  timeoutMs?: number;
  now?: () => number;
  /** Why a fetch failed (the listener logs it). */
  onFetchError?: (err: unknown) => void;
}

/** A P-256 public key from PEM, or undefined for anything else (a key of another kind cannot sign a report). */
function p256(pem: string): KeyObject | undefined {
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? key : undefined;
  } catch {
    // A PEM that does not parse is left out like a key of another kind; a list left with no key fails
    // the refresh, and that is reported (onFetchError).
    return undefined;
  }
}

/**
 * GitHub's secret-scanning signing keys, cached for at most `maxAgeMs`. An identifier not in the
 * cache, or a cache past its age, refetches the list once (concurrent callers share the fetch),
 * never more than once per `minRefetchMs`, so a flood of reports with made-up identifiers costs
 * GitHub's API one request a minute. A key no longer listed is no longer trusted.
 */
export class GithubPublicKeys {
  #o: GithubPublicKeysOptions;
  #keys = new Map<string, KeyObject>();
  /** When the cached list was read (the last successful fetch). */
  #readAt = Number.NEGATIVE_INFINITY;
  #lastFetch = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  #fetches = 0;

  constructor(opts: GithubPublicKeysOptions) {
    this.#o = opts;
  }

  /** Fetches of the list since start. */
  get fetches(): number {
    return this.#fetches;
  }

  /** The key with this identifier, or undefined when GitHub does not publish it; KeysUnavailableError when no current list can be read. */
  async get(identifier: string): Promise<KeyObject | undefined> {
    const known = this.#current() ? this.#keys.get(identifier) : undefined;
    if (known) return known;
    const now = this.#now();
    if (this.#inflight === undefined && now - this.#lastFetch >= (this.#o.minRefetchMs ?? 60_000)) {
      this.#lastFetch = now;
      this.#inflight = this.#refresh().finally(() => {
        this.#inflight = undefined;
      });
    }
    await this.#inflight;
    if (!this.#current()) throw new KeysUnavailableError('GitHub secret-scanning public keys could not be read');
    return this.#keys.get(identifier);
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** A list read within `maxAgeMs`: anything older may still hold a key GitHub has retired. */
  #current(): boolean {
    return this.#keys.size > 0 && this.#now() - this.#readAt < (this.#o.maxAgeMs ?? 3_600_000);
  }

  async #refresh(): Promise<void> {
    this.#fetches++;
    try {
      const res = await fetch(this.#o.url, {
        headers: { accept: 'application/json', 'user-agent': 'otesse-key-service' },
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000),
      });
      if (!res.ok) throw new Error(`key list answered ${res.status}`);
      const list = checkKeyList(await res.json());
      if (!list.ok) throw new Error(`key list ${list.issue.path || 'body'}: ${list.issue.message}`);
      const keys = new Map<string, KeyObject>();
      for (const k of list.value.public_keys) {
        const key = p256(k.key);
        if (key) keys.set(k.key_identifier, key);
      }
      if (keys.size === 0) throw new Error('key list holds no P-256 key');
      this.#keys = keys;
      this.#readAt = this.#now();
    } catch (err) {
      // The keys already known stay trusted until their age runs out: a short outage of GitHub's
      // API does not stop reports signed with them, a long one answers 503 rather than trust stale keys.
      this.#o.onFetchError?.(err);
    }
  }
}

/** ECDSA P-256 SHA-256 over the raw body; the signature is base64 of ASN.1 DER. */
export function verifyGithubSignature(body: Buffer, signatureBase64: string, key: KeyObject): boolean {
  try {
    return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signatureBase64, 'base64'));
  } catch {
    // A signature that is not DER at all is a bad signature: the listener refuses and counts it as one.
    return false;
  }
}
