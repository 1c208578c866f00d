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
}

export interface PublishResult {
  /** Replicas subscribed when the change was published (this one included). */
  replicas: number;
  /** Replicas that confirmed the eviction within the wait. */
  confirmed: number;
}

/**
 * Carries invalidations between replicas. Contract:
 * - `start` subscribes and calls `onUp` once subscribed; later losses call `onDown`, recoveries `onUp`;
 * - `publish` delivers to every subscribed replica and resolves once all have confirmed or the
 *   bounded wait has passed; it rejects when the message could not be published at all;
 * - `close` unsubscribes and releases what it opened.
 */
export interface InvalidationBus {
  readonly replicaId: string;
  start(handlers: BusHandlers): Promise<void>;
  publish(changes: Change[]): Promise<PublishResult>;
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

  async publish(changes: Change[]): Promise<PublishResult> {
    this.#handlers?.onMessage({ origin: this.replicaId, ackId: String(++this.#acks), sentAt: Date.now(), changes });
    return { replicas: 1, confirmed: 1 };
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
  }
}
