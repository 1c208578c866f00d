import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

interface TestLike {
  teardown(fn: () => unknown): void;
}

export const ISSUER = 'https://id.otesse.test/';
export const AUDIENCE = 'otesse-keys-admin';

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  jwk: JWK;
}

/** A key pair made at test time; its public half is what the JWKS serves. */
export async function signingKey(
  alg: 'RS256' | 'ES256',
  kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`,
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** An identity provider's JWKS on 127.0.0.1, port 0; `requests` counts fetches (to see the cache work). */
export async function jwksServer(
  t: TestLike,
  keys: SigningKey[],
): Promise<{ url: string; requests: () => number; keys: SigningKey[] }> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/.well-known/jwks.json`, requests: () => requests, keys };
}

export interface Claims {
  sub?: string;
  otesse_accounts?: unknown;
  otesse_role?: unknown;
  [k: string]: unknown;
}

/** A signed admin JWT; `opts` bends one thing at a time (issuer, audience, expiry, kid). */
export async function adminJwt(
  key: SigningKey,
  claims: Claims,
  opts: { issuer?: string; audience?: string; expiresIn?: string | number; kid?: string } = {},
): Promise<string> {
  const { sub, ...rest } = claims;
  let jwt = new SignJWT(rest)
    .setProtectedHeader({ alg: key.alg, kid: opts.kid ?? key.kid, typ: 'JWT' })
    .setIssuer(opts.issuer ?? ISSUER)
    .setAudience(opts.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? '10m');
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  return jwt.sign(key.privateKey);
}

/** The configuration that turns JWT sign-in on against `jwksUrl`. */
export const jwtEnv = (jwksUrl: string): Record<string, string> => ({
  ADMIN_JWKS_URL: jwksUrl,
  ADMIN_JWT_ISSUER: ISSUER,
  ADMIN_JWT_AUDIENCE: AUDIENCE,
});
