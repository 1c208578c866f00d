import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { LocalDecisions, UsageReportOut } from './local.js';

/** WatchEvent as proto-loader decodes it (defaults on: unset messages are null). */
interface WatchEventIn {
  terms: { lease_ms: number; beat_ms: number; floor_ms: number } | null;
  invalidation: { ack: string; keys: { key_id: string; version: number }[] } | null;
  beat: number;
  usage_counted: string;
}

export type WatchCall = grpc.ClientDuplexStream<
  { beat?: number; confirm?: string; usage?: UsageReportOut; release?: boolean },
  WatchEventIn
>;

export type OpenWatch = () => WatchCall;

/** How often uses decided from memory are reported (at most). */
const REPORT_MS = 1000;
/** Uses per report: a message stays well under the service's 16 KiB. */
const USES_PER_REPORT = 100;

/**
 * The client's Watch stream (the key service's design: callers-hold-leases): holds the lease by
 * beating, applies and confirms every change, reports the uses decided from memory (each report
 * kept until the service says it counted it, and sent again on the next stream), and opens the
 * stream again after a loss. A service without Watch (UNIMPLEMENTED) turns local decisions off.
 */
export class WatchLoop {
  #open: OpenWatch;
  #local: LocalDecisions;
  #call: WatchCall | undefined;
  #ready = false;
  #beatTimer: NodeJS.Timeout | undefined;
  #reportTimer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 100;
  #closed = false;
  #unsupported = false;
  /** Reports not yet counted by the service, by id. */
  #unacked = new Map<string, UsageReportOut>();
  #drained: (() => void) | undefined;

  constructor(open: OpenWatch, local: LocalDecisions) {
    this.#open = open;
    this.#local = local;
    this.#reportTimer = setInterval(() => this.#report(), REPORT_MS);
    this.#reportTimer.unref();
    this.#connect();
  }

  /** False once the service said it has no Watch method. */
  get supported(): boolean {
    return !this.#unsupported;
  }

  #connect(): void {
    if (this.#closed) return;
    const call = this.#open();
    this.#call = call;
    this.#ready = false;
    call.on('data', (ev: WatchEventIn) => this.#event(call, ev));
    call.on('error', (err: grpc.ServiceError) => this.#lost(call, err.code));
    call.on('end', () => this.#lost(call, grpc.status.UNAVAILABLE));
  }

  #event(call: WatchCall, ev: WatchEventIn): void {
    if (call !== this.#call) return;
    if (ev.invalidation) {
      this.#local.invalidate(ev.invalidation.keys);
      if (ev.invalidation.ack) call.write({ confirm: ev.invalidation.ack });
    } else if (ev.beat) {
      this.#local.echoed(ev.beat);
    } else if (ev.usage_counted) {
      this.#unacked.delete(ev.usage_counted);
      if (this.#unacked.size === 0) this.#drained?.();
    } else if (ev.terms) {
      const t = ev.terms;
      this.#local.opened({ leaseMs: t.lease_ms, beatMs: t.beat_ms, floorMs: t.floor_ms });
      this.#ready = true;
      this.#retryMs = 100;
      for (const report of this.#unacked.values()) call.write({ usage: report });
      const beat = () => call.write({ beat: this.#local.nextBeat() });
      clearInterval(this.#beatTimer);
      this.#beatTimer = setInterval(beat, Math.max(10, t.beat_ms));
      this.#beatTimer.unref();
      beat();
    }
  }

  #lost(call: WatchCall, code: grpc.status): void {
    if (call !== this.#call) return;
    this.#call = undefined;
    this.#ready = false;
    clearInterval(this.#beatTimer);
    this.#local.lost();
    if (code === grpc.status.UNIMPLEMENTED) {
      this.#unsupported = true;
      return;
    }
    if (this.#closed) return;
    this.#retry = setTimeout(() => this.#connect(), this.#retryMs);
    this.#retry.unref();
    this.#retryMs = Math.min(this.#retryMs * 2, 5000);
  }

  /** Report the uses decided from memory since the last report (kept until counted). */
  #report(): void {
    const uses = this.#local.takeUses();
    for (let i = 0; i < uses.length; i += USES_PER_REPORT) {
      const report = { id: randomBytes(12).toString('base64url'), uses: uses.slice(i, i + USES_PER_REPORT) };
      this.#unacked.set(report.id, report);
      if (this.#ready) this.#call?.write({ usage: report });
    }
  }

  /** Stop deciding, report the last uses (waiting up to `waitMs` for them to be counted), then end the stream. */
  async close(waitMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#reportTimer);
    clearTimeout(this.#retry);
    clearInterval(this.#beatTimer);
    const call = this.#call;
    // The lease is given up before the stream ends: the service then stops waiting for it.
    this.#local.lost();
    this.#report();
    if (call && this.#ready && this.#unacked.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        timer.unref();
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#call = undefined;
    if (call) {
      call.write({ release: true });
      call.end();
    }
  }
}
