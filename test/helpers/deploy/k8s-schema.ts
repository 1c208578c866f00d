// Schema validation of rendered Kubernetes objects, two ways:
//  1. kubernetes-models .validate(): wrong types, missing required fields, bad enums/formats.
//  2. kubernetes-types + the TypeScript compiler: each object is written as a typed object
//     literal and type-checked with --strict; excess-property checks reject misspelt or unknown
//     field names at any depth, and an apiVersion/kind that the API no longer has fails to
//     resolve. kubernetes-models does not reject unknown fields, hence both.
import { join } from 'node:path';
import ts from 'typescript';
import { Namespace, ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { K8sObject } from './render.js';
import { label, projectRoot } from './render.js';

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/** The kinds this project ships. A new kind must be added here (and so gets checked). */
const models: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'networking.k8s.io/v1/Ingress': Ingress,
};

/** kubernetes-models validation; returns error messages (empty = valid). */
export function validateModel(obj: K8sObject): string[] {
  const Model = models[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) return [`${label(obj)}: no schema model for ${obj.apiVersion} ${obj.kind}`];
  try {
    new Model(structuredClone(obj) as never).validate();
    return [];
  } catch (error) {
    return [`${label(obj)}: ${error instanceof Error ? error.message : String(error)}`];
  }
}

/** Module of kubernetes-types that declares an apiVersion's types. */
function typesModule(apiVersion: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const dir = group === '' ? 'core' : (group ?? '').split('.')[0];
  return `kubernetes-types/${dir}/${version}`;
}

const virtualDir = join(projectRoot, '.k8s-typecheck');

const compilerOptions: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
  lib: ['lib.es5.d.ts'],
  target: ts.ScriptTarget.ES2020,
  module: ts.ModuleKind.CommonJS,
  moduleResolution: ts.ModuleResolutionKind.Node10,
};

export interface TypeFinding {
  object: string;
  message: string;
}

/**
 * Type-checks every object as `const o: <Kind> = <object literal>` against kubernetes-types
 * with tsc --strict, in memory (no files written). One compiler run for all objects. tsc reports
 * the first unknown field of each object literal; fixing it may reveal the next.
 */
export function typecheckObjects(objects: readonly K8sObject[]): TypeFinding[] {
  const sources = new Map<string, { text: string; object: string }>();
  objects.forEach((obj, index) => {
    const file = join(virtualDir, `o${index}.ts`);
    const text =
      `import type { ${obj.kind} as T } from '${typesModule(obj.apiVersion)}';\n` +
      `export const o: T = ${JSON.stringify(obj, null, 2)};\n`;
    sources.set(file, { text, object: label(obj) });
  });
  const host = ts.createCompilerHost(compilerOptions, true);
  // The host's own methods, bound to it, for every file that is not one of ours.
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.fileExists = (file) => sources.has(file) || fileExists(file);
  host.readFile = (file) => sources.get(file)?.text ?? readFile(file);
  host.getSourceFile = (file, languageVersion, onError, shouldCreate) => {
    const source = sources.get(file);
    return source
      ? ts.createSourceFile(file, source.text, languageVersion, true)
      : getSourceFile(file, languageVersion, onError, shouldCreate);
  };
  const program = ts.createProgram([...sources.keys()], compilerOptions, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const source = d.file ? sources.get(d.file.fileName) : undefined;
    let where = '';
    if (d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      where = ` (line ${line + 1}: ${d.file.text.split('\n')[line]?.trim() ?? ''})`;
    }
    return {
      object: source?.object ?? d.file?.fileName ?? 'compiler',
      // JSON keys are quoted in the generated literal: '"grcp"' reads better as 'grcp'.
      message: ts.flattenDiagnosticMessageText(d.messageText, '\n').replace(/'"([^"']+)"'/g, "'$1'") + where,
    };
  });
}

/** Both checks together: a flat list of messages (empty = valid). */
export function schemaErrors(objects: readonly K8sObject[]): string[] {
  return [...objects.flatMap(validateModel), ...typecheckObjects(objects).map((f) => `${f.object}: ${f.message}`)];
}
