-- What is due when (docs/payments.md, "What is due when"): payment notices and the periods
-- they were issued for.
--
-- A bill carries the principal fallen due by the end of its date (`due_through`), so the next
-- day's arrears are what fell due and is unpaid, not everything billed. NULL (every bill of a
-- company without a billing policy, and every bill written before this migration): everything
-- billed was due on its day, `charged_before + principal`.
ALTER TABLE bills ADD COLUMN due_through numeric;
ALTER TABLE bill_history ADD COLUMN due_through numeric;

-- A notice is never edited: a correction is an adjusting notice of the same period, the next
-- `seq`. The notices of a customer's period add up to what its daily bills charged.
CREATE TABLE notices (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id   integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    customer_id  text COLLATE "C" NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('month', 'season')),
    period_start date NOT NULL,
    period_end   date NOT NULL,
    seq          integer NOT NULL CHECK (seq >= 0),
    issued_on    date NOT NULL,
    due_on       date NOT NULL,
    amount       numeric NOT NULL,
    -- [{"code", "description", "amount"}], by code.
    lines        text NOT NULL,
    projected    boolean NOT NULL,
    run_id       bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, customer_id, kind, period_start, seq),
    CHECK (period_start <= period_end AND issued_on <= due_on)
);
-- A run reads the notices due on its date, a shard (a range of customers) at a time.
CREATE INDEX notices_due ON notices (company_id, due_on, customer_id);
CREATE INDEX notices_issued ON notices (company_id, issued_on, id);

-- Which periods were issued, and which need their bills added up again (a date in them was
-- billed again after their notices were issued).
CREATE TABLE notice_periods (
    company_id   integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    issued_on    date NOT NULL,
    -- 'projected': issued on a projection, to be settled when the period is over;
    -- 'settled': its notices add up to its bills (until a date in it is billed again).
    state        text NOT NULL CHECK (state IN ('projected', 'settled')),
    dirty        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (company_id, kind, period_start)
);
