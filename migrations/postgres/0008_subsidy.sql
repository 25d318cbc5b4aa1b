-- The government receivable (docs/payments.md, "The government's share"): the transfers the
-- government sends against its share of the bills. Append-only: a transfer returned or recorded
-- wrong is undone by a negative transfer that names it. The reference (the transfer's id in the
-- bank or treasury) makes a transfer recorded twice one transfer.
CREATE TABLE government_transfers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id  integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    reference   text COLLATE "C" NOT NULL,
    received_on date NOT NULL,
    amount      numeric NOT NULL CHECK (amount <> 0),
    period_from date,
    period_to   date,
    undoes      bigint REFERENCES government_transfers (id),
    note        text,
    recorded_by text NOT NULL,
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, reference),
    CHECK ((period_from IS NULL) = (period_to IS NULL) AND period_from <= period_to),
    CHECK ((amount < 0) = (undoes IS NOT NULL))
);
CREATE INDEX government_transfers_by_day ON government_transfers (company_id, received_on);
