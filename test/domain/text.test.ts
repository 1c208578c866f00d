// The readable-text rule has one home (src/domain/text.ts): the admin API's schema (a pattern generated
// from it) and the use cases (readableText) refuse exactly the same strings, and text the service builds
// from what others sent (readableFrom) always comes out readable, never refused.
import { Ajv } from 'ajv';
import t from 'tap';
import { AppError } from '../../src/domain/errors.js';
import { characters, READABLE_PATTERN, readableFrom, readableText, TEXT_LIMITS } from '../../src/domain/text.js';
import { Readable, RevokeBody } from '../../src/transport/http/schemas.js';

/** [name, text, readable?] */
const TABLE: [string, string, boolean][] = [
  ['plain ASCII', 'billing service', true],
  ['accents and CJK', 'clé de facturation 請求', true],
  ['right-to-left text', 'מפתח חיוב', true],
  ['emoji', 'deploy 🚀 key', true],
  ['emoji with ZWJ and skin tone', 'team 👩🏽‍💻', true],
  ['flag (two regional indicators)', 'EU 🇪🇺', true],
  ['combining marks', 'cafe\u0301 Z\u0351\u0362a\u0315l\u0360g\u0315o', true],
  ['LRM (implicit mark)', 'abc\u200edef', true],
  ['RLM (implicit mark)', 'abc\u200fdef', true],
  ['zero-width joiner alone', 'a\u200db', true],
  ['inner spaces', 'a  b', true],
  ['NUL', 'a\u0000b', false],
  ['BEL', 'a\u0007b', false],
  ['tab', 'a\tb', false],
  ['newline inside', 'a\nb', false],
  ['ESC (terminal escape)', 'a\u001b[31mred', false],
  ['DEL', 'a\u007fb', false],
  ['C1 NEL', 'a\u0085b', false],
  ['C1 CSI', 'a\u009b31m', false],
  ['C1 last (U+009F)', 'a\u009fb', false],
  ['U+202A LRE', 'a\u202ab', false],
  ['U+202B RLE', 'a\u202bb', false],
  ['U+202C PDF', 'a\u202cb', false],
  ['U+202D LRO', 'a\u202db', false],
  ['U+202E RLO', 'invoice\u202efdp.exe', false],
  ['U+2066 LRI', 'a\u2066b', false],
  ['U+2067 RLI', 'a\u2067b', false],
  ['U+2068 FSI', 'a\u2068b', false],
  ['U+2069 PDI', 'a\u2069b', false],
  ['lone high surrogate', 'a\ud83db', false],
  ['lone low surrogate', 'a\ude80b', false],
  ['high surrogate at the end (an emoji cut in half)', 'abc\ud83d', false],
  ['low surrogate at the start', '\ude80abc', false],
  ['reversed pair', 'a\ude80\ud83db', false],
  ['empty', '', false],
  ['only spaces', '   ', false],
];

/** The admin API's validator, as src/transport/http/app.ts builds it for bodies. */
const ajv = new Ajv({ removeAdditional: false, allErrors: true, useDefaults: true, strict: false, coerceTypes: false });
const label = ajv.compile(Readable(TEXT_LIMITS.label, 'test'));
const revoke = ajv.compile(RevokeBody);

const domainAccepts = (text: string, max: number) => {
  try {
    readableText('x', text, max);
    return true;
  } catch (err) {
    // Only a refusal counts as one: any other throw is a bug the test must show.
    if (err instanceof AppError && err.code === 'VALIDATION_FAILED') return false;
    throw err;
  }
};

