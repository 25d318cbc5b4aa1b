//! The store's chains and plugins: stored components, chain versions and their line kinds, a company's uploads and case files, quarantines.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::sql::{
    Commit, Engine, Exec, SqlRow, args, bump_data_version, chain_columns, chain_digest,
    chain_version_of, check_kinds, q,
};
use super::types::{Result, StoreError};
use crate::model::*;

/// Chains and plugins: stored components, chain versions and their line kinds, a company's uploads, case files and quarantines.
#[async_trait]
pub trait ChainStore: Send + Sync {
    /// Stores a component (the same digest twice is one plugin). A different component with
    /// the same name and version is refused.
    async fn put_plugin(&self, plugin: &PluginRecord) -> Result<()>;

    /// A stored component by digest.
    async fn plugin(&self, digest: &str) -> Result<PluginRecord>;

    /// Makes `entries` the active chain of `company` from `effective_from`. The same
    /// definition already active on that date is kept (its id is returned); a different one
    /// replaces it (the old row stays, inactive). Bumps the company's data version when
    /// something changed.
    async fn put_chain_version(
        &self,
        company_id: i32,
        effective_from: NaiveDate,
        entries: &[ChainEntryDef],
    ) -> Result<ChainVersion>;

    /// The company's active chain versions, by effective date.
    async fn chain_versions(&self, company_id: i32) -> Result<Vec<ChainVersion>>;

    /// Records a chain version's line kinds, or checks them against those recorded (a
    /// mismatch is a `Conflict`: a plugin whose `configure` is not deterministic).
    async fn put_line_kinds(&self, chain_version_id: i32, kinds: &[LineKindRecord]) -> Result<()>;

    /// A chain version's line kinds.
    async fn line_kinds(&self, chain_version_id: i32) -> Result<Vec<LineKindRecord>>;

    /// Records that `company_id` uploaded the stored plugin `digest` (false when it had
    /// already). Another component of the company with the same name and version is a
    /// `Conflict`: versions are unique within a company.
    async fn add_company_plugin(&self, company_id: i32, plugin: &PluginRecord) -> Result<bool>;

    /// The plugins a company uploaded, by name and version.
    async fn company_plugins(&self, company_id: i32) -> Result<Vec<CompanyPlugin>>;

    /// Attaches a case file to a company's plugin (replacing one of the same name).
    async fn put_plugin_cases(&self, company_id: i32, cases: &PluginCases) -> Result<()>;

    /// The case files attached to a company's plugin, by name.
    async fn plugin_cases(&self, company_id: i32, digest: &str) -> Result<Vec<PluginCases>>;

    /// Deactivates the active chain version of `effective_from`, and reactivates the one it
    /// replaced, if any (returned). Bumps the company's data version. `NotFound` when no
    /// version is active on that date.
    async fn rollback_chain(
        &self,
        company_id: i32,
        effective_from: NaiveDate,
    ) -> Result<Option<ChainVersion>>;

    /// Quarantines a plugin version for a company (the purity check caught it billing
    /// differently in a batch than alone), bumping the company's data version so that the
    /// date is run again; false when it was quarantined already.
    async fn quarantine_plugin(&self, company_id: i32, q: &Quarantine) -> Result<bool>;

    /// The company's quarantined plugin versions, oldest first.
    async fn quarantined_plugins(&self, company_id: i32) -> Result<Vec<Quarantine>>;
}

