// Offline checks of the Dockerfile and .dockerignore: dockerfile-utils lint (errors fail)
// and the project's policy (dockerfile-ast), with a failing example per policy rule.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerfilePolicy, libcFamily, lintErrors, parseImageRef } from '../helpers/deploy/dockerfile-policy.js';
import { projectRoot } from '../helpers/deploy/render.js';

const dockerfile = readFileSync(join(projectRoot, 'Dockerfile'), 'utf8');

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;
const BUILD = `node:20.19.0-bookworm-slim@${DIGEST_A}`;
const RUNTIME = `gcr.io/distroless/nodejs20-debian12:nonroot@${DIGEST_B}`;
/** A compliant Dockerfile; each negative case changes one thing. */
const good = [
  `FROM ${BUILD} AS build`,
  'WORKDIR /app',
  'COPY package.json package-lock.json ./',
  'RUN npm ci --ignore-scripts',
  'COPY src ./src',
  'RUN npm run build',
  `FROM ${RUNTIME}`,
  'WORKDIR /app',
  'COPY --from=build /app/dist ./dist',
  'USER 65532:65532',
  'ENTRYPOINT ["/nodejs/bin/node"]',
  'CMD ["dist/src/main.js"]',
  '',
].join('\n');

t.test('the Dockerfile passes dockerfile-utils lint', async (t) => {
  t.same(lintErrors(dockerfile), []);
  t.not(lintErrors('FROM\nRUN\n').length, 0, 'lint reports errors for a broken Dockerfile');
  t.match(
    lintErrors(good.replace('COPY src ./src', 'COPY --chwn=1 src ./src')).map((f) => f.message),
    ['Unknown flag: chwn'],
    'lint reports a misspelt flag',
  );
  t.match(
    lintErrors(good.replace('WORKDIR /app', 'WROKDIR /app')).map((f) => f.message),
    [/Unknown instruction/],
    'lint reports a misspelt instruction',
  );
});

t.test('the Dockerfile follows the policy', async (t) => {
  t.same(dockerfilePolicy(dockerfile), []);
  t.same(dockerfilePolicy(good), [], 'the reference example passes too');
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1] ?? '');
  t.ok(froms.length >= 2, 'multi-stage');
  t.ok(
    froms.every((f) => libcFamily(f) === 'glibc/debian12'),
    `all stages glibc Debian 12: ${froms.join(', ')}`,
  );
  t.ok(
    froms.every((f) => /^node:24\.|nodejs24-/.test(f)),
    `every stage on Node 24, the current LTS (the .ci/run suite runs on it too): ${froms.join(', ')}`,
  );
  t.match(dockerfile, /npm ci --omit=dev/, 'the runtime gets production dependencies only');
  t.match(dockerfile, /--ignore-scripts/, 'the prepare script is not run by npm ci');
});

t.test('the compiler and type packages are dev dependencies, so the image needs to delete nothing', async (t) => {
  const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const buildOnly = (name: string) => name === 'typescript' || name.startsWith('@types/');
  t.same(
    Object.keys(pkg.dependencies).filter(buildOnly),
    [],
    'no typescript or @types/* among the runtime dependencies',
  );
  t.ok('typescript' in pkg.devDependencies, 'typescript is a dev dependency (the build stage installs it)');
  t.notMatch(dockerfile, /rm\s+-\S*r\S*\s+[^\n]*node_modules/, 'no package is removed from node_modules after npm ci');
});

t.test('each policy rule can fail', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['unpinned tag', good.replace(`${BUILD}`, 'node:20-bookworm-slim'), 'pinned-from'],
    ['latest tag', good.replace(`${BUILD}`, `node:latest@${DIGEST_A}`), 'pinned-from'],
    ['variable base image', good.replace(`FROM ${RUNTIME}`, `ARG BASE=x\nFROM $BASE`), 'pinned-from'],
    ['musl build stage', good.replace(`${BUILD}`, `node:20.19.0-alpine3.21@${DIGEST_A}`), 'same-libc'],
    ['unknown runtime libc', good.replace(`${RUNTIME}`, `scratch:1@${DIGEST_B}`), 'same-libc'],
    ['npm install', good.replace('npm ci --ignore-scripts', 'npm install'), 'npm-ci'],
    ['named user', good.replace('USER 65532:65532', 'USER nonroot'), 'numeric-user'],
    ['root user', good.replace('USER 65532:65532', 'USER 0'), 'numeric-user'],
    ['no user', good.replace('USER 65532:65532\n', ''), 'numeric-user'],
    ['shell-form CMD', good.replace('CMD ["dist/src/main.js"]', 'CMD node dist/src/main.js'), 'exec-form'],
    [
      'shell-form ENTRYPOINT',
      good.replace('ENTRYPOINT ["/nodejs/bin/node"]', 'ENTRYPOINT /nodejs/bin/node'),
      'exec-form',
    ],
    ['HEALTHCHECK', `${good}HEALTHCHECK CMD ["/nodejs/bin/node", "-e", "1"]\n`, 'no-healthcheck'],
    [
      'ADD of a URL',
      good.replace('WORKDIR /app\nCOPY --from', 'WORKDIR /app\nADD https://example.com/x.tgz /x.tgz\nCOPY --from'),
      'no-add-url',
    ],
    ['single stage', `FROM ${RUNTIME}\nRUN ["npm", "ci"]\nUSER 65532\nCMD ["x.js"]\n`, 'multi-stage'],
    [
      'shell in the runtime stage',
      good.replace('USER 65532:65532', 'RUN chmod -R a+w /app\nUSER 65532:65532'),
      'no-shell-runtime',
    ],
  ];
  for (const [name, content, rule] of cases) {
    t.ok(
      dockerfilePolicy(content).some((f) => f.rule === rule),
      `${name}: violates ${rule}`,
    );
  }
});

t.test('image reference parsing', async (t) => {
  t.same(parseImageRef(`localhost:5000/a/b:1.2@${DIGEST_A}`), {
    name: 'localhost:5000/a/b',
    tag: '1.2',
    digest: DIGEST_A,
  });
  t.same(parseImageRef('node'), { name: 'node', tag: null, digest: null });
  t.equal(libcFamily('node:20-alpine'), 'musl');
});

t.test('.dockerignore keeps the context to what the build copies', async (t) => {
  const lines = readFileSync(join(projectRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  t.equal(lines[0], '*', 'allow-list: everything is excluded first');
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const copied = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)]
    .flatMap((m) => (m[1] ?? '').trim().split(/\s+/).slice(0, -1))
    .filter((s) => !s.startsWith('--'));
  t.ok(copied.length > 0, `the build copies ${copied.join(', ')}`);
  for (const source of copied) {
    t.ok(allowed.includes(source.replace(/\/$/, '')), `${source} is in the build context`);
  }
  for (const never of ['node_modules', 'dist', 'data', '.git', 'test', 'k8s', 'bench']) {
    t.notOk(allowed.includes(never), `${never} stays out of the context`);
  }
  t.ok(lines.includes('**/node_modules'), 'no nested node_modules either');
});
