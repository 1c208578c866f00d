// A private PgBouncer (Debian's `pgbouncer`) in front of the shared PostgreSQL (127.0.0.1:5432, trust):
// its own port, config and temp directory, stopped at teardown.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface PgBouncerOptions {
  mode?: 'session' | 'transaction' | 'statement';
  /** Users allowed in (trust: no password); postgres always is. */
  users?: string[];
  /** TLS towards clients: PgBouncer requires it and presents this certificate. */
  tls?: { cert: string; key: string };
  /** Addresses to listen on (all loopback); default 127.0.0.1. */
  listen?: string[];
}

export interface PgBouncer {
  port: number;
  /** The URL of `database` through this PgBouncer, as `user` (postgres by default), `host` 127.0.0.1 by default. */
  url(database: string, opts?: { user?: string; host?: string; params?: string }): string;
  /** What PgBouncer logged so far. */
  log(): string;
  stop(): Promise<void>;
}

// Debian installs it in /usr/sbin, which a non-root PATH may lack.
const PGBOUNCER = existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer';

/** The account PgBouncer runs as: it refuses to run as root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function config(dir: string, port: number, o: PgBouncerOptions): string {
  const tls = o.tls
    ? [
        'client_tls_sslmode = require',
        `client_tls_cert_file = ${join(dir, 'server.crt')}`,
        `client_tls_key_file = ${join(dir, 'server.key')}`,
      ]
    : [];
  return [
    '[databases]',
    '* = host=127.0.0.1 port=5432',
    '[pgbouncer]',
    `listen_addr = ${(o.listen ?? ['127.0.0.1']).join(',')}`,
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'users.txt')}`,
    `pool_mode = ${o.mode ?? 'transaction'}`,
    'default_pool_size = 20',
    'max_client_conn = 200',
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    ...tls,
    '',
  ].join('\n');
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Start a PgBouncer of this test's own; resolves once it accepts connections. */
export async function startPgBouncer(t: TestLike, o: PgBouncerOptions = {}): Promise<PgBouncer> {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-pgbouncer-'));
  const port = await freePort();
  const users = ['postgres', ...(o.users ?? [])];
  writeFileSync(join(dir, 'users.txt'), users.map((u) => `"${u}" ""\n`).join(''));
  if (o.tls) {
    copyFileSync(o.tls.cert, join(dir, 'server.crt'));
    copyFileSync(o.tls.key, join(dir, 'server.key'));
  }
  writeFileSync(join(dir, 'pgbouncer.ini'), config(dir, port, o));
  const account = runAs();
  if (account)
    for (const f of ['', 'users.txt', 'pgbouncer.ini', ...(o.tls ? ['server.crt', 'server.key'] : [])])
      chownSync(join(dir, f), account.uid, account.gid);
  const proc: ChildProcess = spawn(PGBOUNCER, [join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...account,
  });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += String(c);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const log = () => {
    try {
      return readFileSync(join(dir, 'pgbouncer.log'), 'utf8');
    } catch {
      // Before PgBouncer opens its log file (a bad config), what it said is on stderr.
      return stderr;
    }
  };
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(stop);
  for (let i = 0; i < 100 && proc.exitCode === null; i++) {
    if (await accepting(port)) {
      return {
        port,
        log,
        stop,
        url: (database, u = {}) =>
          `postgres://${u.user ?? 'postgres'}@${u.host ?? '127.0.0.1'}:${port}/${database}${u.params ? `?${u.params}` : ''}`,
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pgbouncer did not start: ${log().slice(-500)}`);
}
