import type { Config } from '../config.js';
import { LocalCache } from '../cache/local-cache.js';
import { ActivityService } from '../service/activity-service.js';
import { Authenticator } from '../service/authenticator.js';
import { Hasher } from '../service/hasher.js';
import { CallerWatch } from '../service/caller-watch.js';
import { Invalidator } from '../service/invalidator.js';
import { KeyService } from '../service/key-service.js';
import { LeakReportService } from '../service/leak-report-service.js';
import { Limiter } from '../service/limiter.js';
import { RetentionJob } from '../service/retention.js';
import { UsageRecorder } from '../service/usage.js';
import type { Database } from '../store/db.js';
import type { Root } from './context.js';
import type { RedisParts } from './storage.js';
import { buildWebhooks, type Webhooks } from './webhooks.js';

/** The parts the use cases share: caches, hashing, invalidation, usage, retention, limits. */
export interface Core {
  local: LocalCache;
  hasher: Hasher;
  invalidator: Invalidator;
  usage: UsageRecorder;
  retention: RetentionJob;
  limiter: Limiter;
  webhooks: Webhooks;
}

/** The use cases the transports call. */
export interface UseCases {
  authenticator: Authenticator;
  /** Watching callers' streams (design: callers-hold-leases). */
  callers: CallerWatch;
  keys: KeyService;
  activity: ActivityService;
}

/** `fn`, called at most once a minute whatever the rate of calls (for log lines about a lasting fault). */
export function oncePerMinute<A>(fn: (arg: A) => void): (arg: A) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (arg) => {
    if (Date.now() - last < 60_000) return;
    last = Date.now();
    fn(arg);
  };
}

/** How long a cached grant may be served, and how long a version floor must be remembered. */
function cacheAges(config: Config): { maxAgeMs: number; recentMs: number } {
  const maxAgeMs = (config.CACHE_TTL_SECONDS + config.STALE_SERVE_SECONDS) * 1000;
  // Floors must outlive any entry that Redis may still hold (its TTL) and any verification in flight.
  return { maxAgeMs, recentMs: maxAgeMs + config.CLOCK_SKEW_MS + 60_000 };
}

/** The shared parts, in the order they are built; the caller registers the limiter's close. */
export function buildCore(root: Root, db: Database, redis: RedisParts): Core {
  const { config } = root;
  const { maxAgeMs, recentMs } = cacheAges(config);
  const local = new LocalCache({
    maxEntries: config.CACHE_MAX_ENTRIES,
    maxAgeMs,
    floorTtlMs: recentMs + 60_000,
    skewMs: config.CLOCK_SKEW_MS,
  });
  const hasher = buildHasher(root);
  const invalidator = buildInvalidator(root, db, redis, local, recentMs);
  const webhooks = buildWebhooks(root, db);
  const usage = buildUsage(root, db, webhooks);
  const retention = buildRetention(config, db);
  const limiter = buildLimiter(root, db, redis);
  return { local, hasher, invalidator, usage, retention, limiter, webhooks };
}

function buildHasher({ config, log }: Root): Hasher {
  return new Hasher({
    memoryCost: config.ARGON2_MEMORY_KIB,
    timeCost: config.ARGON2_TIME_COST,
    parallelism: config.ARGON2_PARALLELISM,
    maxConcurrency: config.ARGON2_MAX_CONCURRENCY,
    maxQueue: config.ARGON2_MAX_QUEUE,
    adminConcurrency: config.ARGON2_ADMIN_CONCURRENCY,
    onFault: oncePerMinute((err: unknown) =>
      log.error(
        { err },
        'argon2 could not verify a stored hash: answered UNAVAILABLE, not counted as a wrong secret (logged once a minute; see otesse_keys_argon2_faults)',
      ),
    ),
  });
}

function buildInvalidator(
  { config, log, metrics }: Root,
  db: Database,
  redis: RedisParts,
  local: LocalCache,
  recentMs: number,
): Invalidator {
  return new Invalidator({
    db,
    local,
    shared: redis.shared,
    bus: redis.bus,
    pollMs: config.CHANGE_POLL_MS,
    log,
    recentMs,
    publishRetryMs: config.LEASE_MS + config.CLOCK_SKEW_MS,
    onApplied: (ms) => metrics.invalidationLag.observe(ms / 1000),
    onPropagated: (outcome, ms) => {
      metrics.propagations.inc({ outcome });
      metrics.propagationWait.observe(ms / 1000);
    },
  });
}

