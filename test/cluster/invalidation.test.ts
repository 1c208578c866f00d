import pg from 'pg';
import t from 'tap';
import { waitFor } from '../helpers/replica.js';
import { createKeys, startCluster } from '../helpers/cluster.js';

// Polling is pushed out of reach so that only the pub/sub path (with confirmations) can evict.
const ENV = { CHANGE_POLL_MS: '60000', CACHE_TTL_SECONDS: '600' };

t.test('a revoke on one replica holds on the others the moment it returns: 50 keys, zero stale allows', async (t) => {
  const { nodes } = await startCluster(t, 3, ENV);
  const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
  const keys = await createKeys(a, 50);
  for (const k of keys) {
    for (const n of [b, c]) t.equal((await n.authenticate({ key: k.secret })).allowed, true, 'warm');
  }
  t.equal(
    await b.metric('otesse_keys_argon2_verifications'),
    50,
    'b verified each key once and now holds them in cache',
  );
  let stale = 0;
  let confirmedAll = 0;
  for (const k of keys) {
    const res = await a.api('POST', `/v1/accounts/acct_1/keys/${k.id}/revoke`, { reason: 'test' });
    t.equal(res.status, 200);
    if (res.body.propagation.confirmed === 3 && res.body.propagation.replicas === 3) confirmedAll++;
    const answers = await Promise.all([b, c].map((n) => n.authenticate({ key: k.secret })));
    for (const r of answers) if (r.allowed || r.reason !== 'KEY_REVOKED') stale++;
  }
  t.equal(stale, 0, 'no replica allowed a revoked key after the revoke returned');
  t.equal(
    await b.metric('otesse_keys_argon2_verifications'),
    50,
    'denying the revoked keys re-read them without hashing again',
  );
  t.equal(confirmedAll, 50, 'every revoke was confirmed by all three replicas before it returned');
});

t.test('PATCH narrowing (scopes, allowed_ips) holds on every replica at once', async (t) => {
  const { nodes } = await startCluster(t, 3, ENV);
  const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
  const keys = await createKeys(a, 50);
  const ip = '203.0.113.7';
  for (const k of keys) {
    for (const n of [b, c])
      t.equal((await n.authenticate({ key: k.secret, ip, scope: 'bookings:write' })).allowed, true);
  }
  let stale = 0;
  for (const [i, k] of keys.entries()) {
    const narrowScopes = i % 2 === 0;
    const body = narrowScopes ? { scopes: ['bookings:read'] } : { allowed_ips: ['198.51.100.0/24'] };
    const res = await a.api('PATCH', `/v1/accounts/acct_1/keys/${k.id}`, body);
    t.equal(res.status, 200);
    const expected = narrowScopes ? 'SCOPE_NOT_GRANTED' : 'IP_NOT_ALLOWED';
    for (const n of [b, c]) {
      const r = await n.authenticate({ key: k.secret, ip, scope: 'bookings:write' });
      if (r.allowed || r.reason !== expected) stale++;
    }
  }
  t.equal(stale, 0, 'no replica kept the wider grant after the PATCH returned');
});

/** Revoke a key behind the service's back: the row and its change-log entry, nothing published. */
async function revokeSilently(databaseUrl: string, keyId: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(
      'UPDATE api_keys SET revoked_at = now(), version = version + 1 WHERE id = $1 RETURNING version',
      [keyId],
    );
    await client.query(
      `INSERT INTO key_changes (seq, key_id, version, kind)
      SELECT COALESCE(max(seq), 0) + 1, $1, $2, 'revoked' FROM key_changes`,
      [keyId, rows[0].version],
    );
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

t.test('a lost message is caught up: on the next message (a gap in sequence numbers)', async (t) => {
  const { env, nodes } = await startCluster(t, 2, ENV);
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const [lost, next] = (await createKeys(a, 2)) as [{ id: string; secret: string }, { id: string; secret: string }];
  for (const k of [lost, next]) t.equal((await b.authenticate({ key: k.secret })).allowed, true, 'cached on b');
  await revokeSilently(env.DATABASE_URL!, lost.id);
  t.equal(
    (await b.authenticate({ key: lost.secret })).allowed,
    true,
    'b cannot know yet: its cache answers (polling is 60 s away)',
  );
  await a.api('POST', `/v1/accounts/acct_1/keys/${next.id}/revoke`, {});
  t.equal((await b.authenticate({ key: next.secret })).reason, 'KEY_REVOKED');
  t.ok(
    await waitFor(async () => (await b.authenticate({ key: lost.secret })).reason === 'KEY_REVOKED', 2000),
    'the gap made b read the change log and evict the silently revoked key',
  );
});

t.test('a lost message is caught up: by the backstop poll of the change log', async (t) => {
  const { env, nodes } = await startCluster(t, 2, { ...ENV, CHANGE_POLL_MS: '500' });
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const [k] = (await createKeys(a, 1)) as [{ id: string; secret: string }];
  t.equal((await b.authenticate({ key: k.secret })).allowed, true, 'cached on b');
  const start = Date.now();
  await revokeSilently(env.DATABASE_URL!, k.id);
  t.ok(
    await waitFor(async () => (await b.authenticate({ key: k.secret })).reason === 'KEY_REVOKED', 3000),
    'denied within a few poll periods with no message at all',
  );
  t.ok(Date.now() - start < 3000, `bounded in time (${Date.now() - start} ms)`);
});
