// Redis settings: one server or Sentinels, never both; each companion setting needs what it goes with;
// a bad value is one line naming the variable, never its value.
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { makePki } from './helpers/ops/certs.js';

const BASE = { DATABASE_URL: 'postgres://db/x', CACHE_SIGNING_KEY: 'k'.repeat(32) };
const SENTINELS = {
  REDIS_SENTINELS: 'sentinel-0:26379, sentinel-1:26379,[fd00::2]:26379',
  REDIS_SENTINEL_NAME: 'otesse',
};

function message(env: Record<string, string>): string | undefined {
  try {
    loadConfig({ ...BASE, ...env });
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

t.test('Sentinels are read into host and port, IPv6 in brackets', async (t) => {
  const config = loadConfig({ ...BASE, ...SENTINELS, REDIS_PASSWORD: 'pw', REDIS_SENTINEL_PASSWORD: 'spw' });
  t.same(config.REDIS_SENTINELS, [
    { host: 'sentinel-0', port: 26379 },
    { host: 'sentinel-1', port: 26379 },
    { host: 'fd00::2', port: 26379 },
  ]);
  t.equal(config.REDIS_SENTINEL_NAME, 'otesse');
  t.equal(
    loadConfig({ ...BASE, ...SENTINELS, NODE_ENV: 'production', ADMIN_TOKENS: 'a:0123456789abcdef' }).REDIS_URL,
    undefined,
    'production runs on Sentinels without REDIS_URL',
  );
});

t.test('REDIS_URL and REDIS_SENTINELS together: an error naming both', async (t) => {
  t.match(
    message({ ...SENTINELS, REDIS_URL: 'redis://cache:6379' }),
    /^REDIS_SENTINELS: cannot be set together with REDIS_URL/,
  );
});

t.test('each Redis setting needs what it goes with', async (t) => {
  t.match(message({ REDIS_SENTINELS: 's:26379' }), /^REDIS_SENTINEL_NAME: must be set together with REDIS_SENTINELS/);
  t.match(
    message({ REDIS_SENTINEL_NAME: 'otesse' }),
    /^REDIS_SENTINELS: must be set together with REDIS_SENTINEL_NAME/,
  );
  t.match(
    message({ REDIS_SENTINEL_PASSWORD: 'x', REDIS_URL: 'redis://c:6379' }),
    /^REDIS_SENTINELS: required when REDIS_SENTINEL_PASSWORD is set/,
  );
  t.match(message({ REDIS_PASSWORD: 'x' }), /^REDIS_URL: required when REDIS_PASSWORD is set/);
  t.match(
    message({ ...SENTINELS, CACHE_SIGNING_KEY: undefined as unknown as string }),
    /^CACHE_SIGNING_KEY: required when REDIS_SENTINELS is set/,
  );
  t.match(
    message({ ...SENTINELS, DATABASE_URL: undefined as unknown as string }),
    /^DATABASE_URL: required when REDIS_SENTINELS is set/,
  );
  t.match(
    message({ ...SENTINELS, EMBEDDED: '1', DATABASE_URL: undefined as unknown as string }),
    /^EMBEDDED: cannot be 1 when REDIS_SENTINELS is set/,
  );
});

t.test('REDIS_TLS_CA: a readable certificate, for rediss:// or Sentinels', async (t) => {
  const pki = makePki(t);
  t.equal(loadConfig({ ...BASE, REDIS_URL: 'rediss://c:6380', REDIS_TLS_CA: pki.ca }).REDIS_TLS_CA, pki.ca);
  t.equal(loadConfig({ ...BASE, ...SENTINELS, REDIS_TLS_CA: pki.ca }).REDIS_TLS_CA, pki.ca);
  t.match(
    message({ REDIS_URL: 'redis://c:6379', REDIS_TLS_CA: pki.ca }),
    /^REDIS_URL: must be a rediss:\/\/ URL when REDIS_TLS_CA is set/,
  );
  t.match(
    message({ REDIS_URL: 'rediss://c:6380', REDIS_TLS_CA: pki.server.key }),
    /^REDIS_TLS_CA: the file holds no PEM certificate/,
  );
  t.match(message({ REDIS_TLS_CA: pki.ca }), /^REDIS_URL: required when REDIS_TLS_CA is set/);
});

t.test('a password in two places, or a bad Sentinel list: one line naming the variable, never the value', async (t) => {
  const twice = message({ REDIS_URL: 'redis://:in-the-url@c:6379', REDIS_PASSWORD: 'sekrit-password' });
  t.match(twice, /^REDIS_PASSWORD: cannot be set when REDIS_URL holds a password/);
  t.notOk(twice?.includes('sekrit-password') || twice?.includes('in-the-url'), 'no password in the message');
  for (const bad of ['sentinel-0', 'sentinel-0:0', 'sentinel-0:99999', 'a b:26379', ',']) {
    t.match(message({ ...SENTINELS, REDIS_SENTINELS: bad }), /^REDIS_SENTINELS: /, bad);
  }
  t.match(message({ ...SENTINELS, REDIS_SENTINEL_NAME: 'no spaces' }), /^REDIS_SENTINEL_NAME: /);
});
