// Limits and quotas, the admin side: rate limits, the usage quota with its refill, disabling and metadata
// through create, PATCH, the key resource, the audit log, the activity and the OpenAPI description.
import pg from 'pg';
import t from 'tap';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { accountState, assertProblem, rawRequest } from '../helpers/http.js';

const app: TestApp = await startTestApp(t);
const db = new pg.Client({ connectionString: app.env.DATABASE_URL });
await db.connect();
t.teardown(() => db.end());

const VALID = { label: 'limits', scopes: ['bookings:read'], environment: 'live' };
const keys = (account: string) => `/v1/accounts/${account}/keys`;
const keyPath = (account: string, id: string, suffix = '') => `/v1/accounts/${account}/keys/${id}${suffix}`;
const near = (iso: unknown, ms = Date.now(), slack = 5000) =>
  typeof iso === 'string' && Math.abs(Date.parse(iso) - ms) <= slack;
const LIMITS = [
  { name: 'per_second', limit: 10, window_seconds: 1 },
  { name: 'per.day-1', limit: 10_000, window_seconds: 86_400 },
];

interface Entry {
  action: string;
  key_id: string | null;
  changes: Record<string, any>;
}
async function auditOf(account: string, keyId: string): Promise<Entry[]> {
  const res = await app.api('GET', `/v1/accounts/${account}/audit-log?limit=100`);
  return (res.body.data as Entry[]).filter((e) => e.key_id === keyId);
}
async function stored(id: string) {
  const { rows } = await db.query(
    'SELECT version, refilled_at, (SELECT count(*)::int FROM key_changes WHERE key_id = $1) AS changes FROM api_keys WHERE id = $1',
    [id],
  );
  return rows[0] as { version: number; refilled_at: Date | null; changes: number };
}

t.test('create with every new field: the resource, GET, the list and the audit entry show them', async (t) => {
  const account = 'acct_lim_create';
  const metadata = { plan: 'pro', seats: 12, tags: ['eu', 'beta'], owner: { team: 'billing' } };
  const res = await app.api('POST', keys(account), {
    ...VALID,
    rate_limits: LIMITS,
    remaining_uses: 5000,
    refill: { amount: 5000, interval: 'monthly' },
    metadata,
    enabled: false,
  });
  t.equal(res.status, 201, JSON.stringify(res.body));
  const k = res.body;
  t.equal(k.enabled, false);
  t.same(k.rate_limits, LIMITS, 'the limits, in request order');
  t.equal(k.remaining_uses, 5000);
  t.same({ ...k.refill, refilled_at: undefined }, { amount: 5000, interval: 'monthly', refilled_at: undefined });
  t.ok(near(k.refill.refilled_at), 'the current period counts as refilled');
  t.same(k.metadata, metadata);
  t.equal(k.status, 'active', 'disabled is not a status: the key is still active');

  const got = await app.api('GET', keyPath(account, k.id));
  const { secret: _secret, ...resource } = k;
  t.same(got.body, resource, 'GET shows the same');
  const list = await app.api('GET', keys(account));
  t.same(list.body.data[0], resource, 'so does the list');

  const [created] = await auditOf(account, k.id);
  t.equal(created?.action, 'key.created');
  t.match(created?.changes, {
    enabled: false,
    rate_limits: LIMITS,
    remaining_uses: 5000,
    refill: { amount: 5000, interval: 'monthly' },
    metadata: { bytes: Buffer.byteLength(JSON.stringify(metadata)) },
  });
  t.notOk(JSON.stringify(created).includes('billing'), 'the metadata content is not in the audit log, only its size');
});

t.test('create without them: enabled, no limits, unlimited, no refill, no metadata', async (t) => {
  const k = await createKey(app, 'acct_lim_defaults');
  t.same([k.enabled, k.rate_limits, k.remaining_uses, k.refill, k.metadata], [true, [], null, null, null]);
  t.equal((await stored(k.id)).refilled_at, null);
  const zero = await createKey(app, 'acct_lim_defaults', { remaining_uses: 0 });
  t.equal(zero.remaining_uses, 0, 'a quota of 0 is a quota (every call USAGE_EXCEEDED), not unlimited');
});

