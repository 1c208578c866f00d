// Production keeps the admin API private: TLS from a Secret, /metrics for monitoring only, each
// port admitted from one kind of caller, and only GitHub's endpoint behind the Ingress. Each
// rule is shown to hold on the rendered overlay and to fail when the manifests break it.
import t from 'tap';
import { manifestPolicy } from '../helpers/deploy/k8s-policy.js';
import { productionPosture } from '../helpers/deploy/production-posture.js';
import { schemaErrors } from '../helpers/deploy/k8s-schema.js';
import { render, type K8sObject } from '../helpers/deploy/render.js';

const production = render('overlays/production');
const certificates = render('overlays/production/cert-manager');

type Json = Record<string, any>;
const clone = () => production.map((o) => structuredClone(o));
const find = (objects: K8sObject[], kind: string, name?: string) => {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind} ${name ?? ''}`);
  return o as Json;
};
const container = (objects: K8sObject[]) => find(objects, 'Deployment').spec.template.spec.containers[0] as Json;
/** The NetworkPolicy ingress rule that admits a port. */
const ruleFor = (objects: K8sObject[], port: number) =>
  (find(objects, 'NetworkPolicy').spec.ingress as Json[]).find((r) =>
    r.ports.some((p: Json) => p.port === port),
  ) as Json;

t.test('the production overlay holds every posture rule; staging is not production', async (t) => {
  t.same(productionPosture(production, certificates), [], 'production posture');
  t.same(manifestPolicy(production), [], 'and the platform rules');
  t.same(schemaErrors(production), [], 'Ingress and Services pass schema validation');
  const cert = certificates.find((o) => o.kind === 'Certificate') as Json | undefined;
  t.equal(cert?.apiVersion, 'cert-manager.io/v1', 'the example is a cert-manager Certificate');
  t.equal(cert?.metadata.namespace, 'otesse-keys', 'in the production namespace');
  t.notOk(
    production.some((o) => o.kind === 'Certificate'),
    'not part of the overlay itself (it needs cert-manager CRDs)',
  );
  t.not(
    productionPosture(render('overlays/staging'), certificates).length,
    0,
    'staging does not meet (nor claim) the production posture',
  );
});

t.test('each production rule fails when the manifests break it', async (t) => {
  const cases: Array<[string, (o: K8sObject[]) => void, RegExp, K8sObject[]?]> = [
    [
      'admin API in plaintext',
      (o) => {
        const c = container(o);
        c.env = c.env.filter((e: Json) => !e.name.startsWith('HTTP_TLS'));
      },
      /HTTP_TLS_CERT must be set/,
    ],
    [
      'TLS files not from a Secret',
      (o) => {
        const c = container(o);
        c.volumeMounts = c.volumeMounts.filter((m: Json) => m.name !== 'http-tls');
      },
      /HTTP_TLS_KEY must be set to a file of a mounted Secret/,
    ],
    [
      'a Secret the Certificate does not issue',
      (o) => {
        find(o, 'Deployment').spec.template.spec.volumes.find((v: Json) => v.name === 'http-tls').secret.secretName =
          'hand-made';
      },
      /Certificate must issue the mounted Secret hand-made/,
    ],
    [
      'the Service still says http',
      (o) => {
        find(o, 'Service', 'otesse-keys').spec.ports.find((p: Json) => p.port === 8080).appProtocol = 'http';
      },
      /appProtocol https/,
    ],
    [
      'no METRICS_PORT',
      (o) => {
        delete find(o, 'ConfigMap').data.METRICS_PORT;
      },
      /METRICS_PORT must be set in production/,
    ],
    [
      'metrics open to every namespace',
      (o) => {
        ruleFor(o, 9090).from = [{ namespaceSelector: {} }];
      },
      /metrics \(9090\) must admit the monitoring namespace only/,
    ],
    [
      'monitoring still on the admin port',
      (o) => {
        ruleFor(o, 8080).from.push({
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        });
      },
      /admin API \(8080\) must admit the otesse-dashboard namespace only/,
    ],
    [
      'admin port from admin pods of any namespace',
      (o) => {
        ruleFor(o, 8080).from = [{ podSelector: { matchLabels: { 'otesse.io/role': 'admin' } } }];
      },
      /admin API \(8080\) must admit/,
    ],
    [
      'gRPC from labelled pods of this namespace',
      (o) => {
        ruleFor(o, 50051).from = [{ podSelector: { matchLabels: { 'otesse.io/workload': 'true' } } }];
      },
      /gRPC \(50051\) must admit namespaces labelled/,
    ],
    [
      'forward auth not admitted',
      (o) => {
        const r = ruleFor(o, 8081);
        r.ports = r.ports.filter((p: Json) => p.port !== 8081);
      },
      /forward auth \(8081\) is not admitted/,
    ],
    [
      'forward auth from an address block',
      (o) => {
        ruleFor(o, 8081).from.push({ ipBlock: { cidr: '10.0.0.0/8' } });
      },
      /forward auth \(8081\) must admit/,
    ],
    [
      'leak reports from the whole ingress namespace',
      (o) => {
        delete ruleFor(o, 8082).from[0].podSelector;
      },
      /leak reports \(8082\) must admit the ingress-nginx controller pods only/,
    ],
    [
      'the health port opened',
      (o) => {
        find(o, 'NetworkPolicy').spec.ingress.push({
          ports: [{ port: 50052 }],
          from: [{ namespaceSelector: { matchLabels: { 'otesse.io/workload': 'true' } } }],
        });
      },
      /port 50052 must not be admitted/,
    ],
    [
      'no leak-report port',
      (o) => {
        delete find(o, 'ConfigMap').data.LEAK_REPORT_PORT;
      },
      /LEAK_REPORT_PORT must be set in production/,
    ],
    [
      'two listeners on one port',
      (o) => {
        find(o, 'ConfigMap').data.METRICS_PORT = '8082';
      },
      /a port of its own/,
    ],
    [
      'metrics behind a Service',
      (o) => {
        find(o, 'Service', 'otesse-keys').spec.ports.push({ name: 'metrics', port: 9090, targetPort: 'metrics' });
      },
      /no Service exposes it/,
    ],
    [
      'the Ingress routes everything',
      (o) => {
        find(o, 'Ingress').spec.rules[0].http.paths[0].path = '/';
        find(o, 'Ingress').spec.rules[0].http.paths[0].pathType = 'Prefix';
      },
      /only \/v1\/secret-scanning\/github with pathType Exact/,
    ],
    [
      'the Ingress reaches the admin API',
      (o) => {
        find(o, 'Ingress').spec.rules[0].http.paths[0].backend.service = {
          name: 'otesse-keys',
          port: { name: 'http' },
        };
      },
      /backend must be a Service with the leak-report port only/,
    ],
    [
      'the leak Service grows an admin port',
      (o) => {
        find(o, 'Service', 'otesse-keys-leak-report').spec.ports.push({ name: 'http', port: 8080, targetPort: 'http' });
      },
      /leak-report port only/,
    ],
    [
      'the Ingress without TLS',
      (o) => {
        delete find(o, 'Ingress').spec.tls;
      },
      /served over TLS/,
    ],
  ];
  for (const [name, mutate, expected, certs] of cases) {
    const objects = clone();
    mutate(objects);
    t.match(productionPosture(objects, certs ?? certificates).join('\n'), expected, name);
  }
  const wrongNames = certificates.map((o) => structuredClone(o)) as Json[];
  wrongNames[0]!.spec.dnsNames = ['admin.example.com'];
  t.match(
    productionPosture(production, wrongNames as K8sObject[]).join('\n'),
    /Certificate must name otesse-keys\.otesse-keys\.svc/,
    'a certificate for other names',
  );
});

t.test('the platform rules admit the new ports only from their callers', async (t) => {
  const cases: Array<[string, (o: K8sObject[]) => void, RegExp]> = [
    [
      'scrape annotation on the admin port',
      (o) => {
        find(o, 'Deployment').spec.template.metadata.annotations['prometheus.io/port'] = '8080';
      },
      /port 9090 and path \/metrics/,
    ],
    [
      'metrics port not declared',
      (o) => {
        const c = container(o);
        c.ports = c.ports.filter((p: Json) => p.name !== 'metrics');
      },
      /METRICS_PORT 9090 must be a declared containerPort named metrics/,
    ],
    [
      'leak port open to workloads',
      (o) => {
        ruleFor(o, 8082).from = [{ podSelector: { matchLabels: { 'otesse.io/workload': 'true' } } }];
      },
      /port 8082 may only admit the ingress-nginx controller pods/,
    ],
    [
      'metrics port from the dashboard',
      (o) => {
        ruleFor(o, 9090).from = [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'otesse-dashboard' } } },
        ];
      },
      /port 9090 may only admit the monitoring namespace/,
    ],
  ];
  for (const [name, mutate, expected] of cases) {
    const objects = clone();
    mutate(objects);
    t.match(manifestPolicy(objects).join('\n'), expected, name);
  }
});
