-- Channel statements and their reconciliation (docs/payments.md).
--
-- A bank's saved column mapping: how its CSV statement's columns are named, and the rule that
-- finds a customer's account number in its memo (JSON, heatbill_statements::BankProfile).
CREATE TABLE bank_profiles (
    company_id integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    name       text COLLATE "C" NOT NULL,
    profile    text NOT NULL,
    saved_by   text NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, name)
);

-- Each statement file imported is a reconciliation of its own, kept: the file (by its SHA-256,
-- so the same file again changes nothing), its period, its totals, and how it compared with
-- the ledger.
CREATE TABLE statements (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id          integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    channel             text NOT NULL CHECK (channel IN ('wechat', 'alipay', 'bank')),
    file_name           text NOT NULL,
    sha256              text NOT NULL,
    bank_profile        text,
    period_from         date NOT NULL,
    period_to           date NOT NULL,
    lines               bigint NOT NULL,
    payments            numeric NOT NULL,
    refunds             numeric NOT NULL,
    fees                numeric NOT NULL,
    matched             bigint NOT NULL,
    missing_in_heatbill bigint NOT NULL,
    missing_in_channel  bigint NOT NULL,
    amount_mismatch     bigint NOT NULL,
    imported_by         text NOT NULL,
    imported_at         timestamptz NOT NULL DEFAULT now(),
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
    customer_id        text COLLATE "C",
    channel_txn        text COLLATE "C" NOT NULL,
    order_no           text,
    account_hint       text,
    channel_amount     numeric,
    recorded_amount    numeric,
    txn_time           text,
    on_date            date,
    fee                numeric NOT NULL,
    -- The customer whose account number the line's order number or memo holds: a lost
    -- notification an operator can recover into a payment with one confirmation.
    suggested_customer text COLLATE "C",
    PRIMARY KEY (statement_id, item_no)
);
