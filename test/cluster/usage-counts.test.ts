import t from 'tap';
import pg from 'pg';
import { createKeys, node, startCluster, type Node } from '../helpers/cluster.js';
import { startReplica, waitFor } from '../helpers/replica.js';

// No flush timer within the test: only the SIGTERM flush writes (and the activity route, not called before the stops).
const ENV = { ACTIVITY_FLUSH_MS: '600000' };

type Outcome = 'ALLOWED' | 'IP_NOT_ALLOWED' | 'SCOPE_NOT_GRANTED';
interface Call {
  ip: string;
  scope: string;
  outcome: Outcome;
  n: number;
}

/** Each replica's own known traffic: different counts per replica, several addresses, v4 and v6. */
function plan(i: number): Call[] {
  return [
    { ip: '198.51.100.1', scope: 'bookings:read', outcome: 'ALLOWED', n: 30 + i },
    { ip: '198.51.100.2', scope: 'bookings:read', outcome: 'ALLOWED', n: 11 * (i + 1) },
    { ip: '2001:db8::3', scope: 'bookings:read', outcome: 'ALLOWED', n: 7 + 3 * i },
    { ip: '203.0.113.5', scope: 'bookings:read', outcome: 'IP_NOT_ALLOWED', n: 5 + i },
    { ip: '2001:470::9', scope: 'bookings:read', outcome: 'IP_NOT_ALLOWED', n: 2 * i },
    { ip: '198.51.100.1', scope: 'bookings:write', outcome: 'SCOPE_NOT_GRANTED', n: 4 + 2 * i },
  ].filter((c) => c.n > 0) as Call[];
}

interface Totals {
  allowed: number;
  denied: Record<string, number>;
  addresses: Record<string, number>;
}

function sum(calls: Call[]): Totals {
  const out: Totals = { allowed: 0, denied: {}, addresses: {} };
  for (const c of calls) {
    if (c.outcome === 'ALLOWED') out.allowed += c.n;
    else out.denied[c.outcome] = (out.denied[c.outcome] ?? 0) + c.n;
    // Addresses are those of allowed calls (a denied call's address is only sampled).
    if (c.outcome === 'ALLOWED') out.addresses[c.ip] = (out.addresses[c.ip] ?? 0) + c.n;
  }
  return out;
}

/** Send every planned call to `n`, 20 at a time; resolves the answers that were not what the plan says. */
async function send(n: Node, secret: string, calls: Call[]): Promise<string[]> {
  const jobs = calls.flatMap((c) => Array.from({ length: c.n }, () => c));
  const wrong: string[] = [];
  for (let i = 0; i < jobs.length; i += 20) {
    await Promise.all(
      jobs.slice(i, i + 20).map(async (c) => {
        const r = await n.authenticate({ key: secret, ip: c.ip, scope: c.scope });
        const got = r.allowed ? 'ALLOWED' : r.reason;
        if (got !== c.outcome) wrong.push(`${c.ip} ${c.scope}: ${got}, wanted ${c.outcome}`);
      }),
    );
  }
  return wrong;
}

