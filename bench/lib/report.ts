import type { ProfileSummary } from '../profile.js';
import { formatProfile } from '../profile.js';
import type { RunResult, StreamResult } from './protocol.js';

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  kernel: string;
  memoryGiB: number;
  loadavgAtStart: number[];
  /** Machine CPU busy (% of all cores) over 1 s before anything started: other activity on the box. */
  idleBusyPercent: number;
}

export interface CaseReport {
  id: string;
  title: string;
  target: 'noop' | 'service';
  result: RunResult;
  /** The no-op run this case is compared with (the nearest one before it); absent for the cold cases. */
  baselineId?: string | undefined;
  /** Ratios to that no-op run (throughput, p50, p99, server CPU per call). */
  ratio?: { throughput: number; p50: number; p99: number; cpu: number } | undefined;
}

export interface TargetCheck {
  name: string;
  measured: string;
  target: string;
  pass: boolean;
}

export interface RevokeReport {
  keys: number;
  revokeMs: { p50: number; p99: number; max: number };
  /** From sending the revoke to the first denied answer, every polled replica together. */
  revokeToDenyMs: { p50: number; p99: number; max: number };
  /** The same to when the first denied call was sent (lower bound). */
  revokeToDenySentMs: { p50: number; p99: number; max: number };
  /** How long that first denied call itself took. */
  firstDeniedCallMs: { p50: number; p99: number; max: number };
  /** Per replica over the whole revoke phase (warm-up, revokes, polling), from its /metrics. */
  replicaWork: Record<string, { argon2Verifications: number; storageLookups: number }>;
  perReplica: Record<
    string,
    { p50: number; p99: number; max: number; deniedBeforeResponse: number; neverDenied: number }
  >;
  staleAllows: number;
  callsAfterResponse: number;
  pollCalls: number;
  propagation: Record<string, number>;
  firstAfterOutcomes: Record<string, number>;
  statuses: Record<string, number>;
}

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  durationS: number;
  commit: string;
  machine: Machine;
  config: Record<string, unknown>;
  seeding: { keys: number; seconds: number; perKeyMs: number };
  cases: CaseReport[];
  /** Spread of the no-op runs (how steady the machine was). */
  baselines: { throughput: { min: number; max: number }; p99: { min: number; max: number } };
  targets: TargetCheck[];
  correctness: TargetCheck[];
  revoke: RevokeReport;
  profile: {
    caseResult: RunResult;
    summary: ProfileSummary;
    noop?: { caseResult: RunResult; summary: ProfileSummary } | undefined;
  } | null;
  /** The same profiles at light load (2 in flight); absent in reports from before it existed. */
  profileLight?: BenchReport['profile'];
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '–');
const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');

