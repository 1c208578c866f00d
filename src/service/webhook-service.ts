import { AppError, invalid } from '../domain/errors.js';
import { readableText, TEXT_LIMITS, characters } from '../domain/text.js';
import {
  MAX_ENDPOINTS,
  SECRET_OVERLAP_MS,
  WEBHOOK_EVENT_TYPES,
  accountEvent,
  newEndpointId,
  newSigningSecret,
} from '../domain/webhook.js';
import { auditRepository } from '../store/audit-repository.js';
import type { Database, Queryable } from '../store/db.js';
import {
  webhookRepository,
  type DeliveryRow,
  type EndpointPatch,
  type EndpointRow,
} from '../store/webhook-repository.js';
import { decodeDeliveryCursor, encodeDeliveryCursor, pageOf, type Page } from './cursor.js';
import type { Actor } from './key-audit.js';
import type { WebhookSender } from './webhook-sender.js';

export interface EndpointInput {
  url: string;
  events: string[];
  description?: string | null | undefined;
}

export interface EndpointPatchInput {
  url?: string | undefined;
  events?: string[] | undefined;
  description?: string | null | undefined;
  enabled?: boolean | undefined;
}

export interface WebhookServiceOptions {
  db: Database;
  sender: Pick<WebhookSender, 'check'>;
  /** Told after a commit that wrote to the outbox: deliver now rather than at the next poll. */
  onEvents?: () => void;
  now?: () => number;
}

const EVENT_TYPES = new Set<string>(WEBHOOK_EVENT_TYPES);

/** The admin use cases of an account's webhook endpoints: each change audited, the secret shown once. */
export class WebhookService {
  #o: WebhookServiceOptions;
  #now: () => number;

