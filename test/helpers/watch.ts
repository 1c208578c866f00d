import type * as grpc from '@grpc/grpc-js';
import { grpcClient } from './app.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A WatchEvent as proto-loader decodes it. */
export interface WatchEvent {
  terms: { lease_ms: number; beat_ms: number; floor_ms: number } | null;
  invalidation: { ack: string; keys: { key_id: string; version: number }[] } | null;
  beat: number;
  usage_counted: string;
}

type WatchClient = grpc.Client & { Watch(): grpc.ClientDuplexStream<Record<string, unknown>, WatchEvent> };

export interface RawWatch {
  call: grpc.ClientDuplexStream<Record<string, unknown>, WatchEvent>;
  /** Every event received so far, in order. */
  events: WatchEvent[];
  /** Resolves with the first event `match` accepts (already received or to come). */
  next(match: (e: WatchEvent) => boolean, timeoutMs?: number): Promise<WatchEvent>;
  /** The stream's end status. */
  ended: Promise<grpc.StatusObject>;
}

/** A raw Watch stream (no client library) to a replica's gRPC port; cancelled at teardown. */
export function openWatch(t: TestLike, port: number): RawWatch {
  // The tests' KeyService client (closed at teardown), asked for the other method.
  const call = (grpcClient(t, port).client as unknown as WatchClient).Watch();
  const events: WatchEvent[] = [];
  const waiters: { match: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }[] = [];
  call.on('data', (e: WatchEvent) => {
    events.push(e);
    for (const w of [...waiters])
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
  });
  const ended = new Promise<grpc.StatusObject>((resolve) => {
    call.on('status', resolve);
    // The status event follows; errors are the status here.
    call.on('error', () => {});
  });
  t.teardown(() => call.cancel());
  return {
    call,
    events,
    ended,
    next: (match, timeoutMs = 5000) => {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no such Watch event in time')), timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
  };
}
