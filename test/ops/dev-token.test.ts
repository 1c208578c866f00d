// The development token file: created exclusively with mode 0600, never written or read through a
// symlink, and its contents checked on read.
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { developmentToken } from '../../src/admin-token.js';
import { startTestApp, testEnv } from '../helpers/app.js';
import { jwtEnv } from '../helpers/jwt.js';

function dir(t: { teardown(fn: () => unknown): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'otesse-token-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('made once with mode 0600, then read back', async (t) => {
  const d = dir(t);
  const first = developmentToken(d);
  t.match(first.token.token, /^[A-Za-z0-9_-]{32}$/);
  t.equal(statSync(first.path).mode & 0o777, 0o600);
  t.equal(developmentToken(d).token.token, first.token.token, 'the same token on the next start');
  chmodSync(first.path, 0o644);
  developmentToken(d);
  t.equal(statSync(first.path).mode & 0o777, 0o600, 'a loosened mode is tightened again');
});

t.test('a symlink in its place is refused, and its target is neither read nor written', async (t) => {
  const d = dir(t);
  const target = join(d, 'elsewhere');
  writeFileSync(target, 'precious\n');
  symlinkSync(target, join(d, 'admin-token'));
  t.throws(() => developmentToken(d), /ELOOP|symbolic link|not a development token/);
  t.equal(readFileSync(target, 'utf8'), 'precious\n', 'the target is untouched');
});

t.test('a file with other contents is refused', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'admin-token'), 'not a token at all\n', { mode: 0o600 });
  t.throws(() => developmentToken(d), /does not hold a development token/);
});

t.test('production with JWT sign-in only makes no token of its own: no file, no static token works', async (t) => {
  const d = dir(t);
  // The key set is read lazily, on the first JWT presented: none is, so nothing is fetched.
  const env = await testEnv(t, {
    NODE_ENV: 'production',
    DATA_DIR: d,
    ...jwtEnv('https://id.otesse.test/.well-known/jwks.json'),
  });
  delete env.ADMIN_TOKENS;
  const app = await startTestApp(t, {}, env);
  t.notOk(existsSync(join(d, 'admin-token')), 'no development token file in DATA_DIR');
  t.equal((await app.api('GET', '/v1/me', undefined, '')).status, 401, 'the admin API takes JWTs only');
});
