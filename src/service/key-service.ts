import { AppError, invalid, type FieldError } from '../domain/errors.js';
import { hasHostBits, normalizeRule, parseRule, ruleWithin, type IpRule } from '../domain/ip.js';
import { readableText } from '../domain/text.js';
import { statusOf, type RateLimit, type RefillInterval } from '../domain/key.js';
import { canonicalJson, checkMetadata, checkRateLimits, checkRefill, checkRemainingUses, metadataBytes, refillWithoutQuota } from '../domain/key-limits.js';
import { generateKey, secretCheck, type Environment } from '../domain/key-format.js';
import { isScope } from '../domain/scopes.js';
import type { Database, Queryable } from '../store/db.js';
import { auditRepository, type AuditRow, type NewAudit } from '../store/audit-repository.js';
import { changesRepository } from '../store/changes-repository.js';
import { keysRepository, type KeyLimits, type KeyPatch, type KeyRow, type ListFilter } from '../store/keys-repository.js';
import type { Hasher } from './hasher.js';
import type { Invalidator, Propagation } from './invalidator.js';

/** Who asks: the admin token's name (the audit actor) and the request's source address. */
export interface Actor {
  name: string;
  sourceIp: string | null;
}

export interface RefillInput {
  amount: number;
  interval: RefillInterval;
}

export interface CreateInput {
  label: string;
  scopes: string[];
  environment: Environment;
  allowed_ips?: string[] | undefined;
  expires_at?: string | undefined;
  enabled?: boolean | undefined;
  rate_limits?: RateLimit[] | undefined;
  remaining_uses?: number | undefined;
  refill?: RefillInput | undefined;
  metadata?: Record<string, unknown> | undefined;
}

/** A PATCH: an absent field is left as it is; null clears (expiry, quota, refill, metadata). */
export interface PatchInput {
  label?: string | undefined;
  scopes?: string[] | undefined;
  allowed_ips?: string[] | undefined;
  expires_at?: string | null | undefined;
  enabled?: boolean | undefined;
  /** Replaces the whole list; [] removes every limit. */
  rate_limits?: RateLimit[] | undefined;
  /** null removes the quota and its refill. */
  remaining_uses?: number | null | undefined;
  refill?: RefillInput | null | undefined;
  metadata?: Record<string, unknown> | null | undefined;
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** A created key: the row and, once, the full key with its secret. */
export interface Issued {
  row: KeyRow;
  key: string;
}

export const DEFAULT_GRACE_SECONDS = 24 * 3600;
/** The furthest a key's expiry may lie ahead (a typo like year 9999 is refused). */
export const MAX_EXPIRY_MS = 5 * 366 * 24 * 3600 * 1000;
export const LABEL_MAX = 100;
export const REASON_MAX = 500;
export const MAX_GRACE_SECONDS = 7 * 24 * 3600;

export interface KeyServiceOptions {
  db: Database;
  hasher: Hasher;
  invalidator: Invalidator;
  now?: () => number;
}

/** The admin use cases: create, list, get, update, revoke, rotate, revoke-all, audit log. */
export class KeyService {
  #o: KeyServiceOptions;
  #now: () => number;

