import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Type, type Static, type StringOptions } from '@sinclair/typebox';
import { normalizeRule, parseRule } from './domain/ip.js';
import { checker, StringEnum, type ErrorMessages } from './validation.js';

/** An integer read from its text, within bounds; `byDefault` when unset. */
const Int = (minimum: number, maximum: number, byDefault?: number) =>
  Type.Integer({ minimum, maximum, ...(byDefault === undefined ? {} : { default: byDefault }) });
/** Free text: read without the whitespace around it (see TRIMMED). */
const Text = (options: StringOptions & ErrorMessages = {}) => Type.String({ minLength: 1, ...options });
const OptionalText = Type.Optional(Text());
const Flag = StringEnum(['0', '1'] as const);

/** A value the schema let through but its parser refuses: `message` names the rule, never the value. */
class InvalidValue extends Error {}

const url =
  (protocols: string[]) =>
  (text: string): string => {
    try {
      if (protocols.includes(new URL(text).protocol)) return text;
    } catch {
      /* not a URL: refused below */
    }
    throw new InvalidValue(`must be a ${protocols.join(' or ')} URL`);
  };

/** A file that holds at least one PEM certificate (a CA bundle); the value stays the path. */
function pemCertificateFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // The system's error would repeat the path; the line names the variable only.
    throw new InvalidValue('cannot read the file');
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidValue('the file holds no PEM certificate');
  return path;
}

/** `host:port` entries, comma separated (IPv6 in brackets): the Sentinels. */
function hostPorts(text: string): { host: string; port: number }[] {
  const out = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .map((entry) => {
      const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
      const port = Number(m?.[2]);
      if (!m?.[1] || port < 1 || port > 65535) throw new InvalidValue('entries must be host:port, comma separated');
      return { host: m[1].replace(/^\[|\]$/g, ''), port };
    });
  if (out.length === 0) throw new InvalidValue('no host:port entry');
  return out;
}

/** An admin credential: `accounts` undefined means every account. */
export interface AdminToken {
  name: string;
  token: string;
  accounts?: string[] | undefined;
}

/**
 * `name:token` entries, comma separated (names are audit actors, tokens at least 16 characters);
 * `name:token:acct_1|acct_2` limits a token to those accounts.
 */
function adminTokens(text: string): AdminToken[] {
  const out: AdminToken[] = [];
  for (const entry of text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [name = '', token = '', accounts, ...rest] = entry.split(':');
    if (rest.length > 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(name) || !/^[\x21-\x7e]{16,256}$/.test(token)) {
      throw new InvalidValue(
        'entries must be name:token[:account|account] with a token of 16 to 256 printable characters',
      );
    }
    out.push({ name, token, accounts: accounts === undefined ? undefined : accounts.split('|').filter(Boolean) });
  }
  if (out.length === 0) throw new InvalidValue('no name:token entry');
  return out;
}

/** Comma-separated addresses and CIDRs (v4 and v6), parsed by the domain's rules. */
function cidrList(text: string): string[] {
  const out: string[] = [];
  for (const entry of text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const rule = parseRule(entry);
    if (!rule) throw new InvalidValue('entries must be IP addresses or CIDRs, comma separated');
    out.push(normalizeRule(rule));
  }
  return out;
}

/**
 * Comma-separated web origins, each exactly as a browser reports `event.origin` (`https://host[:port]`: lower case,
 * no default port, no path or trailing slash), since the console compares them as text.
 */
function originList(text: string): string[] {
  const entries = text.split(',').map((e) => e.trim());
  const bad = entries.findIndex((entry) => !isOrigin(entry));
  if (bad >= 0) {
    throw new InvalidValue(
      `entry ${bad + 1} is not an origin: write scheme://host[:port] (http or https), as a browser reports it, with nothing after`,
    );
  }
  return [...new Set(entries)];
}

