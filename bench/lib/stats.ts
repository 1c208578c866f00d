import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { percentile } from '../../test/helpers/harness/stats.js';
import type { LatencySummary } from './protocol.js';

export function summarize(values: number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const r = (n: number) => Math.round(n * 1000) / 1000;
  return {
    count: sorted.length,
    mean: r(sorted.length ? sum / sorted.length : Number.NaN),
    p50: r(percentile(sorted, 50)),
    p90: r(percentile(sorted, 90)),
    p99: r(percentile(sorted, 99)),
    p999: r(percentile(sorted, 99.9)),
    max: r(sorted.length ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN),
  };
}

/** CPU time (ms), user + system, of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat file. */
function statCpuMs(path: string): number {
  const text = readFileSync(path, 'utf8');
  // Fields after "pid (comm) ": state is field 3, utime 14, stime 15.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS;
}

/** CPU time (ms) a process has used so far (every thread); undefined when gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    return statCpuMs(`/proc/${pid}/stat`);
  } catch {
    // The process has exited: undefined is the documented answer.
    return undefined;
  }
}

const CLOCK_TICKS = 100; // USER_HZ: 100 on Linux x86-64/arm64 (getconf CLK_TCK)

/**
 * CPU time (ms) of a process's threads other than the main one (V8's garbage collection and compiler
 * workers, libuv's pool); undefined when gone. Threads that exited meanwhile are missing: compare over
 * windows in which none does.
 */
export function helperThreadsCpuMs(pid: number): number | undefined {
  try {
    let ms = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`))
      if (Number(tid) !== pid) ms += statCpuMs(`/proc/${pid}/task/${tid}/stat`);
    return ms;
  } catch {
    // The process has exited (or a thread did between the listing and the read): undefined, as documented.
    return undefined;
  }
}

/** Machine-wide CPU counters (jiffies) from /proc/stat: busy and total. */
export function machineCpu(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    // No /proc (not Linux): zero counters, and the report shows no machine CPU figure rather than failing the run.
    return { busy: 0, total: 0 };
  }
}

/** Pids of the processes named `comm` (e.g. every postgres backend). */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

export function coreCount(): number {
  return cpus().length;
}

/** Samples CPU use of some processes and of the machine between start() and stop(). */
export class CpuSampler {
  #pids: Record<string, number | number[]>;
  #start:
    { at: number; procs: Record<string, number | undefined>; machine: { busy: number; total: number } } | undefined;

  constructor(pids: Record<string, number | number[]>) {
    this.#pids = pids;
  }

  start(): void {
    this.#start = { at: performance.now(), procs: this.#read(), machine: machineCpu() };
  }

  stop(): { processes: Record<string, number>; other: number; machine: number; cores: number } {
    const s = this.#start;
    const cores = coreCount();
    if (!s) return { processes: {}, other: Number.NaN, machine: Number.NaN, cores };
    const elapsed = performance.now() - s.at;
    const now = this.#read();
    const processes: Record<string, number> = {};
    for (const [key, before] of Object.entries(s.procs)) {
      const after = now[key];
      const name = key.split('#')[0] ?? key;
      if (before !== undefined && after !== undefined && elapsed > 0) {
        processes[name] = Math.round(((processes[name] ?? 0) + ((after - before) / elapsed) * 100) * 10) / 10;
      }
    }
    const m = machineCpu();
    const dt = m.total - s.machine.total;
    const machine = dt > 0 ? Math.round(((m.busy - s.machine.busy) / dt) * 1000) / 10 : Number.NaN;
    const ours = Object.values(processes).reduce((a, b) => a + b, 0);
    const other = Math.round(Math.max(0, machine * cores - ours) * 10) / 10;
    return { processes, other, machine, cores };
  }

  #read(): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = {};
    for (const [name, pid] of Object.entries(this.#pids)) {
      if (typeof pid === 'number') {
        out[name] = processCpuMs(pid);
        continue;
      }
      // Several processes: a pid missing at either end counts as 0 at both, so it has to be read as it goes.
      for (const p of pid) out[`${name}#${p}`] = processCpuMs(p);
    }
    return out;
  }
}
