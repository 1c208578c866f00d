import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** The compiled caller process, resolved from test/helpers/ or dist/test/helpers/. */
const CALLER_MAIN = fileURLToPath(
  new URL(
    import.meta.url.includes('/dist/')
      ? './harness/caller-process.js'
      : '../../dist/test/helpers/harness/caller-process.js',
    import.meta.url,
  ),
);

export interface CallerProcess {
  proc: ChildProcess;
  /** Allowed requests for key `key` that started after `after` (epoch ms): from memory, and asked of the service. */
  allowsAfter(key: number, after: number): Promise<{ local: number; asked: number; calls: number; faults: number }>;
  pause(): void;
  resume(): void;
  /** Give up the lease, report the last uses, exit. */
  close(): Promise<void>;
}

/** A calling process deciding `keys` in a loop through `target` (see harness/caller-process.ts). */
export async function startCaller(t: TestLike, target: string, keys: string[]): Promise<CallerProcess> {
  const proc = spawn(process.execPath, [CALLER_MAIN], {
    env: { ...process.env, CALLER_TARGET: target, CALLER_KEYS: JSON.stringify(keys) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
  });
  const waiting = new Map<number, (msg: Record<string, unknown>) => void>();
  let next = 0;
  let buffer = '';
  const ready = new Promise<void>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`caller process exited (${code}) before it was ready`)));
    proc.stdout?.on('data', (chunk: Buffer) => {
      buffer += String(chunk);
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
        buffer = buffer.slice(nl + 1);
        if (msg.ready) resolve();
        else waiting.get(Number(msg.id))?.(msg);
      }
    });
  });
  await ready;
  const ask = (cmd: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      proc.stdin?.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  return {
    proc,
    allowsAfter: async (key, after) =>
      (await ask({ cmd: 'allowsAfter', key, after })) as {
        local: number;
        asked: number;
        calls: number;
        faults: number;
      },
    pause: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
    close: async () => {
      await ask({ cmd: 'close' });
    },
  };
}
