import t from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';
import { startReceiver } from '../helpers/webhook-receiver.js';

t.test('an endpoint gets key.created and key.revoked, signed and verified', async (t) => {
  const app = await startTestApp(t, { WEBHOOK_ALLOW_PRIVATE: '1' });
  const receiver = await startReceiver(t);
  const created = await app.api('POST', '/v1/accounts/acct_1/webhook-endpoints', {
    url: receiver.url,
    events: ['key.created', 'key.revoked'],
    description: 'ops',
  });
  t.equal(created.status, 201, JSON.stringify(created.body));
  t.match(created.body.secret, /^whsec_/);
  receiver.state.secrets.push(created.body.secret);
  const key = await createKey(app);
  const revoked = await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, { reason: 'test' });
  t.equal(revoked.status, 200);
  const got = await receiver.until((r) => r.length >= 2);
  t.ok(got.every((r) => r.verified), 'every delivery verifies with standardwebhooks');
  t.same(
    got.map((r) => r.event?.type).sort(),
    ['key.created', 'key.revoked'],
  );
  const rev = got.find((r) => r.event?.type === 'key.revoked');
  t.equal(rev?.event?.data.key.id, key.id);
  t.equal(rev?.event?.data.account_id, 'acct_1');
  t.equal(rev?.event?.data.reason, 'test');
  t.notMatch(JSON.stringify(got), key.secret, 'no secret in any event');
  const deliveries = await app.api('GET', `/v1/accounts/acct_1/webhook-endpoints/${created.body.id}/deliveries`);
  t.equal(deliveries.status, 200, JSON.stringify(deliveries.body));
  t.equal(deliveries.body.data.length, 2);
  t.equal(deliveries.body.data[0].state, 'delivered');
  t.equal(deliveries.body.data[0].attempt_log[0].status_code, 204);
});