  constructor(opts: WebhookServiceOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** A new endpoint and its signing secret (in this answer only). */
  async create(actor: Actor, accountId: string, input: EndpointInput): Promise<{ row: EndpointRow; secret: string }> {
    const url = await this.#checkUrl(input.url);
    const events = checkEvents(input.events);
    const description = checkDescription(input.description);
    const secret = newSigningSecret();
    const row = await this.#o.db.transaction(async (tx) => {
      // Serialises creates per account so the bound holds under concurrent requests.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`webhooks:${accountId}`]);
      if ((await webhookRepository.countEndpoints(tx, accountId)) >= MAX_ENDPOINTS)
        throw new AppError('CONFLICT', `an account has at most ${MAX_ENDPOINTS} webhook endpoints`);
      const created = await webhookRepository.insertEndpoint(tx, {
        id: newEndpointId(),
        account_id: accountId,
        url,
        events,
        description,
        secret,
      });
      await this.#audit(tx, actor, accountId, 'webhook_endpoint.created', {
        endpoint_id: created.id,
        url,
        events,
        description,
      });
      return created;
    });
    return { row, secret };
  }

  async list(accountId: string): Promise<EndpointRow[]> {
    return webhookRepository.listEndpoints(this.#o.db, accountId);
  }

  async get(accountId: string, endpointId: string): Promise<EndpointRow> {
    const row = await webhookRepository.getEndpoint(this.#o.db, accountId, endpointId);
    if (!row) throw notFound(endpointId);
    return row;
  }

  /** Change the URL, events, description or `enabled` (turning it on again clears why the service turned it off). */
  async update(actor: Actor, accountId: string, endpointId: string, input: EndpointPatchInput): Promise<EndpointRow> {
    const patch: EndpointPatch = {};
    if (input.url !== undefined) patch.url = await this.#checkUrl(input.url);
    if (input.events !== undefined) patch.events = checkEvents(input.events);
    if (input.description !== undefined) patch.description = checkDescription(input.description);
    if (input.enabled !== undefined) patch.enabled = input.enabled;
    if (Object.keys(patch).length === 0) throw invalid('body', 'nothing to change');
    return this.#o.db.transaction(async (tx) => {
      const before = await this.#locked(tx, accountId, endpointId);
      const after = await webhookRepository.updateEndpoint(tx, endpointId, patch);
      const changes: Record<string, unknown> = { endpoint_id: endpointId };
      if (patch.url !== undefined && patch.url !== before.url) changes.url = { from: before.url, to: after.url };
      if (patch.events !== undefined) changes.events = { from: before.events, to: after.events };
      if (patch.description !== undefined) changes.description = { from: before.description, to: after.description };
      if (patch.enabled !== undefined && patch.enabled !== before.enabled)
        changes.enabled = { from: before.enabled, to: after.enabled };
      await this.#audit(tx, actor, accountId, 'webhook_endpoint.updated', changes);
      return after;
    });
  }

  async delete(actor: Actor, accountId: string, endpointId: string): Promise<void> {
    await this.#o.db.transaction(async (tx) => {
      const before = await this.#locked(tx, accountId, endpointId);
      await webhookRepository.deleteEndpoint(tx, accountId, endpointId);
      await this.#audit(tx, actor, accountId, 'webhook_endpoint.deleted', { endpoint_id: endpointId, url: before.url });
    });
  }

  /** A new signing secret (in this answer only); the old one keeps signing beside it for 24 hours. */
  async rotateSecret(
    actor: Actor,
    accountId: string,
    endpointId: string,
  ): Promise<{ row: EndpointRow; secret: string }> {
    const secret = newSigningSecret();
    const until = new Date(this.#now() + SECRET_OVERLAP_MS);
    const row = await this.#o.db.transaction(async (tx) => {
      await this.#locked(tx, accountId, endpointId);
      const after = await webhookRepository.rotateSecret(tx, endpointId, secret, until);
      await this.#audit(tx, actor, accountId, 'webhook_endpoint.secret_rotated', {
        endpoint_id: endpointId,
        previous_secret_until: until.toISOString(),
      });
      return after;
    });
    return { row, secret };
  }

  /** Send a `webhook.test` event to this endpoint (enabled), whatever events it asked for. */
  async test(actor: Actor, accountId: string, endpointId: string): Promise<{ eventId: string }> {
    const event = accountEvent('webhook.test', accountId, {
      endpoint_id: endpointId,
      message: `a test event sent by ${actor.name}`,
    });
    await this.#o.db.transaction(async (tx) => {
      const endpoint = await this.#locked(tx, accountId, endpointId);
      if (!endpoint.enabled) throw new AppError('CONFLICT', `webhook endpoint ${endpointId} is disabled`);
      await webhookRepository.emit(tx, [event], endpointId);
      await this.#audit(tx, actor, accountId, 'webhook_endpoint.tested', {
        endpoint_id: endpointId,
        event_id: event.id,
      });
    });
    this.#o.onEvents?.();
    return { eventId: event.id };
  }

  async deliveries(
    accountId: string,
    endpointId: string,
    opts: { limit: number; cursor?: string | undefined },
  ): Promise<Page<DeliveryRow>> {
    const before = opts.cursor === undefined ? undefined : decodeDeliveryCursor(opts.cursor, accountId);
    await this.get(accountId, endpointId);
    const rows = await webhookRepository.listDeliveries(this.#o.db, endpointId, { before, limit: opts.limit + 1 });
    return pageOf(rows, opts.limit, (last) => encodeDeliveryCursor(accountId, last));
  }

  /** Attempt a delivery again now, under the same webhook-id. */
  async retry(actor: Actor, accountId: string, endpointId: string, deliveryId: string): Promise<void> {
    await this.#o.db.transaction(async (tx) => {
      const endpoint = await this.#locked(tx, accountId, endpointId);
      // As for a test event: nothing goes to a disabled endpoint, so a retry there would wait unseen.
      if (!endpoint.enabled) throw new AppError('CONFLICT', `webhook endpoint ${endpointId} is disabled`);
      const found = await webhookRepository.retry(tx, endpointId, deliveryId);
      if (!found) throw new AppError('NOT_FOUND', `delivery ${deliveryId} not found`);
      await this.#audit(tx, actor, accountId, 'webhook_delivery.retried', {
        endpoint_id: endpointId,
        delivery_id: deliveryId,
      });
    });
    this.#o.onEvents?.();
  }

  async #checkUrl(url: string): Promise<string> {
    if (characters(url) > TEXT_LIMITS.webhookUrl)
      throw invalid('url', `must be at most ${TEXT_LIMITS.webhookUrl} characters`);
    await this.#o.sender.check(url);
    return new URL(url).href;
  }

  async #locked(tx: Queryable, accountId: string, endpointId: string): Promise<EndpointRow> {
    const row = await webhookRepository.getEndpoint(tx, accountId, endpointId, true);
    if (!row) throw notFound(endpointId);
    return row;
  }

  async #audit(
    tx: Queryable,
    actor: Actor,
    accountId: string,
    action: string,
    changes: Record<string, unknown>,
  ): Promise<void> {
    await auditRepository.insert(tx, [
      { account_id: accountId, key_id: null, actor: actor.name, action, source_ip: actor.sourceIp, changes },
    ]);
  }
}

const notFound = (id: string) => new AppError('NOT_FOUND', `webhook endpoint ${id} not found`);

function checkEvents(events: string[]): string[] {
  if (events.length === 0) throw invalid('events', 'must name at least one event');
  for (const [i, e] of events.entries())
    if (!EVENT_TYPES.has(e)) throw invalid(`events/${i}`, `must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}`);
  return [...new Set(events)];
}

function checkDescription(d: string | null | undefined): string | null {
  return d === undefined || d === null ? null : readableText('description', d, TEXT_LIMITS.webhookDescription);
}
