import { LRUCache } from 'lru-cache';
import type { DenyReason } from '../domain/decision.js';
import { AppError } from '../domain/errors.js';
import { offlineRefusal, secretOf, type ParsedKey } from '../domain/key-format.js';
import { dataOf, toEntry, type CacheEntry } from '../cache/entry.js';
import type { FailureCounter } from '../cache/failure-counter.js';
import type { LocalCache } from '../cache/local-cache.js';
import type { SharedCache } from '../cache/shared-cache.js';
import type { Database } from '../store/db.js';
import { keysRepository, type KeyRow } from '../store/keys-repository.js';
import type { AuthPath } from './auth-result.js';
import { grantData } from './grant-data.js';
import type { Hasher } from './hasher.js';
import type { Invalidator } from './invalidator.js';
import { NO_TRACE, type Trace } from './trace.js';

/** What the slow path needs of the Authenticator's options (the Authenticator passes its own). */
export interface KeyResolverOptions {
  db: Database;
  local: LocalCache;
  shared: SharedCache;
  hasher: Hasher;
  invalidator: Invalidator;
  /** An entry read from PostgreSQL this long ago is refreshed before use. */
  freshMs: number;
  /** Past freshMs, an entry still serves this long when PostgreSQL cannot be reached. */
  staleServeMs: number;
  /** Failed attempts from one address on one key id before that address is refused (`TOO_MANY_FAILURES`). */
  failureLimit: number;
  /** Shared by replicas when Redis is configured (design: no-remote-lockout). */
  failures: FailureCounter;
  /** How long an unknown key id is remembered. */
  unknownTtlMs?: number;
  /** A key's stored allowlist holds rules that cannot be read (the key is then denied from every address). */
  onUnreadable?: (keyId: string, rules: number) => void;
  /** A Redis entry below this replica's version floor was read (a replayed or left-over entry): kept as proof only. */
  onSuperseded?: (keyId: string) => void;
  /** Each decision's key id, outcome and tier on the caller's span (default: tracing off). */
  trace?: Trace;
  now?: () => number;
}

/** When the caller stops waiting: a verification is not started for a call that has ended. */
export interface CallLimits {
  /** Epoch ms after which the caller no longer waits (the gRPC deadline). */
  deadline?: number | undefined;
  cancelled?: () => boolean;
}

/** One Authenticate call as the resolution steps see it. */
export interface Call {
  parsed: ParsedKey;
  digest: string;
  key: string;
  /** The source address, normalised. */
  ip: string;
  /** The secret's check value (computed once: the wrong-secret refusals and the backfill use it). */
  check: string;
  limits: CallLimits;
  /** How many of the caller's requests the call decides. */
  uses: number;
}

/** A verified entry (`hashed`: argon2 verified it just now), or a deny; `known` when the key id exists (the deny is counted against it). */
export type Resolved =
  { entry: CacheEntry; path: AuthPath; hashed?: boolean } | { reason: DenyReason; path: AuthPath; known: boolean };

/** A key row as read from PostgreSQL, and when the read began. */
interface RowRead {
  row: KeyRow | undefined;
  readAt: number;
}

/**
 * The Authenticate slow path, for a key memory cannot decide: Redis, then the PostgreSQL row and
 * argon2, with failure counting, the version floors and stale serving when PostgreSQL is down.
 */
export class KeyResolver {
  #o: KeyResolverOptions;
  #now: () => number;
  #trace: Trace;
  #inflight = new Map<string, Promise<Resolved>>();
  #unknown: LRUCache<string, true>;
  #rows = new Map<string, Promise<RowRead>>();
  /** Check values of key ids seen (they never change): a wrong secret is refused from memory. */
  #checks = new LRUCache<string, { check: string; environment: string }>({ max: 200_000 });
  #refusedByCheck = 0;

  constructor(opts: KeyResolverOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#trace = opts.trace ?? NO_TRACE;
    // ttlResolution 0: no timer per millisecond of traffic to reuse a clock reading (lru-cache's default).
    this.#unknown = new LRUCache({ max: 100_000, ttl: opts.unknownTtlMs ?? 30_000, ttlResolution: 0 });
  }

  /** Wrong secrets refused by the check value, without argon2 (metrics). */
  get refusedByCheck(): number {
    return this.#refusedByCheck;
  }

