// Proves that the manifest checks can fail: each mutation of a rendered object must be
// rejected by the schema validation or by the platform rules.
import t from 'tap';
import { manifestPolicy } from '../helpers/deploy/k8s-policy.js';
import { schemaErrors, typecheckObjects, validateModel } from '../helpers/deploy/k8s-schema.js';
import type { K8sObject } from '../helpers/deploy/render.js';
import { render } from '../helpers/deploy/render.js';

const staging = render('overlays/staging');
const production = render('overlays/production');

type Json = Record<string, unknown>;
/** Navigates into a cloned object; throws when the path is missing, so a test cannot go vacuous. */
function at(root: unknown, path: Array<string | number>): Json {
  let node: unknown = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) throw new Error(`no ${path.join('.')}`);
    node = (node as Record<string | number, unknown>)[key];
  }
  if (typeof node !== 'object' || node === null) throw new Error(`no ${path.join('.')}`);
  return node as Json;
}
function pick(objects: readonly K8sObject[], kind: string): K8sObject {
  const found = objects.find((o) => o.kind === kind);
  if (!found) throw new Error(`no ${kind}`);
  return structuredClone(found);
}
/** A copy of the overlay with one object replaced (or added). */
function withObject(objects: readonly K8sObject[], changed: K8sObject): K8sObject[] {
  const rest = objects.filter((o) => !(o.kind === changed.kind && o.metadata.name === changed.metadata.name));
  return [...rest.map((o) => structuredClone(o)), changed];
}
const container = ['spec', 'template', 'spec', 'containers', 0];

t.test('the unmodified objects are valid (baseline)', async (t) => {
  t.same(schemaErrors(staging), []);
  t.same(manifestPolicy(staging), []);
  t.same(manifestPolicy(production), []);
});

t.test('schema: a misspelt nested field is rejected', async (t) => {
  const dep = pick(staging, 'Deployment');
  const probe = at(dep, [...container, 'readinessProbe']);
  probe['grcp'] = probe['grpc'];
  delete probe['grpc'];
  const found = typecheckObjects([dep]);
  t.match(
    found.map((f) => f.message).join('\n'),
    /'grcp' does not exist in type 'Probe'/,
    'readinessProbe.grcp rejected',
  );
  t.comment(
    `kubernetes-models alone: ${validateModel(dep).length === 0 ? 'accepts it (hence the type check)' : 'rejects it'}`,
  );
  t.not(schemaErrors([dep]).length, 0);
});

t.test('schema: a misspelt top-level spec field is rejected', async (t) => {
  const dep = pick(staging, 'Deployment');
  const spec = at(dep, ['spec']);
  spec['replica'] = spec['replicas'];
  delete spec['replicas'];
  t.match(
    typecheckObjects([dep])
      .map((f) => f.message)
      .join('\n'),
    /'replica' does not exist in type 'DeploymentSpec'/,
  );

  const svc = pick(staging, 'Service');
  at(svc, ['spec'])['clusterIp'] = 'None';
  t.match(
    typecheckObjects([svc])
      .map((f) => f.message)
      .join('\n'),
    /'clusterIp' does not exist/,
    'Service spec.clusterIp rejected',
  );

  const meta = pick(staging, 'ConfigMap');
  (meta as Json)['metdata'] = meta.metadata;
  t.match(
    typecheckObjects([meta])
      .map((f) => f.message)
      .join('\n'),
    /'metdata' does not exist/,
    'top-level metdata rejected',
  );

  const sc = pick(staging, 'Deployment');
  at(sc, [...container, 'securityContext'])['readOnlyRootFileSystem'] = true;
  t.match(
    typecheckObjects([sc])
      .map((f) => f.message)
      .join('\n'),
    /'readOnlyRootFileSystem' does not exist/,
    'wrong case is a misspelling too',
  );
});

t.test('schema: a wrong type is rejected by both validators', async (t) => {
  const dep = pick(staging, 'Deployment');
  at(dep, ['spec'])['replicas'] = '3';
  t.not(validateModel(dep).length, 0, 'kubernetes-models rejects replicas: "3"');
  t.not(typecheckObjects([dep]).length, 0, 'the type check rejects replicas: "3"');

  const port = pick(staging, 'Deployment');
  at(port, [...container, 'readinessProbe', 'grpc'])['port'] = 'grpc';
  t.not(schemaErrors([port]).length, 0, 'grpc probe port must be a number');
});

