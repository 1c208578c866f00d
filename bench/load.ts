/**
 * The load generator: a separate process (forked by bench/run.ts) that drives Authenticate over
 * several gRPC channels and answers each command with its measurements as JSON over IPC.
 *
 * Commands (see lib/protocol.ts): `run` (one case: closed loop, fixed count or fixed rate, with an
 * optional open-loop background stream), `revoke` (the revoke-to-deny experiment on replicas),
 * `exit`. Everything is bounded: closed loops by time, the rest by count and per-call deadlines.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeRequest, KeyClient, outcomeOf } from './lib/client.js';
import {
  KINDS,
  type Command,
  type Kind,
  type LoadEvent,
  type MainLoad,
  type Pattern,
  type Pools,
  type Reply,
  type RevokeKeyResult,
  type RevokeResult,
  type RevokeSpec,
  type RunResult,
  type RunSpec,
  type StreamResult,
} from './lib/protocol.js';
import { CpuSampler, summarize } from './lib/stats.js';

/** What each kind of key must get from the service. */
const EXPECTED: Record<Kind, string> = {
  hit: 'ALLOWED',
  cold: 'ALLOWED',
  malformed: 'KEY_MALFORMED',
  unknown: 'KEY_UNKNOWN',
};
/** Deadline for the slow or low-rate calls (cold verifications, revoke polling). */
const SLOW_DEADLINE_MS = 15_000;

/** Spread a pattern over its total evenly (largest remainder first): {hit: 90, cold: 1, ...} -> 100 slots. */
export function schedule(pattern: Pattern): Kind[] {
  const weights = KINDS.map((k) => [k, Math.max(0, pattern[k] ?? 0)] as const).filter(([, w]) => w > 0);
  const total = weights.reduce((s, [, w]) => s + w, 0);
  if (total === 0) throw new Error('empty pattern');
  const given = new Map<Kind, number>();
  const out: Kind[] = [];
  for (let slot = 0; slot < total; slot++) {
    let best: Kind | undefined;
    let bestDue = Number.NEGATIVE_INFINITY;
    for (const [k, w] of weights) {
      const due = (w * (slot + 1)) / total - (given.get(k) ?? 0);
      if (due > bestDue) {
        bestDue = due;
        best = k;
      }
    }
    const k = best ?? 'hit';
    given.set(k, (given.get(k) ?? 0) + 1);
    out.push(k);
  }
  return out;
}

/** Draws the next key: kinds in the pattern's order, keys round-robin, cold keys each once. */
class Picker {
  #pools: Pools;
  #slots: Kind[];
  #n = 0;
  #next: Record<Kind, number> = { hit: 0, malformed: 0, unknown: 0, cold: 0 };
  #cold: { next: number };
  #encode: (key: string) => Buffer;
  #encoded = new Map<string, Buffer>();
  coldExhausted = 0;

  constructor(pools: Pools, pattern: Pattern, cold: { next: number }, request: { ip: string; scope: string }) {
    this.#pools = pools;
    this.#slots = schedule(pattern);
    this.#cold = cold;
    this.#encode = (key) => encodeRequest({ key, ip: request.ip, scope: request.scope });
  }

