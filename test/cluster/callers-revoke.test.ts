// Fault suite for local decisions (design: callers-hold-leases, revoke-holds): calling processes that
// decide allowed keys from memory, one behind a stream delayed 300 ms, one cut off 2.5 s, one paused
// with SIGSTOP past its lease. After a revoke (or a narrowing PATCH) returns, no caller allows a
// request of that key that started later; and the uses they allowed are counted exactly.
import t from 'tap';
import { createKeys, type Node } from '../helpers/cluster.js';
import { startCaller, type CallerProcess } from '../helpers/caller-procs.js';
import { startReplicas } from '../helpers/faults.js';
import { startProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/replica.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('callers deciding from memory: delayed, cut off, paused; a revoke holds on each when it returns', async (t) => {
  const { nodes } = await startReplicas(t, {}, [{}, {}]);
  const [r0, r1] = nodes as [Node, Node];
  const keys = await createKeys(r0, 4);
  const secrets = keys.map((k) => k.secret);
  const delayed = await startProxy(t, r1.grpcPort);
  const cutOff = await startProxy(t, r0.grpcPort);
  const callers: Record<string, CallerProcess> = {
    direct: await startCaller(t, `127.0.0.1:${r1.grpcPort}`, secrets),
    delayed: await startCaller(t, `127.0.0.1:${delayed.port}`, secrets),
    cutOff: await startCaller(t, `127.0.0.1:${cutOff.port}`, secrets),
    paused: await startCaller(t, `127.0.0.1:${r0.grpcPort}`, secrets),
  };
  const all = Object.entries(callers);

  /** Every caller is deciding key `k` from memory now. */
  const deciding = async (k: number, who = all) => {
    const ok = await waitFor(async () => {
      const since = Date.now() - 150;
      await sleep(200);
      const r = await Promise.all(who.map(([, c]) => c.allowsAfter(k, since)));
      return r.every((x) => x.local > 0);
    }, 10_000);
    t.ok(ok, `key ${k}: ${who.map(([n]) => n).join(', ')} decide it from memory`);
  };

  /** After the change returned at `returned`, nobody allowed a request of key `k` that started later. */
  const holds = async (k: number, returned: number, what: string) => {
    await sleep(800);
    for (const [name, c] of all) {
      const after = await c.allowsAfter(k, returned);
      t.same(
        { local: after.local, asked: after.asked },
        { local: 0, asked: 0 },
        `${what}: ${name} allowed nothing after`,
      );
    }
  };

  await deciding(0);
  delayed.delay(300);
  await sleep(1000);
  await deciding(0, [['delayed', callers.delayed!]]);
  let res = await r0.api('POST', `/v1/accounts/acct_1/keys/${keys[0]!.id}/revoke`, {});
  let returned = Date.now();
  t.equal(res.status, 200);
  t.match(res.body.propagation, { outcome: 'confirmed' }, 'stream delayed 300 ms: every holder confirmed');
  t.ok(res.body.propagation.replicas >= 6, `2 replicas and 4 callers held leases (${res.body.propagation.replicas})`);
  await holds(0, returned, 'delayed 300 ms');
  delayed.heal();

  await deciding(1);
  cutOff.cut();
  res = await r0.api('POST', `/v1/accounts/acct_1/keys/${keys[1]!.id}/revoke`, {});
  returned = Date.now();
  t.equal(res.status, 200);
  t.match(
    res.body.propagation,
    { outcome: 'lease_expired' },
    `cut off: the revoke waited for its lease (${res.body.propagation.waited_ms} ms)`,
  );
  setTimeout(() => cutOff.heal(), 2500);
  await holds(1, returned, 'cut off 2.5 s');
  await sleep(2500);
  await deciding(2);

  callers.paused!.pause();
  await sleep(50);
  res = await r0.api('POST', `/v1/accounts/acct_1/keys/${keys[2]!.id}/revoke`, {});
  returned = Date.now();
  t.match(res.body.propagation, { outcome: 'lease_expired' }, 'paused: the revoke waited for its lease to run out');
  t.ok(res.body.propagation.unconfirmed.length >= 1, `unconfirmed: ${res.body.propagation.unconfirmed.join(', ')}`);
  await sleep(300);
  callers.paused!.resume();
  await holds(2, returned, 'paused past its lease');
  const resumed = await callers.paused!.allowsAfter(3, returned);
  t.ok(resumed.calls > 0, `the paused caller decides again after it resumed (${resumed.calls} requests)`);

  await deciding(3);
  res = await r0.api('PATCH', `/v1/accounts/acct_1/keys/${keys[3]!.id}`, { scopes: ['bookings:write'] });
  returned = Date.now();
  t.equal(res.status, 200);
  await holds(3, returned, 'scope taken away');

  // Every allowed request counted once: what the callers allowed (from memory or asked) against the activity.
  const counted: number[] = keys.map(() => 0);
  for (const [k] of keys.entries())
    for (const [, c] of all) {
      const a = await c.allowsAfter(k, 0);
      counted[k]! += a.local + a.asked;
    }
  await Promise.all(all.map(([, c]) => c.close()));
  for (const [k, key] of keys.entries()) {
    // Reading the activity on a replica flushes the uses it holds: r1's first, then r0's with the answer.
    await r1.api('GET', `/v1/accounts/acct_1/keys/${key.id}/activity`);
    const totals = (await r0.api('GET', `/v1/accounts/acct_1/keys/${key.id}/activity`)).body.totals;
    t.equal(totals.allowed, counted[k], `key ${k}: ${counted[k]} allowed requests, each counted once`);
  }
});
