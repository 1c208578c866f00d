// The platform rules for the rendered manifests (beyond schema validity). Each rule returns
// readable violations; an empty list means the set of objects passes.
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { HorizontalPodAutoscaler } from 'kubernetes-types/autoscaling/v2.js';
import type { PodDisruptionBudget } from 'kubernetes-types/policy/v1.js';
import type { NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer } from 'kubernetes-types/networking/v1.js';
import type {
  ConfigMap,
  Container,
  PodSpec,
  PodTemplateSpec,
  Probe,
  Service,
  ServiceAccount,
} from 'kubernetes-types/core/v1.js';
import ipaddr from 'ipaddr.js';
import type { K8sObject } from './render.js';

export const APP = 'otesse-keys';
export const GRPC_PORT = 50051;
export const HTTP_PORT = 8080;
/** The containerPort name of GRPC_HEALTH_PORT (plaintext grpc.health.v1 only, for kubelet probes). */
export const HEALTH_PORT_NAME = 'grpc-health';
/** The namespace of the dashboard (the admin API's only caller in production) and of the ingress controller. */
export const DASHBOARD_NAMESPACE = 'otesse-dashboard';
export const INGRESS_NAMESPACE = 'ingress-nginx';
/** containerPort names of the optional listeners. */
export const PORT_NAMES = {
  FORWARD_AUTH_PORT: 'forward-auth',
  LEAK_REPORT_PORT: 'leak-report',
  METRICS_PORT: 'metrics',
} as const;
const READINESS_SERVICE = 'otesse.keys.v1.KeyService';
const LIVENESS_SERVICE = 'liveness';
const SECRET_ENV = ['DATABASE_URL', 'REDIS_URL', 'ADMIN_TOKENS', 'CACHE_SIGNING_KEY'] as const;

function ofKind<T>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Container env: literal values and ConfigMap values reached through envFrom. */
export function envValue(container: Container, objects: readonly K8sObject[], name: string): string | undefined {
  const direct = container.env?.find((e) => e.name === name);
  if (direct) return direct.value;
  for (const source of container.envFrom ?? []) {
    const cmName = source.configMapRef?.name;
    const cm = ofKind<ConfigMap>(objects, 'ConfigMap').find((c) => c.metadata?.name === cmName);
    const value = cm?.data?.[name];
    if (value !== undefined) return value;
  }
  return undefined;
}

function checkSecurity(where: string, pod: PodSpec, out: string[]): number | undefined {
  const psc = pod.securityContext;
  if (pod.automountServiceAccountToken !== false) out.push(`${where}: automountServiceAccountToken must be false`);
  if (psc?.runAsNonRoot !== true) out.push(`${where}: pod securityContext.runAsNonRoot must be true`);
  if (psc?.seccompProfile?.type !== 'RuntimeDefault') out.push(`${where}: pod seccompProfile must be RuntimeDefault`);
  let uid = psc?.runAsUser;
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    const sc = c.securityContext;
    const at = `${where} container ${c.name}`;
    if (sc?.allowPrivilegeEscalation !== false) out.push(`${at}: allowPrivilegeEscalation must be false`);
    if (sc?.readOnlyRootFilesystem !== true) out.push(`${at}: readOnlyRootFilesystem must be true`);
    if (sc?.privileged === true) out.push(`${at}: must not be privileged`);
    if (!sc?.capabilities?.drop?.includes('ALL')) out.push(`${at}: capabilities must drop ALL`);
    if (sc?.capabilities?.add?.length) out.push(`${at}: must add no capabilities`);
    if (sc?.runAsUser !== undefined) uid = sc.runAsUser;
    if (sc?.runAsNonRoot === false) out.push(`${at}: runAsNonRoot must not be false`);
    const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
    const tmpVolume = pod.volumes?.find((v) => v.name === tmp?.name);
    if (!tmp || !tmpVolume?.emptyDir) out.push(`${at}: /tmp must be an emptyDir mount (read-only root filesystem)`);
    if (!c.resources?.requests?.['cpu'] || !c.resources.requests['memory'])
      out.push(`${at}: needs cpu and memory requests`);
    if (!c.resources?.limits?.['cpu'] || !c.resources.limits['memory']) out.push(`${at}: needs cpu and memory limits`);
    const image = c.image ?? '';
    if (!/[:@]/.test(image.split('/').at(-1) ?? '') || image.endsWith(':latest')) {
      out.push(`${at}: image ${image} must carry a version tag or digest`);
    }
  }
  if (typeof uid !== 'number' || !Number.isInteger(uid) || uid <= 0)
    out.push(`${where}: runAsUser must be a numeric non-zero uid`);
  return uid;
}

