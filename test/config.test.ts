import { spawn } from 'node:child_process';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { MAIN } from './helpers/replica.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** True when `value` occurs in `text` as a whole token (so "1" is not found inside "1024"). */
const mentions = (text: string, value: string) =>
  new RegExp(`(^|[^0-9A-Za-z])${escape(value)}($|[^0-9A-Za-z])`).test(text);

function configError(env: Record<string, string>): ConfigError | undefined {
  try {
    loadConfig(env);
    return undefined;
  } catch (err) {
    return err instanceof ConfigError ? err : undefined;
  }
}

t.test('defaults: an empty environment is a valid, frozen configuration', async (t) => {
  const c = loadConfig({});
  t.ok(Object.isFrozen(c));
  t.equal(c.GRPC_PORT, 50051);
  t.equal(c.HTTP_PORT, 8080);
  t.equal(c.DATA_DIR, './data');
  t.equal(c.LOG_LEVEL, 'info');
  t.equal(c.DATABASE_URL, undefined, 'no DATABASE_URL: embedded PostgreSQL');
  t.equal(c.REDIS_URL, undefined, 'no REDIS_URL: in-process cache');
  t.equal(c.ADMIN_TOKENS, undefined, 'no ADMIN_TOKENS: development token');
});

t.test('an empty value is an error naming the variable, never the same as unset', async (t) => {
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'GRPC_PORT', 'ADMIN_TOKENS', 'CACHE_SIGNING_KEY', 'EMBEDDED']) {
    t.match(configError({ [name]: '' })?.message, new RegExp(`^${name}: is empty`), `${name}=""`);
    t.match(configError({ [name]: '  ' })?.message, new RegExp(`^${name}: is empty`), `${name}="  "`);
  }
});

t.test('backends: embedded only when asked or when neither URL is present; never in production', async (t) => {
  const pg = 'postgres://u@db:5432/keys';
  const redis = 'redis://cache:6379';
  const key = 'k'.repeat(32);
  t.equal(loadConfig({ EMBEDDED: '1' }).EMBEDDED, '1', 'EMBEDDED=1 alone is the explicit embedded mode');
  t.match(configError({ EMBEDDED: '1', DATABASE_URL: pg })?.message, /^EMBEDDED: cannot be 1 when DATABASE_URL is set/);
  t.match(
    configError({ REDIS_URL: redis, CACHE_SIGNING_KEY: key })?.message,
    /^DATABASE_URL: required when REDIS_URL is set/,
  );
  t.match(
    configError({ DATABASE_URL: pg, REDIS_URL: redis })?.message,
    /^CACHE_SIGNING_KEY: required when REDIS_URL is set/,
  );
  t.match(
    configError({ DATABASE_URL: pg, REDIS_URL: redis, CACHE_SIGNING_KEY: 'short' })?.message,
    /^CACHE_SIGNING_KEY: must be at least 32/,
  );
  t.match(configError({ NODE_ENV: 'production' })?.message, /^DATABASE_URL: required when NODE_ENV=production/);
  t.match(
    configError({ NODE_ENV: 'production', EMBEDDED: '1' })?.message,
    /^DATABASE_URL: required when NODE_ENV=production/,
  );
  t.match(
    configError({ NODE_ENV: 'production', DATABASE_URL: pg })?.message,
    /^REDIS_URL: required when NODE_ENV=production/,
  );
  t.ok(
    loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: pg,
      REDIS_URL: redis,
      CACHE_SIGNING_KEY: key,
      ADMIN_TOKENS: 'ops:0123456789abcdef',
    }),
    'production with both (and admin tokens) is fine',
  );
  t.match(
    configError({ LEASE_MS: '1000', HEARTBEAT_MS: '600' })?.message,
    /^HEARTBEAT_MS: must be at most half of LEASE_MS/,
  );
});

