import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';
import { createDatabase } from '../helpers/db.js';
import { startProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/replica.js';

t.test(
  'PostgreSQL cut: verified keys serve for the stale bound, the rest is UNAVAILABLE, admin writes 503',
  async (t) => {
    const url = new URL(await createDatabase(t));
    const proxy = await startProxy(t, Number(url.port));
    url.port = String(proxy.port);
    const { nodes } = await startCluster(t, 2, {
      DATABASE_URL: url.toString(),
      CACHE_TTL_SECONDS: '1',
      STALE_SERVE_SECONDS: '3',
    });
    const [a, b] = nodes as [Node, Node];
    const [warm, cold] = (await createKeys(a, 2)) as [{ id: string; secret: string }, { id: string; secret: string }];
    t.equal((await b.authenticate({ key: warm.secret })).allowed, true, 'warm key verified on b');

    proxy.cut();
    t.ok(
      await waitFor(async () =>
        JSON.stringify(await (await fetch(`http://127.0.0.1:${b.httpPort}/readyz`)).json()).includes(
          'storage unreachable',
        ),
      ),
      'b names PostgreSQL as degraded',
    );
    t.equal(await b.ready(), true, 'and stays ready (design: readiness-is-local)');
    await new Promise((r) => setTimeout(r, 1200)); // past the fresh time: entries now need PostgreSQL to refresh
    t.equal(
      (await b.authenticate({ key: warm.secret })).allowed,
      true,
      'the verified key still serves within the stale bound',
    );
    t.equal(
      (await b.tryAuthenticate({ key: cold.secret })).code,
      grpc.status.UNAVAILABLE,
      'a never-verified key is UNAVAILABLE, never allowed',
    );
    const write = await a.api('POST', '/v1/accounts/acct_1/keys', {
      label: 'x',
      scopes: ['bookings:read'],
      environment: 'live',
    });
    t.equal(write.status, 503, 'admin writes answer 503');
    const revoke = await a.api('POST', `/v1/accounts/acct_1/keys/${warm.id}/revoke`, {});
    t.equal(revoke.status, 503);
    t.equal(write.body.title, 'Service Unavailable');

    await new Promise((r) => setTimeout(r, 3500));
    t.equal(
      (await b.tryAuthenticate({ key: warm.secret })).code,
      grpc.status.UNAVAILABLE,
      'past the bound the verified key is UNAVAILABLE too',
    );

    proxy.heal();
    t.ok(await waitFor(async () => b.ready(), 15_000), 'ready again');
    t.equal((await b.authenticate({ key: warm.secret })).allowed, true);
    t.equal((await b.authenticate({ key: cold.secret })).allowed, true);
    const list = await a.api('GET', '/v1/accounts/acct_1/keys');
    t.equal(list.body.data.length, 2, 'the refused create changed nothing');
  },
);
