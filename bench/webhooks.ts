/**
 * `npm run bench:webhooks`: how soon a change's webhook reaches the receiver, and how many a fleet sends per second.
 *
 * 3 replicas (`WEBHOOK_ALLOW_PRIVATE=1`, so they may send to 127.0.0.1) on a database of the run's own
 * and the shared Redis under a prefix of their own (deleted at the end); a receiver in this process
 * (test/helpers/webhook-receiver.ts) verifies every request with the `standardwebhooks` package.
 *
 * 1. Latency: an endpoint for `key.revoked`; `--revokes` keys (200) seeded, then revoked one at a time,
 *    round-robin over the replicas, `--rate` a second (10); for each, the time from the revoke's HTTP
 *    response to the receipt of its event (matched by data.key.id). Target: p99 <= 2 s, every event
 *    received once, every signature verified.
 * 2. Throughput: another account with `--burst` keys (3000) and an endpoint of its own; one revoke-all
 *    writes that many events at once; deliveries a second at the receiver, and how many attempts each
 *    replica made (webhook_attempts.replica).
 *
 * Options: --revokes, --rate, --burst, --replicas (3), --poll-ms (WEBHOOK_POLL_MS of the replicas, 1000).
 * BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_PG_URL as the other fleet benches.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startReceiver, type Received } from '../test/helpers/webhook-receiver.js';
import { percentiles } from '../test/helpers/harness/stats.js';
import {
  createDatabase,
  fleetEnv,
  log as logAs,
  seedKeys,
  sleep,
  startFleet,
  Teardown,
  writeResult,
  type Replica,
} from './lib/fleet.js';
import { stopAll } from './lib/procs.js';
import { clearPrefix } from './lib/redis-prefix.js';
import { CpuSampler } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    revokes: { type: 'string', default: '200' },
    rate: { type: 'string', default: '10' },
    burst: { type: 'string', default: '3000' },
    replicas: { type: 'string', default: '3' },
    'poll-ms': { type: 'string', default: '1000' },
  },
});
const REVOKES = Number(args.revokes);
const RATE = Number(args.rate);
const BURST = Number(args.burst);
const REPLICAS = Number(args.replicas);
const POLL_MS = args['poll-ms'];
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const TARGET_P99_MS = 2000;
const log = (msg: string) => logAs('webhooks', msg);
const load = () => loadavg().map((n) => Math.round(n * 100) / 100);

/** An event as the receiver got it: when (performance.now()), which event and which key. */
interface Arrival {
  at: number;
  eventId: string;
  type: string;
  keyId: string | undefined;
}

/** Every verified arrival, grouped by key id; unverified requests counted apart. */
class Arrivals {
  readonly byKey = new Map<string, Arrival[]>();
  readonly eventIds = new Map<string, number>();
  unverified = 0;
  #waiters: (() => void)[] = [];

  record(r: Received): void {
    const at = performance.now();
    if (!r.verified || !r.event) {
      this.unverified++;
      return;
    }
    const keyId = (r.event.data.key as { id?: string } | undefined)?.id;
    const a: Arrival = { at, eventId: r.id, type: r.event.type, keyId };
    this.eventIds.set(r.id, (this.eventIds.get(r.id) ?? 0) + 1);
    if (keyId) this.byKey.set(keyId, [...(this.byKey.get(keyId) ?? []), a]);
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Deliveries of the same event beyond its first (by webhook-id), among `keys`. */
  duplicates(keys: readonly string[]): number {
    let n = 0;
    for (const k of keys) n += Math.max(0, (this.byKey.get(k)?.length ?? 0) - 1);
    return n;
  }