  /** The next call's kind and its request, encoded once per distinct key (cold keys are used once: not kept). */
  next(): { kind: Kind; req: Buffer } {
    let kind = this.#slots[this.#n++ % this.#slots.length] ?? 'hit';
    if (kind === 'cold') {
      const key = this.#pools.cold[this.#cold.next];
      if (key !== undefined) {
        this.#cold.next++;
        return { kind, req: this.#encode(key) };
      }
      this.coldExhausted++;
      kind = 'hit';
    }
    const pool = this.#pools[kind];
    if (pool.length === 0) throw new Error(`no ${kind} keys given`);
    const key = pool[this.#next[kind]++ % pool.length] ?? '';
    let req = this.#encoded.get(key);
    if (!req) {
      req = this.#encode(key);
      this.#encoded.set(key, req);
    }
    return { kind, req };
  }
}

/** Latencies and outcomes of one stream. */
class Recorder {
  #expect: RunSpec['expect'];
  all: number[] = [];
  byKind = new Map<Kind, number[]>();
  outcomes: Record<string, number> = {};
  unexpected = 0;
  unexpectedSamples: string[] = [];
  maxSendLagMs: number | undefined;
  /** Open-loop streams: calls sent in the window (answers may come after it). */
  sent: number | undefined;

  constructor(expect: RunSpec['expect']) {
    this.#expect = expect;
  }

  add(kind: Kind, ms: number, outcome: string): void {
    this.all.push(ms);
    let list = this.byKind.get(kind);
    if (!list) {
      list = [];
      this.byKind.set(kind, list);
    }
    list.push(ms);
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
    if (outcome !== (this.#expect === 'allowed' ? 'ALLOWED' : EXPECTED[kind])) {
      this.unexpected++;
      if (this.unexpectedSamples.length < 5) this.unexpectedSamples.push(`${kind}: ${outcome}`);
    }
  }

  result(seconds: number, coldExhausted: number): StreamResult {
    const byKind: StreamResult['byKind'] = {};
    for (const [k, list] of this.byKind) byKind[k] = { calls: list.length, latencyMs: summarize(list) };
    return {
      calls: this.all.length,
      seconds: Math.round(seconds * 1000) / 1000,
      throughput: seconds > 0 ? Math.round((this.all.length / seconds) * 10) / 10 : Number.NaN,
      latencyMs: summarize(this.all),
      byKind,
      outcomes: this.outcomes,
      unexpected: this.unexpected,
      unexpectedSamples: this.unexpectedSamples,
      coldExhausted,
      maxSendLagMs: this.maxSendLagMs,
      sentPerSec: this.sent === undefined || seconds <= 0 ? undefined : Math.round((this.sent / seconds) * 10) / 10,
    };
  }
}

interface Window {
  start: number;
  end: number;
}
const inWindow = (w: Window, t: number) => t >= w.start && t <= w.end;

/** `concurrency` workers, each with one call in flight, until `end`. */
async function closedLoop(
  clients: KeyClient[],
  picker: Picker,
  concurrency: number,
  until: number,
  record: (kind: Kind, start: number, end: number, outcome: string) => void,
): Promise<void> {
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      const client = clients[i % clients.length] as KeyClient;
      while (performance.now() < until) {
        const { kind, req } = picker.next();
        const s = performance.now();
        const r = await client.call(req);
        record(kind, s, performance.now(), outcomeOf(r));
      }
    }),
  );
}

/** A fixed number of calls with `concurrency` in flight. */
async function countLoop(
  clients: KeyClient[],
  picker: Picker,
  concurrency: number,
  count: number,
  record: (kind: Kind, start: number, end: number, outcome: string) => void,
): Promise<void> {
  let sent = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async (_, i) => {
      const client = clients[i % clients.length] as KeyClient;
      while (sent < count) {
        sent++;
        const { kind, req } = picker.next();
        const s = performance.now();
        const r = await client.call(req, SLOW_DEADLINE_MS);
        record(kind, s, performance.now(), outcomeOf(r));
      }
    }),
  );
}

/**
 * Open loop: call i is sent at start + i/rate whatever the earlier ones do (no coordinated omission),
 * until `count` calls or the time `until`. Resolves when every call sent has answered.
 */
async function pacedLoop(
  client: KeyClient,
  picker: Picker,
  ratePerSec: number,
  count: number,
  until: number,
  record: (kind: Kind, start: number, end: number, outcome: string) => void,
  stop: () => boolean = () => false,
  onSend: (at: number) => void = () => {},
): Promise<number> {
  const interval = 1000 / ratePerSec;
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  let i = 0;
  let maxLag = 0;
  const due = () => t0 + i * interval;
  while (i < count && due() < until && !stop()) {
    const wait = due() - performance.now();
    if (wait > 0) await sleep(wait);
    if (stop()) break;
    const now = performance.now();
    while (i < count && due() <= now && due() < until) {
      maxLag = Math.max(maxLag, now - due());
      i++;
      const { kind, req } = picker.next();
      const s = performance.now();
      onSend(s);
      pending.push(client.call(req, SLOW_DEADLINE_MS).then((r) => record(kind, s, performance.now(), outcomeOf(r))));
    }
  }
  await Promise.all(pending);
  return maxLag;
}

/** Tell the orchestrator the measured window starts or ends (it samples Redis and PostgreSQL counters). */
function windowEvent(phase: LoadEvent['phase']): void {
  process.send?.({ event: 'window', phase } satisfies LoadEvent);
}

async function openClients(port: number, ids: number[]): Promise<KeyClient[]> {
  const clients = ids.map((id) => new KeyClient(port, id));
  await Promise.all(clients.map((c) => c.ready()));
  return clients;
}