t.test('the schema and the domain agree on a table of tricky strings', async (t) => {
  for (const [name, text, readable] of TABLE) {
    t.equal(domainAccepts(text, TEXT_LIMITS.label), readable, `domain: ${name}`);
    t.equal(label(text), readable, `label schema: ${name}`);
    t.equal(revoke({ reason: text }), readable, `revoke reason schema: ${name}`);
    // The pattern means the same whichever way a validator reads it (TypeBox's own checker omits the u flag).
    t.equal(new RegExp(READABLE_PATTERN).test(text), readable, `pattern without the u flag: ${name}`);
    t.equal(new RegExp(READABLE_PATTERN, 'u').test(text), readable, `pattern with the u flag: ${name}`);
  }
});

t.test('every C0, C1 and bidirectional control, one by one: the schema and the domain agree', async (t) => {
  const codes = [
    ...Array.from({ length: 0xa0 }, (_, i) => i),
    0x200e,
    0x200f,
    0x2028,
    0x2029,
    ...Array.from({ length: 0x10 }, (_, i) => 0x2060 + i),
    ...Array.from({ length: 0x10 }, (_, i) => 0x2020 + i),
    0xfeff,
  ];
  const disagree = codes
    .filter((c) => {
      const text = `a${String.fromCodePoint(c)}b`;
      return domainAccepts(text, 100) !== label(text);
    })
    .map((c) => c.toString(16));
  t.same(disagree, [], 'no code point is read differently');
});

t.test('lengths are characters (code points) on both sides', async (t) => {
  const emoji = '🚀'.repeat(TEXT_LIMITS.label);
  t.equal(emoji.length, 2 * TEXT_LIMITS.label, '200 UTF-16 units');
  t.ok(domainAccepts(emoji, TEXT_LIMITS.label) && label(emoji), '100 emoji are 100 characters for both');
  t.notOk(domainAccepts(`${emoji}x`, TEXT_LIMITS.label) || label(`${emoji}x`), '101 characters: refused by both');
  t.ok(
    revoke({ reason: 'é'.repeat(TEXT_LIMITS.reason) }) &&
      domainAccepts('é'.repeat(TEXT_LIMITS.reason), TEXT_LIMITS.reason),
    'a reason of 500',
  );
  t.notOk(revoke({ reason: 'é'.repeat(TEXT_LIMITS.reason + 1) }), 'a reason of 501: refused');
});

t.test('readableFrom: unreadable characters escaped, cut between characters, never refused', async (t) => {
  for (const [name, text] of TABLE) {
    const out = readableFrom(`leaked: github ${text}`, TEXT_LIMITS.reason);
    t.equal(readableText('reason', out, TEXT_LIMITS.reason), out, `${name}: readable as built`);
  }
  t.equal(readableFrom('https://x/\u202efdp.exe', 100), 'https://x/\\u{202E}fdp.exe', 'U+202E shows as \\u{202E}');
  t.equal(
    readableFrom('a\u0000b\u0085c\ud83d', 100),
    'a\\u{0}b\\u{85}c\\u{D83D}',
    'NUL, C1 and a lone surrogate escaped',
  );
  t.equal(readableFrom('a\u200fb 🚀', 100), 'a\u200fb 🚀', 'readable text is kept as it is');
  // The emoji straddles the 500th UTF-16 unit: cut on a character boundary, never inside the pair.
  const url = `https://github.com/o/r/blob/x/${'a'.repeat(499 - 'leaked: github https://github.com/o/r/blob/x/'.length)}🚀🚀 tail`;
  const reason = readableFrom(`leaked: github ${url}`, TEXT_LIMITS.reason);
  t.equal(characters(reason), TEXT_LIMITS.reason, 'cut to 500 characters');
  t.ok(reason.endsWith('a🚀'), 'the emoji at the cut is whole');
  t.notMatch(reason, /\p{Cs}/u, 'no lone surrogate');
  const escapes = readableFrom(`${'a'.repeat(495)}\u202e\u202e`, TEXT_LIMITS.reason);
  t.equal(escapes, `${'a'.repeat(495)}`, 'an escape that does not fit is left out whole, not cut inside');
  t.equal(readableFrom('  padded \n', 100), 'padded', 'trimmed');
});