  /** Wait until every one of `keys` has arrived, or `ms` have passed; resolves how many are missing. */
  async until(keys: readonly string[], ms: number): Promise<number> {
    const deadline = performance.now() + ms;
    const missing = () => keys.reduce((n, k) => n + (this.byKey.has(k) ? 0 : 1), 0);
    for (let m = missing(); m > 0; m = missing()) {
      const left = deadline - performance.now();
      if (left <= 0) return m;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return 0;
  }
}

/** Create an endpoint for `events` on `account` pointing at `url`; resolves its id and signing secret. */
async function endpoint(r: Replica, account: string, url: string, events: string[]) {
  const res = await r.api('POST', `/v1/accounts/${account}/webhook-endpoints`, { url, events });
  const { id, secret } = (res.body ?? {}) as { id?: string; secret?: string };
  if (res.status !== 201 || !id || !secret)
    throw new Error(`creating the webhook endpoint: HTTP ${res.status} ${res.body?.detail ?? ''}`);
  return { id, secret };
}

/** Attempts made for `endpointId`'s deliveries: per replica, per outcome, and the key each was about. */
async function attempts(databaseUrl: string, endpointId: string) {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{
      replica: string;
      status_code: number | null;
      error: string | null;
      key_id: string;
    }>(
      `SELECT a.replica, a.status_code, a.error, ev.body::json #>> '{data,key,id}' AS key_id
       FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id JOIN webhook_events ev ON ev.id = d.event_id
       WHERE d.endpoint_id = $1`,
      [endpointId],
    );
    const byReplica: Record<string, number> = {};
    const outcomes: Record<string, number> = {};
    for (const r of rows) {
      byReplica[r.replica] = (byReplica[r.replica] ?? 0) + 1;
      const o = r.status_code !== null ? String(r.status_code) : (r.error ?? 'error');
      outcomes[o] = (outcomes[o] ?? 0) + 1;
    }
    return { rows, byReplica, outcomes };
  } finally {
    await c.end();
  }
}

/** Phase 1: revokes one at a time, round-robin, paced; response-to-receipt latency of each event. */
async function latencyPhase(db: string, replicas: Replica[], url: string, arrivals: Arrivals, secrets: string[]) {
  const account = 'acct_webhooks_latency';
  const ep = await endpoint(replicas[0]!, account, url, ['key.revoked']);
  secrets.push(ep.secret);
  const keys = await seedKeys(db, account, REVOKES);
  log(`latency: ${REVOKES} revokes at ${RATE}/s round-robin over ${replicas.length} replicas`);
  const sent: { keyId: string; replica: string; sentAt: number; respondedAt: number; status: number }[] = [];
  const loadBefore = load();
  const started = performance.now();
  for (const [i, k] of keys.entries()) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const r = replicas[i % replicas.length]!;
    const sentAt = performance.now();
    const res = await r.api('POST', `/v1/accounts/${account}/keys/${k.id}/revoke`, { reason: 'bench' });
    sent.push({ keyId: k.id, replica: r.id, sentAt, respondedAt: sentAt + res.ms, status: res.status });
  }
  const ids = keys.map((k) => k.id);
  const missing = await arrivals.until(ids, 30_000);
  await sleep(2000); // a repeat sent at once (two replicas with the same delivery) would arrive within this
  const fromResponse: number[] = [];
  const fromRequest: number[] = [];
  let beforeResponse = 0;
  for (const s of sent) {
    const first = arrivals.byKey.get(s.keyId)?.[0];
    if (!first) continue;
    fromResponse.push(first.at - s.respondedAt);
    fromRequest.push(first.at - s.sentAt);
    if (first.at < s.respondedAt) beforeResponse++;
  }
  const att = await attempts(db, ep.id);
  const committer = new Map(sent.map((s) => [s.keyId, s.replica]));
  const byCommitter = att.rows.filter((r) => committer.get(r.key_id) === r.replica).length;
  return {
    revokes: REVOKES,
    ratePerSec: RATE,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    loadavgBefore: loadBefore,
    statuses: sent.reduce<Record<string, number>>((a, s) => ({ ...a, [s.status]: (a[s.status] ?? 0) + 1 }), {}),
    revokeResponseMs: percentiles(
      sent.map((s) => s.respondedAt - s.sentAt),
      1,
    ),
    received: fromResponse.length,
    missing,
    duplicates: arrivals.duplicates(ids),
    receivedBeforeResponse: beforeResponse,
    responseToReceiptMs: percentiles(fromResponse, 1),
    requestToReceiptMs: percentiles(fromRequest, 1),
    attemptsByReplica: att.byReplica,
    attemptOutcomes: att.outcomes,
    sentByTheCommittingReplica: byCommitter,
  };
}