  constructor(opts: KeyServiceOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Issue a new key. */
  async create(actor: Actor, accountId: string, input: CreateInput): Promise<Issued> {
    const label = readableText('label', input.label, LABEL_MAX);
    const scopes = checkScopes(input.scopes);
    const allowedIps = checkIps(input.allowed_ips ?? []);
    const expiresAt = this.#futureDate('expires_at', input.expires_at);
    const limits = createLimits(input);
    const generated = generateKey(input.environment);
    const secretHash = await this.#o.hasher.hash(generated.secret);
    const row = await this.#o.db.transaction(async (tx) => {
      const inserted = await keysRepository.insert(tx, {
        id: generated.keyId, account_id: accountId, environment: input.environment, label, scopes,
        allowed_ips: allowedIps, secret_hash: secretHash, secret_check: secretCheck(generated.secret), redacted: generated.redacted, created_by: actor.name,
        expires_at: expiresAt, replaces: null, ...limits,
      });
      await this.#audit(tx, actor, inserted, 'key.created', {
        label: inserted.label, environment: inserted.environment, scopes, allowed_ips: allowedIps, expires_at: input.expires_at ?? null,
        ...limitsAudit(inserted),
      });
      return inserted;
    });
    return { row, key: generated.key };
  }

  async get(accountId: string, keyId: string): Promise<KeyRow> {
    const row = await keysRepository.get(this.#o.db, accountId, keyId);
    if (!row) throw new AppError('NOT_FOUND', `key ${keyId} not found`);
    return row;
  }

  async list(accountId: string, filter: Omit<ListFilter, 'after'>, cursor: string | undefined): Promise<Page<KeyRow>> {
    const after = cursor === undefined ? undefined : decodeKeyCursor(cursor, accountId);
    const rows = await keysRepository.list(this.#o.db, accountId, { ...filter, after, limit: filter.limit + 1 });
    const data = rows.slice(0, filter.limit);
    const last = data[data.length - 1];
    const nextCursor = rows.length > filter.limit && last ? encodeCursor({ k: 'keys', a: accountId, c: last.created_at.toISOString(), i: last.id }) : null;
    return { data, nextCursor };
  }

  /**
   * Change label, scopes, addresses, expiry, limits, quota, metadata or enabled; takes effect on
   * every replica before it returns. A change of `enabled` alone is audited as `key.disabled` or
   * `key.enabled`; any other change as `key.updated`.
   */
  async update(actor: Actor, accountId: string, keyId: string, input: PatchInput): Promise<{ row: KeyRow; propagation: Propagation }> {
    const patch = this.#patch(input);
    const { row, changes } = await this.#o.db.transaction(async (tx) => {
      const before = await this.#locked(tx, accountId, keyId);
      if (before.revoked_at) throw new AppError('CONFLICT', `key ${keyId} is revoked`);
      this.#checkEdit(before, patch);
      if (input.refill && input.remaining_uses === undefined && before.remaining_uses === null) throw refillWithoutQuota();
      const diff = changedFields(before, patch);
      if (Object.keys(diff).length === 0) return { row: before, changes: [] };
      const after = await keysRepository.update(tx, keyId, patch);
      await this.#audit(tx, actor, after, updateAction(diff, after), diff);
      return { row: after, changes: await changesRepository.record(tx, [{ keyId, version: after.version, kind: 'updated' }]) };
    });
    return { row, propagation: await this.#announce(changes) };
  }

  /** Revoke (idempotent): no Authenticate that starts after it returns is allowed. */
  async revoke(actor: Actor, accountId: string, keyId: string, reasonText: string | undefined): Promise<{ row: KeyRow; propagation: Propagation }> {
    const reason = reasonText === undefined ? undefined : readableText('reason', reasonText, REASON_MAX);
    const { row, changes } = await this.#o.db.transaction(async (tx) => {
      const before = await this.#locked(tx, accountId, keyId);
      if (before.revoked_at) return { row: before, changes: [] };
      const after = await keysRepository.revoke(tx, keyId, reason ?? null);
      await this.#audit(tx, actor, after, 'key.revoked', { reason: reason ?? null, status: { from: statusOf(before), to: 'revoked' } });
      return { row: after, changes: await changesRepository.record(tx, [{ keyId, version: after.version, kind: 'revoked' }]) };
    });
    return { row, propagation: await this.#announce(changes) };
  }

  /** A new key with the same grant; the old one keeps working for `graceSeconds`. */
  async rotate(actor: Actor, accountId: string, keyId: string, graceSeconds = DEFAULT_GRACE_SECONDS):
  Promise<Issued & { previous: KeyRow; propagation: Propagation }> {
    if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
      throw invalid('expire_previous_in', `must be an integer from 0 to ${MAX_GRACE_SECONDS} seconds`);
    }
    const current = await this.get(accountId, keyId);
    const generated = generateKey(current.environment);
    const secretHash = await this.#o.hasher.hash(generated.secret);
    const graceEnd = new Date(this.#now() + graceSeconds * 1000);
    const out = await this.#o.db.transaction(async (tx) => {
      const old = await this.#locked(tx, accountId, keyId);
      if (statusOf(old, this.#now()) !== 'active') throw new AppError('CONFLICT', `key ${keyId} is ${statusOf(old, this.#now())}`);
      if (old.replaced_by) throw new AppError('CONFLICT', `key ${keyId} was already rotated to ${old.replaced_by}`);
      const row = await keysRepository.insert(tx, {
        id: generated.keyId, account_id: accountId, environment: old.environment, label: old.label, scopes: old.scopes,
        allowed_ips: old.allowed_ips, secret_hash: secretHash, secret_check: secretCheck(generated.secret), redacted: generated.redacted, created_by: actor.name,
        expires_at: old.expires_at, replaces: old.id, ...limitsOf(old),
      });
      const previous = await keysRepository.markRotated(tx, old.id, row.id, graceEnd);
      await this.#audit(tx, actor, previous, 'key.rotated', {
        replaced_by: row.id, expires_at: { from: old.expires_at?.toISOString() ?? null, to: previous.expires_at?.toISOString() ?? null },
      });
      await this.#audit(tx, actor, row, 'key.created', {
        replaces: old.id, label: row.label, scopes: row.scopes, environment: row.environment, ...limitsAudit(row),
      });
      const changes = await changesRepository.record(tx, [{ keyId: old.id, version: previous.version, kind: 'rotated' }]);
      return { row, previous, changes };
    });
    return { row: out.row, key: generated.key, previous: out.previous, propagation: await this.#announce(out.changes) };
  }

  /** Emergency: revoke every active key of the account (optionally one environment) at once. */
  async revokeAll(actor: Actor, accountId: string, environment: Environment | undefined, reasonText: string | undefined):
  Promise<{ revoked: number; propagation: Propagation }> {
    const reason = reasonText === undefined ? undefined : readableText('reason', reasonText, REASON_MAX);
    const changes = await this.#o.db.transaction(async (tx) => {
      const rows = await keysRepository.revokeAll(tx, accountId, environment, reason ?? null);
      const entries: NewAudit[] = rows.map((r) => auditEntry(actor, r, 'key.revoked', { reason: reason ?? null, via: 'revoke-all' }));
      entries.push({ account_id: accountId, key_id: null, actor: actor.name, action: 'keys.revoked_all', source_ip: actor.sourceIp,
        changes: { environment: environment ?? null, reason: reason ?? null, revoked: rows.length } });
      await auditRepository.insert(tx, entries);
      return changesRepository.record(tx, rows.map((r) => ({ keyId: r.id, version: r.version, kind: 'revoked' })));
    });
    return { revoked: changes.length, propagation: await this.#announce(changes) };
  }

  /**
   * A refused admin attempt (401, 403) on an account's routes, for its audit log: who (when the
   * token was valid), from where, what; never the presented token.
   */
  async recordRefusal(accountId: string, actor: Actor | undefined, sourceIp: string | null, detail: { status: number; method: string; route: string }): Promise<void> {
    await auditRepository.insert(this.#o.db, [{ account_id: accountId, key_id: null, actor: actor?.name ?? 'unauthenticated',
      action: detail.status === 401 ? 'admin.unauthenticated' : 'admin.forbidden', source_ip: sourceIp, changes: detail }]);
  }

  async auditLog(accountId: string, opts: { keyId?: string; limit: number; cursor?: string | undefined }): Promise<Page<AuditRow>> {
    const before = opts.cursor === undefined ? undefined : decodeAuditCursor(opts.cursor, accountId);
    const rows = await auditRepository.list(this.#o.db, accountId, {
      ...(opts.keyId ? { keyId: opts.keyId } : {}), ...(before ? { before } : {}), limit: opts.limit + 1,
    });
    const data = rows.slice(0, opts.limit);
    const last = data[data.length - 1];
    return { data, nextCursor: rows.length > opts.limit && last ? encodeCursor({ k: 'audit', a: accountId, b: Number(last.id) }) : null };
  }

  /** An edit may not revive an expired key, nor widen a key that is being rotated out. */
  #checkEdit(before: KeyRow, patch: KeyPatch): void {
    if (patch.expires_at !== undefined && statusOf(before, this.#now()) === 'expired') {
      throw new AppError('CONFLICT', `key ${before.id} has expired: it cannot be revived (create or rotate a key instead)`);
    }
    if (!before.replaced_by) return;
    const why = `key ${before.id} was rotated to ${before.replaced_by}`;
    if (patch.expires_at !== undefined && extendsExpiry(before.expires_at, patch.expires_at)) {
      throw new AppError('CONFLICT', `${why}: its grace period can be shortened, not extended`);
    }
    if (patch.scopes?.some((s) => !before.scopes.includes(s))) throw new AppError('CONFLICT', `${why}: its scopes can be narrowed, not widened`);
    if (patch.allowed_ips !== undefined && widensAddresses(before.allowed_ips, patch.allowed_ips)) {
      throw new AppError('CONFLICT', `${why}: its allowed addresses can be narrowed, not widened`);
    }
  }

  async #locked(tx: Queryable, accountId: string, keyId: string): Promise<KeyRow> {
    const row = await keysRepository.get(tx, accountId, keyId, true);
    if (!row) throw new AppError('NOT_FOUND', `key ${keyId} not found`);
    return row;
  }

  #patch(input: PatchInput): KeyPatch {
    return {
      label: input.label === undefined ? undefined : readableText('label', input.label, LABEL_MAX),
      scopes: input.scopes === undefined ? undefined : checkScopes(input.scopes),
      allowed_ips: input.allowed_ips === undefined ? undefined : checkIps(input.allowed_ips),
      expires_at: input.expires_at === undefined ? undefined : input.expires_at === null ? null : this.#futureDate('expires_at', input.expires_at),
      enabled: input.enabled,
      rate_limits: input.rate_limits === undefined ? undefined : checkRateLimits(input.rate_limits),
      metadata: input.metadata === undefined || input.metadata === null ? input.metadata : checkMetadata(input.metadata).metadata,
      ...quotaPatch(input),
    };
  }

  #futureDate(path: string, text: string | undefined): Date | null {
    if (text === undefined) return null;
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) throw invalid(path, 'must be an RFC 3339 date-time');
    if (date.getTime() <= this.#now()) throw invalid(path, 'must lie in the future');
    if (date.getTime() > this.#now() + MAX_EXPIRY_MS) throw invalid(path, 'must lie within 5 years');
    return date;
  }

  async #audit(tx: Queryable, actor: Actor, row: KeyRow, action: string, changes: Record<string, unknown>): Promise<void> {
    await auditRepository.insert(tx, [auditEntry(actor, row, action, changes)]);
  }

  async #announce(changes: { seq: number; key_id: string; version: number }[]): Promise<Propagation> {
    return this.#o.invalidator.announce(changes.map((c) => ({ seq: c.seq, keyId: c.key_id, version: c.version })));
  }
}

