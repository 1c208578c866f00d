// Local decisions (design: callers-hold-leases): the client decides in its own process what the
// service allowed before, while it holds a lease on the Watch stream; a revoke returns only once the
// client applied it (or its lease ran out), and the uses it allowed itself are counted exactly.
import t from 'tap';
import type { KeyServiceClient } from '@otesse/keys-client';
import { createKey, startTestApp, testEnv, type TestApp } from '../helpers/app.js';
import { keysClient, startBookings } from '../helpers/callers.js';
import { metric, scrape } from '../helpers/ops/prom.js';
import { waitFor } from '../helpers/replica.js';

const IP = '203.0.113.7';
const SCOPE = 'bookings:read';

/** Authenticate calls this replica has answered, all outcomes. */
const calls = async (app: TestApp) => metric(await scrape(app.url), 'otesse_keys_authenticate_total');

async function allowedTotal(app: TestApp, id: string): Promise<number> {
  await app.usage.flush();
  return (await app.api('GET', `/v1/accounts/acct_1/keys/${id}/activity`)).body.totals.allowed;
}

/**
 * Ask until the client answers from memory (its lease held and the call learnt); how many allowed uses
 * that took (each is counted by the service, the last one by the client), or 0 when it never did.
 */
async function learn(client: KeyServiceClient, key: string, scope = SCOPE, ip = IP): Promise<number> {
  let uses = 0;
  const done = await waitFor(async () => {
    if (client.decideLocally({ key, ip, scope })) return true;
    if ((await client.authenticate({ key, ip, scope })).allowed) uses++;
    return false;
  }, 5000);
  return done ? uses + 1 : 0;
}

for (const embedded of [false, true]) {
  const bus = embedded ? 'embedded (in-process bus)' : 'Redis bus';
  t.test(`${bus}: allowed calls decided in the caller, a revoke waits for it, uses counted once each`, async (t) => {
    const env = await testEnv(t);
    if (embedded) delete env.REDIS_URL;
    const app = await startTestApp(t, {}, env);
    const client = keysClient(t, { address: `127.0.0.1:${app.grpcPort}`, deadlineMs: 5000 });
    const key = await createKey(app);
    const learning = await learn(client, key.secret);
    t.ok(learning > 0, `the client decides the call from memory once allowed (${learning} uses to learn it)`);
    const before = await calls(app);
    for (let i = 0; i < 500; i++) {
      const r = await client.authenticate({ key: key.secret, ip: IP, scope: SCOPE });
      if (!r.allowed) t.fail(`denied: ${r.reason}`);
    }
    t.equal((await calls(app)) - before, 0, '500 requests, no Authenticate call');
    t.notOk(client.decideLocally({ key: key.secret, ip: IP, scope: 'bookings:write' }), 'another scope: asked');
    t.notOk(client.decideLocally({ key: key.secret, ip: '203.0.113.8', scope: SCOPE }), 'another address: asked');

    const revoke = await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {});
    t.equal(revoke.status, 200);
    t.match(revoke.body.propagation, { outcome: 'confirmed' }, 'the caller confirmed');
    t.ok(
      revoke.body.propagation.replicas >= 2,
      `the caller counted as a lease holder: ${revoke.body.propagation.replicas}`,
    );
    t.notOk(client.decideLocally({ key: key.secret, ip: IP, scope: SCOPE }), 'nothing decided from memory after');
    t.match(await client.authenticate({ key: key.secret, ip: IP, scope: SCOPE }), {
      allowed: false,
      reason: 'KEY_REVOKED',
    });
    await client.close();
    t.equal(
      await allowedTotal(app, key.id),
      learning + 500,
      'every allowed use counted once, by the service or the client',
    );
  });
}

t.test('the Fastify plugin answers from memory: the same identity, no call, and a revoke holds', async (t) => {
  const app = await startTestApp(t);
  const api = await startBookings(t, `127.0.0.1:${app.grpcPort}`);
  const key = await createKey(app);
  const get = () => api.get('/v1/bookings', { authorization: `Bearer ${key.secret}` });
  const first = await get();
  t.equal(first.status, 200);
  let calls0 = 0;
  t.ok(
    await waitFor(async () => {
      calls0 = await calls(app);
      await get();
      return (await calls(app)) === calls0;
    }, 5000),
    'a request served without an Authenticate call once learnt',
  );
  for (let i = 0; i < 50; i++) {
    const res = await get();
    if (res.status !== 200 || res.body.account_id !== 'acct_1') t.fail(`answer ${res.status}`);
  }
  t.equal((await calls(app)) - calls0, 0, '50 more requests, no call; the identity on request.apiKey each time');
  t.equal((await app.api('POST', `/v1/accounts/acct_1/keys/${key.id}/revoke`, {})).status, 200);
  t.equal((await get()).status, 401, 'revoked: refused at once');
});
