import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** What one kind of Authenticate answer has counted since the last scrape. */
interface AnswerTally {
  outcome: string;
  reason: string;
  environment: string;
  path: string;
  /** The tier answered for the key's grant (not for parse failures, unknown ids, errors). */
  tier: boolean;
  calls: number;
  /** Per latency bucket (the last one past every bound), and the sum of seconds. */
  buckets: Float64Array;
  seconds: number;
}

/**
 * The Authenticate counters, kept as plain numbers on the hot path and handed to prom-client when
 * scraped: a prom-client child validates and hashes its labels on every inc() and observe(), which
 * at a few µs a call was a tenth of a cache hit's cost. Exact: nothing is sampled or dropped.
 */
class AnswerCounts {
  /** reason (or "allowed" / "error_<code>") → environment → path: no string is built per call. */
  #tallies = new Map<string, Map<string, Map<string, AnswerTally>>>();

  count(outcome: string, reason: string, environment: string, path: string, tier: boolean, seconds: number): void {
    const first = reason === '' ? outcome : reason;
    let byEnv = this.#tallies.get(first);
    if (!byEnv) this.#tallies.set(first, (byEnv = new Map<string, Map<string, AnswerTally>>()));
    let byPath = byEnv.get(environment);
    if (!byPath) byEnv.set(environment, (byPath = new Map<string, AnswerTally>()));
    let tally = byPath.get(path);
    if (!tally) {
      tally = {
        outcome,
        reason,
        environment,
        path,
        tier,
        calls: 0,
        buckets: new Float64Array(LATENCY_BUCKETS.length + 1),
        seconds: 0,
      };
      byPath.set(path, tally);
    }
    tally.calls++;
    tally.seconds += seconds;
    let b = 0;
    while (b < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[b] as number)) b++;
    (tally.buckets[b] as number)++;
  }

  /** Hand the counts made since the last scrape to the prom-client counters (called by their collect()). */
  drainCounters(decisions: Counter<'outcome' | 'reason' | 'environment'>, tiers: Counter<'tier'>): void {
    for (const t of this.#all()) {
      if (t.calls === 0) continue;
      decisions.inc({ outcome: t.outcome, reason: t.reason, environment: t.environment }, t.calls);
      if (t.tier) tiers.inc({ tier: t.path }, t.calls);
      t.calls = 0;
    }
  }

  /** The latency histogram's series by path, cumulative since start (Prometheus histograms are). */
  latency(): Map<string, { buckets: Float64Array; seconds: number; count: number }> {
    const out = new Map<string, { buckets: Float64Array; seconds: number; count: number }>();
    for (const t of this.#all()) {
      let series = out.get(t.path);
      if (!series)
        out.set(t.path, (series = { buckets: new Float64Array(LATENCY_BUCKETS.length + 1), seconds: 0, count: 0 }));
      for (let b = 0; b < t.buckets.length; b++) (series.buckets[b] as number) += t.buckets[b] as number;
      series.seconds += t.seconds;
      series.count += t.buckets.reduce((a, n) => a + n, 0);
    }
    return out;
  }

  *#all(): Iterable<AnswerTally> {
    for (const byEnv of this.#tallies.values()) for (const byPath of byEnv.values()) yield* byPath.values();
  }
}

/**
 * `otesse_keys_authenticate_seconds` from the tallies: a metric object in prom-client's registry
 * contract (name, help, type, get), so the exposition format stays prom-client's own.
 */
class LatencyMetric {
  readonly name = 'otesse_keys_authenticate_seconds';
  readonly help = 'Authenticate latency by the path that answered (parse, memory, redis, storage)';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #counts: AnswerCounts;

  constructor(counts: AnswerCounts) {
    this.#counts = counts;
  }

