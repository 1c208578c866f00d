import * as grpc from '@grpc/grpc-js';
import { loadProto, SERVICE_NAME } from '../../src/transport/grpc/server.js';

/**
 * A lean KeyService client for load generation. On 2 cores the client shares the machine with the
 * server, so every microsecond it spends is taken from what is measured: calls go straight to a
 * grpc-js Channel (no Client/interceptor layer, no per-call Error for the caller's stack), requests
 * are encoded once per distinct key, and only `allowed` and `reason` are decoded from an answer.
 * The wire traffic is the same as any grpc-js client's: HTTP/2, one unary call per request.
 */
export const AUTHENTICATE = `/${SERVICE_NAME}/Authenticate`;

export interface CallResult {
  code: grpc.status;
  details?: string | undefined;
  allowed?: boolean | undefined;
  /** DenyReason number (0 when allowed). */
  reason?: number | undefined;
}

type RawCall = ReturnType<grpc.Channel['createCall']>;

/** DenyReason numbers to names, from the proto (so the client follows the contract). */
const REASONS: Map<number, string> = (() => {
  const def = loadProto()['otesse.keys.v1.DenyReason'] as unknown as { type?: { value?: { name: string; number: number }[] } } | undefined;
  return new Map((def?.type?.value ?? []).map((v) => [v.number, v.name]));
})();

function writeVarint(out: number[], n: number): void {
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
}

/** AuthenticateRequest {key = 1, ip = 2, scope = 3} as protobuf bytes. */
export function encodeRequest(req: { key: string; ip: string; scope: string }): Buffer {
  const out: number[] = [];
  ([[1, req.key], [2, req.ip], [3, req.scope]] as const).forEach(([field, text]) => {
    if (text === '') return; // proto3: default values are not sent
    const bytes = Buffer.from(text, 'utf8');
    out.push((field << 3) | 2);
    writeVarint(out, bytes.length);
    for (const b of bytes) out.push(b);
  });
  return Buffer.from(out);
}

/** `allowed` (field 1) and `reason` (field 2) of an AuthenticateResponse; the other fields are skipped. */
export function decodeResponse(buf: Buffer): { allowed: boolean; reason: number } {
  let allowed = false;
  let reason = 0;
  let i = 0;
  const varint = () => {
    let n = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) {
      const v = varint();
      if (field === 1) allowed = v !== 0;
      else if (field === 2) reason = v;
    } else if (wire === 2) {
      const length = varint();
      i += length;
    } else if (wire === 5) {
      i += 4;
    } else if (wire === 1) {
      i += 8;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return { allowed, reason };
}

/** One connection (its own subchannel) to a KeyService. */
export class KeyClient {
  readonly channel: grpc.Channel;

  constructor(port: number, channelId: number) {
    // A local subchannel pool (and a distinct option value) so grpc-js does not share one
    // subchannel, and so one connection, between the channels of this process.
    this.channel = new grpc.Channel(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'otesse.bench.channel': channelId,
    });
  }

  /** Connect now and wait until READY. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = this.channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return;
      if (Date.now() >= deadline) throw new Error(`channel not ready (${grpc.connectivityState[state]})`);
      await new Promise<void>((resolve, reject) => {
        this.channel.watchConnectivityState(state, deadline, (err) => (err ? reject(err) : resolve()));
      });
    }
  }

  /** One unary Authenticate with a pre-encoded request; never rejects (errors are in `code`). */
  call(request: Buffer, deadlineMs?: number): Promise<CallResult> {
    return new Promise((resolve) => {
      const call: RawCall = this.channel.createCall(AUTHENTICATE, deadlineMs === undefined ? Infinity : Date.now() + deadlineMs, undefined, null, undefined);
      let message: Buffer | undefined;
      call.start(new grpc.Metadata(), {
        onReceiveMetadata() {},
        onReceiveMessage(m: Buffer) { message = m; },
        onReceiveStatus(status: grpc.StatusObject) {
          if (status.code !== grpc.status.OK) { resolve({ code: status.code, details: status.details }); return; }
          if (!message) { resolve({ code: grpc.status.UNIMPLEMENTED, details: 'no message received' }); return; }
          try {
            resolve({ code: grpc.status.OK, ...decodeResponse(message) });
          } catch (err) {
            resolve({ code: grpc.status.INTERNAL, details: `undecodable answer: ${String(err)}` });
          }
        },
      });
      call.startRead();
      call.sendMessageWithContext({}, request);
      call.halfClose();
    });
  }

  close(): void {
    this.channel.close();
  }
}

/** ALLOWED, the deny reason's name, or ERR_<status name>. */
export function outcomeOf(r: CallResult): string {
  if (r.code !== grpc.status.OK) return `ERR_${grpc.status[r.code] ?? r.code}`;
  if (r.allowed) return 'ALLOWED';
  return REASONS.get(r.reason ?? 0) ?? `REASON_${r.reason ?? 0}`;
}
