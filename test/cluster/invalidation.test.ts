import t from 'tap';
import { createKeys, startCluster } from '../helpers/cluster.js';

// Polling is pushed out of reach so that only the pub/sub path (with confirmations) can evict.
const ENV = { CHANGE_POLL_MS: '60000', CACHE_TTL_SECONDS: '600' };

t.test('a revoke on one replica holds on the others the moment it returns: 100 keys, zero stale allows', async (t) => {
  const { nodes } = await startCluster(t, 3, ENV);
  const [a, b, c] = nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0]];
  const keys = await createKeys(a, 100);
  for (const k of keys) {
    for (const n of [b, c]) t.equal((await n.authenticate({ key: k.secret })).allowed, true, 'warm');
  }
  t.equal(await b.metric('otesse_keys_argon2_verifications'), 100, 'b verified each key once and now holds them in cache');
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
  t.equal(confirmedAll, 100, 'every revoke was confirmed by all three replicas before it returned');
});

t.test('PATCH narrowing (scopes, allowed_ips) holds on every replica at once', async (t) => {
  const { nodes } = await startCluster(t, 3, ENV);
  const [a, b, c] = nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0]];
  const keys = await createKeys(a, 100);
  const ip = '203.0.113.7';
  for (const k of keys) {
    for (const n of [b, c]) t.equal((await n.authenticate({ key: k.secret, ip, scope: 'bookings:write' })).allowed, true);
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
