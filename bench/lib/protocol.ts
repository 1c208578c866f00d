/** Messages between the bench orchestrator (run.ts) and the load generator (load.ts), over the fork IPC channel. */

/** What a call sends: a key drawn from one of the pools. */
export type Kind = 'hit' | 'malformed' | 'unknown' | 'cold';
export const KINDS: readonly Kind[] = ['hit', 'malformed', 'unknown', 'cold'];

/** Keys to draw from. `cold` keys are each used once (a distinct never-cached valid key per call). */
export interface Pools {
  hit: string[];
  malformed: string[];
  unknown: string[];
  cold: string[];
}

/** Share of calls per kind, in parts of 100, interleaved deterministically (e.g. {hit: 90, malformed: 5, unknown: 4, cold: 1}). */
export type Pattern = Partial<Record<Kind, number>>;

export type MainLoad =
  /** `concurrency` calls always in flight; `warmupMs` unrecorded, then `durationMs` recorded. */
  | { mode: 'closed'; concurrency: number; warmupMs: number; durationMs: number; pattern: Pattern }
  /** A fixed number of calls, `concurrency` in flight, all recorded. */
  | { mode: 'count'; concurrency: number; count: number; pattern: Pattern }
  /** Open loop: `count` calls sent at a fixed rate whatever the answers, all recorded. */
  | { mode: 'paced'; ratePerSec: number; count: number; pattern: Pattern };

export interface RunSpec {
  name: string;
  port: number;
  /** gRPC channels (connections) the main load is spread over. */
  channels: number;
  ip: string;
  scope: string;
  pools: Pools;
  /** What every answer must be: by kind (the service: allowed, KEY_MALFORMED, KEY_UNKNOWN), or always allowed (the no-op server). */
  expect: 'by-kind' | 'allowed';
  main: MainLoad;
  /** A second, open-loop stream on its own channel, running for the whole case; recorded over the main's measured window. */
  background?: { ratePerSec: number; pattern: Pattern } | undefined;
  /** Processes whose CPU use is sampled over the measured window (name to pid, or to several pids summed). */
  watch: Record<string, number | number[]>;
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface StreamResult {
  /** Calls recorded (completed in the measured window). */
  calls: number;
  seconds: number;
  /** Calls per second. */
  throughput: number;
  latencyMs: LatencySummary;
  byKind: Partial<Record<Kind, { calls: number; latencyMs: LatencySummary }>>;
  /** ALLOWED, a DenyReason, or ERR_<grpc status>. */
  outcomes: Record<string, number>;
  /** Answers other than expected (see RunSpec.expect). */
  unexpected: number;
  unexpectedSamples: string[];
  /** Cold calls that found the pool empty (sent a hit key instead). */
  coldExhausted: number;
  /** Paced streams: how late the sender was at worst (ms). */
  maxSendLagMs?: number | undefined;
  /** Background stream: calls sent per second in the window (throughput counts answers received in it). */
  sentPerSec?: number | undefined;
}

export interface CpuShare {
  /** Percent of one core over the measured window. */
  processes: Record<string, number>;
  /** Everything else on the machine (PostgreSQL, Redis, the kernel, other work), percent of one core. */
  other: number;
  /** Percent of all cores busy, machine-wide (everything: our processes, PostgreSQL, Redis, anything else). */
  machine: number;
  cores: number;
}

export interface RunResult {
  name: string;
  main: StreamResult;
  background?: StreamResult | undefined;
  cpu: CpuShare;
  /** The measured window in wall-clock ms (performance.timeOrigin + now), to line it up with a CPU profile. */
  windowEpochMs: { start: number; end: number };
  /** Added by the orchestrator: shared-backend work over the measured window. */
  backend?: BackendUse | undefined;
}

/** Redis commands and PostgreSQL transactions over a measured window, per recorded call (approximate: counters of the whole server). */
export interface BackendUse {
  redisPerCall: number;
  /** Redis commands by name, per call (those above 0.001). */
  redisByCommand: Record<string, number>;
  /** PostgreSQL transactions of the bench database per call (pg_stat_database; flushed by backends about once a second). */
  pgXactsPerCall: number;
}

export interface RevokeSpec {
  /** Replica 1 gets the revoke; the others are polled. */
  replicas: { name: string; grpcPort: number; httpPort: number }[];
  adminToken: string;
  accountId: string;
  keys: { id: string; key: string }[];
  ip: string;
  scope: string;
  /** Give up on one key after this long. */
  timeoutMs: number;
}

export interface RevokeKeyResult {
  keyId: string;
  status: number;
  revokeMs: number;
  propagation: { replicas: number; confirmed: number; published?: boolean } | null;
  /** Per polled replica: ms from sending the revoke to receiving the first denied answer (null: none before the timeout). */
  denyMs: Record<string, number | null>;
  /** The same, to when that first denied call was sent (a lower bound: the replica decided between the two). */
  denySentMs: Record<string, number | null>;
  /** Per polled replica: whether that first deny came back before the revoke response did. */
  deniedBeforeResponse: Record<string, boolean>;
  /** Calls started after the revoke response was received that were allowed (must be 0). */
  staleAllows: number;
  /** Calls started after the revoke response (pollers and one check call per replica). */
  callsAfterResponse: number;
  /** Reasons of the first call sent after the response, per replica (the check calls). */
  firstAfter: Record<string, string>;
  pollCalls: number;
}

export interface RevokeResult {
  keys: RevokeKeyResult[];
}

export type Command =
  | { id: number; cmd: 'run'; spec: RunSpec }
  | { id: number; cmd: 'revoke'; spec: RevokeSpec }
  | { id: number; cmd: 'exit' };

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** Sent by the load generator when the measured window of a run starts and ends (for counters sampled by the orchestrator). */
export interface LoadEvent {
  event: 'window';
  phase: 'start' | 'end';
}
