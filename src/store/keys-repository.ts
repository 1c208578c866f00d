import { KEY_BOUNDS } from '../domain/key-bounds.js';
import type { Environment } from '../domain/key-format.js';
import { statusOf, type Key, type KeyStatus, type RateLimit, type RefillInterval } from '../domain/key.js';
import type { Queryable } from './db.js';

/** A key as stored (never the secret; `secret_hash` never leaves the service layer). */
export interface KeyRow extends Key {
  secret_hash: string;
  /** First 4 bytes of SHA-256 of the secret (hex); null for keys made before it existed. */
  secret_check: string | null;
}

export type { KeyStatus, RateLimit, RefillInterval };
export { statusOf };

/** The limits, quota, switch and metadata of a key; a new key without them is enabled and unlimited. */
export type KeyLimits = Pick<
  KeyRow,
  'enabled' | 'rate_limits' | 'remaining_uses' | 'refill_amount' | 'refill_interval' | 'metadata'
>;

export type NewKey = Pick<
  KeyRow,
  | 'id'
  | 'account_id'
  | 'environment'
  | 'label'
  | 'scopes'
  | 'allowed_ips'
  | 'secret_hash'
  | 'secret_check'
  | 'redacted'
  | 'created_by'
  | 'expires_at'
  | 'replaces'
> &
  Partial<KeyLimits>;

export interface ListFilter {
  environment?: Environment | undefined;
  status?: KeyStatus | undefined;
  /** `due`: rotation due within 14 days; `overdue`: rotation date passed (active keys only). */
  rotation?: 'due' | 'overdue' | undefined;
  /** true: only rotated keys still working in their grace period; false: all but those. */
  inGrace?: boolean | undefined;
  after?: { createdAt: Date; id: string } | undefined;
  limit: number;
}

export interface KeyPatch {
  label?: string | undefined;
  scopes?: string[] | undefined;
  allowed_ips?: string[] | undefined;
  expires_at?: Date | null | undefined;
  enabled?: boolean | undefined;
  rate_limits?: KeyRow['rate_limits'] | undefined;
  remaining_uses?: number | null | undefined;
  refill_amount?: number | null | undefined;
  refill_interval?: KeyRow['refill_interval'] | undefined;
  /** `now`: the database's clock (the current refill period counts as refilled); null: cleared. */
  refilled_at?: 'now' | null | undefined;
  metadata?: KeyRow['metadata'] | undefined;
}

/** Columns stored as jsonb: sent as JSON text (pg would send a JS array as a PostgreSQL array). */
const JSONB_COLUMNS = new Set(['rate_limits', 'metadata']);
const jsonb = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

const STATUS_SQL: Record<KeyStatus, string> = {
  active: 'revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())',
  revoked: 'revoked_at IS NOT NULL',
  expired: 'revoked_at IS NULL AND expires_at <= now()',
};
// The bound is on created_at itself (not created_at + 90 days) so that it is a condition of the
// account's index scan: a page of old keys starts where they start, not after every newer key.
const ROTATION_SQL = {
  due: `${STATUS_SQL.active} AND created_at <= now() + interval '${KEY_BOUNDS.rotationNoticeDays} days' - interval '${KEY_BOUNDS.rotationDays} days' AND replaced_by IS NULL`,
  overdue: `${STATUS_SQL.active} AND created_at <= now() - interval '${KEY_BOUNDS.rotationDays} days' AND replaced_by IS NULL`,
};

