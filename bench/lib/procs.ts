import { fork, type ChildProcess } from 'node:child_process';
import { spawnNode } from '../../test/helpers/harness/process.js';
import type { Command, LoadEvent, Reply } from './protocol.js';

/** Every child started by the bench, so a failure or ^C still stops them all. */
const children = new Set<ChildProcess>();

/** A server process (the service or the no-op server) that printed its ports. */
export interface Server {
  name: string;
  proc: ChildProcess;
  pid: number;
  grpcPort: number;
  httpPort: number;
  /** The last lines it printed (for diagnostics). */
  tail(): string;
  /** SIGTERM, wait up to `graceMs` for the exit, then SIGKILL; resolves the exit code or signal. */
  stop(graceMs?: number): Promise<string>;
  exited: Promise<string>;
}

const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

function exitOf(proc: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    if (!alive(proc)) {
      resolve(String(proc.exitCode ?? proc.signalCode));
      return;
    }
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      resolve(String(code ?? signal));
    });
  });
}

async function stopProcess(proc: ChildProcess, exited: Promise<string>, graceMs: number): Promise<string> {
  if (alive(proc)) proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      if (alive(proc)) proc.kill('SIGKILL');
      resolve('SIGKILL');
    }, graceMs);
  });
  const how = await Promise.race([exited, killed]);
  clearTimeout(timer);
  return how === 'SIGKILL' ? `killed after ${graceMs} ms: ${await exited}` : how;
}

/**
 * Spawn `node <args>` (under `wrapper`, e.g. valgrind, if given) and wait for the JSON line containing `startedMessage` (it must hold grpcPort,
 * and httpPort for the service). Output is drained continuously; the last lines are kept.
 */
export async function startServer(
  name: string,
  nodeArgs: readonly string[],
  env: Record<string, string>,
  startedMessage: string,
  timeoutMs = 30_000,
  wrapper: readonly string[] = [],
): Promise<Server> {
  const lines: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 200) lines.shift();
  };
  const { proc, started } = spawnNode({
    name,
    args: nodeArgs,
    env,
    startedMessage,
    timeoutMs,
    onLine: keep,
    onStderr: (chunk) => {
      for (const l of chunk.split('\n')) if (l) keep(l);
    },
    output: () => lines.join('\n'),
    wrapper,
  });
  children.add(proc);
  const exited = exitOf(proc);
  const ports = await started;
  return {
    name,
    proc,
    pid: proc.pid ?? -1,
    ...ports,
    exited,
    tail: () => lines.slice(-30).join('\n'),
    stop: (graceMs = 25_000) => stopProcess(proc, exited, graceMs),
  };
}

type Request = Command extends infer C ? (C extends unknown ? Omit<C, 'id'> : never) : never;

/** The load generator process and its request/reply channel. */
export class LoadGenerator {
  readonly proc: ChildProcess;
  #next = 1;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  #exited: Promise<string>;
  /** Called when a run's measured window starts and ends. */
  onWindow: ((phase: LoadEvent['phase']) => void) | undefined;

  constructor(script: string, env: Record<string, string>, execArgv: string[] = []) {
    this.proc = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv, env });
    children.add(this.proc);
    this.#exited = exitOf(this.proc);
    this.proc.on('message', (msg: Reply | LoadEvent) => {
      if ('event' in msg) {
        this.onWindow?.(msg.phase);
        return;
      }
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`load generator: ${msg.error}`));
    });
    void this.#exited.then((code) => {
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`load generator exited (${code})`));
      }
      this.#pending.clear();
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** Send a command; rejects when no reply comes within `timeoutMs`. */
  request<T>(req: Request, timeoutMs: number): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`load generator: no answer to ${req.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.proc.send({ ...req, id });
    });
  }

  /** Ask it to exit (so a --cpu-prof profile gets written), then SIGTERM if it has not within 3 s. */
  async stop(): Promise<string> {
    if (alive(this.proc) && this.proc.connected) {
      this.proc.send({ id: 0, cmd: 'exit' } satisfies Command);
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        this.#exited,
        new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), 3000);
        }),
      ]);
      clearTimeout(timer);
      if (exited !== undefined) return exited;
    }
    return stopProcess(this.proc, this.#exited, 5000);
  }
}

/** SIGTERM every child still running, SIGKILL what is left after `graceMs`. */
export async function stopAll(graceMs = 10_000): Promise<void> {
  await Promise.all([...children].map((p) => stopProcess(p, exitOf(p), graceMs)));
}
