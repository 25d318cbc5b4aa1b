-- Runtime II: shard claims with leases and fencing tokens (see migrations/postgres), and the
-- version of a company's customer data. Leases are milliseconds since 1970 (unixepoch).
ALTER TABLE run_shards ADD COLUMN lease_until INTEGER;
ALTER TABLE run_shards ADD COLUMN claimed_by TEXT;
ALTER TABLE run_shards ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('shard_tokens', 0);
ALTER TABLE companies ADD COLUMN customers_version INTEGER NOT NULL DEFAULT 0;
