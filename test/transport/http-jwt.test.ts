import t from 'tap';
import { SignJWT, base64url } from 'jose';
import { loadConfig } from '../../src/config.js';
import { JwtAdminAuth } from '../../src/transport/http/jwt-auth.js';
import { createKey, startTestApp, type TestApp } from '../helpers/app.js';
import { accountState, assertProblem } from '../helpers/http.js';
import { adminJwt, jwksServer, jwtEnv, signingKey, AUDIENCE, ISSUER } from '../helpers/jwt.js';

const rsa = await signingKey('RS256');
const ec = await signingKey('ES256');
const jwks = await jwksServer(t, [rsa, ec]);
const app: TestApp = await startTestApp(t, jwtEnv(jwks.url));

const A = 'acct_jwt_a';
const B = 'acct_jwt_b';
const keys = (acct: string) => `/v1/accounts/${acct}/keys`;
const adminOfA = await adminJwt(rsa, { sub: 'alice@otesse.test', otesse_accounts: [A], otesse_role: 'admin' });
const viewerOfA = await adminJwt(ec, { sub: 'victor@otesse.test', otesse_accounts: [A], otesse_role: 'viewer' });

/** Every account-scoped route, for one key id. */
const routes = (acct: string, id: string): [string, string, unknown?][] => [
  ['GET', keys(acct)],
  ['POST', keys(acct), { label: 'x', scopes: ['bookings:read'], environment: 'test' }],
  ['GET', `${keys(acct)}/${id}`],
  ['PATCH', `${keys(acct)}/${id}`, { label: 'changed' }],
  ['POST', `${keys(acct)}/${id}/revoke`, {}],
  ['POST', `${keys(acct)}/${id}/rotate`, {}],
  ['GET', `${keys(acct)}/${id}/activity`],
  ['POST', `${keys(acct)}/revoke-all`, {}],
  ['GET', `/v1/accounts/${acct}/audit-log`],
];

t.test(
  'an RS256 admin JWT acts on its account; jwt:<sub> is the audit actor; GET /v1/me tells who it is',
  async (t) => {
    const res = await app.api(
      'POST',
      keys(A),
      { label: 'from a person', scopes: ['bookings:read'], environment: 'live' },
      adminOfA,
    );
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.equal(res.body.created_by, 'jwt:alice@otesse.test');
    const audit = await app.api('GET', `/v1/accounts/${A}/audit-log`, undefined, adminOfA);
    t.same(
      audit.body.data.map((e: { actor: string; action: string }) => [e.actor, e.action]),
      [['jwt:alice@otesse.test', 'key.created']],
    );
    t.same((await app.api('GET', '/v1/me', undefined, adminOfA)).body, {
      name: 'jwt:alice@otesse.test',
      role: 'admin',
      accounts: [A],
    });
    t.same(
      (await app.api('GET', '/v1/me')).body,
      { name: 'admin', role: 'admin', accounts: null },
      'ADMIN_TOKENS still work beside JWTs',
    );
    t.ok(jwks.requests() <= 2, `the key set is cached, not fetched per request (${jwks.requests()} fetches)`);
  },
);

t.test('an ES256 viewer reads but every write is 403 and changes nothing', async (t) => {
  const key = await createKey(app, A);
  t.equal((await app.api('GET', keys(A), undefined, viewerOfA)).status, 200);
  t.equal((await app.api('GET', `${keys(A)}/${key.id}/activity`, undefined, viewerOfA)).status, 200);
  t.same((await app.api('GET', '/v1/me', undefined, viewerOfA)).body.role, 'viewer');
  const before = await accountState(app, A);
  for (const [method, path, body] of routes(A, key.id).filter(([m]) => m !== 'GET')) {
    assertProblem(t, await app.api(method, path, body, viewerOfA), 403);
  }
  t.same(await accountState(app, A), before, 'nothing changed');
  t.equal((await app.authenticate({ key: key.secret })).allowed, true, 'the key still works');
});

