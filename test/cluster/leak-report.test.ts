// GitHub reports 100 tokens to one of three replicas: exactly the two active real keys among
// them are revoked, on every replica by the time the response arrives, and each token is
// labelled right; the owner sees a `leaked` alert and the audit log shows the revoke.
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';
import { entry, githubKeyServer, sha256, signedReport, signingKey } from '../helpers/github.js';
import { forgeKey, randomBase62, wrongSecret } from '../helpers/keys.js';

// Polling is pushed out of reach: only the revoke's own propagation can evict.
const ENV = { CHANGE_POLL_MS: '60000', CACHE_TTL_SECONDS: '600', LEAK_REPORT_PORT: '0' };

/** The leak-report port a replica logged at start. */
function leakPort(n: Node): number {
  const line = n.logs.find((l) => l.includes('otesse key service started'));
  return (JSON.parse(line ?? '{}') as { leakPort: number }).leakPort;
}

/** 77 tokens that fail the offline checks in every way a scanner's false match can. */
function garbage(count: number, sample: string): string[] {
  const kinds = [
    () => `${sample.slice(0, -1)}${sample.endsWith('a') ? 'b' : 'a'}`, // checksum broken
    () => `otesse_live_sk_${randomBase62(50)}`, // right shape, random checksum
    () => `otesse_prod_sk_${randomBase62(50)}`, // unknown prefix
    () => `otesse_test_sk_${randomBase62(49)}`, // too short
    () => `otesse_live_sk_${randomBase62(51)}`, // too long
    () => `otesse_live_sk_${randomBase62(48)}-_`, // outside the alphabet
    () => `ghp_${randomBase62(36)}`, // someone else's token
    () => '',
  ];
  return Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!());
}

