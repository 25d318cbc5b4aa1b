-- Signed webhooks (see migrations/postgres/0012_webhooks.sql).
CREATE TABLE webhook_secrets (
    company_id        INTEGER PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    secret            TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    previous          TEXT,
    previous_until_ms INTEGER NOT NULL DEFAULT 0
);
