import { availableParallelism } from 'node:os';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { normalizeRule, parseRule } from './domain/ip.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalText = z.string().trim().min(1).optional();
const url = (protocols: string[]) => z.string().trim().refine((v) => {
  try { return protocols.includes(new URL(v).protocol); } catch { return false; }
}, `must be a ${protocols.join(' or ')} URL`);

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
const adminTokens = z.string().trim().transform((text, ctx) => {
  const out: AdminToken[] = [];
  for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
    const [name = '', token = '', accounts, ...rest] = entry.split(':');
    if (rest.length > 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(name) || !/^[\x21-\x7e]{16,256}$/.test(token)) {
      ctx.addIssue({ code: 'custom', message: 'entries must be name:token[:account|account] with a token of 16 to 256 printable characters' });
      return z.NEVER;
    }
    out.push({ name, token, accounts: accounts === undefined ? undefined : accounts.split('|').filter(Boolean) });
  }
  if (out.length === 0) ctx.addIssue({ code: 'custom', message: 'no name:token entry' });
  return out;
});

/** Comma-separated addresses and CIDRs (v4 and v6), parsed by the domain's rules. */
const cidrList = z.string().trim().transform((text, ctx) => {
  const out: string[] = [];
  for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
    const rule = parseRule(entry);
    if (!rule) {
      ctx.addIssue({ code: 'custom', message: 'entries must be IP addresses or CIDRs, comma separated' });
      return z.NEVER;
    }
    out.push(normalizeRule(rule));
  }
  return out;
});

const schema = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
  GRPC_PORT: int(0, 65535).default(50051),
  HTTP_PORT: int(0, 65535).default(8080),
  /** A plaintext port serving only grpc.health.v1 (for kubelet probes when gRPC uses mutual TLS); unset: none. */
  GRPC_HEALTH_PORT: int(0, 65535).optional(),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  ADMIN_TOKENS: adminTokens.optional(),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ARGON2_MEMORY_KIB: int(1024, 1048576).default(19456),
  ARGON2_TIME_COST: int(1, 20).default(2),
  ARGON2_PARALLELISM: int(1, 16).default(1),
  ARGON2_MAX_CONCURRENCY: int(1, 64).default(Math.max(1, availableParallelism() - 1)),
  ARGON2_MAX_QUEUE: int(0, 100000).default(64),
  /** Admin hashing (create, rotate) has a lane of its own, so a bulk create cannot starve Authenticate. */
  ARGON2_ADMIN_CONCURRENCY: int(1, 16).default(1),
  CACHE_MAX_ENTRIES: int(1, 10_000_000).default(100_000),
  CACHE_TTL_SECONDS: int(1, 86_400).default(60),
  STALE_SERVE_SECONDS: int(0, 86_400).default(300),
  FAILED_ATTEMPTS_LIMIT: int(1, 1000).default(10),
  FAILED_ATTEMPTS_WINDOW_SECONDS: int(1, 86_400).default(300),
  CHANGE_POLL_MS: int(100, 60_000).default(2000),
  /** The explicit way to run without PostgreSQL and Redis (PGlite under DATA_DIR, in-process bus). */
  EMBEDDED: z.enum(['0', '1']).optional(),
  NODE_ENV: z.string().trim().min(1).optional(),
  /** HMAC key for what replicas exchange through Redis (design invariant 12); required with REDIS_URL. */
  CACHE_SIGNING_KEY: z.string().trim().min(32, 'must be at least 32 characters (e.g. openssl rand -base64 32)').max(512).optional(),
  /** A replica decides from memory only this long after sending a heartbeat it has heard back (design invariant 2). */
  LEASE_MS: int(200, 30_000).default(1000),
  /** Clock difference tolerated between hosts (design invariant 14). */
  CLOCK_SKEW_MS: int(0, 10_000).default(250),
  HEARTBEAT_MS: int(20, 60_000).default(200),
  ACTIVITY_FLUSH_MS: int(100, 600_000).default(5000),
  /** Proxies whose X-Forwarded-For is believed for the source address (audit log, rate limits); unset: none. */
  TRUST_PROXY: cidrList.optional(),
  /** Admin API requests per minute, per token and per source address (shared in Redis when configured). */
  ADMIN_RATE_LIMIT_PER_TOKEN: int(1, 1_000_000).default(600),
  ADMIN_RATE_LIMIT_PER_ADDRESS: int(1, 1_000_000).default(1200),
  /** Usage entries kept in memory per kind while flushes fail; the oldest are dropped beyond it. */
  USAGE_MAX_ENTRIES: int(1000, 10_000_000).default(100_000),
  /** Retention, in days: the change log (at least a day: far beyond any cache entry's life), flush ids, usage counts, audit log (at least a year). */
  RETENTION_CHANGES_DAYS: int(1, 3650).default(7),
  RETENTION_ACTIVITY_BATCHES_DAYS: int(1, 3650).default(7),
  RETENTION_USAGE_DAYS: int(1, 3650).default(400),
  RETENTION_AUDIT_DAYS: int(365, 36_500).default(730),
  RETENTION_INTERVAL_MS: int(1000, 86_400_000).default(3_600_000),
  GRPC_MAX_CONNECTION_AGE_MS: int(1000, 86_400_000).default(300_000),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(20_000),
  BODY_LIMIT_BYTES: int(1024, 10_485_760).default(65_536),
  GRPC_TLS_CERT: optionalText,
  GRPC_TLS_KEY: optionalText,
  GRPC_TLS_CA: optionalText,
  HTTP_TLS_CERT: optionalText,
  HTTP_TLS_KEY: optionalText,
  REDIS_PREFIX: z.string().trim().regex(/^[A-Za-z0-9:._-]{1,64}$/).default('otesse:keys:'),
  REPLICA_ID: z.string().trim().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
  /** GitHub secret scanning's endpoint, on a listener of its own (nothing else is served there); unset: off. */
  LEAK_REPORT_PORT: int(0, 65535).optional(),
  /** Where GitHub publishes the keys that sign its reports (http only for tests). */
  GITHUB_SECRET_SCANNING_KEYS_URL: url(['https:', 'http:']).default('https://api.github.com/meta/public_keys/secret_scanning'),
  /** /metrics on a listener of its own (and then not on the admin port); unset: /metrics on HTTP_PORT. */
  METRICS_PORT: int(0, 65535).optional(),
  /** Signed-in admins: JWTs (RS256/ES256) checked against this JWKS; unset: ADMIN_TOKENS only. */
  ADMIN_JWKS_URL: url(['https:', 'http:']).optional(),
  ADMIN_JWT_ISSUER: optionalText,
  ADMIN_JWT_AUDIENCE: optionalText,
  /** Forward auth for gateways (nginx auth_request, Traefik ForwardAuth) on its own port; unset: off. */
  FORWARD_AUTH_PORT: int(0, 65535).optional(),
  /** A YAML route map (method, path pattern, scope) for forward auth and Envoy Check; read at start. */
  FORWARD_AUTH_ROUTES: optionalText,
});

