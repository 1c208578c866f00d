import { randomBytes } from 'node:crypto';
import type { Key } from './key.js';
import { randomBase62 } from './key-format.js';

/** The events an endpoint may ask for (`webhook.test` is sent on request, to one endpoint, whatever it asked for). */
export const WEBHOOK_EVENT_TYPES = Object.freeze([
  'key.created',
  'key.rotated',
  'key.updated',
  'key.revoked',
  'key.leaked',
  'key.rotation_due',
  'key.expiring',
  'key.expired',
  'key.new_address',
  'key.quota_low',
  'key.quota_exhausted',
] as const);
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number] | 'webhook.test';

/** Ids: a prefix and 20 base62 characters (~119 bits). */
export const WEBHOOK_ENDPOINT_ID_PATTERN = '^whe_[A-Za-z0-9]{20}$';
export const WEBHOOK_DELIVERY_ID_PATTERN = '^whd_[A-Za-z0-9]{20}$';
export const newEndpointId = () => `whe_${randomBase62(20)}`;
export const newDeliveryId = () => `whd_${randomBase62(20)}`;
/** The event's id is the `webhook-id` header: the same on every attempt, so a receiver can drop repeats. */
export const newEventId = () => `evt_${randomBase62(20)}`;

/** A signing secret as the Standard Webhooks specification writes it: `whsec_` and base64 of 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** How long the old secret keeps signing beside the new one after a rotation. */
export const SECRET_OVERLAP_MS = 24 * 3_600_000;

/** Endpoints an account may have (the URL and description bounds are in text.ts). */
export const MAX_ENDPOINTS = 20;

/**
 * Delivery: each attempt waits at most `timeoutMs`; a receiver's answer is kept to `responseBytes`;
 * a replica's claim on a delivery lasts `claimMs` (longer than an attempt: a live replica never loses
 * it mid-send; a replica killed mid-send loses it within a minute).
 */
export const DELIVERY = Object.freeze({
  timeoutMs: 10_000,
  responseBytes: 1024,
  claimMs: 30_000,
  /** An endpoint failing this long, every attempt, is disabled (and audited). */
  failingDisableMs: 3 * 86_400_000,
});

/**
 * Seconds from a failed attempt to the next: the first within seconds, then hourly; about a day in all
 * (5 s + 30 s + 2 min + 10 min + 23 h), then the delivery is marked failed.
 */
export const RETRY_SCHEDULE_SECONDS: readonly number[] = Object.freeze([
  5,
  30,
  120,
  600,
  ...new Array<number>(23).fill(3600),
]);

/** The delay after the `failures`-th failed attempt, or undefined when the schedule has run out. */
export function retryDelaySeconds(failures: number): number | undefined {
  return RETRY_SCHEDULE_SECONDS[failures - 1];
}

/** A key as events describe it: never its secret, hash or metadata. */
export interface KeySummary {
  id: string;
  label: string;
  redacted: string;
  environment: string;
}

export function keySummary(key: Pick<Key, 'id' | 'label' | 'redacted' | 'environment'>): KeySummary {
  return { id: key.id, label: key.label, redacted: key.redacted, environment: key.environment };
}

/** An event about to be written to the outbox. */
export interface NewWebhookEvent {
  id: string;
  accountId: string;
  type: WebhookEventType;
  /** The JSON body every attempt sends. */
  body: string;
}

/** The event a use case records: its body is `{type, id, created_at, data}`, `data` holding the account and key. */
export function keyEvent(
  type: WebhookEventType,
  key: Pick<Key, 'id' | 'account_id' | 'label' | 'redacted' | 'environment'>,
  extra: Record<string, unknown> = {},
  now = new Date(),
): NewWebhookEvent {
  return accountEvent(type, key.account_id, { key: keySummary(key), ...extra }, now);
}

export function accountEvent(
  type: WebhookEventType,
  accountId: string,
  data: Record<string, unknown>,
  now = new Date(),
): NewWebhookEvent {
  const id = newEventId();
  return {
    id,
    accountId,
    type,
    body: JSON.stringify({ type, id, created_at: now.toISOString(), data: { account_id: accountId, ...data } }),
  };
}