/** The optional listeners' ports, when their variables are set. */
export interface ListenerPorts {
  forwardAuth?: number | undefined;
  leakReport?: number | undefined;
  metrics?: number | undefined;
}

export function listenerPorts(c: Container, objects: readonly K8sObject[]): ListenerPorts {
  const port = (name: string) => {
    const text = envValue(c, objects, name);
    return text === undefined ? undefined : Number(text);
  };
  return {
    forwardAuth: port('FORWARD_AUTH_PORT'),
    leakReport: port('LEAK_REPORT_PORT'),
    metrics: port('METRICS_PORT'),
  };
}

/** GRPC_HEALTH_PORT, when set: a port of its own, declared on the container; returns it. */
function checkHealthPort(
  where: string,
  c: Container,
  objects: readonly K8sObject[],
  out: string[],
): number | undefined {
  const text = envValue(c, objects, 'GRPC_HEALTH_PORT');
  if (text === undefined) return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535 || [GRPC_PORT, HTTP_PORT].includes(port)) {
    out.push(`${where}: GRPC_HEALTH_PORT (${text}) must be a port of its own, not ${GRPC_PORT} or ${HTTP_PORT}`);
  } else if (!c.ports?.some((p) => p.containerPort === port && p.name === HEALTH_PORT_NAME)) {
    out.push(`${where}: GRPC_HEALTH_PORT ${port} must be a declared containerPort named ${HEALTH_PORT_NAME}`);
  }
  return port;
}

/**
 * Native gRPC probes on grpc.health.v1 everywhere (startup and liveness on "liveness",
 * readiness on the KeyService name). kubelet probes speak plaintext: when the gRPC port
 * requires TLS, the probes must use GRPC_HEALTH_PORT, the plaintext health-only port, which
 * the container must declare.
 */
function checkProbes(where: string, c: Container, objects: readonly K8sObject[], out: string[]): void {
  const tls = envValue(c, objects, 'GRPC_TLS_CERT') !== undefined;
  const healthPort = checkHealthPort(where, c, objects, out);
  if (tls && healthPort === undefined) {
    out.push(`${where}: gRPC requires TLS and kubelet probes are plaintext: set GRPC_HEALTH_PORT and probe it`);
  }
  // With TLS only the health port can be probed; without, the gRPC port or the health port.
  const ports = (tls ? [healthPort] : [GRPC_PORT, healthPort]).filter((p): p is number => p !== undefined);
  const probes: Array<[string, Probe | undefined, string]> = [
    ['startupProbe', c.startupProbe, LIVENESS_SERVICE],
    ['readinessProbe', c.readinessProbe, READINESS_SERVICE],
    ['livenessProbe', c.livenessProbe, LIVENESS_SERVICE],
  ];
  for (const [name, probe, service] of probes) {
    if (!probe) {
      out.push(`${where}: ${name} is missing`);
      continue;
    }
    if (probe.httpGet || probe.tcpSocket || probe.exec)
      out.push(`${where}: ${name} must be a native grpc probe (grpc.health.v1), not httpGet/tcpSocket/exec`);
    if (tls && probe.grpc?.port === GRPC_PORT) {
      out.push(
        `${where}: ${name} probes ${GRPC_PORT}, but gRPC requires TLS there (kubelet probes plaintext): probe GRPC_HEALTH_PORT`,
      );
    }
    if (!probe.grpc || !ports.includes(probe.grpc.port) || probe.grpc.service !== service) {
      out.push(
        `${where}: ${name} must be a grpc probe on ${ports.join(' or ') || 'GRPC_HEALTH_PORT'} for service "${service}"`,
      );
    }
  }
}

