import type { DenyReason } from '../domain/decision.js';
import type { Database, Queryable } from '../store/db.js';
import { activityRepository, type AppliedUsage, type UsageBatch } from '../store/activity-repository.js';
import type { UsageSink } from './authenticator.js';

const HOUR = 3_600_000;

export interface UsageRecorderOptions {
  db: Database;
  replicaId: string;
  onFlush?: (ok: boolean) => void;
  /** Entries each in-memory map may hold while flushes fail; beyond it the oldest are dropped. */
  maxEntries?: number;
  /** Told how many entries were dropped (metrics and a log line). */
  onDrop?: (dropped: number) => void;
  /** Inside the flush's transaction, what the batch changed (webhook events of new addresses and quotas). */
  onApplied?: (tx: Queryable, applied: AppliedUsage) => Promise<void>;
}

type HourlyEntry = UsageBatch['hourly'][number];
interface AddressEntry {
  keyId: string;
  ip: string;
  first: number;
  last: number;
  count: number;
}
interface LastUsedEntry {
  keyId: string;
  at: number;
  ip: string;
}

/** Denied calls' addresses kept per key between flushes: a sample, never one per stranger. */
const DENIED_SAMPLE = 10;

/**
 * Counts Authenticate outcomes in memory (per key and hour, per key and address, last use) and
 * flushes them in batches of a few statements whatever the traffic. A batch has an id recorded in
 * the same transaction, so a flush retried after an unknown outcome never counts twice.
 */
export class UsageRecorder implements UsageSink {
  #o: UsageRecorderOptions;
  #hourly = new Map<string, HourlyEntry>();
  // Times as epoch ms on the hot path; Dates only when a batch is made.
  #addresses = new Map<string, AddressEntry>();
  #lastUsed = new Map<string, LastUsedEntry>();
  /**
   * Per key, the entries of the maps above that its allowed calls of this hour update: a repeated allow
   * finds them without building a map key. Holds nothing of its own; emptied whenever the maps change
   * other than by record (a flush, or entries dropped at the bound).
   */
  #recent = new Map<
    string,
    { hour: number; hourly: HourlyEntry; lastUsed: LastUsedEntry; addresses: Map<string, AddressEntry> }
  >();
  #denied = new Map<string, { keyId: string; ip: string; reason: string; last: number; count: number }>();
  #deniedPerKey = new Map<string, number>();
  #dropped = 0;
  #pending: UsageBatch | undefined;
  #batches = 0;
  #flushing: Promise<void> = Promise.resolve();

  constructor(opts: UsageRecorderOptions) {
    this.#o = opts;
  }

  record(keyId: string, ip: string, allowed: boolean, reason: DenyReason | undefined, now: number, count = 1): void {
    const hour = Math.floor(now / HOUR) * HOUR;
    if (allowed) {
      // A key allowed again from an address it was allowed from this hour: its entries are at hand.
      const recent = this.#recent.get(keyId);
      const a = recent !== undefined && recent.hour === hour ? recent.addresses.get(ip) : undefined;
      if (recent !== undefined && a !== undefined) {
        recent.hourly.count += count;
        a.count += count;
        a.last = now;
        recent.lastUsed.at = now;
        recent.lastUsed.ip = ip;
        return;
      }
    }
    const outcome = allowed ? 'ALLOWED' : (reason ?? 'DENIED');
    const hk = `${keyId}|${hour}|${outcome}`;
    let h = this.#hourly.get(hk);
    if (h) h.count += count;
    else this.#hourly.set(hk, (h = { keyId, hour: new Date(hour), outcome, count }));
    const ak = `${keyId}|${ip}`;
    if (!allowed) {
      this.#sampleDenied(ak, keyId, ip, outcome, now, count);
      this.#bound();
      return;
    }
    // Addresses are recorded for allowed calls only: a stranger cannot grow the table or raise alerts.
    let a = this.#addresses.get(ak);
    if (a) {
      a.count += count;
      a.last = now;
    } else this.#addresses.set(ak, (a = { keyId, ip, first: now, last: now, count }));
    let u = this.#lastUsed.get(keyId);
    if (u) {
      u.at = now;
      u.ip = ip;
    } else this.#lastUsed.set(keyId, (u = { keyId, at: now, ip }));
    let recent = this.#recent.get(keyId);
    if (recent === undefined || recent.hour !== hour)
      this.#recent.set(keyId, (recent = { hour, hourly: h, lastUsed: u, addresses: new Map() }));
    recent.addresses.set(ip, a);
    this.#bound();
  }

