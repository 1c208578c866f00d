import type { Logger } from 'pino';
import { developmentToken } from '../admin-token.js';
import type { AdminToken, Config } from '../config.js';
import { FirstOfAuth, StaticTokenAuth, type AdminAuthenticator } from '../transport/http/auth.js';
import { JwtAdminAuth } from '../transport/http/jwt-auth.js';

/** ADMIN_TOKENS, or outside production a development token kept under DATA_DIR. */
export function adminTokens(config: Config, log: Logger): readonly AdminToken[] {
  let tokens = config.ADMIN_TOKENS ?? [];
  // Production never makes a token of its own (the configuration requires ADMIN_TOKENS or JWTs there).
  if (!config.ADMIN_TOKENS && config.NODE_ENV !== 'production') {
    const dev = developmentToken(config.DATA_DIR);
    tokens = [dev.token];
    log.warn({ path: dev.path }, 'no ADMIN_TOKENS: a development admin token is kept in this file (name "dev")');
  }
  return tokens;
}

/** Admin identity: ADMIN_TOKENS first, then (when configured) JWTs of signed-in people. */
export function adminAuth(config: Config, tokens: readonly AdminToken[]): AdminAuthenticator {
  const backends: AdminAuthenticator[] = [new StaticTokenAuth(tokens)];
  if (config.ADMIN_JWKS_URL && config.ADMIN_JWT_ISSUER && config.ADMIN_JWT_AUDIENCE) {
    backends.push(
      new JwtAdminAuth({
        jwksUrl: config.ADMIN_JWKS_URL,
        issuer: config.ADMIN_JWT_ISSUER,
        audience: config.ADMIN_JWT_AUDIENCE,
      }),
    );
  }
  return new FirstOfAuth(backends);
}