/** Key rows: every method takes the connection or transaction to run on. */
export const keysRepository = {
  async insert(q: Queryable, k: NewKey): Promise<KeyRow> {
    const { rows } = await q.query<KeyRow>(
      `INSERT INTO api_keys (id, account_id, environment, label, scopes, allowed_ips, secret_hash, secret_check, redacted, created_by, expires_at, replaces,
         enabled, rate_limits, remaining_uses, quota_basis, refill_amount, refill_interval, refilled_at, metadata)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
         $13, $14::jsonb, $15::bigint, $15::bigint, $16::bigint, $17, CASE WHEN $15::bigint IS NULL THEN NULL ELSE now() END, $18::jsonb) RETURNING *`,
      [
        k.id,
        k.account_id,
        k.environment,
        k.label,
        k.scopes,
        k.allowed_ips,
        k.secret_hash,
        k.secret_check,
        k.redacted,
        k.created_by,
        k.expires_at,
        k.replaces,
        k.enabled ?? true,
        JSON.stringify(k.rate_limits ?? []),
        k.remaining_uses ?? null,
        k.refill_amount ?? null,
        k.refill_interval ?? null,
        jsonb(k.metadata),
      ],
    );
    return rows[0] as KeyRow;
  },

  /** The row by key id alone (Authenticate), or undefined. */
  async byId(q: Queryable, id: string): Promise<KeyRow | undefined> {
    const { rows } = await q.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    return rows[0];
  },

  /** Fill in the check value of a key made before it existed (after a successful verification). */
  async setSecretCheck(q: Queryable, id: string, check: string): Promise<void> {
    await q.query('UPDATE api_keys SET secret_check = $2 WHERE id = $1 AND secret_check IS NULL', [id, check]);
  },

  /** The account's key, locked for update when `lock` (inside a transaction). */
  async get(q: Queryable, accountId: string, id: string, lock = false): Promise<KeyRow | undefined> {
    const { rows } = await q.query<KeyRow>(
      `SELECT * FROM api_keys WHERE account_id = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
      [accountId, id],
    );
    return rows[0];
  },

  async list(q: Queryable, accountId: string, f: ListFilter): Promise<KeyRow[]> {
    const where = ['account_id = $1'];
    const params: unknown[] = [accountId];
    if (f.environment) {
      params.push(f.environment);
      where.push(`environment = $${params.length}`);
    }
    if (f.status) where.push(STATUS_SQL[f.status]);
    if (f.rotation) where.push(ROTATION_SQL[f.rotation]);
    if (f.inGrace !== undefined)
      where.push(`${f.inGrace ? '' : 'NOT '}(replaced_by IS NOT NULL AND ${STATUS_SQL.active})`);
    if (f.after) {
      params.push(f.after.createdAt, f.after.id);
      where.push(`(created_at, id) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(f.limit);
    const { rows } = await q.query<KeyRow>(
      `SELECT * FROM api_keys WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows;
  },

  /** Apply a patch and bump the version (the caller records the change and announces it). */
  async update(q: Queryable, id: string, p: KeyPatch): Promise<KeyRow> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    for (const [column, value] of Object.entries(p)) {
      if (value === undefined) continue;
      if (column === 'refilled_at') {
        sets.push(`refilled_at = ${value === null ? 'NULL' : 'now()'}`);
        continue;
      }
      const json = JSONB_COLUMNS.has(column);
      params.push(json ? jsonb(value) : value);
      sets.push(`${column} = $${params.length}${json ? '::jsonb' : ''}`);
      // A balance set by hand is the reference key.quota_low measures against.
      if (column === 'remaining_uses') sets.push(`quota_basis = $${params.length}`);
    }
    const { rows } = await q.query<KeyRow>(
      `UPDATE api_keys SET ${[...sets, 'version = version + 1'].join(', ')} WHERE id = $1 RETURNING *`,
      params,
    );
    return rows[0] as KeyRow;
  },

  async revoke(q: Queryable, id: string, reason: string | null): Promise<KeyRow> {
    const { rows } = await q.query<KeyRow>(
      'UPDATE api_keys SET revoked_at = now(), revoked_reason = $2, version = version + 1 WHERE id = $1 RETURNING *',
      [id, reason],
    );
    return rows[0] as KeyRow;
  },

  /** Lock and revoke every active key of the account (optionally one environment), in id order. */
  async revokeAll(
    q: Queryable,
    accountId: string,
    environment: Environment | undefined,
    reason: string | null,
  ): Promise<KeyRow[]> {
    const { rows } = await q.query<KeyRow>(
      `WITH target AS (
         SELECT id FROM api_keys WHERE account_id = $1 AND ($2::text IS NULL OR environment = $2) AND ${STATUS_SQL.active}
         ORDER BY id FOR UPDATE)
       UPDATE api_keys k SET revoked_at = now(), revoked_reason = $3, version = version + 1
       FROM target WHERE k.id = target.id RETURNING k.*`,
      [accountId, environment ?? null, reason],
    );
    return rows;
  },

  /** Mark `oldId` as replaced by `newId`, working until `expiresAt`. */
  async markRotated(q: Queryable, oldId: string, newId: string, expiresAt: Date): Promise<KeyRow> {
    const { rows } = await q.query<KeyRow>(
      `UPDATE api_keys SET replaced_by = $2, expires_at = LEAST(COALESCE(expires_at, $3), $3), version = version + 1
       WHERE id = $1 RETURNING *`,
      [oldId, newId, expiresAt],
    );
    return rows[0] as KeyRow;
  },
};
