import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';

// Polling pushed out of reach: only the pub/sub path can evict, as in invalidation.test.ts.
const ENV = { CHANGE_POLL_MS: '60000', CACHE_TTL_SECONDS: '600', ACTIVITY_FLUSH_MS: '600000' };
const IP_BEFORE = '198.51.100.1';
const IP_STAYS = '198.51.100.2';
const IP_MOVED = '2001:db8::3';

interface Answer {
  node: number;
  sent: number;
  received: number;
  allowed: boolean;
  reason: string;
}

/** One Authenticate with the times it was sent and answered. */
async function call(nodes: Node[], i: number, key: string, ip: string, scope = 'bookings:read'): Promise<Answer> {
  const sent = Date.now();
  const r = await nodes[i]!.authenticate({ key, ip, scope });
  return { node: i, sent, received: Date.now(), allowed: r.allowed, reason: r.reason };
}

/** The activity of a key after every replica flushed (each replica flushes its own counts when asked). */
async function activity(nodes: Node[], account: string, id: string) {
  let body: any;
  for (const n of nodes) {
    const res = await n.api('GET', `/v1/accounts/${account}/keys/${id}/activity`);
    if (res.status !== 200) throw new Error(`activity ${res.status}`);
    body = res.body;
  }
  return body;
}

