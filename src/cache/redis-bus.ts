import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { isKeyId } from '../domain/key-format.js';
import type {
  BusHandlers,
  CallerLease,
  CallerSink,
  Change,
  ChangeMessage,
  InvalidationBus,
  PublishResult,
} from './bus.js';
import { parseObject, type Signer } from './signer.js';

/** What kind of input from Redis was dropped (metrics label). */
export type RejectKind = 'changes' | 'ack' | 'beat' | 'entry';

export interface RedisBusOptions {
  replicaId: string;
  /** Command connection (publish, heartbeats); shared, not owned. */
  redis: Redis;
  /** A dedicated connection for subscriptions; owned: closed by `close`. */
  subscriber: Redis;
  prefix: string;
  signer: Signer;
  /** How long a heard heartbeat lets this replica decide from memory, counted from its sending. */
  leaseMs: number;
  /** The clock difference between hosts that is tolerated (design: revocation-ignores-clocks). */
  skewMs: number;
  heartbeatMs: number;
  onError?: (err: unknown) => void;
  /** Unreadable or unauthenticated input that was dropped. */
  onReject?: (kind: RejectKind) => void;
}

interface Pending {
  acked: Set<string>;
  wake: () => void;
}

// Publish and read, atomically, which replicas may hold a lease: a replica not listed here renews its
// lease only with a heartbeat that Redis runs after this publish, so it hears the change first.
// It writes first (the prune a heartbeat does too): a server that refuses writes, a demoted or cut-off
// primary (READONLY, NOREPLICAS), refuses the publish as it refuses heartbeats, so a writer never
// publishes where no lease is renewed (design: revoke-holds, in a failover).
const PUBLISH_AND_LIST = `
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local n = redis.call('PUBLISH', KEYS[1], ARGV[1])
local r = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf')
return {n, r}`;