function auditEntry(actor: Actor, row: KeyRow, action: string, changes: Record<string, unknown>): NewAudit {
  return { account_id: row.account_id, key_id: row.id, actor: actor.name, action, source_ip: actor.sourceIp, changes };
}

/** Scopes from the catalog only, each once (a duplicate is refused, not merged), in request order. */
function checkScopes(scopes: string[]): string[] {
  // The value is not echoed: whatever was pasted there (a key, say) must not come back.
  const errors: FieldError[] = scopes.flatMap((s, i) => (isScope(s) ? [] : [{ path: `scopes/${i}`, message: 'not a scope of the catalog (GET /v1/scopes)' }]));
  scopes.forEach((s, i) => { if (scopes.indexOf(s) < i) errors.push({ path: `scopes/${i}`, message: 'repeats an earlier scope' }); });
  if (scopes.length === 0) errors.push({ path: 'scopes', message: 'must hold at least one scope' });
  if (errors.length > 0) throw new AppError('VALIDATION_FAILED', 'invalid scopes', errors);
  return scopes;
}

/** Addresses and CIDRs (v4 and v6), normalised; at most 100. */
function checkIps(entries: string[]): string[] {
  if (entries.length > 100) throw invalid('allowed_ips', 'at most 100 entries');
  const errors: FieldError[] = [];
  const out = entries.map((text, i) => {
    const rule = parseRule(text.trim());
    if (!rule) errors.push({ path: `allowed_ips/${i}`, message: 'not an IP address or CIDR range (no zone ids, no leading zeros)' });
    else if (hasHostBits(rule)) errors.push({ path: `allowed_ips/${i}`, message: `has bits set beyond its prefix: did you mean ${normalizeRule(rule)}?` });
    return rule ? normalizeRule(rule) : '';
  });
  out.forEach((r, i) => { if (r && out.indexOf(r) < i) errors.push({ path: `allowed_ips/${i}`, message: 'repeats an earlier entry' }); });
  if (errors.length > 0) throw new AppError('VALIDATION_FAILED', 'invalid allowed_ips', errors);
  return out;
}

