// The client a calling service uses: TLS and mutual TLS, round robin over replicas, a replica
// going away mid-stream, and faults told apart from denies.
import t from 'tap';
import { KeyServiceError, KeyServiceUnavailableError } from '@otesse/keys-client';
import { createKey, startTestApp, testEnv, type TestApp } from '../helpers/app.js';
import { keysClient } from '../helpers/callers.js';
import { makePki } from '../helpers/ops/certs.js';

/** Allowed decisions this replica has answered (from its /metrics). */
async function allowedCount(app: TestApp): Promise<number> {
  const text = await fetch(`${app.url}/metrics`).then((r) => r.text());
  const line = text
    .split('\n')
    .find((l) => l.startsWith('otesse_keys_authenticate_total{') && l.includes('outcome="allowed"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

t.test('TLS and mutual TLS options', async (t) => {
  const pki = makePki(t);
  const app = await startTestApp(t, {
    GRPC_TLS_CERT: pki.server.cert,
    GRPC_TLS_KEY: pki.server.key,
    GRPC_TLS_CA: pki.ca,
  });
  const key = await createKey(app);
  const input = { key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' };
  const address = `127.0.0.1:${app.grpcPort}`;
  const mtls = keysClient(t, {
    address,
    deadlineMs: 3000,
    tls: { ca: pki.read(pki.ca), cert: pki.read(pki.client.cert), key: pki.read(pki.client.key) },
  });
  const allowed = await mtls.authenticate(input);
  t.same(
    allowed,
    {
      allowed: true,
      identity: { keyId: key.id, accountId: 'acct_1', environment: 'live', scopes: ['bookings:read'], metadata: null },
    },
    'mutual TLS: allowed, typed identity',
  );
  const denied = await mtls.authenticate({ ...input, scope: 'invoices:read' });
  t.match(denied, { allowed: false, reason: 'SCOPE_NOT_GRANTED', identity: { keyId: key.id } }, 'a deny is a result');

  const named = keysClient(t, {
    address,
    deadlineMs: 3000,
    tls: {
      ca: pki.read(pki.ca),
      cert: pki.read(pki.client.cert),
      key: pki.read(pki.client.key),
      serverName: 'localhost',
    },
  });
  t.equal((await named.authenticate(input)).allowed, true, 'serverName: the certificate is checked for that name');
  const wrongName = keysClient(t, {
    address,
    deadlineMs: 500,
    tls: {
      ca: pki.read(pki.ca),
      cert: pki.read(pki.client.cert),
      key: pki.read(pki.client.key),
      serverName: 'otesse-keys.example',
    },
  });
  t.ok(
    (await wrongName.authenticate(input).catch((e: unknown) => e)) instanceof KeyServiceUnavailableError,
    'a certificate for another name is refused',
  );
  const noCert = keysClient(t, { address, deadlineMs: 500, tls: { ca: pki.read(pki.ca) } });
  const err = await noCert.authenticate(input).catch((e: unknown) => e);
  t.ok(
    err instanceof KeyServiceUnavailableError,
    'without a client certificate: KeyServiceUnavailableError, not a deny',
  );
  t.notOk(String((err as Error).message).includes(key.secret), 'the error does not quote the key');
  const plain = keysClient(t, { address, deadlineMs: 500 });
  t.ok(
    (await plain.authenticate(input).catch((e: unknown) => e)) instanceof KeyServiceUnavailableError,
    'plaintext to a TLS port: unavailable',
  );
});

t.test('round robin over every replica; a replica stopping loses no call', async (t) => {
  const env = await testEnv(t);
  const a = await startTestApp(t, {}, env);
  const b = await startTestApp(t, {}, env);
  const key = await createKey(a);
  // Every request asked (no local decisions), so each replica's share of the calls is seen.
  const client = keysClient(t, {
    address: `ipv4:127.0.0.1:${a.grpcPort},127.0.0.1:${b.grpcPort}`,
    deadlineMs: 2000,
    localDecisions: false,
  });
  await client.waitForReady();
  const input = { key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' };
  const before = [await allowedCount(a), await allowedCount(b)];
  for (let i = 0; i < 20; i++) t.equal((await client.authenticate(input)).allowed, true);
  const spread = [(await allowedCount(a)) - before[0]!, (await allowedCount(b)) - before[1]!];
  t.ok(spread[0]! >= 5 && spread[1]! >= 5, `both replicas answered (${spread.join(' / ')})`);

  const stopping = b.close();
  const during = await Promise.all(
    Array.from({ length: 20 }, () =>
      client.authenticate(input).then(
        (r) => r.allowed,
        (e: unknown) => String(e),
      ),
    ),
  );
  await stopping;
  const after = await Promise.all(Array.from({ length: 10 }, () => client.authenticate(input).then((r) => r.allowed)));
  t.same(
    [...during, ...after].filter((r) => r !== true),
    [],
    'every call answered while one replica stopped',
  );

  const dns = keysClient(t, { address: `dns:///localhost:${a.grpcPort}`, deadlineMs: 2000 });
  t.equal((await dns.authenticate(input)).allowed, true, 'a dns:/// target (as for a headless Service)');
});

t.test('a caller bug is a KeyServiceError, not unavailability', async (t) => {
  const app = await startTestApp(t);
  const client = keysClient(t, { address: `127.0.0.1:${app.grpcPort}` });
  const err = await client
    .authenticate({ key: 'x', ip: '203.0.113.7', scope: 'bookings:delete' })
    .catch((e: unknown) => e);
  t.ok(err instanceof KeyServiceError && !(err instanceof KeyServiceUnavailableError), 'KeyServiceError');
  t.equal((err as KeyServiceError).code, 'INVALID_ARGUMENT');
  t.same(
    await client.authenticate({ key: '', ip: '203.0.113.7', scope: 'bookings:read' }),
    { allowed: false, reason: 'KEY_MALFORMED' },
    'an empty key is a deny',
  );
});

t.test('maxAttempts: 1 asks once, with no retry policy (grpc-js refuses one of fewer than 2 attempts)', async (t) => {
  const app = await startTestApp(t);
  const key = await createKey(app);
  const once = keysClient(t, { address: `127.0.0.1:${app.grpcPort}`, deadlineMs: 3000, maxAttempts: 1 });
  const answer = await once.authenticate({ key: key.secret, ip: '203.0.113.7', scope: 'bookings:read' });
  t.equal(answer.allowed, true, 'the client is built and its call is answered');
});
