import t from 'tap';
import { parseKey } from '../../src/domain/key-format.js';
import { SCOPES } from '../../src/domain/scopes.js';
import { ADMIN_TOKEN, LIMITED_TOKEN, createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { accountState, assertProblem, rawRequest } from '../helpers/http.js';
import { leakedLogLines } from '../helpers/secrets.js';

const BODY_LIMIT = 8192;
const DAY = 24 * 3600 * 1000;
const app: TestApp = await startTestApp(t, { BODY_LIMIT_BYTES: String(BODY_LIMIT) });

const KEY_FIELDS = [
  'id',
  'account_id',
  'label',
  'environment',
  'scopes',
  'allowed_ips',
  'status',
  'redacted',
  'created_at',
  'created_by',
  'expires_at',
  'revoked_at',
  'rotation_due_at',
  'last_used_at',
  'last_used_ip',
  'replaces',
  'replaced_by',
  'enabled',
  'rate_limits',
  'remaining_uses',
  'refill',
  'metadata',
];
const VALID = { label: 'ok', scopes: ['bookings:read'], environment: 'live' };

/** Every full key this file was given: none may show up in a log line. */
const issued: string[] = [];
async function issue(account: string, body: Record<string, unknown> = {}) {
  const created = await createKey(app, account, body);
  issued.push(created.secret);
  return created;
}
const keys = (account: string) => `/v1/accounts/${account}/keys`;
const keyPath = (account: string, id: string, suffix = '') => `/v1/accounts/${account}/keys/${id}${suffix}`;
const near = (iso: unknown, ms: number, slack = 5000) =>
  typeof iso === 'string' && Math.abs(Date.parse(iso) - ms) <= slack;

t.test('POST keys: 201 with the key resource and, this once, the secret', async (t) => {
  const before = Date.now();
  const expires = new Date(Date.now() + 30 * DAY).toISOString();
  const res = await app.api('POST', keys('acct_create'), {
    label: '  billing sync ',
    scopes: ['invoices:read', 'invoices:write'],
    environment: 'test',
    allowed_ips: ['10.0.0.0/8', '::ffff:192.0.2.1', '2001:DB8::/32'],
    expires_at: expires,
  });
  t.equal(res.status, 201);
  t.match(res.headers.get('content-type'), /^application\/json/);
  const k = res.body;
  issued.push(k.secret);
  t.same(Object.keys(k).sort(), [...KEY_FIELDS, 'secret'].sort(), 'the resource fields plus secret');
  t.equal(parseKey(k.secret)?.keyId, k.id, 'the secret is the full key, of this id');
  t.equal(parseKey(k.secret)?.environment, 'test');
  t.match(k.id, /^key_[0-9A-Za-z]{12}$/);
  t.equal(k.account_id, 'acct_create');
  t.equal(k.label, 'billing sync');
  t.equal(k.environment, 'test');
  t.same(k.scopes, ['invoices:read', 'invoices:write']);
  t.equal(k.label, 'billing sync', 'the label is trimmed');
  t.same(k.allowed_ips, ['10.0.0.0/8', '192.0.2.1', '2001:db8::/32'], 'addresses are normalised');
  t.equal(k.status, 'active');
  t.equal(k.redacted, `otesse_test_sk_${k.id.slice(4)}…${k.secret.slice(-4)}`);
  t.equal(k.created_by, 'admin', 'the token name is the actor');
  t.ok(near(k.created_at, before), 'created now');
  t.equal(Date.parse(k.rotation_due_at) - Date.parse(k.created_at), 90 * DAY, 'rotation due after 90 days');
  t.equal(k.expires_at, expires);
  for (const field of ['revoked_at', 'last_used_at', 'last_used_ip', 'replaces', 'replaced_by'])
    t.equal(k[field], null, `${field} null`);

  const allowed = await app.authenticate({ key: k.secret, ip: '10.9.9.9', scope: 'invoices:write' });
  t.equal(allowed.allowed, true, 'the key works at once');

  const got = await app.api('GET', keyPath('acct_create', k.id));
  t.equal(got.status, 200);
  const { secret: _secret, ...resource } = k;
  t.same(got.body, resource, 'GET shows the same resource, without the secret');

  const edge = await app.api('POST', keys('acct_create'), {
    ...VALID,
    label: 'é'.repeat(100),
    allowed_ips: Array.from({ length: 100 }, (_, i) => `10.1.${i}.0/24`),
  });
  t.equal(edge.status, 201, 'a label of 100 characters and 100 allowed_ips are accepted');
  issued.push(edge.body.secret);
  t.equal(edge.body.allowed_ips.length, 100);
});

t.test('POST keys: every invalid body is a 400 naming the field, and changes nothing', async (t) => {
  const account = 'acct_invalid';
  await issue(account);
  const before = await accountState(app, account);
  const cases: [string, unknown, string[]][] = [
    ['no label', { scopes: ['bookings:read'], environment: 'live' }, ['label']],
    ['an empty label', { ...VALID, label: '' }, ['label']],
    ['a label of 101 characters', { ...VALID, label: 'x'.repeat(101) }, ['label']],
    ['no scopes', { label: 'x', environment: 'live' }, ['scopes']],
    ['an empty scope list', { ...VALID, scopes: [] }, ['scopes']],
    ['an unknown scope', { ...VALID, scopes: ['bookings:read', 'bookings:delete'] }, ['scopes/1']],
    ['a wildcard scope', { ...VALID, scopes: ['*'] }, ['scopes/0']],
    ['no environment', { label: 'x', scopes: ['bookings:read'] }, ['environment']],
    ['an unknown environment', { ...VALID, environment: 'prod' }, ['environment']],
    ['an unknown field', { ...VALID, owner: 'me' }, ['owner']],
    ['a chosen secret', { ...VALID, secret: 'mine-mine-mine-mine' }, ['secret']],
    [
      '101 allowed_ips',
      { ...VALID, allowed_ips: Array.from({ length: 101 }, (_, i) => `10.2.${i}.1`) },
      ['allowed_ips'],
    ],
    ['an invalid address', { ...VALID, allowed_ips: ['10.0.0.1', '1.2.3'] }, ['allowed_ips/1']],
    ['a leading-zero address', { ...VALID, allowed_ips: ['01.2.3.4'] }, ['allowed_ips/0']],
    ['an invalid CIDR', { ...VALID, allowed_ips: ['10.0.0.0/33'] }, ['allowed_ips/0']],
    ['expires_at in the past', { ...VALID, expires_at: new Date(Date.now() - 60_000).toISOString() }, ['expires_at']],
    ['expires_at not a date', { ...VALID, expires_at: 'tomorrow' }, ['expires_at']],
    ['an array body', [VALID], ['body']],
  ];
  for (const [what, body, paths] of cases) {
    const res = await app.api('POST', keys(account), body);
    t.test(what, async (t) => assertProblem(t, res, 400, paths));
  }
  const badJson = await rawRequest(app, 'POST', keys(account), '{"label": ', { 'content-type': 'application/json' });
  assertProblem(t, badJson, 400);
  t.same(await accountState(app, account), before, 'no key and no audit entry were added');
});

const KEY_ROUTES = (account: string, id: string): [string, string, unknown?][] => [
  ['POST', keys(account), VALID],
  ['GET', keys(account)],
  ['GET', keyPath(account, id)],
  ['PATCH', keyPath(account, id), { label: 'changed' }],
  ['POST', keyPath(account, id, '/revoke'), {}],
  ['POST', keyPath(account, id, '/rotate'), {}],
  ['GET', keyPath(account, id, '/activity')],
  ['POST', `${keys(account)}/revoke-all`, {}],
  ['GET', `/v1/accounts/${account}/audit-log`],
];

t.test('401 without a valid admin token, on every account route, changing nothing', async (t) => {
  const account = 'acct_auth';
  const k = await issue(account);
  const before = await accountState(app, account);
  const headersVariants = [
    undefined,
    'Bearer wrong-token-0123456789abcdef',
    `Basic ${ADMIN_TOKEN}`,
    'Bearer',
    `Bearer ${ADMIN_TOKEN}x`,
    ADMIN_TOKEN,
  ];
  for (const [method, path, body] of KEY_ROUTES(account, k.id)) {
    for (const authorization of headersVariants) {
      const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
      if (authorization) headers.authorization = authorization;
      const res = await rawRequest(
        app,
        method,
        path,
        body === undefined ? undefined : JSON.stringify(body),
        headers,
        null,
      );
      t.test(`${method} ${path} with ${JSON.stringify(authorization?.slice(0, 12))}`, async (t) => {
        assertProblem(t, res, 401);
        t.notOk(JSON.stringify(res.body).includes(ADMIN_TOKEN), 'the token is not echoed');
      });
    }
  }
  t.same(await accountState(app, account), before);
  t.equal((await app.authenticate({ key: k.secret })).allowed, true, 'the key was neither revoked nor rotated');
});

t.test('403 for a token limited to another account; it works on its own account', async (t) => {
  const account = 'acct_other';
  const k = await issue(account);
  const before = await accountState(app, account);
  for (const [method, path, body] of KEY_ROUTES(account, k.id)) {
    assertProblem(t, await app.api(method, path, body, LIMITED_TOKEN), 403);
  }
  t.same(await accountState(app, account), before);
  t.equal((await app.authenticate({ key: k.secret })).allowed, true);

  const own = await app.api('POST', keys('acct_limited'), VALID, LIMITED_TOKEN);
  t.equal(own.status, 201, 'the limited token creates keys on its own account');
  issued.push(own.body.secret);
  t.equal(own.body.created_by, 'limited');
  const list = await app.api('GET', keys('acct_limited'), undefined, LIMITED_TOKEN);
  t.equal(list.status, 200);
  t.same(
    list.body.data.map((r: { id: string }) => r.id),
    [own.body.id],
  );
  const audit = await app.api('GET', '/v1/accounts/acct_limited/audit-log', undefined, LIMITED_TOKEN);
  t.equal(audit.body.data[0].actor, 'limited', 'the audit names the token');
  assertProblem(t, await app.api('GET', keyPath('acct_limited', k.id), undefined, LIMITED_TOKEN), 404, undefined);
});

t.test('404 for unknown keys, keys of another account and unknown routes', async (t) => {
  const account = 'acct_404';
  const k = await issue(account);
  const before = await accountState(app, account);
  const actions: [string, string, unknown?][] = [
    ['GET', ''],
    ['PATCH', '', { label: 'x' }],
    ['POST', '/revoke', {}],
    ['POST', '/rotate', {}],
    ['GET', '/activity'],
  ];
  for (const [method, suffix, body] of actions) {
    assertProblem(t, await app.api(method, keyPath(account, 'key_000000000000', suffix), body), 404);
    assertProblem(t, await app.api(method, keyPath('acct_elsewhere', k.id, suffix), body), 404);
  }
  for (const [method, path] of [
    ['GET', '/nope'],
    ['GET', '/v1/keys'],
    ['DELETE', keyPath(account, k.id)],
    ['PUT', keys(account)],
    ['POST', '/v1/scopes'],
  ]) {
    const res = await app.api(method as string, path as string);
    assertProblem(t, res, 404);
  }
  t.same(await accountState(app, account), before);
  t.equal((await app.api('GET', keyPath(account, k.id))).body.status, 'active');
  assertProblem(t, await app.api('GET', keyPath(account, 'not-a-key-id')), 400, ['keyId']);
  assertProblem(t, await app.api('GET', keys('bad account!')), 400, ['accountId']);
});

t.test('409 for changes a key cannot take in its state, changing nothing', async (t) => {
  const account = 'acct_409';
  const revoked = await issue(account);
  t.equal((await app.api('POST', keyPath(account, revoked.id, '/revoke'), {})).status, 200);
  const rotated = await issue(account);
  const rotation = await app.api('POST', keyPath(account, rotated.id, '/rotate'), { expire_previous_in: 600 });
  t.equal(rotation.status, 201);
  issued.push(rotation.body.secret);
  const expired = await issue(account);
  const expiring = await app.api('POST', keyPath(account, expired.id, '/rotate'), { expire_previous_in: 0 });
  t.equal(expiring.status, 201);
  issued.push(expiring.body.secret);

  const before = await accountState(app, account);
  assertProblem(t, await app.api('PATCH', keyPath(account, revoked.id), { label: 'back to life' }), 409);
  assertProblem(t, await app.api('POST', keyPath(account, revoked.id, '/rotate'), {}), 409);
  assertProblem(t, await app.api('POST', keyPath(account, rotated.id, '/rotate'), {}), 409);
  assertProblem(t, await app.api('POST', keyPath(account, expired.id, '/rotate'), {}), 409);
  t.same(await accountState(app, account), before);
});

t.test('413 for a body over BODY_LIMIT_BYTES, changing nothing', async (t) => {
  const account = 'acct_413';
  const k = await issue(account);
  const before = await accountState(app, account);
  const big = JSON.stringify({ ...VALID, label: 'x'.repeat(BODY_LIMIT) });
  assertProblem(t, await rawRequest(app, 'POST', keys(account), big, { 'content-type': 'application/json' }), 413);
  assertProblem(
    t,
    await rawRequest(app, 'PATCH', keyPath(account, k.id), big, { 'content-type': 'application/json' }),
    413,
  );
  const justUnder = JSON.stringify({ ...VALID, label: 'x'.repeat(BODY_LIMIT - 200) });
  assertProblem(
    t,
    await rawRequest(app, 'POST', keys(account), justUnder, { 'content-type': 'application/json' }),
    400,
    ['label'],
  );
  t.same(await accountState(app, account), before);
});

t.test('415 for bodies that are not JSON, changing nothing', async (t) => {
  const account = 'acct_415';
  const k = await issue(account);
  const before = await accountState(app, account);
  const bodies: [string, string][] = [
    ['text/plain', JSON.stringify(VALID)],
    ['application/x-www-form-urlencoded', 'label=x&scopes=bookings:read&environment=live'],
    ['application/xml', '<key><label>x</label></key>'],
    ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="label"\r\n\r\nx\r\n--x--'],
  ];
  for (const [type, body] of bodies) {
    assertProblem(t, await rawRequest(app, 'POST', keys(account), body, { 'content-type': type }), 415);
    assertProblem(
      t,
      await rawRequest(app, 'POST', keyPath(account, k.id, '/revoke'), body, { 'content-type': type }),
      415,
    );
  }
  t.same(await accountState(app, account), before);
  t.equal((await app.authenticate({ key: k.secret })).allowed, true);
});

t.test('list: cursor pagination over several pages, no duplicates, no gaps, newest first', async (t) => {
  const account = 'acct_page';
  const created: string[] = [];
  for (let batch = 0; batch < 5; batch++) {
    // Five at once, so that several keys share a creation millisecond.
    const made = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        issue(account, { label: `k${batch}.${i}`, environment: i % 2 ? 'test' : 'live' }),
      ),
    );
    created.push(...made.map((m) => m.id));
  }
  const seen: { id: string; created_at: string }[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await app.api(
      'GET',
      `${keys(account)}?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    t.equal(res.status, 200);
    t.ok(res.body.data.length <= 7);
    t.ok(!('secret' in (res.body.data[0] ?? {})), 'no secret in a list');
    seen.push(...res.body.data);
    cursor = res.body.next_cursor;
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 4, '25 keys in pages of 7');
  const ids = seen.map((k) => k.id);
  t.equal(new Set(ids).size, ids.length, 'no duplicates');
  t.same([...ids].sort(), [...created].sort(), 'no gaps');
  const sorted = [...seen].sort(
    (a, b) => b.created_at.localeCompare(a.created_at) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0),
  );
  t.same(
    ids,
    sorted.map((k) => k.id),
    'newest first, ties by id',
  );

  const dflt = await app.api('GET', keys(account));
  t.equal(dflt.body.data.length, 20, 'default limit 20');
  t.type(dflt.body.next_cursor, 'string');
  const exact = await app.api('GET', `${keys(account)}?limit=25`);
  t.equal(exact.body.data.length, 25);
  t.equal(exact.body.next_cursor, null, 'no cursor when the last page is full');
});

t.test('list filters: environment and status, also across pages', async (t) => {
  const account = 'acct_filter';
  const live = [await issue(account), await issue(account), await issue(account)];
  const test = [await issue(account, { environment: 'test' }), await issue(account, { environment: 'test' })];
  const revoked = await issue(account);
  await app.api('POST', keyPath(account, revoked.id, '/revoke'), {});
  const old = await issue(account, { environment: 'test' });
  const rotated = await app.api('POST', keyPath(account, old.id, '/rotate'), { expire_previous_in: 0 });
  issued.push(rotated.body.secret);
  const ids = async (query: string) => {
    const res = await app.api('GET', `${keys(account)}?${query}`);
    t.equal(res.status, 200, query);
    return (res.body.data as { id: string }[]).map((k) => k.id).sort();
  };
  const sortIds = (list: { id: string }[]) => list.map((k) => k.id).sort();
  t.same(await ids('environment=live'), sortIds([...live, revoked]));
  t.same(await ids('environment=test'), sortIds([...test, old, rotated.body]));
  t.same(await ids('status=active'), sortIds([...live, ...test, rotated.body]));
  t.same(await ids('status=revoked'), [revoked.id]);
  t.same(await ids('status=expired'), [old.id]);
  t.same(await ids('environment=test&status=active'), sortIds([...test, rotated.body]));
  t.same(await ids('in_grace=true'), [], 'a key rotated with no grace is not in grace');
  const statuses = (await app.api('GET', `${keys(account)}?status=expired`)).body.data.map(
    (k: { status: string }) => k.status,
  );
  t.same(statuses, ['expired']);

  const paged: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await app.api(
      'GET',
      `${keys(account)}?environment=test&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    paged.push(
      ...res.body.data.map((k: { id: string; environment: string }) => {
        t.equal(k.environment, 'test');
        return k.id;
      }),
    );
    cursor = res.body.next_cursor;
  } while (cursor && paged.length < 10);
  t.same(paged.sort(), await ids('environment=test'), 'a filter holds across pages');

  const auditCursor = (await app.api('GET', `/v1/accounts/${account}/audit-log?limit=1`)).body.next_cursor as string;
  const bad: [string, string][] = [
    ['environment=prod', 'environment'],
    ['status=deleted', 'status'],
    ['limit=0', 'limit'],
    ['limit=101', 'limit'],
    ['limit=abc', 'limit'],
    ['limit=1.5', 'limit'],
    ['foo=1', 'foo'],
    ['cursor=', 'cursor'],
    ['cursor=not-a-cursor', 'cursor'],
    [`cursor=${Buffer.from('{"c":"yesterday","i":"key_x"}').toString('base64url')}`, 'cursor'],
    [`cursor=${encodeURIComponent(auditCursor)}`, 'cursor'],
  ];
  for (const [query, path] of bad) assertProblem(t, await app.api('GET', `${keys(account)}?${query}`), 400, [path]);
});

