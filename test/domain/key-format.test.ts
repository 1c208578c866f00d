import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';
import t from 'tap';
import {
  BODY_LENGTH,
  ENVIRONMENTS,
  KEY_PATTERN,
  PUBLIC_ID_LENGTH,
  SECRET_LENGTH,
  crc32Ascii,
  generateKey,
  isKeyId,
  keyIdOf,
  parseKey,
  redact,
  secretOf,
  wellFormed,
  type Environment,
} from '../../src/domain/key-format.js';
import { ALPHABET, PREFIX, checksumOf, forgeKey, partsOf } from '../helpers/keys.js';

const PER_ENVIRONMENT = 2500;
const keys = ENVIRONMENTS.flatMap((env) => Array.from({ length: PER_ENVIRONMENT }, () => generateKey(env)));

t.test('thousands of generated keys parse back to their own key id, in both environments', async (t) => {
  t.equal(keys.length, 5000);
  let bad = 0;
  for (const g of keys) {
    const parsed = parseKey(g.key);
    if (!parsed || parsed.keyId !== g.keyId || parsed.environment !== g.environment || parsed.publicId !== g.publicId)
      bad++;
  }
  t.equal(bad, 0, 'every key parses with its id and environment');
  const byEnv = (env: Environment) => keys.filter((g) => g.environment === env);
  t.ok(
    byEnv('live').every((g) => g.key.startsWith('otesse_live_sk_')),
    'live keys carry the live prefix',
  );
  t.ok(
    byEnv('test').every((g) => g.key.startsWith('otesse_test_sk_')),
    'test keys carry the test prefix',
  );
  t.equal(new Set(keys.map((g) => g.keyId)).size, keys.length, 'key ids are unique');
  t.equal(new Set(keys.map((g) => g.secret)).size, keys.length, 'secrets are unique');
});

t.test('the key shape: fixed-length base62 body of id, secret and checksum', async (t) => {
  for (const g of keys.slice(0, 200)) {
    const body = g.key.slice(PREFIX[g.environment].length);
    t.equal(body.length, BODY_LENGTH);
    t.match(body, /^[0-9A-Za-z]+$/);
    t.equal(g.keyId, `key_${g.publicId}`);
    t.equal(keyIdOf(g.publicId), g.keyId);
    t.ok(isKeyId(g.keyId));
    t.equal(secretOf(g.key), g.secret, 'secretOf finds the secret part');
    t.equal(g.key.slice(0, -6), PREFIX[g.environment] + g.publicId + g.secret);
    t.equal(g.key.slice(-6), checksumOf(g.key.slice(0, -6)), 'the test helper computes the same checksum');
    t.same(partsOf(g.key), { environment: g.environment, publicId: g.publicId, secret: g.secret });
    KEY_PATTERN.lastIndex = 0;
    t.same(g.key.match(KEY_PATTERN), [g.key], 'the log scrubber recognises the whole key');
  }
  t.notOk(isKeyId('key_short'));
  t.notOk(isKeyId('kex_0123456789ab'));
  t.notOk(isKeyId('key_0123456789a-'));
});

t.test('the secret carries at least 160 bits and uses the whole alphabet', async (t) => {
  t.ok(
    SECRET_LENGTH * Math.log2(62) >= 160,
    `${SECRET_LENGTH} base62 characters = ${(SECRET_LENGTH * Math.log2(62)).toFixed(1)} bits`,
  );
  t.ok(PUBLIC_ID_LENGTH * Math.log2(62) >= 64, 'public ids are wide enough not to collide');
  const counts = new Map<string, number>();
  for (const g of keys) for (const c of g.secret) counts.set(c, (counts.get(c) ?? 0) + 1);
  t.equal(counts.size, 62, 'every base62 character occurs in secrets');
  const expected = (keys.length * SECRET_LENGTH) / 62;
  const worst = Math.max(...[...counts.values()].map((n) => Math.abs(n - expected) / expected));
  t.ok(worst < 0.1, `characters are uniform (worst deviation ${(worst * 100).toFixed(1)}%)`);
});

/** Every single-character edit of a key: substitutions (all alphabet characters), deletions, insertions. */
function* singleEdits(key: string): Generator<string> {
  for (let i = 0; i < key.length; i++) {
    for (const c of ALPHABET) if (c !== key[i]) yield key.slice(0, i) + c + key.slice(i + 1);
    for (const c of ['-', '_', 'é', ' ', '.', '\u0000', '+', '/', '='])
      if (c !== key[i]) yield key.slice(0, i) + c + key.slice(i + 1);
    yield key.slice(0, i) + key.slice(i + 1);
    yield key.slice(0, i) + 'A' + key.slice(i);
  }
  yield `${key}A`;
}

