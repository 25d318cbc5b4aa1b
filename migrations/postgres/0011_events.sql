-- Events out (docs/events.md): an outbox written in the same transaction as the change that
-- causes an event, the delivery of each event to each of the company's targets, and the fee
-- control's state per customer.
--
-- An event is never edited and never written twice: `event_key` is its idempotency key, stable
-- across retries and re-runs (a re-run of a night writes the same keys and finds them there).
CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id   integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    event_key    text COLLATE "C" NOT NULL,
    kind         text NOT NULL,
    customer_id  text COLLATE "C",
    -- The event as published (JSON text, the key and kind included).
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, event_key)
);
CREATE INDEX events_customer ON events (company_id, customer_id, id);

-- One row per event and target, written with the event. `next_at_ms` is when the publisher may
-- try it (epoch milliseconds, the same on both databases).
CREATE TABLE event_deliveries (
    event_id     bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    company_id   integer NOT NULL,
    target       text NOT NULL,
    state        text NOT NULL CHECK (state IN ('pending', 'delivered', 'acknowledged', 'failed', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at_ms   bigint NOT NULL DEFAULT 0,
    last_error   text,
    delivered_at timestamptz,
    acknowledged_at timestamptz,
    PRIMARY KEY (event_id, target)
);
-- The publisher's queue: what is due, oldest event first.
CREATE INDEX event_deliveries_due ON event_deliveries (target, state, event_id)
    WHERE state IN ('pending', 'failed');

-- Fee control's state of a customer's valve: what heatbill last asked for (no row: open, never
-- asked), what the valve last reported, and the operator's exemptions.
CREATE TABLE valve_states (
    company_id   integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    customer_id  text COLLATE "C" NOT NULL,
    requested    text NOT NULL DEFAULT 'open' CHECK (requested IN ('open', 'closed')),
    request_key  text,
    requested_at timestamptz,
    warned       boolean NOT NULL DEFAULT false,
    reported     text CHECK (reported IN ('open', 'closed', 'fault')),
    reported_at  timestamptz,
    acknowledged boolean NOT NULL DEFAULT false,
    escalated    boolean NOT NULL DEFAULT false,
    hold         boolean NOT NULL DEFAULT false,
    disputed     boolean NOT NULL DEFAULT false,
    note         text,
    PRIMARY KEY (company_id, customer_id)
);
CREATE INDEX valve_states_closed ON valve_states (company_id, requested) WHERE requested = 'closed';

-- The outdoor temperature of a day, for a "no closing below" rule.
CREATE TABLE outdoor_temperatures (
    company_id   integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    day          date NOT NULL,
    celsius      numeric NOT NULL,
    PRIMARY KEY (company_id, day)
);

-- E-invoice (数电票) requests: one per payment (blue), one per refund or reversal of an invoiced
-- payment (red-letter, 红字, referencing its blue one), written in the entry's transaction, and
-- the provider's answer.
CREATE TABLE invoice_requests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id    integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    request_key   text COLLATE "C" NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('blue', 'red')),
    customer_id   text COLLATE "C" NOT NULL,
    entry_id      bigint NOT NULL,
    original_id   bigint REFERENCES invoice_requests (id),
    amount        numeric NOT NULL,
    on_date       date NOT NULL,
    -- The request as published (seller, buyer, lines, totals): JSON text.
    body          text NOT NULL,
    state         text NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'issued', 'refused')),
    invoice_number text,
    pdf_url       text,
    ofd_url       text,
    reason        text,
    answered_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, request_key),
    UNIQUE (company_id, entry_id)
);
CREATE INDEX invoice_requests_date ON invoice_requests (company_id, on_date, id);