/** True when `next` lets in an address that `current` did not (an empty list lets in every address). */
function widensAddresses(current: string[], next: string[]): boolean {
  if (current.length === 0) return false;
  if (next.length === 0) return true;
  const old = current.map(parseRule).filter((r): r is IpRule => r !== undefined);
  return next.map(parseRule).some((r) => !r || !old.some((o) => ruleWithin(r, o)));
}

function extendsExpiry(current: Date | null, next: Date | null): boolean {
  return current !== null && (next === null || next.getTime() > current.getTime());
}

/** The quota part of a patch: setting a quota or a refill marks the current period as refilled. */
function quotaPatch(input: PatchInput): KeyPatch {
  const out: KeyPatch = {};
  if (input.remaining_uses === null) {
    if (input.refill) throw refillWithoutQuota();
    Object.assign(out, { remaining_uses: null, refill_amount: null, refill_interval: null, refilled_at: null });
  } else if (input.remaining_uses !== undefined) {
    Object.assign(out, { remaining_uses: checkRemainingUses(input.remaining_uses), refilled_at: 'now' });
  }
  if (input.refill === null && input.remaining_uses !== null) Object.assign(out, { refill_amount: null, refill_interval: null });
  if (input.refill) {
    const refill = checkRefill(input.refill);
    Object.assign(out, { refill_amount: refill.amount, refill_interval: refill.interval, refilled_at: 'now' });
  }
  return out;
}

