//! The [`Store`] methods, written once for both backends: every [`Engine`] is a store. The
//! methods whose SQL really differs are the engine's own (`postgres.rs`, `sqlite.rs`); the rest
//! run the shared layer's queries (`sql.rs`) on the engine's pool or write transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::Store;
use super::sql::{
    Commit, Engine, Exec, SqlRow, args, bill_read, bill_row_of, bump_data_version, chain_columns,
    chain_version_of, check_kinds, company_of, customer_of, merge_totals, q, run_columns, run_of,
    seasons_of, shard_of, shard_ranges, token_columns, token_of,
};
use super::sql::{chain_digest, resolve_lines};
use super::types::{Backend, ImportSink, Result, StoreError};
use crate::model::*;

/// The customer-id range condition of a shard, on parameters $2 (first) and $3 (end or null).
macro_rules! range {
    () => {
        "customer_id >= $2 AND ($3::text IS NULL OR customer_id < $3)"
    };
}

#[async_trait]
impl<E: Engine> Store for E {
    fn backend(&self) -> Backend {
        Engine::backend(self)
    }

    async fn migrate(&self) -> Result<()> {
        Engine::migrate(self).await
    }

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
            q!("DELETE FROM companies WHERE id = $1"),
        ] {
            tx.exec(sql, args![company.id]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

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

    async fn begin_import(
        &self,
        company: &Company,
        kind: ImportKind,
    ) -> Result<Box<dyn ImportSink>> {
        Engine::begin_import(self, company, kind).await
    }

    async fn ensure_partitions(&self, from: NaiveDate, to: NaiveDate) -> Result<u32> {
        Engine::ensure_partitions(self, from, to).await
    }

    async fn previous_day(&self, company_id: i32, date: NaiveDate) -> Result<PreviousDay> {
        let r = self
            .db()
            .one(
                q!(
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE company_id = $1 AND bill_date < $2
                                   AND state = 'completed'),
                           EXISTS (SELECT 1 FROM runs WHERE company_id = $1 AND bill_date = $3
                                   AND state = 'completed')"
                ),
                args![company_id, date, date.pred_opt().unwrap_or(date)],
            )
            .await?;
        Ok(match (r.bool(0)?, r.bool(1)?) {
            (_, true) => PreviousDay::Completed,
            (false, false) => PreviousDay::FirstRun,
            (true, false) => PreviousDay::Missing,
        })
    }

    async fn cut_shards(&self, company_id: i32, shard_size: usize) -> Result<Vec<ShardRange>> {
        let firsts = self
            .db()
            .rows(
                q!("SELECT customer_id FROM (
                        SELECT customer_id, row_number() OVER (ORDER BY customer_id) - 1 AS n
                        FROM customers WHERE company_id = $1) c
                    WHERE n % $2 = 0 ORDER BY customer_id"),
                args![company_id, shard_size.max(1) as i64],
            )
            .await?
            .iter()
            .map(|r| r.string(0))
            .collect::<Result<Vec<_>>>()?;
        Ok(shard_ranges(firsts))
    }

    async fn open_run(
        &self,
        company_id: i32,
        date: NaiveDate,
        chain_version_id: i32,
        shard_size: usize,
        stamp: &str,
    ) -> Result<OpenedRun> {
        // Two processes may open the same run at once (PostgreSQL; SQLite's write transaction
        // makes the check-and-insert exclusive): the loser of the unique index on the running
        // run picks up the winner's.
        for _ in 0..3 {
            match try_open_run(self, company_id, date, chain_version_id, shard_size, stamp).await {
                Err(StoreError::Database(e))
                    if e.as_database_error()
                        .is_some_and(|d| d.is_unique_violation()) =>
                {
                    continue;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict(format!(
            "could not open the run of {date}: other processes keep starting it"
        )))
    }

    async fn record_unchanged_run(
        &self,
        company_id: i32,
        date: NaiveDate,
        chain_version_id: i32,
        stamp: &str,
        report: &serde_json::Value,
    ) -> Result<RunRecord> {
        let report = serde_json::to_string(report).expect("JSON serializes");
        let mut tx = self.begin().await?;
        let r = tx
            .one(
                q!(concat!(
                    "INSERT INTO runs (company_id, bill_date, attempt, state, chain_version_id,
                         shard_size, shard_count, stamp, report, finished_at)
                     SELECT $1, $2, coalesce(max(attempt), 0) + 1, 'completed', $3, 0, 0, $4,
                            $5::jsonb, now()
                     FROM runs WHERE company_id = $1 AND bill_date = $2
                     RETURNING ",
                    run_columns!()
                )),
                args![company_id, date, chain_version_id, stamp, &report],
            )
            .await?;
        tx.commit().await?;
        run_of(&r)
    }

    async fn claim_shard(
        &self,
        run_id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>> {
        Engine::claim_shard(self, run_id, worker, lease).await
    }

    async fn renew_lease(
        &self,
        run_id: i64,
        shard_no: i32,
        token: i64,
        lease: Duration,
    ) -> Result<bool> {
        Engine::renew_lease(self, run_id, shard_no, token, lease).await
    }

    async fn end_stalled_writers(
        &self,
        run_id: i64,
        lapsed_for: Duration,
    ) -> Result<Vec<StalledShard>> {
        Engine::end_stalled_writers(self, run_id, lapsed_for).await
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

    async fn running_runs(&self) -> Result<Vec<RunRecord>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE state = 'running' ORDER BY id"
                )),
                args![],
            )
            .await?
            .iter()
            .map(run_of)
            .collect()
    }

    async fn load_shard(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        with_customers: bool,
    ) -> Result<ShardData> {
        Engine::load_shard(self, company_id, date, shard, with_customers).await
    }

    async fn load_customer_versions(
        &self,
        company_id: i32,
        shard: &ShardRange,
    ) -> Result<Vec<CustomerState>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT customer_id, valid_from, class, special_class, status, metered,
                            low_income, building_area::text, usable_area::text,
                            ceiling_height::text, tags, attributes
                     FROM customer_versions WHERE company_id = $1 AND ",
                    range!(),
                    " ORDER BY customer_id, valid_from"
                )),
                args![company_id, &shard.first, &shard.end],
            )
            .await?
            .iter()
            .map(customer_of)
            .collect()
    }

    async fn load_customers(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        ids: Option<&[String]>,
    ) -> Result<Vec<CustomerState>> {
        Engine::load_customers(self, company_id, date, shard, ids).await
    }

    async fn write_shard(&self, write: &ShardWrite) -> Result<()> {
        Engine::write_shard(self, write).await
    }

    async fn run_totals(&self, run_id: i64, parked_limit: usize) -> Result<RunTotals> {
        let mut db = self.db();
        let rows = db
            .rows(
                q!(
                    "SELECT state, customers, written, revised, unchanged, parked,
                           totals::text AS totals
                    FROM run_shards WHERE run_id = $1"
                ),
                args![run_id],
            )
            .await?;
        let mut out = RunTotals {
            shard_count: rows.len() as u64,
            ..Default::default()
        };
        for r in &rows {
            if r.str("state")? != "done" {
                continue;
            }
            out.shards_done += 1;
            out.counts.add(&ShardCounts {
                customers: r.int("customers")? as u64,
                written: r.int("written")? as u64,
                revised: r.int("revised")? as u64,
                unchanged: r.int("unchanged")? as u64,
                parked: r.int("parked")? as u64,
            });
            merge_totals(&mut out.totals, r.opt_str("totals")?)?;
        }
        out.parked = db
            .rows(
                q!(
                    "SELECT customer_id, error_kind, plugin, plugin_version, message FROM parked
                    WHERE run_id = $1 ORDER BY customer_id LIMIT $2"
                ),
                args![run_id, parked_limit as i64],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(ParkedCustomer {
                    customer_id: r.string("customer_id")?,
                    kind: r.string("error_kind")?,
                    plugin: r.string("plugin")?,
                    plugin_version: r.string("plugin_version")?,
                    message: r.string("message")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.parked_by = db
            .rows(
                q!(
                    "SELECT plugin, plugin_version, error_kind, count(*) AS n FROM parked
                    WHERE run_id = $1 GROUP BY plugin, plugin_version, error_kind
                    ORDER BY n DESC, plugin, plugin_version, error_kind"
                ),
                args![run_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(ParkedGroup {
                    plugin: r.string("plugin")?,
                    plugin_version: r.string("plugin_version")?,
                    kind: r.string("error_kind")?,
                    count: r.big("n")? as u64,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(out)
    }

    async fn finish_run(
        &self,
        run_id: i64,
        state: &str,
        report: &serde_json::Value,
    ) -> Result<bool> {
        let report = serde_json::to_string(report).expect("JSON serializes");
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                q!(
                    "UPDATE runs SET state = $2, report = $3::jsonb, finished_at = now(),
                        updated_at = now()
                    WHERE id = $1 AND state = 'running'"
                ),
                args![run_id, state, &report],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn run(&self, run_id: i64) -> Result<RunRecord> {
        let r = self
            .db()
            .opt(
                q!(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE id = $1"
                )),
                args![run_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no run {run_id}")))?;
        run_of(&r)
    }

    async fn runs(&self, company_id: i32, date: NaiveDate) -> Result<Vec<RunRecord>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE company_id = $1 AND bill_date = $2 ORDER BY attempt"
                )),
                args![company_id, date],
            )
            .await?
            .iter()
            .map(run_of)
            .collect()
    }

    async fn bills(&self, company_id: i32, date: NaiveDate) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2 ORDER BY customer_id"
                )),
                args![company_id, date],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn bill(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2 AND customer_id = $3"
                )),
                args![company_id, date, customer_id],
            )
            .await?;
        Ok(stored_bills(self, rows).await?.pop())
    }

    async fn bill_history(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bill_history
                     WHERE company_id = $1 AND bill_date = $2 AND customer_id = $3
                     ORDER BY version"
                )),
                args![company_id, date, customer_id],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn arrears(&self, company_id: i32, date: NaiveDate) -> Result<Vec<(String, Decimal)>> {
        Engine::arrears(self, company_id, date).await
    }

    async fn latest_billed_date(&self, company_id: i32) -> Result<Option<NaiveDate>> {
        self.db()
            .one(
                q!("SELECT max(bill_date) FROM runs WHERE company_id = $1 AND state = 'completed'"),
                args![company_id],
            )
            .await?
            .opt_date(0)
    }

    async fn bill_bytes(&self, company_id: i32, date: NaiveDate) -> Result<Option<u64>> {
        Engine::bill_bytes(self, company_id, date).await
    }

    async fn bills_page(
        &self,
        company_id: i32,
        date: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2
                       AND ($3::text IS NULL OR customer_id > $3)
                     ORDER BY customer_id LIMIT $4"
                )),
                args![company_id, date, after, limit as i64],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn bills_in(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2
                       AND customer_id >= $3 AND ($4::text IS NULL OR customer_id < $4)
                     ORDER BY customer_id"
                )),
                args![company_id, date, &range.first, &range.end],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn history_summary(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<HistorySummary>> {
        self.db()
            .rows(
                q!(
                    "SELECT customer_id, count(*) AS n, min(version) AS lo, max(version) AS hi,
                           sum(CASE WHEN version > 1 AND reason IS NULL THEN 1 ELSE 0 END)
                               AS unexplained
                    FROM bill_history WHERE company_id = $1 AND bill_date = $2
                      AND customer_id >= $3 AND ($4::text IS NULL OR customer_id < $4)
                    GROUP BY customer_id ORDER BY customer_id"
                ),
                args![company_id, date, &range.first, &range.end],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(HistorySummary {
                    customer_id: r.string("customer_id")?,
                    versions: r.big("n")?,
                    lowest: r.int("lo")?,
                    highest: r.int("hi")?,
                    unexplained: r.big("unexplained")?,
                })
            })
            .collect()
    }

    async fn customer_bills(
        &self,
        company_id: i32,
        customer_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND customer_id = $2
                       AND bill_date BETWEEN $3 AND $4
                     ORDER BY bill_date"
                )),
                args![company_id, customer_id, from, to],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn recent_runs(&self, company_id: i32, limit: usize) -> Result<Vec<RunRecord>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE company_id = $1 ORDER BY id DESC LIMIT $2"
                )),
                args![company_id, limit as i64],
            )
            .await?
            .iter()
            .map(run_of)
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
        tx.commit().await?;
        previous.as_ref().map(chain_version_of).transpose()
    }

    async fn put_token(
        &self,
        company_id: i32,
        role: &str,
        label: &str,
        token_hash: &str,
    ) -> Result<TokenRecord> {
        let r = self
            .db()
            .one(
                q!(concat!(
                    "INSERT INTO api_tokens (company_id, role, label, token_hash)
                     VALUES ($1, $2, $3, $4) RETURNING ",
                    token_columns!()
                )),
                args![company_id, role, label, token_hash],
            )
            .await?;
        token_of(&r)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.db()
            .opt(
                q!(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens WHERE token_hash = $1"
                )),
                args![token_hash],
            )
            .await?
            .as_ref()
            .map(token_of)
            .transpose()
    }

    async fn tokens(&self, company_id: i32) -> Result<Vec<TokenRecord>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens WHERE company_id = $1 ORDER BY id"
                )),
                args![company_id],
            )
            .await?
            .iter()
            .map(token_of)
            .collect()
    }

    async fn revoke_token(&self, company_id: i32, id: i64) -> Result<bool> {
        let n = self
            .db()
            .exec(
                q!("UPDATE api_tokens SET revoked_at = now()
                    WHERE company_id = $1 AND id = $2 AND revoked_at IS NULL"),
                args![company_id, id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn run_request(&self, company_id: i32, key: &str) -> Result<Option<RunRequest>> {
        self.db()
            .opt(
                q!("SELECT request, run_id, age_s(created_at) AS age_s
                    FROM run_requests WHERE company_id = $1 AND idempotency_key = $2"),
                args![company_id, key],
            )
            .await?
            .map(|r| {
                Ok(RunRequest {
                    request: r.string("request")?,
                    run_id: r.big("run_id")?,
                    age_s: r.big("age_s")?,
                })
            })
            .transpose()
    }

    async fn put_run_request(
        &self,
        company_id: i32,
        key: &str,
        request: &str,
        run_id: i64,
    ) -> Result<()> {
        let n = self
            .db()
            .exec(
                q!(
                    "INSERT INTO run_requests (company_id, idempotency_key, request, run_id)
                    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                ),
                args![company_id, key, request, run_id],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "the idempotency key {key:?} is already used"
            )));
        }
        Ok(())
    }

    async fn put_schedule(&self, company_id: i32, run_at: Option<&str>) -> Result<()> {
        let mut db = self.db();
        match run_at {
            Some(at) => {
                db.exec(
                    q!("INSERT INTO schedules (company_id, run_at) VALUES ($1, $2)
                        ON CONFLICT (company_id) DO UPDATE SET run_at = EXCLUDED.run_at,
                            updated_at = now()"),
                    args![company_id, at],
                )
                .await?;
            }
            None => {
                db.exec(
                    q!("DELETE FROM schedules WHERE company_id = $1"),
                    args![company_id],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn schedules(&self) -> Result<Vec<(i32, String)>> {
        self.db()
            .rows(
                q!("SELECT company_id, run_at FROM schedules ORDER BY company_id"),
                args![],
            )
            .await?
            .iter()
            .map(|r| Ok((r.int(0)?, r.string(1)?)))
            .collect()
    }
}

/// Picks up the running run of (company, date), or records the next attempt with its shards.
async fn try_open_run<E: Engine>(
    store: &E,
    company_id: i32,
    date: NaiveDate,
    chain_version_id: i32,
    shard_size: usize,
    stamp: &str,
) -> Result<OpenedRun> {
    let mut tx = store.begin().await?;
    let running = tx
        .opt(
            q!(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs
                 WHERE company_id = $1 AND bill_date = $2 AND state = 'running' FOR UPDATE"
            )),
            args![company_id, date],
        )
        .await?;
    if let Some(r) = running {
        let run = run_of(&r)?;
        let shards = tx
            .rows(
                q!(
                    "SELECT shard_no, first_customer, end_customer, state FROM run_shards
                    WHERE run_id = $1 ORDER BY shard_no"
                ),
                args![run.id],
            )
            .await?;
        tx.commit().await?;
        let mut pending = Vec::new();
        let mut done = 0;
        for s in &shards {
            if s.str(3)? == "done" {
                done += 1;
            } else {
                pending.push(shard_of(s)?);
            }
        }
        return Ok(OpenedRun {
            run,
            resumed: true,
            pending,
            done,
        });
    }
    let attempt = tx
        .one(
            q!("SELECT coalesce(max(attempt), 0) + 1 FROM runs
                WHERE company_id = $1 AND bill_date = $2"),
            args![company_id, date],
        )
        .await?
        .int(0)?;
    let shards = store.cut_shards(company_id, shard_size).await?;
    let r = tx
        .one(
            q!(concat!(
                "INSERT INTO runs (company_id, bill_date, attempt, state, chain_version_id,
                     shard_size, shard_count, stamp)
                 VALUES ($1, $2, $3, 'running', $4, $5, $6, $7) RETURNING ",
                run_columns!()
            )),
            args![
                company_id,
                date,
                attempt,
                chain_version_id,
                shard_size as i32,
                shards.len() as i32,
                stamp
            ],
        )
        .await?;
    let run = run_of(&r)?;
    if !shards.is_empty() {
        store.insert_shards(&mut tx, run.id, &shards).await?;
    }
    tx.commit().await?;
    Ok(OpenedRun {
        run,
        resumed: false,
        pending: shards,
        done: 0,
    })
}

/// Stored bills from rows of [`bill_read!`], their lines resolved against their chain
/// versions' line kinds.
async fn stored_bills<E: Engine>(store: &E, rows: Vec<E::Row>) -> Result<Vec<StoredBill>> {
    let mut kinds: BTreeMap<i32, Vec<LineKindRecord>> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let chain_version_id = r.int("chain_version_id")?;
        if let std::collections::btree_map::Entry::Vacant(e) = kinds.entry(chain_version_id) {
            e.insert(store.line_kinds(chain_version_id).await?);
        }
        let row = bill_row_of(r)?;
        let lines = resolve_lines(&row.lines, &kinds[&chain_version_id])?;
        out.push(StoredBill {
            customer_id: row.customer_id.clone(),
            bill_date: r.date("bill_date")?,
            run_id: r.big("run_id")?,
            chain_version_id,
            lines,
            row,
        });
    }
    Ok(out)
}
