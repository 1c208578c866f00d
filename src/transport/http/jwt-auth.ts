import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AppError } from '../../domain/errors.js';
import { bearer, unauthenticated, type Admin, type AdminAuthenticator } from './auth.js';

export interface JwtAuthOptions {
  /** The identity provider's JWKS; fetched on first use, cached, refetched for an unknown `kid` (at most every 30 s). */
  jwksUrl: string;
  issuer: string;
  audience: string;
  /** The least time between two fetches of the JWKS (an unknown `kid` cannot make the service hammer the provider); default 30 s. */
  cooldownMs?: number | undefined;
}

const ALGORITHMS = ['RS256', 'ES256'];
/** The audit actor is `sub`: printable, no control characters (it lands in text that people read). */
const SUBJECT = /^[^\p{Cc}]{1,200}$/u;
const ACCOUNT = /^[A-Za-z0-9_-]{1,64}$/;

/** Signed-in people: a JWT from Otesse's identity provider, checked against its JWKS with `jose`. */
export class JwtAdminAuth implements AdminAuthenticator {
  readonly #keys: JWTVerifyGetKey;
  readonly #issuer: string;
  readonly #audience: string;

  constructor(opts: JwtAuthOptions) {
    this.#keys = createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: opts.cooldownMs ?? 30_000, cacheMaxAge: 600_000, timeoutDuration: 5000 });
    this.#issuer = opts.issuer;
    this.#audience = opts.audience;
  }

  async authenticate(header: string | undefined): Promise<Admin> {
    const token = bearer(header);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keys, { issuer: this.#issuer, audience: this.#audience, algorithms: ALGORITHMS,
        requiredClaims: ['sub', 'exp'], clockTolerance: 30 }));
    } catch (err) {
      throw verificationFailure(err);
    }
    return admin(payload);
  }
}

/** A key set that cannot be fetched or read is the service's fault (503); anything else about the token is 401. */
function verificationFailure(err: unknown): AppError {
  const keySetDown = !(err instanceof errors.JOSEError) || err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid
    || err.code === 'ERR_JOSE_GENERIC';
  return keySetDown ? new AppError('STORAGE_UNAVAILABLE', 'the admin identity provider key set cannot be read') : unauthenticated();
}

function admin(payload: JWTPayload): Admin {
  const { sub, otesse_accounts: accounts, otesse_role: role } = payload as JWTPayload & { otesse_accounts?: unknown; otesse_role?: unknown };
  const valid = typeof sub === 'string' && SUBJECT.test(sub) && (role === 'admin' || role === 'viewer')
    && Array.isArray(accounts) && accounts.every((a) => typeof a === 'string' && ACCOUNT.test(a));
  if (!valid) throw unauthenticated();
  return { name: sub, role, accounts: new Set(accounts as string[]) };
}
