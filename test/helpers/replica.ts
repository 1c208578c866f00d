import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../src/node-flags.js';
import { capturedLogs } from './app.js';

/** The compiled service (`npm test` builds before running tap). */
export const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

interface TestLike { teardown(fn: () => unknown): void }

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
  const proc = spawn(process.execPath, [...NODE_FLAGS, MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ports = await new Promise<{ grpcPort: number; httpPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica did not start:\n${logs.join('')}`)), timeoutMs);
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += String(chunk);
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl + 1);
        buffer = buffer.slice(nl + 1);
        logs.push(line);
        capturedLogs.push(line);
        if (line.includes('otesse key service started')) {
          const { grpcPort, httpPort } = JSON.parse(line) as { grpcPort: number; httpPort: number };
          clearTimeout(timer);
          resolve({ grpcPort, httpPort });
        }
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', (c: Buffer) => { logs.push(String(c)); capturedLogs.push(String(c)); });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`replica exited (${code}) before start:\n${logs.join('')}`)); });
  });
  const replica: Replica = {
    proc, logs, exited, ...ports,
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

/** Poll `check` until it returns true or the time is up; resolves whether it did. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}