t.test('two replicas', async (t) => {
  const { nodes } = await startCluster(t, 2, ENV);
  const [a, b] = nodes as [Node, Node];

  t.test('rotation through a 3-second grace period, seen alike on both replicas', async (t) => {
    const grant = {
      label: 'payments',
      scopes: ['bookings:read', 'invoices:read'],
      allowed_ips: ['198.51.100.0/24', '2001:db8::/32'],
    };
    const [old] = (await createKeys(a, 1, 'acct_1', grant)) as [{ id: string; secret: string }];
    for (const i of [0, 1])
      t.equal((await call(nodes, i, old.secret, IP_BEFORE)).allowed, true, `old key cached on replica ${i}`);

    const res = await a.api('POST', `/v1/accounts/acct_1/keys/${old.id}/rotate`, { expire_previous_in: 3 });
    t.equal(res.status, 201);
    const answers = await Promise.all([0, 1].map((i) => call(nodes, i, old.secret, IP_STAYS)));
    const fresh = res.body as {
      id: string;
      secret: string;
      replaces: string;
      scopes: string[];
      allowed_ips: string[];
      previous: { id: string; expires_at: string };
    };
    const graceEnd = Date.parse(fresh.previous.expires_at);
    t.same(
      [fresh.replaces, fresh.previous.id, fresh.scopes, fresh.allowed_ips],
      [old.id, old.id, grant.scopes, grant.allowed_ips],
    );
    t.equal(
      (await b.api('GET', `/v1/accounts/acct_1/keys/${old.id}`)).body.replaced_by,
      fresh.id,
      'replica b shows the link',
    );
    t.same(
      (await b.api('GET', '/v1/accounts/acct_1/keys?in_grace=true')).body.data.map((k: { id: string }) => k.id),
      [old.id],
    );

    for (const i of [0, 1])
      t.equal((await call(nodes, i, fresh.secret, IP_MOVED)).allowed, true, `new key works on replica ${i}`);
    // Keep calling with the old key on both replicas until both refuse a call sent after the grace ended (a pair
    // sent just before the end and decided after it is refused too, but proves nothing about the calls after).
    let done = false;
    while (!done && Date.now() < graceEnd + 3000) {
      const pair = await Promise.all([0, 1].map((i) => call(nodes, i, old.secret, IP_STAYS)));
      answers.push(...pair);
      done = pair.every((p) => p.sent > graceEnd && !p.allowed);
      await new Promise((r) => setTimeout(r, 100));
    }
    const early = answers.filter((x) => x.received < graceEnd);
    const late = answers.filter((x) => x.sent > graceEnd);
    t.ok(early.length >= 2, `the old key was tried during its grace period (${early.length} calls)`);
    t.same(
      early.filter((x) => !x.allowed),
      [],
      'every call answered before the grace ended was allowed, on both replicas',
    );
    t.ok(late.length >= 2 && new Set(late.map((x) => x.node)).size === 2, 'and it was tried on both replicas after');
    t.same(
      late.filter((x) => x.allowed || x.reason !== 'KEY_EXPIRED'),
      [],
      'every call sent after the grace ended was KEY_EXPIRED, on both replicas',
    );
    for (const i of [0, 1])
      t.equal((await call(nodes, i, fresh.secret, IP_MOVED)).allowed, true, `the new key still works on replica ${i}`);
    t.equal((await a.api('GET', `/v1/accounts/acct_1/keys/${old.id}`)).body.status, 'expired');
    t.same((await a.api('GET', '/v1/accounts/acct_1/keys?in_grace=true')).body.data, [], 'no key in grace any more');

    const oldActivity = await activity(nodes, 'acct_1', old.id);
    const allowedAfter = answers.filter((x) => x.allowed).length;
    t.same(
      oldActivity.totals,
      { allowed: 2 + allowedAfter, denied: { KEY_EXPIRED: answers.length - allowedAfter } },
      'every call of the old key on both replicas is counted, allowed in the grace period and expired after',
    );
    t.same(oldActivity.rotation.addresses_since_rotation, [IP_STAYS], 'the address still on the old key');
    t.equal(oldActivity.rotation.replaced_by, fresh.id);
    t.equal(oldActivity.rotation.grace_ends_at, fresh.previous.expires_at);
    t.ok(
      oldActivity.last_used_at && Date.parse(oldActivity.last_used_at) < graceEnd,
      'the old key was last used (allowed) before its grace ended',
    );
    t.ok(
      oldActivity.alerts.some((x: { type: string }) => x.type === 'rotated_key_in_use'),
      'an alert: still used after rotation',
    );
    const freshActivity = await activity(nodes, 'acct_1', fresh.id);
    t.same(
      [freshActivity.totals.allowed, freshActivity.last_used_ip, freshActivity.rotation.replaces],
      [4, IP_MOVED, old.id],
    );
    t.ok(
      Date.parse(freshActivity.last_used_at) > Date.parse(oldActivity.last_used_at),
      'the new key was used after the old one stopped',
    );
  });

  t.test('PATCH expires_at narrows a key cached on both replicas', async (t) => {
    const [k] = (await createKeys(b, 1, 'acct_1')) as [{ id: string; secret: string }];
    for (const i of [0, 1]) t.equal((await call(nodes, i, k.secret, IP_BEFORE)).allowed, true);
    const expiresAt = Date.now() + 1500;
    const res = await b.api('PATCH', `/v1/accounts/acct_1/keys/${k.id}`, {
      expires_at: new Date(expiresAt).toISOString(),
      label: 'short-lived',
    });
    t.equal(res.status, 200);
    t.equal((await a.api('GET', `/v1/accounts/acct_1/keys/${k.id}`)).body.label, 'short-lived');
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() + 10)));
    for (const i of [0, 1])
      t.equal((await call(nodes, i, k.secret, IP_BEFORE)).reason, 'KEY_EXPIRED', `expired on replica ${i}`);
  });

  t.test(
    'revoke-all for one environment: that environment denied on both replicas at once, the rest untouched',
    async (t) => {
      const acct = 'acct_ra';
      const live = await createKeys(a, 3, acct, { environment: 'live' });
      const sandbox = await createKeys(a, 2, acct, { environment: 'test' });
      const [gone] = (await createKeys(a, 1, acct, { environment: 'live' })) as [{ id: string; secret: string }];
      await a.api('POST', `/v1/accounts/${acct}/keys/${gone.id}/revoke`, {});
      const rotated = await a.api('POST', `/v1/accounts/${acct}/keys/${live[2]!.id}/rotate`, {
        expire_previous_in: 3600,
      });
      live.push({ id: rotated.body.id, secret: rotated.body.secret });
      const [elsewhere] = (await createKeys(a, 1, 'acct_other')) as [{ id: string; secret: string }];
      const everyone = [...live, ...sandbox, elsewhere];
      for (const i of [0, 1])
        for (const k of everyone) t.equal((await call(nodes, i, k.secret, IP_BEFORE)).allowed, true);

      const res = await b.api('POST', `/v1/accounts/${acct}/keys/revoke-all`, {
        environment: 'live',
        reason: 'leaked in CI logs',
      });
      t.equal(res.status, 200);
      t.equal(
        res.body.revoked,
        4,
        'three live keys and the rotated one still in its grace period (not the one already revoked)',
      );
      const state = async (keys: { secret: string }[]) =>
        (await Promise.all([0, 1].flatMap((i) => keys.map((k) => call(nodes, i, k.secret, IP_BEFORE))))).map((x) =>
          x.allowed ? 'allowed' : x.reason,
        );
      t.same(
        await state(live),
        Array(8).fill('KEY_REVOKED'),
        'every live key refused on both replicas right after the response',
      );
      t.same(await state(sandbox), Array(4).fill('allowed'), 'test keys still work');
      t.same(await state([elsewhere]), Array(2).fill('allowed'), 'another account is untouched');

      const rest = await a.api('POST', `/v1/accounts/${acct}/keys/revoke-all`, {});
      t.equal(rest.body.revoked, 2, 'without an environment: the rest of the account');
      t.same(await state(sandbox), Array(4).fill('KEY_REVOKED'));
      t.equal(
        (await a.api('POST', `/v1/accounts/${acct}/keys/revoke-all`, {})).body.revoked,
        0,
        'nothing left to revoke',
      );
      t.same((await b.api('GET', `/v1/accounts/${acct}/keys?status=active`)).body.data, []);

      const log = (await a.api('GET', `/v1/accounts/${acct}/audit-log?limit=100`)).body.data as {
        action: string;
        key_id: string | null;
        changes: any;
      }[];
      const summaries = log.filter((e) => e.action === 'keys.revoked_all').map((e) => e.changes);
      t.same(
        summaries,
        [
          { environment: null, reason: null, revoked: 0 },
          { environment: null, reason: null, revoked: 2 },
          { environment: 'live', reason: 'leaked in CI logs', revoked: 4 },
        ],
        'one summary entry per revoke-all, newest first',
      );
      const perKey = log
        .filter((e) => e.action === 'key.revoked' && e.changes.via === 'revoke-all')
        .map((e) => e.key_id)
        .sort();
      t.same(perKey, [...live, ...sandbox].map((k) => k.id).sort(), 'and one entry per key it revoked');
    },
  );
});
