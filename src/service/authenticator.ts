import { hash } from 'node:crypto';
import { decide, deny, type Decision, type DenyReason } from '../domain/decision.js';
import { invalid } from '../domain/errors.js';
import { parseAddress, type Address } from '../domain/ip.js';
import { partsOfWellFormed, secretCheck, secretOf, wellFormed } from '../domain/key-format.js';
import { isScope } from '../domain/scopes.js';
import type { CacheEntry, CachedGrant } from '../cache/entry.js';
import { TIER, type AuthPath, type AuthResult, type Tier } from './auth-result.js';
import { localGrant } from './caller-watch.js';
import { KeyResolver, type Call, type CallLimits, type KeyResolverOptions } from './key-resolver.js';
import type { Limiter, PartialAdmission, Refusal } from './limiter.js';
import { NO_TRACE, type Trace } from './trace.js';

export type { AuthPath, AuthResult } from './auth-result.js';
export type { CallLimits } from './key-resolver.js';
export { grantData } from './grant-data.js';

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

/** The slow path's options (KeyResolverOptions), and what the answer needs besides. */
export interface AuthenticatorOptions extends KeyResolverOptions {
  usage?: UsageSink;
  /** Rate limits and usage quotas (none counted without it). */
  limiter?: Limiter;
}

/** The Authenticate use case: parse, memory, Redis, then PostgreSQL and argon2 (design: the Authenticate path). */
export class Authenticator {
  #o: AuthenticatorOptions;
  #now: () => number;
  #trace: Trace;
  /** Redis, PostgreSQL and argon2: what memory cannot decide. */
  #resolver: KeyResolver;
  /**
   * Source addresses seen, parsed and in their normal text form: callers send from a few addresses, and
   * parsing one costs more than the rest of a cache hit. Bounded; an address that fails to parse is not kept.
   */
  #addresses = new Map<string, { address: Address; text: string }>();

  constructor(opts: AuthenticatorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#trace = opts.trace ?? NO_TRACE;
    this.#resolver = new KeyResolver(opts);
  }

  /** Wrong secrets refused by the check value, without argon2 (metrics). */
  get refusedByCheck(): number {
    return this.#resolver.refusedByCheck;
  }

  /**
   * Decide; throws VALIDATION_FAILED for a bad ip or scope, STORAGE_UNAVAILABLE, OVERLOADED or
   * DEADLINE_EXCEEDED on faults. A malformed key and a fresh entry of a trusted cache are answered at
   * once, without a promise (most calls: the transport then answers in the same tick); anything that
   * needs Redis, PostgreSQL or argon2 returns a promise. Validation errors are thrown, not rejected.
   * `uses`: how many of the caller's requests (same key, address and scope) this call decides; each
   * is counted. `watching`: the caller holds a Watch lease; an allow then says whether and how it may
   * decide the same call itself (`local`).
   */
  authenticate(
    key: string,
    ip: string,
    scope: string,
    limits: CallLimits = {},
    uses = 1,
    watching = false,
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
        watching,
      );
    }
    const result = this.#limited(
      found.grant,
      decide(found.grant, source.address, scope, now),
      source.text,
      now,
      'memory',
      uses,
      watching,
    );
    return this.#trace.on ? this.#traced(result, found.grant.keyId, 'memory', scope, uses) : result;
  }

  /**
   * The decision told to the caller's span: the key's id, never the key (design: secret-never-kept).
   * Nothing is built when that span is not recorded (most calls are not sampled).
   */
  #traced<R extends AuthResult | Promise<AuthResult>>(
    result: R,
    keyId: string | undefined,
    tier: Tier,
    scope: string,
    uses = 1,
  ): R {
    if (!this.#trace.recording()) return result;
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
    watching: boolean,
  ): AuthResult | Promise<AuthResult> {
    const partial = decision.allowed ? this.#o.limiter?.admit(grant, now, uses) : undefined;
    if (partial instanceof Promise)
      return partial.then((p) =>
        this.#local(this.#record(grant.keyId, ip, decision, now, path, uses, p), grant, watching),
      );
    return this.#local(this.#record(grant.keyId, ip, decision, now, path, uses, partial), grant, watching);
  }

  /** A watching caller's allow says whether it may decide the same call itself (design: callers-hold-leases). */
  #local(result: AuthResult, grant: CachedGrant, watching: boolean): AuthResult {
    if (watching && result.decision.allowed) result.local = localGrant(grant);
    return result;
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
    watching: boolean,
  ): Promise<AuthResult> {
    let r = await this.#resolver.resolve(call, cached);
    // A shared resolution may have read the key before a change this call started after.
    if ('entry' in r && this.#o.local.superseded(r.entry)) {
      // Read again; the superseded grant still proves its digest was verified (no argon2), and is never served.
      r = await this.#resolver.load(call, { ...r.entry, refreshedAt: Number.NEGATIVE_INFINITY });
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
      watching,
    );
    return this.#trace.on ? this.#traced(result, call.parsed.keyId, tier, scope, call.uses) : result;
  }
}

function refused(allowed: Decision, r: Refusal): Decision {
  return { allowed: false, reason: r.reason, identity: allowed.identity, retryAfterMs: r.retryAfterMs };
}
