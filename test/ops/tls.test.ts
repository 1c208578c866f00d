// Transport security as callers meet it: gRPC with mutual TLS (only clients with a certificate
// from GRPC_TLS_CA get through), and the admin API over HTTPS.
import { request } from 'node:https';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { ADMIN_TOKEN, startTestApp } from '../helpers/app.js';
import { makePki } from '../helpers/ops/certs.js';
import { keyServiceClient } from '../helpers/ops/clients.js';

/** One HTTPS request; resolves status and parsed body, or rejects with the TLS/socket error. */
function https(port: number, method: string, path: string, opts: { ca?: Buffer; body?: unknown } = {}) {
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        method,
        path,
        ca: opts.ca,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += String(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test('gRPC mutual TLS and HTTPS admin API', async (t) => {
  const pki = makePki(t);
  const app = await startTestApp(t, {
    GRPC_TLS_CERT: pki.server.cert,
    GRPC_TLS_KEY: pki.server.key,
    GRPC_TLS_CA: pki.ca,
    HTTP_TLS_CERT: pki.server.cert,
    HTTP_TLS_KEY: pki.server.key,
  });
  const ca = pki.read(pki.ca);

  // Admin API over HTTPS, trusting the CA.
  const created = await https(app.httpPort, 'POST', '/v1/accounts/acct_1/keys', {
    ca,
    body: { label: 'tls', scopes: ['bookings:read'], environment: 'live' },
  });
  t.equal(created.status, 201, 'create over HTTPS');
  const key = created.body.secret as string;
  const read = await https(app.httpPort, 'GET', `/v1/accounts/acct_1/keys/${created.body.id}`, { ca });
  t.same([read.status, read.body.label], [200, 'tls'], 'read it back over HTTPS');
  await t.rejects(
    https(app.httpPort, 'GET', '/v1/scopes'),
    { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    'a client that does not trust the CA refuses the server',
  );
  const plainHttp = await fetch(`http://127.0.0.1:${app.httpPort}/v1/scopes`).then(
    (r) => r.status,
    () => 0,
  );
  t.not(plainHttp, 200, 'plain HTTP to the HTTPS port is not served');

  // gRPC: who gets through.
  const target = `127.0.0.1:${app.grpcPort}`;
  const call = (creds: grpc.ChannelCredentials) => keyServiceClient(t, target, creds).authenticate({ key }, 10_000);
  const trusted = await call(grpc.credentials.createSsl(ca, pki.read(pki.client.key), pki.read(pki.client.cert)));
  t.equal(trusted.code, grpc.status.OK, 'a client with a certificate from the CA is answered');
  t.equal(trusted.res?.allowed, true, 'and authenticated');

  const refused: Array<[string, grpc.ChannelCredentials]> = [
    ['no client certificate', grpc.credentials.createSsl(ca)],
    [
      'a certificate from another CA',
      grpc.credentials.createSsl(ca, pki.read(pki.stranger.key), pki.read(pki.stranger.cert)),
    ],
    ['plaintext', grpc.credentials.createInsecure()],
    [
      'a client that does not trust the server',
      grpc.credentials.createSsl(pki.read(pki.stranger.ca), pki.read(pki.client.key), pki.read(pki.client.cert)),
    ],
  ];
  for (const [who, creds] of refused) {
    const r = await call(creds);
    t.equal(r.code, grpc.status.UNAVAILABLE, `${who}: UNAVAILABLE (${r.details})`);
    t.notOk(r.res, `${who}: no answer`);
  }
});
