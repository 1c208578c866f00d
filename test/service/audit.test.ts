import t from 'tap';
import pg from 'pg';
import { secretOf } from '../../src/domain/key-format.js';
import { ADMIN_TOKEN, LIMITED_TOKEN, createKey, startTestApp, type TestApp } from '../helpers/app.js';

interface Entry {
  id: string;
  at: string;
  actor: string;
  action: string;
  key_id: string | null;
  source_ip: string | null;
  changes: Record<string, any>;
}

/** Every audit entry of an account, newest first, walking the cursor `limit` at a time. */
async function auditLog(app: TestApp, account: string, limit = 100, token = ADMIN_TOKEN): Promise<Entry[]> {
  const out: Entry[] = [];
  let cursor: string | null = null;
  do {
    const q: string = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await app.api('GET', `/v1/accounts/${account}/audit-log?${q}`, undefined, token);
    if (res.status !== 200) throw new Error(`audit-log ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...(res.body.data as Entry[]));
    cursor = res.body.next_cursor;
  } while (cursor);
  return out;
}

/** Where a key's secret, or a 16-character piece of it, shows up in `text`. */
function leaks(text: string, keys: string[]): string[] {
  return keys.flatMap((key) => {
    const secret = secretOf(key);
    const pieces = [key, secret, ...Array.from({ length: secret.length - 15 }, (_, i) => secret.slice(i, i + 16))];
    return pieces.some((p) => text.includes(p)) ? [key.slice(0, 20)] : [];
  });
}

t.test(
  'every admin action writes one audit entry: actor, action, key, source address, time, fields changed',
  async (t) => {
    const app = await startTestApp(t);
    const account = 'acct_limited';
    const as = (method: string, path: string, body?: unknown) =>
      app.api(method, `/v1/accounts/${account}${path}`, body, LIMITED_TOKEN);
    const at: Record<string, [number, number]> = {};
    const timed = async <T>(name: string, fn: () => Promise<T>) => {
      const start = Date.now() - 5;
      const out = await fn();
      at[name] = [start, Date.now() + 5];
      return out;
    };

    const created = await timed('create', () =>
      as('POST', '/keys', {
        label: 'pos terminal',
        scopes: ['bookings:read'],
        environment: 'live',
        allowed_ips: ['198.51.100.0/24'],
      }),
    );
    const key = created.body as { id: string; secret: string };
    const patched = await timed('update', () =>
      as('PATCH', `/keys/${key.id}`, { label: 'pos terminal 2', scopes: ['bookings:read', 'bookings:write'] }),
    );
    t.equal(patched.status, 200);
    const rotated = await timed('rotate', () => as('POST', `/keys/${key.id}/rotate`, { expire_previous_in: 600 }));
    t.equal(rotated.status, 201);
    const revoked = await timed('revoke', () =>
      as('POST', `/keys/${key.id}/revoke`, { reason: 'moved to the new key' }),
    );
    t.equal(revoked.status, 200);
    const test = await as('POST', '/keys', { label: 'sandbox', scopes: ['bookings:read'], environment: 'test' });
    const all = await timed('revoke-all', () =>
      as('POST', '/keys/revoke-all', { environment: 'live', reason: 'incident 42' }),
    );
    t.same(all.body.revoked, 1, 'the rotated-in live key');

    const log = await auditLog(app, account, 2);
    const secrets = [key.secret, rotated.body.secret, test.body.secret];
    t.same(leaks(JSON.stringify(log), secrets), [], 'no secret, nor a piece of one, in any entry');
    t.notMatch(JSON.stringify(log), /\$argon2/, 'nor a hash');
    for (const e of log) {
      t.equal(e.actor, 'limited', `${e.action}: the actor is the admin token's name`);
      t.equal(e.source_ip, '127.0.0.1', `${e.action}: the request's source address`);
    }
    t.same(
      log.map((e) => [e.action, e.key_id]),
      [
        ['keys.revoked_all', null],
        ['key.revoked', rotated.body.id],
        ['key.created', test.body.id],
        ['key.revoked', key.id],
        ['key.created', rotated.body.id],
        ['key.rotated', key.id],
        ['key.updated', key.id],
        ['key.created', key.id],
      ],
      'newest first, one entry per action (and per key a revoke-all touched)',
    );
    const [revokedAll, allOne, , revokeOne, createdByRotate, rotateOne, updateOne, createOne] = log;
    const within = (e: Entry | undefined, name: string) => {
      const [from, to] = at[name] ?? [0, 0];
      t.ok(e && Date.parse(e.at) >= from && Date.parse(e.at) <= to, `${name}: at is the time of the request`);
    };
    within(createOne, 'create');
    within(updateOne, 'update');
    within(rotateOne, 'rotate');
    within(revokeOne, 'revoke');
    within(revokedAll, 'revoke-all');
    t.match(createOne?.changes, {
      label: 'pos terminal',
      environment: 'live',
      scopes: ['bookings:read'],
      allowed_ips: ['198.51.100.0/24'],
    });
    t.same(
      updateOne?.changes,
      {
        label: { from: 'pos terminal', to: 'pos terminal 2' },
        scopes: { from: ['bookings:read'], to: ['bookings:read', 'bookings:write'] },
      },
      'only the fields that changed, from and to',
    );
    t.match(rotateOne?.changes, {
      replaced_by: rotated.body.id,
      expires_at: { from: null, to: rotated.body.previous.expires_at },
    });
    t.match(createdByRotate?.changes, { replaces: key.id });
    t.match(revokeOne?.changes, { reason: 'moved to the new key', status: { from: 'active', to: 'revoked' } });
    t.match(allOne?.changes, { reason: 'incident 42', via: 'revoke-all' });
    t.match(revokedAll?.changes, { environment: 'live', reason: 'incident 42', revoked: 1 });
    t.equal(revokedAll?.key_id, null);

    const admin = await createKey(app, 'acct_limited', {});
    t.equal((await auditLog(app, account))[0]?.actor, 'admin', 'another token, another actor');
    t.equal((await auditLog(app, account))[0]?.key_id, admin.id);
  },
);

