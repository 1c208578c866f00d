import { invalid } from '../domain/errors.js';
import { KEY_ID_PATTERN } from '../domain/key-format.js';
import { WEBHOOK_DELIVERY_ID_PATTERN } from '../domain/webhook.js';

/**
 * The page cursors of the admin lists: opaque to clients (base64url JSON), bound to one list and one
 * account, and checked field by field before anything reaches the database (design: edge-validation).
 */

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

const NOT_A_CURSOR = 'not a cursor returned by this list of this account';
const KEY_ID = new RegExp(KEY_ID_PATTERN);
const DELIVERY_ID = new RegExp(WEBHOOK_DELIVERY_ID_PATTERN);

/** A page of at most `limit` rows from `rows` (asked for `limit + 1`), with the cursor after its last row when more follow. */
export function pageOf<T>(rows: T[], limit: number, cursorAfter: (last: T) => string): Page<T> {
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return { data, nextCursor: rows.length > limit && last ? cursorAfter(last) : null };
}

/** The cursor after a key of the keys list (ordered by creation time, then id). */
export function encodeKeyCursor(accountId: string, key: { created_at: Date; id: string }): string {
  return encodeCursor({ k: 'keys', a: accountId, c: key.created_at.toISOString(), i: key.id });
}

/** The cursor after an entry of the audit log (ordered by id, newest first). */
export function encodeAuditCursor(accountId: string, entryId: number): string {
  return encodeCursor({ k: 'audit', a: accountId, b: entryId });
}

/** Where a keys list cursor points: after this creation time and id. */
export function decodeKeyCursor(cursor: string, accountId: string): { createdAt: Date; id: string } {
  return decodeTimeAndId(cursor, 'keys', accountId, KEY_ID);
}

/** Where an audit log cursor points: before this entry id. */
export function decodeAuditCursor(cursor: string, accountId: string): number {
  const v = decodeCursor(cursor, 'audit', accountId);
  if (typeof v.b !== 'number' || !Number.isSafeInteger(v.b) || v.b < 1) throw invalid('cursor', NOT_A_CURSOR);
  return v.b;
}

/** The cursor after a delivery of an endpoint's list (newest first: creation time, then id). */
export function encodeDeliveryCursor(accountId: string, d: { created_at: Date; id: string }): string {
  return encodeCursor({ k: 'deliveries', a: accountId, c: d.created_at.toISOString(), i: d.id });
}

/** Where a deliveries cursor points: before this creation time and id. */
export function decodeDeliveryCursor(cursor: string, accountId: string): { createdAt: Date; id: string } {
  return decodeTimeAndId(cursor, 'deliveries', accountId, DELIVERY_ID);
}

/** A cursor of a list ordered by creation time, then an id that must match `id`. */
function decodeTimeAndId(cursor: string, kind: string, accountId: string, id: RegExp): { createdAt: Date; id: string } {
  const v = decodeCursor(cursor, kind, accountId);
  const createdAt = new Date(String(v.c));
  const year = createdAt.getUTCFullYear();
  // Within what PostgreSQL stores (a forged "-100000-01-01" would be a 500 there).
  if (typeof v.i !== 'string' || !id.test(v.i) || Number.isNaN(year) || year < 2000 || year > 9999) {
    throw invalid('cursor', NOT_A_CURSOR);
  }
  return { createdAt, id: v.i };
}

function encodeCursor(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A cursor's fields, only if it was made for this list (`kind`) of this account. */
function decodeCursor(cursor: string, kind: string, accountId: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (v && typeof v === 'object' && (v as { k?: unknown }).k === kind && (v as { a?: unknown }).a === accountId)
      return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw invalid('cursor', NOT_A_CURSOR);
}
