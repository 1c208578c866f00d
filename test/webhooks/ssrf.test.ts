// The request-forgery guard: webhooks go to public addresses only. The address table is checked with no
// connection at all; the refusals at create and at connection point at a live receiver on 127.0.0.1
// that must see no connection; names are resolved by a stand-in for node:dns where a public address is
// needed (nothing here sends traffic off this machine).
import type { LookupAddress } from 'node:dns';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';
import { newEndpointId, newSigningSecret } from '../../src/domain/webhook.js';
import { refusedRange } from '../../src/transport/webhook/sender.js';
import type * as SenderModule from '../../src/transport/webhook/sender.js';
import { createKey, startTestApp } from '../helpers/app.js';
import { assertProblem } from '../helpers/http.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { deliveriesOf, hooksPath, sqlClient } from '../helpers/webhooks.js';
import { waitFor } from '../helpers/harness/process.js';

t.test('the address table: private, special and IPv4-carrying forms are refused; public unicast is not', async (t) => {
  const refused: [string, RegExp?][] = [
    ['127.0.0.1', /loopback/],
    ['127.1.2.3', /loopback/],
    ['10.0.0.1', /private/],
    ['10.255.255.255', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.254', /private/],
    ['192.168.1.1', /private/],
    ['169.254.169.254', /metadata/],
    ['169.254.1.1', /linkLocal/],
    ['100.64.0.1', /carrierGradeNat/],
    ['100.127.255.254', /carrierGradeNat/],
    ['0.0.0.0', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fe80::1', /linkLocal/],
    ['fc00::1', /uniqueLocal/],
    ['fdff:ffff::1', /uniqueLocal/],
    ['fd00:ec2::254', /metadata/],
    ['ff02::1', /multicast/],
    ['::ffff:10.0.0.1', /private/],
    ['::ffff:127.0.0.1', /loopback/],
    ['::ffff:169.254.169.254', /metadata/],
    ['64:ff9b::7f00:1'],
    ['2002:7f00:1::1'],
    ['::ffff:0:127.0.0.1'],
    ['64:ff9b:1::7f00:1'],
    ['2001::1'],
    ['fec0::1'],
    ['198.18.0.1'],
    ['0.1.2.3'],
    ['[::1]', /loopback/],
  ];
  for (const [address, range] of refused) {
    const why = refusedRange(address);
    t.ok(why !== undefined, `${address} refused (${why})`);
    if (range) t.match(why, range, `${address}: ${why}`);
  }
  for (const address of [
    '8.8.8.8',
    '1.1.1.1',
    '2606:4700::1111',
    '2a00:1450:4001:80b::200e',
    '172.32.0.1',
    '100.128.0.1',
  ])
    t.equal(refusedRange(address), undefined, `${address} allowed`);
  t.equal(refusedRange('example.com'), 'not an address', 'a name is never taken for an address');
});

t.test('WEBHOOK_ALLOW_PRIVATE=1 is refused at load in production', async (t) => {
  const prod = {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://u@db:5432/keys',
    REDIS_URL: 'redis://cache:6379',
    CACHE_SIGNING_KEY: 'k'.repeat(32),
    ADMIN_TOKENS: 'ops:0123456789abcdef',
  };
  t.ok(loadConfig(prod), 'the production configuration loads');
  t.equal(loadConfig({ ...prod, WEBHOOK_ALLOW_PRIVATE: '0' }).WEBHOOK_ALLOW_PRIVATE, '0');
  let err: unknown;
  try {
    loadConfig({ ...prod, WEBHOOK_ALLOW_PRIVATE: '1' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a configuration error');
  t.match((err as Error).message, /^WEBHOOK_ALLOW_PRIVATE: cannot be 1 when NODE_ENV=production/);
  t.equal(loadConfig({ WEBHOOK_ALLOW_PRIVATE: '1' }).WEBHOOK_ALLOW_PRIVATE, '1', 'outside production it may be 1');
});

/** The sender with node:dns replaced: `names` say what each name resolves to; `asked` records each lookup. */
async function senderWithDns(t: Test, names: Record<string, string[]>) {
  const asked: string[] = [];
  const lookup = (host: string, opts: unknown, cb: (e: Error | null, a: LookupAddress[]) => void) => {
    asked.push(host);
    const found = names[host];
    if (!found) return cb(Object.assign(new Error(`${host} not found`), { code: 'ENOTFOUND' }), []);
    cb(
      null,
      found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };
  const mod = await t.mockImport<typeof SenderModule>('../../src/transport/webhook/sender.js', {
    'node:dns': { lookup },
  });
  return { HttpWebhookSender: mod.HttpWebhookSender, asked };
}

t.test(
  'check: the scheme first (no lookup for http: in production), then every address a name resolves to',
  async (t) => {
    const { HttpWebhookSender, asked } = await senderWithDns(t, {
      'hooks.example.com': ['93.184.216.34', '2606:2800:220:1::1'],
      'internal.example.com': ['10.1.2.3'],
      'mixed.example.com': ['93.184.216.34', '127.0.0.1'],
      'meta.example.com': ['169.254.169.254'],
    });
    const prod = new HttpWebhookSender({ allowHttp: false, allowPrivate: false });
    await t.rejects(prod.check('http://example.com/hooks'), { code: 'VALIDATION_FAILED', message: /https/ });
    t.same(asked, [], 'an http: URL is refused before any name is resolved');
    await t.rejects(prod.check('https://user:pw@hooks.example.com/'), { message: /user name or password/ });
    await t.rejects(prod.check('ftp://hooks.example.com/'), { message: /https/ });
    t.same(asked, [], 'nor for a URL with credentials or another scheme');

    await t.resolves(prod.check('https://hooks.example.com/hooks'), 'a name with public addresses only');
    t.same(asked, ['hooks.example.com'], 'resolved by the stand-in, not the network');
    await t.rejects(prod.check('https://internal.example.com/'), {
      message: /internal\.example\.com resolves to 10\.1\.2\.3, a private address/,
    });
    await t.rejects(
      prod.check('https://mixed.example.com/'),
      { message: /127\.0\.0\.1, a loopback address/ },
      'any address refused refuses the name',
    );
    await t.rejects(prod.check('https://meta.example.com/'), { message: /metadata/ });
    await t.rejects(prod.check('https://nowhere.example.com/'), { message: /does not resolve/ });
    await t.rejects(
      prod.check('https://169.254.169.254/latest/meta-data'),
      { message: /metadata/ },
      'a literal is not looked up',
    );
    t.notOk(asked.includes('169.254.169.254'));
  },
);

t.test('send: a name that resolves to a refused address at connection time is never connected to', async (t) => {
  const receiver = await startReceiver(t);
  const { HttpWebhookSender } = await senderWithDns(t, { 'rebind.example.com': ['127.0.0.1'] });
  const sender = new HttpWebhookSender({ allowHttp: true, allowPrivate: false, timeoutMs: 3000 });
  t.teardown(() => sender.close());
  const out = await sender.send({ url: `http://rebind.example.com:${receiver.port}/hooks`, headers: {}, body: '{}' });
  t.equal(out.statusCode, null);
  t.match(out.error, /^refused: rebind\.example\.com resolves to 127\.0\.0\.1, a loopback address/);
  const literal = await sender.send({
    url: `http://[::ffff:127.0.0.1]:${receiver.port}/hooks`,
    headers: {},
    body: '{}',
  });
  t.match(literal.error, /^refused: .*loopback/);
  t.equal(receiver.connections, 0, 'the receiver saw no connection');
});

t.test('without WEBHOOK_ALLOW_PRIVATE: refused at create, and at connection', async (t) => {
  const app = await startTestApp(t, { WEBHOOK_POLL_MS: '200' });
  const sql = await sqlClient(t, app.env.DATABASE_URL as string);
  const receiver = await startReceiver(t);
  const acct = 'acct_ssrf';
  const p = receiver.port;
  const urls = [
    `http://127.0.0.1:${p}/hooks`,
    `http://127.1.2.3:${p}/hooks`,
    `http://[::1]:${p}/hooks`,
    `http://[::ffff:127.0.0.1]:${p}/hooks`,
    `http://0x7f000001:${p}/hooks`,
    `http://2130706433:${p}/hooks`,
    `http://localhost:${p}/hooks`,
  ];
  await t.test('create', async (t) => {
    for (const url of urls) {
      const res = await app.api('POST', hooksPath(acct), { url, events: ['key.created'] });
      assertProblem(t, res, 400, ['url']);
      t.match(res.body.detail, /loopback address: webhooks go to public addresses only/, url);
      t.notOk(JSON.stringify(res.body).includes('whsec_'), 'no secret in the refusal');
    }
    const patchTarget = await sql.query('SELECT count(*)::int AS n FROM webhook_endpoints');
    t.equal(patchTarget.rows[0].n, 0, 'nothing created');
    t.same((await app.api('GET', hooksPath(acct))).body.data, [], 'nothing listed');
    t.same((await app.api('GET', `/v1/accounts/${acct}/audit-log`)).body.data, [], 'nothing audited');
    t.equal(receiver.connections, 0, 'the receiver saw no connection');
  });

  await t.test('connection', async (t) => {
    // As if the name had resolved to a public address when the endpoint was made.
    const id = newEndpointId();
    await sql.query(`INSERT INTO webhook_endpoints (id, account_id, url, events, secret) VALUES ($1, $2, $3, $4, $5)`, [
      id,
      acct,
      `http://localhost:${p}/hooks`,
      ['key.created'],
      newSigningSecret(),
    ]);
    // A PATCH to a loopback URL is refused too: the row keeps its URL.
    const patched = await app.api('PATCH', hooksPath(acct, id), { url: `http://127.0.0.1:${p}/x` });
    assertProblem(t, patched, 400, ['url']);
    await createKey(app, acct);
    let list: any[] = [];
    t.ok(
      await waitFor(async () => (list = await deliveriesOf(app, acct, id))[0]?.attempt_log.length >= 1, 10_000, 100),
      'one attempt made',
    );
    const attempt = list[0].attempt_log[0];
    t.equal(attempt.status_code, null);
    t.match(attempt.error, /^refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
    t.equal(list[0].state, 'pending', 'kept on the retry schedule (the name may resolve elsewhere later)');
    t.equal(receiver.connections, 0, 'the receiver saw no connection');
  });
});