t.test('a report of 100 tokens revokes exactly the 2 active real keys, on every replica at once', async (t) => {
  const github = signingKey();
  const keyList = await githubKeyServer(t, [github]);
  const { nodes } = await startCluster(t, 3, { ...ENV, GITHUB_SECRET_SCANNING_KEYS_URL: keyList.url });
  const [a] = nodes as [Node, Node, Node];
  const [a1, a2] = (await createKeys(a, 2, 'acct_a')) as [
    { id: string; secret: string },
    { id: string; secret: string },
  ];
  const [b1] = (await createKeys(a, 1, 'acct_b')) as [{ id: string; secret: string }];
  const decoys = [...(await createKeys(a, 5, 'acct_a')), ...(await createKeys(a, 5, 'acct_b'))];
  const earlier = await a.api('POST', `/v1/accounts/acct_a/keys/${a2.id}/revoke`, { reason: 'rotated by hand' });
  t.equal(earlier.status, 200, 'a2 was revoked before the report');
  for (const n of nodes) {
    for (const k of [a1, b1, ...decoys])
      t.equal((await n.authenticate({ key: k.secret })).allowed, true, "warm in every replica's cache");
  }

  const real = [a1.secret, a2.secret, b1.secret];
  const unknown = Array.from({ length: 10 }, () => forgeKey('live', randomBase62(12), randomBase62(32)));
  const forged = decoys.map((d) => wrongSecret(d.secret));
  const tokens = [...real, ...unknown, ...forged, ...garbage(77, a1.secret)];
  // Interleave so the real keys are not simply first.
  const order = tokens
    .map((token, i) => ({ token, at: (i * 37) % tokens.length }))
    .sort((x, y) => x.at - y.at)
    .map((x) => x.token);
  t.equal(order.length, 100);
  const body = JSON.stringify(order.map((token, i) => entry(token, i)));
  const res = await signedReport(leakPort(a), body, github);

  // Straight after the response, before anything else: every replica denies both keys.
  const after = await Promise.all(nodes.flatMap((n) => [a1, b1].map((k) => n.authenticate({ key: k.secret }))));
  t.same(
    after.map((r) => r.reason),
    Array(6).fill('KEY_REVOKED'),
    'a1 and b1 are denied on all three replicas once the response is in',
  );
  t.equal(res.status, 200, `answered in ${res.ms.toFixed(0)} ms`);
  t.equal(res.body.length, 100, 'one verdict per token');
  const expected = order.map((token) => ({
    token_hash: sha256(token),
    token_type: 'otesse_api_key',
    label: real.includes(token) ? 'true_positive' : 'false_positive',
  }));
  t.same(
    res.body,
    expected,
    'the 3 real keys (a2 already revoked) are true positives; unknown ids, wrong secrets and garbage are false positives',
  );
  t.notOk(
    tokens.filter(Boolean).some((tok) => JSON.stringify(res.body).includes(tok)),
    'no token in the answer',
  );
  for (const n of nodes) {
    const decisions = await Promise.all(decoys.map((d) => n.authenticate({ key: d.secret })));
    t.ok(
      decisions.every((d) => d.allowed),
      'a real id with a wrong secret revoked nothing: the 10 decoys still work',
    );
  }

  const status = async (account: string) =>
    Object.fromEntries(
      (
        (await a.api('GET', `/v1/accounts/${account}/keys?limit=100`)).body.data as {
          id: string;
          status: string;
          revoked_at: string | null;
        }[]
      ).map((k) => [k.id, k]),
    );
  const [sa, sb] = [await status('acct_a'), await status('acct_b')];
  const revoked = [...Object.values(sa), ...Object.values(sb)]
    .filter((k) => k.status === 'revoked')
    .map((k) => k.id)
    .sort();
  t.same(revoked, [a1.id, a2.id, b1.id].sort(), 'revoked now: a1, b1, and a2 as before; nothing else');
  t.equal(sa[a2.id]?.revoked_at, earlier.body.revoked_at, 'a2 was not revoked a second time');

  const audit = (await a.api('GET', '/v1/accounts/acct_a/audit-log?limit=100')).body.data as {
    actor: string;
    action: string;
    key_id: string;
    changes: Record<string, unknown>;
  }[];
  const a1Revoke = audit.filter((e) => e.action === 'key.revoked' && e.key_id === a1.id);
  t.equal(a1Revoke.length, 1, 'one revoke of a1 in the audit log');
  t.equal(a1Revoke[0]?.actor, 'github-secret-scanning', 'by github-secret-scanning');
  const a1Url = entry('', order.indexOf(a1.secret)).url;
  t.equal(a1Revoke[0]?.changes['reason'], `leaked: github ${a1Url}`, 'reason: leaked: github <url>');
  t.equal(
    audit.filter((e) => e.action === 'key.revoked' && e.key_id === a2.id).length,
    1,
    'a2: still only the earlier revoke',
  );
  t.same(
    audit
      .filter((e) => e.action === 'key.leak_reported')
      .map((e) => [e.key_id, e.changes['outcome']])
      .sort(),
    [
      [a1.id, 'revoked'],
      [a2.id, 'already_revoked'],
    ].sort(),
    'the report is recorded on both keys of acct_a',
  );

  for (const [k, account, outcome] of [
    [a1, 'acct_a', 'revoked'],
    [a2, 'acct_a', 'already revoked'],
    [b1, 'acct_b', 'revoked'],
  ] as const) {
    const activity = (await nodes[2]!.api('GET', `/v1/accounts/${account}/keys/${k.id}/activity`)).body;
    const alert = (activity.alerts as { type: string; at: string; message: string }[]).find((x) => x.type === 'leaked');
    const url = entry('', order.indexOf(k.secret)).url;
    t.ok(
      alert?.message.includes(url) && alert.message.includes(`key was ${outcome}`),
      `${k.id}: leaked alert with the URL (${alert?.message})`,
    );
    t.ok(alert && Math.abs(Date.parse(alert.at) - Date.now()) < 60_000, 'and the time');
  }

  const logs = nodes.flatMap((n) => n.logs).join('');
  t.same(
    tokens.filter((tok) => tok.length > 0 && logs.includes(tok)),
    [],
    "no token in any replica's log",
  );
  t.equal(await a.metric('otesse_keys_leak_reports_total{outcome="accepted"}'), 1, 'counted: one accepted report');
  t.equal(await a.metric('otesse_keys_leak_report_tokens_total{label="true_positive"}'), 3, 'three true positives');
});
