import { performance } from 'node:perf_hooks';

/** One published change: a key's new version at a change-log sequence number. */
export interface Change {
  seq: number;
  keyId: string;
  version: number;
}

export interface ChangeMessage {
  /** The replica that made the change. */
  origin: string;
  /** Replicas confirm receipt by this id. */
  ackId: string;
  /** When it was published (ms since epoch), for the invalidation-lag metric. */
  sentAt: number;
  changes: Change[];
}

export interface BusHandlers {
  /** Apply a change message; called synchronously on receipt, before the bus confirms it. */
  onMessage(msg: ChangeMessage): void;
  /** The subscription is lost or suspected half-open: what arrives meanwhile is unknown. */
  onDown(): void;
  /** Subscribed again (or for the first time). */
  onUp(): void;
  /** Something arrived on the changes channel that could not be read: a change may have been missed. */
  onMissed(): void;
}

/** How a published change reached the replicas (design: revoke-holds). */
export interface PublishResult {
  /** Replicas that may have been deciding from memory when the change was published (this one included). */
  replicas: number;
  /** Those that confirmed the eviction. */
  confirmed: number;
  /**
   * `confirmed`: every such replica confirmed; `lease_expired`: the writer waited until the lease
   * of every replica that did not confirm must have run out; `single_replica`: in-process bus.
   */
  outcome: 'confirmed' | 'lease_expired' | 'single_replica';
  /** Replica ids that did not confirm (their lease ran out instead). */
  unconfirmed: string[];
  /** How long the writer waited, ms. */
  waitedMs: number;
}

/** A caller's Watch stream as the bus sees it (design: callers-hold-leases). */
export interface CallerSink {
  /** A change message, after this replica applied it: pass it to the caller, who confirms it. */
  change(msg: ChangeMessage): void;
  /** The caller's beat `n` came back: every change published before its lease was registered went to `change` first. */
  beat(n: number): void;
  /** This replica may have missed a change (subscription lost, unreadable message): the caller must stop deciding. */
  lost(): void;
}

/** What the replica holding a caller's stream does for it on the bus. */
export interface CallerLease {
  /** Register the caller's lease for beat `n`, then echo it through the bus (nothing when not subscribed). */
  beat(n: number): void;
  /** The caller applied the change `ackId` of `origin`: confirm it to that writer in the caller's name. */
  confirm(origin: string, ackId: string): void;
  /**
   * Stop passing changes. `release`: the caller said it stopped deciding, so writers need not wait for its
   * lease; otherwise (a cut, a reset) the lease stays registered until it runs out.
   */
  detach(release: boolean): void;
}

/**
 * Carries invalidations between replicas. Contract:
 * - `start` subscribes and calls `onUp` once subscribed; later losses call `onDown`, recoveries `onUp`;
 *   a failed subscribe is retried with backoff until `close`;
 * - `leaseValid(now)` is true only while this replica may decide from its caches: it has heard,
 *   within the lease, its own heartbeat sent within the lease, so every change published before
 *   that heartbeat has been applied;
 * - `publish` delivers to every subscribed replica and resolves once every replica that may hold a
 *   lease has confirmed, or once their leases must have run out; it rejects when the message could
 *   not be published at all;
 * - nothing received can throw out of the bus: unreadable input is dropped and reported;
 * - `close` gives up the lease, unsubscribes and releases what it opened.
 */
export interface InvalidationBus {
  readonly replicaId: string;
  start(handlers: BusHandlers): Promise<void>;
  publish(changes: Change[]): Promise<PublishResult>;
  leaseValid(now: number): boolean;
  readonly subscribed: boolean;
  /** A watching caller's lease, held by this replica for it (`id`: unique in the fleet). */
  attachCaller(id: string, sink: CallerSink): CallerLease;
  close(): Promise<void>;
}

interface HeldLease {
  sink: CallerSink;
  until: number;
}

interface Waiting {
  acked: Set<string>;
  wake: () => void;
}

/**
 * The in-process bus of the embedded default: one replica, delivery is a function call. Watching
 * callers hold leases here as they would across Redis: a publish waits for each one's confirmation
 * or for its lease to run out.
 */
export class MemoryBus implements InvalidationBus {
  readonly replicaId: string;
  readonly subscribed = true;
  #handlers: BusHandlers | undefined;
  #acks = 0;
  #leaseMs: number;
  #callers = new Map<string, HeldLease>();
  #waiting = new Map<string, Waiting>();

  constructor(opts: { replicaId: string; leaseMs?: number }) {
    this.replicaId = opts.replicaId;
    this.#leaseMs = opts.leaseMs ?? 1000;
  }

  attachCaller(id: string, sink: CallerSink): CallerLease {
    const now = performance.now();
    // Streams that ended without a release are kept only while their lease may still run.
    for (const [other, h] of this.#callers) if (h.sink === DEAF && h.until <= now) this.#callers.delete(other);
    const held: HeldLease = { sink, until: 0 };
    this.#callers.set(id, held);
    return {
      // Delivery is synchronous: every change published before this beat has reached the sink.
      beat: (n) => {
        if (this.#callers.get(id) !== held) return;
        held.until = performance.now() + this.#leaseMs;
        sink.beat(n);
      },
      confirm: (_origin, ackId) => {
        const w = this.#waiting.get(ackId);
        if (!w) return;
        w.acked.add(id);
        w.wake();
      },
      detach: (release) => {
        if (this.#callers.get(id) !== held) return;
        if (release) this.#callers.delete(id);
        // Kept until its lease runs out, deaf: a publish waits for it as for a caller that did not answer.
        else held.sink = DEAF;
      },
    };
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    handlers.onUp();
  }

  leaseValid(): boolean {
    return true;
  }

  async publish(changes: Change[]): Promise<PublishResult> {
    const msg = { origin: this.replicaId, ackId: String(++this.#acks), sentAt: Date.now(), changes };
    this.#handlers?.onMessage(msg);
    const started = performance.now();
    const holders = new Map<string, number>();
    for (const [id, held] of this.#callers) {
      if (held.until > started) holders.set(id, held.until);
      else if (held.sink === DEAF) this.#callers.delete(id);
    }
    if (holders.size === 0)
      return { replicas: 1, confirmed: 1, outcome: 'single_replica', unconfirmed: [], waitedMs: 0 };
    const waiting: Waiting = { acked: new Set(), wake: () => {} };
    this.#waiting.set(msg.ackId, waiting);
    try {
      // Every attached caller hears it (one still waiting for its first echo keeps the version), holders are waited for.
      for (const held of this.#callers.values()) held.sink.change(msg);
      for (;;) {
        const now = performance.now();
        // Each caller either confirmed or its lease, by this same clock, has run out.
        const open = [...holders].filter(([id, until]) => !waiting.acked.has(id) && until > now);
        if (open.length === 0) break;
        const left = Math.max(...open.map(([, until]) => until)) - now;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiting.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      const unconfirmed = [...holders.keys()].filter((id) => !waiting.acked.has(id));
      return {
        replicas: 1 + holders.size,
        confirmed: 1 + holders.size - unconfirmed.length,
        outcome: unconfirmed.length === 0 ? 'confirmed' : 'lease_expired',
        unconfirmed,
        waitedMs: Math.round(performance.now() - started),
      };
    } finally {
      this.#waiting.delete(msg.ackId);
    }
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
    for (const held of this.#callers.values()) held.sink.lost();
    this.#callers.clear();
  }
}

/** A caller whose stream ended without giving up its lease: nothing reaches it any more. */
const DEAF: CallerSink = { change: () => {}, beat: () => {}, lost: () => {} };
