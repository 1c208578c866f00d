// A Redis writer replays a revoked key's genuine (signed) cache entries while PostgreSQL is
// unreachable (design: version-floor, redis-not-authority): a replica that knows the revoke, from
// the change log at start or from the invalidation message, serves none of them, fresh or stale.
import { Redis } from 'ioredis';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeys, node, type Node } from '../helpers/cluster.js';
import { createDatabase, REDIS_URL } from '../helpers/db.js';
import { startReplicas } from '../helpers/faults.js';
import { startProxy } from '../helpers/proxy.js';
import { startReplica, waitFor } from '../helpers/replica.js';

t.test('replayed entries of a revoked key while PostgreSQL is cut: no replica allows it', async (t) => {
  const url = new URL(await createDatabase(t));
  const pg = await startProxy(t, Number(url.port));
  url.port = String(pg.port);
  // Entries stay fresh for 10 minutes and serve 5 more when PostgreSQL is down: a replay is well within both.
  const { env, nodes } = await startReplicas(t, { DATABASE_URL: url.toString(), STALE_SERVE_SECONDS: '300' }, [{}]);
  const [writer] = nodes as [Node];
  const [key] = (await createKeys(writer, 1)) as [{ id: string; secret: string }];
  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  const hash = `${env.REDIS_PREFIX}k:${key.id}`;

  const trusted = (n: Node) => waitFor(async () => (await n.metric('otesse_keys_cache_trusted')) === 1, 10_000);
  t.ok(await trusted(writer), 'the writer trusts its caches (it writes to Redis)');
  t.equal((await writer.authenticate({ key: key.secret })).allowed, true, 'verified: its entry is in Redis');
  const dump = await redis.hgetall(hash);
  t.ok(Object.keys(dump).length > 0, 'the attacker keeps a copy of the signed entry');
  t.equal((await writer.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {})).status, 200, 'revoked');

  // A replica started after the revoke learns it only from the change log at start.
  const fresh = node(t, await startReplica(t, { ...env, REPLICA_ID: 'r-new' }));
  t.ok(
    (await waitFor(() => fresh.ready())) && (await trusted(fresh)) && (await trusted(writer)),
    'the new replica is caught up, both trust their caches',
  );

  pg.cut();
  t.ok(
    await waitFor(async () =>
      JSON.stringify(await (await fetch(`http://127.0.0.1:${fresh.httpPort}/readyz`)).json()).includes(
        'storage unreachable',
      ),
    ),
    'PostgreSQL is unreachable',
  );
  await redis.hset(hash, dump);

  const answers = new Map<string, number>();
  const until = Date.now() + 4000;
  while (Date.now() < until) {
    for (const [name, n] of [
      ['new replica', fresh],
      ['writer', writer],
    ] as const) {
      await redis.hset(hash, dump); // as often as a replica might remove it
      const r = await n.tryAuthenticate({ key: key.secret });
      const label = `${name}: ${r.code !== grpc.status.OK ? `code ${r.code}` : r.res?.allowed ? 'ALLOWED' : String(r.res?.reason)}`;
      answers.set(label, (answers.get(label) ?? 0) + 1);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  t.comment(`REPLAY ${JSON.stringify(Object.fromEntries(answers))}`);
  t.same(
    [...answers.keys()].filter((k) => k.endsWith('ALLOWED')),
    [],
    'never allowed from the replayed entry, fresh or stale, by either replica',
  );
  t.ok(
    [...answers.keys()].every((k) => k.endsWith(`code ${grpc.status.UNAVAILABLE}`) || k.endsWith('KEY_REVOKED')),
    'UNAVAILABLE (PostgreSQL down) or KEY_REVOKED',
  );
  t.ok((await fresh.metric('otesse_keys_superseded_entries_total')) > 0, 'the replayed entry is counted');

  pg.heal();
  t.ok(
    await waitFor(async () => (await fresh.tryAuthenticate({ key: key.secret })).res?.reason === 'KEY_REVOKED', 15_000),
    'PostgreSQL back: revoked, the replayed entry proving only that the digest was verified',
  );
});
