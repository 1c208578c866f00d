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
  close(): Promise<void>;
}

/** The in-process bus of the embedded default: one replica, delivery is a function call. */
export class MemoryBus implements InvalidationBus {
  readonly replicaId: string;
  readonly subscribed = true;
  #handlers: BusHandlers | undefined;
  #acks = 0;

  constructor(opts: { replicaId: string }) {
    this.replicaId = opts.replicaId;
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    handlers.onUp();
  }

  leaseValid(): boolean {
    return true;
  }

  async publish(changes: Change[]): Promise<PublishResult> {
    this.#handlers?.onMessage({ origin: this.replicaId, ackId: String(++this.#acks), sentAt: Date.now(), changes });
    return { replicas: 1, confirmed: 1, outcome: 'single_replica', unconfirmed: [], waitedMs: 0 };
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
  }
}
