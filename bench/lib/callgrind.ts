// Instructions a process executes, counted by valgrind's callgrind: the same figure for the same work
// whatever else the machine is doing, where CPU time on a shared 2-core VM swings by tens of percent.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** True when valgrind and callgrind_control are on the PATH. */
export function haveCallgrind(): boolean {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['-h'], { stdio: 'ignore' });
    return true;
  } catch {
    // Not installed: the caller skips the section and says so.
    return false;
  }
}

/** valgrind's callgrind, every thread counted, its profile written to `outFile`. */
const callgrind = (outFile: string): string[] => ['valgrind', '--tool=callgrind', `--callgrind-out-file=${outFile}`];

/** The wrapper that runs node under callgrind, quietly, its dumps `<dir>/<name>.<pid>.<n>`. */
export const callgrindWrapper = (dir: string, name: string): string[] => [...callgrind(`${join(dir, name)}.%p`), '-q'];

/** Counts of one process under callgrindWrapper: zero, then the instructions since, at each dump. */
export class InstructionCounter {
  #dumps = 0;
  readonly #pid: number;
  readonly #prefix: string;

  constructor(pid: number, dir: string, name: string) {
    this.#pid = pid;
    this.#prefix = join(dir, `${name}.${pid}`);
  }

  async zero(): Promise<void> {
    await run('callgrind_control', ['-z', String(this.#pid)]);
  }

  /** Instructions executed since the last zero or dump, all threads. */
  async dump(): Promise<number> {
    await run('callgrind_control', ['-d', String(this.#pid)]);
    const file = `${this.#prefix}.${++this.#dumps}`;
    // The dump may still be being written when the control command returns: its totals come last.
    for (let i = 0; i < 100; i++) {
      const totals = existsSync(file) ? /^(?:totals|summary): (\d+)/m.exec(readFileSync(file, 'utf8')) : null;
      if (totals) return Number(totals[1]);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${file}: no totals line within 5 s`);
  }
}

/** Instructions node runs for `script` (CommonJS, given `n` as process.argv[1]) with n = `count`, less with n = 0, per unit. */
export async function instructionsPerIteration(script: string, count: number): Promise<number> {
  const total = async (n: number) => {
    // Not quiet: the total is valgrind's closing summary on stderr.
    const [command, ...args] = callgrind('/dev/null');
    const { stderr } = await run(command!, [...args, process.execPath, '-e', script, String(n)]);
    const refs = /refs:\s+([\d,]+)/.exec(stderr);
    if (!refs) throw new Error(`callgrind printed no total:\n${stderr}`);
    return Number(refs[1]!.replaceAll(',', ''));
  };
  return ((await total(count)) - (await total(0))) / count;
}