async function run(spec: RunSpec): Promise<RunResult> {
  const cold = { next: 0 };
  const picker = new Picker(spec.pools, spec.main.pattern, cold, spec);
  const clients = await openClients(
    spec.port,
    Array.from({ length: spec.channels }, (_, i) => i),
  );
  const bgPicker = spec.background ? new Picker(spec.pools, spec.background.pattern, cold, spec) : undefined;
  const [bgClient] = spec.background ? await openClients(spec.port, [spec.channels]) : [];
  const main = new Recorder(spec.expect);
  const bg = new Recorder(spec.expect);
  if (spec.background) bg.sent = 0;
  const sampler = new CpuSampler({ ...spec.watch, load: process.pid });
  const load: MainLoad = spec.main;
  const t0 = performance.now();
  try {
    let window: Window;
    let mainDone: Promise<void>;
    if (load.mode === 'closed') {
      window = { start: t0 + load.warmupMs, end: t0 + load.warmupMs + load.durationMs };
      const w = window;
      const startTimer = setTimeout(() => {
        sampler.start();
        windowEvent('start');
      }, load.warmupMs);
      mainDone = closedLoop(clients, picker, load.concurrency, w.end, (kind, _s, e, outcome) => {
        if (inWindow(w, e)) main.add(kind, e - _s, outcome);
      }).finally(() => clearTimeout(startTimer));
    } else {
      window = { start: t0, end: Number.POSITIVE_INFINITY };
      sampler.start();
      windowEvent('start');
      const rec = (kind: Kind, s: number, e: number, outcome: string) => main.add(kind, e - s, outcome);
      mainDone =
        load.mode === 'count'
          ? countLoop(clients, picker, load.concurrency, load.count, rec)
          : pacedLoop(clients[0] as KeyClient, picker, load.ratePerSec, load.count, Number.POSITIVE_INFINITY, rec).then(
              (lag) => {
                main.maxSendLagMs = Math.round(lag * 100) / 100;
              },
            );
    }
    // The background stream runs until the main load is over, recorded over the same window.
    let mainOver = false;
    const bgDone =
      spec.background && bgClient && bgPicker
        ? (async () => {
            const bgSpec = spec.background as { ratePerSec: number };
            const end = load.mode === 'closed' ? window.end : Number.POSITIVE_INFINITY;
            const lag = await pacedLoop(
              bgClient,
              bgPicker,
              bgSpec.ratePerSec,
              Number.MAX_SAFE_INTEGER,
              end,
              (kind, s, e, outcome) => {
                if (inWindow(window, e)) bg.add(kind, e - s, outcome);
              },
              () => mainOver,
              (at) => {
                if (inWindow(window, at)) bg.sent = (bg.sent ?? 0) + 1;
              },
            );
            bg.maxSendLagMs = Math.round(lag * 100) / 100;
          })()
        : Promise.resolve();
    await mainDone;
    const elapsedEnd = performance.now();
    const cpu = sampler.stop();
    windowEvent('end');
    mainOver = true;
    await bgDone;
    const seconds = (load.mode === 'closed' ? load.durationMs : elapsedEnd - t0) / 1000;
    const epoch = (t: number) => Math.round((performance.timeOrigin + t) * 1000) / 1000;
    return {
      name: spec.name,
      main: main.result(seconds, picker.coldExhausted),
      background: spec.background ? bg.result(seconds, bgPicker?.coldExhausted ?? 0) : undefined,
      cpu,
      windowEpochMs: { start: epoch(window.start), end: epoch(Math.min(window.end, elapsedEnd)) },
    };
  } finally {
    for (const c of clients) c.close();
    bgClient?.close();
  }
}

/**
 * Revoke-to-deny: for each key, warm it on every replica, poll replicas 2.. in a tight loop (one
 * call in flight each), revoke on replica 1 through the admin API, and time the first deny on each
 * polled replica from the moment the revoke was sent. Every call that starts after the revoke
 * response came back must be denied; one extra call per replica is sent right after it.
 */