  /** Concurrent misses of one key share one resolution (and so one verification). */
  resolve(call: Call, cached: CacheEntry | undefined): Promise<Resolved> {
    let p = this.#inflight.get(call.digest);
    if (!p) {
      p = this.load(call, cached).finally(() => this.#inflight.delete(call.digest));
      this.#inflight.set(call.digest, p);
    }
    return p;
  }

  /** One resolution of its own (not shared); `cached`: an entry that proves the digest was verified. */
  async load(call: Call, cached: CacheEntry | undefined): Promise<Resolved> {
    const { parsed } = call;
    // A remembered unknown id cannot have a cached grant: answer before any I/O.
    if (!cached && this.#unknown.has(parsed.keyId)) return { reason: 'KEY_UNKNOWN', path: 'memory', known: false };
    const trusted = this.#o.invalidator.trusted(this.#now());
    if (trusted) {
      const shared = await this.#fromRedis(call);
      if (shared && 'path' in shared) return shared;
      cached ??= shared;
    }
    // Only this address is refused: the owner, elsewhere, is not locked out (design: no-remote-lockout).
    if (!cached && (await this.#o.failures.count(parsed.keyId, call.ip)) >= this.#o.failureLimit) {
      return { reason: 'TOO_MANY_FAILURES', path: 'memory', known: true };
    }
    // A key's check value never changes: a wrong secret for a key id seen before costs no query and no hashing.
    if (!cached && this.#wrongByCheck(call)) {
      await this.#o.failures.add(parsed.keyId, call.ip);
      return { reason: 'KEY_UNKNOWN', path: 'memory', known: true };
    }
    let read: RowRead;
    try {
      read = await this.#row(parsed.keyId);
    } catch (err) {
      return this.#stale(cached, err);
    }
    return this.#verified(read, call, cached, trusted);
  }

  /**
   * Redis's entry for the digest: fresh and current, it answers; otherwise it is returned only as
   * proof that the digest was verified (a refresh without hashing); undefined on a miss.
   */
  async #fromRedis({ parsed, digest }: Call): Promise<{ entry: CacheEntry; path: 'redis' } | CacheEntry | undefined> {
    // Redis unreachable is a miss: PostgreSQL answers (the outage shows in readiness and metrics).
    const hit = await this.#o.shared.get(parsed.keyId, digest).catch(() => undefined);
    if (!hit) return undefined;
    const entry = toEntry(digest, hit.data, hit.refreshedAt, this.#o.onUnreadable);
    if (this.#o.local.superseded(entry)) {
      // A valid signature says where the entry came from, not that it is current (design: version-floor):
      // it proves the digest was verified (no argon2 to re-read the key), and it is never served, not even stale.
      this.#o.onSuperseded?.(parsed.keyId);
      return { ...entry, refreshedAt: Number.NEGATIVE_INFINITY };
    }
    if (this.#now() - hit.refreshedAt < this.#o.freshMs && this.#o.local.set(entry)) return { entry, path: 'redis' };
    // Past its fresh time, but proof that this digest was verified: refresh without hashing.
    return entry;
  }

  /**
   * Concurrent reads of one key id (a burst of distinct wrong secrets, say) share one query. `readAt`
   * is taken before the query: a grant is known current only as of then (a change may commit while
   * the row travels), which is what the version floors' bound on forgotten floors relies on.
   */
  #row(keyId: string): Promise<RowRead> {
    let p = this.#rows.get(keyId);
    if (!p) {
      const readAt = this.#now();
      p = keysRepository
        .byId(this.#o.db, keyId)
        .then((row) => ({ row, readAt }))
        .finally(() => this.#rows.delete(keyId));
      this.#rows.set(keyId, p);
      void p.then(
        ({ row }) => {
          if (row?.secret_check) this.#checks.set(keyId, { check: row.secret_check, environment: row.environment });
        },
        () => {},
      );
    }
    return p;
  }

  /** True when the key id's check value is known here and the secret (or environment) does not match it. */
  #wrongByCheck(call: Call): boolean {
    const known = this.#checks.get(call.parsed.keyId);
    if (!known) return false;
    const wrong = offlineRefusal(known, call.parsed.environment, call.check) !== undefined;
    if (wrong) this.#refusedByCheck++;
    return wrong;
  }

  /** PostgreSQL unreachable: a verified entry not below its version floor serves within the stale bound, else the fault stands. */
  #stale(cached: CacheEntry | undefined, err: unknown): Resolved {
    const now = this.#now();
    const usable =
      cached &&
      this.#o.invalidator.trusted(now) &&
      !this.#o.local.superseded(cached) &&
      now - cached.refreshedAt < this.#o.freshMs + this.#o.staleServeMs;
    if (usable) return { entry: cached, path: 'memory' };
    throw err instanceof AppError ? err : new AppError('STORAGE_UNAVAILABLE', 'storage unavailable');
  }

  async #verified(
    { row, readAt }: RowRead,
    call: Call,
    cached: CacheEntry | undefined,
    trusted: boolean,
  ): Promise<Resolved> {
    const { parsed, digest } = call;
    if (!row) {
      this.#unknown.set(parsed.keyId, true);
      return { reason: 'KEY_UNKNOWN', path: 'storage', known: false };
    }
    // A cached entry for this digest was verified before, and a key's hash never changes.
    if (!cached && !(await this.#secretMatches(row, call))) {
      await this.#o.failures.add(parsed.keyId, call.ip);
      return { reason: 'KEY_UNKNOWN', path: 'storage', known: true };
    }
    const entry = toEntry(digest, grantData(row), readAt, this.#o.onUnreadable);
    // A row read before a change this replica has already seen is not cached anywhere (design: no-stale-write).
    if (this.#o.local.set(entry) && trusted)
      await this.#o.shared
        .set(digest, { data: dataOf(entry.grant), refreshedAt: entry.refreshedAt })
        .catch(() => false);
    return { entry, path: 'storage', hashed: !cached };
  }

  /**
   * The other environment's prefix on a real id is a wrong key, not an unknown id (ids are not
   * secret); a secret whose check value differs is refused without argon2, so wrong guesses cost
   * no hashing; argon2 runs only for the right secret (or a one-in-four-billion collision).
   */
  async #secretMatches(row: KeyRow, call: Call): Promise<boolean> {
    const refusal = offlineRefusal(
      { environment: row.environment, check: row.secret_check },
      call.parsed.environment,
      call.check,
    );
    if (refusal) {
      if (refusal === 'check') this.#refusedByCheck++;
      return false;
    }
    const { limits } = call;
    const ok = await this.#trace.span(
      'otesse.argon2.verify',
      () =>
        this.#o.hasher.verify(row.secret_hash, secretOf(call.key), () => {
          const deadline = limits.deadline;
          return !limits.cancelled?.() && (deadline === undefined || this.#now() < deadline);
        }),
      { 'otesse.key_id': row.id },
    );
    // A key made before check values existed gets one on its first successful verification.
    if (ok && row.secret_check === null)
      void keysRepository.setSecretCheck(this.#o.db, row.id, call.check).catch(() => {});
    return ok;
  }
}
