// Redis over TLS as an operator meets it: rediss:// with REDIS_TLS_CA, and Sentinels and servers that
// speak TLS only, with certificates this test makes. The service trusts its caches through them (the
// lease travels over TLS); a CA that did not sign the servers' certificates, or a password they refuse,
// stops start-up with one line naming the setting, rather than running on unreachable Redis forever.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { startTestApp, testEnv, type TestApp } from '../helpers/app.js';
import { makePki } from '../helpers/ops/certs.js';
import { freePort } from '../helpers/redis-server.js';
import { startSentinelGroup } from '../helpers/redis-sentinel.js';
import { MAIN, waitFor } from '../helpers/replica.js';

const PASSWORD = 'redis-password-0123456789';

/** A TLS-only redis-server with the test PKI's server certificate. */
async function tlsRedis(t: Test, pki: ReturnType<typeof makePki>) {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--tls-cert-file',
      pki.server.cert,
      '--tls-key-file',
      pki.server.key,
      '--tls-ca-cert-file',
      pki.ca,
      '--tls-auth-clients',
      'no',
      '--requirepass',
      PASSWORD,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  const up = await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    5000,
  );
  if (!up) throw new Error('TLS redis-server did not start');
  return port;
}

/** Run the built service with this environment until it exits; resolves exit code and stderr. */
function run(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => {
      stderr += String(c);
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`did not exit: ${stderr}`));
    }, 20_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** A key created and authenticated twice: the second answer comes from memory, which needs the lease over Redis. */
async function servesFromCache(t: Test, app: TestApp) {
  t.ok(
    await waitFor(async () => app.invalidator.healthy, 10_000),
    'caches trusted: heartbeats and subscription work over TLS',
  );
  const created = await app.api('POST', '/v1/accounts/acct_1/keys', {
    label: 'tls',
    scopes: ['bookings:read'],
    environment: 'live',
  });
  t.equal(created.status, 201);
  t.equal((await app.authenticate({ key: created.body.secret })).allowed, true, 'authenticated');
  t.equal((await app.authenticate({ key: created.body.secret })).allowed, true, 'and again');
  return created.body.id as string;
}

function expectOneLine(t: Test, out: { code: number | null; stderr: string }, variable: RegExp, secret?: string) {
  t.not(out.code, 0, `exit code ${out.code}`);
  const lines = out.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `one line: ${out.stderr}`);
  t.match(lines[0], variable);
  if (secret) t.notOk(out.stderr.includes(secret), 'the password is not printed');
}

t.test(
  'rediss:// with REDIS_TLS_CA: cache and bus over TLS; a wrong CA or password stops start-up naming the setting',
  async (t) => {
    const pki = makePki(t);
    const port = await tlsRedis(t, pki);
    const url = `rediss://127.0.0.1:${port}`;
    const app = await startTestApp(t, { REDIS_URL: url, REDIS_TLS_CA: pki.ca, REDIS_PASSWORD: PASSWORD });
    const id = await servesFromCache(t, app);
    const direct = new Redis(url, { tls: { ca: readFileSync(pki.ca) }, password: PASSWORD });
    t.teardown(() => direct.disconnect());
    t.ok(
      await direct.exists(`${app.env.REDIS_PREFIX}k:${id}`),
      'the verified key is in the shared cache on the TLS server',
    );

    const env = await testEnv(t, { REDIS_URL: url, REDIS_PASSWORD: PASSWORD });
    expectOneLine(
      t,
      await run({ ...env, REDIS_TLS_CA: pki.stranger.ca }),
      /REDIS_TLS_CA: the Redis server's certificate is not signed by this CA/,
    );
    expectOneLine(t, await run(env), /REDIS_TLS_CA: /);
    expectOneLine(
      t,
      await run({ ...env, REDIS_TLS_CA: pki.ca, REDIS_PASSWORD: 'not-the-password-at-all' }),
      /^.*REDIS_PASSWORD: refused by the Redis server$/,
      'not-the-password-at-all',
    );
    expectOneLine(t, await run({ ...env, REDIS_TLS_CA: '/nonexistent/ca.pem' }), /REDIS_TLS_CA: cannot read the file/);
  },
);

t.test(
  'Sentinels and servers over TLS only: the service finds the primary through them; a wrong CA stops start-up',
  async (t) => {
    const pki = makePki(t);
    const group = await startSentinelGroup(t, {
      replicas: 1,
      sentinels: 1,
      tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca },
      password: PASSWORD,
    });
    const env = await testEnv(t, group.env);
    delete env.REDIS_URL;
    const app = await startTestApp(t, {}, env);
    await servesFromCache(t, app);

    expectOneLine(
      t,
      await run({ ...env, REDIS_TLS_CA: pki.stranger.ca }),
      /REDIS_TLS_CA: the Sentinel 127\.0\.0\.1:\d+'s certificate is not signed by this CA/,
    );
    expectOneLine(
      t,
      await run({ ...env, REDIS_SENTINEL_NAME: 'elsewhere' }),
      /REDIS_SENTINEL_NAME: no Sentinel watches a master group of that name/,
    );
  },
);