  get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [path, s] of this.#counts.latency()) {
      let acc = 0;
      LATENCY_BUCKETS.forEach((le, b) => {
        acc += s.buckets[b] as number;
        values.push({ labels: { le, path }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', path }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { path }, value: s.seconds, metricName: `${this.name}_sum` });
      values.push({ labels: { path }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/** The service's Prometheus metrics, on a registry of its own (one per app instance). */
export class Metrics {
  readonly registry = new Registry();
  readonly #answers = new AnswerCounts();
  readonly decisions: Counter<'outcome' | 'reason' | 'environment'> = new Counter({
    name: 'otesse_keys_authenticate_total',
    help: 'Authenticate answers by outcome, deny reason and environment',
    labelNames: ['outcome', 'reason', 'environment'] as const,
    registers: [this.registry],
    collect: () => this.#answers.drainCounters(this.decisions, this.cacheLookups),
  });
  readonly cacheLookups: Counter<'tier'> = new Counter({
    name: 'otesse_keys_cache_lookups_total',
    help: 'Authenticate answers by the tier that answered (memory and redis hits, storage misses)',
    labelNames: ['tier'] as const,
    registers: [this.registry],
    collect: () => this.#answers.drainCounters(this.decisions, this.cacheLookups),
  });
  readonly argonQueue = new Gauge({
    name: 'otesse_keys_argon2_queue_depth',
    help: 'argon2 verifications waiting for a slot',
    registers: [this.registry],
  });
  readonly argonVerifications = new Gauge({
    name: 'otesse_keys_argon2_verifications',
    help: 'argon2 verifications performed since start',
    registers: [this.registry],
  });
  readonly checkRefusals = new Gauge({
    name: 'otesse_keys_secret_check_refusals',
    help: 'Wrong secrets refused by the check value, without argon2, since start',
    registers: [this.registry],
  });
  readonly argonRunning = new Gauge({
    name: 'otesse_keys_argon2_running',
    help: 'argon2 operations running',
    registers: [this.registry],
  });
  readonly argonFaults = new Gauge({
    name: 'otesse_keys_argon2_faults',
    help: 'argon2 verifications that failed with a fault (not a wrong secret) since start',
    registers: [this.registry],
  });
  readonly invalidationLag = new Histogram({
    name: 'otesse_keys_invalidation_lag_seconds',
    help: 'From a change being published to its eviction on this replica',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly subscribed = new Gauge({
    name: 'otesse_keys_invalidation_subscribed',
    help: '1 when subscribed and caught up',
    registers: [this.registry],
  });
  readonly redisRejected = new Counter({
    name: 'otesse_keys_redis_rejected_total',
    help: 'Messages and cache entries read from Redis that were dropped (unreadable or failed the HMAC)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly unreadableData = new Counter({
    name: 'otesse_keys_unreadable_data_total',
    help: "Stored key data the service could not read, each time a key's grant was read (field allowed_ips: the key is denied from every address)",
    labelNames: ['field'] as const,
    registers: [this.registry],
  });
  readonly supersededEntries = new Counter({
    name: 'otesse_keys_superseded_entries_total',
    help: "Redis cache entries below this replica's version floor (replayed, or left by a failed invalidation): used as proof of the digest only, never served",
    registers: [this.registry],
  });
  readonly propagations = new Counter({
    name: 'otesse_keys_propagation_total',
    help: 'Announced changes by outcome (confirmed, lease_expired, single_replica, pending)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly propagationWait = new Histogram({
    name: 'otesse_keys_propagation_wait_seconds',
    help: 'How long a write waited for every replica to confirm or lose its lease',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly trusted = new Gauge({
    name: 'otesse_keys_cache_trusted',
    help: '1 while this replica holds its lease and is caught up (decides from memory)',
    registers: [this.registry],
  });
  readonly http = new Histogram({
    name: 'otesse_keys_http_request_seconds',
    help: 'Admin API requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly adminRefused = new Counter({
    name: 'otesse_keys_admin_refused_total',
    help: 'Refused admin API attempts by status (401 wrong or missing token, 403 another account)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly gatewayChecks = new Counter({
    name: 'otesse_keys_gateway_checks_total',
    help: 'Gateway checks (forward auth, Envoy Check) by gateway, outcome and reason (a deny reason, or KEY_MISSING, ROUTE_NOT_MAPPED...)',
    labelNames: ['gateway', 'outcome', 'reason'] as const,
    registers: [this.registry],
  });
  readonly usageDropped = new Counter({
    name: 'otesse_keys_usage_dropped_total',
    help: 'Usage entries dropped from memory because flushes kept failing',
    registers: [this.registry],
  });
  readonly watchingCallers = new Gauge({
    name: 'otesse_keys_watching_callers',
    help: 'Callers whose Watch stream this replica holds (they decide allowed calls in their own process)',
    registers: [this.registry],
  });
  readonly usageFlushes = new Counter({
    name: 'otesse_keys_usage_flushes_total',
    help: 'Usage counter flushes by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly rateBudgetFaults = new Counter({
    name: 'otesse_keys_rate_budget_faults_total',
    help: "Shared rate-limit counts Redis could not answer (key limits' leases, the admin API's counts): this replica counted the limit alone meanwhile",
    labelNames: ['limits'] as const,
    registers: [this.registry],
  });
  readonly webhookAttempts = new Histogram({
    name: 'otesse_keys_webhook_attempts_seconds',
    help: 'Webhook delivery attempts by result (delivered, retry, failed, refused) and how long each took',
    labelNames: ['result'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly webhookEndpointsDisabled = new Counter({
    name: 'otesse_keys_webhook_endpoints_disabled_total',
    help: 'Webhook endpoints the service turned off, by reason (gone: 410; failing: 3 days of failures)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly webhookRoundFailures = new Counter({
    name: 'otesse_keys_webhook_round_failures_total',
    help: 'Webhook delivery rounds and scheduled notice runs that failed (storage unreachable)',
    labelNames: ['job'] as const,
    registers: [this.registry],
  });

  constructor() {
    // Every label value of the webhook metrics is exposed from the start: alerts and panels find 0, not nothing.
    for (const result of ['delivered', 'retry', 'failed', 'refused']) this.webhookAttempts.zero({ result });
    for (const reason of ['gone', 'failing']) this.webhookEndpointsDisabled.inc({ reason }, 0);
    for (const job of ['delivery', 'notices']) this.webhookRoundFailures.inc({ job }, 0);
    for (const limits of ['keys', 'admin']) this.rateBudgetFaults.inc({ limits }, 0);
    this.registry.registerMetric(new LatencyMetric(this.#answers) as unknown as Histogram);
    // Includes nodejs_eventloop_lag_seconds and the event-loop lag percentiles.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
  }

  /**
   * Count one Authenticate answer: `outcome` allowed, denied or error_<code>; `path` the tier that answered;
   * `identified` when the key's grant was found (a tier answered for it). Counted in plain numbers, handed to prom-client when scraped.
   */
  answer(
    outcome: string,
    reason: string,
    environment: string,
    path: string,
    identified: boolean,
    seconds: number,
  ): void {
    this.#answers.count(
      outcome,
      reason,
      environment,
      path,
      identified && path !== 'parse' && path !== 'error',
      seconds,
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
