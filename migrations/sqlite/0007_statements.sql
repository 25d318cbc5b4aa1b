-- Channel statements and their reconciliation (see migrations/postgres/0007_statements.sql).
--
-- A bank's saved column mapping: how its CSV statement's columns are named, and the rule that
-- finds a customer's account number in its memo (JSON, heatbill_statements::BankProfile).
CREATE TABLE bank_profiles (
    company_id integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    name       text NOT NULL,
    profile    text NOT NULL,
    saved_by   text NOT NULL,
    saved_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, name)
);

-- Each statement file imported is a reconciliation of its own, kept: the file (by its SHA-256,
-- so the same file again changes nothing), its period, its totals, and how it compared with
-- the ledger.
CREATE TABLE statements (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id          integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    channel             text NOT NULL CHECK (channel IN ('wechat', 'alipay', 'bank')),
    file_name           text NOT NULL,
    sha256              text NOT NULL,
    bank_profile        text,
    period_from         TEXT NOT NULL,
    period_to           TEXT NOT NULL,
    lines               bigint NOT NULL,
    payments            TEXT NOT NULL,
    refunds             TEXT NOT NULL,
    fees                TEXT NOT NULL,
    matched             bigint NOT NULL,
    missing_in_heatbill bigint NOT NULL,
    missing_in_channel  bigint NOT NULL,
    amount_mismatch     bigint NOT NULL,
    imported_by         text NOT NULL,
    imported_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (company_id, sha256)
);

-- What did not match, one row per discrepancy (matched lines are counted on the statement).
-- Nothing here changes after the import: a lost notification recovered into a payment is the
-- ledger entry of the same channel and transaction id.
CREATE TABLE statement_items (
    statement_id       bigint NOT NULL REFERENCES statements (id) ON DELETE CASCADE,
    item_no            bigint NOT NULL,
    discrepancy        text NOT NULL CHECK (discrepancy IN ('missing-in-heatbill',
                                                            'missing-in-channel',
                                                            'amount-mismatch')),
    line_kind          text CHECK (line_kind IN ('payment', 'refund')),
    line_no            bigint,
    entry_id           bigint,
    customer_id        text,
    channel_txn        text NOT NULL,
    order_no           text,
    account_hint       text,
    channel_amount     TEXT,
    recorded_amount    TEXT,
    txn_time           text,
    on_date            TEXT,
    fee                TEXT NOT NULL,
    -- The customer whose account number the line's order number or memo holds: a lost
    -- notification an operator can recover into a payment with one confirmation.
    suggested_customer text,
    PRIMARY KEY (statement_id, item_no)
);
