import { invalid } from './errors.js';

// C0 and C1 controls, DEL, and the bidirectional overrides and isolates ("Trojan Source"): text
// that reaches every dashboard and terminal that shows a label must not steer them.
const UNREADABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** Text people will read (labels, reasons): trimmed, non-empty, well-formed, no control characters (design invariant 10). */
export function readableText(path: string, value: string, max: number): string {
  const text = value.trim();
  if (text.length === 0) throw invalid(path, 'must not be empty or only spaces');
  if (text.length > max) throw invalid(path, `must be at most ${max} characters`);
  if (/\p{Cs}/u.test(text)) throw invalid(path, 'must be well-formed Unicode (a lone surrogate was found)');
  if (UNREADABLE.test(text)) throw invalid(path, 'must not contain control characters');
  return text;
}

/** The JSON Schema pattern of the same rule, so the API description and the edge say it too. */
export const READABLE_PATTERN = '^(?!\\s*$)[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$';
