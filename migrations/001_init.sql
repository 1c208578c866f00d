-- Keys, the change log (design: revoke-holds), the audit log and the activity counters.

CREATE TABLE api_keys (
  id             text PRIMARY KEY,            -- key_<public id>: lookup by key id is the primary key
  account_id     text NOT NULL,
  environment    text NOT NULL CHECK (environment IN ('live', 'test')),
  label          text NOT NULL,
  scopes         text[] NOT NULL,
  allowed_ips    text[] NOT NULL DEFAULT '{}',
  secret_hash    text NOT NULL,               -- argon2id PHC string of the secret, never the secret
  redacted       text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()), -- ms: cursors round-trip exactly
  created_by     text NOT NULL,
  expires_at     timestamptz,
  revoked_at     timestamptz,
  revoked_reason text,
  replaces       text REFERENCES api_keys (id),
  replaced_by    text REFERENCES api_keys (id),
  version        bigint NOT NULL DEFAULT 1,   -- bumped by every change; guards cache writes
  last_used_at   timestamptz,
  last_used_ip   text
);
-- Listing by account, newest first, with a stable tiebreak for cursors.
CREATE INDEX api_keys_account_created ON api_keys (account_id, created_at DESC, id DESC);

-- One row per committed change that may narrow a key; seq is gap-free in commit order.
CREATE TABLE key_changes (
  seq        bigint PRIMARY KEY,
  key_id     text NOT NULL,
  version    bigint NOT NULL,
  kind       text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
  id         bigserial PRIMARY KEY,
  account_id text NOT NULL,
  key_id     text,
  at         timestamptz NOT NULL DEFAULT now(),
  actor      text NOT NULL,
  action     text NOT NULL,
  source_ip  text,
  changes    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_account ON audit_log (account_id, id DESC);
CREATE INDEX audit_log_key ON audit_log (key_id, id DESC);

-- Authenticate counts in memory; each replica flushes here in batches.
CREATE TABLE key_usage_hourly (
  key_id  text NOT NULL,
  hour    timestamptz NOT NULL,
  outcome text NOT NULL,                      -- ALLOWED or a deny reason
  count   bigint NOT NULL,
  PRIMARY KEY (key_id, hour, outcome)
);

CREATE TABLE key_addresses (
  key_id     text NOT NULL,
  ip         text NOT NULL,
  first_seen timestamptz NOT NULL,
  last_seen  timestamptz NOT NULL,
  count      bigint NOT NULL,
  PRIMARY KEY (key_id, ip)
);

-- Flush batches already applied: a retried flush is recognised and not counted twice.
CREATE TABLE activity_batches (
  id         text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);