/** The limits, quota and metadata of a new key, checked (a refill needs a quota). */
function createLimits(input: CreateInput): Partial<KeyLimits> {
  if (input.refill && input.remaining_uses === undefined) throw refillWithoutQuota();
  const refill = input.refill ? checkRefill(input.refill) : undefined;
  return {
    enabled: input.enabled ?? true,
    rate_limits: checkRateLimits(input.rate_limits ?? []),
    remaining_uses: input.remaining_uses === undefined ? null : checkRemainingUses(input.remaining_uses),
    refill_amount: refill?.amount ?? null,
    refill_interval: refill?.interval ?? null,
    metadata: input.metadata === undefined ? null : checkMetadata(input.metadata).metadata,
  };
}

/** What a rotation carries over to the new key (during the grace period each key draws on its own quota balance). */
function limitsOf(k: KeyRow): KeyLimits {
  return { enabled: k.enabled, rate_limits: k.rate_limits, remaining_uses: k.remaining_uses, refill_amount: k.refill_amount,
    refill_interval: k.refill_interval, metadata: k.metadata };
}

/** A key's limits as audit entries show them: metadata by its size only (customer data; audit rows stay small). */
function limitsAudit(k: KeyRow): Record<string, unknown> {
  return { enabled: k.enabled, rate_limits: k.rate_limits, remaining_uses: k.remaining_uses, refill: refillOf(k),
    metadata: k.metadata === null ? null : { bytes: metadataBytes(k.metadata) } };
}

