-- The customer directory (see migrations/postgres/0006_profiles.sql for what each column
-- means): effective-dated, append-only revisions of a customer's account number, name, phone
-- and address. Text compares in byte order here (SQLite's BINARY), as PostgreSQL's "C".
CREATE TABLE customer_profiles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id  INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    account_no  TEXT,
    name        TEXT,
    phone       TEXT,
    community   TEXT,
    building    TEXT,
    unit        TEXT,
    room        TEXT,
    phone_rev   TEXT,
    address_key TEXT,
    reason      TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    source      TEXT NOT NULL,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);
CREATE INDEX customer_profiles_by_customer
    ON customer_profiles (company_id, customer_id, valid_from, id);
CREATE INDEX customer_profiles_by_account ON customer_profiles (company_id, account_no);
CREATE INDEX customer_profiles_by_name ON customer_profiles (company_id, name);
CREATE INDEX customer_profiles_by_phone ON customer_profiles (company_id, phone_rev);
CREATE INDEX customer_profiles_by_address ON customer_profiles (company_id, address_key);
