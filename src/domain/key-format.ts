import { createHash, randomInt } from 'node:crypto';

/** `live` for production keys, `test` for sandbox keys. */
export type Environment = 'live' | 'test';
export const ENVIRONMENTS: readonly Environment[] = Object.freeze(['live', 'test']);

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Public key id: 12 base62 characters (~71 bits), unique per key, not secret. */
export const PUBLIC_ID_LENGTH = 12;
/** Secret: 32 base62 characters, ~190 bits from the CSPRNG. */
export const SECRET_LENGTH = 32;
/** Checksum: CRC32 of everything before it, 6 base62 characters. */
export const CHECKSUM_LENGTH = 6;
export const BODY_LENGTH = PUBLIC_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH;

const PREFIXES: Record<Environment, string> = { live: 'otesse_live_sk_', test: 'otesse_test_sk_' };
const KEY_ID_PREFIX = 'key_';
/** A key id as a pattern (JSON Schema and RegExp): `key_` + a public id, what isKeyId accepts. */
export const KEY_ID_PATTERN = `^${KEY_ID_PREFIX}[0-9A-Za-z]{${PUBLIC_ID_LENGTH}}$`;
const PREFIX_LENGTH = PREFIXES.live.length;
const KEY_LENGTH = PREFIX_LENGTH + BODY_LENGTH;
const BODY_RE = /^[0-9A-Za-z]+$/;

/** A key that passed the offline checks (prefix, length, alphabet, checksum). */
export interface ParsedKey {
  environment: Environment;
  publicId: string;
  keyId: string;
}

/** A freshly generated key: `key` holds the secret and must only reach the create response. */
export interface GeneratedKey extends ParsedKey {
  key: string;
  secret: string;
  redacted: string;
}