function isOrigin(entry: string): boolean {
  try {
    const u = new URL(entry);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.origin === entry;
  } catch {
    // Not a URL at all: not an origin, which the caller reports naming the variable.
    return false;
  }
}

const schema = Type.Object({
  DATABASE_URL: OptionalText,
  /** A direct connection (not through a pooler) for the migrations; unset: they run over DATABASE_URL. */
  DATABASE_MIGRATION_URL: OptionalText,
  /** PEM file of the CA of PostgreSQL's certificate: TLS with certificate and host name verified (verify-full), for both URLs. */
  DATABASE_TLS_CA: OptionalText,
  REDIS_URL: OptionalText,
  /** Redis through Sentinel instead of REDIS_URL: `host:port` of each Sentinel, comma separated. */
  REDIS_SENTINELS: OptionalText,
  /** The master group the Sentinels watch (with REDIS_SENTINELS). */
  REDIS_SENTINEL_NAME: Type.Optional(Text({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
  /** The Redis servers' password (with REDIS_SENTINELS, or to keep it out of REDIS_URL). */
  REDIS_PASSWORD: OptionalText,
  /** The Sentinels' own password, when they require one. */
  REDIS_SENTINEL_PASSWORD: OptionalText,
  /** PEM file of the CA of the Redis servers' (and Sentinels') certificates: TLS verified against it, with rediss:// or Sentinels. */
  REDIS_TLS_CA: OptionalText,
  GRPC_PORT: Int(0, 65535, 50051),
  HTTP_PORT: Int(0, 65535, 8080),
  /** A plaintext port serving only grpc.health.v1 (for kubelet probes when gRPC uses mutual TLS); unset: none. */
  GRPC_HEALTH_PORT: Type.Optional(Int(0, 65535)),
  HOST: Text({ default: '0.0.0.0' }),
  ADMIN_TOKENS: OptionalText,
  DATA_DIR: Text({ default: './data' }),
  LOG_LEVEL: StringEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { default: 'info' }),
  ARGON2_MEMORY_KIB: Int(1024, 1048576, 19456),
  ARGON2_TIME_COST: Int(1, 20, 2),
  ARGON2_PARALLELISM: Int(1, 16, 1),
  // Within its bound on any host: Ajv checks defaults too.
  ARGON2_MAX_CONCURRENCY: Int(1, 64, Math.min(64, Math.max(1, availableParallelism() - 1))),
  ARGON2_MAX_QUEUE: Int(0, 100000, 64),
  /** Admin hashing (create, rotate) has a lane of its own, so a bulk create cannot starve Authenticate. */
  ARGON2_ADMIN_CONCURRENCY: Int(1, 16, 1),
  CACHE_MAX_ENTRIES: Int(1, 10_000_000, 100_000),
  CACHE_TTL_SECONDS: Int(1, 86_400, 60),
  STALE_SERVE_SECONDS: Int(0, 86_400, 300),
  FAILED_ATTEMPTS_LIMIT: Int(1, 1000, 10),
  FAILED_ATTEMPTS_WINDOW_SECONDS: Int(1, 86_400, 300),
  CHANGE_POLL_MS: Int(100, 60_000, 2000),
  /** The explicit way to run without PostgreSQL and Redis (PGlite under DATA_DIR, in-process bus). */
  EMBEDDED: Type.Optional(Flag),
  NODE_ENV: OptionalText,
  /** HMAC key for what replicas exchange through Redis (design: redis-not-authority); required with REDIS_URL or REDIS_SENTINELS. */
  CACHE_SIGNING_KEY: Type.Optional(
    Text({
      minLength: 32,
      maxLength: 512,
      errorMessage: { minLength: 'must be at least 32 characters (e.g. openssl rand -base64 32)' },
    }),
  ),
  /** A replica decides from memory only this long after sending a heartbeat it has heard back (design: revoke-holds). */
  LEASE_MS: Int(200, 30_000, 1000),
  /** Clock difference tolerated between hosts (design: revocation-ignores-clocks). */
  CLOCK_SKEW_MS: Int(0, 10_000, 250),
  HEARTBEAT_MS: Int(20, 60_000, 200),
  ACTIVITY_FLUSH_MS: Int(100, 600_000, 5000),
  /** Proxies whose X-Forwarded-For is believed for the source address (audit log, rate limits); unset: none. */
  TRUST_PROXY: OptionalText,
  /** Admin API requests per minute, per token and per source address (shared in Redis when configured). */
  ADMIN_RATE_LIMIT_PER_TOKEN: Int(1, 1_000_000, 600),
  ADMIN_RATE_LIMIT_PER_ADDRESS: Int(1, 1_000_000, 1200),
  /** Usage entries kept in memory per kind while flushes fail; the oldest are dropped beyond it. */
  USAGE_MAX_ENTRIES: Int(1000, 10_000_000, 100_000),
  /** Retention, in days: the change log (at least a day: far beyond any cache entry's life), flush ids, usage counts, audit log (at least a year). */
  RETENTION_CHANGES_DAYS: Int(1, 3650, 7),
  RETENTION_ACTIVITY_BATCHES_DAYS: Int(1, 3650, 7),
  RETENTION_USAGE_DAYS: Int(1, 3650, 400),
  RETENTION_AUDIT_DAYS: Int(365, 36_500, 730),
  RETENTION_INTERVAL_MS: Int(1000, 86_400_000, 3_600_000),
  GRPC_MAX_CONNECTION_AGE_MS: Int(1000, 86_400_000, 300_000),
  SHUTDOWN_GRACE_MS: Int(0, 600_000, 20_000),
  BODY_LIMIT_BYTES: Int(1024, 10_485_760, 65_536),
  GRPC_TLS_CERT: OptionalText,
  GRPC_TLS_KEY: OptionalText,
  GRPC_TLS_CA: OptionalText,
  HTTP_TLS_CERT: OptionalText,
  HTTP_TLS_KEY: OptionalText,
  REDIS_PREFIX: Text({ pattern: '^[A-Za-z0-9:._-]{1,64}$', default: 'otesse:keys:' }),
  REPLICA_ID: Type.Optional(Text({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
  /** GitHub secret scanning's endpoint, on a listener of its own (nothing else is served there); unset: off. */
  LEAK_REPORT_PORT: Type.Optional(Int(0, 65535)),
  /** Where GitHub publishes the keys that sign its reports (http only for tests). */
  GITHUB_SECRET_SCANNING_KEYS_URL: Text({ default: 'https://api.github.com/meta/public_keys/secret_scanning' }),
  /** /metrics on a listener of its own (and then not on the admin port); unset: /metrics on HTTP_PORT. */
  METRICS_PORT: Type.Optional(Int(0, 65535)),
  /** Signed-in admins: JWTs (RS256/ES256) checked against this JWKS; unset: ADMIN_TOKENS only. */
  ADMIN_JWKS_URL: OptionalText,
  ADMIN_JWT_ISSUER: OptionalText,
  ADMIN_JWT_AUDIENCE: OptionalText,
  /** 1: the Swagger UI at /docs on the admin port; unset: on, except with NODE_ENV=production (/openapi.json is always served). */
  ADMIN_API_DOCS: Type.Optional(Flag),
  /** Forward auth for gateways (nginx auth_request, Traefik ForwardAuth) on its own port; unset: off. */
  FORWARD_AUTH_PORT: Type.Optional(Int(0, 65535)),
  /** A YAML route map (method, path pattern, scope) for forward auth and Envoy Check; read at start. */
  FORWARD_AUTH_ROUTES: OptionalText,
  /** 1: the gateway sets X-Otesse-Scope and strips the client's, so forward auth believes it; 0: ignored (design: client-cannot-choose). */
  FORWARD_AUTH_TRUST_SCOPE_HEADER: StringEnum(['0', '1'] as const, { default: '0' }),
  /** HTTPS on FORWARD_AUTH_PORT; with FORWARD_AUTH_TLS_CA, gateways must present a certificate from that CA. */
  FORWARD_AUTH_TLS_CERT: OptionalText,
  FORWARD_AUTH_TLS_KEY: OptionalText,
  FORWARD_AUTH_TLS_CA: OptionalText,
  /** Origins of the dashboards that may hand the console a token (postMessage only; no #token= link); unset: any opener (development). */
  CONSOLE_HOST_ORIGINS: OptionalText,
});

/** Variables whose text, once the schema holds, is read further: a parser returns the value or throws InvalidValue. */
const parsers = {
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  DATABASE_MIGRATION_URL: url(['postgres:', 'postgresql:']),
  DATABASE_TLS_CA: pemCertificateFile,
  REDIS_URL: url(['redis:', 'rediss:']),
  REDIS_SENTINELS: hostPorts,
  REDIS_TLS_CA: pemCertificateFile,
  ADMIN_TOKENS: adminTokens,
  TRUST_PROXY: cidrList,
  GITHUB_SECRET_SCANNING_KEYS_URL: url(['https:', 'http:']),
  ADMIN_JWKS_URL: url(['https:', 'http:']),
  CONSOLE_HOST_ORIGINS: originList,
} satisfies { [K in keyof Static<typeof schema>]?: (text: string) => unknown };

type Variables = Static<typeof schema>;
type Parsers = typeof parsers;

/** The variables, each parsed one as its parser returns it. */
export type Config = Readonly<{
  [K in keyof Variables]: K extends keyof Parsers
    ? ReturnType<Parsers[K]> | Exclude<Variables[K], string>
    : Variables[K];
}>;

/** Free text is read without the whitespace around it (never meant); enumerated values and numbers are read as written. */
const TRIMMED: ReadonlySet<string> = new Set(
  Object.entries(schema.properties)
    .filter(([, s]) => s.type === 'string' && s.enum === undefined)
    .map(([name]) => name),
);

const check = checker(schema, 'text');

/** A bad configuration value: `message` is one line naming the variable, never its value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
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

/**
 * Read and validate the environment once into a frozen object; throws ConfigError naming the variable.
 * `migrateOnly`: for `npm run migrate` (the migration Job), which needs PostgreSQL and nothing else.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  opts: { migrateOnly?: boolean } = {},
): Config {
  const names = Object.keys(schema.properties);
  // An empty value (an empty Kubernetes secret, say) is a mistake, never the same as unset.
  const empty = names.find((name) => env[name] !== undefined && env[name]?.trim() === '');
  if (empty) throw new ConfigError(`${empty}: is empty; unset it or give it a value`);
  const present = Object.fromEntries(
    names.flatMap((name) => {
      const value = env[name];
      return value === undefined ? [] : [[name, TRIMMED.has(name) ? value.trim() : value]];
    }),
  );
  const result = check(present);
  if (!result.ok) throw new ConfigError(`${result.issue.path || 'configuration'}: ${result.issue.message}`);
  const config = parse(result.value);
  checkPairs(config);
  checkDatabase(config);
  checkRedis(config);
  checkModes(config, opts.migrateOnly ?? false);
  return Object.freeze(config);
}

/** The checked variables with the parsed ones replaced by their parsers' values. */
function parse(variables: Variables): Config {
  const config: Record<string, unknown> = { ...variables };
  for (const [name, parser] of Object.entries(parsers) as [keyof Parsers, (text: string) => unknown][]) {
    const text = variables[name];
    if (text === undefined) continue;
    try {
      config[name] = parser(text);
    } catch (err) {
      if (err instanceof InvalidValue) throw new ConfigError(`${name}: ${err.message}`);
      throw err;
    }
  }
  return config as Config;
}