t.test('schema: missing required fields, removed API versions, unknown kinds', async (t) => {
  const dep = pick(staging, 'Deployment');
  delete at(dep, container)['name'];
  t.not(validateModel(dep).length, 0, 'container without a name');

  const hpa = pick(staging, 'HorizontalPodAutoscaler');
  hpa.apiVersion = 'autoscaling/v2beta2';
  t.not(schemaErrors([hpa]).length, 0, 'autoscaling/v2beta2 (removed in 1.26) is rejected');

  const odd = pick(staging, 'ConfigMap');
  odd.kind = 'ConfigMapp';
  t.not(schemaErrors([odd]).length, 0, 'unknown kind is rejected');
});

t.test('platform rules: each mutation is a violation', async (t) => {
  const cases: Array<[string, (objects: K8sObject[]) => K8sObject[], RegExp]> = [
    [
      'replicas below 3',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, ['spec'])['replicas'] = 2;
        return withObject(o, d);
      },
      /replicas must be at least 3/,
    ],
    [
      'maxUnavailable 1',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, ['spec', 'strategy', 'rollingUpdate'])['maxUnavailable'] = 1;
        return withObject(o, d);
      },
      /maxUnavailable 0/,
    ],
    [
      'readiness on the liveness service',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, [...container, 'readinessProbe', 'grpc'])['service'] = 'liveness';
        return withObject(o, d);
      },
      /readinessProbe must be a grpc probe/,
    ],
    [
      'no startup probe',
      (o) => {
        const d = pick(o, 'Deployment');
        delete at(d, container)['startupProbe'];
        return withObject(o, d);
      },
      /startupProbe is missing/,
    ],
    [
      'writable root filesystem',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, [...container, 'securityContext'])['readOnlyRootFilesystem'] = false;
        return withObject(o, d);
      },
      /readOnlyRootFilesystem/,
    ],
    [
      'capabilities kept',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, [...container, 'securityContext', 'capabilities'])['drop'] = ['NET_RAW'];
        return withObject(o, d);
      },
      /drop ALL/,
    ],
    [
      'root user',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, ['spec', 'template', 'spec', 'securityContext'])['runAsUser'] = 0;
        at(d, [...container, 'securityContext'])['runAsUser'] = 0;
        return withObject(o, d);
      },
      /numeric non-zero uid/,
    ],
    [
      'no /tmp emptyDir',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, container)['volumeMounts'] = [];
        return withObject(o, d);
      },
      /\/tmp must be an emptyDir/,
    ],
    [
      'no preStop sleep',
      (o) => {
        const d = pick(o, 'Deployment');
        delete at(d, container)['lifecycle'];
        return withObject(o, d);
      },
      /preStop/,
    ],
    [
      'grace too short',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, ['spec', 'template', 'spec'])['terminationGracePeriodSeconds'] = 20;
        return withObject(o, d);
      },
      /terminationGracePeriodSeconds/,
    ],
    [
      'secret as a literal',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, container)['env'] = [{ name: 'DATABASE_URL', value: 'postgres://u:p@db/x' }];
        return withObject(o, d);
      },
      /DATABASE_URL must come from a secretKeyRef/,
    ],
    [
      'a committed Secret',
      (o) => [
        ...o,
        { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'otesse-keys' }, stringData: { 'database-url': 'x' } },
      ],
      /Secret objects must not be committed/,
    ],
    [
      'token automounted',
      (o) => {
        const s = pick(o, 'ServiceAccount');
        (s as Json)['automountServiceAccountToken'] = true;
        return withObject(o, s);
      },
      /automountServiceAccountToken/,
    ],
    ['no headless Service', (o) => o.filter((x) => x.metadata.name !== 'otesse-keys-headless'), /headless Service/],
    ['no migration Job', (o) => o.filter((x) => x.kind !== 'Job'), /dist\/src\/migrate\.js/],
    [
      'HPA min 1',
      (o) => {
        const h = pick(o, 'HorizontalPodAutoscaler');
        at(h, ['spec'])['minReplicas'] = 1;
        return withObject(o, h);
      },
      /minReplicas must be at least 3/,
    ],
    ['no PDB', (o) => o.filter((x) => x.kind !== 'PodDisruptionBudget'), /PodDisruptionBudget/],
    [
      'gRPC open to everyone',
      (o) => {
        const n = pick(o, 'NetworkPolicy');
        const ingress = at(n, ['spec'])['ingress'] as Json[];
        (ingress[0] as Json)['from'] = [{ namespaceSelector: {} }];
        return withObject(o, n);
      },
      /port 50051 may only admit/,
    ],
    [
      'admin port open to workloads',
      (o) => {
        const n = pick(o, 'NetworkPolicy');
        const ingress = at(n, ['spec'])['ingress'] as Json[];
        ((ingress[1] as Json)['from'] as Json[]).push({
          podSelector: { matchLabels: { 'otesse.io/workload': 'true' } },
        });
        return withObject(o, n);
      },
      /port 8080 may only admit/,
    ],
    [
      'no zone spread',
      (o) => {
        const d = pick(o, 'Deployment');
        const spec = at(d, ['spec', 'template', 'spec']);
        spec['topologySpreadConstraints'] = (spec['topologySpreadConstraints'] as Json[]).slice(1);
        return withObject(o, d);
      },
      /topology\.kubernetes\.io\/zone/,
    ],
    [
      'argon2 concurrency above the CPU limit',
      (o) => {
        const d = pick(o, 'Deployment');
        (at(d, container)['env'] as Json[]).push({ name: 'ARGON2_MAX_CONCURRENCY', value: '8' });
        return withObject(o, d);
      },
      /ARGON2_MAX_CONCURRENCY/,
    ],
    [
      'no scrape annotations',
      (o) => {
        const d = pick(o, 'Deployment');
        at(d, ['spec', 'template', 'metadata'])['annotations'] = {};
        return withObject(o, d);
      },
      /prometheus\.io/,
    ],
  ];
  for (const [name, mutate, expected] of cases) {
    t.match(manifestPolicy(mutate(staging.map((o) => structuredClone(o)))).join('\n'), expected, name);
  }
  // With gRPC mTLS the kubelet (plaintext) can only probe the health-only port.
  const prodCases: Array<[string, (d: K8sObject) => void, RegExp]> = [
    [
      'grpc probe on the mTLS port',
      (d) => {
        at(d, [...container, 'readinessProbe', 'grpc'])['port'] = 50051;
      },
      /readinessProbe probes 50051, but gRPC requires TLS/,
    ],
    [
      'HTTP probes instead of grpc',
      (d) => {
        for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe'])
          at(d, container)[p] = { httpGet: { path: '/healthz', port: 'http' } };
      },
      /livenessProbe must be a native grpc probe/,
    ],
    [
      'no GRPC_HEALTH_PORT',
      (d) => {
        const c = at(d, container);
        c['env'] = (c['env'] as Json[]).filter((e) => e['name'] !== 'GRPC_HEALTH_PORT');
      },
      /gRPC requires TLS and kubelet probes are plaintext: set GRPC_HEALTH_PORT/,
    ],
    [
      'health port not declared',
      (d) => {
        const c = at(d, container);
        c['ports'] = (c['ports'] as Json[]).filter((p) => p['name'] !== 'grpc-health');
      },
      /GRPC_HEALTH_PORT 50052 must be a declared containerPort named grpc-health/,
    ],
    [
      'health port on the gRPC port',
      (d) => {
        const c = at(d, container);
        c['env'] = (c['env'] as Json[]).map((e) =>
          e['name'] === 'GRPC_HEALTH_PORT' ? { name: 'GRPC_HEALTH_PORT', value: '50051' } : e,
        );
      },
      /GRPC_HEALTH_PORT \(50051\) must be a port of its own/,
    ],
    [
      'probe on a port that is not the health port',
      (d) => {
        at(d, [...container, 'startupProbe', 'grpc'])['port'] = 50053;
      },
      /startupProbe must be a grpc probe on 50052/,
    ],
  ];
  for (const [name, mutate, expected] of prodCases) {
    const d = pick(production, 'Deployment');
    mutate(d);
    t.match(manifestPolicy(withObject(production, d)).join('\n'), expected, `production: ${name}`);
  }
  const httpStaging = pick(staging, 'Deployment');
  at(httpStaging, container)['readinessProbe'] = { httpGet: { path: '/readyz', port: 8080 } };
  t.match(
    manifestPolicy(withObject(staging, httpStaging)).join('\n'),
    /readinessProbe must be a native grpc probe/,
    'staging: an HTTP probe',
  );
  const opened = pick(production, 'NetworkPolicy');
  (at(opened, ['spec'])['ingress'] as Json[]).push({
    ports: [{ port: 50052, protocol: 'TCP' }],
    from: [{ podSelector: {} }],
  });
  t.match(
    manifestPolicy(withObject(production, opened)).join('\n'),
    /unexpected ingress port 50052/,
    'the health port is not opened to pods',
  );
  const noVolume = pick(production, 'Deployment');
  at(noVolume, container)['volumeMounts'] = [{ name: 'tmp', mountPath: '/tmp' }];
  t.match(
    manifestPolicy(withObject(production, noVolume)).join('\n'),
    /GRPC_TLS_CA=.* must point into a mounted Secret volume/,
    'TLS files not mounted',
  );
});