t.test('PATCH each field: replaced, audited from and to, the version bumped and the change propagated', async (t) => {
  const account = 'acct_lim_patch';
  const k = await createKey(app, account);
  const patch = async (body: Record<string, unknown>) => {
    const before = await stored(k.id);
    const res = await app.api('PATCH', keyPath(account, k.id), body);
    t.equal(res.status, 200, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
    t.type(res.body.propagation, 'object', 'the propagation is reported');
    const after = await stored(k.id);
    t.equal(after.version, before.version + 1, 'the version is bumped');
    t.equal(after.changes, before.changes + 1, 'the change is recorded for every replica');
    const [last] = await auditOf(account, k.id);
    return { body: res.body, audit: last as Entry };
  };

  let r = await patch({ rate_limits: LIMITS });
  t.same(r.body.rate_limits, LIMITS);
  t.same([r.audit.action, r.audit.changes], ['key.updated', { rate_limits: { from: [], to: LIMITS } }]);
  r = await patch({ rate_limits: [LIMITS[1]] });
  t.same(r.body.rate_limits, [LIMITS[1]], 'the list is replaced as a whole');
  r = await patch({ rate_limits: [] });
  t.same(r.body.rate_limits, [], '[] removes every limit');
  t.same(r.audit.changes, { rate_limits: { from: [LIMITS[1]], to: [] } });

  r = await patch({ remaining_uses: 100 });
  t.equal(r.body.remaining_uses, 100);
  t.same(r.audit.changes, { remaining_uses: { from: null, to: 100 } });
  t.ok((await stored(k.id)).refilled_at, 'refilled_at is set with the quota');
  r = await patch({ refill: { amount: 50, interval: 'daily' } });
  t.match(r.body.refill, { amount: 50, interval: 'daily' });
  t.ok(near(r.body.refill.refilled_at));
  t.same(r.audit.changes, { refill: { from: null, to: { amount: 50, interval: 'daily' } } });
  r = await patch({ refill: null });
  t.same([r.body.refill, r.body.remaining_uses], [null, 100], 'refill: null removes the refill, not the quota');
  r = await patch({ refill: { amount: 7, interval: 'monthly' }, remaining_uses: 7 });
  t.same(r.audit.changes, {
    remaining_uses: { from: 100, to: 7 },
    refill: { from: null, to: { amount: 7, interval: 'monthly' } },
  });
  r = await patch({ remaining_uses: null });
  t.same([r.body.remaining_uses, r.body.refill], [null, null], 'remaining_uses: null removes the quota and its refill');
  t.equal((await stored(k.id)).refilled_at, null);

  r = await patch({ metadata: { plan: 'free' } });
  t.same(r.body.metadata, { plan: 'free' });
  t.same(r.audit.changes, { metadata: { from_bytes: null, to_bytes: 15 } }, 'metadata is audited by its size');
  r = await patch({ metadata: { plan: 'enterprise', region: 'eu' } });
  t.same(r.audit.changes, { metadata: { from_bytes: 15, to_bytes: 35 } });
  r = await patch({ metadata: null });
  t.equal(r.body.metadata, null, 'null clears the metadata');

  r = await patch({ enabled: false });
  t.equal(r.body.enabled, false);
  t.same(
    [r.audit.action, r.audit.changes],
    ['key.disabled', { enabled: { from: true, to: false } }],
    'disabling alone is key.disabled',
  );
  r = await patch({ enabled: true });
  t.same(
    [r.audit.action, r.audit.changes],
    ['key.enabled', { enabled: { from: false, to: true } }],
    'enabling alone is key.enabled',
  );
  r = await patch({ enabled: false, label: 'off' });
  t.same(
    [r.audit.action, Object.keys(r.audit.changes).sort()],
    ['key.updated', ['enabled', 'label']],
    'with other fields: key.updated',
  );
});

t.test(
  'a PATCH that sets the values the key already has changes nothing (metadata compared whatever its key order)',
  async (t) => {
    const account = 'acct_lim_same';
    const k = await createKey(app, account, {
      rate_limits: LIMITS,
      remaining_uses: 3,
      metadata: { b: 1, a: { d: 2, c: 3 } },
    });
    const before = await stored(k.id);
    const entries = (await auditOf(account, k.id)).length;
    const res = await app.api('PATCH', keyPath(account, k.id), {
      rate_limits: LIMITS,
      remaining_uses: 3,
      enabled: true,
      metadata: { a: { c: 3, d: 2 }, b: 1 },
    });
    t.equal(res.status, 200);
    t.same(await stored(k.id), before, 'no version, no change recorded');
    t.equal((await auditOf(account, k.id)).length, entries, 'no audit entry');
  },
);

t.test(
  'what a PATCH sets, Authenticate answers at once: KEY_DISABLED, back again, the new metadata, USAGE_EXCEEDED at 0',
  async (t) => {
    const account = 'acct_lim_auth';
    const k = await createKey(app, account, { metadata: { plan: 'pro' } });
    const call = () => app.authenticate({ key: k.secret, ip: '192.0.2.1', scope: 'bookings:read' });
    const first = await call();
    t.equal(first.allowed, true);
    t.same(JSON.parse(first.metadata ?? ''), { plan: 'pro' }, 'the metadata comes with the answer');
    await app.api('PATCH', keyPath(account, k.id), { enabled: false });
    t.equal((await call()).reason, 'KEY_DISABLED', 'disabled as soon as the PATCH returned');
    await app.api('PATCH', keyPath(account, k.id), { enabled: true, metadata: { plan: 'enterprise' } });
    const back = await call();
    t.equal(back.allowed, true, 'enabled again');
    t.same(JSON.parse(back.metadata ?? ''), { plan: 'enterprise' }, 'with the new metadata');
    await app.api('PATCH', keyPath(account, k.id), { remaining_uses: 0 });
    t.equal((await call()).reason, 'USAGE_EXCEEDED', 'a quota of 0 refuses the next call');
  },
);

t.test('enabling does not revive a revoked or an expired key', async (t) => {
  const account = 'acct_lim_revive';
  const revoked = await createKey(app, account);
  await app.api('PATCH', keyPath(account, revoked.id), { enabled: false });
  await app.api('POST', keyPath(account, revoked.id, '/revoke'), {});
  assertProblem(t, await app.api('PATCH', keyPath(account, revoked.id), { enabled: true }), 409);
  t.equal((await app.api('GET', keyPath(account, revoked.id))).body.status, 'revoked');

  const expired = await createKey(app, account, { enabled: false });
  await db.query("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1", [expired.id]);
  const res = await app.api('PATCH', keyPath(account, expired.id), { enabled: true });
  t.equal(res.status, 200);
  t.same([res.body.enabled, res.body.status], [true, 'expired'], 'enabled, and still expired');
});

t.test('rotation carries the limits, the quota and the metadata over to the new key', async (t) => {
  const account = 'acct_lim_rotate';
  const k = await createKey(app, account, {
    rate_limits: LIMITS,
    remaining_uses: 40,
    refill: { amount: 40, interval: 'daily' },
    metadata: { plan: 'pro' },
  });
  const res = await app.api('POST', keyPath(account, k.id, '/rotate'), {});
  t.equal(res.status, 201);
  t.same(
    [res.body.rate_limits, res.body.remaining_uses, res.body.metadata, res.body.enabled],
    [LIMITS, 40, { plan: 'pro' }, true],
  );
  t.match(res.body.refill, { amount: 40, interval: 'daily' });
  const [created] = await auditOf(account, res.body.id);
  t.match(created?.changes, { replaces: k.id, rate_limits: LIMITS, remaining_uses: 40, metadata: { bytes: 14 } });
});

t.test('bounds: the largest accepted values', async (t) => {
  const account = 'acct_lim_edges';
  const five = Array.from({ length: 5 }, (_, i) => ({
    name: `l${i}`.padEnd(32, 'x'),
    limit: 1_000_000_000,
    window_seconds: 86_400,
  }));
  const deep = { a: { b: { c: { d: { e: [1] } } } } };
  const metadata4k = { a: 'é'.repeat(2044) }; // 8 bytes of JSON around 4088 bytes of text
  t.equal(Buffer.byteLength(JSON.stringify(metadata4k)), 4096);
  for (const [name, body] of [
    ['5 limits, 32-character names, the largest limit and window', { rate_limits: five }],
    [
      'remaining_uses 2^53-1',
      { remaining_uses: Number.MAX_SAFE_INTEGER, refill: { amount: Number.MAX_SAFE_INTEGER, interval: 'daily' } },
    ],
    ['metadata of exactly 4096 bytes', { metadata: metadata4k }],
    ['metadata 5 levels deep', { metadata: { x: { y: { z: { w: 1 } } }, a: [[[[1]]]] } }],
    ['a metadata key of 100 characters', { metadata: { ['k'.repeat(100)]: true } }],
    ['an empty metadata object', { metadata: {} }],
  ] as const) {
    const res = await app.api('POST', keys(account), { ...VALID, ...body });
    t.equal(res.status, 201, `${name}: ${JSON.stringify(res.body).slice(0, 300)}`);
    for (const [field, value] of Object.entries(body)) {
      if (field === 'refill') t.match(res.body.refill, value);
      else t.same(res.body[field], value, `${name}: ${field} comes back`);
    }
  }
  t.equal(
    (await app.api('PATCH', keyPath(account, (await createKey(app, account)).id), { metadata: deep })).status,
    400,
    'an array at level 6 is too deep',
  );
});

const secretish = 'otesse_live_sk_' + 'Q'.repeat(49);
/** Bad bodies for create and for PATCH, each with the paths its problem must name. */
const BAD: [string, Record<string, unknown>, string[], ('create' | 'patch')[]?][] = [
  [
    'six rate limits',
    { rate_limits: Array.from({ length: 6 }, (_, i) => ({ name: `l${i}`, limit: 1, window_seconds: 1 })) },
    ['rate_limits'],
  ],
  ['duplicate limit names', { rate_limits: [LIMITS[0], { ...LIMITS[0], limit: 99 }] }, ['rate_limits/1/name']],
  ['window_seconds 0', { rate_limits: [{ name: 'a', limit: 1, window_seconds: 0 }] }, ['rate_limits/0/window_seconds']],
  [
    'window_seconds 86401',
    { rate_limits: [{ name: 'a', limit: 1, window_seconds: 86_401 }] },
    ['rate_limits/0/window_seconds'],
  ],
  ['limit 0', { rate_limits: [{ name: 'a', limit: 0, window_seconds: 1 }] }, ['rate_limits/0/limit']],
  [
    'limit over 1,000,000,000',
    { rate_limits: [{ name: 'a', limit: 1_000_000_001, window_seconds: 1 }] },
    ['rate_limits/0/limit'],
  ],
  ['limit 1.5', { rate_limits: [{ name: 'a', limit: 1.5, window_seconds: 1 }] }, ['rate_limits/0/limit']],
  [
    'limit name in capitals',
    { rate_limits: [{ name: 'PerSecond', limit: 1, window_seconds: 1 }] },
    ['rate_limits/0/name'],
  ],
  [
    'limit name of 33 characters',
    { rate_limits: [{ name: 'a'.repeat(33), limit: 1, window_seconds: 1 }] },
    ['rate_limits/0/name'],
  ],
  ['empty limit name', { rate_limits: [{ name: '', limit: 1, window_seconds: 1 }] }, ['rate_limits/0/name']],
  ['limit without a window', { rate_limits: [{ name: 'a', limit: 1 }] }, ['rate_limits/0/window_seconds']],
  [
    'limit with an unknown field',
    { rate_limits: [{ name: 'a', limit: 1, window_seconds: 1, burst: 5 }] },
    ['rate_limits/0/burst'],
  ],
  ['rate_limits not a list', { rate_limits: { name: 'a', limit: 1, window_seconds: 1 } }, ['rate_limits']],
  ['remaining_uses -1', { remaining_uses: -1 }, ['remaining_uses']],
  ['remaining_uses 1.5', { remaining_uses: 1.5 }, ['remaining_uses']],
  ['remaining_uses a string', { remaining_uses: '100' }, ['remaining_uses']],
  ['remaining_uses over 2^53-1', { remaining_uses: 2 ** 53 }, ['remaining_uses']],
  ['refill without a quota', { refill: { amount: 10, interval: 'daily' } }, ['refill']],
  ['refill amount 0', { remaining_uses: 1, refill: { amount: 0, interval: 'daily' } }, ['refill/amount']],
  ['refill interval weekly', { remaining_uses: 1, refill: { amount: 1, interval: 'weekly' } }, ['refill/interval']],
  [
    'remaining_uses null with a refill',
    { remaining_uses: null, refill: { amount: 1, interval: 'daily' } },
    ['refill'],
    ['patch'],
  ],
  ['remaining_uses null at create', { remaining_uses: null }, ['remaining_uses'], ['create']],
  ['enabled "yes"', { enabled: 'yes' }, ['enabled']],
  ['enabled null', { enabled: null }, ['enabled']],
  ['metadata an array', { metadata: [{ plan: 'pro' }] }, ['metadata']],
  ['metadata a string', { metadata: '{"plan":"pro"}' }, ['metadata']],
  ['metadata of 4097 bytes', { metadata: { a: secretish + 'x'.repeat(4089 - secretish.length) } }, ['metadata']],
  ['metadata 6 levels deep', { metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } }, ['metadata']],
  [
    'metadata key of 101 characters',
    { metadata: { [secretish + 'k'.repeat(101 - secretish.length)]: 1 } },
    ['metadata'],
  ],
  ['metadata with a NUL', { metadata: { plan: 'pro\u0000' } }, ['metadata']],
  ['metadata with a lone surrogate', { metadata: { plan: 'pro\ud800' } }, ['metadata']],
];

