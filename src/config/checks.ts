import { readFileSync } from 'node:fs';
import { ConfigError } from './error.js';
import type { Config } from './parsers.js';

/** The checks across variables, once each one is parsed; throws ConfigError naming the variable to change. */
export function checkCombinations(c: Config, migrateOnly: boolean): void {
  checkPairs(c);
  checkDatabase(c);
  checkRedis(c);
  checkModes(c, migrateOnly);
}

function checkPairs(c: Config): void {
  const pairs: [keyof typeof c, keyof typeof c][] = [
    ['GRPC_TLS_CERT', 'GRPC_TLS_KEY'],
    ['HTTP_TLS_CERT', 'HTTP_TLS_KEY'],
    ['FORWARD_AUTH_TLS_CERT', 'FORWARD_AUTH_TLS_KEY'],
  ];
  for (const [a, b] of pairs) {
    if (Boolean(c[a]) !== Boolean(c[b]))
      throw new ConfigError(`${c[a] ? b : a}: must be set together with ${c[a] ? a : b}`);
  }
  if (c.GRPC_TLS_CA && !c.GRPC_TLS_CERT) throw new ConfigError('GRPC_TLS_CERT: must be set when GRPC_TLS_CA is set');
  if (c.FORWARD_AUTH_TLS_CA && !c.FORWARD_AUTH_TLS_CERT)
    throw new ConfigError('FORWARD_AUTH_TLS_CERT: must be set when FORWARD_AUTH_TLS_CA is set');
  if (c.HEARTBEAT_MS * 2 > c.LEASE_MS)
    throw new ConfigError('HEARTBEAT_MS: must be at most half of LEASE_MS (a late beat must not cost the lease)');
  const jwt = ['ADMIN_JWKS_URL', 'ADMIN_JWT_ISSUER', 'ADMIN_JWT_AUDIENCE'] as const;
  const missing = jwt.find((v) => !c[v]);
  if (missing && jwt.some((v) => c[v]))
    throw new ConfigError(`${missing}: must be set together with ${jwt.filter((v) => v !== missing).join(' and ')}`);
}

/**
 * PostgreSQL's URLs beside DATABASE_TLS_CA: a URL may not weaken or replace it (pg would let the URL's
 * sslmode win over the CA file), and a URL's own sslrootcert must be readable.
 */
function checkDatabase(c: Config): void {
  for (const name of ['DATABASE_MIGRATION_URL', 'DATABASE_TLS_CA'] as const) {
    if (c[name] && !c.DATABASE_URL) throw new ConfigError(`DATABASE_URL: required when ${name} is set`);
  }
  for (const name of ['DATABASE_URL', 'DATABASE_MIGRATION_URL'] as const) {
    const value = c[name];
    if (!value) continue;
    const params = new URL(value).searchParams;
    const mode = params.get('sslmode');
    if (c.DATABASE_TLS_CA) {
      if (mode !== null && mode !== 'verify-full')
        throw new ConfigError(
          `${name}: an sslmode other than verify-full cannot go with DATABASE_TLS_CA, which verifies the certificate and host name; remove it`,
        );
      const other = ['sslrootcert', 'ssl', 'uselibpqcompat'].find((p) => params.has(p));
      if (other) throw new ConfigError(`${name}: ${other} cannot go with DATABASE_TLS_CA; remove it`);
    }
    const rootCert = params.get('sslrootcert');
    if (rootCert !== null) {
      try {
        readFileSync(rootCert);
      } catch {
        // The system's error would repeat the path, a part of the URL; the line names the variable only.
        throw new ConfigError(`${name}: sslrootcert: cannot read the file`);
      }
    }
  }
}

