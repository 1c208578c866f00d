import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { decide, deny, type Decision, type DenyReason } from '../domain/decision.js';
import { invalid, AppError } from '../domain/errors.js';
import { parseAddress, type Address } from '../domain/ip.js';
import {
  offlineRefusal,
  partsOfWellFormed,
  secretCheck,
  secretOf,
  wellFormed,
  type ParsedKey,
} from '../domain/key-format.js';
import { isScope } from '../domain/scopes.js';
import { dataOf, toEntry, type CacheEntry, type CachedGrant, type GrantData } from '../cache/entry.js';
import type { FailureCounter } from '../cache/failure-counter.js';
import type { LocalCache } from '../cache/local-cache.js';
import type { SharedCache } from '../cache/shared-cache.js';
import type { Database } from '../store/db.js';
import { keysRepository, type KeyRow } from '../store/keys-repository.js';
import type { Hasher } from './hasher.js';
import type { Invalidator } from './invalidator.js';
import type { Limiter, PartialAdmission, Refusal } from './limiter.js';
import { NO_TRACE, type Trace } from './trace.js';

/** Which tier answered: for metrics and tests. */
export type AuthPath = 'parse' | 'memory' | 'redis' | 'storage';

/** The tier a trace names: PostgreSQL's answer is told apart from one that also needed argon2. */
type Tier = 'parse' | 'memory' | 'redis' | 'postgresql' | 'argon2';
const TIER: Record<AuthPath, Tier> = { parse: 'parse', memory: 'memory', redis: 'redis', storage: 'postgresql' };

export interface AuthResult {
  decision: Decision;
  path: AuthPath;
  /**
   * For a call deciding several uses: how many are allowed (the first ones) when the key's limits
   * refuse the others (`decision` is then the refusal). Absent: all uses allowed, or all denied.
   */
  allowedUses?: number;
}

/** Every malformed key gets this same answer (nothing in it is per call). */
const MALFORMED: AuthResult = Object.freeze({ decision: Object.freeze(deny('KEY_MALFORMED')), path: 'parse' });

/** Source addresses kept parsed. */
const MAX_ADDRESSES = 10_000;

/** The most uses one call may decide (a caller's coalesced requests). */
export const MAX_USES = 1000;

/** Told about every decision on an identified key id (usage counting). */
export interface UsageSink {
  /** `count`: how many uses this decision covers (a call deciding several coalesced requests). */
  record(
    keyId: string,
    ip: string,
    allowed: boolean,
    reason: DenyReason | undefined,
    now: number,
    count?: number,
  ): void;
}

export interface AuthenticatorOptions {
  db: Database;
  local: LocalCache;
  shared: SharedCache;
  hasher: Hasher;
  invalidator: Invalidator;
  usage?: UsageSink;
  /** An entry read from PostgreSQL this long ago is refreshed before use. */
  freshMs: number;
  /** Past freshMs, an entry still serves this long when PostgreSQL cannot be reached. */
  staleServeMs: number;
  /** Failed attempts from one address on one key id before that address is refused (`TOO_MANY_FAILURES`). */
  failureLimit: number;
  /** Shared by replicas when Redis is configured (design: no-remote-lockout). */
  failures: FailureCounter;
  /** Rate limits and usage quotas (none counted without it). */
  limiter?: Limiter;
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

/** A verified entry (`hashed`: argon2 verified it just now), or a deny; `known` when the key id exists (the deny is counted against it). */
type Resolved =
  { entry: CacheEntry; path: AuthPath; hashed?: boolean } | { reason: DenyReason; path: AuthPath; known: boolean };

/** The Authenticate use case: parse, memory, Redis, then PostgreSQL and argon2 (design: the Authenticate path). */
export class Authenticator {
  #o: AuthenticatorOptions;
  #now: () => number;
  #trace: Trace;
  #inflight = new Map<string, Promise<Resolved>>();
  #unknown: LRUCache<string, true>;
  #rows = new Map<string, Promise<RowRead>>();
  /** Check values of key ids seen (they never change): a wrong secret is refused from memory. */
  #checks = new LRUCache<string, { check: string; environment: string }>({ max: 200_000 });
  #refusedByCheck = 0;
  /**
   * Source addresses seen, parsed and in their normal text form: callers send from a few addresses, and
   * parsing one costs more than the rest of a cache hit. Bounded; an address that fails to parse is not kept.
   */
  #addresses = new Map<string, { address: Address; text: string }>();

