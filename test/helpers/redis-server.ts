import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A private redis-server of this test's own (the shared one is never stopped). */
export interface PrivateRedis {
  port: number;
  url: string;
  kill(): Promise<void>;
  /** Kill and start again: with its data when persisted, unless `empty`. */
  restart(opts?: { empty?: boolean }): Promise<void>;
}

/** `persist`: append-only file in a directory of its own, so a restart comes back with its data. */
export async function startRedis(t: TestLike, opts: { persist?: boolean } = {}): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const dir = opts.persist ? mkdtempSync(join(tmpdir(), 'otesse-redis-')) : undefined;
  if (dir) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const persistence = dir ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] : ['--appendonly', 'no'];
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('private redis-server did not start');
  };
  const kill = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await done;
  };
  await launch();
  t.teardown(kill);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async (o = {}) => {
      await kill();
      if (o.empty && dir) for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
      await launch();
    },
  };
}
