import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Machine } from './report.js';
import { machineCpu } from './stats.js';

/** The load averages now (1, 5, 15 min), to two decimals. */
export const loadNow = (): number[] => loadavg().map((n) => Math.round(n * 100) / 100);

/** The CPU's model name (from /proc/cpuinfo on Linux, else os.cpus()). */
export function cpuModel(): string {
  try {
    const found = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim();
    if (found) return found;
  } catch {
    // No /proc/cpuinfo (not Linux): os.cpus()'s model is as good.
  }
  return cpus()[0]?.model ?? 'unknown';
}

/** The machine a run is on, with how busy it was over 1 s before anything started. */
export async function describeMachine(): Promise<Machine> {
  const loadavgAtStart = loadNow();
  const before = machineCpu();
  await sleep(1000);
  const after = machineCpu();
  const dt = after.total - before.total;
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    node: process.version,
    kernel: release(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadavgAtStart,
    idleBusyPercent: dt > 0 ? Math.round(((after.busy - before.busy) / dt) * 1000) / 10 : Number.NaN,
  };
}

/** The commit measured, marked when src/ differs from it; `unknown` outside a git checkout. */
export function commitOf(root: string): string {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const head = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--', 'src') === '' ? head : `${head} (src/ modified)`;
  } catch {
    // Not a git checkout (an unpacked release) or no git: the report says so; nothing else depends on it.
    return 'unknown';
  }
}
