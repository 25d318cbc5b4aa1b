-- Payment notices (see migrations/postgres/0010_notices.sql).
ALTER TABLE bills ADD COLUMN due_through TEXT;
ALTER TABLE bill_history ADD COLUMN due_through TEXT;

CREATE TABLE notices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id   INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    customer_id  TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('month', 'season')),
    period_start TEXT NOT NULL,
    period_end   TEXT NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    issued_on    TEXT NOT NULL,
    due_on       TEXT NOT NULL,
    amount       TEXT NOT NULL,
    lines        TEXT NOT NULL,
    projected    INTEGER NOT NULL,
    run_id       INTEGER,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (company_id, customer_id, kind, period_start, seq),
    CHECK (period_start <= period_end AND issued_on <= due_on)
);
CREATE INDEX notices_due ON notices (company_id, due_on, customer_id);
CREATE INDEX notices_issued ON notices (company_id, issued_on, id);

CREATE TABLE notice_periods (
    company_id   INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    period_start TEXT NOT NULL,
    period_end   TEXT NOT NULL,
    issued_on    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('projected', 'settled')),
    dirty        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (company_id, kind, period_start)
);
