import * as crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { AuthenticateResult } from './client.js';

/** Bounds of the caller's cache of allowed calls. */
export interface LocalDecisionLimits {
  /** Keys held (default 10,000). */
  maxEntries?: number;
  /** Approximate bytes held, metadata included (default 16 MiB). */
  maxBytes?: number;
}

/** The lease's terms, as the service sends them when a stream opens. */
export interface WatchTerms {
  leaseMs: number;
  beatMs: number;
  floorMs: number;
}

/** A usage report as it goes on the stream. */
export interface UsageReportOut {
  id: string;
  uses: { key_id: string; ip: string; count: number; last_at_ms: number }[];
}

/** Uses allowed from memory from one address, since the last report. */
interface Uses {
  scopes: Set<string>;
  count: number;
  lastAt: number;
  queued: boolean;
}

/** One key the service allowed: the digest of the key (never the key), the version and expiry it was decided from. */
interface Entry {
  digest: string;
  keyId: string;
  version: number;
  /** Ms since the epoch; Infinity: never. */
  expiresAt: number;
  result: AuthenticateResult & { allowed: true };
  /** Per source address as given, the scopes the service allowed from it. */
  from: Map<string, Uses>;
  bytes: number;
}

const HASH = (crypto as { hash?: (alg: string, data: string, enc: 'base64url') => string }).hash;

/** The SHA-256 digest of a key, the only form in which the cache knows it. */
export const digestOf: (key: string) => string = HASH
  ? (key) => HASH('sha256', key, 'base64url')
  : (key) => crypto.createHash('sha256').update(key).digest('base64url');

/** What one entry costs besides its metadata and addresses (a rough figure for the byte bound). */
const ENTRY_BYTES = 400;
const FROM_BYTES = 120;

/**
 * The caller's side of the lease protocol (the key service's design: callers-hold-leases): allowed
 * calls remembered by key digest, address and scope, decided from memory only while the lease holds by
 * this process's own monotonic clock; every change the service announces evicts what it changed before
 * the caller confirms it, and a version seen in a change refuses any answer decided from an older one.
 * Pure state: the client owns the stream and the timers.
 */
export class LocalDecisions {
  #maxEntries: number;
  #maxBytes: number;
  #bytes = 0;
  #entries = new Map<string, Entry>();
  #byKey = new Map<string, Entry>();
  /** Latest version seen per key id, and when (performance.now()). */
  #floors = new Map<string, { version: number; at: number }>();
  #leaseUntil = 0;
  #terms: WatchTerms | undefined;
  /** Beats sent and not echoed: number → performance.now() at sending. */
  #beats = new Map<number, number>();
  #beat = 0;
  /** Bumped whenever the stream is lost: an answer to a call sent before is not kept. */
  #epoch = 0;
  #lostAt = Number.NEGATIVE_INFINITY;
  #queued: [Entry, string, Uses][] = [];

