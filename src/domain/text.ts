import { invalid } from './errors.js';

/**
 * Bounds of the text people read, in characters (Unicode code points, as JSON Schema's maxLength
 * counts them, so the edge and the use case agree on an emoji). Defined here only: the API schema
 * and the use cases import them.
 */
export const TEXT_LIMITS = Object.freeze({
  label: 100,
  reason: 500,
  /** What found a leaked key (an admin's scanner, GitHub's `source`). */
  leakSource: 100,
  /** Where a leaked key was seen. */
  leakUrl: 2048,
  /** A webhook endpoint's URL and what its owner says it is for. */
  webhookUrl: 2048,
  webhookDescription: 500,
});

// C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates ("Trojan Source"):
// text that reaches every dashboard and terminal that shows a label must not steer them. The implicit
// marks U+200E/U+200F stay allowed: right-to-left labels need them and they reorder nothing on their own.
// Lone surrogates (not well-formed Unicode) are unreadable as well; they are added where the class is used.
const UNREADABLE_CLASS = '\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069';
const UNREADABLE = new RegExp(`[${UNREADABLE_CLASS}]|\\p{Cs}`, 'u');

/**
 * The JSON Schema pattern of the same rule (the edge refuses what readableText refuses). Written to
 * mean the same with and without the regular expression `u` flag: a surrogate half is allowed only
 * as part of a pair, whichever way the validator reads the string.
 */
export const READABLE_PATTERN = `^(?!\\s*$)(?:[^${UNREADABLE_CLASS}\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$`;

/** The length of text in characters (code points). */
export function characters(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Text people give (labels, reasons): trimmed, non-empty, at most `max` characters, well-formed,
 * no control characters; anything else is refused (design: edge-validation).
 */
export function readableText(path: string, value: string, max: number): string {
  const text = value.trim();
  if (text.length === 0) throw invalid(path, 'must not be empty or only spaces');
  if (characters(text) > max) throw invalid(path, `must be at most ${max} characters`);
  if (/\p{Cs}/u.test(text)) throw invalid(path, 'must be well-formed Unicode (a lone surrogate was found)');
  if (UNREADABLE.test(text)) throw invalid(path, 'must not contain control characters');
  return text;
}

/** A character shown as `\u{…}` instead of itself. */
const escaped = (ch: string) => `\\u{${(ch.codePointAt(0) as number).toString(16).toUpperCase()}}`;

/**
 * Text the service builds from what others sent (a reason made of a URL GitHub reported): each
 * unreadable character written as `\u{…}`, trimmed, and cut to at most `max` characters between two
 * characters (never inside a surrogate pair or an escape). Never refused: readableText accepts the
 * result whenever it is not empty.
 */
export function readableFrom(value: string, max: number): string {
  let out = '';
  let count = 0;
  for (const ch of value.trim()) {
    const piece = UNREADABLE.test(ch) ? escaped(ch) : ch;
    const size = piece === ch ? 1 : piece.length;
    if (count + size > max) break;
    out += piece;
    count += size;
  }
  return out.trimEnd();
}