t.test('otesse_accounts limits every route: 403 on another account, 404 for its key ids under ours', async (t) => {
  const theirs = await createKey(app, B);
  const before = await accountState(app, B);
  for (const [method, path, body] of routes(B, theirs.id))
    assertProblem(t, await app.api(method, path, body, adminOfA), 403);
  for (const [method, path, body] of routes(A, theirs.id).filter(([, p]) => p.includes(theirs.id))) {
    assertProblem(t, await app.api(method, path, body, adminOfA), 404);
  }
  t.same(await accountState(app, B), before, 'the other account is untouched');
});

t.test(
  'expired, wrong issuer, wrong audience, alg none, HS256, unknown kid, tampered and incomplete tokens are 401',
  async (t) => {
    const claims = { sub: 'mallory', otesse_accounts: [A], otesse_role: 'admin' };
    const stranger = await signingKey('RS256', 'not-in-the-jwks');
    const [h, p, s] = adminOfA.split('.') as [string, string, string];
    const widened = base64url.encode(
      JSON.stringify({ ...JSON.parse(new TextDecoder().decode(base64url.decode(p))), otesse_accounts: [A, B] }),
    );
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${p}.`;
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode('a shared secret of thirty-two bytes!'));
    const bad: Record<string, string> = {
      expired: await adminJwt(rsa, claims, { expiresIn: Math.floor(Date.now() / 1000) - 120 }),
      'wrong issuer': await adminJwt(rsa, claims, { issuer: 'https://evil.example/' }),
      'wrong audience': await adminJwt(rsa, claims, { audience: 'another-service' }),
      'alg none': none,
      'alg HS256': hs256,
      'unknown kid': await adminJwt(stranger, claims),
      'signed by another key under a known kid': await adminJwt(stranger, claims, { kid: rsa.kid }),
      'tampered payload': `${h}.${widened}.${s}`,
      'tampered signature': `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`,
      'no sub': await adminJwt(rsa, { otesse_accounts: [A], otesse_role: 'admin' }),
      'no otesse_accounts': await adminJwt(rsa, { sub: 'mallory', otesse_role: 'admin' }),
      'unknown role': await adminJwt(rsa, { ...claims, otesse_role: 'owner' }),
      'not a JWT': 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln',
    };
    const before = await accountState(app, A);
    for (const [name, token] of Object.entries(bad)) {
      const res = await app.api(
        'POST',
        keys(A),
        { label: name, scopes: ['bookings:read'], environment: 'test' },
        token,
      );
      t.equal(res.status, 401, `${name}: 401`);
      assertProblem(t, await app.api('GET', keys(A), undefined, token), 401);
    }
    t.same(await accountState(app, A), before, 'no refused token changed anything');
  },
);

t.test(
  'only access tokens, at most 24 h old: ID tokens, other token types and tokens without iat are 401',
  async (t) => {
    const claims = { sub: 'mallory', otesse_accounts: [A], otesse_role: 'admin' };
    const now = Math.floor(Date.now() / 1000);
    const sign = (
      payload: Record<string, unknown>,
      header: Record<string, unknown> = { typ: 'JWT' },
      iat: number | null = now,
    ) => {
      let jwt = new SignJWT(payload)
        .setProtectedHeader({ alg: rsa.alg, kid: rsa.kid, ...header })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime(now + 600);
      if (iat !== null) jwt = jwt.setIssuedAt(iat);
      return jwt.sign(rsa.privateKey);
    };
    const refused: Record<string, string> = {
      'an ID token (nonce) addressed to our audience': await sign({ ...claims, nonce: 'n-0S6_WzA2Mj' }),
      'an ID token (at_hash)': await sign({ ...claims, at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q' }),
      'typ id_token+jwt': await sign(claims, { typ: 'id_token+jwt' }),
      'typ logout+jwt': await sign(claims, { typ: 'logout+jwt' }),
      'typ dpop+jwt': await sign(claims, { typ: 'dpop+jwt' }),
      'no iat': await sign(claims, { typ: 'JWT' }, null),
      'issued 25 h ago, exp still ahead': await sign(claims, { typ: 'JWT' }, now - 25 * 3600),
      'issued in the future': await sign(claims, { typ: 'JWT' }, now + 3600),
    };
    for (const [name, token] of Object.entries(refused)) {
      const res = await app.api('GET', '/v1/me', undefined, token);
      t.equal(res.status, 401, name);
      assertProblem(t, res, 401);
    }
    const accepted: Record<string, string> = {
      'typ at+jwt (RFC 9068)': await sign(claims, { typ: 'at+jwt' }),
      'typ application/at+jwt': await sign(claims, { typ: 'application/at+jwt' }),
      'no typ': await sign(claims, {}),
      'issued 23 h ago': await sign(claims, { typ: 'JWT' }, now - 23 * 3600),
    };
    for (const [name, token] of Object.entries(accepted))
      t.equal((await app.api('GET', '/v1/me', undefined, token)).status, 200, name);
  },
);

t.test('a JWT actor cannot pass for a static token: sub "admin" is audited as jwt:admin', async (t) => {
  const impostor = await adminJwt(rsa, { sub: 'admin', otesse_accounts: [A], otesse_role: 'admin' });
  const res = await app.api(
    'POST',
    keys(A),
    { label: 'who am i', scopes: ['bookings:read'], environment: 'test' },
    impostor,
  );
  t.equal(res.status, 201);
  t.equal(res.body.created_by, 'jwt:admin', 'not the name of the ADMIN_TOKENS entry "admin"');
  t.equal((await app.api('GET', '/v1/me', undefined, impostor)).body.name, 'jwt:admin');
  t.equal((await app.api('GET', '/v1/me')).body.name, 'admin', 'the static token keeps its own name');
});

t.test('a key set that cannot be fetched is 503 (the service cannot check), never an allow', async (t) => {
  const down = await startTestApp(t, jwtEnv('http://127.0.0.1:1/jwks.json'));
  const token = await adminJwt(rsa, { sub: 'alice', otesse_accounts: [A], otesse_role: 'admin' });
  assertProblem(t, await down.api('GET', keys(A), undefined, token), 503);
  t.equal((await down.api('GET', keys(A))).status, 200, 'static tokens are unaffected');
});

t.test('the key set is cached, and re-read when the provider rotates in a new key', async (t) => {
  const old = await signingKey('ES256');
  const idp = await jwksServer(t, [old]);
  const auth = new JwtAdminAuth({ jwksUrl: idp.url, issuer: ISSUER, audience: AUDIENCE, cooldownMs: 0 });
  const bearer = async (key: typeof old) =>
    `Bearer ${await adminJwt(key, { sub: 'alice', otesse_accounts: [A], otesse_role: 'viewer' })}`;
  for (let i = 0; i < 5; i++) t.equal((await auth.authenticate(await bearer(old))).name, 'jwt:alice');
  t.equal(idp.requests(), 1, 'five tokens, one fetch');
  const fresh = await signingKey('RS256');
  await t.rejects(
    auth.authenticate(await bearer(fresh)),
    { code: 'UNAUTHENTICATED' },
    'a kid the provider does not publish',
  );
  idp.keys.push(fresh);
  t.same(
    await auth.authenticate(await bearer(fresh)),
    { name: 'jwt:alice', role: 'viewer', accounts: new Set([A]) },
    'published: re-read and accepted',
  );
  t.equal(idp.requests(), 3, 'one fetch per unknown kid');
});

t.test('configuration: the three JWT variables go together; a bad URL names the variable', async (t) => {
  t.throws(() => loadConfig({ ADMIN_JWKS_URL: 'https://id.otesse.test/jwks.json' }), {
    message: /^ADMIN_JWT_ISSUER: must be set together with/,
  });
  t.throws(() => loadConfig({ ADMIN_JWT_AUDIENCE: 'x', ADMIN_JWT_ISSUER: 'y' }), { message: /^ADMIN_JWKS_URL:/ });
  t.throws(() => loadConfig({ ADMIN_JWKS_URL: 'ftp://x/jwks', ADMIN_JWT_ISSUER: 'i', ADMIN_JWT_AUDIENCE: 'a' }), {
    message: /^ADMIN_JWKS_URL:/,
  });
  t.equal(loadConfig({ ...jwtEnv('https://id.otesse.test/jwks.json') }).ADMIN_JWT_AUDIENCE, AUDIENCE);
});
