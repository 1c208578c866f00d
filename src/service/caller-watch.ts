import { randomBytes } from 'node:crypto';
import type { CallerLease, ChangeMessage, InvalidationBus } from '../cache/bus.js';
import type { CachedGrant } from '../cache/entry.js';
import { AppError, invalid } from '../domain/errors.js';
import { parseAddress } from '../domain/ip.js';
import { isKeyId } from '../domain/key-format.js';
import type { Database } from '../store/db.js';
import { changesRepository } from '../store/changes-repository.js';
import type { UsageSink } from './authenticator.js';

/** What a watching caller needs to decide an allowed key, address and scope itself. */
export interface LocalGrant {
  version: number;
  /** Ms since the epoch; null: never. */
  expiresAt: number | null;
}

/**
 * Whether a caller may decide this grant in its own process (design: callers-hold-leases): a key
 * with rate limits or a usage quota is decided here on every call, where the fleet's counts are.
 */
export function localGrant(grant: CachedGrant): LocalGrant | undefined {
  if (grant.rateLimits.length > 0 || grant.quota) return undefined;
  return { version: grant.version, expiresAt: grant.expiresAt };
}

/** An event for the caller, in the order it must arrive. */
export type WatchEvent =
  | { terms: { leaseMs: number; beatMs: number; floorMs: number } }
  | { invalidation: { ack: string; keys: { keyId: string; version: number }[] } }
  | { beat: number }
  | { usageCounted: string };

/** The caller's stream as the service sees it. */
export interface WatchStream {
  send(event: WatchEvent): void;
  /** End the stream with this error (the caller stops deciding from memory). */
  fail(err: AppError): void;
}

export interface UsageReport {
  id: string;
  uses: { keyId: string; ip: string; count: number; lastAtMs: number }[];
}

export interface CallerWatchOptions {
  replicaId: string;
  db: Database;
  bus: InvalidationBus;
  usage: UsageSink;
  leaseMs: number;
  beatMs: number;
  /** How long versions are kept (the replicas' version floors): changes of that age are sent when a stream opens. */
  floorMs: number;
  now?: () => number;
  /** A stream opened (+1) or ended (-1) (metrics). */
  onWatchers?: (delta: number) => void;
}

/** The most uses in one report (a gRPC message is at most 16 KiB anyway), the most per entry. */
export const REPORT_LIMITS = Object.freeze({ uses: 1_000, count: 1_000_000 });
/** Report ids remembered per replica, so a report sent again after a lost answer counts once. */
const REMEMBERED_REPORTS = 100_000;
/** Confirmations a caller may owe at once; past it the stream ends (a caller that does not read or confirm). */
const MAX_UNCONFIRMED = 10_000;

/** A caller's open Watch stream. */
export interface Watch {
  beat(n: number): void;
  confirm(ack: string): void;
  report(report: UsageReport): void;
  /** `released`: the caller ended its side (it stopped deciding first); otherwise a cut or a reset. */
  end(released: boolean): void;
}

/**
 * Callers' Watch streams (design: callers-hold-leases): this replica holds each caller's lease on the
 * bus, passes it every change after applying it, echoes its beats, confirms in its name what it
 * confirms, and counts the uses it reports.
 */
export class CallerWatch {
  #o: CallerWatchOptions;
  #now: () => number;
  #streams = 0;
  #reports = new Set<string>();