function outcomes(s: StreamResult): string {
  return Object.entries(s.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

function cpu(r: RunResult): string {
  const p = r.cpu.processes;
  return `${f1(p.server ?? Number.NaN)} / ${f1(p.load ?? Number.NaN)} / ${f1((p.postgres ?? 0) + (p.redis ?? 0))} / ${f1(r.cpu.other)}`;
}

/** Flag a case during which other work took a real share of the machine. */
function noisy(r: RunResult): string {
  return r.cpu.other > 40 ? ` — **noisy: ${f1(r.cpu.other)} % of a core used by other processes**` : '';
}

/** A warning when the load generator, not the server, bounds the no-op runs. */
export function clientBound(report: BenchReport): string {
  const loads = report.cases.filter((c) => c.target === 'noop').map((c) => c.result.cpu.processes.load ?? 0);
  const servers = report.cases.filter((c) => c.target === 'noop').map((c) => c.result.cpu.processes.server ?? 0);
  if (loads.length === 0 || Math.min(...loads) < 90) return '';
  return (
    `**The client bounds the no-op runs:** the load generator used ${f1(Math.min(...loads))}–${f1(Math.max(...loads))} % of a core ` +
    `(it is single-threaded) while the no-op server used ${f1(Math.min(...servers))}–${f1(Math.max(...servers))} %. Throughput ratios near or above 1 ` +
    'then say the service keeps up with what one client process can send on this machine, not that it is as cheap as the no-op server; ' +
    'the server CPU per call and the profiles below say what it costs.'
  );
}

/** Server process CPU (all threads) per answered call, µs. */
export function cpuPerCall(r: RunResult): number {
  const calls = r.main.throughput + (r.background?.throughput ?? 0);
  return calls > 0 ? ((r.cpu.processes.server ?? Number.NaN) * 10_000) / calls : Number.NaN;
}

function backend(r: RunResult): string {
  return r.backend ? `${f2(r.backend.redisPerCall)} / ${f2(r.backend.pgXactsPerCall)}` : '';
}

/** The main results table (markdown). */
export function casesTable(report: BenchReport): string {
  const head = [
    '| case | calls/s | × no-op | p50 ms | × no-op | p99 ms | × no-op | CPU %: server / load gen / PG+Redis / rest | server CPU µs per call | × no-op | Redis cmds / PG xacts per call | answers |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  const rows: string[] = [];
  for (const c of report.cases) {
    const m = c.result.main;
    const r = c.ratio;
    rows.push(
      `| ${c.title} | ${int(m.throughput)} | ${r ? f2(r.throughput) : ''} | ${f3(m.latencyMs.p50)} | ${r ? f2(r.p50) : ''} | ` +
        `${f3(m.latencyMs.p99)} | ${r ? f2(r.p99) : ''} | ${cpu(c.result)} | ${f1(cpuPerCall(c.result))} | ${r ? f2(r.cpu) : ''} | ${c.target === 'service' ? backend(c.result) : ''} | ` +
        `${outcomes(m)}${noisy(c.result)} |`,
    );
    const bg = c.result.background;
    if (bg) {
      rows.push(
        `| ↳ its background stream (sent ${f1(bg.sentPerSec ?? Number.NaN)}/s) | ${f1(bg.throughput)} | | ${f3(bg.latencyMs.p50)} | | ` +
          `${f3(bg.latencyMs.p99)} | | | | | | ${outcomes(bg)} |`,
      );
    }
  }
  return [...head, ...rows].join('\n');
}

function mixDetail(report: BenchReport): string {
  const mix = report.cases.find((c) => c.id === 'mix');
  if (!mix) return '';
  const lines = ['| mix: kind | calls | p50 ms | p99 ms | max ms |', '| --- | ---: | ---: | ---: | ---: |'];
  for (const [kind, v] of Object.entries(mix.result.main.byKind)) {
    if (v)
      lines.push(
        `| ${kind} | ${int(v.calls)} | ${f3(v.latencyMs.p50)} | ${f3(v.latencyMs.p99)} | ${f3(v.latencyMs.max)} |`,
      );
  }
  return lines.join('\n');
}

export function targetsTable(checks: TargetCheck[]): string {
  return [
    '| target | measured | required | result |',
    '| --- | ---: | ---: | --- |',
    ...checks.map((t) => `| ${t.name} | ${t.measured} | ${t.target} | ${t.pass ? 'PASS' : '**FAIL**'} |`),
  ].join('\n');
}

export function revokeTable(r: RevokeReport): string {
  const lines = [
    '| revoke on replica 1, N keys | p50 ms | p99 ms | max ms | first deny before the revoke response | never denied |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    `| revoke response time (${r.keys} keys) | ${f3(r.revokeMs.p50)} | ${f3(r.revokeMs.p99)} | ${f3(r.revokeMs.max)} | | |`,
    `| revoke-to-deny (first denied answer received), replicas 2 and 3 together | ${f3(r.revokeToDenyMs.p50)} | ${f3(r.revokeToDenyMs.p99)} | ${f3(r.revokeToDenyMs.max)} | | |`,
    `| the same, to when that first denied call was sent (lower bound) | ${f3(r.revokeToDenySentMs.p50)} | ${f3(r.revokeToDenySentMs.p99)} | ${f3(r.revokeToDenySentMs.max)} | | |`,
    `| duration of that first denied call | ${f3(r.firstDeniedCallMs.p50)} | ${f3(r.firstDeniedCallMs.p99)} | ${f3(r.firstDeniedCallMs.max)} | | |`,
  ];
  for (const [name, v] of Object.entries(r.perReplica)) {
    lines.push(
      `| revoke-to-deny, ${name} | ${f3(v.p50)} | ${f3(v.p99)} | ${f3(v.max)} | ${v.deniedBeforeResponse}/${r.keys} | ${v.neverDenied} |`,
    );
  }
  const prop = Object.entries(r.propagation)
    .map(([k, v]) => `${k} ×${v}`)
    .join(', ');
  const after = Object.entries(r.firstAfterOutcomes)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    ...lines,
    '',
    `Stale allows (calls started after the revoke response that were allowed): **${r.staleAllows}** of ${r.callsAfterResponse} ` +
      `(${r.pollCalls} poll calls in all). First call after the response on each replica: ${after}.`,
    `Revoke responses: ${Object.entries(r.statuses)
      .map(([k, v]) => `HTTP ${k} ×${v}`)
      .join(', ')}; \`propagation\` {replicas, confirmed}: ${prop}.`,
    `Work on the replicas over the revoke phase (from /metrics): ${Object.entries(r.replicaWork)
      .map(([k, v]) => `${k}: ${v.argon2Verifications} argon2 verifications, ${v.storageLookups} storage lookups`)
      .join('; ')}.`,
  ].join('\n');
}

/** Busy main-thread time per call and its split by module, service against no-op, from the two profiles. */
export function profileComparison(
  svc: { caseResult: RunResult; summary: ProfileSummary },
  noop: { caseResult: RunResult; summary: ProfileSummary },
): string {
  const calls = (x: { caseResult: RunResult; summary: ProfileSummary }) =>
    x.caseResult.main.throughput * (x.summary.sampledMs / 1000);
  const perCall = (x: { caseResult: RunResult; summary: ProfileSummary }, ms: number) =>
    calls(x) > 0 ? (ms * 1000) / calls(x) : Number.NaN;
  const busy = (s: ProfileSummary) => s.categories.filter((c) => c.name !== '(idle)').reduce((a, c) => a + c.ms, 0);
  const moduleMs = (s: ProfileSummary, name: string) => s.byModule.find((m) => m.name === name)?.ms ?? 0;
  const names = [...new Set([...svc.summary.byModule, ...noop.summary.byModule].map((m) => m.name))];
  const rows = names
    .map((name) => {
      const a = perCall(svc, moduleMs(svc.summary, name));
      const b = perCall(noop, moduleMs(noop.summary, name));
      return { name, a, b };
    })
    .sort((x, y) => y.a - y.b - (x.a - x.b));
  const line = (name: string, a: number, b: number) => `| ${name} | ${f1(a)} | ${f1(b)} | ${f1(a - b)} |`;
  return [
    '| µs per call (profiled runs, same load) | service | no-op | difference |',
    '| --- | ---: | ---: | ---: |',
    line('server process CPU, all threads (/proc)', cpuPerCall(svc.caseResult), cpuPerCall(noop.caseResult)),
    line(
      'main thread busy (profile samples, not idle)',
      perCall(svc, busy(svc.summary)),
      perCall(noop, busy(noop.summary)),
    ),
    ...rows.filter((r) => Math.max(r.a, r.b) >= 0.1).map((r) => line(`↳ ${r.name}`, r.a, r.b)),
    '',
    `Calls in the window: throughput × sampled time (service ${int(svc.caseResult.main.throughput)}/s, no-op ${int(noop.caseResult.main.throughput)}/s). ` +
      'Self time by module per call, sorted by what the service adds. The two servers ran at different utilisation (the load generator is the ' +
      'bottleneck), which moves per-call transport cost somewhat; the profiler adds its own overhead to both.',
  ].join('\n');
}

export function machineLine(m: Machine): string {
  return (
    `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, Linux ${m.kernel}; load average at start ` +
    `${m.loadavgAtStart.map((n) => n.toFixed(2)).join(' ')}; machine CPU busy before the run ${f1(m.idleBusyPercent)} %`
  );
}

export function markdown(report: BenchReport): string {
  const c = report.config;
  const out = [
    `# Otesse key service benchmark — ${report.startedAt}`,
    '',
    `Machine: ${machineLine(report.machine)}.`,
    '',
    `Commit ${report.commit}. Each closed-loop case: ${String(c.concurrency)} calls in flight over ${String(c.channels)} gRPC channels ` +
      `(own subchannel each) from a separate load-generator process, ${String(c.warmupMs)} ms warm-up then ${String(c.durationMs)} ms measured. ` +
      `Service: real PostgreSQL and Redis, default argon2id (m=19456, t=2, p=1), ARGON2_MAX_CONCURRENCY default. ` +
      `Ratios are to the no-op gRPC server (same proto, constant allowed answer) measured in the same run.`,
    '',
    casesTable(report),
    '',
    'CPU over the measured window, % of one core: the server process (all its threads, argon2 included), the load generator, PostgreSQL and Redis, ' +
      'and the rest of the machine (kernel, anything else running: a high value means the numbers are disturbed). Redis commands and PostgreSQL transactions per call: counter deltas over the window ' +
      '(whole Redis server; pg_stat_database of the bench database, flushed about once a second, so approximate).',
    '',
    clientBound(report),
    '',
    `"× no-op" compares with the nearest no-op row above (each group of cases has its own baseline run), or for a light-load row with the no-op row of its round, just above or below it. ` +
      `The no-op runs ranged ${int(report.baselines.throughput.min)}–${int(report.baselines.throughput.max)} calls/s, ` +
      `p99 ${f3(report.baselines.p99.min)}–${f3(report.baselines.p99.max)} ms.`,
    '',
    mixDetail(report),
    '',
    '## Targets',
    '',
    targetsTable(report.targets),
    '',
    '## Correctness during the run',
    '',
    targetsTable(report.correctness),
    '',
    '## Revoke-to-deny on other replicas (3 replicas, same PostgreSQL and Redis)',
    '',
    revokeTable(report.revoke),
    '',
    `Seeding: ${report.seeding.keys} keys through the admin API in ${f1(report.seeding.seconds)} s (${f1(report.seeding.perKeyMs)} ms per key: argon2id hash, one at a time).`,
    '',
  ];
  if (report.profile) {
    const p = report.profile.caseResult.main;
    out.push(
      '## CPU profile of the service during the cache-hit case',
      '',
      `A separate service process run with \`--cpu-prof\` under the same cache-hit load (${int(p.throughput)} calls/s, ` +
        `p99 ${f3(p.latencyMs.p99)} ms while profiled); samples inside the measured window only.`,
      '',
    );
    const noop = report.profile.noop;
    if (noop) out.push(profileComparison(report.profile, noop), '');
    out.push(formatProfile(report.profile.summary));
    if (noop) out.push('### The no-op server under the same load, for comparison', '', formatProfile(noop.summary));
  }
  const light = report.profileLight;
  if (light) {
    const p = light.caseResult.main;
    out.push(
      `## CPU profile of the cache hit at light load (${String(light.caseResult.main.calls ? p.throughput.toFixed(0) : '–')} calls/s, ` +
        `${light.caseResult.main.latencyMs.p99.toFixed(3)} ms p99 while profiled)`,
      '',
    );
    if (light.noop) out.push(profileComparison(light, light.noop), '');
    out.push(formatProfile(light.summary));
  }
  out.push(`Finished ${report.finishedAt} (${f1(report.durationS)} s).`, '');
  return out.join('\n');
}