t.test('every single-character change of a key is rejected offline', async (t) => {
  const sample = [...keys.slice(0, 10), ...keys.slice(PER_ENVIRONMENT, PER_ENVIRONMENT + 10)];
  let edits = 0;
  const accepted: string[] = [];
  for (const g of sample) {
    for (const edited of singleEdits(g.key)) {
      edits++;
      if (parseKey(edited) !== undefined) accepted.push(edited);
    }
  }
  t.ok(edits > 20 * 65 * 61, `${edits} edits tried`);
  t.same(accepted, [], 'no edited key parses');
});

t.test('adjacent transpositions are rejected', async (t) => {
  const accepted: string[] = [];
  for (const g of keys.slice(0, 50)) {
    for (let i = 0; i + 1 < g.key.length; i++) {
      if (g.key[i] === g.key[i + 1]) continue;
      const swapped = g.key.slice(0, i) + g.key[i + 1] + g.key[i] + g.key.slice(i + 2);
      if (parseKey(swapped)) accepted.push(swapped);
    }
  }
  t.same(accepted, []);
});

t.test('wrong prefix, length, alphabet and garbage are rejected', async (t) => {
  const g = generateKey('live');
  const body = g.key.slice(PREFIX.live.length);
  const rejected = [
    '',
    'otesse_live_sk_',
    'garbage',
    'Bearer ' + g.key,
    ` ${g.key}`,
    `${g.key} `,
    `${g.key}\n`,
    g.key.toUpperCase(),
    g.key.slice(0, -1),
    g.key + g.key.slice(-1),
    g.key.slice(1),
    `otesse_test_sk_${body}`, // the checksum covers the prefix: a live key relabelled test fails
    `otesse_prod_sk_${body}`,
    `OTESSE_LIVE_SK_${body}`,
    `otesse_live_pk_${body}`,
    `otesse-live-sk-${body}`,
    `sk_live_${body}`,
    body,
    `otesse_live_sk_${body.slice(0, 20)}-${body.slice(21)}`,
    `otesse_live_sk_${body.slice(0, 20)}é${body.slice(21)}`,
    `otesse_live_sk_${body.slice(0, 20)}😀${body.slice(22)}`,
    forgeKey('live', g.publicId, g.secret).replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')),
  ];
  for (const text of rejected) {
    t.equal(parseKey(text), undefined, `rejects ${JSON.stringify(text.slice(0, 30))}…`);
    t.equal(wellFormed(text), false, `wellFormed agrees on ${JSON.stringify(text.slice(0, 30))}…`);
  }
  t.ok(wellFormed(g.key), 'wellFormed takes a generated key');
  t.ok(
    parseKey(forgeKey('test', g.publicId, g.secret)),
    'the same parts under the test prefix with their own checksum parse',
  );
  t.equal(parseKey(forgeKey('test', g.publicId, g.secret))?.environment, 'test');
});

t.test('redact shows prefix, id and last four, never the secret', async (t) => {
  for (const g of keys.slice(0, 500)) {
    const shown = redact(g.key);
    t.equal(g.redacted, shown);
    t.equal(shown, `${PREFIX[g.environment]}${g.publicId}…${g.key.slice(-4)}`);
    if (shown.includes(g.secret)) t.fail('redacted form holds the secret');
    for (let i = 0; i + 8 <= g.secret.length; i++) {
      if (shown.includes(g.secret.slice(i, i + 8))) t.fail(`redacted form holds part of the secret: ${shown}`);
    }
  }
  t.match(redact(generateKey('test').key), /^otesse_test_sk_[0-9A-Za-z]{12}…[0-9A-Za-z]{4}$/);
});

t.test('the checksum uses zlib CRC-32, on any ASCII text and on every prefix length', async (t) => {
  let differ = 0;
  for (let n = 0; n < 2000; n++) {
    const text = String.fromCharCode(...Array.from({ length: randomInt(0, 90) }, () => randomInt(0, 128)));
    if (crc32Ascii(text) !== crc32(text)) differ++;
    const cut = randomInt(0, text.length + 1);
    if (crc32Ascii(text, cut) !== crc32(text.slice(0, cut))) differ++;
  }
  t.equal(differ, 0, 'crc32Ascii(text) === zlib.crc32(text), and over a prefix');
  t.equal(crc32Ascii('123456789'), 0xcbf43926, 'the standard check value');
});
