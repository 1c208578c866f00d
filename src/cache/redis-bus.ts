import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BusHandlers, Change, ChangeMessage, InvalidationBus, PublishResult } from './bus.js';

export interface RedisBusOptions {
  replicaId: string;
  /** Command connection (publish, heartbeats); shared, not owned. */
  redis: Redis;
  /** A dedicated connection for subscriptions; owned: closed by `close`. */
  subscriber: Redis;
  prefix: string;
  /** How long `publish` waits for confirmations. */
  confirmTimeoutMs: number;
  heartbeatMs: number;
  onError?: (err: unknown) => void;
}

interface Pending {
  expected: number;
  confirmed: number;
  done: () => void;
}

/**
 * Invalidations over Redis pub/sub, with confirmations and a heartbeat through our own
 * subscription so a half-open subscriber is detected, not only a closed socket.
 */
export class RedisBus implements InvalidationBus {
  readonly replicaId: string;
  #o: RedisBusOptions;
  #handlers: BusHandlers | undefined;
  #subscribed = false;
  #lastBeat = 0;
  #timer: NodeJS.Timeout | undefined;
  #pending = new Map<string, Pending>();
  #channels: { changes: string; ack: string; beat: string };

  constructor(opts: RedisBusOptions) {
    this.replicaId = opts.replicaId;
    this.#o = opts;
    this.#channels = {
      changes: `${opts.prefix}changes`,
      ack: `${opts.prefix}ack:${opts.replicaId}`,
      beat: `${opts.prefix}beat:${opts.replicaId}`,
    };
  }

  get subscribed(): boolean {
    return this.#subscribed;
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    const sub = this.#o.subscriber;
    sub.on('message', (channel: string, message: string) => this.#receive(channel, message));
    sub.on('ready', () => { void this.#subscribe(); });
    sub.on('close', () => this.#down());
    sub.on('error', (err: unknown) => this.#o.onError?.(err));
    if (sub.status === 'ready') await this.#subscribe();
    this.#timer = setInterval(() => this.#beat(), this.#o.heartbeatMs);
    this.#timer.unref();
  }

  async #subscribe(): Promise<void> {
    try {
      const c = this.#channels;
      await this.#o.subscriber.subscribe(c.changes, c.ack, c.beat);
      this.#lastBeat = Date.now();
      if (!this.#subscribed) {
        this.#subscribed = true;
        this.#handlers?.onUp();
      }
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  #down(): void {
    if (!this.#subscribed) return;
    this.#subscribed = false;
    this.#handlers?.onDown();
  }

  /** Publish a beat to ourselves; a subscriber that has not heard one for three periods is half-open. */
  #beat(): void {
    if (this.#subscribed && Date.now() - this.#lastBeat > 3 * this.#o.heartbeatMs) {
      this.#down();
      this.#o.subscriber.disconnect(true);
      return;
    }
    this.#o.redis.publish(this.#channels.beat, '1').catch(() => {});
  }

  #receive(channel: string, message: string): void {
    if (channel === this.#channels.beat) { this.#lastBeat = Date.now(); return; }
    if (channel === this.#channels.ack) { this.#confirm(message); return; }
    if (channel !== this.#channels.changes) return;
    const msg = JSON.parse(message) as ChangeMessage;
    this.#handlers?.onMessage(msg);
    this.#o.redis.publish(`${this.#o.prefix}ack:${msg.origin}`, msg.ackId).catch(() => {});
  }

  #confirm(ackId: string): void {
    const p = this.#pending.get(ackId);
    if (!p) return;
    p.confirmed++;
    if (p.confirmed >= p.expected) p.done();
  }

  async publish(changes: Change[]): Promise<PublishResult> {
    const ackId = randomUUID();
    const msg: ChangeMessage = { origin: this.replicaId, ackId, sentAt: Date.now(), changes };
    let resolve!: () => void;
    const all = new Promise<void>((r) => { resolve = r; });
    const pending: Pending = { expected: Number.POSITIVE_INFINITY, confirmed: 0, done: resolve };
    this.#pending.set(ackId, pending);
    try {
      pending.expected = Number(await this.#o.redis.publish(this.#channels.changes, JSON.stringify(msg)));
      if (pending.confirmed >= pending.expected) resolve();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise<void>((r) => { timer = setTimeout(r, this.#o.confirmTimeoutMs); })]);
      clearTimeout(timer);
      return { replicas: pending.expected, confirmed: Math.min(pending.confirmed, pending.expected) };
    } finally {
      this.#pending.delete(ackId);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#subscribed = false;
    this.#handlers = undefined;
    this.#o.subscriber.disconnect(false);
  }
}