function refillOf(k: Pick<KeyRow, 'refill_amount' | 'refill_interval'>): RefillInput | null {
  return k.refill_amount !== null && k.refill_interval !== null ? { amount: k.refill_amount, interval: k.refill_interval } : null;
}

/** `key.disabled` / `key.enabled` when only `enabled` changed, else `key.updated`. */
function updateAction(diff: Record<string, unknown>, after: KeyRow): string {
  if (Object.keys(diff).length !== 1 || !('enabled' in diff)) return 'key.updated';
  return after.enabled ? 'key.enabled' : 'key.disabled';
}

const AUDITED: readonly (keyof KeyRow)[] = ['label', 'scopes', 'allowed_ips', 'expires_at', 'enabled', 'rate_limits', 'remaining_uses'];

/**
 * The fields a patch changes, in API terms, from and to: `refill` as {amount, interval} or null;
 * `metadata` as {from_bytes, to_bytes} (its content is the customer's, compared whatever the key order).
 */
function changedFields(before: KeyRow, patch: KeyPatch): Record<string, unknown> {
  const after = { ...before, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) } as KeyRow;
  const diff: Record<string, unknown> = {};
  const show = (v: unknown) => (v instanceof Date ? v.toISOString() : v);
  for (const field of AUDITED) {
    const [from, to] = [show(before[field]), show(after[field])];
    if (canonicalJson(from) !== canonicalJson(to)) diff[field] = { from, to };
  }
  const [refillFrom, refillTo] = [refillOf(before), refillOf(after)];
  if (canonicalJson(refillFrom) !== canonicalJson(refillTo)) diff.refill = { from: refillFrom, to: refillTo };
  if (canonicalJson(before.metadata) !== canonicalJson(after.metadata)) {
    diff.metadata = { from_bytes: metadataBytes(before.metadata), to_bytes: metadataBytes(after.metadata) };
  }
  return diff;
}

function encodeCursor(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const NOT_A_CURSOR = 'not a cursor returned by this list of this account';

/** A cursor's fields, only if it was made for this list (`kind`) of this account. */
function decodeCursor(cursor: string, kind: string, accountId: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (v && typeof v === 'object' && (v as { k?: unknown }).k === kind && (v as { a?: unknown }).a === accountId) return v as Record<string, unknown>;
  } catch { /* fall through */ }
  throw invalid('cursor', NOT_A_CURSOR);
}

function decodeKeyCursor(cursor: string, accountId: string): { createdAt: Date; id: string } {
  const v = decodeCursor(cursor, 'keys', accountId);
  const createdAt = new Date(String(v.c));
  const year = createdAt.getUTCFullYear();
  // Within what PostgreSQL stores (a forged "-100000-01-01" would be a 500 there).
  if (typeof v.i !== 'string' || !/^key_[0-9A-Za-z]{12}$/.test(v.i) || Number.isNaN(year) || year < 2000 || year > 9999) {
    throw invalid('cursor', NOT_A_CURSOR);
  }
  return { createdAt, id: v.i };
}

function decodeAuditCursor(cursor: string, accountId: string): number {
  const v = decodeCursor(cursor, 'audit', accountId);
  if (typeof v.b !== 'number' || !Number.isSafeInteger(v.b) || v.b < 1) throw invalid('cursor', NOT_A_CURSOR);
  return v.b;
}