/** Phase 2: one revoke-all of BURST keys; deliveries a second at the receiver and each replica's share. */
async function burstPhase(db: string, replicas: Replica[], url: string, arrivals: Arrivals, secrets: string[]) {
  const account = 'acct_webhooks_burst';
  const ep = await endpoint(replicas[0]!, account, url, ['key.revoked']);
  secrets.push(ep.secret);
  const keys = await seedKeys(db, account, BURST);
  const ids = keys.map((k) => k.id);
  log(`throughput: revoke-all of ${BURST} keys on ${replicas[0]!.id}`);
  const loadBefore = load();
  const cpu = new CpuSampler({
    ...Object.fromEntries(replicas.map((r) => [r.id, r.pid])),
    'bench (receiver)': process.pid,
  });
  cpu.start();
  const sentAt = performance.now();
  const res = await replicas[0]!.api('POST', `/v1/accounts/${account}/keys/revoke-all`, { reason: 'bench' });
  if (res.status !== 200 || res.body?.revoked !== BURST)
    throw new Error(`revoke-all: HTTP ${res.status}, revoked ${String(res.body?.revoked)} of ${BURST}`);
  const missing = await arrivals.until(ids, 10 * 60_000);
  const cpuUse = cpu.stop();
  await sleep(2000);
  const times = ids
    .flatMap(
      (k) =>
        arrivals.byKey
          .get(k)
          ?.slice(0, 1)
          .map((a) => a.at) ?? [],
    )
    .sort((a, b) => a - b);
  const first = times[0] ?? Number.NaN;
  const last = times.at(-1) ?? Number.NaN;
  const att = await attempts(db, ep.id);
  const r1 = (n: number) => Math.round(n * 10) / 10;
  return {
    events: BURST,
    loadavgBefore: loadBefore,
    revokeAllResponseMs: Math.round(res.ms),
    received: times.length,
    missing,
    duplicates: arrivals.duplicates(ids),
    firstReceiptAfterRequestMs: Math.round(first - sentAt),
    firstToLastMs: Math.round(last - first),
    requestToLastMs: Math.round(last - sentAt),
    /** Deliveries a second from the first receipt to the last. */
    perSecond: r1(((times.length - 1) * 1000) / (last - first)),
    /** Deliveries a second from the revoke-all request to the last receipt (the write and the first claim included). */
    perSecondEndToEnd: r1((times.length * 1000) / (last - sentAt)),
    attemptsByReplica: att.byReplica,
    attemptOutcomes: att.outcomes,
    cpuPercentOfACore: cpuUse.processes,
    /**
     * Busy share of the whole machine (all cores), and what the processes above do not account for, % of a core:
     * PostgreSQL (its backends come and go with the replicas' pools, so they are not sampled one by one), Redis, the kernel, anything else.
     */
    machineCpuPercent: cpuUse.machine,
    otherCpuPercentOfACore: cpuUse.other,
  };
}

