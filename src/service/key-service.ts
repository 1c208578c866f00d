import { AppError } from '../domain/errors.js';
import { statusOf } from '../domain/key.js';
import { KEY_BOUNDS } from '../domain/key-bounds.js';
import { generateKey, secretCheck, type Environment } from '../domain/key-format.js';
import type { Database, Queryable } from '../store/db.js';
import { auditRepository, type AuditRow, type NewAudit } from '../store/audit-repository.js';
import { changesRepository } from '../store/changes-repository.js';
import { keysRepository, type KeyLimits, type KeyRow, type ListFilter } from '../store/keys-repository.js';
import { webhookRepository } from '../store/webhook-repository.js';
import { keyEvent } from '../domain/webhook.js';
import { decodeAuditCursor, decodeKeyCursor, encodeAuditCursor, encodeKeyCursor, pageOf, type Page } from './cursor.js';
import type { Hasher } from './hasher.js';
import type { Invalidator, Propagation } from './invalidator.js';
import { auditEntry, changedFields, limitsAudit, updateAction, type Actor } from './key-audit.js';
import {
  checkCreate,
  checkEdit,
  checkGrace,
  checkPatch,
  checkReason,
  type CreateInput,
  type PatchInput,
} from './key-input.js';
import { NO_TRACE, type Trace } from './trace.js';

export type { Actor } from './key-audit.js';
export type { Page } from './cursor.js';
export type { CreateInput, PatchInput, RefillInput } from './key-input.js';

/** A created key: the row and, once, the full key with its secret. */
export interface Issued {
  row: KeyRow;
  key: string;
}

export interface KeyServiceOptions {
  db: Database;
  hasher: Hasher;
  invalidator: Invalidator;
  /** The key and account on the admin request's span, and the wait for the fleet's confirmations as a span (default: tracing off). */
  trace?: Trace;
  /** Told after a commit that wrote to the webhook outbox: deliver now rather than at the next poll. */
  onEvents?: () => void;
  now?: () => number;
}

/** The admin use cases: create, list, get, update, revoke, rotate, revoke-all, audit log. */
export class KeyService {
  #o: KeyServiceOptions;
  #now: () => number;
  #trace: Trace;

  constructor(opts: KeyServiceOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#trace = opts.trace ?? NO_TRACE;
  }

