-- The admin API (`heatbill serve`): which company uploaded which plugin, the case files attached
-- to them, API tokens, run requests by idempotency key, and each company's nightly schedule.

-- A plugin's name and version are unique within a company, not across companies: two
-- companies' integrators may each ship their own "late-fee 1.0.0" (company_plugins enforces it).
ALTER TABLE plugins DROP CONSTRAINT plugins_name_version_key;

CREATE TABLE company_plugins (
    company_id  integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    digest      text NOT NULL REFERENCES plugins (digest),
    name        text NOT NULL,
    version     text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, digest),
    UNIQUE (company_id, name, version)
);
-- The plugins the chains of existing companies use are theirs.
INSERT INTO company_plugins (company_id, digest, name, version)
SELECT DISTINCT c.company_id, p.digest, p.name, p.version
FROM chain_versions c CROSS JOIN LATERAL jsonb_array_elements(c.definition) e
JOIN plugins p ON p.digest = e ->> 'plugin'
ON CONFLICT DO NOTHING;

-- An integrator's case files, attached to a plugin version and run at upload: a version whose
-- cases fail cannot be put in a chain.
CREATE TABLE plugin_cases (
    company_id  integer NOT NULL,
    digest      text NOT NULL,
    name        text NOT NULL,
    body        text NOT NULL,
    passed      boolean NOT NULL,
    report      jsonb NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, digest, name),
    FOREIGN KEY (company_id, digest) REFERENCES company_plugins (company_id, digest) ON DELETE CASCADE
);

-- Company tokens. Only the SHA-256 of a token is kept: the token is shown once, when issued.
CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id  integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('integrator', 'staff', 'read-only')),
    label       text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Run requests by idempotency key: the same key and request answer with the same run.
CREATE TABLE run_requests (
    company_id      integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    request         text NOT NULL,
    run_id          bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, idempotency_key)
);

-- The nightly run of each company, at a local time (HH:MM in the company's time zone).
CREATE TABLE schedules (
    company_id integer PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    run_at     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
