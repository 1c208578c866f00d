import {
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JWTHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyResult,
} from 'jose';
import { AppError } from '../../domain/errors.js';
import { ACCOUNT_ID_PATTERN } from '../../domain/key.js';
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
/** An older token is refused whatever its `exp` says (a token minted for a year is not a session). */
export const MAX_TOKEN_AGE = '24h';
/** The audit actor of a signed-in person: a static token's name cannot contain ':', so the two never collide. */
export const JWT_ACTOR_PREFIX = 'jwt:';
/** `typ` values of an access token (RFC 9068, or the generic one most providers set), compared without `application/`. */
const ACCESS_TYPES = new Set(['at+jwt', 'jwt']);
/** Claims only an OpenID Connect ID token carries: proof of a sign-in to some client, not a grant to call this API. */
const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash'];
/** The audit actor is `jwt:<sub>`: printable, no control characters (it lands in text that people read). */
const SUBJECT = /^[^\p{Cc}]{1,200}$/u;
const ACCOUNT = new RegExp(ACCOUNT_ID_PATTERN);

/** Signed-in people: a JWT from Otesse's identity provider, checked against its JWKS with `jose`. */
export class JwtAdminAuth implements AdminAuthenticator {
  readonly #keys: JWTVerifyGetKey;
  readonly #issuer: string;
  readonly #audience: string;

  constructor(opts: JwtAuthOptions) {
    this.#keys = createRemoteJWKSet(new URL(opts.jwksUrl), {
      cooldownDuration: opts.cooldownMs ?? 30_000,
      cacheMaxAge: 600_000,
      timeoutDuration: 5000,
    });
    this.#issuer = opts.issuer;
    this.#audience = opts.audience;
  }

  async authenticate(header: string | undefined): Promise<Admin> {
    const token = bearer(header);
    let verified: JWTVerifyResult;
    try {
      verified = await jwtVerify(token, this.#keys, {
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms: ALGORITHMS,
        requiredClaims: ['sub', 'exp', 'iat'],
        maxTokenAge: MAX_TOKEN_AGE,
        clockTolerance: 30,
      });
    } catch (err) {
      throw verificationFailure(err);
    }
    if (!isAccessToken(verified.protectedHeader, verified.payload)) throw unauthenticated();
    return admin(verified.payload);
  }
}

/**
 * Only access tokens open the admin API: `typ`, when the provider sets it, must be `at+jwt` or
 * `JWT` (not `id_token+jwt`, `logout+jwt`, …), and a token with an ID token's own claims is refused
 * even when typed `JWT` (many providers type ID tokens so) and addressed to our audience.
 */
function isAccessToken(header: JWTHeaderParameters, payload: JWTPayload): boolean {
  const typ = header.typ?.toLowerCase().replace(/^application\//, '');
  return (typ === undefined || ACCESS_TYPES.has(typ)) && ID_TOKEN_CLAIMS.every((claim) => !(claim in payload));
}

/** A key set that cannot be fetched or read is the service's fault (503); anything else about the token is 401. */
function verificationFailure(err: unknown): AppError {
  const keySetDown =
    !(err instanceof errors.JOSEError) ||
    err instanceof errors.JWKSTimeout ||
    err instanceof errors.JWKSInvalid ||
    err.code === 'ERR_JOSE_GENERIC';
  return keySetDown
    ? new AppError('STORAGE_UNAVAILABLE', 'the admin identity provider key set cannot be read')
    : unauthenticated();
}

function admin(payload: JWTPayload): Admin {
  const {
    sub,
    otesse_accounts: accounts,
    otesse_role: role,
  } = payload as JWTPayload & { otesse_accounts?: unknown; otesse_role?: unknown };
  const valid =
    typeof sub === 'string' &&
    SUBJECT.test(sub) &&
    (role === 'admin' || role === 'viewer') &&
    Array.isArray(accounts) &&
    accounts.every((a) => typeof a === 'string' && ACCOUNT.test(a));
  if (!valid) throw unauthenticated();
  return { name: `${JWT_ACTOR_PREFIX}${sub}`, role, accounts: new Set(accounts as string[]) };
}
