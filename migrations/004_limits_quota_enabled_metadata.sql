-- Per-key rate limits, a usage quota with refill, disabling without revoking, and metadata.

-- Disabled keys are refused (KEY_DISABLED) until enabled again; revoking stays final.
ALTER TABLE api_keys ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- At most 5 named limits [{name, limit, window_seconds}], enforced for the key across every replica
-- in fixed windows aligned to the epoch (counters in Redis; see README "Rate limits and quotas").
ALTER TABLE api_keys ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '[]';

-- The usage quota: NULL = unlimited. Replicas lease shares of it here (UPDATE ... RETURNING), so it
-- is exact across replicas; a refill sets it back to refill_amount at the start of each UTC day or
-- month (refilled_at: when it last did, or when the quota was set).
ALTER TABLE api_keys ADD COLUMN remaining_uses bigint CHECK (remaining_uses >= 0);
ALTER TABLE api_keys ADD COLUMN refill_amount bigint CHECK (refill_amount >= 1);
ALTER TABLE api_keys ADD COLUMN refill_interval text CHECK (refill_interval IN ('daily', 'monthly'));
ALTER TABLE api_keys ADD COLUMN refilled_at timestamptz;

-- A JSON object (at most 4 KB) returned by Authenticate; never used for the decision.
ALTER TABLE api_keys ADD COLUMN metadata jsonb;
