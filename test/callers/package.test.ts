// @otesse/keys-client as a calling service installs it: self-contained, light, and in step with the contract.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import t from 'tap';
import { DENIALS, DENY_REASONS, denialResponse } from '@otesse/keys-client';
import { loadConfig } from '../../src/config.js';
import { MAX_USES as SERVICE_MAX_USES } from '../../src/service/authenticator.js';
import { MAX_USES as CLIENT_MAX_USES } from '../../packages/keys-client/src/client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = join(ROOT, 'packages', 'keys-client');

t.test(
  'package.json: two entry points, grpc-js and proto-loader only, fastify and the OpenTelemetry API as optional peers',
  async (t) => {
    const pkg = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')) as Record<string, any>;
    t.equal(pkg.name, '@otesse/keys-client');
    t.same(
      Object.keys(pkg.exports).filter((k) => k !== './package.json'),
      ['.', './fastify'],
    );
    t.same(Object.keys(pkg.dependencies).sort(), ['@grpc/grpc-js', '@grpc/proto-loader']);
    t.ok(pkg.peerDependencies.fastify, 'fastify is a peer dependency');
    // The API only (no SDK): a caller that traces already has it; one that does not never loads it.
    t.same(Object.keys(pkg.peerDependencies).sort(), ['@opentelemetry/api', 'fastify']);
    t.same(
      pkg.peerDependenciesMeta,
      { '@opentelemetry/api': { optional: true }, fastify: { optional: true } },
      'both peers are optional',
    );
    t.ok(pkg.files.includes('proto'), 'the proto ships with it');
  },
);

t.test('the built package imports nothing of the service', async (t) => {
  const dist = join(PKG, 'dist');
  const allowed = /^(\.\/|node:|@grpc\/grpc-js$|@grpc\/proto-loader$|fastify$|@opentelemetry\/api$)/;
  for (const file of readdirSync(dist).filter((f) => f.endsWith('.js'))) {
    const code = readFileSync(join(dist, file), 'utf8');
    const specifiers = [
      ...code.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(['"]([^'"]+)['"]\)/g),
    ].map((m) => m[1] ?? m[2] ?? '');
    t.same(
      specifiers.filter((s) => !allowed.test(s)),
      [],
      `${file} imports only ${[...new Set(specifiers)].join(', ')}`,
    );
  }
  t.equal(
    readFileSync(join(PKG, 'proto/otesse/keys/v1/keys.proto'), 'utf8'),
    readFileSync(join(ROOT, 'proto/otesse/keys/v1/keys.proto'), 'utf8'),
    'the shipped proto is the contract',
  );
});

t.test('every DenyReason of the proto has a row in the one table', async (t) => {
  const def = protoLoader.loadSync('otesse/keys/v1/keys.proto', { includeDirs: [join(ROOT, 'proto')] });
  const values = (def['otesse.keys.v1.DenyReason'] as { type: { value: { name: string }[] } }).type.value.map(
    (v) => v.name,
  );
  for (const reason of values.filter((v) => v !== 'DENY_REASON_UNSPECIFIED')) {
    t.ok(
      (DENY_REASONS as readonly string[]).includes(reason) && reason in DENIALS,
      `${reason} is mapped (${denialResponse(reason).status})`,
    );
  }
  t.same(
    ['RATE_LIMITED', 'USAGE_EXCEEDED', 'KEY_DISABLED'].map((r) => denialResponse(r).status),
    [429, 429, 401],
    'announced reasons are mapped already',
  );
  t.equal(denialResponse('SOMETHING_NEW').status, 401, 'a reason from a newer service is still a deny');
});

t.test(
  'the most uses one call decides: the client coalesces no more than the service accepts and the proto states',
  async (t) => {
    const proto = readFileSync(join(ROOT, 'proto/otesse/keys/v1/keys.proto'), 'utf8');
    const stated = /\/\/ At most (\d+)\.\n\s*uint32 uses = \d+;/.exec(proto)?.[1];
    t.equal(CLIENT_MAX_USES, SERVICE_MAX_USES, "the client's batch bound is the service's");
    t.equal(Number(stated), SERVICE_MAX_USES, 'the proto documents the same bound on `uses`');
  },
);

t.test('the gateway variables are validated at start', async (t) => {
  const base = { ADMIN_TOKENS: 'a:0123456789abcdef0123' };
  t.same(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, 192.0.2.1,2001:db8::/32' }).TRUST_PROXY, [
    '10.0.0.0/8',
    '192.0.2.1',
    '2001:db8::/32',
  ]);
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/33' }), { message: /^TRUST_PROXY: / });
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: 'everyone' }), { message: /^TRUST_PROXY: / });
  t.throws(() => loadConfig({ ...base, FORWARD_AUTH_PORT: '70000' }), { message: /^FORWARD_AUTH_PORT: / });
  t.equal(loadConfig(base).FORWARD_AUTH_PORT, undefined, 'forward auth is off by default');
});

t.test('without @opentelemetry/api installed the package still loads and calls', async (t) => {
  // A resolve hook that finds no @opentelemetry/api, as in a caller that does not trace.
  const hook = `data:text/javascript,export async function resolve(s, c, next) {
    if (s === '@opentelemetry/api') throw Object.assign(new Error('not installed'), { code: 'ERR_MODULE_NOT_FOUND' });
    return next(s, c);
  }`;
  const script = `
    import { register } from 'node:module';
    register(${JSON.stringify(hook)});
    const { KeyServiceClient } = await import('@otesse/keys-client');
    const client = new KeyServiceClient({ address: '127.0.0.1:1', deadlineMs: 200 });
    const failed = await client.authenticate({ key: 'x', ip: '127.0.0.1', scope: 'bookings:read' }).then(() => 'answered', (e) => e.name);
    client.close();
    let api = 'missing';
    await import('@opentelemetry/api').then(() => { api = 'loaded'; }, () => {});
    console.log(JSON.stringify({ failed, api }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  t.same(
    JSON.parse(out.trim()),
    { failed: 'KeyServiceUnavailableError', api: 'missing' },
    'the call runs (and fails closed) with no OpenTelemetry API',
  );
});
