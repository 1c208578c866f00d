import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Invalidator } from '../service/invalidator.js';
import type { RetentionJob } from '../service/retention.js';
import type { UsageRecorder } from '../service/usage.js';
import type { GrpcServer } from '../transport/grpc/server.js';
import type { Webhooks } from './webhooks.js';

/** The parts the background timers drive. */
export interface BackgroundParts {
  grpc: GrpcServer;
  invalidator: Invalidator;
  usage: UsageRecorder;
  retention: RetentionJob;
  webhooks: Webhooks;
}

/**
 * Readiness, usage flushes, retention and the scheduled webhook notices on timers that never hold the
 * process open, and the webhook delivery loop; returns the function that stops the timers (the loop
 * is stopped by the closer, which waits for attempts in flight).
 */
export function startTimers(config: Config, log: Logger, p: BackgroundParts): () => void {
  // Readiness follows this replica only: once caught up it stays SERVING through shared faults.
  const readyTimer = setInterval(() => {
    p.grpc.setReady(p.invalidator.everReady);
  }, 1000);
  readyTimer.unref();
  p.grpc.setReady(p.invalidator.everReady);
  const flushTimer = setInterval(() => {
    p.usage.flush().catch((err: unknown) => log.warn({ err }, 'usage flush failed; kept for the next one'));
  }, config.ACTIVITY_FLUSH_MS);
  flushTimer.unref();
  const retentionTimer = setInterval(() => runRetention(p.retention, log), config.RETENTION_INTERVAL_MS);
  retentionTimer.unref();
  const noticesTimer = setInterval(() => void p.webhooks.scheduled(), config.WEBHOOK_SCHEDULE_MS);
  noticesTimer.unref();
  p.webhooks.delivery.start();
  return () => {
    clearInterval(readyTimer);
    clearInterval(flushTimer);
    clearInterval(retentionTimer);
    clearInterval(noticesTimer);
  };
}

function runRetention(retention: RetentionJob, log: Logger): void {
  retention.runOnce().then(
    (r) => {
      if (r.ran) log.info({ deleted: r.deleted }, 'retention: old records pruned');
    },
    (err: unknown) => log.warn({ err }, 'retention run failed; retried at the next interval'),
  );
}

/** SIGTERM's last write of usage counts: retried with backoff for a few seconds, and a loss is logged as an error. */
export async function finalFlush(usage: UsageRecorder, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await usage.flush();
      return;
    } catch (err) {
      if (attempt === 5) {
        log.error({ err, lost: usage.unflushed }, 'usage counts could not be written before exit');
        return;
      }
      log.warn({ err, attempt }, 'final usage flush failed; retrying');
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }
}