async function revoke(spec: RevokeSpec): Promise<RevokeResult> {
  const { ip, scope } = spec;
  const first = spec.replicas[0];
  if (!first || spec.replicas.length < 2) throw new Error('revoke needs at least two replicas');
  const pollers = await Promise.all(
    spec.replicas.map((r, i) => openClients(r.grpcPort, [100 + i]).then(([c]) => c as KeyClient)),
  );
  const checkers = await Promise.all(
    spec.replicas.map((r, i) => openClients(r.grpcPort, [200 + i]).then(([c]) => c as KeyClient)),
  );
  const base = `http://127.0.0.1:${first.httpPort}`;
  const headers = { authorization: `Bearer ${spec.adminToken}`, 'content-type': 'application/json' };
  await fetch(`${base}/healthz`).then((r) => r.text()); // open the keep-alive connection first
  const results: RevokeKeyResult[] = [];
  try {
    for (const k of spec.keys) {
      const req = encodeRequest({ key: k.key, ip, scope });
      // Warm: cached on every replica (the second call is a local hit), on both connections.
      for (let i = 0; i < spec.replicas.length; i++) {
        for (const client of [pollers[i], checkers[i], pollers[i]] as KeyClient[]) {
          const o = outcomeOf(await client.call(req, SLOW_DEADLINE_MS));
          if (o !== 'ALLOWED') throw new Error(`warming ${k.id} on ${spec.replicas[i]?.name}: ${o}`);
        }
      }
      // Set once each below, but read by the pollers before that: as consts those reads would throw (TDZ).
      // eslint-disable-next-line prefer-const
      let sentAt: number | undefined;
      // eslint-disable-next-line prefer-const
      let responseAt: number | undefined;
      const polled = spec.replicas.slice(1);
      const state = polled.map(() => ({
        firstDenyAt: undefined as number | undefined,
        firstDenySent: 0,
        stale: 0,
        after: 0,
        calls: 0,
      }));
      const giveUp = performance.now() + spec.timeoutMs;
      const polling = polled.map(async (_r, j) => {
        const st = state[j] as (typeof state)[number];
        const client = pollers[j + 1] as KeyClient;
        while (performance.now() < giveUp) {
          const s = performance.now();
          const o = outcomeOf(await client.call(req, SLOW_DEADLINE_MS));
          const e = performance.now();
          st.calls++;
          const after = responseAt !== undefined && s > responseAt;
          if (after) {
            st.after++;
            if (o === 'ALLOWED') st.stale++;
          }
          if (o !== 'ALLOWED' && !o.startsWith('ERR_') && sentAt !== undefined && st.firstDenyAt === undefined) {
            st.firstDenyAt = e;
            st.firstDenySent = s;
          }
          if (st.firstDenyAt !== undefined && after) return;
        }
      });
      await sleep(3); // pollers in their stride
      sentAt = performance.now();
      const res = await fetch(`${base}/v1/accounts/${spec.accountId}/keys/${k.id}/revoke`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ reason: 'bench revoke-to-deny' }),
      });
      const body = (await res.json()) as { propagation?: RevokeKeyResult['propagation'] };
      responseAt = performance.now();
      const checks = await Promise.all(checkers.map((c) => c.call(req, SLOW_DEADLINE_MS)));
      await Promise.all(polling);
      const firstAfter: Record<string, string> = {};
      let staleAllows = state.reduce((s, st) => s + st.stale, 0);
      checks.forEach((r, i) => {
        const o = outcomeOf(r);
        firstAfter[spec.replicas[i]?.name ?? String(i)] = o;
        if (o === 'ALLOWED') staleAllows++;
      });
      const denyMs: Record<string, number | null> = {};
      const denySentMs: Record<string, number | null> = {};
      const deniedBeforeResponse: Record<string, boolean> = {};
      polled.forEach((r, j) => {
        const at = state[j]?.firstDenyAt;
        denyMs[r.name] = at === undefined ? null : Math.round((at - sentAt) * 1000) / 1000;
        denySentMs[r.name] =
          at === undefined ? null : Math.round(((state[j]?.firstDenySent ?? 0) - sentAt) * 1000) / 1000;
        deniedBeforeResponse[r.name] = at !== undefined && at <= responseAt;
      });
      results.push({
        keyId: k.id,
        status: res.status,
        revokeMs: Math.round((responseAt - sentAt) * 1000) / 1000,
        propagation: body.propagation ?? null,
        denyMs,
        denySentMs,
        deniedBeforeResponse,
        staleAllows,
        callsAfterResponse: state.reduce((s, st) => s + st.after, 0) + checks.length,
        firstAfter,
        pollCalls: state.reduce((s, st) => s + st.calls, 0),
      });
    }
  } finally {
    for (const c of [...pollers, ...checkers]) c.close();
  }
  return { keys: results };
}

async function handle(msg: Command): Promise<unknown> {
  switch (msg.cmd) {
    case 'run':
      return run(msg.spec);
    case 'revoke':
      return revoke(msg.spec);
    case 'exit':
      setImmediate(() => process.exit(0));
      return null;
  }
}

if (!process.send) {
  process.stderr.write(
    'bench/load.js is the load generator of `npm run bench`: run it through bench/run.js (it needs the IPC channel)\n',
  );
  process.exit(2);
}
process.on('message', (msg: Command) => {
  handle(msg).then(
    (result) => process.send?.({ id: msg.id, ok: true, result } satisfies Reply),
    (err: unknown) =>
      process.send?.({
        id: msg.id,
        ok: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      } satisfies Reply),
  );
});
// The orchestrator is gone: stop.
process.on('disconnect', () => process.exit(0));