export type Config = Readonly<z.infer<typeof schema>>;

/** A bad configuration value: `message` is one line naming the variable, never its value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function checkPairs(c: z.infer<typeof schema>): void {
  const pairs: [keyof typeof c, keyof typeof c][] = [['GRPC_TLS_CERT', 'GRPC_TLS_KEY'], ['HTTP_TLS_CERT', 'HTTP_TLS_KEY']];
  for (const [a, b] of pairs) {
    if (Boolean(c[a]) !== Boolean(c[b])) throw new ConfigError(`${c[a] ? b : a}: must be set together with ${c[a] ? a : b}`);
  }
  if (c.GRPC_TLS_CA && !c.GRPC_TLS_CERT) throw new ConfigError('GRPC_TLS_CERT: must be set when GRPC_TLS_CA is set');
  if (c.HEARTBEAT_MS * 2 > c.LEASE_MS) throw new ConfigError('HEARTBEAT_MS: must be at most half of LEASE_MS (a late beat must not cost the lease)');
  const jwt = ['ADMIN_JWKS_URL', 'ADMIN_JWT_ISSUER', 'ADMIN_JWT_AUDIENCE'] as const;
  const missing = jwt.find((v) => !c[v]);
  if (missing && jwt.some((v) => c[v])) throw new ConfigError(`${missing}: must be set together with ${jwt.filter((v) => v !== missing).join(' and ')}`);
}

/** Which backends run: embedded only when asked for, or when neither URL is present at all. */
function checkModes(c: z.infer<typeof schema>, migrateOnly: boolean): void {
  if (c.EMBEDDED === '1' && (c.DATABASE_URL || c.REDIS_URL)) {
    throw new ConfigError(`EMBEDDED: cannot be 1 when ${c.DATABASE_URL ? 'DATABASE_URL' : 'REDIS_URL'} is set`);
  }
  if (c.REDIS_URL && !c.DATABASE_URL) throw new ConfigError('DATABASE_URL: required when REDIS_URL is set (replicas cannot share an embedded database)');
  if (c.REDIS_URL && !c.CACHE_SIGNING_KEY) throw new ConfigError('CACHE_SIGNING_KEY: required when REDIS_URL is set');
  if (c.NODE_ENV === 'production') {
    if (!c.DATABASE_URL) throw new ConfigError('DATABASE_URL: required when NODE_ENV=production (the embedded database is for development)');
    if (!c.REDIS_URL && !migrateOnly) throw new ConfigError('REDIS_URL: required when NODE_ENV=production (the in-process bus serves one replica only)');
  }
}

/**
 * Read and validate the environment once into a frozen object; throws ConfigError naming the variable.
 * `migrateOnly`: for `npm run migrate` (the migration Job), which needs PostgreSQL and nothing else.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, opts: { migrateOnly?: boolean } = {}): Config {
  // An empty value (an empty Kubernetes secret, say) is a mistake, never the same as unset.
  const empty = Object.keys(schema.shape).find((name) => env[name] !== undefined && env[name]?.trim() === '');
  if (empty) throw new ConfigError(`${empty}: is empty; unset it or give it a value`);
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined));
  const result = schema.safeParse(present);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name = String(issue?.path[0] ?? 'configuration');
    throw new ConfigError(`${name}: ${issue?.message ?? 'invalid'}`);
  }
  checkPairs(result.data);
  checkModes(result.data, opts.migrateOnly ?? false);
  return Object.freeze(result.data);
}
