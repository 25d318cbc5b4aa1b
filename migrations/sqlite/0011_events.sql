-- Events out (see migrations/postgres/0011_events.sql).
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id   INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    event_key    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    customer_id  TEXT,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (company_id, event_key)
);
CREATE INDEX events_customer ON events (company_id, customer_id, id);

CREATE TABLE event_deliveries (
    event_id     INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    company_id   INTEGER NOT NULL,
    target       TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'acknowledged', 'failed', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at_ms   INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at TEXT,
    acknowledged_at TEXT,
    PRIMARY KEY (event_id, target)
);
CREATE INDEX event_deliveries_due ON event_deliveries (target, state, event_id);

CREATE TABLE valve_states (
    company_id   INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    customer_id  TEXT NOT NULL,
    requested    TEXT NOT NULL DEFAULT 'open' CHECK (requested IN ('open', 'closed')),
    request_key  TEXT,
    requested_at TEXT,
    warned       INTEGER NOT NULL DEFAULT 0,
    reported     TEXT CHECK (reported IN ('open', 'closed', 'fault')),
    reported_at  TEXT,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    escalated    INTEGER NOT NULL DEFAULT 0,
    hold         INTEGER NOT NULL DEFAULT 0,
    disputed     INTEGER NOT NULL DEFAULT 0,
    note         TEXT,
    PRIMARY KEY (company_id, customer_id)
);
CREATE INDEX valve_states_closed ON valve_states (company_id, requested);

CREATE TABLE outdoor_temperatures (
    company_id   INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    day          TEXT NOT NULL,
    celsius      TEXT NOT NULL,
    PRIMARY KEY (company_id, day)
);

CREATE TABLE invoice_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id    INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    request_key   TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('blue', 'red')),
    customer_id   TEXT NOT NULL,
    entry_id      INTEGER NOT NULL,
    original_id   INTEGER REFERENCES invoice_requests (id),
    amount        TEXT NOT NULL,
    on_date       TEXT NOT NULL,
    body          TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'issued', 'refused')),
    invoice_number TEXT,
    pdf_url       TEXT,
    ofd_url       TEXT,
    reason        TEXT,
    answered_at   TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (company_id, request_key),
    UNIQUE (company_id, entry_id)
);
CREATE INDEX invoice_requests_date ON invoice_requests (company_id, on_date, id);
