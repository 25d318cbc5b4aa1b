-- The admin API (`heatbill serve`): which company uploaded which plugin, the case files attached
-- to them, API tokens, run requests by idempotency key, and each company's nightly schedule.

-- A plugin's name and version are unique within a company, not across companies (the table is
-- rebuilt without its UNIQUE (name, version); company_plugins enforces it per company).
CREATE TABLE plugins_new (
    digest           TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    info             TEXT NOT NULL,
    component        BLOB NOT NULL,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO plugins_new SELECT digest, name, version, kind, contract_version, info, component, created_at FROM plugins;
DROP TABLE plugins;
ALTER TABLE plugins_new RENAME TO plugins;

CREATE TABLE company_plugins (
    company_id  INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    digest      TEXT NOT NULL REFERENCES plugins (digest),
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    uploaded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, digest),
    UNIQUE (company_id, name, version)
);
INSERT OR IGNORE INTO company_plugins (company_id, digest, name, version)
SELECT DISTINCT c.company_id, p.digest, p.name, p.version
FROM chain_versions c, json_each(c.definition) e
JOIN plugins p ON p.digest = json_extract(e.value, '$.plugin');

CREATE TABLE plugin_cases (
    company_id  INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    passed      INTEGER NOT NULL,
    report      TEXT NOT NULL,
    uploaded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, digest, name),
    FOREIGN KEY (company_id, digest) REFERENCES company_plugins (company_id, digest) ON DELETE CASCADE
);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    company_id  INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('integrator', 'staff', 'read-only')),
    label       TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at  TEXT
);

CREATE TABLE run_requests (
    company_id      INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    request         TEXT NOT NULL,
    run_id          INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, idempotency_key)
);

CREATE TABLE schedules (
    company_id INTEGER PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    run_at     TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