function buildUsage({ config, log, metrics, replicaId }: Root, db: Database, webhooks: Webhooks): UsageRecorder {
  const dropLog = oncePerMinute((n: number) =>
    log.error(
      { dropped: n },
      'usage counts dropped: flushes keep failing and the in-memory bound is reached (logged once a minute)',
    ),
  );
  return new UsageRecorder({
    db,
    replicaId,
    maxEntries: config.USAGE_MAX_ENTRIES,
    onFlush: (ok) => metrics.usageFlushes.inc({ result: ok ? 'ok' : 'failed' }),
    onDrop: (n) => {
      metrics.usageDropped.inc(n);
      dropLog(n);
    },
    // key.new_address and the quota events, in the flush's transaction (never on Authenticate's path).
    onApplied: async (tx, applied) => {
      await webhooks.notices.fromUsage(tx, applied);
    },
  });
}

function buildRetention(config: Config, db: Database): RetentionJob {
  return new RetentionJob({
    db,
    policy: {
      changesDays: config.RETENTION_CHANGES_DAYS,
      activityBatchesDays: config.RETENTION_ACTIVITY_BATCHES_DAYS,
      usageDays: config.RETENTION_USAGE_DAYS,
      auditDays: config.RETENTION_AUDIT_DAYS,
      webhookDays: config.RETENTION_WEBHOOK_DAYS,
    },
  });
}

/**
 * A shared rate-limit count Redis did not answer (`limits`: the keys' leases or the admin API's counts):
 * counted, and logged once a minute; the replica counts that limit on its own meanwhile.
 */
export function rateLimitFaults({ log, metrics }: Root, limits: 'keys' | 'admin'): (err: unknown) => void {
  const faultLog = oncePerMinute((err: unknown) =>
    log.warn(
      { err, limits },
      'rate limits: Redis did not answer, this replica counts each limit on its own meanwhile (logged once a minute)',
    ),
  );
  return (err) => {
    metrics.rateBudgetFaults.inc({ limits });
    faultLog(err);
  };
}

function buildLimiter(root: Root, db: Database, redis: RedisParts): Limiter {
  return new Limiter({ db, budget: redis.budget, onBudgetFault: rateLimitFaults(root, 'keys') });
}

/** Authenticate, key management and activity over the shared parts. */
export function buildUseCases(root: Root, db: Database, redis: RedisParts, core: Core): UseCases {
  const authenticator = buildAuthenticator(root, db, redis, core);
  const keys = new KeyService({
    db,
    hasher: core.hasher,
    invalidator: core.invalidator,
    trace: root.trace,
    onEvents: () => core.webhooks.delivery.nudge(),
  });
  const usage = core.usage;
  const activity = new ActivityService({ db, keys, flush: () => usage.flush() });
  const { config, metrics, replicaId } = root;
  const callers = new CallerWatch({
    replicaId,
    db,
    bus: redis.bus,
    usage,
    leaseMs: config.LEASE_MS,
    beatMs: config.HEARTBEAT_MS,
    floorMs: cacheAges(config).recentMs,
    onWatchers: (delta) => metrics.watchingCallers.inc(delta),
  });
  return { authenticator, keys, activity, callers };
}

function buildAuthenticator(root: Root, db: Database, redis: RedisParts, core: Core): Authenticator {
  const { config, log, metrics } = root;
  const unreadableLog = oncePerMinute((o: { keyId: string; rules: number }) =>
    log.warn(
      o,
      "a key's stored allowlist has rules that cannot be read: the key is denied from every address (logged once a minute; see otesse_keys_unreadable_data_total)",
    ),
  );
  const supersededLog = oncePerMinute((keyId: string) =>
    log.warn(
      { keyId },
      "a Redis cache entry below this replica's version floor was read (replayed or left over): not served (logged once a minute; see otesse_keys_superseded_entries_total)",
    ),
  );
  return new Authenticator({
    db,
    local: core.local,
    shared: redis.shared,
    hasher: core.hasher,
    invalidator: core.invalidator,
    usage: core.usage,
    limiter: core.limiter,
    trace: root.trace,
    freshMs: config.CACHE_TTL_SECONDS * 1000,
    staleServeMs: config.STALE_SERVE_SECONDS * 1000,
    failureLimit: config.FAILED_ATTEMPTS_LIMIT,
    failures: redis.failures,
    onUnreadable: (keyId, rules) => {
      metrics.unreadableData.inc({ field: 'allowed_ips' }, 1);
      unreadableLog({ keyId, rules });
    },
    onSuperseded: (keyId) => {
      metrics.supersededEntries.inc();
      supersededLog(keyId);
    },
  });
}

/** Leak reports (GitHub's and the admin API's), built once the transports are being assembled. */
export function buildLeakReports(root: Root, db: Database, core: Core, useCases: UseCases): LeakReportService {
  return new LeakReportService({
    db,
    hasher: core.hasher,
    keys: useCases.keys,
    trace: root.trace,
    onEvents: () => core.webhooks.delivery.nudge(),
  });
}