t.test('PATCH changes label, scopes, allowed_ips and expires_at, effective at once', async (t) => {
  const account = 'acct_patch';
  const k = await issue(account, { label: 'before', scopes: ['bookings:read', 'bookings:write'] });
  t.equal(
    (await app.authenticate({ key: k.secret, ip: '203.0.113.7', scope: 'bookings:read' })).allowed,
    true,
    'allowed and cached',
  );

  const res = await app.api('PATCH', keyPath(account, k.id), {
    label: 'after',
    scopes: ['bookings:write'],
    allowed_ips: ['10.0.0.0/8'],
  });
  t.equal(res.status, 200);
  t.equal(res.body.label, 'after');
  t.same(res.body.scopes, ['bookings:write']);
  t.same(res.body.allowed_ips, ['10.0.0.0/8']);
  t.type(res.body.propagation, 'object');
  t.notOk('secret' in res.body);
  t.equal(
    (await app.authenticate({ key: k.secret, ip: '10.1.1.1', scope: 'bookings:read' })).reason,
    'SCOPE_NOT_GRANTED',
    'narrowed scopes hold at once',
  );
  t.equal(
    (await app.authenticate({ key: k.secret, ip: '203.0.113.7', scope: 'bookings:write' })).reason,
    'IP_NOT_ALLOWED',
    'narrowed addresses hold at once',
  );
  t.equal((await app.authenticate({ key: k.secret, ip: '10.1.1.1', scope: 'bookings:write' })).allowed, true);

  const expires = new Date(Date.now() + 7 * DAY).toISOString();
  t.equal((await app.api('PATCH', keyPath(account, k.id), { expires_at: expires })).body.expires_at, expires);
  t.equal(
    (await app.api('PATCH', keyPath(account, k.id), { expires_at: null })).body.expires_at,
    null,
    'null removes the expiry',
  );

  const audit = await app.api('GET', `/v1/accounts/${account}/audit-log`);
  const updates = audit.body.data.filter((e: { action: string }) => e.action === 'key.updated');
  t.equal(updates.length, 3);
  t.same(
    updates[2].changes,
    {
      label: { from: 'before', to: 'after' },
      scopes: { from: ['bookings:read', 'bookings:write'], to: ['bookings:write'] },
      allowed_ips: { from: [], to: ['10.0.0.0/8'] },
    },
    'the audit holds what changed, from and to',
  );

  const before = await accountState(app, account);
  const invalid: [unknown, string[]][] = [
    [{}, ['body']],
    [{ label: '' }, ['label']],
    [{ label: 'x'.repeat(101) }, ['label']],
    [{ scopes: [] }, ['scopes']],
    [{ scopes: ['bookings:write', 'root'] }, ['scopes/1']],
    [{ allowed_ips: Array.from({ length: 101 }, (_, i) => `10.3.${i}.1`) }, ['allowed_ips']],
    [{ allowed_ips: ['abc'] }, ['allowed_ips/0']],
    [{ expires_at: new Date(Date.now() - 1000).toISOString() }, ['expires_at']],
    [{ expires_at: 'soon' }, ['expires_at']],
    [{ status: 'revoked' }, ['status']],
    [{ environment: 'test' }, ['environment']],
    [{ label: 'fine', secret: 'x' }, ['secret']],
  ];
  for (const [body, paths] of invalid)
    assertProblem(t, await app.api('PATCH', keyPath(account, k.id), body), 400, paths);
  t.same(await accountState(app, account), before, 'invalid PATCHes changed nothing');

  const same = await app.api('PATCH', keyPath(account, k.id), { label: 'after' });
  t.equal(same.status, 200);
  t.same(await accountState(app, account), before, 'a PATCH that changes nothing leaves no audit entry');
});

