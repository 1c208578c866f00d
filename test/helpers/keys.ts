import { crc32 } from 'node:zlib';
import { CHECKSUM_LENGTH, PUBLIC_ID_LENGTH, SECRET_LENGTH, type Environment } from '../../src/domain/key-format.js';

/** The base62 alphabet of key bodies. */
export const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const PREFIX: Record<Environment, string> = { live: 'otesse_live_sk_', test: 'otesse_test_sk_' };
const PREFIX_LENGTH = PREFIX.live.length;

/**
 * The checksum as src/domain/key-format.ts computes it (CRC32 of the head, 6 base62 digits),
 * re-implemented so tests can forge well-formed keys; key-format.test.ts checks it agrees.
 */
export function checksumOf(head: string): string {
  let n = crc32(head);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A well-formed key (valid checksum) from its parts. */
export function forgeKey(environment: Environment, publicId: string, secret: string): string {
  const head = PREFIX[environment] + publicId + secret;
  return head + checksumOf(head);
}

/** The parts of a well-formed key. */
export function partsOf(key: string): { environment: Environment; publicId: string; secret: string } {
  const environment: Environment = key.startsWith(PREFIX.test) ? 'test' : 'live';
  const publicId = key.slice(PREFIX_LENGTH, PREFIX_LENGTH + PUBLIC_ID_LENGTH);
  const secret = key.slice(PREFIX_LENGTH + PUBLIC_ID_LENGTH, PREFIX_LENGTH + PUBLIC_ID_LENGTH + SECRET_LENGTH);
  return { environment, publicId, secret };
}

/** A random base62 string (test data, not security relevant). */
export function randomBase62(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[Math.floor(Math.random() * 62)];
  return out;
}

/** The same key with a different, well-formed secret (checksum recomputed): the right id, the wrong secret. */
export function wrongSecret(key: string): string {
  const { environment, publicId, secret } = partsOf(key);
  let other = randomBase62(SECRET_LENGTH);
  while (other === secret) other = randomBase62(SECRET_LENGTH);
  return forgeKey(environment, publicId, other);
}
