// The fault suite's harness: replicas with connections of their own (through proxies), background
// traffic, and write rounds that check every other replica right after each response.
import * as grpc from '@grpc/grpc-js';
import { node, type Node } from './cluster.js';
import { testEnv } from './app.js';
import { startReplica } from './replica.js';
import { percentile } from './harness/stats.js';

interface TestLike {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

export interface Tally {
  name: string;
  writes: number;
  staleAllows: number;
  calls: number;
  failed: number;
  /** Per write: how many replicas held a lease when it was published (`propagation.replicas`), and how long it waited. */
  rounds: { replicas: number; waited: number }[];
}

export const newTally = (name: string): Tally => ({ name, writes: 0, staleAllows: 0, calls: 0, failed: 0, rounds: [] });

/** How long each write waited for its change to hold everywhere, ms. */
export const waitsOf = (tally: Tally): number[] => tally.rounds.map((r) => r.waited);

/** Fast heartbeats and leases so a case runs in seconds; the poll slow, so that only the bus and leases are exercised. */
export const FAULT_ENV = {
  HEARTBEAT_MS: '100',
  LEASE_MS: '500',
  CLOCK_SKEW_MS: '100',
  CHANGE_POLL_MS: '30000',
  CACHE_TTL_SECONDS: '600',
};

/** Start one replica per entry of `each` (its own environment on top of the shared one); the first migrates. */
export async function startReplicas(t: TestLike, shared: Record<string, string>, each: Record<string, string>[]) {
  const env = await testEnv(t, { LOG_LEVEL: 'info', ...FAULT_ENV, ...shared });
  const first = node(t, await startReplica(t, { ...env, ...each[0], REPLICA_ID: 'r0' }));
  const rest = await Promise.all(
    each.slice(1).map((e, i) => startReplica(t, { ...env, ...e, REPLICA_ID: `r${i + 1}` })),
  );
  return { env, nodes: [first, ...rest.map((r) => node(t, r))] };
}

/** Authenticate active keys on `nodes` in a loop until stopped; counts calls and failures (non-OK or denied). */
export function traffic(nodes: Node[], keys: { secret: string }[], tally: Tally) {
  let running = true;
  const loop = async (n: Node) => {
    for (let i = 0; running; i++) {
      const r = await n.tryAuthenticate({ key: keys[i % keys.length]!.secret });
      tally.calls++;
      if (r.code !== grpc.status.OK || !r.res?.allowed) tally.failed++;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const done = Promise.all(nodes.map(loop));
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

export type WriteKind = 'revoke' | 'narrow';

/**
 * Warm `key` on every checker, change it on `writer` (revoke, or PATCH dropping bookings:write), then
 * ask every checker right after the response: an allow of the old decision is a stale allow.
 * Returns the response status (503 PROPAGATION_PENDING is checked once its stated time has passed).
 */
export async function writeAndCheck(
  writer: Node,
  checkers: Node[],
  key: { id: string; secret: string },
  kind: WriteKind,
  tally: Tally,
  opts: { warm?: boolean } = {},
): Promise<number> {
  const account = 'acct_1';
  const scope = kind === 'revoke' ? 'bookings:read' : 'bookings:write';
  if (opts.warm ?? true) await Promise.all(checkers.map((c) => c.tryAuthenticate({ key: key.secret, scope })));
  const started = performance.now();
  const res =
    kind === 'revoke'
      ? await writer.api('POST', `/v1/accounts/${account}/keys/${key.id}/revoke`, {})
      : await writer.api('PATCH', `/v1/accounts/${account}/keys/${key.id}`, { scopes: ['bookings:read'] });
  const waited = performance.now() - started;
  // 503 "committed" (Redis unreachable for the writer) is checked at once too: here Redis is out for
  // every replica, so their leases have lapsed and they decide from PostgreSQL.
  const committed = res.status === 200 || (res.status === 503 && /committed/.test(String(res.body?.detail)));
  if (!committed) return res.status;
  tally.writes++;
  tally.rounds.push({
    replicas: Number((res.body?.propagation as { replicas?: number } | undefined)?.replicas ?? -1),
    waited,
  });
  const answers = await Promise.all(checkers.map((c) => c.tryAuthenticate({ key: key.secret, scope })));
  for (const a of answers) if (a.code === grpc.status.OK && a.res?.allowed) tally.staleAllows++;
  return res.status;
}

const pct = (xs: number[], p: number) => (xs.length === 0 ? 0 : percentile(Float64Array.from(xs).sort(), p));

/** One row of the fault table, as a comment in the TAP output (`FAULT {json}`). */
export function report(t: TestLike, tally: Tally): void {
  const row = {
    case: tally.name,
    writes: tally.writes,
    calls: tally.calls,
    stale_allows: tally.staleAllows,
    failed_calls: tally.failed,
    wait_p50_ms: Math.round(pct(waitsOf(tally), 50)),
    wait_p99_ms: Math.round(pct(waitsOf(tally), 99)),
  };
  t.comment(`FAULT ${JSON.stringify(row)}`);
}
