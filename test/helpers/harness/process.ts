// Starting the service (or a server like it) as a child process and waiting until it listens and
// is ready: shared by the test replicas (test/helpers/replica.ts) and the benchmarks (bench/lib/procs.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../../src/node-flags.js';

/** The compiled service, resolved from test/helpers/harness/ or dist/test/helpers/harness/. */
export const SERVICE_MAIN = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../src/main.js' : '../../../dist/src/main.js', import.meta.url),
);
/** The service's node arguments as the image runs it: its flags, then its script. */
export const SERVICE_ARGS: readonly string[] = [...NODE_FLAGS, SERVICE_MAIN];
/** What the service logs (with its bound ports) once it listens. */
export const SERVICE_STARTED = 'otesse key service started';

export interface Ports {
  grpcPort: number;
  httpPort: number;
}

export interface SpawnOptions {
  /** Names the process in error messages. */
  name: string;
  args: readonly string[];
  env: Record<string, string>;
  /** Text of the JSON stdout line that carries the bound ports. */
  startedMessage: string;
  timeoutMs: number;
  /** Each stdout line, without its newline. */
  onLine?(line: string): void;
  /** Each stderr chunk. */
  onStderr?(chunk: string): void;
  /** The output so far, appended to a start failure. */
  output(): string;
  /** A command node runs under, with its arguments (e.g. valgrind's): it must exec node in the same process. */
  wrapper?: readonly string[];
}

/** Spawn `node <args>` (under `wrapper` if given); `started` resolves the ports of the first JSON line containing `startedMessage`. */
export function spawnNode(o: SpawnOptions): { proc: ChildProcess; started: Promise<Ports> } {
  const [command, ...prefix] = [...(o.wrapper ?? []), process.execPath];
  const proc = spawn(command, [...prefix, ...o.args], { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const started = new Promise<Ports>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${o.name} did not start within ${o.timeoutMs} ms:\n${o.output()}`)),
      o.timeoutMs,
    );
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${o.name} exited (${String(code ?? signal)}) before it started:\n${o.output()}`));
    });
    let buffer = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      buffer += String(chunk);
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        o.onLine?.(line);
        const ports = line.includes(o.startedMessage) ? portsOf(line) : undefined;
        if (ports) {
          clearTimeout(timer);
          resolve(ports);
        }
      }
    });
    proc.stderr?.on('data', (chunk: Buffer) => o.onStderr?.(String(chunk)));
  });
  return { proc, started };
}

function portsOf(line: string): Ports | undefined {
  try {
    const parsed = JSON.parse(line) as { grpcPort?: number; httpPort?: number };
    return { grpcPort: Number(parsed.grpcPort), httpPort: Number(parsed.httpPort ?? 0) };
  } catch {
    return undefined; // the message inside a line that is not the JSON one
  }
}

/** Poll `check` until it returns true or the time is up; resolves whether it did. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  stepMs = 25,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

/** One GET /readyz of the service at `base`: its status (0 when unreachable) and body. */
export async function probeReady(base: string): Promise<{ status: number; text: string }> {
  return fetch(`${base}/readyz`).then(
    async (r) => ({ status: r.status, text: await r.text() }),
    (e: unknown) => ({ status: 0, text: String(e) }),
  );
}

/** Wait until /readyz at `base` answers 200; throws with its last answer (and `output()`) after `timeoutMs`. */
export async function waitReady(base: string, name: string, timeoutMs = 30_000, output?: () => string): Promise<void> {
  let last = '';
  const ready = await waitFor(
    async () => {
      const res = await probeReady(base);
      last = res.text;
      return res.status === 200;
    },
    timeoutMs,
    100,
  );
  if (!ready) throw new Error(`${name} not ready after ${timeoutMs} ms: ${last}${output ? `\n${output()}` : ''}`);
}
