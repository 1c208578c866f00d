-- Leak reports of real keys (GitHub secret scanning, other scanners): one row per key and place
-- found, shown as `leaked` alerts in the key's activity. Never the token: only where it was seen.

CREATE TABLE key_leaks (
  id          bigserial PRIMARY KEY,
  key_id      text NOT NULL,
  account_id  text NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now(),
  reporter    text NOT NULL,                 -- the audit actor: github-secret-scanning or an admin's name
  source      text NOT NULL,                 -- where the scanner found it (GitHub's `source`, e.g. commit)
  url         text,                          -- where it was published, when known
  outcome     text NOT NULL CHECK (outcome IN ('revoked', 'already_revoked'))
);
CREATE INDEX key_leaks_key ON key_leaks (key_id, id DESC);
