// Design: no-remote-lockout: a stranger's wrong guesses lock out the stranger, shared by every replica,
// and never the key: a key never used before works for its owner while it is being attacked.
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';
import { forgeKey, partsOf } from '../helpers/keys.js';

const wrong = (key: string, i: number) => {
  const { environment, publicId } = partsOf(key);
  return forgeKey(environment, publicId, `${String(i).padStart(4, '0')}${'W'.repeat(28)}`);
};

t.test('a stranger hammering a fresh key on every replica is refused everywhere; the owner is not', async (t) => {
  const { nodes } = await startCluster(t, 3, { FAILED_ATTEMPTS_LIMIT: '5' });
  const [key] = (await createKeys(nodes[0]!, 1)) as [{ id: string; secret: string }];
  const stranger = '198.51.100.66';
  const before = await Promise.all(nodes.map((n) => n.metric('otesse_keys_argon2_verifications')));
  let i = 0;
  for (const [j, n] of nodes.entries()) {
    for (let k = 0; k < (j < 2 ? 2 : 1); k++)
      t.equal((await n.authenticate({ key: wrong(key.secret, i++), ip: stranger })).reason, 'KEY_UNKNOWN');
  }
  // 5 failures in all, at most 2 on any replica: the count is shared, so every replica refuses the stranger now.
  for (const n of nodes)
    t.equal(
      (await n.authenticate({ key: wrong(key.secret, i++), ip: stranger })).reason,
      'TOO_MANY_FAILURES',
      'the stranger is refused on every replica',
    );
  const owner = await Promise.all(nodes.map((n: Node) => n.authenticate({ key: key.secret, ip: '203.0.113.7' })));
  t.same(
    owner.map((o) => o.allowed),
    [true, true, true],
    "the owner's first call, from elsewhere, is allowed on every replica",
  );
  const after = await Promise.all(nodes.map((n) => n.metric('otesse_keys_argon2_verifications')));
  const spent = after.reduce((s, v, j) => s + v - (before[j] ?? 0), 0);
  t.ok(
    spent <= 3,
    `argon2 ran only for the owner's key (${spent} verifications for 8 wrong guesses and 3 right calls)`,
  );
});