t.test(
  `${BAD.length} bad bodies at create and at PATCH: a 400 problem that names the field, never echoes it, and changes nothing`,
  async (t) => {
    const account = 'acct_lim_bad';
    const mine = await createKey(app, account, { remaining_uses: 10 });
    const bare = await createKey(app, account);
    const before = await accountState(app, account);
    for (const [name, body, paths, where = ['create', 'patch']] of BAD) {
      for (const how of where) {
        // PATCH the key without a quota, so a refill alone is refused there too.
        const res =
          how === 'create'
            ? await rawRequest(app, 'POST', keys(account), JSON.stringify({ ...VALID, ...body }), {
                'content-type': 'application/json',
              })
            : await rawRequest(
                app,
                'PATCH',
                keyPath(account, (name === 'refill without a quota' ? bare : mine).id),
                JSON.stringify(body),
                { 'content-type': 'application/json' },
              );
        await t.test(`${how}: ${name}`, async (t) => {
          assertProblem(t, res, 400, paths);
          t.notOk(JSON.stringify(res.body).includes('otesse_live_sk_'), 'the content is not echoed');
        });
      }
    }
    t.same(await accountState(app, account), before, 'no key, no field, no audit entry changed');
  },
);

t.test('the activity shows the quota balance and its refill', async (t) => {
  const account = 'acct_lim_activity';
  const k = await createKey(app, account, { remaining_uses: 25, refill: { amount: 25, interval: 'monthly' } });
  const res = await app.api('GET', keyPath(account, k.id, '/activity'));
  t.equal(res.status, 200);
  t.equal(res.body.remaining_uses, 25);
  t.match(res.body.refill, { amount: 25, interval: 'monthly' });
  t.ok(near(res.body.refill.refilled_at));
  const plain = await createKey(app, account);
  const none = await app.api('GET', keyPath(account, plain.id, '/activity'));
  t.same([none.body.remaining_uses, none.body.refill], [null, null]);
});

