-- The account ledger (see migrations/postgres/0005_ledger.sql for what each column means): an
-- append-only entry per money movement of a customer other than the daily charges (the bills).
-- `amount` is signed from the customer's side (a payment is positive, a reversal negative).
CREATE TABLE account_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id  INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL
                CHECK (kind IN ('payment', 'reversal', 'refund', 'adjustment', 'write-off')),
    on_date     TEXT NOT NULL,
    amount      TEXT NOT NULL,
    channel     TEXT CHECK (channel IN ('counter', 'wechat', 'alipay', 'bank', 'government',
                                        'import')),
    channel_txn TEXT,
    method      TEXT,
    receipt_no  TEXT,
    cashier     TEXT,
    reason_code TEXT,
    note        TEXT,
    undoes      INTEGER REFERENCES account_entries (id),
    recorded_by TEXT NOT NULL,
    source      TEXT NOT NULL,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE,
    UNIQUE (company_id, channel, channel_txn),
    CHECK (kind <> 'payment' OR (channel IS NOT NULL AND channel_txn IS NOT NULL)),
    CHECK ((kind IN ('reversal', 'refund')) = (undoes IS NOT NULL))
);
CREATE INDEX account_entries_by_customer ON account_entries (company_id, customer_id, on_date);
CREATE INDEX account_entries_by_day ON account_entries (company_id, on_date);
CREATE INDEX account_entries_undoing ON account_entries (undoes) WHERE undoes IS NOT NULL;

INSERT INTO account_entries (company_id, customer_id, kind, on_date, amount, channel,
                             channel_txn, recorded_by, source)
SELECT company_id, customer_id, 'payment', paid_on, amount, 'import', payment_id, 'import',
       'migration 0005'
FROM payments ORDER BY company_id, paid_on, payment_id;
DROP TABLE payments;

ALTER TABLE bills ADD COLUMN fees_before TEXT NOT NULL DEFAULT '0';
ALTER TABLE bill_history ADD COLUMN fees_before TEXT NOT NULL DEFAULT '0';

-- The first billed date a correction reached since its last run (a ledger entry or an import
-- dated before days already billed, a chain version from a billed date): it and every billed
-- date after it are stale until run again, in order. `stale_version` is the data version of the
-- latest such correction: a run that started before it does not clear the mark.
ALTER TABLE companies ADD COLUMN stale_from TEXT;
ALTER TABLE companies ADD COLUMN stale_version INTEGER NOT NULL DEFAULT 0;
