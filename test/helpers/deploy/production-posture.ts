// The production overlay's posture, beyond the platform rules every overlay meets: the admin API
// over TLS from a Secret (the one the example cert-manager Certificate keeps issued), /metrics on
// its own port for the monitoring namespace only, and a NetworkPolicy that admits each port from
// one kind of caller: gRPC and forward auth from labelled namespaces, the admin port from the
// dashboard's namespace, the leak-report port from the ingress controller, which reaches nothing
// but POST /v1/secret-scanning/github through its Ingress.
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Container, PodSpec, Service } from 'kubernetes-types/core/v1.js';
import type { Ingress, NetworkPolicy, NetworkPolicyPeer } from 'kubernetes-types/networking/v1.js';
import {
  APP,
  DASHBOARD_NAMESPACE,
  envValue,
  GRPC_PORT,
  HTTP_PORT,
  INGRESS_NAMESPACE,
  listenerPorts,
  PORT_NAMES,
  type ListenerPorts,
} from './k8s-policy.js';
import type { K8sObject } from './render.js';

export const LEAK_PATH = '/v1/secret-scanning/github';
export const HTTP_TLS_SECRET = 'otesse-keys-http-tls';

const ofKind = <T>(objects: readonly K8sObject[], kind: string) =>
  objects.filter((o) => o.kind === kind) as unknown as T[];

/** A cert-manager Certificate, as far as these rules read it. */
interface Certificate {
  metadata?: { name?: string };
  spec?: { secretName?: string; dnsNames?: string[]; issuerRef?: { name?: string } };
}

/** The Secret behind the directory an env variable's file is in, when it is a mounted Secret volume. */
function secretOf(path: string | undefined, c: Container, pod: PodSpec): string | undefined {
  const mount = path === undefined ? undefined : c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  return pod.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName;
}

function checkAdminTls(
  objects: readonly K8sObject[],
  c: Container,
  pod: PodSpec,
  certificates: readonly Certificate[],
  out: string[],
): void {
  const secrets = ['HTTP_TLS_CERT', 'HTTP_TLS_KEY'].map((v) => {
    const secret = secretOf(envValue(c, objects, v), c, pod);
    if (!secret) out.push(`admin TLS: ${v} must be set to a file of a mounted Secret volume`);
    return secret;
  });
  if (secrets[0] && secrets[1] && secrets[0] !== secrets[1])
    out.push('admin TLS: HTTP_TLS_CERT and HTTP_TLS_KEY must come from one Secret');
  const cert = certificates.find((x) => x.spec?.secretName === secrets[0]);
  const namespace = objects.find((o) => o.kind === 'Deployment')?.metadata.namespace ?? '';
  if (!cert) out.push(`admin TLS: the example Certificate must issue the mounted Secret ${String(secrets[0])}`);
  else if (!cert.spec?.dnsNames?.includes(`${APP}.${namespace}.svc`) || !cert.spec.issuerRef?.name) {
    out.push(`admin TLS: the Certificate must name ${APP}.${namespace}.svc and an issuer`);
  }
  const service = ofKind<Service>(objects, 'Service').find((s) => s.metadata?.name === APP);
  if (service?.spec?.ports?.find((p) => p.port === HTTP_PORT)?.appProtocol !== 'https') {
    out.push(`admin TLS: Service ${APP} port ${HTTP_PORT} must say appProtocol https`);
  }
}

/** Every peer admitted to a port (by number or by the container port's name). */
function peersOf(policies: readonly NetworkPolicy[], port: number, c: Container): NetworkPolicyPeer[] | undefined {
  const name = c.ports?.find((p) => p.containerPort === port)?.name;
  const rules = policies
    .flatMap((p) => p.spec?.ingress ?? [])
    .filter((r) => r.ports?.some((p) => p.port === port || (name && p.port === name)));
  return rules.length === 0 ? undefined : rules.flatMap((r) => r.from ?? []);
}

const nsLabel = (p: NetworkPolicyPeer, key: string) => p.namespaceSelector?.matchLabels?.[key];
const onlyNamespace = (p: NetworkPolicyPeer, name: string) => nsLabel(p, 'kubernetes.io/metadata.name') === name;

/** Each port, who may reach it, and how that is said. */
function portRules(ports: Required<ListenerPorts>): Array<[string, number, (p: NetworkPolicyPeer) => boolean, string]> {
  return [
    [
      'gRPC',
      GRPC_PORT,
      (p) => nsLabel(p, 'otesse.io/workload') === 'true',
      'namespaces labelled otesse.io/workload="true" only',
    ],
    [
      'forward auth',
      ports.forwardAuth,
      (p) => nsLabel(p, 'otesse.io/workload') === 'true',
      'namespaces labelled otesse.io/workload="true" only',
    ],
    ['admin API', HTTP_PORT, (p) => onlyNamespace(p, DASHBOARD_NAMESPACE), `the ${DASHBOARD_NAMESPACE} namespace only`],
    ['metrics', ports.metrics, (p) => onlyNamespace(p, 'monitoring'), 'the monitoring namespace only'],
    [
      'leak reports',
      ports.leakReport,
      (p) =>
        onlyNamespace(p, INGRESS_NAMESPACE) &&
        p.podSelector?.matchLabels?.['app.kubernetes.io/name'] === INGRESS_NAMESPACE,
      `the ${INGRESS_NAMESPACE} controller pods only`,
    ],
  ];
}