  /** Issue a new key. */
  async create(actor: Actor, accountId: string, input: CreateInput): Promise<Issued> {
    const { label, scopes, allowedIps, expiresAt, limits } = checkCreate(input, this.#now);
    const generated = generateKey(input.environment);
    const secretHash = await this.#o.hasher.hash(generated.secret);
    this.#trace.setAttributes({ 'otesse.account_id': accountId });
    const row = await this.#o.db.transaction(async (tx) => {
      const inserted = await keysRepository.insert(tx, {
        id: generated.keyId,
        account_id: accountId,
        environment: input.environment,
        label,
        scopes,
        allowed_ips: allowedIps,
        secret_hash: secretHash,
        secret_check: secretCheck(generated.secret),
        redacted: generated.redacted,
        created_by: actor.name,
        expires_at: expiresAt,
        replaces: null,
        ...limits,
      });
      await this.#audit(tx, actor, inserted, 'key.created', {
        label: inserted.label,
        environment: inserted.environment,
        scopes,
        allowed_ips: allowedIps,
        expires_at: input.expires_at ?? null,
        ...limitsAudit(inserted),
      });
      await webhookRepository.emit(tx, [keyEvent('key.created', inserted, { created_by: actor.name })]);
      return inserted;
    });
    this.#o.onEvents?.();
    this.#trace.setAttributes({ 'otesse.key_id': row.id });
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
    return pageOf(rows, filter.limit, (last) => encodeKeyCursor(accountId, last));
  }

  /**
   * Change label, scopes, addresses, expiry, limits, quota, metadata or enabled; takes effect on
   * every replica before it returns. A change of `enabled` alone is audited as `key.disabled` or
   * `key.enabled`; any other change as `key.updated`.
   */
  async update(
    actor: Actor,
    accountId: string,
    keyId: string,
    input: PatchInput,
  ): Promise<{ row: KeyRow; propagation: Propagation }> {
    const patch = checkPatch(input, this.#now);
    this.#trace.setAttributes({ 'otesse.account_id': accountId, 'otesse.key_id': keyId });
    const { row, changes } = await this.#o.db.transaction(async (tx) => {
      const before = await this.#locked(tx, accountId, keyId);
      if (before.revoked_at) throw new AppError('CONFLICT', `key ${keyId} is revoked`);
      checkEdit(before, input, patch, this.#now);
      const diff = changedFields(before, patch);
      if (Object.keys(diff).length === 0) return { row: before, changes: [] };
      const after = await keysRepository.update(tx, keyId, patch);
      await this.#audit(tx, actor, after, updateAction(diff, after), diff);
      await webhookRepository.emit(tx, [
        keyEvent('key.updated', after, { changed: Object.keys(diff), enabled: after.enabled, by: actor.name }),
      ]);
      return {
        row: after,
        changes: await changesRepository.record(tx, [{ keyId, version: after.version, kind: 'updated' }]),
      };
    });
    if (changes.length > 0) this.#o.onEvents?.();
    return { row, propagation: await this.#announce(changes) };
  }

  /** Revoke (idempotent): no Authenticate that starts after it returns is allowed. */
  async revoke(
    actor: Actor,
    accountId: string,
    keyId: string,
    reasonText: string | undefined,
  ): Promise<{ row: KeyRow; propagation: Propagation }> {
    const reason = checkReason(reasonText);
    this.#trace.setAttributes({ 'otesse.account_id': accountId, 'otesse.key_id': keyId });
    const { row, changes } = await this.#o.db.transaction(async (tx) => {
      const before = await this.#locked(tx, accountId, keyId);
      if (before.revoked_at) return { row: before, changes: [] };
      const after = await keysRepository.revoke(tx, keyId, reason ?? null);
      await this.#audit(tx, actor, after, 'key.revoked', {
        reason: reason ?? null,
        status: { from: statusOf(before), to: 'revoked' },
      });
      await webhookRepository.emit(tx, [keyEvent('key.revoked', after, { reason: reason ?? null, by: actor.name })]);
      return {
        row: after,
        changes: await changesRepository.record(tx, [{ keyId, version: after.version, kind: 'revoked' }]),
      };
    });
    if (changes.length > 0) this.#o.onEvents?.();
    return { row, propagation: await this.#announce(changes) };
  }

  /** A new key with the same grant; the old one keeps working for `graceSeconds`. */
  async rotate(
    actor: Actor,
    accountId: string,
    keyId: string,
    graceSeconds = KEY_BOUNDS.graceDefaultSeconds,
  ): Promise<Issued & { previous: KeyRow; propagation: Propagation }> {
    checkGrace(graceSeconds);
    this.#trace.setAttributes({ 'otesse.account_id': accountId, 'otesse.key_id': keyId });
    const current = await this.get(accountId, keyId);
    const generated = generateKey(current.environment);
    const secretHash = await this.#o.hasher.hash(generated.secret);
    const graceEnd = new Date(this.#now() + graceSeconds * 1000);
    const out = await this.#o.db.transaction(async (tx) => {
      const old = await this.#locked(tx, accountId, keyId);
      if (statusOf(old, this.#now()) !== 'active')
        throw new AppError('CONFLICT', `key ${keyId} is ${statusOf(old, this.#now())}`);
      if (old.replaced_by) throw new AppError('CONFLICT', `key ${keyId} was already rotated to ${old.replaced_by}`);
      const row = await keysRepository.insert(tx, {
        id: generated.keyId,
        account_id: accountId,
        environment: old.environment,
        label: old.label,
        scopes: old.scopes,
        allowed_ips: old.allowed_ips,
        secret_hash: secretHash,
        secret_check: secretCheck(generated.secret),
        redacted: generated.redacted,
        created_by: actor.name,
        expires_at: old.expires_at,
        replaces: old.id,
        ...limitsOf(old),
      });
      const previous = await keysRepository.markRotated(tx, old.id, row.id, graceEnd);
      await this.#audit(tx, actor, previous, 'key.rotated', {
        replaced_by: row.id,
        expires_at: { from: old.expires_at?.toISOString() ?? null, to: previous.expires_at?.toISOString() ?? null },
      });
      await this.#audit(tx, actor, row, 'key.created', {
        replaces: old.id,
        label: row.label,
        scopes: row.scopes,
        environment: row.environment,
        ...limitsAudit(row),
      });
      const grace = { previous_expires_at: previous.expires_at?.toISOString() ?? null };
      await webhookRepository.emit(tx, [
        keyEvent('key.rotated', previous, { replaced_by: row.id, ...grace, by: actor.name }),
        keyEvent('key.created', row, { replaces: previous.id, created_by: actor.name }),
      ]);
      const changes = await changesRepository.record(tx, [
        { keyId: old.id, version: previous.version, kind: 'rotated' },
      ]);
      return { row, previous, changes };
    });
    this.#o.onEvents?.();
    return { row: out.row, key: generated.key, previous: out.previous, propagation: await this.#announce(out.changes) };
  }

  /** Emergency: revoke every active key of the account (optionally one environment) at once. */
  async revokeAll(
    actor: Actor,
    accountId: string,
    environment: Environment | undefined,
    reasonText: string | undefined,
  ): Promise<{ revoked: number; propagation: Propagation }> {
    const reason = checkReason(reasonText);
    this.#trace.setAttributes({ 'otesse.account_id': accountId, 'otesse.environment': environment });
    const changes = await this.#o.db.transaction(async (tx) => {
      const rows = await keysRepository.revokeAll(tx, accountId, environment, reason ?? null);
      const entries: NewAudit[] = rows.map((r) =>
        auditEntry(actor, r, 'key.revoked', { reason: reason ?? null, via: 'revoke-all' }),
      );
      entries.push({
        account_id: accountId,
        key_id: null,
        actor: actor.name,
        action: 'keys.revoked_all',
        source_ip: actor.sourceIp,
        changes: { environment: environment ?? null, reason: reason ?? null, revoked: rows.length },
      });
      await auditRepository.insert(tx, entries);
      await webhookRepository.emit(
        tx,
        rows.map((r) => keyEvent('key.revoked', r, { reason: reason ?? null, via: 'revoke-all', by: actor.name })),
      );
      return changesRepository.record(
        tx,
        rows.map((r) => ({ keyId: r.id, version: r.version, kind: 'revoked' })),
      );
    });
    if (changes.length > 0) this.#o.onEvents?.();
    return { revoked: changes.length, propagation: await this.#announce(changes) };
  }

  /**
   * A refused admin attempt (401, 403) on an account's routes, for its audit log: who (when the
   * token was valid), from where, what; never the presented token. Folded per window with a count
   * (the first attempt's detail), so strangers cannot flood the log.
   */
  async recordRefusal(
    accountId: string,
    actor: Actor | undefined,
    sourceIp: string | null,
    detail: { status: number; method: string; route: string },
  ): Promise<void> {
    await auditRepository.recordRefusal(this.#o.db, {
      account_id: accountId,
      key_id: null,
      actor: actor?.name ?? 'unauthenticated',
      action: detail.status === 401 ? 'admin.unauthenticated' : 'admin.forbidden',
      source_ip: sourceIp,
      changes: detail,
    });
  }

  async auditLog(
    accountId: string,
    opts: { keyId?: string; limit: number; cursor?: string | undefined },
  ): Promise<Page<AuditRow>> {
    const before = opts.cursor === undefined ? undefined : decodeAuditCursor(opts.cursor, accountId);
    const rows = await auditRepository.list(this.#o.db, accountId, {
      ...(opts.keyId ? { keyId: opts.keyId } : {}),
      ...(before ? { before } : {}),
      limit: opts.limit + 1,
    });
    return pageOf(rows, opts.limit, (last) => encodeAuditCursor(accountId, Number(last.id)));
  }

  async #locked(tx: Queryable, accountId: string, keyId: string): Promise<KeyRow> {
    const row = await keysRepository.get(tx, accountId, keyId, true);
    if (!row) throw new AppError('NOT_FOUND', `key ${keyId} not found`);
    return row;
  }

  async #audit(
    tx: Queryable,
    actor: Actor,
    row: KeyRow,
    action: string,
    changes: Record<string, unknown>,
  ): Promise<void> {
    await auditRepository.insert(tx, [auditEntry(actor, row, action, changes)]);
  }

  /** Evict everywhere and wait for the fleet: a span of its own, saying how many replicas confirmed and how long it took. */
  async #announce(changes: { seq: number; key_id: string; version: number }[]): Promise<Propagation> {
    if (changes.length === 0) return this.#o.invalidator.announce([]);
    return this.#trace.span(
      'otesse.propagation',
      async () => {
        const p = await this.#o.invalidator.announce(
          changes.map((c) => ({ seq: c.seq, keyId: c.key_id, version: c.version })),
        );
        this.#trace.setAttributes({
          'otesse.propagation.outcome': p.outcome,
          'otesse.propagation.replicas': p.replicas,
          'otesse.propagation.confirmed': p.confirmed,
          'otesse.propagation.unconfirmed': p.unconfirmed.length,
          'otesse.propagation.waited_ms': p.waitedMs,
        });
        return p;
      },
      { 'otesse.changes': changes.length },
    );
  }
}

/** What a rotation carries over to the new key (during the grace period each key draws on its own quota balance). */
function limitsOf(k: KeyRow): KeyLimits {
  return {
    enabled: k.enabled,
    rate_limits: k.rate_limits,
    remaining_uses: k.remaining_uses,
    refill_amount: k.refill_amount,
    refill_interval: k.refill_interval,
    metadata: k.metadata,
  };
}