/** `length` characters of the base62 alphabet from the CSPRNG (key ids, secrets, and other ids). */
export function randomBase62(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

/** CRC-32 (IEEE 802.3, as zlib's) lookup table. */
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/**
 * CRC-32 of the first `length` characters of ASCII text (a key's characters all are). In JavaScript, not
 * zlib.crc32: it runs on every Authenticate, and for 59 characters the native call (which first encodes
 * the string) costs more than the loop. The test checks it against zlib.crc32.
 */
export function crc32Ascii(text: string, length = text.length): number {
  return (crcUpdate(-1, text, 0, length) ^ -1) >>> 0;
}

/** The running CRC-32 register after the characters from `from` to `to` (exclusive). */
function crcUpdate(register: number, text: string, from: number, to: number): number {
  let c = register;
  for (let i = from; i < to; i++) c = (CRC_TABLE[(c ^ text.charCodeAt(i)) & 0xff] as number) ^ (c >>> 8);
  return c;
}

/** 1 for the character codes of the alphabet. */
const IN_ALPHABET = new Uint8Array(128);
for (let i = 0; i < ALPHABET.length; i++) IN_ALPHABET[ALPHABET.charCodeAt(i)] = 1;

/** The CRC register after each prefix (the same for every key of the environment). */
const LIVE_REGISTER = crcUpdate(-1, PREFIXES.live, 0, PREFIX_LENGTH);
const TEST_REGISTER = crcUpdate(-1, PREFIXES.test, 0, PREFIX_LENGTH);

/** The checksum characters of a key's head (what comes before them). */
function checksum(text: string): string {
  let n = crc32Ascii(text);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** The admin-facing id of a key with this public id. */
export function keyIdOf(publicId: string): string {
  return `${KEY_ID_PREFIX}${publicId}`;
}

/** How a key is shown to admins: prefix, public id, last four characters. */
export function redact(key: string): string {
  return `${key.slice(0, PREFIX_LENGTH + PUBLIC_ID_LENGTH)}…${key.slice(-4)}`;
}

/** Make a new key for an environment from the CSPRNG. */
export function generateKey(environment: Environment): GeneratedKey {
  const publicId = randomBase62(PUBLIC_ID_LENGTH);
  const secret = randomBase62(SECRET_LENGTH);
  const head = PREFIXES[environment] + publicId + secret;
  const key = head + checksum(head);
  return { environment, publicId, keyId: keyIdOf(publicId), key, secret, redacted: redact(key) };
}

/**
 * True when a key passes the offline checks (prefix, length, alphabet, checksum), with no I/O and without
 * building any string: the first step of every Authenticate.
 */
export function wellFormed(key: string): boolean {
  if (key.length !== KEY_LENGTH) return false;
  const register = key.startsWith(PREFIXES.live)
    ? LIVE_REGISTER
    : key.startsWith(PREFIXES.test)
      ? TEST_REGISTER
      : undefined;
  if (register === undefined) return false;
  // One pass over the id and the secret: each character in the alphabet, and into the CRC.
  let c = register;
  const head = KEY_LENGTH - CHECKSUM_LENGTH;
  for (let i = PREFIX_LENGTH; i < head; i++) {
    const code = key.charCodeAt(i);
    if (code > 127 || IN_ALPHABET[code] !== 1) return false;
    c = (CRC_TABLE[(c ^ code) & 0xff] as number) ^ (c >>> 8);
  }
  // The checksum characters must be those of the CRC (so they are in the alphabet too).
  let n = (c ^ -1) >>> 0;
  for (let i = KEY_LENGTH - 1; i >= head; i--) {
    if (key.charCodeAt(i) !== ALPHABET.charCodeAt(n % 62)) return false;
    n = Math.floor(n / 62);
  }
  return true;
}

/** The parts of a key that `wellFormed` accepted (nothing is checked again). */
export function partsOfWellFormed(key: string): ParsedKey {
  const publicId = key.slice(PREFIX_LENGTH, PREFIX_LENGTH + PUBLIC_ID_LENGTH);
  return { environment: key.startsWith(PREFIXES.live) ? 'live' : 'test', publicId, keyId: keyIdOf(publicId) };
}

/** Check a key offline, with no I/O: undefined when the prefix, length, alphabet or checksum is wrong. */
export function parseKey(key: string): ParsedKey | undefined {
  return wellFormed(key) ? partsOfWellFormed(key) : undefined;
}

/** The secret part of a well-formed key (what argon2 hashes). */
export function secretOf(key: string): string {
  const start = PREFIX_LENGTH + PUBLIC_ID_LENGTH;
  return key.slice(start, start + SECRET_LENGTH);
}

/** True when the text is shaped like a key id (`key_` + a public id). */
export function isKeyId(id: string): boolean {
  const p = KEY_ID_PREFIX.length;
  return id.length === p + PUBLIC_ID_LENGTH && id.startsWith(KEY_ID_PREFIX) && BODY_RE.test(id.slice(p));
}

/** Every place a key-shaped token appears in text, for log redaction. */
export const KEY_PATTERN = /otesse_(?:live|test)_sk_[0-9A-Za-z]+/g;

/**
 * A short check value of a secret (the first 4 bytes of its SHA-256, hex), stored beside the
 * argon2id hash: a wrong secret is refused without hashing. It leaves 158 of 190 bits unknown.
 */
export function secretCheck(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 8);
}

/**
 * Why a presented key cannot be the stored one, decided without argon2: the other environment's
 * prefix on a real id, or a secret whose check value differs from the stored one (unknown for keys
 * made before check values existed: null). Undefined when only argon2 can tell. Authenticate and
 * leak reports both ask this before hashing (design: bounded-hashing).
 */
export function offlineRefusal(
  stored: { environment: string; check: string | null },
  environment: Environment,
  check: string,
): 'environment' | 'check' | undefined {
  if (stored.environment !== environment) return 'environment';
  if (stored.check !== null && stored.check !== check) return 'check';
  return undefined;
}
