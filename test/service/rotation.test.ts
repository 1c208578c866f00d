import t from 'tap';
import pg from 'pg';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const GRANT = {
  label: 'billing sync',
  scopes: ['invoices:read', 'bookings:read'],
  allowed_ips: ['198.51.100.0/24', '2001:db8::/32'],
};
const IP = '198.51.100.7';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A direct connection to the app's own database (to age keys and read what is stored). */
async function sql(t: TestLike, app: TestApp) {
  const client = new pg.Client({ connectionString: app.env.DATABASE_URL });
  await client.connect();
  t.teardown(() => client.end());
  return client;
}

const keyPath = (id: string) => `/v1/accounts/acct_1/keys/${id}`;
const ids = (res: { body: { data: { id: string }[] } }) => res.body.data.map((k) => k.id).sort();

t.test(
  'rotate issues a new key with the same grant, linked both ways; the old one works until its grace ends',
  async (t) => {
    const app = await startTestApp(t);
    const old = await createKey(app, 'acct_1', GRANT);
    const before = Date.now();
    const res = await app.api('POST', `${keyPath(old.id)}/rotate`, { expire_previous_in: 3600 });
    t.equal(res.status, 201);
    const rotated = res.body;
    t.not(rotated.id, old.id);
    t.match(rotated.secret, /^otesse_live_sk_/);
    t.not(rotated.secret, old.secret);
    t.equal(rotated.label, GRANT.label);
    t.same([...rotated.scopes].sort(), [...GRANT.scopes].sort());
    t.same(rotated.allowed_ips, old.allowed_ips);
    t.equal(rotated.environment, 'live');
    t.equal(rotated.replaces, old.id);
    t.equal(rotated.replaced_by, null);
    t.equal(rotated.previous.id, old.id);
    const graceEnd = Date.parse(rotated.previous.expires_at);
    t.ok(graceEnd >= before + HOUR && graceEnd <= Date.now() + HOUR, 'previous.expires_at is now + expire_previous_in');

    const oldNow = (await app.api('GET', keyPath(old.id))).body;
    t.equal(oldNow.replaced_by, rotated.id);
    t.equal(oldNow.status, 'active', 'still active during its grace period');
    t.equal(oldNow.expires_at, rotated.previous.expires_at);

    for (const secret of [old.secret, rotated.secret]) {
      const r = await app.authenticate({ key: secret, ip: IP, scope: 'invoices:read' });
      t.equal(r.allowed, true, 'old and new keys both work during the grace period');
    }
    t.equal(
      (await app.authenticate({ key: rotated.secret, ip: '203.0.113.9', scope: 'invoices:read' })).reason,
      'IP_NOT_ALLOWED',
      'the new key carries the address allowlist',
    );
    t.equal(
      (await app.authenticate({ key: rotated.secret, ip: IP, scope: 'bookings:write' })).reason,
      'SCOPE_NOT_GRANTED',
      'and the scopes, no more',
    );

    const again = await app.api('POST', `${keyPath(old.id)}/rotate`, {});
    t.equal(again.status, 409, 'a key is rotated once');
    t.equal(
      (await app.api('GET', '/v1/accounts/acct_1/keys?limit=100')).body.data.length,
      2,
      'the refused rotation made no key',
    );
  },
);

t.test('grace: default 24 hours, 7 days at most, 0 ends the old key at once', async (t) => {
  const app = await startTestApp(t);
  const rotate = async (body?: unknown) => {
    const k = await createKey(app);
    const started = Date.now();
    const res = await app.api('POST', `${keyPath(k.id)}/rotate`, body);
    t.equal(res.status, 201);
    return { k, grace: Date.parse(res.body.previous.expires_at) - started, elapsed: Date.now() - started };
  };
  const byDefault = await rotate();
  t.ok(byDefault.grace >= DAY && byDefault.grace <= DAY + byDefault.elapsed, 'no body: 24 hours');
  const emptyBody = await rotate({});
  t.ok(emptyBody.grace >= DAY && emptyBody.grace <= DAY + emptyBody.elapsed, 'empty body: 24 hours');
  const week = await rotate({ expire_previous_in: 604_800 });
  t.ok(week.grace >= 7 * DAY && week.grace <= 7 * DAY + week.elapsed, '604800 s is accepted: 7 days');
  const none = await rotate({ expire_previous_in: 0 });
  const r = await app.authenticate({ key: none.k.secret });
  t.same([r.allowed, r.reason], [false, 'KEY_EXPIRED'], 'grace 0: the old key stops at once');
  t.equal((await app.api('GET', keyPath(none.k.id))).body.status, 'expired');
});

