// The admin CLI against a real service: every command, --json, the token sources, --help, exit codes.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ADMIN_TOKEN, startTestApp } from './helpers/app.js';
import { freePort } from './helpers/nginx.js';
import { leaksIn } from './helpers/secrets.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const CLI = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stdout, stderr });
      },
    );
  });
}

t.test('help and usage errors', async (t) => {
  const asked = [
    ['--help'],
    ...['create', 'list', 'get', 'revoke', 'rotate', 'activity', 'authenticate'].map((c) => [c, '--help']),
    ...['list', 'create', 'delete', 'test'].map((c) => ['webhooks', c, '--help']),
  ];
  const answers = await Promise.all(asked.map((args) => cli(args)));
  for (const [i, args] of asked.entries()) {
    const r = answers[i]!;
    t.equal(r.code, 0, `${args.join(' ')}: exit 0`);
    t.match(r.stdout, /^Usage: otesse-keys/, `${args.join(' ')}: usage`);
    t.match(r.stdout, /Exit codes:\n {2}0 {2}done/, `${args.join(' ')}: exit codes documented`);
    t.notMatch(r.stdout + r.stderr, /undefined/, 'no "undefined" anywhere');
  }
  t.equal((await cli([])).code, 2, 'no command: usage, exit 2');
  t.equal((await cli(['bogus'])).code, 2, 'unknown command: exit 2');
  const noAccount = await cli(['list'], { OTESSE_ADMIN_TOKEN: ADMIN_TOKEN });
  t.same([noAccount.code, /--account/.test(noAccount.stderr)], [2, true], 'missing --account: exit 2, named');
  const noToken = await cli(['list', '--account', 'acct_1']);
  t.same(
    [noToken.code, /OTESSE_ADMIN_TOKEN/.test(noToken.stderr)],
    [2, true],
    'no token: exit 2, says where to put it',
  );
});