t.test('revoke: 200, idempotent (same revoked_at), denied at once', async (t) => {
  const account = 'acct_revoke';
  const k = await issue(account);
  const other = await issue(account);
  t.equal((await app.authenticate({ key: k.secret })).allowed, true, 'allowed and cached');

  const beforeBad = await accountState(app, account);
  assertProblem(t, await app.api('POST', keyPath(account, other.id, '/revoke'), { reason: 'x'.repeat(501) }), 400, [
    'reason',
  ]);
  assertProblem(t, await app.api('POST', keyPath(account, other.id, '/revoke'), { why: 'x' }), 400, ['why']);
  t.same(await accountState(app, account), beforeBad);

  const first = await app.api('POST', keyPath(account, k.id, '/revoke'));
  t.equal(first.status, 200, 'a revoke with no body at all');
  t.equal(first.body.status, 'revoked');
  t.ok(near(first.body.revoked_at, Date.now()));
  t.type(first.body.propagation, 'object');
  t.equal((await app.authenticate({ key: k.secret })).reason, 'KEY_REVOKED', 'denied as soon as the revoke returned');

  const second = await app.api('POST', keyPath(account, k.id, '/revoke'), { reason: 'again' });
  t.equal(second.status, 200);
  t.equal(second.body.status, 'revoked');
  t.equal(second.body.revoked_at, first.body.revoked_at, 'the same revoked_at');
  const audit = await app.api('GET', `/v1/accounts/${account}/audit-log`);
  t.equal(
    audit.body.data.filter((e: { action: string; key_id: string }) => e.action === 'key.revoked' && e.key_id === k.id)
      .length,
    1,
    'one audit entry for two revokes',
  );
  t.equal((await app.api('GET', keyPath(account, k.id))).body.status, 'revoked');
  t.equal((await app.authenticate({ key: other.secret })).allowed, true, 'other keys unaffected');
});