t.test(
  'refused requests change nothing: no entry for a 400 or 409; a 401 or 403 is recorded as a refusal only',
  async (t) => {
    const app = await startTestApp(t);
    const key = await createKey(app);
    await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {});
    const before = (await auditLog(app, 'acct_1')).length;
    const other = await createKey(app);
    const afterCreate = before + 1;
    const refused: [string, string, unknown, number, string?][] = [
      ['POST', '/v1/accounts/acct_1/keys', { label: '', scopes: ['bookings:read'], environment: 'live' }, 400],
      [
        'POST',
        '/v1/accounts/acct_1/keys',
        { label: 'x', scopes: ['bookings:read'], environment: 'live', expires_at: '2001-01-01T00:00:00Z' },
        400,
      ],
      ['PATCH', `/v1/accounts/acct_1/keys/${other.id}`, { scopes: ['bookings:read', 'root'] }, 400],
      ['PATCH', `/v1/accounts/acct_1/keys/${other.id}`, { label: 'x', expires_at: '2001-01-01T00:00:00Z' }, 400],
      ['PATCH', `/v1/accounts/acct_1/keys/${key.id}`, { label: 'on a revoked key' }, 409],
      ['POST', `/v1/accounts/acct_1/keys/${other.id}/rotate`, { expire_previous_in: -5 }, 400],
      ['POST', `/v1/accounts/acct_1/keys/${key.id}/rotate`, {}, 409],
      ['POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {}, 200],
      ['POST', '/v1/accounts/acct_1/keys/revoke-all', { environment: 'staging' }, 400],
      ['POST', '/v1/accounts/acct_1/keys/revoke-all', {}, 403, LIMITED_TOKEN],
      ['POST', '/v1/accounts/acct_1/keys/revoke-all', {}, 401, 'not-a-token-at-all-123456'],
      ['PATCH', `/v1/accounts/acct_1/keys/${other.id}`, { label: 'same label' }, 200],
    ];
    await app.api('PATCH', `/v1/accounts/acct_1/keys/${other.id}`, { label: 'same label' });
    const baseline = (await auditLog(app, 'acct_1')).length;
    t.equal(baseline, afterCreate + 1);
    for (const [method, path, body, status, token] of refused) {
      const res = await app.api(method, path, body, token);
      t.equal(res.status, status, `${method} ${path.split('/').slice(-1)[0]} ${JSON.stringify(body)} → ${status}`);
    }
    const after = await auditLog(app, 'acct_1');
    const added = after.slice(0, after.length - baseline) as {
      action: string;
      actor: string;
      source_ip: string | null;
    }[];
    t.same(
      added.map((a) => a.action).sort(),
      ['admin.forbidden', 'admin.unauthenticated'],
      'no entry for a 400, 409, a repeated revoke or a PATCH that changes nothing; the 401 and 403 are recorded as refusals',
    );
    t.ok(
      added.every((a) => a.source_ip === '127.0.0.1'),
      'with their source address',
    );
    t.notOk(
      JSON.stringify(added).includes('not-a-token-at-all') || JSON.stringify(added).includes(LIMITED_TOKEN),
      'never the presented token',
    );
    t.equal((await app.authenticate({ key: other.secret })).allowed, true, 'and the key they aimed at is untouched');
  },
);