#[async_trait]
impl<E: Engine> ChainStore for E {
    async fn put_plugin(&self, p: &PluginRecord) -> Result<()> {
        // Names and versions are unique per company (add_company_plugin), not here: two
        // companies may each ship their own "late-fee 1.0.0".
        let info = serde_json::to_string(&p.info).expect("JSON serializes");
        self.db()
            .exec(
                q!(
                    "INSERT INTO plugins (digest, name, version, kind, contract_version, info,
                        component)
                    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (digest) DO NOTHING"
                ),
                args![
                    &p.digest,
                    &p.name,
                    &p.version,
                    &p.kind,
                    &p.contract_version,
                    &info,
                    &p.component
                ],
            )
            .await?;
        Ok(())
    }

    async fn plugin(&self, digest: &str) -> Result<PluginRecord> {
        let r = self
            .db()
            .opt(
                q!(
                    "SELECT digest, name, version, kind, contract_version, info::text AS info,
                           component
                    FROM plugins WHERE digest = $1"
                ),
                args![digest],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no plugin with sha256 {digest}")))?;
        Ok(PluginRecord {
            digest: r.string("digest")?,
            name: r.string("name")?,
            version: r.string("version")?,
            kind: r.string("kind")?,
            contract_version: r.string("contract_version")?,
            info: serde_json::from_str(r.str("info")?)
                .map_err(|e| StoreError::Corrupt(format!("plugin info: {e}")))?,
            component: r.byte_vec("component")?,
        })
    }

    async fn put_chain_version(
        &self,
        company_id: i32,
        effective_from: NaiveDate,
        entries: &[ChainEntryDef],
    ) -> Result<ChainVersion> {
        let digest = chain_digest(entries);
        let definition = serde_json::to_string(entries).expect("JSON serializes");
        let mut tx = self.begin().await?;
        let current = tx
            .opt(
                q!(concat!(
                    "SELECT ",
                    chain_columns!(),
                    " FROM chain_versions
                     WHERE company_id = $1 AND effective_from = $2 AND active FOR UPDATE"
                )),
                args![company_id, effective_from],
            )
            .await?;
        if let Some(r) = &current {
            let v = chain_version_of(r)?;
            if v.digest == digest {
                return Ok(v);
            }
            tx.exec(
                q!("UPDATE chain_versions SET active = false WHERE id = $1"),
                args![v.id],
            )
            .await?;
        }
        let r = tx
            .one(
                q!(concat!(
                    "INSERT INTO chain_versions (company_id, effective_from, digest, definition)
                     VALUES ($1, $2, $3, $4::jsonb) RETURNING ",
                    chain_columns!()
                )),
                args![company_id, effective_from, &digest, &definition],
            )
            .await?;
        bump_data_version(&mut tx, company_id).await?;
        super::sql::mark_stale(&mut tx, company_id, effective_from).await?;
        tx.commit().await?;
        chain_version_of(&r)
    }

    async fn chain_versions(&self, company_id: i32) -> Result<Vec<ChainVersion>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    chain_columns!(),
                    " FROM chain_versions WHERE company_id = $1 AND active ORDER BY effective_from"
                )),
                args![company_id],
            )
            .await?
            .iter()
            .map(chain_version_of)
            .collect()
    }

    async fn put_line_kinds(&self, chain_version_id: i32, kinds: &[LineKindRecord]) -> Result<()> {
        let stored = self.line_kinds(chain_version_id).await?;
        if stored.is_empty() && !kinds.is_empty() {
            let mut tx = self.begin().await?;
            for k in kinds {
                tx.exec(
                    q!(
                        "INSERT INTO line_kinds (chain_version_id, entry, kind, plugin,
                            plugin_version, code, description, unit, category)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
                    ),
                    args![
                        chain_version_id,
                        k.entry,
                        k.kind,
                        &k.plugin,
                        &k.plugin_version,
                        &k.code,
                        &k.description,
                        &k.unit,
                        &k.category
                    ],
                )
                .await?;
            }
            tx.commit().await?;
            // Another host may have recorded them first: compare with what is stored now.
            let stored = self.line_kinds(chain_version_id).await?;
            return check_kinds(&stored, kinds);
        }
        check_kinds(&stored, kinds)
    }

    async fn line_kinds(&self, chain_version_id: i32) -> Result<Vec<LineKindRecord>> {
        self.db()
            .rows(
                q!(
                    "SELECT entry, kind, plugin, plugin_version, code, description, unit, category
                    FROM line_kinds WHERE chain_version_id = $1 ORDER BY entry, kind"
                ),
                args![chain_version_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(LineKindRecord {
                    entry: r.small("entry")?,
                    kind: r.small("kind")?,
                    plugin: r.string("plugin")?,
                    plugin_version: r.string("plugin_version")?,
                    code: r.string("code")?,
                    description: r.string("description")?,
                    unit: r.string("unit")?,
                    category: r.string("category")?,
                })
            })
            .collect()
    }

    async fn add_company_plugin(&self, company_id: i32, p: &PluginRecord) -> Result<bool> {
        let mut tx = self.begin().await?;
        let other = tx
            .opt(
                q!("SELECT digest FROM company_plugins
                    WHERE company_id = $1 AND name = $2 AND version = $3"),
                args![company_id, &p.name, &p.version],
            )
            .await?;
        match other {
            Some(r) if r.str(0)? == p.digest => return Ok(false),
            Some(r) => {
                return Err(StoreError::Conflict(format!(
                    "a different component is already stored as {} {} (sha256 {}); give the \
                     new one another version in describe()",
                    p.name,
                    p.version,
                    r.str(0)?
                )));
            }
            None => {}
        }
        let n = tx
            .exec(
                q!(
                    "INSERT INTO company_plugins (company_id, digest, name, version)
                    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                ),
                args![company_id, &p.digest, &p.name, &p.version],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn company_plugins(&self, company_id: i32) -> Result<Vec<CompanyPlugin>> {
        self.db()
            .rows(
                q!(
                    "SELECT p.digest, p.name, p.version, p.kind, p.contract_version,
                           p.info::text AS info, utc_text(c.uploaded_at) AS uploaded_at
                    FROM company_plugins c JOIN plugins p ON p.digest = c.digest
                    WHERE c.company_id = $1 ORDER BY p.name, c.uploaded_at"
                ),
                args![company_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(CompanyPlugin {
                    digest: r.string("digest")?,
                    name: r.string("name")?,
                    version: r.string("version")?,
                    kind: r.string("kind")?,
                    contract_version: r.string("contract_version")?,
                    info: serde_json::from_str(r.str("info")?)
                        .map_err(|e| StoreError::Corrupt(format!("plugin info: {e}")))?,
                    uploaded_at: r.string("uploaded_at")?,
                })
            })
            .collect()
    }

    async fn put_plugin_cases(&self, company_id: i32, c: &PluginCases) -> Result<()> {
        let report = serde_json::to_string(&c.report).expect("JSON serializes");
        self.db()
            .exec(
                q!(
                    "INSERT INTO plugin_cases (company_id, digest, name, body, passed, report)
                    VALUES ($1, $2, $3, $4, $5, $6::jsonb)
                    ON CONFLICT (company_id, digest, name) DO UPDATE SET body = EXCLUDED.body,
                        passed = EXCLUDED.passed, report = EXCLUDED.report,
                        uploaded_at = now()"
                ),
                args![company_id, &c.digest, &c.name, &c.body, c.passed, &report],
            )
            .await?;
        Ok(())
    }

    async fn plugin_cases(&self, company_id: i32, digest: &str) -> Result<Vec<PluginCases>> {
        self.db()
            .rows(
                q!(
                    "SELECT digest, name, body, passed, report::text AS report FROM plugin_cases
                    WHERE company_id = $1 AND digest = $2 ORDER BY name"
                ),
                args![company_id, digest],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(PluginCases {
                    digest: r.string("digest")?,
                    name: r.string("name")?,
                    body: r.string("body")?,
                    passed: r.bool("passed")?,
                    report: serde_json::from_str(r.str("report")?)
                        .map_err(|e| StoreError::Corrupt(format!("case report: {e}")))?,
                })
            })
            .collect()
    }

    async fn rollback_chain(
        &self,
        company_id: i32,
        effective_from: NaiveDate,
    ) -> Result<Option<ChainVersion>> {
        let mut tx = self.begin().await?;
        let current = tx
            .opt(
                q!("SELECT id FROM chain_versions
                    WHERE company_id = $1 AND effective_from = $2 AND active FOR UPDATE"),
                args![company_id, effective_from],
            )
            .await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!(
                "no chain version is active from {effective_from}"
            )));
        };
        let current = current.int(0)?;
        tx.exec(
            q!("UPDATE chain_versions SET active = false WHERE id = $1"),
            args![current],
        )
        .await?;
        let previous = tx
            .opt(
                q!(concat!(
                    "UPDATE chain_versions SET active = true WHERE id = (
                         SELECT id FROM chain_versions
                         WHERE company_id = $1 AND effective_from = $2 AND id < $3
                         ORDER BY id DESC LIMIT 1)
                     RETURNING ",
                    chain_columns!()
                )),
                args![company_id, effective_from, current],
            )
            .await?;
        bump_data_version(&mut tx, company_id).await?;
        super::sql::mark_stale(&mut tx, company_id, effective_from).await?;
        tx.commit().await?;
        previous.as_ref().map(chain_version_of).transpose()
    }

    async fn quarantine_plugin(&self, company_id: i32, q: &Quarantine) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                q!(
                    "INSERT INTO plugin_quarantine (company_id, plugin, plugin_version, reason,
                        run_id)
                    VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
                ),
                args![
                    company_id,
                    &q.plugin,
                    &q.plugin_version,
                    &q.reason,
                    q.run_id
                ],
            )
            .await?;
        if n == 1 {
            bump_data_version(&mut tx, company_id).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn quarantined_plugins(&self, company_id: i32) -> Result<Vec<Quarantine>> {
        self.db()
            .rows(
                q!(
                    "SELECT plugin, plugin_version, reason, run_id FROM plugin_quarantine
                    WHERE company_id = $1 ORDER BY quarantined_at, plugin, plugin_version"
                ),
                args![company_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Quarantine {
                    plugin: r.string(0)?,
                    plugin_version: r.string(1)?,
                    reason: r.string(2)?,
                    run_id: r.opt_big(3)?,
                })
            })
            .collect()
    }
}
