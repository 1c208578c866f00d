// Offline checks of k8s/: every kustomization renders, every YAML parses strictly (no
// duplicate keys), every rendered object passes schema validation (types, required fields and
// unknown/misspelt field names) and the platform rules.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseImageRef } from '../helpers/deploy/dockerfile-policy.js';
import { manifestPolicy } from '../helpers/deploy/k8s-policy.js';
import { schemaErrors } from '../helpers/deploy/k8s-schema.js';
import type { K8sObject } from '../helpers/deploy/render.js';
import { kustomizations, label, parseYamlStrict, projectRoot, render, yamlFiles } from '../helpers/deploy/render.js';

const rendered = new Map<string, K8sObject[]>();

t.test('every kustomization renders with kubectl kustomize', async (t) => {
  const dirs = kustomizations();
  t.ok(
    dirs.includes('overlays/staging') && dirs.includes('overlays/production'),
    'staging and production overlays exist',
  );
  for (const dir of dirs) {
    const objects = render(dir);
    rendered.set(dir, objects);
    t.ok(objects.length > 0, `${dir} renders ${objects.length} objects`);
    const names = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    t.same(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      `${dir}: no duplicate objects`,
    );
  }
  for (const dir of dirs.filter((d) => d.startsWith('overlays/'))) {
    const objects = rendered.get(dir) ?? [];
    const namespaced = objects.filter((o) => o.kind !== 'Namespace');
    const namespaces = new Set(namespaced.map((o) => o.metadata.namespace));
    t.equal(namespaces.size, 1, `${dir}: every object in one namespace`);
    t.ok(
      objects.some((o) => o.kind === 'Namespace' && namespaces.has(o.metadata.name)),
      `${dir}: ships its Namespace`,
    );
  }
});

t.test('YAML sources parse strictly (duplicate keys fail)', async (t) => {
  const files = yamlFiles();
  t.ok(files.length >= 10, `${files.length} YAML files under k8s/`);
  for (const file of files) {
    t.doesNotThrow(() => parseYamlStrict(readFileSync(join(projectRoot, file), 'utf8'), file), file);
  }
  t.throws(
    () => parseYamlStrict('a: 1\nb: 2\na: 3\n', 'dup.yaml'),
    /dup\.yaml/,
    'the strict parser rejects a duplicate key',
  );
});

const yamllint = spawnSync('yamllint', ['--version'], { encoding: 'utf8' });
const noYamllint =
  yamllint.error !== undefined || yamllint.status !== 0
    ? 'yamllint is not installed (apt-get install yamllint); duplicate keys are still checked by the strict YAML parse'
    : false;

t.test('yamllint (when installed)', { skip: noYamllint }, async (t) => {
  const config = JSON.stringify({
    extends: 'default',
    rules: {
      'line-length': { max: 120 },
      'document-start': 'disable',
      comments: { 'min-spaces-from-content': 1 },
      truthy: { 'check-keys': false },
    },
  });
  const files = yamlFiles();
  const result = spawnSync('yamllint', ['-f', 'parsable', '-d', config, ...files], {
    cwd: projectRoot,
    encoding: 'utf8',
  });
  t.equal(result.status, 0, `yamllint is clean\n${result.stdout}${result.stderr}`);
  const dup = spawnSync('yamllint', ['-d', config, '-'], { input: 'a: 1\na: 2\n', encoding: 'utf8' });
  t.not(dup.status, 0, 'yamllint rejects a duplicate key');
});

t.test('rendered objects pass schema validation', async (t) => {
  const all = [...rendered.values()].flat();
  t.ok(all.length > 0, 'objects were rendered');
  const errors = schemaErrors(all);
  t.same(errors, [], 'kubernetes-models validate() and kubernetes-types strict type check');
});

t.test('rendered objects follow the platform rules', async (t) => {
  for (const [dir, objects] of rendered) {
    t.same(manifestPolicy(objects), [], `${dir}: platform rules`);
  }
});

type Json = Record<string, any>;
/** The server pods' NetworkPolicy egress rules of a fresh copy of a rendered overlay, to break one thing at a time. */
function withEgress(dir: string, mutate: (egress: Json[]) => void): K8sObject[] {
  const objects = (rendered.get(dir) ?? []).map((o) => structuredClone(o));
  const policy = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'otesse-keys') as
    Json | undefined;
  if (!policy) throw new Error(`${dir}: no NetworkPolicy otesse-keys`);
  mutate(policy['spec'].egress as Json[]);
  return objects;
}

