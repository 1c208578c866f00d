import t from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';

t.test('create, authenticate, revoke, deny', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app, 'acct_1', { allowed_ips: ['10.0.0.0/8'] });
  const ok = await app.authenticate({ key: key.secret, ip: '::ffff:10.1.2.3', scope: 'bookings:read' });
  t.equal(ok.allowed, true);
  t.equal(ok.key_id, key.id);
  const revoked = await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {});
  t.equal(revoked.status, 200);
  t.equal(revoked.body.status, 'revoked');
  const denied = await app.authenticate({ key: key.secret, ip: '10.1.2.3', scope: 'bookings:read' });
  t.equal(denied.allowed, false);
  t.equal(denied.reason, 'KEY_REVOKED');
});