t.test(
  'counts from three replicas add up exactly: Authenticate writes nothing, each SIGTERM flushes its own',
  async (t) => {
    const { env, nodes } = await startCluster(t, 3, ENV);
    const db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    t.teardown(() => db.end());
    const stored = async (keyId: string): Promise<Totals & { batches: number }> => {
      const out: Totals & { batches: number } = { allowed: 0, denied: {}, addresses: {}, batches: 0 };
      for (const r of (
        await db.query('SELECT outcome, sum(count)::int AS n FROM key_usage_hourly WHERE key_id = $1 GROUP BY 1', [
          keyId,
        ])
      ).rows) {
        if (r.outcome === 'ALLOWED') out.allowed = r.n;
        else out.denied[r.outcome] = r.n;
      }
      for (const r of (await db.query('SELECT ip, count::int AS n FROM key_addresses WHERE key_id = $1', [keyId])).rows)
        out.addresses[r.ip] = r.n;
      out.batches = (await db.query('SELECT count(*)::int AS n FROM activity_batches')).rows[0].n;
      return out;
    };
    const lastUsed = async (id: string) =>
      (await db.query('SELECT last_used_at FROM api_keys WHERE id = $1', [id])).rows[0].last_used_at as Date | null;

    const allowed = ['198.51.100.0/24', '2001:db8::/32'];
    const [key, quiet] = (await createKeys(nodes[0]!, 2, 'acct_1', {
      scopes: ['bookings:read'],
      allowed_ips: allowed,
    })) as [{ id: string; secret: string }, { id: string; secret: string }];
    const plans = nodes.map((_, i) => plan(i));
    const started = Date.now();
    const wrong = await Promise.all(nodes.map((n, i) => send(n, key.secret, plans[i]!)));
    t.same(wrong.flat(), [], 'every answer as planned');
    t.equal((await nodes[2]!.authenticate({ key: quiet.secret, ip: '198.51.100.200' })).allowed, true);
    const calls = plans.flat().reduce((s, c) => s + c.n, 0);

    t.same(
      await stored(key.id),
      { allowed: 0, denied: {}, addresses: {}, batches: 0 },
      `after ${calls} calls, nothing is in PostgreSQL: Authenticate did not write`,
    );
    t.equal(await lastUsed(key.id), null, 'not even last_used_at');

    for (const [i, n] of nodes.entries()) {
      t.equal(await n.stop(), 0, `replica ${i} stops cleanly on SIGTERM`);
      const want = sum(plans.slice(0, i + 1).flat());
      const got = await stored(key.id);
      t.same(
        { allowed: got.allowed, denied: got.denied, addresses: got.addresses },
        want,
        `after replica ${i} stopped: exactly its calls added`,
      );
      t.equal(
        got.batches,
        i + 1,
        `one batch per stopped replica, whatever its traffic (${plans[i]!.reduce((s, c) => s + c.n, 0)} calls)`,
      );
    }
    t.ok(((await lastUsed(key.id))?.getTime() ?? 0) >= started, 'last use written by the flushes');

    const reader = node(t, await startReplica(t, { ...env, REPLICA_ID: 'reader', ACTIVITY_FLUSH_MS: '200' }));
    const res = await reader.api('GET', `/v1/accounts/acct_1/keys/${key.id}/activity`);
    t.equal(res.status, 200);
    const want = sum(plans.flat());
    t.same(res.body.totals, { allowed: want.allowed, denied: want.denied }, 'totals over all three replicas, exact');
    t.same(
      Object.fromEntries(res.body.addresses.map((a: { ip: string; count: number }) => [a.ip, a.count])),
      want.addresses,
      'per address, exact',
    );
    const series = res.body.series as { start: string; allowed: number; denied: number }[];
    t.ok(series.length >= 1 && series.length <= 2, 'one hour of traffic (two if it crossed the hour)');
    t.equal(
      series.reduce((s, h) => s + h.allowed, 0),
      want.allowed,
      'series adds up to the totals (allowed)',
    );
    t.equal(
      series.reduce((s, h) => s + h.denied, 0),
      calls - want.allowed,
      'series adds up to the totals (denied)',
    );
    t.ok(
      ['198.51.100.1', '198.51.100.2', '2001:db8::3'].includes(res.body.last_used_ip),
      'last used from one of the allowed addresses',
    );
    const q = await reader.api('GET', `/v1/accounts/acct_1/keys/${quiet.id}/activity`);
    t.same(
      [q.body.totals, q.body.addresses.map((a: { ip: string }) => a.ip)],
      [{ allowed: 1, denied: {} }, ['198.51.100.200']],
      'no count bled into another key',
    );

    // The flush timer: what it wrote survives a SIGKILL; only calls since the last flush can be lost.
    const base = (await stored(key.id)).allowed;
    t.same(
      await send(reader, key.secret, [{ ip: '198.51.100.1', scope: 'bookings:read', outcome: 'ALLOWED', n: 40 }]),
      [],
    );
    t.ok(
      await waitFor(async () => (await stored(key.id)).allowed === base + 40, 5000),
      'the timer flushed the 40 calls within a few periods',
    );
    t.same(
      await send(reader, key.secret, [{ ip: '198.51.100.1', scope: 'bookings:read', outcome: 'ALLOWED', n: 25 }]),
      [],
    );
    await reader.kill();
    const after = (await stored(key.id)).allowed;
    t.ok(
      after >= base + 40 && after <= base + 65,
      `SIGKILL: the flushed 40 stay; at most the 25 since the last flush are lost (kept ${after - base - 40})`,
    );
  },
);