/** Redis is one server (REDIS_URL) or a master group behind Sentinels, never both; its other settings need one of them. */
function checkRedis(c: Config): void {
  if (c.REDIS_URL && c.REDIS_SENTINELS)
    throw new ConfigError(
      'REDIS_SENTINELS: cannot be set together with REDIS_URL (one Redis server, or Sentinels: choose one)',
    );
  if (Boolean(c.REDIS_SENTINELS) !== Boolean(c.REDIS_SENTINEL_NAME)) {
    throw new ConfigError(
      `${c.REDIS_SENTINELS ? 'REDIS_SENTINEL_NAME' : 'REDIS_SENTINELS'}: must be set together with ${c.REDIS_SENTINELS ? 'REDIS_SENTINELS' : 'REDIS_SENTINEL_NAME'}`,
    );
  }
  if (c.REDIS_SENTINEL_PASSWORD && !c.REDIS_SENTINELS)
    throw new ConfigError('REDIS_SENTINELS: required when REDIS_SENTINEL_PASSWORD is set');
  for (const name of ['REDIS_PASSWORD', 'REDIS_TLS_CA'] as const) {
    if (c[name] && !c.REDIS_URL && !c.REDIS_SENTINELS)
      throw new ConfigError(`REDIS_URL: required when ${name} is set (or REDIS_SENTINELS)`);
  }
  if (!c.REDIS_URL) return;
  const url = new URL(c.REDIS_URL);
  if (c.REDIS_TLS_CA && url.protocol !== 'rediss:')
    throw new ConfigError('REDIS_URL: must be a rediss:// URL when REDIS_TLS_CA is set (the CA is for TLS)');
  if (c.REDIS_PASSWORD && url.password)
    throw new ConfigError('REDIS_PASSWORD: cannot be set when REDIS_URL holds a password; keep one of them');
}

/** Which backends run: embedded only when asked for, or when neither URL is present at all. */
function checkModes(c: Config, migrateOnly: boolean): void {
  const redis = c.REDIS_URL ? 'REDIS_URL' : c.REDIS_SENTINELS ? 'REDIS_SENTINELS' : undefined;
  if (c.EMBEDDED === '1' && (c.DATABASE_URL || redis)) {
    throw new ConfigError(`EMBEDDED: cannot be 1 when ${c.DATABASE_URL ? 'DATABASE_URL' : redis} is set`);
  }
  if (redis && !c.DATABASE_URL)
    throw new ConfigError(`DATABASE_URL: required when ${redis} is set (replicas cannot share an embedded database)`);
  if (redis && !c.CACHE_SIGNING_KEY) throw new ConfigError(`CACHE_SIGNING_KEY: required when ${redis} is set`);
  if (c.NODE_ENV === 'production') {
    if (!c.DATABASE_URL)
      throw new ConfigError(
        'DATABASE_URL: required when NODE_ENV=production (the embedded database is for development)',
      );
    if (!redis && !migrateOnly)
      throw new ConfigError(
        'REDIS_URL: required when NODE_ENV=production, or REDIS_SENTINELS (the in-process bus serves one replica only)',
      );
    if (!migrateOnly) checkProductionTrust(c);
    if (c.WEBHOOK_ALLOW_PRIVATE === '1')
      throw new ConfigError(
        'WEBHOOK_ALLOW_PRIVATE: cannot be 1 when NODE_ENV=production (webhooks would reach internal addresses)',
      );
  }
}

/**
 * Production trusts no admin credential it made itself (each pod would make its own token in
 * DATA_DIR) and fetches no signing key over plain http (anyone on the path could sign for it).
 */
function checkProductionTrust(c: Config): void {
  if (!c.ADMIN_TOKENS && !c.ADMIN_JWKS_URL) {
    throw new ConfigError(
      'ADMIN_TOKENS: required when NODE_ENV=production unless ADMIN_JWKS_URL is set (no development token in production)',
    );
  }
  for (const name of ['ADMIN_JWKS_URL', 'GITHUB_SECRET_SCANNING_KEYS_URL'] as const) {
    const value = c[name];
    if (value && new URL(value).protocol !== 'https:')
      throw new ConfigError(`${name}: must be an https URL when NODE_ENV=production`);
  }
}
