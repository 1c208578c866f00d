import type * as grpc from '@grpc/grpc-js';
import { AppError } from '../../domain/errors.js';
import type { UsageReport, Watch, WatchEvent, WatchStream } from '../../service/caller-watch.js';
import { statusOf } from './status.js';

/** WatchRequest as proto-loader decodes it (defaults on: unset fields are 0, '' or null). */
export interface WatchRequestMessage {
  beat: number;
  confirm: string;
  usage: { id: string; uses: { key_id: string; ip: string; count: number; last_at_ms: number }[] } | null;
  release: boolean;
}

/** WatchEvent as the proto names it. */
type WatchEventMessage =
  | { terms: { lease_ms: number; beat_ms: number; floor_ms: number } }
  | { invalidation: { ack: string; keys: { key_id: string; version: number }[] } }
  | { beat: number }
  | { usage_counted: string };

/** What the Watch method needs from the service. */
export interface WatchOpener {
  open(stream: WatchStream): Promise<Watch>;
}

/** Events a caller has not read yet, in bytes, past which its stream ends (it reads too slowly to be told in time). */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;

function toMessage(e: WatchEvent): WatchEventMessage {
  if ('terms' in e) return { terms: { lease_ms: e.terms.leaseMs, beat_ms: e.terms.beatMs, floor_ms: e.terms.floorMs } };
  if ('invalidation' in e)
    return {
      invalidation: {
        ack: e.invalidation.ack,
        keys: e.invalidation.keys.map((k) => ({ key_id: k.keyId, version: k.version })),
      },
    };
  if ('beat' in e) return { beat: e.beat };
  return { usage_counted: e.usageCounted };
}

function toReport(u: NonNullable<WatchRequestMessage['usage']>): UsageReport {
  return {
    id: u.id,
    uses: u.uses.map((x) => ({ keyId: x.key_id, ip: x.ip, count: x.count, lastAtMs: x.last_at_ms })),
  };
}

/** The Watch method: a thin adapter of the caller's stream to the service (design: callers-hold-leases). */
export function watchHandler(
  opener: WatchOpener,
  log: { error(obj: object, msg: string): void },
): grpc.handleBidiStreamingCall<WatchRequestMessage, WatchEventMessage> {
  return (call) => {
    let watch: Watch | undefined;
    let done = false;
    const queued: WatchRequestMessage[] = [];
    let released = false;
    const fail = (err: unknown) => {
      if (done) return;
      done = true;
      watch?.end(false);
      call.emit(
        'error',
        statusOf(err, (e) => log.error({ err: e }, 'Watch failed')),
      );
    };
    const stream: WatchStream = {
      send: (event) => {
        if (done) return;
        if (call.writableLength > MAX_UNREAD_BYTES) {
          fail(new AppError('OVERLOADED', 'the caller does not read its stream'));
          return;
        }
        call.write(toMessage(event));
      },
      fail,
    };
    const handle = (msg: WatchRequestMessage) => {
      if (!watch || done) return;
      try {
        if (msg.beat) watch.beat(msg.beat);
        if (msg.confirm) watch.confirm(msg.confirm);
        if (msg.usage) watch.report(toReport(msg.usage));
        if (msg.release) released = true;
      } catch (err) {
        fail(err);
      }
    };
    call.on('data', (msg: WatchRequestMessage) => (watch ? handle(msg) : queued.push(msg)));
    // The caller ended its side. Only one that said it stopped deciding (release) gives up its lease:
    // an end seen here may also come from a connection that failed.
    call.on('end', () => {
      if (done) return;
      done = true;
      watch?.end(released);
      call.end();
    });
    // A cut, a reset or a cancel: the lease stays until it runs out (the caller may not know yet).
    call.on('cancelled', () => {
      done = true;
      watch?.end(false);
    });
    call.on('error', () => {
      done = true;
      watch?.end(false);
    });
    opener.open(stream).then(
      (opened) => {
        watch = opened;
        if (done) opened.end(false);
        else for (const msg of queued.splice(0)) handle(msg);
      },
      (err: unknown) => fail(err),
    );
  };
}