t.test('rotate: 201 with a new key; the old one works through the grace period', async (t) => {
  const account = 'acct_rotate';
  const old = await issue(account, {
    label: 'rotating',
    environment: 'test',
    scopes: ['customers:read', 'customers:write'],
    allowed_ips: ['10.0.0.0/8'],
  });
  t.equal((await app.authenticate({ key: old.secret, ip: '10.0.0.1', scope: 'customers:read' })).allowed, true);

  const before = await accountState(app, account);
  for (const body of [
    { expire_previous_in: -1 },
    { expire_previous_in: 604_801 },
    { expire_previous_in: 'abc' },
    { expire_previous_in: 1.5 },
  ]) {
    assertProblem(t, await app.api('POST', keyPath(account, old.id, '/rotate'), body), 400, ['expire_previous_in']);
  }
  assertProblem(t, await app.api('POST', keyPath(account, old.id, '/rotate'), { grace: 10 }), 400, ['grace']);
  t.same(await accountState(app, account), before, 'a bad rotate changed nothing');

  const t0 = Date.now();
  const res = await app.api('POST', keyPath(account, old.id, '/rotate'), { expire_previous_in: 3600 });
  t.equal(res.status, 201);
  const fresh = res.body;
  issued.push(fresh.secret);
  t.not(fresh.id, old.id);
  t.equal(parseKey(fresh.secret)?.keyId, fresh.id);
  t.equal(fresh.environment, 'test');
  t.equal(fresh.label, 'rotating');
  t.same(fresh.scopes, ['customers:read', 'customers:write']);
  t.same(fresh.allowed_ips, ['10.0.0.0/8']);
  t.equal(fresh.replaces, old.id);
  t.equal(fresh.status, 'active');
  t.equal(fresh.previous.id, old.id);
  t.ok(near(fresh.previous.expires_at, t0 + 3600_000), 'previous.expires_at = now + expire_previous_in');
  t.same(Object.keys(fresh.previous).sort(), ['expires_at', 'id'], 'previous holds id and expires_at only');

  t.equal(
    (await app.authenticate({ key: old.secret, ip: '10.0.0.1', scope: 'customers:read' })).allowed,
    true,
    'the old key works in its grace',
  );
  t.equal(
    (await app.authenticate({ key: fresh.secret, ip: '10.0.0.1', scope: 'customers:write' })).allowed,
    true,
    'the new key works',
  );
  const gotOld = (await app.api('GET', keyPath(account, old.id))).body;
  t.equal(gotOld.replaced_by, fresh.id);
  t.equal(gotOld.expires_at, fresh.previous.expires_at);
  t.equal(gotOld.status, 'active');
  t.same(
    (await app.api('GET', `${keys(account)}?in_grace=true`)).body.data.map((k: { id: string }) => k.id),
    [old.id],
  );
  const audit = (await app.api('GET', `/v1/accounts/${account}/audit-log`)).body.data as {
    action: string;
    key_id: string;
    changes: Record<string, unknown>;
  }[];
  t.equal(audit.find((e) => e.action === 'key.rotated')?.key_id, old.id);
  t.equal(audit.find((e) => e.action === 'key.rotated')?.changes.replaced_by, fresh.id);
  t.equal(audit.find((e) => e.action === 'key.created' && e.key_id === fresh.id)?.changes.replaces, old.id);

  const dflt = await app.api('POST', keyPath(account, fresh.id, '/rotate'));
  t.equal(dflt.status, 201, 'a rotate with no body');
  issued.push(dflt.body.secret);
  t.ok(near(dflt.body.previous.expires_at, Date.now() + DAY), 'the default grace is 24 hours');

  const now = await app.api('POST', keyPath(account, dflt.body.id, '/rotate'), { expire_previous_in: 0 });
  t.equal(now.status, 201);
  issued.push(now.body.secret);
  t.equal(
    (await app.authenticate({ key: dflt.body.secret, ip: '10.0.0.1', scope: 'customers:read' })).reason,
    'KEY_EXPIRED',
    'a zero grace ends the old key at once',
  );
  t.equal((await app.api('GET', keyPath(account, dflt.body.id))).body.status, 'expired');
});

