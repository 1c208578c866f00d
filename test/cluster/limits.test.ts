// Limits on real replicas: a rate limit holds for the key across the fleet, a quota is exact, a
// disable holds on every replica when the PATCH returns, metadata comes back with the answer.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeys, startCluster, type Node } from '../helpers/cluster.js';

// The figure (1,000 per 10 s at 5× for 60 s) with LIMITS_FULL=1 (`npm run test:limits`); npm test runs the
// same ratios in less time: 200 per 2 s, 5× the limit, 12 s.
const FULL = process.env.LIMITS_FULL === '1';
const LIMIT = FULL ? 1000 : 200;
const WINDOW = FULL ? 10_000 : 2_000;
const RUN_MS = FULL ? 60_000 : 12_000;

const { nodes } = await startCluster(t, 3);
const [writer] = nodes as [Node];
const patch = (id: string, body: Record<string, unknown>) =>
  writer.api('PATCH', `/v1/accounts/acct_1/keys/${id}`, body);

t.test(
  `${LIMIT} per ${WINDOW / 1000} s, driven at 5× for ${RUN_MS / 1000} s over 3 replicas: every window allows the limit, never more`,
  async (t) => {
    const [key] = await createKeys(writer, 1);
    const res = await patch(key!.id, { rate_limits: [{ name: 'burst', limit: LIMIT, window_seconds: WINDOW / 1000 }] });
    t.equal(res.status, 200, JSON.stringify(res.body));
    // Start just after a window begins, so the run covers six whole windows.
    await new Promise((r) => setTimeout(r, WINDOW - (Date.now() % WINDOW) + 50));
    const start = Date.now();
    const end = start + RUN_MS;
    // Per window: calls certainly decided in it (sent and answered inside), and calls possibly decided in it.
    const certain = new Map<number, number>();
    const possible = new Map<number, number>();
    const retryAfter: number[] = [];
    const other = new Map<string, number>();
    const add = (m: Map<number, number>, w: number) => m.set(w, (m.get(w) ?? 0) + 1);
    // 5 × the limit's rate in all, open loop, spread over the replicas.
    const gapMs = WINDOW / (5 * LIMIT);
    const sent: Promise<void>[] = [];
    for (let i = 0; Date.now() < end; i++) {
      const target = start + i * gapMs;
      const wait = target - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const n = nodes[i % nodes.length] as Node;
      const at = Date.now();
      sent.push(
        n.tryAuthenticate({ key: key!.secret }).then(({ code, res }) => {
          const done = Date.now();
          if (code === grpc.status.OK && res?.allowed) {
            const a = Math.floor(at / WINDOW);
            const b = Math.floor(done / WINDOW);
            if (a === b) add(certain, a);
            add(possible, a);
            if (b !== a) add(possible, b);
          } else if (code === grpc.status.OK && res?.reason === 'RATE_LIMITED') {
            retryAfter.push(Number(res.retry_after_ms));
          } else {
            other.set(`${code}:${res?.reason}`, (other.get(`${code}:${res?.reason}`) ?? 0) + 1);
          }
        }),
      );
    }
    await Promise.all(sent);
    const windows = [...new Set([...possible.keys()])]
      .sort()
      .filter((w) => w * WINDOW >= start - 100 && (w + 1) * WINDOW <= end + 100);
    const rows = windows.map((w) => ({
      window: new Date(w * WINDOW).toISOString().slice(11, 19),
      certain: certain.get(w) ?? 0,
      possible: possible.get(w) ?? 0,
    }));
    t.comment(`LIMITS ${JSON.stringify({ sent: sent.length, windows: rows })}`);
    t.ok(windows.length >= 5, `whole windows measured: ${windows.length}`);
    t.same([...other.entries()], [], 'every answer was an allow or RATE_LIMITED');
    // A lease Redis does not answer within its timeout (a machine loaded far beyond its cores) makes that
    // replica count the limit alone until the window ends: the documented bound is then one limit per replica.
    let faults = 0;
    for (const n of nodes) faults += (await n.metric('otesse_keys_rate_budget_faults_total')) || 0;
    const bound = faults === 0 ? LIMIT : LIMIT * nodes.length;
    if (faults > 0) t.comment(`${faults} leases unanswered by Redis: each replica counted alone meanwhile`);
    for (const r of rows) {
      t.ok(r.certain <= bound, `${r.window}: at most the limit (${r.certain} certainly in the window; bound ${bound})`);
      t.ok(r.possible >= LIMIT * 0.95, `${r.window}: within 5% of the limit (${r.possible} possibly in the window)`);
    }
    t.ok(
      retryAfter.length > 0 && retryAfter.every((ms) => ms > 0 && ms <= WINDOW),
      'RATE_LIMITED says when the window ends',
    );
  },
);

