-- Plugins a run caught billing a customer-day differently inside a batch than alone (the
-- contract's purity rule broken: the bill depends on other customer-days of its call). A
-- quarantined plugin version is billed one customer-day per call from a fresh instance for its
-- company from then on; a new version of the plugin is not quarantined.
CREATE TABLE plugin_quarantine (
    company_id     integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    plugin         text NOT NULL,
    plugin_version text NOT NULL,
    reason         text NOT NULL,
    run_id         bigint,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, plugin, plugin_version)
);
