-- The government receivable (see migrations/postgres/0008_subsidy.sql).
CREATE TABLE government_transfers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id  INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    reference   TEXT NOT NULL,
    received_on TEXT NOT NULL,
    amount      TEXT NOT NULL,
    period_from TEXT,
    period_to   TEXT,
    undoes      INTEGER REFERENCES government_transfers (id),
    note        TEXT,
    recorded_by TEXT NOT NULL,
    source      TEXT NOT NULL,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (company_id, reference),
    CHECK ((period_from IS NULL) = (period_to IS NULL) AND period_from <= period_to),
    CHECK ((amount LIKE '-%') = (undoes IS NOT NULL))
);
CREATE INDEX government_transfers_by_day ON government_transfers (company_id, received_on);
