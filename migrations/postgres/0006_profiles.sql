-- The customer directory: who a customer is and where they live (account number 户号, name,
-- phone, address as community 小区 / building 楼号 / unit 单元 / room 房号). Bills do not depend
-- on it, so a change here never makes a billed day stale.
--
-- Effective-dated and append-only: each change is a new revision with its valid_from, who, why
-- and from where. The profile in force on a date is the latest revision (greatest id) of the
-- greatest valid_from on or before it; a search looks at each customer's newest revision.
-- Nothing here is updated or deleted.
CREATE TABLE customer_profiles (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id  integer NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    valid_from  date NOT NULL,
    account_no  text COLLATE "C",
    -- Personal data: never logged, masked in lists unless asked for.
    name        text COLLATE "C",
    phone       text,
    community   text,
    building    text,
    unit        text,
    room        text,
    -- The phone's digits reversed: a search by the last digits is a prefix range here.
    phone_rev   text COLLATE "C",
    -- community, building, unit, room, each followed by U+001F: an address search is a prefix
    -- range here, each part matched whole.
    address_key text COLLATE "C",
    reason      text NOT NULL,
    recorded_by text NOT NULL,
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (company_id, customer_id) REFERENCES customers ON DELETE CASCADE
);
CREATE INDEX customer_profiles_by_customer
    ON customer_profiles (company_id, customer_id, valid_from, id);
CREATE INDEX customer_profiles_by_account ON customer_profiles (company_id, account_no);
CREATE INDEX customer_profiles_by_name ON customer_profiles (company_id, name);
CREATE INDEX customer_profiles_by_phone ON customer_profiles (company_id, phone_rev);
CREATE INDEX customer_profiles_by_address ON customer_profiles (company_id, address_key);