/** A CPU quantity ("500m", "2", 1) in cores. */
export function cpuCores(quantity: string | number | undefined): number | undefined {
  if (quantity === undefined) return undefined;
  const text = String(quantity);
  const value = text.endsWith('m') ? Number(text.slice(0, -1)) / 1000 : Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** All platform rules over one rendered overlay. */
export function manifestPolicy(objects: readonly K8sObject[]): string[] {
  const out: string[] = [];
  if (objects.some((o) => o.kind === 'Secret')) {
    out.push('Secret objects must not be committed: reference Secrets created out of band');
  }
  for (const sa of ofKind<ServiceAccount>(objects, 'ServiceAccount')) {
    if (sa.automountServiceAccountToken !== false)
      out.push(`ServiceAccount ${sa.metadata?.name}: automountServiceAccountToken must be false`);
  }

  const deployments = ofKind<Deployment>(objects, 'Deployment').filter((d) => d.metadata?.name === APP);
  const dep = deployments[0];
  if (deployments.length !== 1 || !dep?.spec) {
    out.push(`expected exactly one Deployment ${APP}`);
    return out;
  }
  const spec = dep.spec;
  const template: PodTemplateSpec = spec.template;
  const pod = template.spec;
  const podLabels = template.metadata?.labels;
  const w = `Deployment ${APP}`;
  if ((spec.replicas ?? 1) < 3) out.push(`${w}: replicas must be at least 3`);
  if (spec.strategy?.type !== 'RollingUpdate' || spec.strategy.rollingUpdate?.maxUnavailable !== 0) {
    out.push(`${w}: strategy must be RollingUpdate with maxUnavailable 0`);
  }
  if (!selects(spec.selector.matchLabels, podLabels)) out.push(`${w}: selector does not match the pod template labels`);
  if (!pod) {
    out.push(`${w}: no pod spec`);
    return out;
  }
  const sa = pod.serviceAccountName;
  if (!sa || !ofKind<ServiceAccount>(objects, 'ServiceAccount').some((s) => s.metadata?.name === sa)) {
    out.push(`${w}: serviceAccountName must name a ServiceAccount of this overlay`);
  }
  checkSecurity(w, pod, out);
  const keys = (pod.topologySpreadConstraints ?? []).map((t) => t.topologyKey);
  for (const key of ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']) {
    if (!keys.includes(key)) out.push(`${w}: topologySpreadConstraints must spread over ${key}`);
  }
  for (const tsc of pod.topologySpreadConstraints ?? []) {
    if (!selects(tsc.labelSelector?.matchLabels, podLabels))
      out.push(`${w}: topology spread on ${tsc.topologyKey} does not select the pods`);
  }

  const main = pod.containers.find((c) => c.name === APP);
  if (!main) {
    out.push(`${w}: no container named ${APP}`);
    return out;
  }
  // /metrics is on METRICS_PORT when set, else on the admin port.
  const ports = listenerPorts(main, objects);
  const scrapePort = ports.metrics ?? HTTP_PORT;
  const annotations = template.metadata?.annotations ?? {};
  if (
    annotations['prometheus.io/scrape'] !== 'true' ||
    annotations['prometheus.io/port'] !== String(scrapePort) ||
    annotations['prometheus.io/path'] !== '/metrics'
  ) {
    out.push(`${w}: pod template needs prometheus.io/scrape, port ${scrapePort} and path /metrics annotations`);
  }
  if (main.command) out.push(`${w}: do not override the image's exec-form entrypoint`);
  for (const name of SECRET_ENV) {
    const env = main.env?.find((e) => e.name === name);
    if (!env?.valueFrom?.secretKeyRef?.name || env.value !== undefined) {
      out.push(`${w}: ${name} must come from a secretKeyRef`);
    }
  }
  const declared = main.ports?.map((p) => p.containerPort) ?? [];
  if (!declared.includes(GRPC_PORT) || !declared.includes(HTTP_PORT))
    out.push(`${w}: container must expose ${GRPC_PORT} and ${HTTP_PORT}`);
  for (const [variable, port] of [
    ['FORWARD_AUTH_PORT', ports.forwardAuth],
    ['LEAK_REPORT_PORT', ports.leakReport],
    ['METRICS_PORT', ports.metrics],
  ] as const) {
    const name = PORT_NAMES[variable];
    if (port !== undefined && !main.ports?.some((p) => p.containerPort === port && p.name === name)) {
      out.push(`${w}: ${variable} ${port} must be a declared containerPort named ${name}`);
    }
  }
  const tls = envValue(main, objects, 'GRPC_TLS_CERT') !== undefined;
  checkProbes(w, main, objects, out);
  if (tls) {
    for (const v of ['GRPC_TLS_CERT', 'GRPC_TLS_KEY', 'GRPC_TLS_CA']) {
      const path = envValue(main, objects, v);
      const mounted =
        path !== undefined &&
        (main.volumeMounts ?? []).some(
          (m) =>
            path.startsWith(`${m.mountPath}/`) &&
            pod.volumes?.find((vol) => vol.name === m.name)?.secret?.secretName !== undefined,
        );
      if (!mounted) out.push(`${w}: ${v}=${path ?? '(unset)'} must point into a mounted Secret volume`);
    }
  }
  const cpuLimit = cpuCores(main.resources?.limits?.['cpu']);
  const argon2 = Number(envValue(main, objects, 'ARGON2_MAX_CONCURRENCY'));
  if (!Number.isInteger(argon2) || argon2 < 1 || cpuLimit === undefined || argon2 > Math.max(1, Math.ceil(cpuLimit))) {
    out.push(
      `${w}: ARGON2_MAX_CONCURRENCY (${String(argon2)}) must be set, at most the CPU limit (${String(cpuLimit)})`,
    );
  }
  const sleep = main.lifecycle?.preStop?.sleep?.seconds;
  if (typeof sleep !== 'number' || sleep <= 0)
    out.push(`${w}: preStop must be a native sleep action (no shell in the image)`);
  const graceMs = Number(envValue(main, objects, 'SHUTDOWN_GRACE_MS') ?? '20000');
  const termination = pod.terminationGracePeriodSeconds ?? 30;
  if (!(termination > (sleep ?? 0) + graceMs / 1000)) {
    out.push(
      `${w}: terminationGracePeriodSeconds (${termination}) must exceed preStop sleep (${sleep ?? 0}s) + SHUTDOWN_GRACE_MS (${graceMs} ms)`,
    );
  }

  // Services: one ClusterIP with both ports, one headless with gRPC; both select the pods.
  const services = ofKind<Service>(objects, 'Service');
  const clusterIp = services.filter(
    (s) => s.spec?.clusterIP !== 'None' && (s.spec?.type ?? 'ClusterIP') === 'ClusterIP',
  );
  const headless = services.filter((s) => s.spec?.clusterIP === 'None');
  if (!clusterIp.some((s) => [GRPC_PORT, HTTP_PORT].every((p) => s.spec?.ports?.some((sp) => sp.port === p)))) {
    out.push(`a ClusterIP Service must expose ${GRPC_PORT} and ${HTTP_PORT}`);
  }
  if (
    !headless.some((s) => s.metadata?.name === `${APP}-headless` && s.spec?.ports?.some((sp) => sp.port === GRPC_PORT))
  ) {
    out.push(`a headless Service ${APP}-headless (clusterIP: None) must expose ${GRPC_PORT}`);
  }
  for (const s of services) {
    if (!selects(s.spec?.selector, podLabels))
      out.push(`Service ${s.metadata?.name}: selector does not match the pods`);
  }

  // Migration Job.
  const jobs = ofKind<Job>(objects, 'Job');
  const migrate = jobs.find((j) =>
    j.spec?.template.spec?.containers.some((c) => c.args?.includes('dist/src/migrate.js')),
  );
  if (!migrate?.spec?.template.spec) {
    out.push('a Job must run dist/src/migrate.js');
  } else {
    const jobPod = migrate.spec.template.spec;
    const jw = `Job ${migrate.metadata?.name}`;
    checkSecurity(jw, jobPod, out);
    if (!['Never', 'OnFailure'].includes(jobPod.restartPolicy ?? ''))
      out.push(`${jw}: restartPolicy must be Never or OnFailure`);
    if (selects(spec.selector.matchLabels, migrate.spec.template.metadata?.labels)) {
      out.push(`${jw}: its pods must not match the Deployment/Service selector`);
    }
    const image = jobPod.containers[0]?.image;
    if (image !== main.image) out.push(`${jw}: must use the same image as the Deployment (${main.image})`);
    if (!jobPod.containers[0]?.env?.some((e) => e.name === 'DATABASE_URL' && e.valueFrom?.secretKeyRef)) {
      out.push(`${jw}: DATABASE_URL must come from a secretKeyRef`);
    }
  }

  const hpas = ofKind<HorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler');
  const hpa = hpas.find((h) => h.spec?.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === APP);
  if (!hpa?.spec || hpa.apiVersion !== 'autoscaling/v2') {
    out.push(`an autoscaling/v2 HorizontalPodAutoscaler must target Deployment ${APP}`);
  } else {
    const min = hpa.spec.minReplicas ?? 1;
    if (min < 3) out.push(`HPA: minReplicas must be at least 3`);
    if (hpa.spec.maxReplicas < min) out.push(`HPA: maxReplicas below minReplicas`);
    if ((spec.replicas ?? 1) < min)
      out.push(`HPA: Deployment replicas (${spec.replicas}) below HPA minReplicas (${min})`);
  }

  const pdbs = ofKind<PodDisruptionBudget>(objects, 'PodDisruptionBudget');
  if (!pdbs.some((p) => selects(p.spec?.selector?.matchLabels, podLabels))) {
    out.push('a PodDisruptionBudget must select the server pods');
  }
  for (const p of pdbs) {
    if (p.spec?.maxUnavailable === undefined && p.spec?.minAvailable === undefined) {
      out.push(`PodDisruptionBudget ${p.metadata?.name}: set maxUnavailable or minAvailable`);
    }
  }

  out.push(...networkPolicyRules(objects, podLabels, ports));
  return out;
}

function peerAllows(peer: NetworkPolicyPeer, podLabel: [string, string]): boolean {
  const [k, v] = podLabel;
  return peer.podSelector?.matchLabels?.[k] === v;
}

/** A peer that is a whole namespace, by name. */
function namespacePeer(peer: NetworkPolicyPeer, name: string): boolean {
  return (
    peer.podSelector === undefined &&
    peer.ipBlock === undefined &&
    peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === name
  );
}

/** Who may reach each port (production narrows these further: production-posture.ts). */
const PEER_RULES: Record<
  'grpc' | 'admin' | 'metrics' | 'leak',
  { test: (p: NetworkPolicyPeer) => boolean; says: string }
> = {
  grpc: { test: (p) => peerAllows(p, ['otesse.io/workload', 'true']), says: 'pods labelled otesse.io/workload="true"' },
  admin: {
    test: (p) =>
      peerAllows(p, ['otesse.io/role', 'admin']) ||
      namespacePeer(p, 'monitoring') ||
      namespacePeer(p, DASHBOARD_NAMESPACE),
    says: `otesse.io/role=admin pods, the ${DASHBOARD_NAMESPACE} namespace and the monitoring namespace`,
  },
  metrics: { test: (p) => namespacePeer(p, 'monitoring'), says: 'the monitoring namespace' },
  leak: {
    test: (p) =>
      p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === INGRESS_NAMESPACE &&
      p.podSelector?.matchLabels?.['app.kubernetes.io/name'] === INGRESS_NAMESPACE,
    says: `the ${INGRESS_NAMESPACE} controller pods`,
  },
};

/** Which rule applies to a NetworkPolicy port (number or container port name). */
function ruleOf(port: number | string | undefined, ports: ListenerPorts): keyof typeof PEER_RULES | undefined {
  if (
    port === GRPC_PORT ||
    port === 'grpc' ||
    port === 'forward-auth' ||
    (port !== undefined && port === ports.forwardAuth)
  )
    return 'grpc';
  if (port === HTTP_PORT || port === 'http') return 'admin';
  if (port === 'metrics' || (port !== undefined && port === ports.metrics)) return 'metrics';
  if (port === 'leak-report' || (port !== undefined && port === ports.leakReport)) return 'leak';
  return undefined;
}

/** gRPC and forward auth only from Otesse workloads, admin port only from admins, metrics only from monitoring, leak reports only from the ingress controller. */
function networkPolicyRules(
  objects: readonly K8sObject[],
  podLabels: Record<string, string> | undefined,
  ports: ListenerPorts,
): string[] {
  const out: string[] = [];
  const policies = ofKind<NetworkPolicy>(objects, 'NetworkPolicy').filter((p) =>
    selects(p.spec?.podSelector.matchLabels, podLabels),
  );
  if (policies.length === 0) return ['a NetworkPolicy must select the server pods'];
  out.push(...egressRules(policies));
  const ingress = policies.flatMap((p) => {
    if (!p.spec?.policyTypes?.includes('Ingress'))
      out.push(`NetworkPolicy ${p.metadata?.name}: policyTypes must include Ingress`);
    return p.spec?.ingress ?? [];
  });
  for (const rule of ingress) {
    if (!rule.ports?.length) out.push('NetworkPolicy: every ingress rule must name its ports');
    if (!rule.from?.length) out.push('NetworkPolicy: every ingress rule must name its sources (no open rule)');
    for (const port of rule.ports ?? []) {
      const which = ruleOf(port.port, ports);
      if (!which) {
        out.push(`NetworkPolicy: unexpected ingress port ${String(port.port)}`);
        continue;
      }
      if (!(rule.from ?? []).every(PEER_RULES[which].test))
        out.push(`NetworkPolicy: port ${String(port.port)} may only admit ${PEER_RULES[which].says}`);
    }
  }
  const admitted = ingress.flatMap((r) => r.ports ?? []).map((p) => p.port);
  if (!admitted.includes(GRPC_PORT)) out.push(`NetworkPolicy: no ingress rule for ${GRPC_PORT}`);
  if (!admitted.includes(HTTP_PORT)) out.push(`NetworkPolicy: no ingress rule for ${HTTP_PORT} (admin API)`);
  for (const [what, port] of [
    ['metrics scrape', ports.metrics ?? HTTP_PORT],
    ['forward auth', ports.forwardAuth],
    ['leak reports', ports.leakReport],
  ] as const) {
    if (port !== undefined && !admitted.includes(port))
      out.push(`NetworkPolicy: no ingress rule for ${port} (${what})`);
  }
  return out;
}

/**
 * The only destinations of the server pods (docs/deploying.md, "Network policy"), by `protocol/port`. NetworkPolicy cannot
 * name hosts, so the identity provider's JWKS and GitHub's API are "443 to public addresses"; a CNI with FQDN policies
 * (Cilium, Calico Enterprise) can narrow that rule to the two hosts.
 */
export const EGRESS = {
  dns: { ports: ['UDP/53', 'TCP/53'], says: 'the cluster DNS (kube-dns pods in kube-system, or one resolver address)' },
  stores: {
    ports: ['TCP/5432', 'TCP/6432', 'TCP/6379', 'TCP/26379'],
    says: 'private addresses or cluster pods (PostgreSQL, PgBouncer, Redis, Sentinel)',
  },
  https: {
    ports: ['TCP/443'],
    says: "public addresses only (the identity provider's JWKS, GitHub's API), every private, shared and link-local range excepted",
  },
} as const;
type EgressClass = keyof typeof EGRESS;
/** Without these the service cannot start or serve: DNS, PostgreSQL, Redis, and the two HTTPS fetches. */
const EGRESS_REQUIRED = ['UDP/53', 'TCP/53', 'TCP/5432', 'TCP/6379', 'TCP/443'];
/** Private networks: where a cluster's pods, Services and managed databases on private endpoints live. */
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'];
/** What a 443 rule must leave out: the private networks, shared address space (CGNAT) and link-local (cloud metadata). */
export const NOT_PUBLIC = [...PRIVATE, '100.64.0.0/10', '169.254.0.0/16', 'fe80::/10'];

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];
const cidr = (text: string): Cidr | undefined => {
  try {
    return ipaddr.parseCIDR(text);
  } catch {
    // Not a CIDR (a typo in a manifest): it fits no class of destination, so the egress rule holding it is reported.
    return undefined;
  }
};
/** Whether range `a` lies inside range `b` (same family, longer or equal prefix, same leading bits). */
function within(a: Cidr, b: Cidr): boolean {
  return a[0].kind() === b[0].kind() && a[1] >= b[1] && a[0].match(b);
}
const inAny = (text: string, ranges: readonly string[]) => {
  const c = cidr(text);
  return c !== undefined && ranges.some((r) => within(c, cidr(r)!));
};