  #sampleDenied(ak: string, keyId: string, ip: string, reason: string, now: number, count: number): void {
    const d = this.#denied.get(ak);
    if (d) {
      d.count += count;
      d.last = now;
      d.reason = reason;
      return;
    }
    const n = this.#deniedPerKey.get(keyId) ?? 0;
    if (n >= DENIED_SAMPLE) return;
    this.#deniedPerKey.set(keyId, n + 1);
    this.#denied.set(ak, { keyId, ip, reason, last: now, count });
  }

  /** While flushes fail the maps keep growing: past the bound the oldest entries go, counted. */
  #bound(): void {
    const max = this.#o.maxEntries ?? 100_000;
    // On every call: the common case (within bounds) allocates nothing.
    if (this.#hourly.size <= max && this.#addresses.size <= max && this.#denied.size <= max) return;
    let dropped = 0;
    this.#recent.clear();
    for (const map of [this.#hourly, this.#addresses, this.#denied] as Map<string, unknown>[]) {
      while (map.size > max) {
        const oldest = map.keys().next().value as string;
        map.delete(oldest);
        dropped++;
      }
    }
    if (dropped > 0) {
      this.#dropped += dropped;
      this.#o.onDrop?.(dropped);
    }
  }

  /** Entries dropped since start because flushes kept failing. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Counts not yet written (for tests and metrics). */
  get unflushed(): number {
    let n = this.#pending ? this.#pending.hourly.reduce((s, h) => s + h.count, 0) : 0;
    for (const h of this.#hourly.values()) n += h.count;
    return n;
  }

  /** Write what was counted; a failed batch is kept and retried, with the same id, first. */
  flush(): Promise<void> {
    // The previous flush's failure was counted (onFlush) and went to its own caller; its batch is
    // still pending and is retried first here, so this one only waits for it to end.
    this.#flushing = this.#flushing.catch(() => {}).then(() => this.#flushOnce());
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    if (this.#pending) await this.#apply(this.#pending);
    if (this.#hourly.size === 0 && this.#addresses.size === 0 && this.#denied.size === 0) return;
    this.#pending = {
      id: `${this.#o.replicaId}:${Date.now()}:${++this.#batches}`,
      hourly: [...this.#hourly.values()],
      addresses: [...this.#addresses.values()].map((a) => ({ ...a, first: new Date(a.first), last: new Date(a.last) })),
      lastUsed: [...this.#lastUsed.values()].map((u) => ({ ...u, at: new Date(u.at) })),
      denied: [...this.#denied.values()].map((d) => ({ ...d, last: new Date(d.last) })),
    };
    this.#hourly = new Map();
    this.#recent.clear();
    this.#addresses = new Map();
    this.#lastUsed = new Map();
    this.#denied = new Map();
    this.#deniedPerKey = new Map();
    await this.#apply(this.#pending);
  }

  async #apply(batch: UsageBatch): Promise<void> {
    try {
      await this.#o.db.transaction(async (tx) => {
        const applied = await activityRepository.apply(tx, batch);
        if (applied) await this.#o.onApplied?.(tx, applied);
      });
      this.#pending = undefined;
      this.#o.onFlush?.(true);
    } catch (err) {
      this.#o.onFlush?.(false);
      throw err;
    }
  }
}
