-- heatbill's system of record (PostgreSQL). Applied by `heatbill migrate`; an applied migration
-- is never edited: a change is a new file.
--
-- Identifiers a company supplies (customer ids, payment ids) are text with the "C" collation:
-- byte order, the same on every host and the same order SQLite gives, so shard boundaries cut
-- on one backend mean the same on the other.

CREATE TABLE companies (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         text COLLATE "C" NOT NULL UNIQUE,
    name         text NOT NULL,
    time_zone    text NOT NULL,
    policies     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Bumped by every write path of the company's data (import, chain change): caches key on it.
    data_version bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The regular heating season of each year (start and end inclusive).
CREATE TABLE heating_seasons (
    company_id integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    starts     date NOT NULL,
    ends       date NOT NULL,
    PRIMARY KEY (company_id, starts),
    CHECK (ends >= starts)
);

CREATE TABLE customers (
    company_id  integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    customer_id text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, customer_id)
);

-- What a bill depends on, by effective date: a bill for date D sees the version with the
-- greatest valid_from <= D. Decimals keep the scale they were imported with.
CREATE TABLE customer_versions (
    company_id     integer NOT NULL,
    customer_id    text COLLATE "C" NOT NULL,
    valid_from     date NOT NULL,
    class          text NOT NULL CHECK (class IN ('residential', 'non-residential')),
    special_class  text,
    status         text NOT NULL CHECK (status IN ('active', 'suspended')),
    metered        boolean NOT NULL,
    low_income     boolean NOT NULL,
    building_area  numeric NOT NULL,
    usable_area    numeric,
    ceiling_height numeric,
    -- JSON: an array of strings, an object of string values (canonical: no spaces, keys sorted).
    tags           text NOT NULL DEFAULT '[]',
    attributes     text NOT NULL DEFAULT '{}',
    -- 8 bytes of SHA-256 of the fields above, computed by the import: a run compares it with
    -- the digest stored on each bill instead of reading every customer's data.
    digest         bytea NOT NULL,
    PRIMARY KEY (company_id, customer_id, valid_from),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);

