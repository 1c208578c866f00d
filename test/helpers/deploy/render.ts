// Rendering and strict YAML parsing for the deploy tests.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { kustomize } from '../../../scripts/kubectl.mjs';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const k8sRoot = join(projectRoot, 'k8s');

/** The kustomizations that must render: the base and every overlay. */
export function kustomizations(): string[] {
  const overlays = readdirSync(join(k8sRoot, 'overlays'))
    .filter((name) => statSync(join(k8sRoot, 'overlays', name)).isDirectory())
    .sort()
    .map((name) => `overlays/${name}`);
  return ['base', ...overlays];
}

/** Every YAML file under k8s/ (relative to the project root). */
export function yamlFiles(dir: string = k8sRoot): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(relative(projectRoot, path));
  }
  return out.sort();
}

export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
};

/**
 * Parses a YAML stream strictly: duplicate keys, syntax errors and warnings all throw, so the
 * duplicate-key check never depends on yamllint being installed.
 */
export function parseYamlStrict(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  if (!Array.isArray(docs)) throw new Error(`${source}: not a YAML document stream`);
  const values: unknown[] = [];
  for (const doc of docs) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      throw new Error(`${source}: ${problems.map((p) => p.message).join('; ')}`);
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

export function isK8sObject(value: unknown): value is K8sObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  const meta = v['metadata'];
  return (
    typeof v['apiVersion'] === 'string' &&
    typeof v['kind'] === 'string' &&
    typeof meta === 'object' &&
    meta !== null &&
    typeof (meta as Record<string, unknown>)['name'] === 'string'
  );
}

/** `kubectl kustomize k8s/<dir>` parsed into objects. */
export function render(dir: string): K8sObject[] {
  const text = kustomize(join(k8sRoot, dir));
  return parseYamlStrict(text, `kustomize ${dir}`).map((value, index) => {
    if (!isK8sObject(value)) throw new Error(`kustomize ${dir}: document ${index} is not a Kubernetes object`);
    return value;
  });
}

export function label(obj: K8sObject): string {
  return `${obj.apiVersion} ${obj.kind} ${obj.metadata.name}`;
}
