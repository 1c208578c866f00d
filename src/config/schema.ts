import { availableParallelism } from 'node:os';
import { Type, type Static, type StringOptions } from '@sinclair/typebox';
import { StringEnum, type ErrorMessages } from '../validation.js';

/** An integer read from its text, within bounds; `byDefault` when unset. */
const Int = (minimum: number, maximum: number, byDefault?: number) =>
  Type.Integer({ minimum, maximum, ...(byDefault === undefined ? {} : { default: byDefault }) });
/** Free text: read without the whitespace around it (see TRIMMED). */
const Text = (options: StringOptions & ErrorMessages = {}) => Type.String({ minLength: 1, ...options });
const OptionalText = Type.Optional(Text());
const Flag = StringEnum(['0', '1'] as const);

/** Every variable the service reads: its type, bounds and default. */
export const schema = Type.Object({
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
  /** Webhook events, their deliveries and attempts are kept this many days. */
  RETENTION_WEBHOOK_DAYS: Int(1, 3650, 30),
  /** Webhooks: due deliveries are looked for this often (an admin change is sent at once by its replica); the scheduled notices run this often. */
  WEBHOOK_POLL_MS: Int(100, 60_000, 1000),
  WEBHOOK_SCHEDULE_MS: Int(1000, 86_400_000, 60_000),
  /** 1: webhook URLs may reach loopback, private and link-local addresses (development and tests only; refused in production). */
  WEBHOOK_ALLOW_PRIVATE: StringEnum(['0', '1'] as const, { default: '0' }),
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

/** The variables as the schema lets them through, before any parser reads them. */
export type Variables = Static<typeof schema>;

/** Free text is read without the whitespace around it (never meant); enumerated values and numbers are read as written. */
export const TRIMMED: ReadonlySet<string> = new Set(
  Object.entries(schema.properties)
    .filter(([, s]) => s.type === 'string' && s.enum === undefined)
    .map(([name]) => name),
);
