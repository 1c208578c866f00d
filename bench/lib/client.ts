import { isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { PROTO_FILE, PROTO_ROOT, SERVICE_NAME } from '../../src/transport/grpc/server.js';

/**
 * A lean KeyService client for load generation. On 2 cores the client shares the machine with the
 * server, so every microsecond it spends is taken from what is measured: calls go straight to a
 * grpc-js Channel (no Client/interceptor layer, no per-call Error for the caller's stack), requests
 * are encoded once per distinct key, and only `allowed` and `reason` are decoded from an answer.
 * The messages come from the contract's proto (protobufjs, loaded once per process).
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

const PACKAGE = SERVICE_NAME.slice(0, SERVICE_NAME.lastIndexOf('.'));

/** The contract's proto, loaded once (imports resolved under proto/, as the server does). */
const root: protobuf.Root = (() => {
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(PROTO_ROOT, target));
  return r.loadSync(PROTO_FILE, { keepCase: true });
})();

const requestType = root.lookupType(`${PACKAGE}.AuthenticateRequest`);

/**
 * AuthenticateResponse read as its `allowed` and `reason` fields only (their numbers and types from
 * the proto): protobufjs skips the other fields unread, which keeps the per-call cost of a decode flat.
 */
const decisionType: protobuf.Type = (() => {
  const full = root.lookupType(`${PACKAGE}.AuthenticateResponse`);
  const view = new protobuf.Type('AuthenticateDecision');
  for (const name of ['allowed', 'reason']) {
    const field = full.fields[name];
    if (!field) throw new Error(`AuthenticateResponse has no field ${name}`);
    view.add(new protobuf.Field(name, field.id, field.type));
  }
  full.parent?.add(view); // beside the response, so `reason` resolves to the same DenyReason
  return view;
})();

/** DenyReason numbers to names, from the proto (so the client follows the contract). */
const REASONS: Readonly<Record<number, string>> = root.lookupEnum(`${PACKAGE}.DenyReason`).valuesById;

/** AuthenticateRequest as protobuf bytes (empty fields left out, as proto3 encoders do). */
export function encodeRequest(req: { key: string; ip: string; scope: string }): Buffer {
  const present = Object.fromEntries(Object.entries(req).filter(([, v]) => v !== ''));
  const bytes = requestType.encode(requestType.fromObject(present)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `allowed` and `reason` of an AuthenticateResponse; the other fields are skipped. */
export function decodeResponse(buf: Buffer): { allowed: boolean; reason: number } {
  const m = decisionType.decode(buf) as unknown as { allowed?: boolean; reason?: number };
  return { allowed: m.allowed === true, reason: m.reason ?? 0 };
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
      const call: RawCall = this.channel.createCall(
        AUTHENTICATE,
        deadlineMs === undefined ? Infinity : Date.now() + deadlineMs,
        undefined,
        null,
        undefined,
      );
      let message: Buffer | undefined;
      call.start(new grpc.Metadata(), {
        onReceiveMetadata() {},
        onReceiveMessage(m: Buffer) {
          message = m;
        },
        onReceiveStatus(status: grpc.StatusObject) {
          if (status.code !== grpc.status.OK) {
            resolve({ code: status.code, details: status.details });
            return;
          }
          if (!message) {
            resolve({ code: grpc.status.UNIMPLEMENTED, details: 'no message received' });
            return;
          }
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
  return REASONS[r.reason ?? 0] ?? `REASON_${r.reason ?? 0}`;
}