function checkNetworkPolicy(
  objects: readonly K8sObject[],
  c: Container,
  ports: Required<ListenerPorts>,
  out: string[],
): void {
  const policies = ofKind<NetworkPolicy>(objects, 'NetworkPolicy');
  const rules = portRules(ports);
  for (const [what, port, allowed, says] of rules) {
    const peers = peersOf(policies, port, c);
    if (!peers) out.push(`NetworkPolicy: ${what} (${port}) is not admitted at all`);
    else if (!peers.every((p) => allowed(p) && p.ipBlock === undefined))
      out.push(`NetworkPolicy: ${what} (${port}) must admit ${says}`);
  }
  const known = new Set<number | string>(rules.map((r) => r[1]));
  for (const p of c.ports ?? []) if (p.name && known.has(p.containerPort)) known.add(p.name);
  for (const rule of policies.flatMap((p) => p.spec?.ingress ?? [])) {
    for (const port of rule.ports ?? [])
      if (port.port === undefined || !known.has(port.port))
        out.push(`NetworkPolicy: port ${String(port.port)} must not be admitted`);
  }
}

function checkListeners(
  objects: readonly K8sObject[],
  c: Container,
  out: string[],
): Required<ListenerPorts> | undefined {
  const ports = listenerPorts(c, objects);
  const values: Array<[keyof typeof PORT_NAMES, number | undefined]> = [
    ['FORWARD_AUTH_PORT', ports.forwardAuth],
    ['LEAK_REPORT_PORT', ports.leakReport],
    ['METRICS_PORT', ports.metrics],
  ];
  for (const [variable, port] of values) if (port === undefined) out.push(`${variable} must be set in production`);
  const all = [GRPC_PORT, HTTP_PORT, ...values.map((v) => v[1])].filter((p) => p !== undefined);
  if (new Set(all).size !== all.length) out.push(`every listener needs a port of its own (${all.join(', ')})`);
  if (ports.forwardAuth === undefined || ports.leakReport === undefined || ports.metrics === undefined)
    return undefined;
  const exposing = ofKind<Service>(objects, 'Service').filter((s) =>
    s.spec?.ports?.some((p) => p.targetPort === ports.metrics || p.targetPort === PORT_NAMES.METRICS_PORT),
  );
  if (exposing.length > 0)
    out.push(
      `METRICS_PORT: no Service exposes it (Prometheus scrapes the pods): ${exposing.map((s) => s.metadata?.name).join(', ')}`,
    );
  return { forwardAuth: ports.forwardAuth, leakReport: ports.leakReport, metrics: ports.metrics };
}

/** The Ingress reaches only the leak-report Service, only at GitHub's path, only over TLS. */
function checkIngress(objects: readonly K8sObject[], leakPort: number, out: string[]): void {
  const ingresses = ofKind<Ingress>(objects, 'Ingress');
  if (ingresses.length === 0) out.push('an Ingress must expose the leak-report endpoint');
  const services = ofKind<Service>(objects, 'Service');
  for (const ing of ingresses) {
    const w = `Ingress ${ing.metadata?.name}`;
    if (ing.spec?.defaultBackend) out.push(`${w}: no default backend`);
    const hosts = (ing.spec?.rules ?? []).map((r) => r.host);
    if (hosts.some((h) => !h || !ing.spec?.tls?.some((t) => t.hosts?.includes(h))))
      out.push(`${w}: every host must be served over TLS`);
    for (const path of (ing.spec?.rules ?? []).flatMap((r) => r.http?.paths ?? [])) {
      if (path.path !== LEAK_PATH || path.pathType !== 'Exact')
        out.push(`${w}: only ${LEAK_PATH} with pathType Exact (got ${path.path} ${path.pathType})`);
      const svc = services.find((s) => s.metadata?.name === path.backend.service?.name);
      const reachable = svc?.spec?.ports ?? [];
      if (
        !svc ||
        reachable.length === 0 ||
        !reachable.every((p) => p.targetPort === PORT_NAMES.LEAK_REPORT_PORT || p.targetPort === leakPort)
      ) {
        out.push(
          `${w}: its backend must be a Service with the leak-report port only (got ${String(path.backend.service?.name)})`,
        );
      }
    }
  }
}

/** All production posture rules; `certificates` are the example cert-manager objects. */
export function productionPosture(objects: readonly K8sObject[], certificates: readonly K8sObject[]): string[] {
  const out: string[] = [];
  const dep = ofKind<Deployment>(objects, 'Deployment').find((d) => d.metadata?.name === APP);
  const pod = dep?.spec?.template.spec;
  const c = pod?.containers.find((x) => x.name === APP);
  if (!pod || !c) return [`no Deployment ${APP} with a container ${APP}`];
  checkAdminTls(objects, c, pod, certificates, out);
  const ports = checkListeners(objects, c, out);
  if (!ports) return out;
  checkNetworkPolicy(objects, c, ports, out);
  checkIngress(objects, ports.leakReport, out);
  return out;
}