t.test('revoke-all: every active key of the account, optionally one environment', async (t) => {
  const account = 'acct_all';
  const live = [await issue(account), await issue(account), await issue(account)];
  const test = [await issue(account, { environment: 'test' }), await issue(account, { environment: 'test' })];
  const bystander = await issue('acct_all_bystander');
  const path = `${keys(account)}/revoke-all`;

  const before = await accountState(app, account);
  assertProblem(t, await app.api('POST', path, { environment: 'prod' }), 400, ['environment']);
  assertProblem(t, await app.api('POST', path, { everything: true }), 400, ['everything']);
  t.same(await accountState(app, account), before);

  const sandbox = await app.api('POST', path, { environment: 'test', reason: 'sandbox leak' });
  t.equal(sandbox.status, 200);
  t.equal(sandbox.body.revoked, 2);
  for (const k of test) t.equal((await app.authenticate({ key: k.secret })).reason, 'KEY_REVOKED');
  for (const k of live) t.equal((await app.authenticate({ key: k.secret })).allowed, true, 'live keys untouched');

  const all = await app.api('POST', path);
  t.equal(all.status, 200, 'with no body at all');
  t.equal(all.body.revoked, 3);
  for (const k of live) t.equal((await app.authenticate({ key: k.secret })).reason, 'KEY_REVOKED');
  t.equal((await app.authenticate({ key: bystander.secret })).allowed, true, 'other accounts untouched');
  t.equal((await app.api('POST', path, {})).body.revoked, 0, 'nothing left to revoke');
  t.same((await app.api('GET', `${keys(account)}?status=active`)).body.data, []);
  const audit = (await app.api('GET', `/v1/accounts/${account}/audit-log?limit=100`)).body.data as {
    action: string;
    changes: Record<string, unknown>;
  }[];
  t.same(
    audit.filter((e) => e.action === 'keys.revoked_all').map((e) => e.changes.revoked),
    [0, 3, 2],
  );
  t.equal(audit.filter((e) => e.action === 'key.revoked').length, 5);
});