  constructor(opts: CallerWatchOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Open a stream: attached to the bus first, then the versions changed within the floor window (a change
   * committed before the attach is among them, one after it reaches the stream), then the terms. Throws
   * STORAGE_UNAVAILABLE when this replica is not subscribed or the change log cannot be read.
   */
  async open(stream: WatchStream): Promise<Watch> {
    const { bus } = this.#o;
    if (!bus.subscribed)
      throw new AppError('STORAGE_UNAVAILABLE', 'this replica is not receiving changes; try another');
    const id = `${this.#o.replicaId}.w${++this.#streams}.${randomBytes(4).toString('hex')}`;
    let ended = false;
    const owed = new Set<string>();
    const stop = (err: AppError) => {
      if (ended) return;
      watch.end(false);
      stream.fail(err);
    };
    let lease: CallerLease | undefined;
    lease = bus.attachCaller(id, {
      change: (msg: ChangeMessage) => {
        const ack = `${msg.origin} ${msg.ackId}`;
        if (owed.size >= MAX_UNCONFIRMED) {
          stop(new AppError('OVERLOADED', 'too many changes left unconfirmed'));
          return;
        }
        owed.add(ack);
        stream.send({ invalidation: { ack, keys: msg.changes.map((c) => ({ keyId: c.keyId, version: c.version })) } });
      },
      beat: (n) => stream.send({ beat: n }),
      lost: () =>
        stop(
          new AppError('STORAGE_UNAVAILABLE', 'this replica may have missed a change: stop deciding and watch again'),
        ),
    });
    const watch: Watch = {
      beat: (n) => {
        if (!(Number.isSafeInteger(n) && n > 0)) throw invalid('beat', 'a positive integer');
        lease?.beat(n);
      },
      confirm: (ack) => {
        if (!owed.delete(ack)) return; // not owed (already confirmed, or never sent): nothing to confirm
        const space = ack.indexOf(' ');
        lease?.confirm(ack.slice(0, space), ack.slice(space + 1));
      },
      report: (report) => this.#countUsage(report, stream),
      end: (released) => {
        if (ended) return;
        ended = true;
        lease?.detach(released);
        lease = undefined;
        this.#o.onWatchers?.(-1);
      },
    };
    this.#o.onWatchers?.(1);
    try {
      const recent = await changesRepository.recent(this.#o.db, this.#o.floorMs);
      if (ended) return watch;
      for (let i = 0; i < recent.length; i += 1000)
        stream.send({ invalidation: { ack: '', keys: recent.slice(i, i + 1000) } });
      stream.send({ terms: { leaseMs: this.#o.leaseMs, beatMs: this.#o.beatMs, floorMs: this.#o.floorMs } });
    } catch (err) {
      watch.end(false);
      throw err instanceof AppError ? err : new AppError('STORAGE_UNAVAILABLE', 'the change log cannot be read');
    }
    return watch;
  }

  /** Count a usage report once (validated whole first: a bad one changes nothing). */
  #countUsage(report: UsageReport, stream: WatchStream): void {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(report.id)) throw invalid('usage.id', '8 to 64 letters, digits, - or _');
    if (report.uses.length > REPORT_LIMITS.uses) throw invalid('usage.uses', `at most ${REPORT_LIMITS.uses}`);
    const now = this.#now();
    const uses = report.uses.map((u, i) => {
      if (!isKeyId(u.keyId)) throw invalid(`usage.uses.${i}.key_id`, 'not a key id');
      const address = parseAddress(u.ip);
      if (!address) throw invalid(`usage.uses.${i}.ip`, 'not an IPv4 or IPv6 address');
      if (!(Number.isInteger(u.count) && u.count >= 1 && u.count <= REPORT_LIMITS.count))
        throw invalid(`usage.uses.${i}.count`, `1 to ${REPORT_LIMITS.count}`);
      // The caller's clock is believed within the last hour; later or earlier is counted now.
      const at = u.lastAtMs <= now && u.lastAtMs > now - 3_600_000 ? u.lastAtMs : now;
      return { keyId: u.keyId, ip: address.toString(), count: u.count, at };
    });
    if (!this.#reports.has(report.id)) {
      for (const u of uses) this.#o.usage.record(u.keyId, u.ip, true, undefined, u.at, u.count);
      if (this.#reports.size >= REMEMBERED_REPORTS) this.#reports.delete(this.#reports.values().next().value as string);
      this.#reports.add(report.id);
    }
    stream.send({ usageCounted: report.id });
  }
}
