// The at-scale benchmark's results: targets, a text table for stdout and a markdown summary.
import type { QueryPlan } from './scale-plans.js';

export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ScaleReport {
  startedAt: string;
  durationS: number;
  commit: string;
  machine: { cpu: string; cores: number; node: string; loadavgAtStart: number[] };
  seeding: { keys: number; seconds: number; rows: Record<string, number>; argon2: string; note: string }[];
  /** Each key authenticated once, for the first time, one call in flight (PostgreSQL read + argon2id). */
  cold: { small: Latency; large: Latency; argon2Verifications: { small: number; large: number } };
  /** Cache hits, 64 in flight over 4 channels, calls per second of each run (runs alternate small, large, large, small). */
  hit: { small: number[]; large: number[]; p99Ms: { small: number[]; large: number[] } };
  routes: { name: string; latency: Latency; errors: number }[];
  plans: QueryPlan[];
  cacheMemory: { entries: number; heapBytesPerEntry: number; arrayBufferBytesPerEntry: number };
  targets: { name: string; measured: string; target: string; pass: boolean }[];
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** The issue's targets, from the measured figures. */
export function targets(
  r: Omit<ScaleReport, 'targets'>,
  routeP99Ms: number,
  bytesPerEntry: number,
): ScaleReport['targets'] {
  const p50 = r.cold.large.p50 / r.cold.small.p50;
  const p99 = r.cold.large.p99 / r.cold.small.p99;
  const hit = mean(r.hit.large) / mean(r.hit.small);
  const seq = r.plans.filter((p) => p.seqScans.length > 0);
  return [
    { name: 'cold lookup p50, 1M keys / 1k keys', measured: f2(p50), target: '≤ 1.10', pass: p50 <= 1.1 },
    { name: 'cold lookup p99, 1M keys / 1k keys', measured: f2(p99), target: '≤ 1.10', pass: p99 <= 1.1 },
    {
      name: 'cache-hit throughput, 1M keys / 1k keys',
      measured: f2(hit),
      target: '≥ 0.95 (unchanged)',
      pass: hit >= 0.95,
    },
    ...r.routes.map((x) => ({
      name: `${x.name}: p99 ms`,
      measured: f1(x.latency.p99),
      target: `≤ ${routeP99Ms}`,
      pass: x.latency.p99 <= routeP99Ms && x.errors === 0,
    })),
    {
      name: 'route queries with a Seq Scan on a growing table',
      measured: seq.length ? seq.map((p) => `${p.route}: ${p.query}`).join('; ') : '0',
      target: '0',
      pass: seq.length === 0,
    },
    {
      name: 'local cache heap per entry (bytes, 100,000 entries)',
      measured: String(r.cacheMemory.heapBytesPerEntry),
      target: `≤ ${bytesPerEntry}`,
      pass: r.cacheMemory.heapBytesPerEntry <= bytesPerEntry,
    },
  ];
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const lat = (l: Latency) => [String(l.count), f1(l.p50), f1(l.p99), f1(l.max)];

/** The results as text tables (stdout). */
export function textReport(r: ScaleReport): string {
  const [small, large] = r.seeding;
  return [
    `machine: ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}, load ${r.machine.loadavgAtStart.join(' ')}; commit ${r.commit}`,
    ...r.seeding.map(
      (s) =>
        `seeded ${int(s.keys)} keys in ${f1(s.seconds)} s (${Object.entries(s.rows)
          .map(([t, n]) => `${t} ${int(n)}`)
          .join(', ')})`,
    ),
    r.seeding[0]?.note ?? '',
    '',
    table(
      ['case', 'calls', 'p50 ms', 'p99 ms', 'max ms'],
      [
        [`cold lookup, ${int(small?.keys ?? 0)} keys`, ...lat(r.cold.small)],
        [`cold lookup, ${int(large?.keys ?? 0)} keys`, ...lat(r.cold.large)],
        ...r.routes.map((x) => [x.name, ...lat(x.latency)]),
      ],
    ),
    '',
    table(
      ['cache hit, 64 in flight', 'calls/s per run', 'mean calls/s', 'p99 ms per run'],
      [
        [
          `${int(small?.keys ?? 0)} keys`,
          r.hit.small.map(int).join(', '),
          int(mean(r.hit.small)),
          r.hit.p99Ms.small.map(f2).join(', '),
        ],
        [
          `${int(large?.keys ?? 0)} keys`,
          r.hit.large.map(int).join(', '),
          int(mean(r.hit.large)),
          r.hit.p99Ms.large.map(f2).join(', '),
        ],
      ],
    ),
    '',
    table(
      ['route', 'query', 'execution ms', 'seq scans'],
      r.plans.map((p) => [p.route, p.query, f2(p.executionMs), p.seqScans.join(', ') || 'none']),
    ),
    '',
    `local cache: ${r.cacheMemory.heapBytesPerEntry} bytes of heap per entry at ${int(r.cacheMemory.entries)} entries ` +
      `(+ ${r.cacheMemory.arrayBufferBytesPerEntry} bytes of typed arrays)`,
    '',
    table(
      ['target', 'measured', 'wanted', ''],
      r.targets.map((t) => [t.name, t.measured, t.target, t.pass ? 'ok' : 'MISSED']),
    ),
  ].join('\n');
}

/** The markdown summary (bench/results/scale-latest.md), with every plan. */
export function markdownReport(r: ScaleReport): string {
  const rows = (cells: string[][]) => cells.map((c) => `| ${c.join(' | ')} |`).join('\n');
  return [
    `# At scale (${r.startedAt.slice(0, 10)})`,
    '',
    `${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}; commit ${r.commit}; ${f1(r.durationS)} s in all.`,
    '',
    ...r.seeding.map(
      (s) =>
        `- seeded ${int(s.keys)} keys in ${f1(s.seconds)} s: ${Object.entries(s.rows)
          .map(([t, n]) => `${t} ${int(n)}`)
          .join(', ')}`,
    ),
    `- ${r.seeding[0]?.note ?? ''}`,
    '',
    '| target | measured | wanted | |',
    '| --- | --- | --- | --- |',
    rows(r.targets.map((t) => [t.name, t.measured, t.target, t.pass ? 'ok' : '**missed**'])),
    '',
    '| case | calls | p50 ms | p99 ms | max ms |',
    '| --- | --- | --- | --- | --- |',
    rows([
      [`cold lookup, ${int(r.seeding[0]?.keys ?? 0)} keys`, ...lat(r.cold.small)],
      [`cold lookup, ${int(r.seeding[1]?.keys ?? 0)} keys`, ...lat(r.cold.large)],
      ...r.routes.map((x) => [x.name, ...lat(x.latency)]),
    ]),
    '',
    `Cache hit, 64 in flight: ${int(mean(r.hit.small))} calls/s at ${int(r.seeding[0]?.keys ?? 0)} keys, ` +
      `${int(mean(r.hit.large))} calls/s at ${int(r.seeding[1]?.keys ?? 0)} keys.`,
    '',
    "## Plans (EXPLAIN (ANALYZE, BUFFERS), the repositories' SQL)",
    '',
    ...r.plans.flatMap((p) => [`### ${p.route}: ${p.query}`, '', '```', p.plan, '```', '']),
  ].join('\n');
}
