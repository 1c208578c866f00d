-- At scale: a list filter that few of a large account's keys match (status=revoked or
-- expired, in_grace=true) read every key of the account to fill one page: with 10,000 keys spread
-- over a million-row table, up to 10,000 heap pages, 0.5 s. Each of these partial indexes holds only
-- the keys such a filter can match, in the list's order, so a page reads about its own rows.
-- Plain CREATE INDEX (a migration is one transaction): it blocks writes to api_keys while it builds,
-- about a second per index at a million keys.
CREATE INDEX api_keys_account_revoked ON api_keys (account_id, created_at DESC, id DESC) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_account_expiring ON api_keys (account_id, created_at DESC, id DESC) WHERE expires_at IS NOT NULL;
CREATE INDEX api_keys_account_rotated ON api_keys (account_id, created_at DESC, id DESC) WHERE replaced_by IS NOT NULL;
