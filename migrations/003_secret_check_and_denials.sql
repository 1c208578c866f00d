-- Wrong secrets are refused without argon2, and denied calls no longer grow key_addresses.

-- The first 4 bytes of SHA-256 of the secret, hex: a wrong secret is refused without hashing, so
-- wrong guesses cost the service nothing and need no lockout of the key (design invariant 13).
-- It leaves 158 of the secret's 190 bits unknown. NULL for keys made before it: filled in on the
-- key's next successful verification.
ALTER TABLE api_keys ADD COLUMN secret_check text;

-- A bounded sample of the addresses denied calls came from (at most 50 per key, newest kept):
-- denied calls are counted per reason in key_usage_hourly, never one row per stranger's address.
CREATE TABLE key_denied_addresses (
  key_id     text NOT NULL,
  ip         text NOT NULL,
  reason     text NOT NULL,
  last_seen  timestamptz NOT NULL,
  count      bigint NOT NULL,
  PRIMARY KEY (key_id, ip)
);

-- Retention (the pruning job deletes by time).
CREATE INDEX key_changes_at ON key_changes (at);
CREATE INDEX activity_batches_applied_at ON activity_batches (applied_at);
CREATE INDEX key_usage_hourly_hour ON key_usage_hourly (hour);
CREATE INDEX audit_log_at ON audit_log (at);