-- Metered heat per customer and day, in GJ (hourly readings are summed on import).
CREATE TABLE readings (
    company_id  integer NOT NULL,
    day         date NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    heat_gj     numeric NOT NULL,
    PRIMARY KEY (company_id, day, customer_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);

-- Measured indoor temperature per customer and day, in °C.
CREATE TABLE temperatures (
    company_id  integer NOT NULL,
    day         date NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    celsius     numeric NOT NULL,
    PRIMARY KEY (company_id, day, customer_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);

CREATE TABLE payments (
    company_id  integer NOT NULL,
    payment_id  text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    paid_on     date NOT NULL,
    amount      numeric NOT NULL CHECK (amount > 0),
    PRIMARY KEY (company_id, payment_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);
CREATE INDEX payments_by_customer ON payments (company_id, customer_id, paid_on);

-- What a customer owed when the company moved to heatbill: unpaid principal at the start of
-- `as_of`, overdue since `arrears_since`.
CREATE TABLE opening_balances (
    company_id    integer NOT NULL,
    customer_id   text COLLATE "C" NOT NULL,
    as_of         date NOT NULL,
    arrears       numeric NOT NULL CHECK (arrears >= 0),
    arrears_since date,
    PRIMARY KEY (company_id, customer_id),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);

-- Components by the SHA-256 of their bytes; one (name, version) is one component.
CREATE TABLE plugins (
    digest           text PRIMARY KEY,
    name             text NOT NULL,
    version          text NOT NULL,
    kind             text NOT NULL,
    contract_version text NOT NULL,
    info             jsonb NOT NULL,
    component        bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

-- A company's rule chain versions. The active version with the greatest effective_from <= D
-- bills date D. A definition is never edited: a correction is a new row for the same date,
-- which becomes the active one (the old row stays for audit and rollback).
CREATE TABLE chain_versions (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id     integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    effective_from date NOT NULL,
    -- SHA-256 of the canonical definition: plugin digests and parameters, in order.
    digest         text NOT NULL,
    definition     jsonb NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX chain_versions_one_active ON chain_versions (company_id, effective_from) WHERE active;

-- The line kinds each entry of a chain version announced in configure (plugins are pure, so
-- they are the same on every host). A stored bill names its lines' kinds by (entry, kind).
CREATE TABLE line_kinds (
    chain_version_id integer NOT NULL REFERENCES chain_versions (id) ON DELETE CASCADE,
    entry            smallint NOT NULL,
    kind             smallint NOT NULL,
    plugin           text NOT NULL,
    plugin_version   text NOT NULL,
    code             text NOT NULL,
    description      text NOT NULL,
    unit             text NOT NULL,
    category         text NOT NULL,
    PRIMARY KEY (chain_version_id, entry, kind)
);

-- One daily run of one company and date. Attempt 1 is the night's run; later attempts are
-- re-runs. At most one is running per (company, date).
CREATE TABLE runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id       integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    bill_date        date NOT NULL,
    attempt          integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    chain_version_id integer NOT NULL REFERENCES chain_versions (id),
    shard_size       integer NOT NULL,
    shard_count      integer NOT NULL,
    -- What the run's inputs were as a whole: the company's data version, the chain version,
    -- the previous day's latest run, heatbill's version. A re-run with the same stamp as the
    -- last completed run (which parked no one) has nothing to compute.
    stamp            text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    report           jsonb,
    UNIQUE (company_id, bill_date, attempt)
);
CREATE UNIQUE INDEX runs_one_running ON runs (company_id, bill_date) WHERE state = 'running';

-- A run's shards: ranges of customer ids fixed when the run starts, so a resumed run cuts the
-- same shards. A shard's bills, its parked customers and its state change in one transaction.
CREATE TABLE run_shards (
    run_id         bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    shard_no       integer NOT NULL,
    first_customer text COLLATE "C" NOT NULL,
    end_customer   text COLLATE "C",
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    -- The claim's token (Runtime II fences writers with it; 0 = unclaimed).
    token          bigint NOT NULL DEFAULT 0,
    customers      integer NOT NULL DEFAULT 0,
    written        integer NOT NULL DEFAULT 0,
    revised        integer NOT NULL DEFAULT 0,
    unchanged      integer NOT NULL DEFAULT 0,
    parked         integer NOT NULL DEFAULT 0,
    -- Amounts by line code and payer, for the run's report (JSON object of decimal strings).
    totals         jsonb,
    done_at        timestamptz,
    PRIMARY KEY (run_id, shard_no)
);

-- The customers a run could not bill, with the engine's error.
CREATE TABLE parked (
    run_id         bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    customer_id    text COLLATE "C" NOT NULL,
    shard_no       integer NOT NULL,
    error_kind     text NOT NULL,
    plugin         text NOT NULL,
    plugin_version text NOT NULL,
    message        text NOT NULL,
    PRIMARY KEY (run_id, customer_id)
);

-- The current bill of each (company, customer, date): one row per bill, its lines packed in one
-- column (1 M bills and 4.5 M line rows took 30 s by COPY here, 1 M single rows 4.3 s).
-- `lines` is a JSON array of [entry, kind, quantity, unit_price, amount, payer] (decimals as
-- strings, payer c/g/e); the `bill_lines` view below unpacks it with the line kinds.
-- A parked customer has a row too (status 'parked', no lines): it carries the customer's
-- balance to the next day, and a later run replaces it with the bill.
-- Balance: charged_before is the principal billed before this date (opening balance included),
-- paid_before the payments before it; arrears = max(0, charged_before - paid_before) is what the
-- plugins saw; principal is what this bill adds (the customer's lines except late fees).
CREATE TABLE bills (
    company_id       integer NOT NULL,
    bill_date        date NOT NULL,
    customer_id      text COLLATE "C" NOT NULL,
    version          integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('billed', 'parked')),
    run_id           bigint NOT NULL,
    chain_version_id integer NOT NULL,
    -- SHA-256 prefixes (8 bytes each) of the inputs: customer, usage, balance, chain.
    inputs           bytea NOT NULL,
    total            numeric NOT NULL,
    customer_total   numeric NOT NULL,
    government_total numeric NOT NULL,
    employer_total   numeric NOT NULL,
    principal        numeric NOT NULL,
    charged_before   numeric NOT NULL,
    paid_before      numeric NOT NULL,
    arrears          numeric NOT NULL,
    arrears_since    date,
    lines            text NOT NULL,
    -- Why this version replaced the previous one (null for version 1).
    reason           text,
    -- For a parked row: the engine's error (kind: message).
    error            text,
    written_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, bill_date, customer_id)
) PARTITION BY RANGE (bill_date);

-- Superseded versions, kept for audit.
CREATE TABLE bill_history (
    company_id        integer NOT NULL,
    bill_date         date NOT NULL,
    customer_id       text COLLATE "C" NOT NULL,
    version           integer NOT NULL,
    status            text NOT NULL,
    run_id            bigint NOT NULL,
    chain_version_id  integer NOT NULL,
    inputs            bytea NOT NULL,
    total             numeric NOT NULL,
    customer_total    numeric NOT NULL,
    government_total  numeric NOT NULL,
    employer_total    numeric NOT NULL,
    principal         numeric NOT NULL,
    charged_before    numeric NOT NULL,
    paid_before       numeric NOT NULL,
    arrears           numeric NOT NULL,
    arrears_since     date,
    lines             text NOT NULL,
    reason            text,
    error             text,
    written_at        timestamptz NOT NULL,
    superseded_by_run bigint NOT NULL,
    superseded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, bill_date, customer_id, version)
);

-- Monthly partitions of `bills`, created ahead by `heatbill migrate` and by each run for its
-- date. Safe to call from several hosts at once.
CREATE FUNCTION heatbill_ensure_bill_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    m       date := date_trunc('month', from_day)::date;
    created integer := 0;
    part    text;
BEGIN
    WHILE m <= to_day LOOP
        part := format('bills_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF bills FOR VALUES FROM (%L) TO (%L)',
                               part, m, (m + interval '1 month')::date);
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL;
            END;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END
$$;

-- Every line of every current bill, with its kind: what an operator queries.
CREATE VIEW bill_lines AS
SELECT b.company_id, b.bill_date, b.customer_id, b.version, l.n AS line_no,
       k.plugin, k.plugin_version, k.code, k.description, k.unit, k.category,
       (l.v ->> 2)::numeric AS quantity, (l.v ->> 3)::numeric AS unit_price,
       (l.v ->> 4)::numeric AS amount,
       CASE l.v ->> 5 WHEN 'c' THEN 'customer' WHEN 'g' THEN 'government' ELSE 'employer' END AS payer
FROM bills b
CROSS JOIN LATERAL jsonb_array_elements(b.lines::jsonb) WITH ORDINALITY AS l (v, n)
JOIN line_kinds k ON k.chain_version_id = b.chain_version_id
                 AND k.entry = (l.v ->> 0)::smallint AND k.kind = (l.v ->> 1)::smallint;

-- Imported files, for audit and idempotency reports.
CREATE TABLE imports (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    file_name  text NOT NULL,
    sha256     text NOT NULL,
    rows       bigint NOT NULL,
    inserted   bigint NOT NULL,
    updated    bigint NOT NULL,
    unchanged  bigint NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