t.test('the audit entry is in the same transaction as the change: no entry, no change', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  t.equal((await app.authenticate({ key: key.secret })).allowed, true);
  const db = new pg.Client({ connectionString: app.env.DATABASE_URL });
  await db.connect();
  t.teardown(() => db.end());
  await db.query(
    `CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$`,
  );
  await db.query('CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()');
  const path = `/v1/accounts/acct_1/keys/${key.id}`;
  t.equal((await app.api('PATCH', path, { scopes: ['invoices:read'] })).status, 500);
  t.equal((await app.api('POST', `${path}/revoke`, {})).status, 500);
  t.equal((await app.api('POST', `${path}/rotate`, {})).status, 500);
  t.equal((await app.api('POST', '/v1/accounts/acct_1/keys/revoke-all', {})).status, 500);
  t.equal(
    (await app.api('POST', '/v1/accounts/acct_1/keys', { label: 'x', scopes: ['bookings:read'], environment: 'live' }))
      .status,
    500,
  );
  await db.query('DROP TRIGGER refuse_audit ON audit_log');

  const now = (await app.api('GET', path)).body;
  t.same([now.status, now.scopes, now.replaced_by], ['active', ['bookings:read'], null], 'the key row did not change');
  t.equal((await app.api('GET', '/v1/accounts/acct_1/keys?limit=100')).body.data.length, 1, 'no key was created');
  t.equal((await app.authenticate({ key: key.secret })).allowed, true, 'the key still works');
  t.equal((await db.query('SELECT count(*)::int AS n FROM key_changes')).rows[0].n, 0, 'no change was published');
});

t.test('audit-log pages: newest first, a cursor to the next page, every entry exactly once', async (t) => {
  const app = await startTestApp(t);
  for (let i = 0; i < 5; i++) await createKey(app, 'acct_1', { label: `k${i}` });
  const mine = await createKey(app, 'acct_1', { label: 'k5' });
  await app.api('PATCH', `/v1/accounts/acct_1/keys/${mine.id}`, { label: 'k5 renamed' });
  await createKey(app, 'acct_2', { label: 'elsewhere' });

  const first = await app.api('GET', '/v1/accounts/acct_1/audit-log?limit=3');
  t.equal(first.status, 200);
  t.equal(first.body.data.length, 3);
  t.type(first.body.next_cursor, 'string');
  const all = await auditLog(app, 'acct_1', 3);
  t.equal(all.length, 7, 'six creates and one update, nothing from another account');
  t.equal(new Set(all.map((e) => e.id)).size, 7, 'no entry twice');
  t.same(
    all.slice(0, 3).map((e) => e.id),
    first.body.data.map((e: Entry) => e.id),
  );
  t.same(
    all.map((e) => Number(e.id)),
    all.map((e) => Number(e.id)).sort((a, b) => b - a),
    'newest first',
  );
  t.same(
    [all[0]?.action, all[0]?.key_id, all[0]?.changes],
    ['key.updated', mine.id, { label: { from: 'k5', to: 'k5 renamed' } }],
  );
  t.equal(
    (await app.api('GET', '/v1/accounts/acct_1/audit-log?limit=7')).body.next_cursor,
    null,
    'no cursor past the last page',
  );
  t.equal((await app.api('GET', '/v1/accounts/acct_1/audit-log')).body.data.length, 7, 'default page size 20');
  for (const q of ['limit=0', 'limit=101', 'cursor=bm9wZQ', 'cursor=', 'limit=abc']) {
    t.equal((await app.api('GET', `/v1/accounts/acct_1/audit-log?${q}`)).status, 400, `${q} is a 400`);
  }
  t.equal(
    (await app.api('GET', '/v1/accounts/acct_1/audit-log', undefined, LIMITED_TOKEN)).status,
    403,
    'a token limited to another account',
  );
  t.equal((await app.api('GET', '/v1/accounts/acct_1/audit-log', undefined, '')).status, 401);
});
