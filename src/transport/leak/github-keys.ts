import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/** GitHub's published list: `GET meta/public_keys/secret_scanning`. */
const KeyList = z.object({
  public_keys: z.array(z.object({ key_identifier: z.string().min(1), key: z.string().min(1), is_current: z.boolean().optional() })),
});

/** The key list could not be read and no key is cached: the report cannot be checked now (503; GitHub retries). */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}

export interface GithubPublicKeysOptions {
  url: string;
  /** An unknown identifier refetches the list at most this often (GitHub rotates keys rarely). */
  minRefetchMs?: number;
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
    return undefined;
  }
}

/**
 * GitHub's secret-scanning signing keys, cached. An identifier not in the cache refetches the
 * list once (concurrent callers share the fetch), never more than once per `minRefetchMs`, so a
 * flood of reports with made-up identifiers costs GitHub's API one request a minute.
 */
export class GithubPublicKeys {
  #o: GithubPublicKeysOptions;
  #keys = new Map<string, KeyObject>();
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

  /** The key with this identifier, or undefined when GitHub does not publish it; KeysUnavailableError when nothing can be known. */
  async get(identifier: string): Promise<KeyObject | undefined> {
    const known = this.#keys.get(identifier);
    if (known) return known;
    const now = (this.#o.now ?? Date.now)();
    if (this.#inflight === undefined && now - this.#lastFetch >= (this.#o.minRefetchMs ?? 60_000)) {
      this.#lastFetch = now;
      this.#inflight = this.#refresh().finally(() => { this.#inflight = undefined; });
    }
    await this.#inflight;
    if (this.#keys.size === 0) throw new KeysUnavailableError('GitHub secret-scanning public keys could not be read');
    return this.#keys.get(identifier);
  }

  async #refresh(): Promise<void> {
    this.#fetches++;
    try {
      const res = await fetch(this.#o.url, { headers: { accept: 'application/json', 'user-agent': 'otesse-key-service' }, signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000) });
      if (!res.ok) throw new Error(`key list answered ${res.status}`);
      const list = KeyList.parse(await res.json());
      const keys = new Map<string, KeyObject>();
      for (const k of list.public_keys) {
        const key = p256(k.key);
        if (key) keys.set(k.key_identifier, key);
      }
      if (keys.size > 0) this.#keys = keys;
    } catch (err) {
      // Keep the keys already known: an outage of GitHub's API must not stop reports signed with them.
      this.#o.onFetchError?.(err);
    }
  }
}

/** ECDSA P-256 SHA-256 over the raw body; the signature is base64 of ASN.1 DER. */
export function verifyGithubSignature(body: Buffer, signatureBase64: string, key: KeyObject): boolean {
  try {
    return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false;
  }
}