/** An ipBlock that reaches no private, shared or link-local address: each such range inside it is excepted. */
function publicOnly(peer: NetworkPolicyPeer): boolean {
  const block = peer.ipBlock;
  const whole = block && cidr(block.cidr);
  if (!whole || peer.namespaceSelector || peer.podSelector) return false;
  const excepted = (block.except ?? []).map(cidr);
  return NOT_PUBLIC.map((r) => cidr(r)!).every((range) => {
    if (within(whole, range)) return false;
    return !within(range, whole) || excepted.some((e) => e !== undefined && within(range, e));
  });
}

const EGRESS_PEERS: Record<EgressClass, (p: NetworkPolicyPeer) => boolean> = {
  dns: (p) =>
    (p.ipBlock === undefined &&
      p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'kube-system' &&
      p.podSelector?.matchLabels?.['k8s-app'] === 'kube-dns') ||
    (p.ipBlock !== undefined && /\/(32|128)$/.test(p.ipBlock.cidr) && !p.ipBlock.except),
  stores: (p) =>
    (p.ipBlock === undefined && (p.namespaceSelector !== undefined || p.podSelector !== undefined)) ||
    (p.ipBlock !== undefined && !p.namespaceSelector && !p.podSelector && inAny(p.ipBlock.cidr, PRIVATE)),
  https: publicOnly,
};

