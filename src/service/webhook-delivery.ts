import { Webhook } from 'standardwebhooks';
import { DELIVERY, retryDelaySeconds } from '../domain/webhook.js';
import type { Database } from '../store/db.js';
import { auditRepository } from '../store/audit-repository.js';
import { webhookRepository, type ClaimedDelivery } from '../store/webhook-repository.js';
import { NO_TRACE, type Trace } from './trace.js';
import type { WebhookResponse, WebhookSender } from './webhook-sender.js';

export type DeliveryResult = 'delivered' | 'retry' | 'failed' | 'refused';

export interface WebhookDeliveryOptions {
  db: Database;
  sender: WebhookSender;
  replicaId: string;
  /** How often due deliveries are looked for when nothing nudges (retries, other replicas' events). */
  pollMs?: number;
  /** Attempts in flight at once on this replica. */
  concurrency?: number;
  trace?: Trace;
  /** Told of every attempt (metrics). */
  onAttempt?: (result: DeliveryResult, seconds: number) => void;
  /** Told when a round fails (storage unreachable): logged by the composition root. */
  onError?: (err: unknown) => void;
  /** Told when the service turns an endpoint off (410, or failing for days). */
  onDisabled?: (endpointId: string, reason: string) => void;
}

/**
 * Delivers the outbox (design: outbox): every replica claims due deliveries with FOR UPDATE SKIP
 * LOCKED, so each attempt is made by one replica; signs each as the Standard Webhooks specification
 * says (webhook-id is the event's id on every attempt); and settles it: delivered, due again after
 * the retry schedule's next delay, or failed. A replica killed mid-send leaves a claim that runs out
 * within a minute; another replica then sends it again (at least once).
 */
export class WebhookDelivery {
  #o: WebhookDeliveryOptions;
  #trace: Trace;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(opts: WebhookDeliveryOptions) {
    this.#o = opts;
    this.#trace = opts.trace ?? NO_TRACE;
  }

  /** Look for due deliveries every pollMs (and whenever nudged) until stop. */
  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => this.nudge(), this.#o.pollMs ?? 1000);
    this.#timer.unref();
    this.nudge();
  }

  /** Something was written to the outbox: deliver now rather than at the next poll. */
  nudge(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.nudge();
      }
    });
  }

  /** Stop claiming; attempts in flight finish and are settled (graceful shutdown). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }

  /** Claim and send until nothing is due. */
  async #drain(): Promise<void> {
    const concurrency = this.#o.concurrency ?? 16;
    try {
      while (!this.#stopped && (await this.runOnce()) === concurrency);
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  /** One round: claim what is due (at most `concurrency`) and attempt it; the number of attempts made. */
  async runOnce(): Promise<number> {
    const { db, replicaId, concurrency = 16 } = this.#o;
    const batch = await webhookRepository.claim(db, replicaId, concurrency, DELIVERY.claimMs);
    await Promise.all(batch.map((d) => this.#attempt(d)));
    return batch.length;
  }

  /** One attempt of a claimed delivery, in a span of its own when tracing is on. */
  async #attempt(d: ClaimedDelivery): Promise<void> {
    const run = async () => {
      const started = performance.now();
      const response = await this.#o.sender.send({
        url: d.url,
        headers: signatureHeaders(d, new Date()),
        body: d.body,
      });
      const result = await this.#settle(d, response);
      this.#trace.setAttributes({
        'otesse.webhook.result': result,
        'otesse.webhook.status_code': response.statusCode ?? undefined,
        'otesse.webhook.attempt': d.attempts,
      });
      this.#o.onAttempt?.(result, (performance.now() - started) / 1000);
    };
    const traced = this.#trace.on
      ? this.#trace.span('otesse.webhook.delivery', run, {
          'otesse.account_id': d.account_id,
          'otesse.webhook.endpoint_id': d.endpoint_id,
          'otesse.webhook.event_id': d.event_id,
          'otesse.webhook.event_type': d.event_type,
        })
      : run();
    // A settle that fails (storage gone) leaves the claim to run out: the delivery is sent again later.
    await traced.catch((err: unknown) => this.#o.onError?.(err));
  }

  async #settle(d: ClaimedDelivery, r: WebhookResponse): Promise<DeliveryResult> {
    const ok = r.error === null && r.statusCode !== null && r.statusCode >= 200 && r.statusCode < 300;
    const gone = r.statusCode === 410;
    const delay = ok || gone ? undefined : retryDelaySeconds(d.attempts);
    const retryAt = delay === undefined ? null : new Date(Date.now() + delay * 1000);
    return this.#o.db.transaction(async (tx) => {
      const next = ok
        ? ({ state: 'delivered' } as const)
        : retryAt
          ? ({ state: 'pending', retryAt } as const)
          : ({ state: 'failed' } as const);
      const { failingSince } = await webhookRepository.settle(tx, d, this.#o.replicaId, r, next);
      const failingTooLong =
        !ok && failingSince !== null && Date.now() - failingSince.getTime() >= DELIVERY.failingDisableMs;
      if (gone || failingTooLong) {
        const reason = gone ? 'gone' : 'failing';
        const disabled = await webhookRepository.disableEndpoint(tx, d.endpoint_id, reason);
        if (disabled) {
          await auditRepository.insert(tx, [
            {
              account_id: d.account_id,
              key_id: null,
              actor: 'otesse-keys',
              action: 'webhook_endpoint.disabled',
              source_ip: null,
              changes: {
                endpoint_id: d.endpoint_id,
                reason,
                detail: gone
                  ? 'the receiver answered 410 Gone'
                  : `every attempt failed since ${failingSince?.toISOString() ?? 'three days'}`,
              },
            },
          ]);
          this.#o.onDisabled?.(d.endpoint_id, reason);
        }
      }
      if (ok) return 'delivered';
      if (r.error?.startsWith('refused:')) return 'refused';
      return retryAt ? 'retry' : 'failed';
    });
  }
}

/**
 * The Standard Webhooks headers: the event's id, the attempt's time, and one `v1,` signature per
 * secret in use (two during a rotation's overlap: a receiver holding either verifies).
 */
export function signatureHeaders(
  d: Pick<ClaimedDelivery, 'event_id' | 'body' | 'secrets'>,
  at: Date,
): Record<string, string> {
  return {
    'webhook-id': d.event_id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': d.secrets.map((s) => new Webhook(s).sign(d.event_id, at, d.body)).join(' '),
  };
}