t.test('the OpenAPI description states the new fields', async (t) => {
  const doc = (await app.api('GET', '/openapi.json')).body;
  const path = doc.paths['/v1/accounts/{accountId}/keys/{keyId}'];
  const patchBody = path.patch.requestBody.content['application/json'].schema;
  const createBody = doc.paths['/v1/accounts/{accountId}/keys'].post.requestBody.content['application/json'].schema;
  const resource = path.get.responses['200'].content['application/json'].schema;
  for (const field of ['enabled', 'rate_limits', 'remaining_uses', 'refill', 'metadata']) {
    t.ok(createBody.properties[field], `create accepts ${field}`);
    t.ok(patchBody.properties[field]?.description, `PATCH describes ${field}`);
    t.ok(resource.properties[field]?.description, `the key resource describes ${field}`);
  }
  t.equal(createBody.properties.rate_limits.maxItems, 5);
  t.equal(createBody.properties.rate_limits.items.properties.window_seconds.maximum, 86_400);
  t.match(resource.properties.remaining_uses.description, /lease/, 'the balance says replicas lease shares of it');
  const activity =
    path.get &&
    doc.paths['/v1/accounts/{accountId}/keys/{keyId}/activity'].get.responses['200'].content['application/json'].schema;
  t.ok(activity.properties.remaining_uses, 'the activity has the balance');
});
