import { availableParallelism } from 'node:os';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

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

/** Comma-separated IPs and CIDRs (v4 and v6), each checked by ipaddr.js. */
const cidrList = z.string().trim().transform((text, ctx) => {
  const entries = text.split(',').map((e) => e.trim()).filter(Boolean);
  const bad = entries.find((e) => !(e.includes('/') ? ipaddr.isValidCIDR(e) : ipaddr.isValid(e)));
  if (bad !== undefined || entries.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must be IPs or CIDRs, comma separated' });
    return z.NEVER;
  }
  return entries;
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
  CACHE_MAX_ENTRIES: int(1, 10_000_000).default(100_000),
  CACHE_TTL_SECONDS: int(1, 86_400).default(60),
  STALE_SERVE_SECONDS: int(0, 86_400).default(300),
  FAILED_ATTEMPTS_LIMIT: int(1, 1000).default(10),
  FAILED_ATTEMPTS_WINDOW_SECONDS: int(1, 86_400).default(300),
  CHANGE_POLL_MS: int(100, 60_000).default(2000),
  REVOKE_CONFIRM_TIMEOUT_MS: int(0, 5000).default(100),
  HEARTBEAT_MS: int(50, 60_000).default(1000),
  ACTIVITY_FLUSH_MS: int(100, 600_000).default(5000),
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
  /** Forward auth for gateways (nginx auth_request, Traefik ForwardAuth) on its own port; unset: off. */
  FORWARD_AUTH_PORT: int(0, 65535).optional(),
  /** A YAML route map (method, path pattern, scope) for forward auth and Envoy Check; read at start. */
  FORWARD_AUTH_ROUTES: optionalText,
  /** Proxies (IPs, CIDRs) whose X-Forwarded-For is believed by forward auth; unset: none. */
  TRUST_PROXY: cidrList.optional(),
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
}

/** Read and validate the environment once into a frozen object; throws ConfigError naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(present);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name = String(issue?.path[0] ?? 'configuration');
    throw new ConfigError(`${name}: ${issue?.message ?? 'invalid'}`);
  }
  checkPairs(result.data);
  return Object.freeze(result.data);
}
