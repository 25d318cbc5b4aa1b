-- Signed webhooks (docs/events.md): each company's signing secret. After a rotation the previous
-- secret signs beside the new one until `previous_until_ms` (epoch milliseconds), so a receiver
-- can switch to the new secret without refusing a delivery.
CREATE TABLE webhook_secrets (
    company_id        integer PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    secret            text NOT NULL,
    created_at_ms     bigint NOT NULL,
    previous          text,
    previous_until_ms bigint NOT NULL DEFAULT 0
);