t.test('audit-log: who, what, when, from where; paginated', async (t) => {
  const account = 'acct_audit';
  const k = await issue(account, { label: 'a' });
  await app.api('PATCH', keyPath(account, k.id), { label: 'b' });
  await app.api('POST', keyPath(account, k.id, '/revoke'), { reason: 'done' });
  const res = await app.api('GET', `/v1/accounts/${account}/audit-log`);
  t.equal(res.status, 200);
  t.equal(res.body.next_cursor, null);
  const entries = res.body.data as Record<string, any>[];
  t.same(
    entries.map((e) => e.action),
    ['key.revoked', 'key.updated', 'key.created'],
    'newest first',
  );
  for (const e of entries) {
    t.same(Object.keys(e).sort(), [
      'action',
      'actor',
      'at',
      'changes',
      'count',
      'id',
      'key_id',
      'last_at',
      'source_ip',
    ]);
    t.equal(e.count, 1, 'an ordinary entry stands for one event');
    t.equal(e.last_at, e.at);
    t.type(e.id, 'string');
    t.ok(near(e.at, Date.now(), 60_000));
    t.equal(e.actor, 'admin');
    t.equal(e.key_id, k.id);
    t.equal(e.source_ip, '127.0.0.1');
  }
  t.same(entries[1]?.changes, { label: { from: 'a', to: 'b' } });
  t.equal(entries[0]?.changes.reason, 'done');
  t.equal(entries[2]?.changes.label, 'a');

  const paged: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await app.api(
      'GET',
      `/v1/accounts/${account}/audit-log?limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    t.equal(page.status, 200);
    paged.push(...page.body.data.map((e: { id: string }) => e.id));
    cursor = page.body.next_cursor;
  } while (cursor && paged.length < 10);
  t.same(
    paged,
    entries.map((e) => e.id),
    'pages of one give the same entries, in order',
  );
  const keysCursor = (await app.api('GET', `${keys('acct_page')}?limit=1`)).body.next_cursor as string;
  for (const query of ['limit=0', 'limit=101', 'cursor=zzz', `cursor=${encodeURIComponent(keysCursor)}`, 'key_id=x']) {
    assertProblem(t, await app.api('GET', `/v1/accounts/${account}/audit-log?${query}`), 400);
  }
});

t.test('activity: usage, denials by reason, addresses and admin events', async (t) => {
  const account = 'acct_activity';
  const k = await issue(account, { allowed_ips: ['203.0.113.0/24'], scopes: ['bookings:read'] });
  for (let i = 0; i < 3; i++) await app.authenticate({ key: k.secret, ip: '203.0.113.7', scope: 'bookings:read' });
  await app.authenticate({ key: k.secret, ip: '203.0.113.8', scope: 'bookings:read' });
  for (let i = 0; i < 2; i++) await app.authenticate({ key: k.secret, ip: '203.0.113.7', scope: 'bookings:write' });
  await app.authenticate({ key: k.secret, ip: '198.51.100.1', scope: 'bookings:read' });

  const res = await app.api('GET', keyPath(account, k.id, '/activity'));
  t.equal(res.status, 200);
  const a = res.body;
  t.equal(a.key_id, k.id);
  t.same(a.totals, { allowed: 4, denied: { SCOPE_NOT_GRANTED: 2, IP_NOT_ALLOWED: 1 } });
  const sum = (a.series as { allowed: number; denied: number }[]).reduce(
    (s, h) => ({ allowed: s.allowed + h.allowed, denied: s.denied + h.denied }),
    { allowed: 0, denied: 0 },
  );
  t.same(sum, { allowed: 4, denied: 3 }, 'the hourly series adds up to the totals');
  const byIp = Object.fromEntries((a.addresses as { ip: string; count: number }[]).map((x) => [x.ip, x.count]));
  t.same(byIp, { '203.0.113.7': 3, '203.0.113.8': 1 }, 'addresses of allowed calls');
  const denied = Object.fromEntries(
    (a.denied_addresses as { ip: string; reason: string; count: number }[]).map((x) => [x.ip, [x.reason, x.count]]),
  );
  t.same(
    denied,
    { '203.0.113.7': ['SCOPE_NOT_GRANTED', 2], '198.51.100.1': ['IP_NOT_ALLOWED', 1] },
    'a sample of denied addresses, with the reason',
  );
  t.equal(a.last_used_ip, '203.0.113.8');
  t.same(
    a.events.map((e: { action: string }) => e.action),
    ['key.created'],
  );
  t.ok(Array.isArray(a.alerts));
  t.ok(
    a.alerts.some((x: { type: string; ip?: string }) => x.type === 'new_address'),
    'a new address is an alert',
  );
  const got = (await app.api('GET', keyPath(account, k.id))).body;
  t.equal(got.last_used_ip, '203.0.113.8', 'the key shows its last use');
  t.ok(near(got.last_used_at, Date.now(), 60_000));

  const old = await app.api(
    'GET',
    `${keyPath(account, k.id, '/activity')}?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z`,
  );
  t.equal(old.status, 200);
  t.same(old.body.totals, { allowed: 0, denied: {} }, 'a window before any use is empty');
  for (const query of [
    'from=2020-02-01T00:00:00Z&to=2020-01-01T00:00:00Z',
    'from=yesterday',
    'to=2020-13-01T00:00:00Z',
    'window=1h',
  ]) {
    assertProblem(t, await app.api('GET', `${keyPath(account, k.id, '/activity')}?${query}`), 400);
  }
});

t.test('GET /v1/scopes: the catalog, no token needed', async (t) => {
  const res = await rawRequest(app, 'GET', '/v1/scopes', undefined, {}, null);
  t.equal(res.status, 200);
  t.same(res.body, { data: [...SCOPES] });
  t.same(res.body.data, [
    'bookings:read',
    'bookings:write',
    'customers:read',
    'customers:write',
    'invoices:read',
    'invoices:write',
    'services:read',
    'webhooks:manage',
  ]);
});

t.test('/healthz, /readyz, /metrics', async (t) => {
  const health = await rawRequest(app, 'GET', '/healthz', undefined, {}, null);
  t.equal(health.status, 200);
  t.same(health.body, { status: 'ok' });
  const ready = await rawRequest(app, 'GET', '/readyz', undefined, {}, null);
  t.equal(ready.status, 200);
  t.same(ready.body, { status: 'ready', degraded: [] });
  const metrics = await rawRequest(app, 'GET', '/metrics', undefined, {}, null);
  t.equal(metrics.status, 200);
  t.match(metrics.headers.get('content-type'), /^text\/plain/);
  t.match(String(metrics.body), /otesse_keys_authenticate_total\{[^}]*outcome="allowed"/, 'decisions are counted');
});

t.test('/openapi.json describes every route; /docs serves the UI', async (t) => {
  const res = await rawRequest(app, 'GET', '/openapi.json', undefined, {}, null);
  t.equal(res.status, 200);
  t.type(res.body, 'object', 'valid JSON');
  t.match(res.body.openapi, /^3\./);
  const paths = res.body.paths as Record<string, Record<string, unknown>>;
  const expected: [string, string][] = [
    ['post', '/v1/accounts/{accountId}/keys'],
    ['get', '/v1/accounts/{accountId}/keys'],
    ['get', '/v1/accounts/{accountId}/keys/{keyId}'],
    ['patch', '/v1/accounts/{accountId}/keys/{keyId}'],
    ['post', '/v1/accounts/{accountId}/keys/{keyId}/revoke'],
    ['post', '/v1/accounts/{accountId}/keys/{keyId}/rotate'],
    ['get', '/v1/accounts/{accountId}/keys/{keyId}/activity'],
    ['post', '/v1/accounts/{accountId}/keys/revoke-all'],
    ['get', '/v1/accounts/{accountId}/audit-log'],
    ['get', '/v1/scopes'],
    ['get', '/healthz'],
    ['get', '/readyz'],
    ['get', '/metrics'],
  ];
  for (const [method, path] of expected) t.ok(paths[path]?.[method], `${method.toUpperCase()} ${path} is described`);
  const docs = await fetch(`${app.url}/docs`);
  t.equal(docs.status, 200);
  t.match(docs.headers.get('content-type'), /^text\/html/);
  t.match(await docs.text(), /swagger/i);
});

t.test('production: no Swagger UI at /docs unless ADMIN_API_DOCS=1; /openapi.json stays', async (t) => {
  const production = await startTestApp(t, { NODE_ENV: 'production' });
  const docs = await rawRequest(production, 'GET', '/docs', undefined, {}, null);
  assertProblem(t, docs, 404);
  t.equal(
    (await rawRequest(production, 'GET', '/docs/static/index.html', undefined, {}, null)).status,
    404,
    'nor its files',
  );
  const description = await rawRequest(production, 'GET', '/openapi.json', undefined, {}, null);
  t.equal(description.status, 200);
  t.ok(description.body.paths['/v1/accounts/{accountId}/keys'], 'the description is still served');
  const asked = await startTestApp(t, { NODE_ENV: 'production', ADMIN_API_DOCS: '1' });
  t.equal((await fetch(`${asked.url}/docs`)).status, 200, 'ADMIN_API_DOCS=1 turns it on');
  const off = await startTestApp(t, { ADMIN_API_DOCS: '0' });
  t.equal((await fetch(`${off.url}/docs`)).status, 404, 'ADMIN_API_DOCS=0 turns it off anywhere');
});

t.test('no key created here was ever logged', async (t) => {
  t.ok(issued.length > 50, `${issued.length} keys`);
  t.same(leakedLogLines(issued), []);
});