t.test('every command against a running service', async (t) => {
  const app = await startTestApp(t);
  const dir = mkdtempSync(join(tmpdir(), 'otesse-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  const env = { OTESSE_ADMIN_URL: app.url, OTESSE_ADMIN_TOKEN: ADMIN_TOKEN, OTESSE_ACCOUNT: 'acct_cli' };

  const created = await cli(
    [
      '--json',
      'create',
      '--label',
      'cli key',
      '--scope',
      'bookings:read,customers:read',
      '--allowed-ip',
      '203.0.113.0/24',
    ],
    env,
  );
  t.equal(created.code, 0, `create: ${created.stderr}`);
  const key = JSON.parse(created.stdout) as { id: string; secret: string; scopes: string[]; allowed_ips: string[] };
  t.same(
    [key.scopes, key.allowed_ips],
    [['bookings:read', 'customers:read'], ['203.0.113.0/24']],
    'create sent the scopes and addresses',
  );

  // Independent reads at once (each run is a process start).
  const authEnv = { ...env, OTESSE_KEY: key.secret, KEY_SERVICE_ADDR: `127.0.0.1:${app.grpcPort}` };
  const [human, listed, listedJson, got, allowed, wrongScope, activity, activityJson] = await Promise.all([
    cli(['create', '--account', 'acct_cli', '-l', 'second', '-s', 'invoices:read', '-e', 'test'], {
      OTESSE_ADMIN_URL: app.url,
      OTESSE_ADMIN_TOKEN: ADMIN_TOKEN,
    }),
    cli(['list', '--token-file', join(dir, 'token')], { OTESSE_ADMIN_URL: app.url, OTESSE_ACCOUNT: 'acct_cli' }),
    cli(['--json', 'list', '--environment', 'live'], env),
    cli(['get', key.id], env),
    cli(['--json', 'authenticate', '--ip', '203.0.113.7', '--scope', 'bookings:read'], authEnv),
    cli(['authenticate', '--ip', '203.0.113.7', '--scope', 'invoices:read'], authEnv),
    cli(['activity', key.id], env),
    cli(['--json', 'activity', key.id], env),
  ]);
  t.match(human.stdout, /secret: +otesse_test_sk_/, 'human output shows the secret once');
  t.equal(listed.code, 0, `list with --token-file: ${listed.stderr}`);
  t.match(listed.stdout, /^ID +LABEL +ENVIRONMENT/, 'a table');
  t.match(listed.stdout, new RegExp(key.id), 'listing the key');
  t.same(leaksIn(listed.stdout, [key.secret]), [], 'list never shows the secret');
  t.same(
    (JSON.parse(listedJson.stdout) as { data: { id: string }[] }).data.map((k) => k.id),
    [key.id],
    '--json list with a filter',
  );
  t.match(got.stdout, /label: +cli key/, 'get');
  t.same([allowed.code, JSON.parse(allowed.stdout).allowed], [0, true], 'authenticate allowed: exit 0');
  t.same([wrongScope.code, wrongScope.stdout.trim()], [1, 'denied: SCOPE_NOT_GRANTED'], 'denied: exit 1');
  t.equal(activity.code, 0, `activity: ${activity.stderr}`);
  t.match(activity.stdout, /allowed: \d+\ndenied: /, 'activity summary');
  t.match(JSON.parse(activityJson.stdout), { totals: {}, addresses: [], events: [] }, '--json activity');

  const rotated = await cli(['--json', 'rotate', key.id, '--expire-previous-in', '60'], env);
  const next = JSON.parse(rotated.stdout) as { id: string; secret: string; previous: { id: string } };
  t.same([rotated.code, next.previous.id], [0, key.id], 'rotate');
  const revoked = await cli(['revoke', next.id, '--reason', 'cli test'], env);
  t.match([revoked.code, revoked.stdout], [0, new RegExp(`^revoked ${next.id} at `)], 'revoke');
  const afterRevoke = await cli(['authenticate', '--ip', '203.0.113.7', '--scope', 'bookings:read'], {
    ...authEnv,
    OTESSE_KEY: next.secret,
  });
  t.same([afterRevoke.code, afterRevoke.stdout.trim()], [1, 'denied: KEY_REVOKED'], 'the revoked key is denied');

  const closed = await freePort();
  const [missing, invalid, badToken, down, grpcDown] = await Promise.all([
    cli(['get', 'key_AAAAAAAAAAAA'], env),
    cli(['create', '--label', 'x', '--scope', 'bookings:delete'], env),
    cli(['list'], { ...env, OTESSE_ADMIN_TOKEN: 'not-the-token-0123456789' }),
    cli(['list'], { ...env, OTESSE_ADMIN_URL: `http://127.0.0.1:${closed}` }),
    cli(
      [
        'authenticate',
        '--ip',
        '203.0.113.7',
        '--scope',
        'bookings:read',
        '--addr',
        `127.0.0.1:${closed}`,
        '--deadline-ms',
        '300',
      ],
      authEnv,
    ),
  ]);
  t.same([missing.code, /^error: 404/.test(missing.stderr)], [1, true], 'not found: exit 1 with the problem detail');
  t.same([invalid.code, /scopes/.test(invalid.stderr)], [1, true], 'validation failure: exit 1, naming the field');
  t.same([badToken.code, /^error: 401/.test(badToken.stderr)], [1, true], 'wrong token: exit 1');
  t.same(
    [down.code, /cannot reach .*ECONNREFUSED/.test(down.stderr)],
    [3, true],
    `unreachable: exit 3 (${down.stderr.trim()})`,
  );
  t.equal(grpcDown.code, 3, 'key service unreachable: exit 3');
  t.same(leaksIn(grpcDown.stderr + badToken.stderr, [key.secret, next.secret]), [], 'no key in an error');
});

t.test('webhooks list, create, delete and test against a running service and a real receiver', async (t) => {
  const app = await startTestApp(t, { WEBHOOK_ALLOW_PRIVATE: '1' });
  const receiver = await startReceiver(t);
  const env = { OTESSE_ADMIN_URL: app.url, OTESSE_ADMIN_TOKEN: ADMIN_TOKEN, OTESSE_ACCOUNT: 'acct_cli_hooks' };

  // Human output; the endpoint's URL is the command's argument, the admin API is OTESSE_ADMIN_URL.
  const made = await cli(
    ['webhooks', 'create', receiver.url, '--events', 'key.created, key.revoked', '-d', 'on-call'],
    env,
  );
  t.equal(made.code, 0, `create: ${made.stderr}`);
  const secret = /^secret: +(whsec_\S+)$/m.exec(made.stdout)?.[1] ?? '';
  t.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'the signing secret is printed');
  t.equal(made.stdout.split(secret).length, 2, 'once');
  const id = /^id: +(whe_\w+)$/m.exec(made.stdout)?.[1] ?? '';
  t.match(made.stdout, new RegExp(`^url: +${receiver.url}$`, 'm'), 'the endpoint URL');
  t.match(made.stdout, /^events: +key\.created,key\.revoked$/m, 'the events');
  t.match(made.stdout, /^status: +enabled$/m);
  receiver.state.secrets = [secret];

  // --json; the admin API's --url anywhere on the line, beside the endpoint's URL; --events repeated.
  const second = await cli(
    [
      '--url',
      app.url,
      '--json',
      'webhooks',
      'create',
      '--account',
      'acct_cli_hooks',
      `${receiver.url}?second`,
      '--events',
      'key.revoked',
      '--events',
      'key.leaked',
    ],
    { OTESSE_ADMIN_TOKEN: ADMIN_TOKEN },
  );
  t.equal(second.code, 0, `create --json: ${second.stderr}`);
  const other = JSON.parse(second.stdout) as { id: string; url: string; events: string[]; secret: string };
  t.match(other, { url: `${receiver.url}?second`, events: ['key.revoked', 'key.leaked'], secret: /^whsec_/ });

  const [listed, listedJson, sent, sentJson] = await Promise.all([
    cli(['webhooks', 'list'], env),
    cli(['--json', 'webhooks', 'list'], env),
    cli(['webhooks', 'test', id], env),
    cli(['webhooks', 'test', id, '--json'], env),
  ]);
  t.equal(listed.code, 0, `list: ${listed.stderr}`);
  t.match(listed.stdout, /^ID +URL +EVENTS +STATUS +FAILING_SINCE\n/, 'a table');
  t.match(listed.stdout, new RegExp(`^${id} +${receiver.url} +key\\.created,key\\.revoked +enabled +-$`, 'm'));
  t.match(listed.stdout, other.id);
  const data = (JSON.parse(listedJson.stdout) as { data: Record<string, unknown>[] }).data;
  t.same(data.map((e) => e.id).sort(), [id, other.id].sort(), '--json list');
  t.same(leaksIn(listed.stdout + listedJson.stdout, [secret, other.secret]), [], 'list never shows a secret');
  t.equal(sent.code, 0, `test: ${sent.stderr}`);
  const eventId = new RegExp(`^sent webhook\\.test (evt_\\w+) to ${id}$`).exec(sent.stdout.trim())?.[1] ?? '';
  t.match(eventId, /^evt_/, `test says what it sent (${sent.stdout.trim()})`);
  const jsonEventId = (JSON.parse(sentJson.stdout) as { event_id: string }).event_id;
  const got = await receiver.until((r) => [eventId, jsonEventId].every((e) => r.some((x) => x.id === e)));
  t.ok(
    got
      .filter((x) => x.id === eventId || x.id === jsonEventId)
      .every((x) => x.verified && x.event?.type === 'webhook.test'),
    'the receiver gets both test events, verified with the secret create printed',
  );

  const deleted = await cli(['webhooks', 'delete', other.id], env);
  t.same([deleted.code, deleted.stdout.trim()], [0, `deleted ${other.id}`], 'delete');
  const after = await app.api('GET', '/v1/accounts/acct_cli_hooks/webhook-endpoints');
  t.same(
    after.body.data.map((e: { id: string }) => e.id),
    [id],
    'the other endpoint is gone',
  );
  const [again, badEvent, noUrl, empty] = await Promise.all([
    cli(['webhooks', 'delete', other.id], env),
    cli(['webhooks', 'create', receiver.url, '--events', 'key.exploded'], env),
    cli(['webhooks', 'create', '--events', 'key.created'], env),
    cli(['webhooks', 'list', '--account', 'acct_cli_nohooks'], env),
  ]);
  t.same([again.code, /^error: 404/.test(again.stderr)], [1, true], 'deleting it again: 404, exit 1');
  t.same(
    [badEvent.code, /events/.test(badEvent.stderr)],
    [1, true],
    `unknown event: exit 1 (${badEvent.stderr.trim()})`,
  );
  t.same([noUrl.code, /url/.test(noUrl.stderr)], [2, true], `no URL: usage, exit 2 (${noUrl.stderr.trim()})`);
  t.same([empty.code, empty.stdout.trim()], [0, '(no webhook endpoints)'], 'an account without endpoints');
});
