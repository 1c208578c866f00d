-- Refused admin attempts (401, 403) are folded: one audit entry per account, reason, actor and source
-- address per window, with a count, so a stranger's wrong tokens cannot flood an account's audit log
-- (each entry is kept for the audit retention). Every other entry counts 1 and has no window.
ALTER TABLE audit_log ADD COLUMN count bigint NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN last_at timestamptz;
ALTER TABLE audit_log ADD COLUMN refusal_window timestamptz;

-- The upsert's arbiter: replicas that refuse at once add to one entry (ON CONFLICT DO UPDATE).
-- Partial: only refusals are indexed, not the whole audit log. An unknown source address is one address.
CREATE UNIQUE INDEX audit_log_refusal_window ON audit_log (account_id, refusal_window, action, actor, (coalesce(source_ip, '')))
  WHERE refusal_window IS NOT NULL;
