-- Runtime II: many hosts share one run. A shard is claimed with a lease (renewed while the
-- holder works) and a fencing token from a sequence; the writer's transaction checks its token
-- (run_shards.token), so a holder paused past its lease cannot write once another has claimed
-- the shard, whatever Redis says.
ALTER TABLE run_shards
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN claimed_by  text,
    ADD COLUMN claims      integer NOT NULL DEFAULT 0;
CREATE SEQUENCE shard_tokens;
CREATE INDEX run_shards_claimable ON run_shards (run_id, shard_no) WHERE state = 'pending';

-- Bumped by imports that change customers (and only them): caches of customer data key on it,
-- so a day's readings import does not throw away every cached shard.
ALTER TABLE companies ADD COLUMN customers_version bigint NOT NULL DEFAULT 0;
