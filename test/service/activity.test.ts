import t from 'tap';
import pg from 'pg';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';

const DAY = 24 * 3_600_000;
const keyPath = (id: string) => `/v1/accounts/acct_1/keys/${id}`;

interface Alert {
  type: string;
  ip?: string;
  at: string;
  message: string;
}
const activity = async (app: TestApp, id: string, query = '') => {
  const res = await app.api('GET', `${keyPath(id)}/activity${query}`);
  if (res.status !== 200) throw new Error(`activity ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as {
    last_used_at: string | null;
    last_used_ip: string | null;
    totals: { allowed: number; denied: Record<string, number> };
    series: { start: string; allowed: number; denied: number }[];
    addresses: { ip: string; first_seen: string; last_seen: string; count: number }[];
    denied_addresses: { ip: string; reason: string; last_seen: string; count: number }[];
    rotation: {
      due_at: string;
      replaces: string | null;
      replaced_by: string | null;
      rotated_at: string | null;
      grace_ends_at: string | null;
      addresses_since_rotation: string[];
    };
    alerts: Alert[];
    events: { action: string; actor: string; source_ip: string | null; changes: Record<string, unknown> }[];
  };
};
const types = (alerts: Alert[]) => alerts.map((a) => a.type).sort();

t.test('activity: exact totals by reason, per-hour series, addresses, last use and admin events', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', { allowed_ips: ['198.51.100.0/24', '2001:db8::/32'] });
  const calls: [ip: string, scope: string, n: number][] = [
    ['198.51.100.1', 'bookings:read', 7],
    ['2001:db8::5', 'bookings:read', 4],
    ['203.0.113.9', 'bookings:read', 3],
    ['198.51.100.2', 'invoices:read', 2],
  ];
  const started = Date.now();
  for (const [ip, scope, n] of calls)
    for (let i = 0; i < n; i++) await app.authenticate({ key: key.secret, ip, scope });
  const a = await activity(app, key.id);
  t.same(a.totals, { allowed: 11, denied: { IP_NOT_ALLOWED: 3, SCOPE_NOT_GRANTED: 2 } });
  t.equal(
    a.series.reduce((s, h) => s + h.allowed, 0),
    11,
  );
  t.equal(
    a.series.reduce((s, h) => s + h.denied, 0),
    5,
  );
  for (const h of a.series) t.equal(Date.parse(h.start) % 3_600_000, 0, 'series buckets start on the hour');
  t.same(
    Object.fromEntries(a.addresses.map((x) => [x.ip, x.count])),
    { '198.51.100.1': 7, '2001:db8::5': 4 },
    'addresses of allowed calls with their counts',
  );
  t.same(
    Object.fromEntries(a.denied_addresses.map((x) => [x.ip, [x.reason, x.count]])),
    { '203.0.113.9': ['IP_NOT_ALLOWED', 3], '198.51.100.2': ['SCOPE_NOT_GRANTED', 2] },
    'denied calls: a sample of addresses, with the reason',
  );
  t.ok(
    a.last_used_at !== null && Date.parse(a.last_used_at) >= started,
    'last use is shown as soon as the calls are (this replica flushes first)',
  );
  t.equal(a.last_used_ip, '2001:db8::5', 'the last allowed call');
  t.equal(
    (await app.api('GET', keyPath(key.id))).body.last_used_at,
    a.last_used_at,
    'the key resource shows the same last use',
  );
  t.same(
    a.events.map((e) => [e.action, e.actor, e.source_ip]),
    [['key.created', 'admin', '127.0.0.1']],
  );
  t.equal(
    a.rotation.due_at,
    new Date(Date.parse((await app.api('GET', keyPath(key.id))).body.created_at) + 90 * DAY).toISOString(),
  );

  const past = await activity(
    app,
    key.id,
    `?from=${new Date(Date.now() - 10 * DAY).toISOString()}&to=${new Date(Date.now() - 5 * DAY).toISOString()}`,
  );
  t.same(past.totals, { allowed: 0, denied: {} }, 'a window without traffic counts nothing');
  t.same(past.series, []);
  const bad = await app.api(
    'GET',
    `${keyPath(key.id)}/activity?from=${new Date().toISOString()}&to=${new Date(Date.now() - DAY).toISOString()}`,
  );
  t.equal(bad.status, 400, 'from after to is a 400');
  t.equal((await app.api('GET', `${keyPath(key.id)}/activity?from=yesterday`)).status, 400);
  t.equal(
    (await app.api('GET', '/v1/accounts/acct_2/keys/' + key.id + '/activity')).status,
    404,
    'another account sees no activity of this key',
  );
});

t.test('alert: a new address, only after the key was first used elsewhere', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  for (let i = 0; i < 3; i++) await app.authenticate({ key: key.secret, ip: '198.51.100.10' });
  t.same(types((await activity(app, key.id)).alerts), [], 'first use: nothing unusual');
  await app.authenticate({ key: key.secret, ip: '198.51.100.10' });
  t.same(types((await activity(app, key.id)).alerts), [], 'the same address again: nothing');
  await app.authenticate({ key: key.secret, ip: '2001:db8::77' });
  const alerts = (await activity(app, key.id)).alerts.filter((a) => a.type === 'new_address');
  t.equal(alerts.length, 1);
  t.equal(alerts[0]?.ip, '2001:db8::77');
});

t.test('alert: a burst of denials (20 in an hour, more than the allows)', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  const ip = '198.51.100.10';
  await app.authenticate({ key: key.secret, ip });
  for (let i = 0; i < 19; i++) await app.authenticate({ key: key.secret, ip, scope: 'customers:write' });
  t.same(types((await activity(app, key.id)).alerts), [], '19 denials: no burst');
  await app.authenticate({ key: key.secret, ip, scope: 'customers:write' });
  const a = await activity(app, key.id);
  t.same(types(a.alerts), ['denial_burst']);
  t.match(a.alerts[0]?.message, /20 denials/);
  t.same(a.totals.denied, { SCOPE_NOT_GRANTED: 20 });
});

t.test('alerts: rotated key still in use; rotation due and overdue', async (t) => {
  const app = await startTestApp(t);
  const old = await createKey(app);
  const ip = '198.51.100.10';
  await app.authenticate({ key: old.secret, ip });
  const rotated = (await app.api('POST', `${keyPath(old.id)}/rotate`, { expire_previous_in: 3600 })).body;
  let a = await activity(app, old.id);
  t.same(types(a.alerts), [], 'rotated, not used since: nothing to warn about');
  t.same(a.rotation.addresses_since_rotation, []);
  t.equal(a.rotation.replaced_by, rotated.id);
  t.equal(a.rotation.grace_ends_at, rotated.previous.expires_at);
  t.ok(a.rotation.rotated_at !== null);

  await app.authenticate({ key: rotated.secret, ip: '198.51.100.11' });
  await app.authenticate({ key: old.secret, ip: '198.51.100.12' });
  a = await activity(app, old.id);
  t.same(types(a.alerts), ['new_address', 'rotated_key_in_use'], 'the old key is still used after the rotation');
  t.match(a.alerts.find((x) => x.type === 'rotated_key_in_use')?.message, rotated.id);
  t.same(a.rotation.addresses_since_rotation, ['198.51.100.12'], 'who has not moved to the new key yet');
  t.same(
    a.events.map((e) => e.action),
    ['key.rotated', 'key.created'],
  );
  const b = await activity(app, rotated.id);
  t.equal(b.rotation.replaces, old.id);
  t.ok(
    b.last_used_at !== null && Date.parse(b.last_used_at) <= Date.parse(a.last_used_at ?? ''),
    'last use of each key shows where traffic is',
  );
  t.same(types(b.alerts), [], 'the new key has nothing to warn about');

  const db = new pg.Client({ connectionString: app.env.DATABASE_URL });
  await db.connect();
  t.teardown(() => db.end());
  const due = await createKey(app);
  const overdue = await createKey(app);
  await db.query(`UPDATE api_keys SET created_at = now() - interval '80 days' WHERE id = $1`, [due.id]);
  await db.query(`UPDATE api_keys SET created_at = now() - interval '100 days' WHERE id = $1`, [overdue.id]);
  t.same(types((await activity(app, due.id)).alerts), ['rotation_due']);
  t.same(types((await activity(app, overdue.id)).alerts), ['rotation_overdue']);
  await app.api('POST', `${keyPath(overdue.id)}/rotate`, {});
  t.same(types((await activity(app, overdue.id)).alerts), [], 'rotated: no longer overdue');
});