t.test('valid values are parsed', async (t) => {
  const c = loadConfig({
    GRPC_PORT: '7000',
    HTTP_PORT: '0',
    LOG_LEVEL: 'debug',
    DATABASE_URL: 'postgresql://u@db:5432/keys',
    REDIS_URL: 'rediss://cache:6380',
    CACHE_SIGNING_KEY: 'k'.repeat(32),
    ADMIN_TOKENS: 'ops:abcdefghijklmnop, ci:0123456789abcdef0123:acct_1|acct_2',
  });
  t.equal(c.GRPC_PORT, 7000);
  t.equal(c.HTTP_PORT, 0);
  t.equal(c.LOG_LEVEL, 'debug');
  t.same(c.ADMIN_TOKENS, [
    { name: 'ops', token: 'abcdefghijklmnop', accounts: undefined },
    { name: 'ci', token: '0123456789abcdef0123', accounts: ['acct_1', 'acct_2'] },
  ]);
});

t.test('a bad value of each kind stops start-up with one line naming the variable, never the value', async (t) => {
  const cases: [string, string][] = [
    ['ADMIN_TOKENS', 'admin:shhh-sekrit'],
    ['ADMIN_TOKENS', 'admin-without-token'],
    ['ADMIN_TOKENS', 'a:b:c:d-0123456789abcdef'],
    ['GRPC_PORT', 'abc'],
    ['GRPC_PORT', '65536'],
    ['HTTP_PORT', '-1'],
    ['HTTP_PORT', '80.5'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'mysql://user:hunter2pass@db/keys'],
    ['DATABASE_URL', 'not a url'],
    ['REDIS_URL', 'http://cache:6379'],
    ['ARGON2_MEMORY_KIB', '1'],
    ['ARGON2_TIME_COST', 'lots'],
    ['FAILED_ATTEMPTS_LIMIT', '0'],
    ['BODY_LIMIT_BYTES', '10'],
    ['REDIS_PREFIX', 'has space'],
  ];
  for (const [name, value] of cases) {
    const err = configError({ [name]: value });
    t.ok(err, `${name}=${value} is refused with a ConfigError`);
    if (!err) continue;
    t.ok(err.message.startsWith(`${name}:`), `the message starts with ${name}: ${err.message}`);
    t.notOk(err.message.includes('\n'), 'one line');
    t.notOk(mentions(err.message, value), 'the bad value is not repeated');
  }
  const secretish = configError({ ADMIN_TOKENS: 'admin:0123456789abcdef,broken:tiny' });
  t.ok(secretish?.message.startsWith('ADMIN_TOKENS:'));
  t.notOk(secretish?.message.includes('0123456789abcdef'), 'a good token beside a bad entry is not shown either');
});

t.test('TLS files must come in pairs', async (t) => {
  t.match(configError({ GRPC_TLS_CERT: '/tls/cert.pem' })?.message, /^GRPC_TLS_KEY:/);
  t.match(configError({ HTTP_TLS_KEY: '/tls/key.pem' })?.message, /^HTTP_TLS_CERT:/);
  t.match(configError({ GRPC_TLS_CA: '/tls/ca.pem' })?.message, /^GRPC_TLS_CERT:/);
});

t.test('several bad values: still one line, naming one of them', async (t) => {
  const err = configError({ GRPC_PORT: 'abc', LOG_LEVEL: 'loud' });
  t.ok(err);
  t.match(err?.message, /^(GRPC_PORT|LOG_LEVEL): [^\n]+$/);
});

