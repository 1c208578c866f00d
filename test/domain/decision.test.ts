// The decision (design: expiry-every-call, revocation-ignores-clocks): revocation never depends on the clock; expiry does.
import t from 'tap';
import { decide, type KeyGrant } from '../../src/domain/decision.js';
import { parseAddress, parseRule, type IpRule } from '../../src/domain/ip.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');
const grant = (over: Partial<KeyGrant> = {}): KeyGrant => ({
  keyId: 'key_AAAAAAAAAAAA',
  accountId: 'acct_1',
  environment: 'live',
  scopes: ['bookings:read'],
  allowedIps: [],
  expiresAt: null,
  revokedAt: null,
  version: 1,
  enabled: true,
  metadata: null,
  ...over,
});
const ip = parseAddress('203.0.113.7')!;

t.test('a revoked key is revoked whatever the clock says', async (t) => {
  t.equal(
    decide(grant({ revokedAt: NOW + 3_600_000 }), ip, 'bookings:read', NOW).allowed,
    false,
    'revoked_at ahead of this replica’s clock (a clock running behind)',
  );
  const d = decide(grant({ revokedAt: NOW + 3_600_000 }), ip, 'bookings:read', NOW);
  t.equal(!d.allowed && d.reason, 'KEY_REVOKED');
  t.equal(decide(grant({ revokedAt: NOW - 1 }), ip, 'bookings:read', NOW).allowed, false);
});

t.test('expiry compares with the clock; then address, then scope', async (t) => {
  t.equal(decide(grant({ expiresAt: NOW + 1000 }), ip, 'bookings:read', NOW).allowed, true, 'not yet expired');
  const expired = decide(grant({ expiresAt: NOW }), ip, 'bookings:read', NOW);
  t.equal(!expired.allowed && expired.reason, 'KEY_EXPIRED');
  const rules = [parseRule('198.51.100.0/24')].filter(Boolean) as IpRule[];
  const elsewhere = decide(grant({ allowedIps: rules }), ip, 'bookings:read', NOW);
  t.equal(!elsewhere.allowed && elsewhere.reason, 'IP_NOT_ALLOWED');
  const scope = decide(grant(), ip, 'bookings:write', NOW);
  t.equal(!scope.allowed && scope.reason, 'SCOPE_NOT_GRANTED', 'write does not imply read, nor the reverse');
});

t.test('a disabled key is refused after revocation is checked, before anything else', async (t) => {
  t.same(decide(grant({ enabled: false }), ip, 'bookings:read', NOW), {
    allowed: false,
    reason: 'KEY_DISABLED',
    identity: grant({ enabled: false }),
  });
  t.equal(
    (decide(grant({ enabled: false, revokedAt: NOW - 1 }), ip, 'bookings:read', NOW) as { reason: string }).reason,
    'KEY_REVOKED',
    'revoked stays revoked',
  );
  t.equal(
    (decide(grant({ enabled: false, expiresAt: NOW - 1 }), ip, 'bookings:read', NOW) as { reason: string }).reason,
    'KEY_DISABLED',
  );
  t.equal(decide(grant({ enabled: true }), ip, 'bookings:read', NOW).allowed, true, 'enabled again: allowed');
});