async function main(td: Teardown): Promise<number> {
  // Registered first, so it runs last: any child left running (one that failed to start, say) is stopped.
  td.teardown(() => stopAll(5000));
  const db = await createDatabase(td, 'webhooks');
  const env = fleetEnv(db, REDIS_URL, { WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_POLL_MS: POLL_MS });
  const prefix = env.REDIS_PREFIX!;
  td.teardown(async () => log(`deleted ${await clearPrefix(REDIS_URL, prefix)} Redis keys under ${prefix}`));
  const receiver = await startReceiver(td, []);
  const arrivals = new Arrivals();
  receiver.state.answer = (r) => {
    arrivals.record(r);
    return 204;
  };
  const replicas = await startFleet(td, REPLICAS, env);
  log(`${REPLICAS} replicas up (poll ${POLL_MS} ms); load average ${load().join(' ')}`);
  const latency = await latencyPhase(db, replicas, receiver.url, arrivals, receiver.state.secrets);
  const burst = await burstPhase(db, replicas, receiver.url, arrivals, receiver.state.secrets);
  const lat = latency.responseToReceiptMs;
  const repeated = [...arrivals.eventIds.values()].reduce((a, n) => a + n - 1, 0);
  const result = {
    kind: 'webhooks',
    at: new Date().toISOString(),
    replicas: REPLICAS,
    pollMs: Number(POLL_MS),
    loadavgAtEnd: load(),
    unverified: arrivals.unverified,
    /** Receipts of an event (by webhook-id) beyond its first, both phases. */
    repeatedWebhookIds: repeated,
    latency,
    burst,
    targets: {
      p99Within2s: lat.p99 <= TARGET_P99_MS,
      allRevokes200: latency.statuses['200'] === REVOKES,
      everyEventReceived: latency.missing === 0 && burst.missing === 0,
      noDuplicates: latency.duplicates === 0 && burst.duplicates === 0 && repeated === 0,
      everySignatureVerified: arrivals.unverified === 0,
    },
  };
  const file = writeResult('webhooks', result);
  const byReplica = (m: Record<string, number>) =>
    Object.entries(m)
      .sort()
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  console.log(
    `webhooks latency: ${latency.received}/${REVOKES} key.revoked events, revoke response -> receipt ms ` +
      `p50 ${lat.p50} p99 ${lat.p99} max ${lat.max} (request -> receipt p50 ${latency.requestToReceiptMs.p50} p99 ${latency.requestToReceiptMs.p99}); ` +
      `${latency.receivedBeforeResponse} before the response; missing ${latency.missing}, duplicates ${latency.duplicates}; ` +
      `attempts ${byReplica(latency.attemptsByReplica)}, ${latency.sentByTheCommittingReplica} by the committing replica; load ${latency.loadavgBefore.join(' ')}`,
  );
  console.log(
    `webhooks throughput: ${burst.received}/${BURST} events of one revoke-all in ${burst.firstToLastMs} ms after the first: ` +
      `${burst.perSecond}/s (${burst.perSecondEndToEnd}/s from the request); attempts ${byReplica(burst.attemptsByReplica)}; ` +
      `missing ${burst.missing}, duplicates ${burst.duplicates}; CPU % of a core ${JSON.stringify({ ...burst.cpuPercentOfACore, 'PostgreSQL and the rest': burst.otherCpuPercentOfACore })}; load ${burst.loadavgBefore.join(' ')}`,
  );
  console.log(`targets: ${JSON.stringify(result.targets)}`);
  console.log(`written ${file}`);
  return Object.values(result.targets).every(Boolean) ? 0 : 1;
}

// Clean-up once, whatever ends the run: the end of main, an error, ^C or SIGTERM, an error thrown outside
// main's chain, or the watchdog. A second signal while it runs is ignored (kill -9 remains).
const td = new Teardown();
let cleaning: Promise<void> | undefined;
const finish = (code: number, why?: string) => {
  if (why) log(`${why}: stopping the replicas and dropping the database`);
  cleaning ??= td.run();
  void cleaning.finally(() => process.exit(code));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => finish(130, signal));
process.on('uncaughtException', (err) => {
  console.error(err);
  finish(1, 'uncaught exception');
});
process.on('unhandledRejection', (err) => {
  console.error(err);
  finish(1, 'unhandled rejection');
});
setTimeout(() => finish(3, 'watchdog: over 20 min'), 20 * 60_000).unref();

main(td).then(
  (code) => finish(code),
  (err: unknown) => {
    console.error(err);
    finish(1);
  },
);