  constructor(limits: LocalDecisionLimits = {}) {
    this.#maxEntries = limits.maxEntries ?? 10_000;
    this.#maxBytes = limits.maxBytes ?? 16 * 1024 * 1024;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** True while this process may decide from memory. */
  leaseValid(now = performance.now()): boolean {
    return now < this.#leaseUntil;
  }

  /**
   * The remembered allow for this call, counted as a use; undefined when memory cannot decide (no lease,
   * never allowed from this address for this scope, expired: Authenticate decides).
   */
  decide(key: string, ip: string, scope: string): (AuthenticateResult & { allowed: true }) | undefined {
    if (!(performance.now() < this.#leaseUntil)) return undefined;
    const entry = this.#entries.get(digestOf(key));
    if (entry === undefined) return undefined;
    const uses = entry.from.get(ip);
    if (uses === undefined || !uses.scopes.has(scope)) return undefined;
    const now = Date.now();
    if (entry.expiresAt <= now) return undefined;
    uses.count++;
    uses.lastAt = now;
    if (!uses.queued) {
      uses.queued = true;
      this.#queued.push([entry, ip, uses]);
    }
    return entry.result;
  }

  /**
   * Keep an allow Authenticate answered with `local` for a call sent in `epoch` at `sentAt`
   * (performance.now()): only when the stream has not been lost since, the answer came back within the
   * floor window, and no change of a later version has been seen.
   */
  learn(
    digest: string,
    ip: string,
    scope: string,
    result: AuthenticateResult & { allowed: true },
    local: { version: number; expiresAtMs: number },
    epoch: number,
    sentAt: number,
  ): void {
    const terms = this.#terms;
    if (!terms || epoch !== this.#epoch || performance.now() - sentAt >= terms.floorMs) return;
    const keyId = result.identity.keyId;
    const floor = this.#floors.get(keyId);
    if (floor !== undefined && floor.version > local.version) return;
    let entry = this.#entries.get(digest);
    if (entry !== undefined && entry.version > local.version) return;
    if (entry === undefined || entry.version < local.version) {
      if (entry) this.#drop(entry);
      const frozen = Object.freeze({
        allowed: true as const,
        identity: Object.freeze({ ...result.identity, scopes: Object.freeze([...result.identity.scopes]) as string[] }),
      });
      const metadataBytes = result.identity.metadata ? JSON.stringify(result.identity.metadata).length * 2 : 0;
      entry = {
        digest,
        keyId,
        version: local.version,
        expiresAt: local.expiresAtMs > 0 ? local.expiresAtMs : Number.POSITIVE_INFINITY,
        result: frozen,
        from: new Map(),
        bytes: ENTRY_BYTES + metadataBytes,
      };
      this.#entries.set(digest, entry);
      this.#byKey.set(keyId, entry);
      this.#bytes += entry.bytes;
    }
    let uses = entry.from.get(ip);
    if (uses === undefined) {
      uses = { scopes: new Set(), count: 0, lastAt: 0, queued: false };
      entry.from.set(ip, uses);
      entry.bytes += FROM_BYTES + ip.length * 2;
      this.#bytes += FROM_BYTES + ip.length * 2;
    }
    uses.scopes.add(scope);
    this.#bound();
  }

  /** Apply an announced change (or the versions sent when a stream opens): evict older grants, remember the version. */
  invalidate(keys: readonly { key_id: string; version: number }[]): void {
    const now = performance.now();
    for (const { key_id: keyId, version } of keys) {
      const floor = this.#floors.get(keyId);
      if (floor === undefined || floor.version <= version) this.#floors.set(keyId, { version, at: now });
      const entry = this.#byKey.get(keyId);
      if (entry !== undefined && entry.version < version) this.#drop(entry);
    }
  }

  /** A stream opened and sent its terms (after the versions changed within the floor window). */
  opened(terms: WatchTerms): void {
    this.#terms = terms;
    // Away longer than half the floor window: the versions just sent may not cover what changed meanwhile.
    if (performance.now() - this.#lostAt >= terms.floorMs / 2) this.#clear();
  }

  /** The next beat's number, remembered with its sending time. */
  nextBeat(): number {
    const n = ++this.#beat;
    const now = performance.now();
    this.#beats.set(n, now);
    const leaseMs = this.#terms?.leaseMs ?? 0;
    for (const [k, sent] of this.#beats) if (now - sent > leaseMs) this.#beats.delete(k);
    this.#pruneFloors(now);
    return n;
  }

  /** Beat `n` came back: every change published before it has been applied; the lease runs from its sending. */
  echoed(n: number): void {
    const sent = this.#beats.get(n);
    const terms = this.#terms;
    if (sent === undefined || !terms) return;
    this.#beats.delete(n);
    this.#leaseUntil = Math.max(this.#leaseUntil, sent + terms.leaseMs);
  }

  /** The stream ended or failed: stop deciding now; what changed while away is learnt when a stream opens again. */
  lost(): void {
    if (this.#leaseUntil > 0 || this.#terms) this.#lostAt = performance.now();
    this.#leaseUntil = 0;
    this.#terms = undefined;
    this.#beats.clear();
    this.#epoch++;
  }

  /** Uses decided from memory since the last call, as report entries (their counters start again). */
  takeUses(): UsageReportOut['uses'] {
    const out: UsageReportOut['uses'] = [];
    for (const [entry, ip, uses] of this.#queued) {
      if (uses.count > 0) out.push({ key_id: entry.keyId, ip, count: uses.count, last_at_ms: uses.lastAt });
      uses.count = 0;
      uses.queued = false;
    }
    this.#queued = [];
    return out;
  }

  #drop(entry: Entry): void {
    // Uses counted on it and not yet taken are still reported: the queue holds the entry.
    this.#entries.delete(entry.digest);
    if (this.#byKey.get(entry.keyId) === entry) this.#byKey.delete(entry.keyId);
    this.#bytes -= entry.bytes;
  }

  #clear(): void {
    for (const entry of [...this.#entries.values()]) this.#drop(entry);
  }

  /** Oldest first out, past either bound. */
  #bound(): void {
    while (this.#entries.size > this.#maxEntries || (this.#bytes > this.#maxBytes && this.#entries.size > 1)) {
      const oldest = this.#entries.values().next().value as Entry;
      this.#drop(oldest);
    }
  }

  #pruneFloors(now: number): void {
    const floorMs = this.#terms?.floorMs;
    if (floorMs === undefined || this.#floors.size < 1024) return;
    for (const [keyId, f] of this.#floors) if (now - f.at > floorMs) this.#floors.delete(keyId);
  }
}
