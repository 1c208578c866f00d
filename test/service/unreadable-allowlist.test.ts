// An allowlist rule the service cannot read denies (design: unreadable-denies): the rule is written
// straight into PostgreSQL, past the API's validation (a bad migration, a hand edit, a restored dump).
import t from 'tap';
import { capturedLogs, createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { query } from '../helpers/db.js';

const ADDRESSES = ['203.0.113.7', '198.51.100.1', '10.1.2.3', '127.0.0.1', '2001:db8::1', '::1', '::'];

async function storeRules(app: TestApp, keyId: string, rules: string[]): Promise<void> {
  await query(app.env.DATABASE_URL as string, 'UPDATE api_keys SET allowed_ips = $2 WHERE id = $1', [keyId, rules]);
}

const unreadableCount = async (app: TestApp): Promise<number> => {
  const line = (await (await fetch(`${app.url}/metrics`)).text())
    .split('\n')
    .find((l) => l.startsWith('otesse_keys_unreadable_data_total{field="allowed_ips"}'));
  return line ? Number(line.split(' ')[1]) : 0;
};

t.test('a key whose only allowlist rule cannot be read is denied from every address, counted and logged', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  await storeRules(app, key.id, ['not-an-address']);
  for (const ip of ADDRESSES) {
    const r = await app.authenticate({ key: key.secret, ip });
    t.equal(r.allowed, false, `denied from ${ip}`);
    t.equal(r.reason, 'IP_NOT_ALLOWED', `IP_NOT_ALLOWED from ${ip}`);
  }
  t.ok((await unreadableCount(app)) >= 1, 'the unreadable rule is counted');
  t.ok(
    capturedLogs.some((l) => l.includes('cannot be read') && l.includes(key.id)),
    'and logged with the key id',
  );
});

t.test('an unreadable rule beside readable ones: the list matches nothing, never wider than written', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  await storeRules(app, key.id, ['203.0.113.0/24', '10.0.0.0/33', '2001:db8::/32']);
  for (const ip of ADDRESSES)
    t.equal((await app.authenticate({ key: key.secret, ip })).reason, 'IP_NOT_ALLOWED', `denied from ${ip}`);
  // Fixing the rule through the API brings the key back for the addresses it names, and only those.
  t.equal(
    (await app.api('PATCH', `/v1/accounts/acct_1/keys/${key.id}`, { allowed_ips: ['203.0.113.0/24'] })).status,
    200,
  );
  t.equal(
    (await app.authenticate({ key: key.secret, ip: '203.0.113.7' })).allowed,
    true,
    'allowed again from its network',
  );
  t.equal(
    (await app.authenticate({ key: key.secret, ip: '198.51.100.1' })).reason,
    'IP_NOT_ALLOWED',
    'and nowhere else',
  );
});
