import type { Database } from '../store/db.js';
import { WebhookDelivery } from '../service/webhook-delivery.js';
import { WebhookNotices } from '../service/webhook-notices.js';
import { WebhookService } from '../service/webhook-service.js';
import { HttpWebhookSender } from '../transport/webhook/sender.js';
import type { Root } from './context.js';
import { oncePerMinute } from './services.js';

/** Webhooks' parts: the sender (the request-forgery guard), the delivery loop, the notices and the admin use cases. */
export interface Webhooks {
  sender: HttpWebhookSender;
  delivery: WebhookDelivery;
  notices: WebhookNotices;
  service: WebhookService;
  /** One run of the scheduled notices (a timer calls it): what it wrote is sent at once; a failure is counted and logged. */
  scheduled(): Promise<void>;
}

export function buildWebhooks({ config, log, metrics, replicaId, trace }: Root, db: Database): Webhooks {
  const sender = new HttpWebhookSender({
    allowHttp: config.NODE_ENV !== 'production',
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE === '1',
  });
  const roundFailed = oncePerMinute((err: unknown) =>
    log.warn(
      { err },
      'webhook deliveries could not be claimed or settled; retried at the next round (logged once a minute)',
    ),
  );
  const delivery = new WebhookDelivery({
    db,
    sender,
    replicaId,
    pollMs: config.WEBHOOK_POLL_MS,
    trace,
    onAttempt: (result, seconds) => metrics.webhookAttempts.observe({ result }, seconds),
    onError: (err) => {
      metrics.webhookRoundFailures.inc({ job: 'delivery' });
      roundFailed(err);
    },
    onDisabled: (endpointId, reason) => {
      metrics.webhookEndpointsDisabled.inc({ reason });
      log.warn({ endpointId, reason }, 'webhook endpoint disabled by the service (audited)');
    },
  });
  const notices = new WebhookNotices({ db });
  const service = new WebhookService({ db, sender, onEvents: () => delivery.nudge() });
  const scheduled = () =>
    notices.runOnce().then(
      (r) => {
        if (r.events > 0) delivery.nudge();
      },
      (err: unknown) => {
        metrics.webhookRoundFailures.inc({ job: 'notices' });
        log.warn({ err }, 'scheduled webhook notices failed; retried at the next interval');
      },
    );
  return { sender, delivery, notices, service, scheduled };
}