t.test('egress goes to DNS, PostgreSQL, Redis and HTTPS on public addresses only; each widening fails', async (t) => {
  const ruleOn = (port: number) => (egress: Json[]) =>
    egress.find((r) => r.ports.some((p: Json) => p.port === port)) as Json;
  const [dns, stores, https] = [ruleOn(53), ruleOn(5432), ruleOn(443)];
  const cases: Array<[string, (egress: Json[]) => void, RegExp]> = [
    [
      'egress not governed at all',
      (e) => {
        e.length = 0;
      },
      /no egress rule for UDP\/53/,
    ],
    [
      'a rule open to everything',
      (e) => {
        e.push({});
      },
      /must name its ports.*\n.*must name its destinations/,
    ],
    [
      'every port to one address',
      (e) => {
        e.push({ to: [{ ipBlock: { cidr: '203.0.113.7/32' } }] });
      },
      /must name its ports/,
    ],
    [
      'a port to every address',
      (e) => {
        e.push({ ports: [{ port: 443, protocol: 'TCP' }] });
      },
      /must name its destinations/,
    ],
    [
      'a port outside the list',
      (e) => {
        e.push({ ports: [{ port: 8080, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '203.0.113.0/24' } }] });
      },
      /egress to TCP\/8080 is not in the list/,
    ],
    [
      'a port range',
      (e) => {
        https(e).ports = [{ port: 443, endPort: 8443, protocol: 'TCP' }];
      },
      /egress to TCP\/443-8443 is not in the list/,
    ],
    [
      'DNS over UDP to any port',
      (e) => {
        dns(e).ports.push({ protocol: 'UDP' });
      },
      /egress to UDP\/every port is not in the list/,
    ],
    [
      '443 to the whole internet, private ranges included',
      (e) => {
        https(e).to = [{ ipBlock: { cidr: '0.0.0.0/0' } }];
      },
      /egress to TCP\/443 may only reach public addresses/,
    ],
    [
      '443 to the cloud metadata address',
      (e) => {
        https(e).to[0].ipBlock.except = https(e).to[0].ipBlock.except.filter((c: string) => c !== '169.254.0.0/16');
      },
      /TCP\/443 may only reach public/,
    ],
    [
      '443 to a private range',
      (e) => {
        https(e).to.push({ ipBlock: { cidr: '10.20.0.0/16' } });
      },
      /TCP\/443 may only reach public/,
    ],
    [
      '443 to every pod of the cluster',
      (e) => {
        https(e).to.push({ namespaceSelector: {} });
      },
      /TCP\/443 may only reach public/,
    ],
    [
      'IPv6 443 with unique-local addresses',
      (e) => {
        https(e).to[1].ipBlock.except = ['fe80::/10'];
      },
      /TCP\/443 may only reach public/,
    ],
    [
      'PostgreSQL on public addresses',
      (e) => {
        stores(e).to.push({ ipBlock: { cidr: '0.0.0.0/0' } });
      },
      /egress to TCP\/5432 may only reach private addresses or cluster pods/,
    ],
    [
      'DNS to every pod',
      (e) => {
        dns(e).to = [{ namespaceSelector: {} }];
      },
      /egress to UDP\/53 may only reach the cluster DNS/,
    ],
    [
      'DNS to a resolver range',
      (e) => {
        dns(e).to = [{ ipBlock: { cidr: '0.0.0.0/0' } }];
      },
      /egress to UDP\/53 may only reach the cluster DNS/,
    ],
  ];
  for (const dir of ['overlays/staging', 'overlays/production']) {
    t.same(
      manifestPolicy(withEgress(dir, () => undefined)).filter((v) => /egress|Egress/.test(v)),
      [],
      `${dir}: the shipped egress passes`,
    );
    for (const [name, mutate, expected] of cases)
      t.match(manifestPolicy(withEgress(dir, mutate)).join('\n'), expected, `${dir}: ${name}`);
    const open = (rendered.get(dir) ?? []).map((o) => structuredClone(o)) as Json[];
    const policy = open.find((o) => o.kind === 'NetworkPolicy');
    policy!['spec'].policyTypes = ['Ingress'];
    t.match(
      manifestPolicy(open as K8sObject[]).join('\n'),
      /policyTypes must include Egress/,
      `${dir}: egress left ungoverned`,
    );
  }
});

