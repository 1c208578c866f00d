// Logs for a person at a terminal in development, JSON for everything else: the decision, the
// pretty stream (still redacted: lines are redacted before pino-pretty sees them), and the service
// itself started on a pseudo-terminal (util-linux `script`) in development and in production.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKey } from '../../src/domain/key-format.js';
import { createLogger, wantsPrettyLogs } from '../../src/observability/logger.js';
import { ADMIN_TOKEN, testEnv } from '../helpers/app.js';
import { SERVICE_ARGS, SERVICE_STARTED } from '../helpers/harness/process.js';
import { waitFor } from '../helpers/replica.js';

// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, '').replace(/\r/g, '');
const jsonLines = (text: string) =>
  plain(text)
    .split('\n')
    .filter((l) => l.trim().startsWith('{"'));

t.test('pretty only on a terminal outside production', async (t) => {
  const cases: Array<[string | undefined, boolean | undefined, boolean]> = [
    [undefined, true, true],
    ['development', true, true],
    ['test', true, true],
    ['production', true, false],
    [undefined, false, false],
    [undefined, undefined, false],
    ['development', false, false],
    ['production', false, false],
  ];
  for (const [env, tty, pretty] of cases)
    t.equal(wantsPrettyLogs(env, tty), pretty, `NODE_ENV=${env ?? '(unset)'}, stdout a terminal: ${String(tty)}`);
});

t.test(
  'the pretty stream prints readable lines, not JSON, and still redacts keys, tokens and bearer credentials',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'otesse-pretty-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'out.log');
    const { key } = generateKey('live');
    const log = createLogger('info', undefined, { pretty: true, prettyTo: file });
    log.info(
      { token: 'whatever-it-is', authorization: `Bearer ${ADMIN_TOKEN}`, note: `see ${key}` },
      `key ${key} used`,
    );
    log.child({ request_id: key }).warn('from a child');
    const read = () => {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        return ''; // the worker thread has not created the file yet
      }
    };
    t.ok(await waitFor(() => read().includes('from a child')), 'both lines written');
    const text = read();
    t.same(jsonLines(text), [], 'no JSON line');
    t.match(text, /INFO.*: key otesse_live_sk_\w{4}…\[redacted\] used/, 'a level, then the message');
    t.match(text, /WARN.*: from a child/);
    t.notOk(text.includes(key), 'the key is cut in the message, a field and a child binding');
    t.notOk(text.includes(ADMIN_TOKEN) || text.includes('whatever-it-is'), 'named secret fields are redacted');
    t.match(text, /token: "\[redacted\]"/);
  },
);

/** Start the service on a pseudo-terminal; resolves its output once it has started (and the HTTP port). */
async function onTerminal(t: Test, env: Record<string, string>) {
  const command = ['exec', process.execPath, ...SERVICE_ARGS].map((a) => `'${a}'`).join(' ');
  const proc = spawn('script', ['-qfec', command, '/dev/null'], {
    env: { PATH: process.env.PATH ?? '', TERM: 'xterm', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => {
    out += String(c);
  });
  proc.stderr.on('data', (c: Buffer) => {
    out += String(c);
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
  });
  t.ok(
    await waitFor(() => plain(out).includes(SERVICE_STARTED), 20_000),
    `started on a terminal\n${plain(out).slice(-2000)}`,
  );
  const json = jsonLines(out)
    .map((l) => JSON.parse(l) as { httpPort?: number })
    .find((l) => l.httpPort);
  const port = json?.httpPort ?? Number(/httpPort: (\d+)/.exec(plain(out))?.[1]);
  return { output: () => plain(out), port };
}

t.test('the service on a terminal in development: pretty lines, with a key in a request URL cut', async (t) => {
  const env = await testEnv(t, { LOG_LEVEL: 'info' });
  const { output, port } = await onTerminal(t, env);
  t.same(jsonLines(output()), [], 'no JSON line');
  t.match(output(), /INFO.*otesse key service started/);
  const { key } = generateKey('live');
  await fetch(`http://127.0.0.1:${port}/v1/leaked/${key}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.ok(await waitFor(() => output().includes('request completed')), 'the request logged');
  t.notOk(output().includes(key), 'the key in the URL is cut');
  t.notOk(output().includes(ADMIN_TOKEN), 'no admin token');
});

t.test('the service on a terminal with NODE_ENV=production: JSON lines', async (t) => {
  const env = await testEnv(t, { LOG_LEVEL: 'info', NODE_ENV: 'production' });
  const { output } = await onTerminal(t, env);
  const lines = jsonLines(output());
  t.ok(lines.length >= 2, `${lines.length} JSON lines`);
  t.ok(
    lines.some((l) => l.includes(SERVICE_STARTED)),
    'the start-up line is JSON',
  );
  t.notMatch(output(), /^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN)/m, 'no pretty line');
});