t.test('remaining_uses 10,000 over 3 replicas at full speed: exactly 10,000 allowed', async (t) => {
  const [key] = await createKeys(writer, 1);
  t.equal((await patch(key!.id, { remaining_uses: 10_000 })).status, 200);
  let allowed = 0;
  let exceeded = 0;
  const other: string[] = [];
  // 16 calls in flight per replica until each has answered USAGE_EXCEEDED 50 times in a row.
  await Promise.all(
    nodes.flatMap((n) =>
      Array.from({ length: 16 }, async () => {
        let streak = 0;
        while (streak < 50) {
          const { code, res } = await n.tryAuthenticate({ key: key!.secret });
          if (code === grpc.status.OK && res?.allowed) {
            allowed++;
            streak = 0;
            continue;
          }
          if (code === grpc.status.OK && res?.reason === 'USAGE_EXCEEDED') {
            exceeded++;
            streak++;
            continue;
          }
          other.push(`${code}:${res?.reason}`);
          return;
        }
      }),
    ),
  );
  t.comment(`QUOTA ${JSON.stringify({ allowed, exceeded })}`);
  t.same(other, [], 'no other answer');
  t.equal(allowed, 10_000, 'exactly the quota');
  const resource = await writer.api('GET', `/v1/accounts/acct_1/keys/${key!.id}`);
  t.equal(resource.body.remaining_uses, 0, 'the key resource shows the balance');
});

t.test('enabled: false holds on every replica when the PATCH returns; true brings the key back', async (t) => {
  const [key] = await createKeys(writer, 1, 'acct_1', { metadata: { plan: 'pro', seats: 5 } });
  for (const n of nodes) {
    const r = await n.authenticate({ key: key!.secret });
    t.equal(r.allowed, true);
    t.same(JSON.parse(r.metadata), { plan: 'pro', seats: 5 }, 'metadata comes back with the answer');
  }
  t.equal((await patch(key!.id, { enabled: false })).status, 200);
  for (const [i, n] of nodes.entries())
    t.equal((await n.authenticate({ key: key!.secret })).reason, 'KEY_DISABLED', `replica ${i}: disabled at once`);
  t.equal((await patch(key!.id, { enabled: true })).status, 200);
  for (const [i, n] of nodes.entries())
    t.equal((await n.authenticate({ key: key!.secret })).allowed, true, `replica ${i}: enabled again`);
});

t.test(
  'remaining_uses 2,000, demand moving between 3 replicas (48 in flight, then one at a time round robin): exactly 2,000 allowed',
  async (t) => {
    // Every replica holds a share; two of them then spend the balance while the third is quiet, and the
    // demand comes back to all three, one call at a time. The third's renewal ahead of need finds the balance
    // empty while it still holds tokens (no burst spends them meanwhile): they must still be spent, not
    // refused until the key goes idle (today's code allowed 1,992 here).
    const [key] = await createKeys(writer, 1);
    t.equal((await patch(key!.id, { remaining_uses: 2000 })).status, 200);
    const tally = { allowed: 0, exceeded: 0, other: [] as string[] };
    const round = async (targets: Node[], calls: number, inFlight = 48) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          for (let i = next++; i < calls; i = next++) {
            const { code, res } = await (targets[i % targets.length] as Node).tryAuthenticate({ key: key!.secret });
            if (code === grpc.status.OK && res?.allowed) tally.allowed++;
            else if (code === grpc.status.OK && res?.reason === 'USAGE_EXCEEDED') tally.exceeded++;
            else tally.other.push(`${code}:${res?.reason}`);
          }
        }),
      );
    };
    for (const n of nodes) for (let i = 0; i < 5; i++) await round([n], 1);
    await round(nodes.slice(0, 2), 2400);
    await round(nodes, 300, 1);
    t.comment(`QUOTA ${JSON.stringify({ calls: 2715, allowed: tally.allowed, exceeded: tally.exceeded })}`);
    t.same(tally.other, [], 'no other answer');
    t.equal(tally.allowed, 2000, 'exactly the quota: no share is left unspent while calls are refused');
  },
);