t.test('bad grace values are a 400 that changes nothing', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', GRANT);
  const bad: unknown[] = [
    { expire_previous_in: -1 },
    { expire_previous_in: 604_801 },
    { expire_previous_in: 1.5 },
    { expire_previous_in: 'tomorrow' },
    { expire_previous_in: {} },
    { expire_previous_in: 60, unknown_field: 1 },
  ];
  for (const body of bad) {
    const res = await app.api('POST', `${keyPath(key.id)}/rotate`, body);
    t.equal(res.status, 400, `400 for ${JSON.stringify(body)}`);
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    t.ok(res.body.errors?.length > 0, 'with the field errors');
  }
  const after = (await app.api('GET', keyPath(key.id))).body;
  t.equal(after.replaced_by, null);
  t.equal(after.expires_at, null);
  t.equal(after.status, 'active');
  t.same(ids(await app.api('GET', '/v1/accounts/acct_1/keys?limit=100')), [key.id], 'no new key');
  t.same(
    (await app.api('GET', '/v1/accounts/acct_1/audit-log')).body.data.map((e: { action: string }) => e.action),
    ['key.created'],
    'no audit entry',
  );
  t.equal(
    (await app.authenticate({ key: key.secret, ip: IP, scope: 'invoices:read' })).allowed,
    true,
    'the key still works',
  );
});

t.test('grace values of the wrong JSON type are refused, not coerced', async (t) => {
  const app = await startTestApp(t);
  for (const value of [null, false, true, [5]]) {
    const key = await createKey(app);
    const res = await app.api('POST', `${keyPath(key.id)}/rotate`, { expire_previous_in: value });
    t.equal(res.status, 400, `400 for ${JSON.stringify(value)}`);
    t.equal((await app.authenticate({ key: key.secret })).allowed, true, 'the old key keeps working');
  }
});

t.test('list filters: ?in_grace=true and ?rotation=due|overdue; rotation_due_at is created + 90 days', async (t) => {
  const app = await startTestApp(t);
  const db = await sql(t, app);
  await createKey(app, 'acct_1', { label: 'fresh' }); // made today: in no filter's answer below
  const due = await createKey(app, 'acct_1', { label: 'due' });
  const overdue = await createKey(app, 'acct_1', { label: 'overdue' });
  const revokedOld = await createKey(app, 'acct_1', { label: 'revoked and old' });
  const rotatedOld = await createKey(app, 'acct_1', { label: 'rotated' });
  const ended = await createKey(app, 'acct_1', { label: 'rotated, grace over' });
  const other = await createKey(app, 'acct_2', { label: 'other account, old' });
  const age = (id: string, days: number) =>
    db.query(`UPDATE api_keys SET created_at = now() - make_interval(days => $2) WHERE id = $1`, [id, days]);
  await age(due.id, 80);
  await age(overdue.id, 100);
  await age(revokedOld.id, 100);
  await age(rotatedOld.id, 100);
  await age(other.id, 100);
  await app.api('POST', `${keyPath(revokedOld.id)}/revoke`, {});
  const successor = (await app.api('POST', `${keyPath(rotatedOld.id)}/rotate`, { expire_previous_in: 3600 })).body;
  await app.api('POST', `${keyPath(ended.id)}/rotate`, { expire_previous_in: 0 });

  const list = (q: string) => app.api('GET', `/v1/accounts/acct_1/keys?${q}`);
  t.same(
    ids(await list('in_grace=true')),
    [rotatedOld.id],
    'in grace: rotated and still working (not the one whose grace ended)',
  );
  t.same(
    ids(await list('rotation=due')),
    [due.id, overdue.id].sort(),
    'due within 14 days or past, active, not yet rotated',
  );
  t.same(ids(await list('rotation=overdue')), [overdue.id], 'overdue: past the 90 days');
  t.same(ids(await list('rotation=overdue&environment=test')), [], 'filters combine');
  t.notOk(
    ids(await list('rotation=due')).includes(successor.id),
    'the successor of an overdue key starts a new 90 days',
  );
  t.equal((await list('rotation=sometimes')).status, 400);
  t.equal((await list('in_grace=perhaps')).status, 400);

  const all = (await list('limit=100')).body.data as { id: string; created_at: string; rotation_due_at: string }[];
  t.equal(all.length, 8, 'six keys and the successors of two rotations');
  for (const k of all)
    t.equal(Date.parse(k.rotation_due_at) - Date.parse(k.created_at), 90 * DAY, `rotation_due_at of ${k.id}`);
  const dueAt = Date.parse(all.find((k) => k.id === due.id)!.rotation_due_at);
  t.ok(dueAt > Date.now() + 9 * DAY && dueAt < Date.now() + 11 * DAY, 'a key made 80 days ago is due in 10 days');
});

