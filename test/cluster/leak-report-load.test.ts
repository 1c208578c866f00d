// A full GitHub report (1,000 tokens: 50 real keys, 100 unknown well-formed ids, 850 malformed)
// with production argon2 parameters (m=19456 KiB, t=2) on two replicas: the answer must come
// within 10 s on this 2-core machine. (Real ids with wrong secrets: test/cluster/leak-report.test.ts.)
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';
import { entry, githubKeyServer, signedReport, signingKey } from '../helpers/github.js';
import { loadavg } from 'node:os';
import { forgeKey, randomBase62 } from '../helpers/keys.js';

const ENV = { LEAK_REPORT_PORT: '0', ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2' };

t.test('1,000 tokens with 50 real keys: answered within 10 s, every real key revoked everywhere', async (t) => {
  const github = signingKey();
  const keyList = await githubKeyServer(t, [github]);
  const { nodes } = await startCluster(t, 2, { ...ENV, GITHUB_SECRET_SCANNING_KEYS_URL: keyList.url });
  const [a, b] = nodes as [Node, Node];
  const real = (await Promise.all(Array.from({ length: 5 }, (_, i) => createKeys(a, 10, `acct_${i}`)))).flat();
  const tokens = [
    ...real.map((k) => k.secret),
    ...Array.from({ length: 100 }, () => forgeKey('live', randomBase62(12), randomBase62(32))),
    ...Array.from({ length: 850 }, () => `otesse_live_sk_${randomBase62(50)}`),
  ];
  t.equal(tokens.length, 1000);
  const body = JSON.stringify(tokens.map((token, i) => entry(token, i)));
  const port = (
    JSON.parse(a.logs.find((l) => l.includes('otesse key service started')) ?? '{}') as { leakPort: number }
  ).leakPort;
  const res = await signedReport(port, body, github);
  t.equal(res.status, 200);
  t.ok(
    res.ms < 10_000,
    `1,000-token report (50 real keys: 50 argon2 verifications and 50 revokes on 2 replicas) answered in ${res.ms.toFixed(0)} ms`,
  );
  t.equal(res.body.filter((v: { label: string }) => v.label === 'true_positive').length, 50, '50 true positives');
  const denied = await Promise.all(real.map((k) => b.authenticate({ key: k.secret })));
  t.equal(denied.filter((d) => d.reason === 'KEY_REVOKED').length, 50, 'all 50 denied on the other replica');
  t.comment(
    `leak report: 1000 tokens, 50 real keys: ${res.ms.toFixed(0)} ms (load average ${loadavg()[0]?.toFixed(1)})`,
  );
});