// A heartbeat registers the lease it may grant before it is published (so a writer sees it).
const BEAT = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
return redis.call('PUBLISH', KEYS[2], ARGV[3])`;

const REPLICA_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A change message read defensively: undefined unless every field has its type. */
export function readChangeMessage(obj: Record<string, unknown> | undefined): ChangeMessage | undefined {
  if (
    !obj ||
    typeof obj.o !== 'string' ||
    !REPLICA_ID.test(obj.o) ||
    typeof obj.a !== 'string' ||
    obj.a.length > 64 ||
    typeof obj.t !== 'number' ||
    !Array.isArray(obj.c) ||
    obj.c.length > 10_000
  )
    return undefined;
  const changes: Change[] = [];
  for (const c of obj.c as unknown[]) {
    if (
      !Array.isArray(c) ||
      !Number.isSafeInteger(c[0]) ||
      typeof c[1] !== 'string' ||
      !isKeyId(c[1]) ||
      !Number.isSafeInteger(c[2])
    )
      return undefined;
    changes.push({ seq: c[0] as number, keyId: c[1], version: c[2] as number });
  }
  return { origin: obj.o, ackId: obj.a, sentAt: obj.t, changes };
}

/**
 * Invalidations over Redis pub/sub with confirmations and leases (design: revoke-holds): a replica
 * decides from memory only while it holds a lease renewed by its own heartbeats, which travel the
 * same subscription as the changes; a writer waits for every leaseholder's confirmation or for its
 * lease to run out. Everything read from Redis is authenticated and parsed defensively.
 */
export class RedisBus implements InvalidationBus {
  readonly replicaId: string;
  #o: RedisBusOptions;
  #handlers: BusHandlers | undefined;
  #subscribed = false;
  #closed = false;
  #leaseUntil = 0;
  #lastHeard = 0;
  #beats = new Map<number, number>();
  #beatSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 100;
  #pending = new Map<string, Pending>();
  /** Watching callers whose streams this replica holds (design: callers-hold-leases). */
  #callers = new Map<string, CallerSink>();
  #channels: { changes: string; ack: string; beat: string; registry: string };

  constructor(opts: RedisBusOptions) {
    this.replicaId = opts.replicaId;
    this.#o = opts;
    this.#channels = {
      changes: `${opts.prefix}changes`,
      ack: `${opts.prefix}ack:${opts.replicaId}`,
      beat: `${opts.prefix}beat:${opts.replicaId}`,
      registry: `${opts.prefix}replicas`,
    };
  }

  get subscribed(): boolean {
    return this.#subscribed;
  }

  leaseValid(now: number): boolean {
    return this.#subscribed && now < this.#leaseUntil;
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    const sub = this.#o.subscriber;
    sub.on('message', (channel: string, message: string) => this.#receive(channel, message));
    sub.on('ready', () => {
      void this.#subscribe();
    });
    sub.on('close', () => this.#down());
    sub.on('error', (err: unknown) => this.#o.onError?.(err));
    if (sub.status === 'ready') await this.#subscribe();
    this.#timer = setInterval(() => this.#beat(), this.#o.heartbeatMs);
    this.#timer.unref();
  }

  async #subscribe(): Promise<void> {
    clearTimeout(this.#retry);
    if (this.#closed) return;
    try {
      const c = this.#channels;
      await this.#o.subscriber.subscribe(c.changes, c.ack, c.beat);
      this.#retryMs = 100;
      this.#lastHeard = Date.now();
      if (!this.#subscribed) {
        this.#subscribed = true;
        this.#handlers?.onUp();
      }
      this.#beat();
    } catch (err) {
      this.#o.onError?.(err);
      // A failed SUBSCRIBE leaves the connection up but useless: try again, backing off.
      this.#retry = setTimeout(() => {
        void this.#subscribe();
      }, this.#retryMs);
      this.#retry.unref();
      this.#retryMs = Math.min(this.#retryMs * 2, 2000);
    }
  }

  #down(): void {
    this.#leaseUntil = 0;
    this.#loseCallers();
    if (!this.#subscribed) return;
    this.#subscribed = false;
    this.#handlers?.onDown();
  }

  /** Register the lease this beat may grant, then publish the beat to ourselves through Redis. */
  #beat(): void {
    const now = Date.now();
    if (this.#subscribed && now - this.#lastHeard > Math.max(3 * this.#o.heartbeatMs, this.#o.leaseMs)) {
      // Nothing heard for a whole lease: the subscription is half-open; reconnect it.
      this.#down();
      this.#o.subscriber.disconnect(true);
      return;
    }
    if (!this.#subscribed) return;
    const n = ++this.#beatSeq;
    this.#beats.set(n, now);
    for (const [k, sent] of this.#beats) if (now - sent > this.#o.leaseMs) this.#beats.delete(k);
    this.#register(this.replicaId, { n, s: now }, now);
  }

  /** Register `holder`'s lease from `now`, then publish `beat` on this replica's heartbeat channel (the BEAT script). */
  #register(holder: string, beat: Record<string, unknown>, now: number): void {
    const c = this.#channels;
    const payload = this.#o.signer.sign(c.beat, JSON.stringify(beat));
    this.#o.redis
      .eval(BEAT, 2, c.registry, c.beat, String(now + this.#o.leaseMs), holder, payload, String(now - 60_000))
      .catch((err: unknown) => this.#o.onError?.(err));
  }

  #receive(channel: string, message: string): void {
    try {
      if (channel === this.#channels.beat) this.#heard(message);
      else if (channel === this.#channels.ack) this.#confirm(message);
      else if (channel === this.#channels.changes) this.#change(message);
    } catch (err) {
      // Never let input from Redis escape into the event emitter (it would crash the process).
      this.#o.onError?.(err);
    }
  }

  /** Our own heartbeat came back: every change published before it has been applied. */
  #heard(message: string): void {
    const beat = parseObject(this.#o.signer.open(this.#channels.beat, message) ?? '');
    if (typeof beat?.c === 'string') {
      // A caller's beat: every change published before its lease was registered has gone to its stream.
      if (Number.isSafeInteger(beat.n)) this.#callers.get(beat.c)?.beat(beat.n as number);
      else this.#o.onReject?.('beat');
      return;
    }
    const sent = typeof beat?.n === 'number' ? this.#beats.get(beat.n) : undefined;
    if (beat === undefined || sent === undefined || beat.s !== sent) {
      this.#o.onReject?.('beat');
      return;
    }
    this.#beats.delete(beat.n as number);
    const now = Date.now();
    this.#lastHeard = now;
    if (this.#subscribed && now - sent < this.#o.leaseMs)
      this.#leaseUntil = Math.max(this.#leaseUntil, sent + this.#o.leaseMs);
  }

  #change(message: string): void {
    const msg = readChangeMessage(parseObject(this.#o.signer.open(this.#channels.changes, message) ?? ''));
    if (!msg) {
      this.#o.onReject?.('changes');
      this.#handlers?.onMissed();
      this.#loseCallers();
      return;
    }
    this.#handlers?.onMessage(msg);
    this.#ack(msg.origin, msg.ackId, this.replicaId);
    for (const sink of this.#callers.values()) sink.change(msg);
  }

  /** Confirm a change to its writer in the name of `holder` (this replica or a caller it holds). */
  #ack(origin: string, ackId: string, holder: string): void {
    const ackChannel = `${this.#o.prefix}ack:${origin}`;
    const ack = this.#o.signer.sign(ackChannel, JSON.stringify({ a: ackId, r: holder }));
    // A lost confirmation costs the writer a wait until the lease runs out, never a stale allow.
    this.#o.redis.publish(ackChannel, ack).catch(() => {});
  }

  /** What reaches this replica may have missed a change: no caller it holds may go on deciding. */
  #loseCallers(): void {
    const sinks = [...this.#callers.values()];
    this.#callers.clear();
    for (const sink of sinks) sink.lost();
  }

  attachCaller(id: string, sink: CallerSink): CallerLease {
    this.#callers.set(id, sink);
    const c = this.#channels;
    return {
      beat: (n) => {
        // Unsubscribed, an echo could overtake a change: none is sent, and the caller's lease runs out.
        if (!this.#subscribed || this.#callers.get(id) !== sink) return;
        this.#register(id, { c: id, n }, Date.now());
      },
      confirm: (origin, ackId) => {
        if (!REPLICA_ID.test(origin) || ackId.length > 64) return;
        // A change this replica published: the confirmation is counted here, without a trip through Redis.
        if (origin === this.replicaId) this.#confirmed(ackId, id);
        else this.#ack(origin, ackId, id);
      },
      detach: (release) => {
        if (this.#callers.get(id) === sink) this.#callers.delete(id);
        // Only a caller that gave up its lease leaves the registry: after a cut it may still be deciding.
        if (release) this.#o.redis.zrem(c.registry, id).catch(() => {});
      },
    };
  }

  #confirm(message: string): void {
    const ack = parseObject(this.#o.signer.open(this.#channels.ack, message) ?? '');
    if (!ack || typeof ack.a !== 'string' || typeof ack.r !== 'string') {
      this.#o.onReject?.('ack');
      return;
    }
    this.#confirmed(ack.a, ack.r);
  }

  /** `holder` confirmed the change `ackId` this replica is waiting for. */
  #confirmed(ackId: string, holder: string): void {
    const p = this.#pending.get(ackId);
    if (!p) return;
    p.acked.add(holder);
    p.wake();
  }

  async publish(changes: Change[]): Promise<PublishResult> {
    const ackId = randomUUID();
    const c = this.#channels;
    const payload = JSON.stringify({
      o: this.replicaId,
      a: ackId,
      t: Date.now(),
      c: changes.map((x) => [x.seq, x.keyId, x.version]),
    });
    const pending: Pending = { acked: new Set(), wake: () => {} };
    this.#pending.set(ackId, pending);
    const started = performance.now();
    try {
      const since = Date.now() - this.#o.skewMs;
      const [receivers, listed] = (await this.#o.redis.eval(
        PUBLISH_AND_LIST,
        2,
        c.changes,
        c.registry,
        this.#o.signer.sign(c.changes, payload),
        String(since),
        String(Date.now() - 60_000),
      )) as [number, string[]];
      // Any lease not confirmed was renewed by a heartbeat Redis ran before the publish returned.
      const deadline = performance.now() + this.#o.leaseMs + this.#o.skewMs;
      const holders = new Set(listed);
      const complete = () => [...holders].every((r) => pending.acked.has(r)) && pending.acked.size >= Number(receivers);
      while (!complete()) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          pending.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      for (const r of pending.acked) holders.add(r);
      const unconfirmed = [...holders].filter((r) => !pending.acked.has(r));
      return {
        replicas: holders.size,
        confirmed: pending.acked.size,
        outcome: complete() ? 'confirmed' : 'lease_expired',
        unconfirmed,
        waitedMs: Math.round(performance.now() - started),
      };
    } finally {
      this.#pending.delete(ackId);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    this.#leaseUntil = 0;
    this.#subscribed = false;
    this.#handlers = undefined;
    this.#loseCallers();
    // Leave the registry so writers do not wait for a replica that has stopped deciding.
    await this.#o.redis.zrem(this.#channels.registry, this.replicaId).catch(() => {});
    this.#o.subscriber.disconnect(false);
  }
}