  constructor(opts: AuthenticatorOptions) {
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

  /**
   * Decide; throws VALIDATION_FAILED for a bad ip or scope, STORAGE_UNAVAILABLE, OVERLOADED or
   * DEADLINE_EXCEEDED on faults. A malformed key and a fresh entry of a trusted cache are answered at
   * once, without a promise (most calls: the transport then answers in the same tick); anything that
   * needs Redis, PostgreSQL or argon2 returns a promise. Validation errors are thrown, not rejected.
   * `uses`: how many of the caller's requests (same key, address and scope) this call decides; each
   * is counted.
   */
  authenticate(
    key: string,
    ip: string,
    scope: string,
    limits: CallLimits = {},
    uses = 1,
  ): AuthResult | Promise<AuthResult> {
    const source = this.#address(ip);
    if (!isScope(scope)) throw invalid('scope', 'not a scope of the catalog');
    if (uses !== 1 && !(Number.isInteger(uses) && uses >= 1 && uses <= MAX_USES))
      throw invalid('uses', `1 to ${MAX_USES}`);
    // The offline checks build nothing; the key's parts are only taken apart when memory cannot decide.
    if (!wellFormed(key)) return this.#trace.on ? this.#traced(MALFORMED, undefined, 'parse', scope) : MALFORMED;
    const digest = hash('sha256', key, 'base64url');
    const now = this.#now();
    const found = this.#o.local.get(digest);
    if (!found || !this.#o.invalidator.trusted(now) || now - found.refreshedAt >= this.#o.freshMs) {
      return this.#authenticateSlow(
        {
          parsed: partsOfWellFormed(key),
          digest,
          key,
          ip: source.text,
          check: secretCheck(secretOf(key)),
          limits,
          uses,
        },
        source.address,
        scope,
        found,
        now,
      );
    }
    const result = this.#limited(
      found.grant,
      decide(found.grant, source.address, scope, now),
      source.text,
      now,
      'memory',
      uses,
    );
    return this.#trace.on ? this.#traced(result, found.grant.keyId, 'memory', scope, uses) : result;
  }