t.test('PATCH changes label, scopes, allowed_ips and expires_at; a bad PATCH changes nothing', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', { label: 'before', scopes: ['bookings:read', 'bookings:write'] });
  t.equal(
    (await app.authenticate({ key: key.secret, ip: '203.0.113.7', scope: 'bookings:write' })).allowed,
    true,
    'warm in cache',
  );
  const tomorrow = new Date(Date.now() + DAY).toISOString();
  const res = await app.api('PATCH', keyPath(key.id), {
    label: 'after',
    scopes: ['bookings:read'],
    allowed_ips: ['203.0.113.0/24', '2001:DB8:0:0::1'],
    expires_at: tomorrow,
  });
  t.equal(res.status, 200);
  t.equal(res.body.label, 'after');
  t.same(res.body.scopes, ['bookings:read']);
  t.same(res.body.allowed_ips, ['203.0.113.0/24', '2001:db8::1'], 'addresses stored normalised');
  t.equal(res.body.expires_at, tomorrow);
  t.same(
    (await app.authenticate({ key: key.secret, ip: '203.0.113.7', scope: 'bookings:write' })).reason,
    'SCOPE_NOT_GRANTED',
  );
  t.same(
    (await app.authenticate({ key: key.secret, ip: '198.51.100.1', scope: 'bookings:read' })).reason,
    'IP_NOT_ALLOWED',
  );
  t.equal((await app.authenticate({ key: key.secret, ip: '2001:db8::1', scope: 'bookings:read' })).allowed, true);

  const bad = [
    { label: 'x', expires_at: new Date(Date.now() - 60_000).toISOString() },
    { label: '' },
    { scopes: [] },
    { scopes: ['bookings:read', 'bookings:admin'] },
    { allowed_ips: ['10.0.0.300'] },
    {},
    { label: 'x', secret_hash: 'y' },
  ];
  for (const body of bad)
    t.equal((await app.api('PATCH', keyPath(key.id), body)).status, 400, `400 for ${JSON.stringify(body)}`);
  const now = (await app.api('GET', keyPath(key.id))).body;
  t.same(
    [now.label, now.scopes, now.expires_at],
    ['after', ['bookings:read'], tomorrow],
    'the refused PATCHes changed nothing',
  );

  const soon = Date.now() + 1000;
  t.equal((await app.api('PATCH', keyPath(key.id), { expires_at: new Date(soon).toISOString() })).status, 200);
  await new Promise((r) => setTimeout(r, Math.max(0, soon - Date.now() + 20)));
  t.equal(
    (await app.authenticate({ key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' })).reason,
    'KEY_EXPIRED',
    'the expiry set by PATCH holds on a cached key',
  );
  t.equal((await app.api('GET', keyPath(key.id))).body.status, 'expired');
});

t.test('a rotated key’s grace can be shortened by PATCH, never extended or removed', async (t) => {
  const app = await startTestApp(t);
  const old = await createKey(app, 'acct_1', GRANT);
  await app.api('POST', `${keyPath(old.id)}/rotate`, { expire_previous_in: 3600 });
  const graceEnd = (await app.api('GET', keyPath(old.id))).body.expires_at as string;
  for (const expires_at of [null, new Date(Date.now() + 2 * DAY).toISOString()]) {
    const res = await app.api('PATCH', keyPath(old.id), { expires_at });
    t.equal(res.status, 409, `expires_at ${String(expires_at)} refused`);
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  }
  t.equal((await app.api('GET', keyPath(old.id))).body.expires_at, graceEnd, 'grace end unchanged');
  const sooner = new Date(Date.now() + 60_000).toISOString();
  const shorter = await app.api('PATCH', keyPath(old.id), { expires_at: sooner });
  t.equal(shorter.status, 200);
  t.equal(shorter.body.expires_at, sooner, 'shortened');
});

t.test('in_grace=false lists every key but the ones in a grace period', async (t) => {
  const app = await startTestApp(t);
  const old = await createKey(app, 'acct_1', GRANT);
  const other = await createKey(app, 'acct_1', GRANT);
  const fresh = (await app.api('POST', `${keyPath(old.id)}/rotate`, {})).body.id as string;
  t.same(ids(await app.api('GET', '/v1/accounts/acct_1/keys?in_grace=true')), [old.id]);
  t.same(ids(await app.api('GET', '/v1/accounts/acct_1/keys?in_grace=false')), [other.id, fresh].sort());
});
