//! The store's companies: a tenant's settings and heating seasons, and its deletion.

use async_trait::async_trait;

use super::sql::{
    Commit, Engine, Exec, SqlRow, args, bump_data_version, company_of, q, seasons_of,
};
use super::types::{Result, StoreError};
use crate::model::*;

/// Companies: their settings, seasons and deletion.
#[async_trait]
pub trait CompanyStore: Send + Sync {
    /// Creates or updates a company (seasons are replaced).
    async fn put_company(&self, spec: &CompanySpec) -> Result<Company>;

    /// The company with this slug.
    async fn company(&self, slug: &str) -> Result<Company>;

    /// Every company, by slug.
    async fn companies(&self) -> Result<Vec<Company>>;

    /// Deletes a company and everything it owns (customers, data, chains, runs, bills).
    async fn delete_company(&self, slug: &str) -> Result<()>;
}

#[async_trait]
impl<E: Engine> CompanyStore for E {
    async fn put_company(&self, spec: &CompanySpec) -> Result<Company> {
        let mut tx = self.begin().await?;
        let id = self.upsert_company(&mut tx, spec).await?;
        let seasons =
            q!("SELECT starts, ends FROM heating_seasons WHERE company_id = $1 ORDER BY starts");
        let stored = seasons_of(&tx.rows(seasons, args![id]).await?)?;
        let mut wanted = spec.seasons.clone();
        wanted.sort_by_key(|s| s.start);
        if stored != wanted {
            tx.exec(
                q!("DELETE FROM heating_seasons WHERE company_id = $1"),
                args![id],
            )
            .await?;
            for s in &wanted {
                tx.exec(
                    q!(
                        "INSERT INTO heating_seasons (company_id, starts, ends) VALUES ($1, $2, $3)"
                    ),
                    args![id, s.start, s.end],
                )
                .await?;
            }
            bump_data_version(&mut tx, id).await?;
        }
        tx.commit().await?;
        self.company(&spec.slug).await
    }

    async fn company(&self, slug: &str) -> Result<Company> {
        let mut db = self.db();
        let row = db
            .opt(
                q!(
                    "SELECT id, slug, name, time_zone, policies::text AS policies, data_version,
                           customers_version
                    FROM companies WHERE slug = $1"
                ),
                args![slug],
            )
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "no company {slug:?}: create it first with `heatbill company apply FILE`"
                ))
            })?;
        let id = row.int("id")?;
        let seasons =
            q!("SELECT starts, ends FROM heating_seasons WHERE company_id = $1 ORDER BY starts");
        let seasons = seasons_of(&db.rows(seasons, args![id]).await?)?;
        company_of(&row, seasons)
    }

    async fn companies(&self) -> Result<Vec<Company>> {
        let rows = self
            .db()
            .rows(q!("SELECT slug FROM companies ORDER BY slug"), args![])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.company(r.str(0)?).await?);
        }
        Ok(out)
    }

    async fn delete_company(&self, slug: &str) -> Result<()> {
        let company = self.company(slug).await?;
        let mut tx = self.begin().await?;
        for sql in [
            q!("DELETE FROM bills WHERE company_id = $1"),
            q!("DELETE FROM bill_history WHERE company_id = $1"),
            q!("DELETE FROM account_entries WHERE company_id = $1"),
            q!("DELETE FROM companies WHERE id = $1"),
        ] {
            tx.exec(sql, args![company.id]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
