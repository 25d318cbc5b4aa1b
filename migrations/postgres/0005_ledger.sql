-- The account ledger: every money movement of a customer other than the daily charges (which
-- are the bills) is an append-only entry, with who, when, why and where it came from. Nothing
-- here is updated or deleted: a mistake is undone by a new entry that names the one it undoes.
--
-- `amount` is the entry's effect on the account, signed from the customer's side: a payment,
-- a credit adjustment or a write-off is positive (it pays), a reversal, a refund or a debit
-- adjustment negative. A customer's balance at the end of a day is the principal and late fees
-- billed up to it (the bills) less the sum of the entries dated up to it.
CREATE TABLE account_entries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id  integer NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    kind        text NOT NULL
                CHECK (kind IN ('payment', 'reversal', 'refund', 'adjustment', 'write-off')),
    -- The value date: the entry counts in the balances of the days after it.
    on_date     date NOT NULL,
    amount      numeric NOT NULL CHECK (amount <> 0),
    channel     text CHECK (channel IN ('counter', 'wechat', 'alipay', 'bank', 'government',
                                        'import')),
    -- The channel's transaction id (a counter receipt's number): a payment recorded twice
    -- (a notification delivered again, two cashiers at once) is one entry.
    channel_txn text COLLATE "C",
    method      text,
    receipt_no  text,
    cashier     text,
    reason_code text,
    note        text,
    -- The payment a reversal or a refund undoes.
    undoes      bigint REFERENCES account_entries (id),
    recorded_by text NOT NULL,
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE,
    UNIQUE (company_id, channel, channel_txn),
    CHECK (kind <> 'payment' OR (amount > 0 AND channel IS NOT NULL AND channel_txn IS NOT NULL)),
    CHECK ((kind IN ('reversal', 'refund')) = (undoes IS NOT NULL)),
    CHECK (kind NOT IN ('reversal', 'refund') OR amount < 0),
    CHECK (kind <> 'write-off' OR amount > 0)
);
CREATE INDEX account_entries_by_customer ON account_entries (company_id, customer_id, on_date);
CREATE INDEX account_entries_by_day ON account_entries (company_id, on_date);
CREATE INDEX account_entries_undoing ON account_entries (undoes) WHERE undoes IS NOT NULL;

-- The payments imported before the ledger are its first entries (channel `import`, their
-- payment id as the channel's transaction id).
INSERT INTO account_entries (company_id, customer_id, kind, on_date, amount, channel,
                             channel_txn, recorded_by, source)
SELECT company_id, customer_id, 'payment', paid_on, amount, 'import', payment_id, 'import',
       'migration 0005'
FROM payments ORDER BY company_id, paid_on, payment_id;
DROP TABLE payments;

-- Late fees billed before a bill's date (cumulative, like charged_before for principal): what
-- the allocation policy needs to settle late fees before or after principal. Bills written
-- before this migration carry 0.
ALTER TABLE bills ADD COLUMN fees_before numeric NOT NULL DEFAULT 0;
ALTER TABLE bill_history ADD COLUMN fees_before numeric NOT NULL DEFAULT 0;

-- The first billed date a correction reached since its last run (a ledger entry or an import
-- dated before days already billed, a chain version from a billed date): it and every billed
-- date after it are stale until run again, in order. `stale_version` is the data version of the
-- latest such correction: a run that started before it does not clear the mark.
ALTER TABLE companies ADD COLUMN stale_from date;
ALTER TABLE companies ADD COLUMN stale_version bigint NOT NULL DEFAULT 0;
