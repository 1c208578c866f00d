import { Type, type Static } from '@sinclair/typebox';
import { TEXT_LIMITS } from '../../../domain/text.js';
import {
  RETRY_SCHEDULE_SECONDS,
  WEBHOOK_DELIVERY_ID_PATTERN,
  WEBHOOK_ENDPOINT_ID_PATTERN,
  WEBHOOK_EVENT_TYPES,
} from '../../../domain/webhook.js';
import { StringEnum } from '../../../validation.js';
import { AccountParams, DateTime, Nullable, NullableOf, Readable } from './common.js';

export const EndpointParams = Type.Object(
  {
    accountId: AccountParams.properties.accountId,
    endpointId: Type.String({ pattern: WEBHOOK_ENDPOINT_ID_PATTERN, description: 'whe_…' }),
  },
  { additionalProperties: false },
);
export const DeliveryParams = Type.Object(
  {
    accountId: AccountParams.properties.accountId,
    endpointId: EndpointParams.properties.endpointId,
    deliveryId: Type.String({ pattern: WEBHOOK_DELIVERY_ID_PATTERN, description: 'whd_…' }),
  },
  { additionalProperties: false },
);

const EventType = StringEnum(WEBHOOK_EVENT_TYPES);
const Url = Type.String({
  minLength: 1,
  maxLength: TEXT_LIMITS.webhookUrl,
  description:
    'where events are POSTed: https: (http: outside production); refused when its host is, or resolves to, a loopback, private, link-local, multicast or metadata address',
});
const Events = Type.Array(EventType, {
  minItems: 1,
  maxItems: WEBHOOK_EVENT_TYPES.length,
  uniqueItems: true,
  description: 'the event types sent to this endpoint (webhook.test is sent on request whatever this says)',
});
const Description = Readable(TEXT_LIMITS.webhookDescription, 'what the endpoint is for');

export const EndpointBody = Type.Object(
  { url: Url, events: Events, description: Type.Optional(Nullable(Description)) },
  { additionalProperties: false },
);
export type EndpointBody = Static<typeof EndpointBody>;
export const EndpointPatchBody = Type.Object(
  {
    url: Type.Optional(Url),
    events: Type.Optional(Events),
    description: Type.Optional(Nullable(Description)),
    enabled: Type.Optional(Type.Boolean({ description: 'false: nothing is sent; true: sending resumes' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type EndpointPatchBody = Static<typeof EndpointPatchBody>;

export const Endpoint = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  description: Nullable(Type.String()),
  enabled: Type.Boolean(),
  disabled_reason: NullableOf(
    StringEnum(['gone', 'failing'] as const),
    'why the service turned it off: gone (the receiver answered 410), failing (every attempt failed for 3 days); null otherwise',
  ),
  failing_since: NullableOf(DateTime, 'since when every attempt has failed'),
  previous_secret_until: NullableOf(DateTime, 'the old secret signs beside the new one until then (after a rotation)'),
  created_at: DateTime,
  updated_at: DateTime,
});
export const EndpointWithSecret = Type.Composite([
  Endpoint,
  Type.Object({
    secret: Type.String({
      description: 'the signing secret (whsec_…, Standard Webhooks): shown in this answer only',
    }),
  }),
]);
export const EndpointList = Type.Object({ data: Type.Array(Endpoint) });

const Attempt = Type.Object({
  n: Type.Integer(),
  at: DateTime,
  status_code: NullableOf(Type.Integer(), "the receiver's status code; null when there was no answer (see error)"),
  error: NullableOf(Type.String(), 'why there was no answer: refused address, timeout, connection failed'),
  duration_ms: Type.Integer(),
  response: NullableOf(Type.String(), "the start of the receiver's answer (at most 1 KB)"),
});
export const Delivery = Type.Object({
  id: Type.String(),
  event_id: Type.String({ description: 'the webhook-id header: the same on every attempt' }),
  event_type: Type.String(),
  state: StringEnum(['pending', 'delivered', 'failed'] as const),
  attempts: Type.Integer(),
  next_attempt_at: NullableOf(
    DateTime,
    `when the next attempt is due (pending only); retries after ${RETRY_SCHEDULE_SECONDS.slice(0, 4).join(' s, ')} s, then hourly for about a day`,
  ),
  created_at: DateTime,
  attempt_log: Type.Array(Attempt, { description: 'the newest attempts first (at most 30)' }),
});
export const DeliveryPage = Type.Object({ data: Type.Array(Delivery), next_cursor: Nullable(Type.String()) });
export const TestSent = Type.Object({ event_id: Type.String() });
