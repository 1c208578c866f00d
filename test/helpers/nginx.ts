import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './harness/process.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A port that was free a moment ago (nginx cannot be told to pick one). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/**
 * A private nginx (the machine's binary; `.ci/run` installs Debian's nginx, which has auth_request):
 * its own prefix, pid and logs in a temporary directory, in the foreground, stopped at teardown.
 * `http` is the body of the http {} block; it listens on `port`.
 */
export async function startNginx(t: TestLike, http: (port: number) => string): Promise<{ port: number; dir: string }> {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'pipe' });
  } catch (err) {
    throw new Error('nginx is not installed: apt-get install -y nginx (.ci/run does it)', { cause: err });
  }
  const dir = mkdtempSync(join(tmpdir(), 'otesse-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  const port = await freePort();
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k, i) => `${k}_temp_path ${join(dir, ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'][i]!)};`)
    .join('\n  ');
  const conf = `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  ${temp}
${http(port)}
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const proc = spawn('nginx', ['-p', dir, '-c', confPath, '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += String(c);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  t.teardown(async () => {
    proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  if (!(await waitFor(() => proc.exitCode === null && accepts(port), 10_000, 20))) {
    let log = '';
    try {
      log = readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      /* none */
    }
    throw new Error(`nginx did not start: ${stderr}${log}`);
  }
  return { port, dir };
}
