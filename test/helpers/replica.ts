import type { ChildProcess } from 'node:child_process';
import { capturedLogs } from './app.js';
import { SERVICE_ARGS, SERVICE_MAIN, SERVICE_STARTED, spawnNode } from './harness/process.js';

export { waitFor } from './harness/process.js';

/** The compiled service (`npm test` builds before running tap). */
export const MAIN = SERVICE_MAIN;

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A service replica in its own process. */
export interface Replica {
  proc: ChildProcess;
  grpcPort: number;
  httpPort: number;
  /** Lines the replica logged (also appended to capturedLogs). */
  logs: string[];
  /** SIGTERM and wait for exit; resolves the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/** Start `node <NODE_FLAGS> dist/src/main.js` (as the image does) with this environment and wait until it listens. */
export async function startReplica(t: TestLike, env: Record<string, string>, timeoutMs = 20_000): Promise<Replica> {
  const logs: string[] = [];
  const keep = (text: string) => {
    logs.push(text);
    capturedLogs.push(text);
  };
  const { proc, started } = spawnNode({
    name: 'replica',
    args: SERVICE_ARGS,
    env: { PATH: process.env.PATH ?? '', ...env },
    startedMessage: SERVICE_STARTED,
    timeoutMs,
    onLine: (line) => keep(`${line}\n`),
    onStderr: keep,
    output: () => logs.join(''),
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ports = await started;
  const replica: Replica = {
    proc,
    logs,
    exited,
    ...ports,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
  t.teardown(() => replica.kill());
  return replica;
}
