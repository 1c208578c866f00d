-- Webhooks: the account's endpoints, the events written in the same transaction as the change that
-- causes them (design: outbox), one delivery per event and endpoint, and each attempt's outcome.

CREATE TABLE webhook_endpoints (
  id text PRIMARY KEY,
  account_id text NOT NULL,
  url text NOT NULL,
  events text[] NOT NULL,
  description text,
  enabled boolean NOT NULL DEFAULT true,
  -- Why the service turned it off: 'gone' (the receiver answered 410) or 'failing' (3 days of failures).
  disabled_reason text,
  -- The signing secret (whsec_…): kept, since every delivery is signed with it. Not an API key's secret.
  secret text NOT NULL,
  -- After a rotation the old secret signs beside the new one until previous_secret_until.
  previous_secret text,
  previous_secret_until timestamptz,
  -- Since when every attempt has failed (NULL: the last one succeeded, or none failed yet).
  failing_since timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, created_at, id);

-- The outbox: an event is written only when an enabled endpoint of its account asked for its type.
CREATE TABLE webhook_events (
  id text PRIMARY KEY,
  account_id text NOT NULL,
  type text NOT NULL,
  -- The body sent, as JSON text: every attempt sends the same bytes under the same webhook-id.
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
  id text PRIMARY KEY,
  event_id text NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  -- pending (due at next_attempt_at), delivered, failed (the schedule ran out, or the endpoint answered 410).
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- A replica's claim: another replica takes the delivery once it has passed (the claimer died mid-send).
  claimed_until timestamptz,
  claimed_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
  delivery_id text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  n integer NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  replica text NOT NULL,
  -- The receiver's status code, or NULL with the error (refused address, timeout, connection failed).
  status_code integer,
  error text,
  duration_ms integer NOT NULL,
  -- The start of the receiver's answer, at most 1 KB.
  response text,
  PRIMARY KEY (delivery_id, n)
);
CREATE INDEX webhook_attempts_at ON webhook_attempts (at);

-- Notices sent once per key and threshold (rotation due, expiring, expired, quota): the primary key
-- makes a second run, on any replica, find it already sent.
CREATE TABLE webhook_notices (
  key_id text NOT NULL,
  notice text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (key_id, notice)
);

-- The usage quota's reference for key.quota_low: the balance as last set (create, PATCH) or refilled.
ALTER TABLE api_keys ADD COLUMN quota_basis bigint;
UPDATE api_keys SET quota_basis = GREATEST(remaining_uses, coalesce(refill_amount, 0)) WHERE remaining_uses IS NOT NULL;