  /** The decision told to the caller's span: the key's id, never the key (design: secret-never-kept). */
  #traced<R extends AuthResult | Promise<AuthResult>>(
    result: R,
    keyId: string | undefined,
    tier: Tier,
    scope: string,
    uses = 1,
  ): R {
    if (result instanceof Promise) return result.then((r) => this.#traced(r, keyId, tier, scope, uses)) as R;
    const { decision, allowedUses } = result;
    this.#trace.setAttributes({
      'otesse.key_id': keyId,
      'otesse.account_id': decision.identity?.accountId,
      'otesse.scope': scope,
      'otesse.tier': tier,
      'otesse.outcome': decision.allowed ? 'allowed' : 'denied',
      'otesse.deny_reason': decision.allowed ? undefined : decision.reason,
      'otesse.uses': uses,
      'otesse.allowed_uses': allowedUses,
    });
    return result;
  }

  /** An allowed call's uses are counted against the key's rate limits and quota (which may refuse some or all), then recorded. */
  #limited(
    grant: CachedGrant,
    decision: Decision,
    ip: string,
    now: number,
    path: AuthPath,
    uses: number,
  ): AuthResult | Promise<AuthResult> {
    const partial = decision.allowed ? this.#o.limiter?.admit(grant, now, uses) : undefined;
    if (partial instanceof Promise)
      return partial.then((p) => this.#record(grant.keyId, ip, decision, now, path, uses, p));
    return this.#record(grant.keyId, ip, decision, now, path, uses, partial);
  }

  /** Record the decision's uses; `partial`: the limits admitted only the first ones (maybe none), the others are refused. */
  #record(
    keyId: string,
    ip: string,
    decision: Decision,
    at: number,
    path: AuthPath,
    uses: number,
    partial?: PartialAdmission,
  ): AuthResult {
    const usage = this.#o.usage;
    if (!partial) {
      usage?.record(keyId, ip, decision.allowed, decision.allowed ? undefined : decision.reason, at, uses);
      return { decision, path };
    }
    if (partial.admitted > 0) usage?.record(keyId, ip, true, undefined, at, partial.admitted);
    usage?.record(keyId, ip, false, partial.refusal.reason, at, uses - partial.admitted);
    const refusal = refused(decision, partial.refusal);
    return partial.admitted > 0
      ? { decision: refusal, path, allowedUses: partial.admitted }
      : { decision: refusal, path };
  }

  /** The address parsed, from the bounded memo when seen before; throws VALIDATION_FAILED. */
  #address(ip: string): { address: Address; text: string } {
    let known = this.#addresses.get(ip);
    if (!known) {
      const address = parseAddress(ip);
      if (!address) throw invalid('ip', 'not an IPv4 or IPv6 address');
      known = { address, text: address.toString() };
      // Bounded, oldest first out: a plain Map costs a hit less than an LRU, and callers use few addresses.
      if (this.#addresses.size >= MAX_ADDRESSES) this.#addresses.delete(this.#addresses.keys().next().value as string);
      this.#addresses.set(ip, known);
    }
    return known;
  }

  /** Not decidable from memory: Redis, then PostgreSQL and argon2, shared by concurrent calls of one key. */
  async #authenticateSlow(
    call: Call,
    address: Address,
    scope: string,
    cached: CacheEntry | undefined,
    now: number,
  ): Promise<AuthResult> {
    let r = await this.#resolve(call, cached);
    // A shared resolution may have read the key before a change this call started after.
    if ('entry' in r && this.#o.local.superseded(r.entry)) {
      // Read again; the superseded grant still proves its digest was verified (no argon2), and is never served.
      r = await this.#load(call, { ...r.entry, refreshedAt: Number.NEGATIVE_INFINITY });
    }
    const tier = 'hashed' in r && r.hashed ? 'argon2' : TIER[r.path];
    if ('reason' in r) {
      if (r.known) this.#o.usage?.record(call.parsed.keyId, call.ip, false, r.reason, now, call.uses);
      const denied = { decision: deny(r.reason), path: r.path };
      return this.#trace.on ? this.#traced(denied, call.parsed.keyId, tier, scope, call.uses) : denied;
    }
    // Decide at the time of the answer: a call that waited must not judge expiry by its start.
    const at = r.path === 'memory' ? now : this.#now();
    const result = this.#limited(
      r.entry.grant,
      decide(r.entry.grant, address, scope, at),
      call.ip,
      at,
      r.path,
      call.uses,
    );
    return this.#trace.on ? this.#traced(result, call.parsed.keyId, tier, scope, call.uses) : result;
  }

  /** Concurrent misses of one key share one resolution (and so one verification). */
  #resolve(call: Call, cached: CacheEntry | undefined): Promise<Resolved> {
    let p = this.#inflight.get(call.digest);
    if (!p) {
      p = this.#load(call, cached).finally(() => this.#inflight.delete(call.digest));
      this.#inflight.set(call.digest, p);
    }
    return p;
  }

  async #load(call: Call, cached: CacheEntry | undefined): Promise<Resolved> {
    const { parsed, digest } = call;
    // A remembered unknown id cannot have a cached grant: answer before any I/O.
    if (!cached && this.#unknown.has(parsed.keyId)) return { reason: 'KEY_UNKNOWN', path: 'memory', known: false };
    const trusted = this.#o.invalidator.trusted(this.#now());
    if (trusted) {
      // Redis unreachable is a miss: PostgreSQL answers (the outage shows in readiness and metrics).
      const hit = await this.#o.shared.get(parsed.keyId, digest).catch(() => undefined);
      if (hit) {
        const entry = toEntry(digest, hit.data, hit.refreshedAt, this.#o.onUnreadable);
        if (this.#o.local.superseded(entry)) {
          // A valid signature says where the entry came from, not that it is current (design: version-floor):
          // it proves the digest was verified (no argon2 to re-read the key), and it is never served, not even stale.
          this.#o.onSuperseded?.(parsed.keyId);
          cached ??= { ...entry, refreshedAt: Number.NEGATIVE_INFINITY };
        } else {
          if (this.#now() - hit.refreshedAt < this.#o.freshMs && this.#o.local.set(entry))
            return { entry, path: 'redis' };
          // Past its fresh time, but proof that this digest was verified: refresh without hashing.
          cached ??= entry;
        }
      }
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

function refused(allowed: Decision, r: Refusal): Decision {
  return { allowed: false, reason: r.reason, identity: allowed.identity, retryAfterMs: r.retryAfterMs };
}

/** A key row as read from PostgreSQL, and when the read began. */
interface RowRead {
  row: KeyRow | undefined;
  readAt: number;
}

/** One Authenticate call as the resolution steps see it. */
interface Call {
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

/** The cacheable part of a key row. */
export function grantData(row: KeyRow): GrantData {
  return {
    keyId: row.id,
    accountId: row.account_id,
    environment: row.environment,
    scopes: row.scopes,
    allowedIps: row.allowed_ips,
    expiresAt: row.expires_at?.getTime() ?? null,
    revokedAt: row.revoked_at?.getTime() ?? null,
    version: Number(row.version),
    enabled: row.enabled,
    rateLimits: row.rate_limits.map((l) => ({ name: l.name, limit: l.limit, windowMs: l.window_seconds * 1000 })),
    quota: row.remaining_uses !== null,
    metadata: row.metadata === null ? null : JSON.stringify(row.metadata),
  };
}
