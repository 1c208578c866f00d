/**
 * A gateway's request target is matched against the route map only in its one canonical form
 * (design: client-cannot-choose). The route map and the service behind the gateway must read a
 * path the same way; anything two readers may resolve differently (dot segments, encoded
 * separators, empty segments, NUL, broken or double percent-encoding) is refused, not repaired:
 * a repair is one more reading that can differ from the upstream's.
 */

/** Why a target is refused; stable codes for logs. */
export type TargetProblem =
  | 'NOT_ORIGIN_FORM'
  | 'CONTROL_CHARACTER'
  | 'BACKSLASH'
  | 'BAD_PERCENT_ENCODING'
  | 'ENCODED_SEPARATOR'
  | 'NUL'
  | 'DOUBLE_ENCODED'
  | 'DOT_SEGMENT'
  | 'EMPTY_SEGMENT';

export type TargetCheck =
  /** `path`: the target without its query string, as sent (the router decodes it). */
  { ok: true; path: string } | { ok: false; problem: TargetProblem; detail: string };

const DETAIL: Record<TargetProblem, string> = {
  NOT_ORIGIN_FORM: 'the request target must be a path starting with /',
  CONTROL_CHARACTER: 'the request target holds a control character or a space',
  BACKSLASH: 'the request path holds a backslash',
  BAD_PERCENT_ENCODING: 'the request path holds a malformed percent-encoding',
  ENCODED_SEPARATOR: 'the request path holds an encoded / or \\ (%2F, %5C)',
  NUL: 'the request path holds a NUL (%00)',
  DOUBLE_ENCODED: 'the request path holds a double-encoded dot, separator or NUL (%25…)',
  DOT_SEGMENT: 'the request path holds a dot segment (. or ..), raw or encoded',
  EMPTY_SEGMENT: 'the request path holds an empty segment (// or a trailing /)',
};

const refuse = (problem: TargetProblem): TargetCheck => ({ ok: false, problem, detail: DETAIL[problem] });

/** Raw control characters (NUL included), DEL and spaces: never valid in a request line. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}
const ENCODED_SEPARATOR = /%(2f|5c)/i;
/** What a second decoding would turn into a dot, a separator or NUL. */
const STILL_ENCODED = /%(2e|2f|5c|00)/i;

function decodeSegment(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined; // a % without two hex digits, or bytes that are not UTF-8
  }
}

function segmentProblem(raw: string): TargetProblem | undefined {
  if (ENCODED_SEPARATOR.test(raw)) return 'ENCODED_SEPARATOR';
  const decoded = decodeSegment(raw);
  if (decoded === undefined) return 'BAD_PERCENT_ENCODING';
  if (decoded.includes('\0')) return 'NUL';
  if (STILL_ENCODED.test(decoded)) return 'DOUBLE_ENCODED';
  // `..;x` is `..` to servers that strip path parameters (Tomcat, Spring, Jetty).
  const name = decoded.split(';')[0];
  if (name === '.' || name === '..') return 'DOT_SEGMENT';
  return undefined;
}

/** Check a request target (origin form: path and optional query); the query string is not checked. */
export function checkRequestTarget(target: string): TargetCheck {
  if (hasControl(target)) return refuse('CONTROL_CHARACTER');
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  if (!path.startsWith('/')) return refuse('NOT_ORIGIN_FORM');
  if (path.includes('\\')) return refuse('BACKSLASH');
  if (path === '/') return { ok: true, path };
  for (const raw of path.slice(1).split('/')) {
    if (raw === '') return refuse('EMPTY_SEGMENT');
    const problem = segmentProblem(raw);
    if (problem) return refuse(problem);
  }
  return { ok: true, path };
}
