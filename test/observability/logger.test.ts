import { Writable } from 'node:stream';
import t from 'tap';
import { generateKey } from '../../src/domain/key-format.js';
import { createLogger, scrub } from '../../src/observability/logger.js';
import { ADMIN_TOKEN, capturedLogs, createKey, startTestApp } from '../helpers/app.js';
import { leaksIn } from '../helpers/secrets.js';

function capture(level = 'debug') {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  });
  return { log: createLogger(level, sink), lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

t.test('scrub cuts keys to prefix and four id characters, and bearer credentials', async (t) => {
  const { key } = generateKey('live');
  t.equal(scrub(`use ${key} now`), `use ${key.slice(0, 19)}…[redacted] now`);
  t.equal(scrub(scrub(key)), scrub(key), 'scrubbing twice changes nothing');
  t.equal(scrub(`Authorization: Bearer ${ADMIN_TOKEN}`), 'Authorization: Bearer [redacted]');
});

t.test('no key in any field, message, error or binding; lines stay valid JSON', async (t) => {
  const { key } = generateKey('test');
  const { log, lines, text } = capture();
  log.info({ key, nested: { note: `x ${key}`, list: [key] } }, `msg ${key}`);
  log.debug({ token: 'whatever-it-is', authorization: `Bearer ${ADMIN_TOKEN}` }, 'named secret fields');
  log.warn('format %s', key);
  log.error(new Error(`bare ${key}`));
  log.error({ err: new Error(`wrapped ${key}`) }, 'wrapped');
  log.child({ request_id: key }).info('child');
  t.equal(lines.length, 6, 'every line is JSON');
  t.same(leaksIn(text(), [key]), []);
  t.notOk(text().includes(ADMIN_TOKEN));
  t.equal(lines[0]?.key, '[redacted]');
  t.equal(lines[1]?.token, '[redacted]');
  t.equal(lines[3]?.msg, `bare ${key.slice(0, 19)}…[redacted]`, 'the message pino takes from an Error is scrubbed');
  t.equal(lines[5]?.request_id, `${key.slice(0, 19)}…[redacted]`, 'child bindings are scrubbed');
});

t.test('request logs show method, url and status (and no key)', async (t) => {
  const app = await startTestApp(t);
  const k = await createKey(app, 'acct_log');
  const from = capturedLogs.length;
  const res = await fetch(`${app.url}/v1/accounts/acct_log/keys?limit=1`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-request-id': k.secret },
  });
  t.equal(res.status, 200);
  const lines = capturedLogs.slice(from).map((l) => JSON.parse(l) as Record<string, any>);
  const incoming = lines.find((l) => l.msg === 'incoming request');
  const completed = lines.find((l) => l.msg === 'request completed');
  t.same(incoming?.req, { method: 'GET', url: '/v1/accounts/acct_log/keys?limit=1', ip: '127.0.0.1' });
  t.same(completed?.res, { statusCode: 200 });
  t.same(leaksIn(capturedLogs.slice(from).join(''), [k.secret]), [], 'a key sent as x-request-id is not logged');
});