/** Run the built service with this environment; resolves exit code and output. */
function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => {
      stdout += String(c);
    });
    proc.stderr.on('data', (c: Buffer) => {
      stderr += String(c);
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`did not exit: ${stdout}${stderr}`));
    }, 15_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('the process exits non-zero with one stderr line naming the variable', async (t) => {
  const [out, token] = await Promise.all([
    run({ GRPC_PORT: 'abc', DATA_DIR: '/nonexistent/never-created' }),
    run({ ADMIN_TOKENS: 'admin:shhh-sekrit' }),
  ]);
  t.not(out.code, 0, `exit code ${out.code}`);
  const lines = out.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `one line: ${out.stderr}`);
  t.match(lines[0], /GRPC_PORT/);
  t.notOk(mentions(out.stderr, 'abc'));
  t.equal(out.stdout, '', 'nothing started, nothing logged');

  t.not(token.code, 0);
  t.equal(token.stderr.split('\n').filter(Boolean).length, 1);
  t.match(token.stderr, /ADMIN_TOKENS/);
  t.notOk(token.stderr.includes('shhh-sekrit'), 'the bad token is not printed');
});

t.test('production trusts no credential it made itself and fetches no signing key over http', async (t) => {
  const base = {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://u@db:5432/keys',
    REDIS_URL: 'redis://cache:6379',
    CACHE_SIGNING_KEY: 'k'.repeat(32),
  };
  const jwt = { ADMIN_JWT_ISSUER: 'https://id.otesse.test/', ADMIN_JWT_AUDIENCE: 'otesse-keys-admin' };
  const tokens = { ADMIN_TOKENS: 'ops:0123456789abcdef' };
  t.match(
    configError(base)?.message,
    /^ADMIN_TOKENS: required when NODE_ENV=production unless ADMIN_JWKS_URL is set/,
    'no ADMIN_TOKENS and no JWTs: no start (every pod would make its own token)',
  );
  t.ok(loadConfig({ ...base, ...jwt, ADMIN_JWKS_URL: 'https://id.otesse.test/jwks.json' }), 'JWTs alone are enough');
  t.ok(loadConfig({ ...base, ...tokens }), 'ADMIN_TOKENS alone are enough');
  t.ok(
    loadConfig({ NODE_ENV: 'production', DATABASE_URL: base.DATABASE_URL }, { migrateOnly: true }),
    'the migration Job needs no admin credential',
  );
  t.match(
    configError({ ...base, ...tokens, ...jwt, ADMIN_JWKS_URL: 'http://id.otesse.test/jwks.json' })?.message,
    /^ADMIN_JWKS_URL: must be an https URL when NODE_ENV=production$/,
  );
  t.match(
    configError({ ...base, ...tokens, ...jwt, ADMIN_JWKS_URL: 'HTTP://id.otesse.test/jwks.json' })?.message,
    /^ADMIN_JWKS_URL: must be an https/,
  );
  t.match(
    configError({
      ...base,
      ...tokens,
      GITHUB_SECRET_SCANNING_KEYS_URL: 'http://api.github.com/meta/public_keys/secret_scanning',
    })?.message,
    /^GITHUB_SECRET_SCANNING_KEYS_URL: must be an https URL when NODE_ENV=production$/,
  );
  t.ok(
    loadConfig({ ...jwt, ADMIN_JWKS_URL: 'http://127.0.0.1:9/jwks.json' }),
    'http stays possible outside production (tests, a local provider)',
  );
  t.equal(loadConfig({}).ADMIN_API_DOCS, undefined, '/docs follows NODE_ENV unless set');
  t.match(configError({ ADMIN_API_DOCS: 'yes' })?.message, /^ADMIN_API_DOCS:/);
});

t.test(
  'a production process without admin credentials stops at once with one stderr line naming the variable',
  async (t) => {
    const out = await run({
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://u@127.0.0.1:9/keys',
      REDIS_URL: 'redis://127.0.0.1:9',
      CACHE_SIGNING_KEY: 'k'.repeat(32),
      DATA_DIR: '/nonexistent/never-created',
    });
    t.not(out.code, 0, `exit code ${out.code}`);
    const lines = out.stderr.split('\n').filter(Boolean);
    t.equal(lines.length, 1, `one line: ${out.stderr}`);
    t.match(lines[0], /^.*ADMIN_TOKENS: required when NODE_ENV=production/);
  },
);
