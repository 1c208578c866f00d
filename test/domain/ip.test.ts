import t from 'tap';
import { allowlistOf, ipAllowed, normalizeRule, parseAddress, parseRule, type IpRule } from '../../src/domain/ip.js';

const rules = (...texts: string[]): IpRule[] =>
  texts.map((text) => {
    const rule = parseRule(text);
    if (!rule) throw new Error(`not a rule: ${text}`);
    return rule;
  });
const allowed = (list: IpRule[], ip: string): boolean => {
  const address = parseAddress(ip);
  if (!address) throw new Error(`not an address: ${ip}`);
  return ipAllowed(list, address);
};

t.test('addresses: IPv4 and IPv6 parse to their canonical form', async (t) => {
  t.equal(parseAddress('203.0.113.7')?.toString(), '203.0.113.7');
  t.equal(parseAddress('203.0.113.7')?.kind(), 'ipv4');
  t.equal(parseAddress('2001:DB8:0:0::1')?.toString(), '2001:db8::1');
  t.equal(parseAddress('::1')?.kind(), 'ipv6');
});

t.test('IPv4-mapped IPv6 is folded to IPv4', async (t) => {
  for (const text of ['::ffff:10.1.2.3', '::FFFF:10.1.2.3', '::ffff:a01:203', '0:0:0:0:0:ffff:10.1.2.3']) {
    const a = parseAddress(text);
    t.equal(a?.kind(), 'ipv4', text);
    t.equal(a?.toString(), '10.1.2.3', text);
  }
  t.equal(parseAddress('::a01:203')?.kind(), 'ipv6', 'an IPv6 address that is not mapped stays IPv6');
});

t.test('invalid addresses are rejected', async (t) => {
  for (const text of [
    '1.2.3',
    '01.2.3.4',
    '1.2.3.04',
    '300.1.1.1',
    '1.2.3.4.5',
    'abc',
    '',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '0x1.2.3.4',
    '1.2.3.4/32',
    '2001:db8::/32',
    '2001:db8:::1',
    '12345::1',
    'localhost',
    '::ffff:300.1.1.1',
    '-1.2.3.4',
  ]) {
    t.equal(parseAddress(text), undefined, `rejects ${JSON.stringify(text)}`);
  }
});

t.test('allowlist entries: addresses and CIDRs, v4 and v6, normalised', async (t) => {
  const cases: [string, string][] = [
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['203.0.113.7', '203.0.113.7'],
    ['203.0.113.7/32', '203.0.113.7'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['2001:db8::1:2/64', '2001:db8::/64'],
    ['2001:db8::1', '2001:db8::1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['::ffff:0.0.0.0/96', '0.0.0.0/0'],
  ];
  for (const [text, canonical] of cases) {
    const rule = parseRule(text);
    t.ok(rule, `parses ${text}`);
    if (rule) t.equal(normalizeRule(rule), canonical, `${text} is stored as ${canonical}`);
  }
  for (const text of [
    '10.0.0.0/33',
    '10.0.0.0/',
    '/8',
    '10.0.0.0/-1',
    '10.0.0.0/8/8',
    '10.0.0.0/ 8',
    '01.0.0.0/8',
    '2001:db8::/129',
    '300.0.0.0/8',
    'abc/8',
    '',
    '1.2.3',
    'abc',
  ]) {
    t.equal(parseRule(text), undefined, `rejects ${JSON.stringify(text)}`);
  }
});

t.test('matching: empty list allows any; CIDRs contain their range only', async (t) => {
  t.ok(allowed([], '198.51.100.1'), 'empty allowlist = any address');
  t.ok(allowed([], '2001:db8::1'));
  const v4 = rules('10.0.0.0/8', '192.0.2.5');
  t.ok(allowed(v4, '10.0.0.0'));
  t.ok(allowed(v4, '10.255.255.255'));
  t.notOk(allowed(v4, '11.0.0.0'));
  t.notOk(allowed(v4, '9.255.255.255'));
  t.ok(allowed(v4, '192.0.2.5'));
  t.notOk(allowed(v4, '192.0.2.6'), 'a lone address is a /32');
  t.notOk(allowed(v4, '2001:db8::1'), 'an IPv6 caller does not match IPv4 rules');

  const v6 = rules('2001:db8:1::/48', '2001:db8:ffff::7');
  t.ok(allowed(v6, '2001:db8:1:abcd::1'));
  t.notOk(allowed(v6, '2001:db8:2::1'));
  t.ok(allowed(v6, '2001:DB8:FFFF:0::7'), 'notation does not matter');
  t.notOk(allowed(v6, '2001:db8:ffff::8'), 'a lone address is a /128');
  t.notOk(allowed(v6, '10.0.0.1'));
});

t.test('IPv4-mapped callers match IPv4 rules, and mapped rules match IPv4 callers', async (t) => {
  t.ok(allowed(rules('10.0.0.0/8'), '::ffff:10.9.8.7'), 'mapped caller, v4 CIDR');
  t.notOk(allowed(rules('10.0.0.0/8'), '::ffff:11.9.8.7'));
  t.ok(allowed(rules('::ffff:10.0.0.0/104'), '10.9.8.7'), 'mapped CIDR, v4 caller');
  t.ok(allowed(rules('::ffff:192.0.2.5'), '192.0.2.5'), 'mapped address, v4 caller');
  t.ok(allowed(rules('::ffff:192.0.2.5'), '::ffff:192.0.2.5'), 'mapped address, mapped caller');
  t.notOk(allowed(rules('::ffff:192.0.2.5'), '192.0.2.6'));
});

t.test(
  'IPv4-compatible ::a.b.c.d is an IPv6 address, not folded into IPv4 (ipaddr.js reads it as mapped)',
  async (t) => {
    t.equal(parseAddress('::203.0.113.7')?.kind(), 'ipv6');
    t.equal(parseAddress('::203.0.113.7')?.toString(), '::cb00:7107');
    t.equal(parseAddress('::ffff:203.0.113.7')?.toString(), '203.0.113.7', 'mapped is folded');
    t.equal(parseAddress('fe80::1%eth0'), undefined, 'zone ids are refused');
    t.equal(parseRule('10.0.0.0/+8'), undefined);
    t.equal(parseRule('::ffff:10.0.0.0/104')?.prefix, 8, 'a mapped CIDR folds to IPv4');
  },
);

t.test('an allowlist with a rule that cannot be read matches no address, whatever else it holds', async (t) => {
  const everywhere = [
    '203.0.113.7',
    '10.1.2.3',
    '0.0.0.0',
    '255.255.255.255',
    '2001:db8::1',
    '::',
    '::1',
    '::ffff:203.0.113.7',
  ];
  for (const stored of [
    ['not-an-address'],
    ['10.0.0.0/33'],
    ['203.0.113.0/24', 'x'],
    ['0.0.0.0/0', '::/0', '1.2.3.4/'],
  ]) {
    const list = allowlistOf(stored.map(parseRule));
    t.ok(list.length > 0, `${JSON.stringify(stored)}: never the empty list (which allows any address)`);
    for (const ip of everywhere) t.equal(allowed([...list], ip), false, `${JSON.stringify(stored)} refuses ${ip}`);
  }
  const readable = allowlistOf(['203.0.113.0/24'].map(parseRule));
  t.equal(allowed([...readable], '203.0.113.7'), true, 'a readable list is matched as written');
  t.same(allowlistOf([]), [], 'no rules: any address, as before');
});
