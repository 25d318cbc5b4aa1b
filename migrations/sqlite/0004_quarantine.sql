-- Plugins a run caught billing a customer-day differently inside a batch than alone (the
-- contract's purity rule broken: the bill depends on other customer-days of its call). A
-- quarantined plugin version is billed one customer-day per call from a fresh instance for its
-- company from then on; a new version of the plugin is not quarantined.
CREATE TABLE plugin_quarantine (
    company_id     INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    plugin         TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    reason         TEXT NOT NULL,
    run_id         INTEGER,
    quarantined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (company_id, plugin, plugin_version)
);
