// The Watch stream as a caller's library sees it on the wire (design: callers-hold-leases): versions
// changed recently, then the terms; beats echoed; each change passed on and waited for until confirmed
// or the lease ran out; usage reports counted once; `local` only for keys without limits or quota.
import t from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';
import { openWatch } from '../helpers/watch.js';

const app = await startTestApp(t, { LEASE_MS: '600', HEARTBEAT_MS: '100', CLOCK_SKEW_MS: '100' });

t.test('a stream opens with the versions changed within the floor window, then the terms', async (t) => {
  const key = await createKey(app);
  t.equal((await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {})).status, 200);
  const watch = openWatch(t, app.grpcPort);
  const terms = await watch.next((e) => e.terms !== null);
  t.match(terms.terms, { lease_ms: 600, beat_ms: 100 }, 'the lease and beat of this replica');
  t.ok(terms.terms!.floor_ms >= 60_000, `versions kept ${terms.terms!.floor_ms} ms`);
  const floors = watch.events.slice(0, watch.events.indexOf(terms)).flatMap((e) => e.invalidation?.keys ?? []);
  t.ok(
    floors.some((k) => k.key_id === key.id && k.version >= 2),
    'the revoked key is among the versions sent before the terms',
  );
  t.ok(
    watch.events.slice(0, watch.events.indexOf(terms)).every((e) => e.invalidation?.ack === ''),
    'nothing to confirm in them',
  );
});

t.test('beats are echoed; a change waits for the holder until it confirms, or its lease runs out', async (t) => {
  const watch = openWatch(t, app.grpcPort);
  await watch.next((e) => e.terms !== null);
  let n = 0;
  const beat = () => watch.call.write({ beat: ++n });
  beat();
  t.equal((await watch.next((e) => e.beat === 1)).beat, 1, 'beat 1 echoed');
  const beating = setInterval(beat, 100);
  t.teardown(() => clearInterval(beating));
  await new Promise((r) => setTimeout(r, 200));

  // Not confirmed: the revoke returns once the lease (600 ms + 100 ms skew at most) has run out.
  const a = await createKey(app);
  const revokeA = await app.api('POST', `/v1/accounts/acct_1/keys/${a.id}/revoke`, {});
  const seen = await watch.next((e) => e.invalidation?.keys.some((k) => k.key_id === a.id) === true);
  t.ok(seen.invalidation!.ack.length > 0, 'a change to confirm');
  t.match(revokeA.body.propagation, { outcome: 'lease_expired' }, 'unconfirmed: waited for the lease');
  t.ok(revokeA.body.propagation.waited_ms >= 400, `waited ${revokeA.body.propagation.waited_ms} ms`);
  t.equal(revokeA.body.propagation.unconfirmed.length, 1, 'the caller is the one that did not confirm');

  // Confirmed: the revoke returns as soon as the confirmation arrives.
  const b = await createKey(app);
  const pending = app.api('POST', `/v1/accounts/acct_1/keys/${b.id}/revoke`, {});
  const change = await watch.next((e) => e.invalidation?.keys.some((k) => k.key_id === b.id) === true);
  watch.call.write({ confirm: change.invalidation!.ack });
  const revokeB = await pending;
  t.match(revokeB.body.propagation, { outcome: 'confirmed', unconfirmed: [] }, 'confirmed by the caller');
  t.ok(revokeB.body.propagation.replicas >= 2, 'the caller counted with the replica');

  // Released: the caller says it stopped deciding, and changes stop waiting for it.
  clearInterval(beating);
  watch.call.write({ release: true });
  watch.call.end();
  t.equal((await watch.ended).code, 0, 'the stream ends OK');
  const c = await createKey(app);
  const revokeC = await app.api('POST', `/v1/accounts/acct_1/keys/${c.id}/revoke`, {});
  t.ok(
    revokeC.body.propagation.waited_ms < 300,
    `no wait for a released lease (${revokeC.body.propagation.waited_ms} ms)`,
  );
});

t.test('a usage report is counted once, even sent twice', async (t) => {
  const key = await createKey(app);
  const watch = openWatch(t, app.grpcPort);
  await watch.next((e) => e.terms !== null);
  const report = {
    id: 'report-twice-0001',
    uses: [
      { key_id: key.id, ip: '203.0.113.7', count: 40, last_at_ms: Date.now() },
      { key_id: key.id, ip: '2001:db8::1', count: 2, last_at_ms: Date.now() },
    ],
  };
  watch.call.write({ usage: report });
  watch.call.write({ usage: report });
  await watch.next((e) => e.usage_counted === report.id);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(watch.events.filter((e) => e.usage_counted === report.id).length, 2, 'both acknowledged');
  await app.usage.flush();
  const activity = (await app.api('GET', `/v1/accounts/acct_1/keys/${key.id}/activity`)).body;
  t.equal(activity.totals.allowed, 42, 'counted once: 42 uses');
  t.same(
    activity.addresses.map((a: { ip: string }) => a.ip).sort(),
    ['2001:db8::1', '203.0.113.7'],
    'from both addresses',
  );
});

t.test('Authenticate answers `local` to a watching caller, for keys without rate limits or quota', async (t) => {
  const plain = await createKey(app, 'acct_1', { expires_at: new Date(Date.now() + 86_400_000).toISOString() });
  const limited = await createKey(app, 'acct_1', { rate_limits: [{ name: 'm', limit: 100, window_seconds: 60 }] });
  const quota = await createKey(app, 'acct_1', { remaining_uses: 100 });
  const ask = (key: string, watching: boolean) => app.authenticate({ key, watching });
  const local = (await ask(plain.secret, true)).local!;
  t.equal(local.version, 1, 'the version it was decided from');
  t.ok(Math.abs(local.expires_at_ms - Date.now() - 86_400_000) < 60_000, 'and its expiry');
  t.equal((await ask(plain.secret, false)).local, null, 'not watching: nothing');
  t.equal((await ask(limited.secret, true)).local, null, 'rate limits: decided by the service every time');
  t.equal((await ask(quota.secret, true)).local, null, 'a quota: decided by the service every time');
  const denied = await app.authenticate({ key: plain.secret, scope: 'invoices:read', watching: true });
  t.equal(denied.local, null, 'a deny: nothing');
});