function egressClass(key: string): EgressClass | undefined {
  return (Object.keys(EGRESS) as EgressClass[]).find((c) => (EGRESS[c].ports as readonly string[]).includes(key));
}

/** One egress rule: named ports from the list, named destinations, each destination fit for every port of the rule. */
function checkEgressRule(rule: NetworkPolicyEgressRule, out: string[]): string[] {
  const keys: string[] = [];
  if (!rule.ports?.length)
    out.push('NetworkPolicy: every egress rule must name its ports (without, it allows every port)');
  if (!rule.to?.length)
    out.push('NetworkPolicy: every egress rule must name its destinations (without, it allows every address)');
  for (const port of rule.ports ?? []) {
    const key = `${port.protocol ?? 'TCP'}/${port.port === undefined ? 'every port' : String(port.port)}`;
    const which = port.endPort === undefined ? egressClass(key) : undefined;
    if (!which) {
      out.push(
        `NetworkPolicy: egress to ${key}${port.endPort ? `-${port.endPort}` : ''} is not in the list (DNS 53, PostgreSQL 5432/6432, Redis 6379/26379, HTTPS 443)`,
      );
      continue;
    }
    keys.push(key);
    if (!(rule.to ?? []).every(EGRESS_PEERS[which]))
      out.push(`NetworkPolicy: egress to ${key} may only reach ${EGRESS[which].says}`);
  }
  return keys;
}

/** Egress closed by default and opened only to DNS, PostgreSQL, Redis and HTTPS on public addresses. */
function egressRules(policies: readonly NetworkPolicy[]): string[] {
  const out: string[] = [];
  if (!policies.some((p) => p.spec?.policyTypes?.includes('Egress'))) {
    out.push('NetworkPolicy: policyTypes must include Egress (otherwise the pods may connect anywhere)');
  }
  const allowed = policies.flatMap((p) => p.spec?.egress ?? []).flatMap((rule) => checkEgressRule(rule, out));
  for (const key of EGRESS_REQUIRED)
    if (!allowed.includes(key)) out.push(`NetworkPolicy: no egress rule for ${key} (the service needs it)`);
  return out;
}
