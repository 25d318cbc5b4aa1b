-- heatbill's system of record (SQLite, the embedded default). The same tables as
-- migrations/postgres, in SQLite's types: decimals are TEXT (exact, with the scale they were
-- written with; never summed in SQL, where SQLite would use floats), dates are TEXT
-- 'YYYY-MM-DD', timestamps TEXT in UTC. Applied by `heatbill migrate`; an applied migration is
-- never edited: a change is a new file.

CREATE TABLE companies (
    id           INTEGER PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    time_zone    TEXT NOT NULL,
    policies     TEXT NOT NULL DEFAULT '{}',
    data_version INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE heating_seasons (
    company_id INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    starts     TEXT NOT NULL,
    ends       TEXT NOT NULL,
    PRIMARY KEY (company_id, starts),
    CHECK (ends >= starts)
) WITHOUT ROWID;

CREATE TABLE customers (
    company_id  INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, customer_id)
) WITHOUT ROWID;

CREATE TABLE customer_versions (
    company_id     INTEGER NOT NULL,
    customer_id    TEXT NOT NULL,
    valid_from     TEXT NOT NULL,
    class          TEXT NOT NULL CHECK (class IN ('residential', 'non-residential')),
    special_class  TEXT,
    status         TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    metered        INTEGER NOT NULL,
    low_income     INTEGER NOT NULL,
    building_area  TEXT NOT NULL,
    usable_area    TEXT,
    ceiling_height TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    attributes     TEXT NOT NULL DEFAULT '{}',
    digest         BLOB NOT NULL,
    PRIMARY KEY (company_id, customer_id, valid_from),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE readings (
    company_id  INTEGER NOT NULL,
    day         TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    heat_gj     TEXT NOT NULL,
    PRIMARY KEY (company_id, day, customer_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE temperatures (
    company_id  INTEGER NOT NULL,
    day         TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    celsius     TEXT NOT NULL,
    PRIMARY KEY (company_id, day, customer_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE payments (
    company_id  INTEGER NOT NULL,
    payment_id  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    paid_on     TEXT NOT NULL,
    amount      TEXT NOT NULL,
    PRIMARY KEY (company_id, payment_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX payments_by_customer ON payments (company_id, customer_id, paid_on);

CREATE TABLE opening_balances (
    company_id    INTEGER NOT NULL,
    customer_id   TEXT NOT NULL,
    as_of         TEXT NOT NULL,
    arrears       TEXT NOT NULL,
    arrears_since TEXT,
    PRIMARY KEY (company_id, customer_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE plugins (
    digest           TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    info             TEXT NOT NULL,
    component        BLOB NOT NULL,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (name, version)
);

CREATE TABLE chain_versions (
    id             INTEGER PRIMARY KEY,
    company_id     INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    effective_from TEXT NOT NULL,
    digest         TEXT NOT NULL,
    definition     TEXT NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX chain_versions_one_active ON chain_versions (company_id, effective_from) WHERE active;

CREATE TABLE line_kinds (
    chain_version_id INTEGER NOT NULL REFERENCES chain_versions (id) ON DELETE CASCADE,
    entry            INTEGER NOT NULL,
    kind             INTEGER NOT NULL,
    plugin           TEXT NOT NULL,
    plugin_version   TEXT NOT NULL,
    code             TEXT NOT NULL,
    description      TEXT NOT NULL,
    unit             TEXT NOT NULL,
    category         TEXT NOT NULL,
    PRIMARY KEY (chain_version_id, entry, kind)
) WITHOUT ROWID;

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    company_id       INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    bill_date        TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    chain_version_id INTEGER NOT NULL REFERENCES chain_versions (id),
    shard_size       INTEGER NOT NULL,
    shard_count      INTEGER NOT NULL,
    stamp            TEXT NOT NULL,
    started_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at      TEXT,
    report           TEXT,
    UNIQUE (company_id, bill_date, attempt)
);
CREATE UNIQUE INDEX runs_one_running ON runs (company_id, bill_date) WHERE state = 'running';

CREATE TABLE run_shards (
    run_id         INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    shard_no       INTEGER NOT NULL,
    first_customer TEXT NOT NULL,
    end_customer   TEXT,
    state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    token          INTEGER NOT NULL DEFAULT 0,
    customers      INTEGER NOT NULL DEFAULT 0,
    written        INTEGER NOT NULL DEFAULT 0,
    revised        INTEGER NOT NULL DEFAULT 0,
    unchanged      INTEGER NOT NULL DEFAULT 0,
    parked         INTEGER NOT NULL DEFAULT 0,
    totals         TEXT,
    done_at        TEXT,
    PRIMARY KEY (run_id, shard_no)
) WITHOUT ROWID;

CREATE TABLE parked (
    run_id         INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    customer_id    TEXT NOT NULL,
    shard_no       INTEGER NOT NULL,
    error_kind     TEXT NOT NULL,
    plugin         TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    message        TEXT NOT NULL,
    PRIMARY KEY (run_id, customer_id)
) WITHOUT ROWID;

CREATE TABLE bills (
    company_id       INTEGER NOT NULL,
    bill_date        TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    version          INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('billed', 'parked')),
    run_id           INTEGER NOT NULL,
    chain_version_id INTEGER NOT NULL,
    inputs           BLOB NOT NULL,
    total            TEXT NOT NULL,
    customer_total   TEXT NOT NULL,
    government_total TEXT NOT NULL,
    employer_total   TEXT NOT NULL,
    principal        TEXT NOT NULL,
    charged_before   TEXT NOT NULL,
    paid_before      TEXT NOT NULL,
    arrears          TEXT NOT NULL,
    arrears_since    TEXT,
    lines            TEXT NOT NULL,
    reason           TEXT,
    error            TEXT,
    written_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, bill_date, customer_id)
) WITHOUT ROWID;

CREATE TABLE bill_history (
    company_id        INTEGER NOT NULL,
    bill_date         TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    version           INTEGER NOT NULL,
    status            TEXT NOT NULL,
    run_id            INTEGER NOT NULL,
    chain_version_id  INTEGER NOT NULL,
    inputs            BLOB NOT NULL,
    total             TEXT NOT NULL,
    customer_total    TEXT NOT NULL,
    government_total  TEXT NOT NULL,
    employer_total    TEXT NOT NULL,
    principal         TEXT NOT NULL,
    charged_before    TEXT NOT NULL,
    paid_before       TEXT NOT NULL,
    arrears           TEXT NOT NULL,
    arrears_since     TEXT,
    lines             TEXT NOT NULL,
    reason            TEXT,
    error             TEXT,
    written_at        TEXT NOT NULL,
    superseded_by_run INTEGER NOT NULL,
    superseded_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, bill_date, customer_id, version)
) WITHOUT ROWID;

CREATE VIEW bill_lines AS
SELECT b.company_id, b.bill_date, b.customer_id, b.version, l.key + 1 AS line_no,
       k.plugin, k.plugin_version, k.code, k.description, k.unit, k.category,
       json_extract(l.value, '$[2]') AS quantity, json_extract(l.value, '$[3]') AS unit_price,
       json_extract(l.value, '$[4]') AS amount,
       CASE json_extract(l.value, '$[5]') WHEN 'c' THEN 'customer' WHEN 'g' THEN 'government'
            ELSE 'employer' END AS payer
FROM bills b, json_each(b.lines) AS l
JOIN line_kinds k ON k.chain_version_id = b.chain_version_id
                 AND k.entry = json_extract(l.value, '$[0]') AND k.kind = json_extract(l.value, '$[1]');

CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    company_id  INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    inserted    INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    unchanged   INTEGER NOT NULL,
    imported_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
