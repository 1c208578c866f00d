import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The series one Authenticate answer touches, bound once per label combination (no label lookup per call). */
interface AnswerSeries {
  decisions: { inc(): void };
  latency: { observe(seconds: number): void };
  /** The tier that held the key's grant; absent for parse failures, unknown ids and errors. */
  tier: { inc(): void } | undefined;
}

/** The service's Prometheus metrics, on a registry of its own (one per app instance). */
export class Metrics {
  readonly registry = new Registry();
  readonly decisions = new Counter({
    name: 'otesse_keys_authenticate_total', help: 'Authenticate answers by outcome, deny reason and environment',
    labelNames: ['outcome', 'reason', 'environment'] as const, registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'otesse_keys_authenticate_seconds', help: 'Authenticate latency by the path that answered (parse, memory, redis, storage)',
    labelNames: ['path'] as const, buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly cacheLookups = new Counter({
    name: 'otesse_keys_cache_lookups_total', help: 'Authenticate answers by the tier that answered (memory and redis hits, storage misses)',
    labelNames: ['tier'] as const, registers: [this.registry],
  });
  readonly argonQueue = new Gauge({ name: 'otesse_keys_argon2_queue_depth', help: 'argon2 verifications waiting for a slot', registers: [this.registry] });
  readonly argonVerifications = new Gauge({
    name: 'otesse_keys_argon2_verifications', help: 'argon2 verifications performed since start', registers: [this.registry],
  });
  readonly checkRefusals = new Gauge({
    name: 'otesse_keys_secret_check_refusals', help: 'Wrong secrets refused by the check value, without argon2, since start', registers: [this.registry],
  });
  readonly argonRunning = new Gauge({ name: 'otesse_keys_argon2_running', help: 'argon2 operations running', registers: [this.registry] });
  readonly invalidationLag = new Histogram({
    name: 'otesse_keys_invalidation_lag_seconds', help: 'From a change being published to its eviction on this replica',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry],
  });
  readonly subscribed = new Gauge({ name: 'otesse_keys_invalidation_subscribed', help: '1 when subscribed and caught up', registers: [this.registry] });
  readonly redisRejected = new Counter({
    name: 'otesse_keys_redis_rejected_total', help: 'Messages and cache entries read from Redis that were dropped (unreadable or failed the HMAC)',
    labelNames: ['kind'] as const, registers: [this.registry],
  });
  readonly propagations = new Counter({
    name: 'otesse_keys_propagation_total', help: 'Announced changes by outcome (confirmed, lease_expired, single_replica, pending)',
    labelNames: ['outcome'] as const, registers: [this.registry],
  });
  readonly propagationWait = new Histogram({
    name: 'otesse_keys_propagation_wait_seconds', help: 'How long a write waited for every replica to confirm or lose its lease',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers: [this.registry],
  });
  readonly trusted = new Gauge({ name: 'otesse_keys_cache_trusted', help: '1 while this replica holds its lease and is caught up (decides from memory)', registers: [this.registry] });
  readonly http = new Histogram({
    name: 'otesse_keys_http_request_seconds', help: 'Admin API requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [this.registry],
  });
  readonly adminRefused = new Counter({
    name: 'otesse_keys_admin_refused_total', help: 'Refused admin API attempts by status (401 wrong or missing token, 403 another account)',
    labelNames: ['status'] as const, registers: [this.registry],
  });
  readonly usageDropped = new Counter({
    name: 'otesse_keys_usage_dropped_total', help: 'Usage entries dropped from memory because flushes kept failing', registers: [this.registry],
  });
  readonly usageFlushes = new Counter({
    name: 'otesse_keys_usage_flushes_total', help: 'Usage counter flushes by result', labelNames: ['result'] as const, registers: [this.registry],
  });

  #answers = new Map<string, AnswerSeries>();

  constructor() {
    // Includes nodejs_eventloop_lag_seconds and the event-loop lag percentiles.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
  }

  /**
   * Count one Authenticate answer: `outcome` allowed, denied or error_<code>; `path` the tier that answered;
   * `identified` when the key's grant was found (a tier answered for it). The series are bound on first use.
   */
  answer(outcome: string, reason: string, environment: string, path: string, identified: boolean, seconds: number): void {
    const id = `${outcome}|${reason}|${environment}|${path}|${identified ? 1 : 0}`;
    let series = this.#answers.get(id);
    if (!series) {
      series = {
        decisions: this.decisions.labels(outcome, reason, environment),
        latency: this.latency.labels(path),
        tier: identified && path !== 'parse' && path !== 'error' ? this.cacheLookups.labels(path) : undefined,
      };
      this.#answers.set(id, series);
    }
    series.decisions.inc();
    series.latency.observe(seconds);
    series.tier?.inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