t.test('staging and production differ as intended', async (t) => {
  const deployment = (dir: string) => rendered.get(dir)?.find((o) => o.kind === 'Deployment');
  const hpa = (dir: string) => rendered.get(dir)?.find((o) => o.kind === 'HorizontalPodAutoscaler');
  const prod = JSON.stringify(deployment('overlays/production'));
  const staging = JSON.stringify(deployment('overlays/staging'));
  t.match(prod, /"secretName":"otesse-keys-grpc-tls"/, 'production mounts the gRPC mTLS Secret');
  t.match(prod, /"name":"GRPC_TLS_CA"/, 'production requires client certificates (GRPC_TLS_CA)');
  t.notMatch(staging, /GRPC_TLS/, 'staging serves plaintext gRPC (native grpc probes)');
  const probes = (dir: string) => {
    const c =
      (
        deployment(dir)?.['spec'] as {
          template: { spec: { containers: Array<Record<string, { grpc?: { port: number } }>> } };
        }
      ).template.spec.containers[0] ?? {};
    return ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => c[p]?.grpc?.port);
  };
  t.same(
    probes('overlays/production'),
    [50052, 50052, 50052],
    'production probes the plaintext health port with native grpc probes',
  );
  t.same(probes('overlays/staging'), [50051, 50051, 50051], 'staging probes the gRPC port itself');
  t.match(prod, /"name":"GRPC_HEALTH_PORT","value":"50052"/, 'production sets GRPC_HEALTH_PORT');
  const min = (dir: string) => (hpa(dir)?.['spec'] as { minReplicas?: number } | undefined)?.minReplicas ?? 0;
  t.ok(min('overlays/production') > min('overlays/staging'), 'production scales from more replicas than staging');
  const configOf = (dir: string) =>
    rendered.get(dir)?.find((o) => o.kind === 'ConfigMap')?.['data'] as Record<string, string> | undefined;
  t.equal(configOf('overlays/staging')?.['LOG_LEVEL'], 'debug', 'staging logs at debug');
  t.equal(configOf('overlays/production')?.['LOG_LEVEL'], 'info', 'production logs at info');
});

t.test('the pods run as the Dockerfile USER', async (t) => {
  const dockerfile = readFileSync(join(projectRoot, 'Dockerfile'), 'utf8');
  const user = [...dockerfile.matchAll(/^USER\s+(\d+)/gm)].at(-1)?.[1];
  t.ok(user, 'Dockerfile sets a numeric USER');
  for (const [dir, objects] of rendered) {
    for (const o of objects.filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) {
      const text = JSON.stringify(o);
      const uids = [...text.matchAll(/"runAsUser":(\d+)/g)].map((m) => m[1]);
      t.ok(
        uids.length > 0 && uids.every((u) => u === user),
        `${dir} ${label(o)}: runAsUser ${uids.join(',')} = USER ${user}`,
      );
    }
  }
  t.equal(parseImageRef('a/b:1@sha256:x').tag, '1');
});

t.test('kubectl used for rendering is a recent client', async (t) => {
  const { findKubectl } = await import('../../scripts/kubectl.mjs');
  const out = execFileSync(findKubectl(), ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  const minor = Number(
    (JSON.parse(out) as { clientVersion?: { minor?: string } }).clientVersion?.minor?.replace(/\D/g, ''),
  );
  t.ok(minor >= 30, `kubectl 1.${minor} (>= 1.30 knows lifecycle sleep, matchLabelKeys)`);
});

const configModule = join(projectRoot, 'src', 'config.ts');
t.test(
  "the service's own config loader accepts each overlay's environment",
  {
    skip: existsSync(configModule) ? false : 'src/config.ts is not there yet',
  },
  async (t) => {
    const { loadConfig } = (await import(pathToFileURL(configModule).href)) as {
      loadConfig: (
        env: Record<string, string | undefined>,
        opts?: { migrateOnly?: boolean },
      ) => Record<string, unknown>;
    };
    // Stand-ins for the values that come from Secrets / the downward API at run time.
    const fromRefs: Record<string, string> = {
      DATABASE_URL: 'postgres://otesse:example@postgres:5432/otesse',
      REDIS_URL: 'redis://redis:6379',
      ADMIN_TOKENS: 'ops:example-token-0123456789abcdef',
      CACHE_SIGNING_KEY: 'example-signing-key-0123456789abcdef',
      REPLICA_ID: 'otesse-keys-5d9c7b8f6d-x2x7q',
    };
    for (const [dir, objects] of rendered) {
      for (const o of objects.filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) {
        const pod = (
          o['spec'] as {
            template: {
              spec: {
                containers: Array<{
                  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
                  envFrom?: Array<{ configMapRef?: { name: string } }>;
                }>;
              };
            };
          }
        ).template.spec;
        for (const c of pod.containers) {
          const env: Record<string, string> = {};
          for (const source of c.envFrom ?? []) {
            const cm = objects.find((x) => x.kind === 'ConfigMap' && x.metadata.name === source.configMapRef?.name);
            t.ok(cm, `${dir} ${label(o)}: ConfigMap ${source.configMapRef?.name} is in the overlay`);
            Object.assign(env, (cm?.['data'] ?? {}) as Record<string, string>);
          }
          for (const e of c.env ?? []) {
            const value = e.value ?? fromRefs[e.name];
            t.ok(value !== undefined, `${dir} ${label(o)}: ${e.name} has a value or a known reference`);
            if (value !== undefined) env[e.name] = value;
          }
          // The migration Job runs dist/src/migrate.js, which needs PostgreSQL only.
          t.doesNotThrow(
            () => loadConfig(env, { migrateOnly: o.kind === 'Job' }),
            `${dir} ${label(o)}: configuration accepted`,
          );
        }
      }
    }
  },
);
