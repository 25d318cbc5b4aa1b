//! The SQLite store: the embedded default (one file, no server).
//!
//! The same tables as PostgreSQL in SQLite's types: decimals are TEXT, written and read back
//! exactly as `rust_decimal` prints them (SQLite would sum them as floats, so sums happen in
//! Rust); dates are TEXT `YYYY-MM-DD`, which sorts as dates. Writes take the database's one
//! writer lock up front (`BEGIN IMMEDIATE`), and bills go in by multi-row `INSERT`s of a few
//! hundred rows inside the shard's transaction. WAL journal: readers never wait for the writer.
//!
//! One file, though long: it is one implementation of the `Store` trait, method for method the
//! same as `postgres.rs`, so that the two can be read side by side; splitting one and not the
//! other would hide where they differ.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};

use super::postgres::{check_kinds, claim_lost, merge_totals, shard_ranges, totals_json};
use super::{
    Backend, ImportFile, ImportSink, Result, Store, StoreError, chain_digest, resolve_lines,
};
use crate::model::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Rows per multi-row statement (SQLite allows 32,766 bound values in one).
const CHUNK: usize = 500;

/// The one row a query returns (read with `fetch_all`: inside a transaction every statement is
/// stepped to its end, see [`SqliteStore::write_tx`]).
fn one<T>(mut rows: Vec<T>) -> Result<T> {
    rows.pop()
        .ok_or_else(|| StoreError::Corrupt("a query returned no row".into()))
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file of a `sqlite://PATH` URL.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("database URL {url}: {e}")))?
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Config(format!("cannot open the SQLite database {url}: {e}"))
            })?;
        // WAL (readers never wait for the writer) is a property of the file: set once here, not
        // by every new connection, because switching needs an exclusive lock that the busy
        // timeout does not wait for (a connection opened while a shard is written would fail).
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// The pool (tests reach the tables directly through it).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction. It takes SQLite's one write lock at BEGIN, so a writer that has to
    /// wait does so in the busy handler (up to the busy timeout) instead of failing at once, as a
    /// deferred transaction that reads and then writes would. Statements with `RETURNING` inside
    /// it are stepped to the end (`fetch_all`): a statement left half-stepped keeps COMMIT from
    /// going through ("database is locked").
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

const RANGE: &str = "customer_id >= ?2 AND (?3 IS NULL OR customer_id < ?3)";

const BILL_COLUMNS: &str = "company_id, bill_date, customer_id, version, status, run_id, \
     chain_version_id, inputs, total, customer_total, government_total, employer_total, \
     principal, charged_before, paid_before, arrears, arrears_since, lines, reason, error";

const RUN_COLUMNS: &str = "id, company_id, bill_date, attempt, state, chain_version_id, \
     shard_count, shard_size, stamp, report";

fn dec(r: &SqliteRow, col: &str) -> Result<Decimal> {
    let s: String = r.try_get(col)?;
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{col} {s:?} is not a decimal: {e}")))
}

fn opt_dec(r: &SqliteRow, col: &str) -> Result<Option<Decimal>> {
    let s: Option<String> = r.try_get(col)?;
    s.map(|s| {
        s.parse()
            .map_err(|e| StoreError::Corrupt(format!("{col} {s:?} is not a decimal: {e}")))
    })
    .transpose()
}

/// A customer version from the 12 columns of `load_customers`.
fn customer_of(r: &SqliteRow) -> Result<CustomerState> {
    let class: String = r.try_get("class")?;
    let status: String = r.try_get("status")?;
    let tags: String = r.try_get("tags")?;
    let attributes: String = r.try_get("attributes")?;
    Ok(CustomerState {
        customer_id: r.try_get("customer_id")?,
        valid_from: r.try_get("valid_from")?,
        class: parse_class(&class)
            .ok_or_else(|| StoreError::Corrupt(format!("class {class:?}")))?,
        special_class: r.try_get("special_class")?,
        status: parse_status(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        metered: r.try_get("metered")?,
        low_income: r.try_get("low_income")?,
        building_area: dec(r, "building_area")?,
        usable_area: opt_dec(r, "usable_area")?,
        ceiling_height: opt_dec(r, "ceiling_height")?,
        tags: parse_tags(&tags),
        attributes: parse_attributes(&attributes),
    })
}

fn seasons_of(rows: Vec<SqliteRow>) -> Result<Vec<Season>> {
    rows.iter()
        .map(|r| {
            Ok(Season {
                start: r.try_get("starts")?,
                end: r.try_get("ends")?,
            })
        })
        .collect()
}

fn chain_version_of(r: &SqliteRow) -> Result<ChainVersion> {
    let def: String = r.try_get("definition")?;
    Ok(ChainVersion {
        id: r.try_get::<i64, _>("id")? as i32,
        effective_from: r.try_get("effective_from")?,
        digest: r.try_get("digest")?,
        entries: serde_json::from_str(&def)
            .map_err(|e| StoreError::Corrupt(format!("chain definition: {e}")))?,
    })
}

fn run_of(r: &SqliteRow) -> Result<RunRecord> {
    let report: Option<String> = r.try_get("report")?;
    Ok(RunRecord {
        id: r.try_get("id")?,
        company_id: r.try_get::<i64, _>("company_id")? as i32,
        bill_date: r.try_get("bill_date")?,
        attempt: r.try_get::<i64, _>("attempt")? as i32,
        state: r.try_get("state")?,
        chain_version_id: r.try_get::<i64, _>("chain_version_id")? as i32,
        shard_count: r.try_get::<i64, _>("shard_count")? as i32,
        shard_size: r.try_get::<i64, _>("shard_size")? as i32,
        stamp: r.try_get("stamp")?,
        report: report.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

fn bill_row_of(r: &SqliteRow) -> Result<BillRow> {
    let status: String = r.try_get("status")?;
    Ok(BillRow {
        customer_id: r.try_get("customer_id")?,
        version: r.try_get::<i64, _>("version")? as i32,
        status: BillStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("bill status {status:?}")))?,
        inputs: r.try_get("inputs")?,
        total: dec(r, "total")?,
        customer_total: dec(r, "customer_total")?,
        government_total: dec(r, "government_total")?,
        employer_total: dec(r, "employer_total")?,
        principal: dec(r, "principal")?,
        charged_before: dec(r, "charged_before")?,
        paid_before: dec(r, "paid_before")?,
        arrears: dec(r, "arrears")?,
        arrears_since: r.try_get("arrears_since")?,
        lines: r.try_get("lines")?,
        reason: r.try_get("reason")?,
        error: r.try_get("error")?,
    })
}

async fn bump_data_version(conn: &mut SqliteConnection, company_id: i32) -> Result<()> {
    sqlx::query(
        "UPDATE companies SET data_version = data_version + 1,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
    )
    .bind(company_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn put_company(&self, spec: &CompanySpec) -> Result<Company> {
        let mut tx = self.write_tx().await?;
        let policies = serde_json::to_string(&spec.policies).expect("JSON serializes");
        let current: Option<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, name, time_zone, policies FROM companies WHERE slug = ?1")
                .bind(&spec.slug)
                .fetch_all(&mut *tx)
                .await?
                .pop();
        let id = match current {
            None => sqlx::query_scalar::<_, i64>(
                "INSERT INTO companies (slug, name, time_zone, policies) VALUES (?1, ?2, ?3, ?4)
                 RETURNING id",
            )
            .bind(&spec.slug)
            .bind(&spec.name)
            .bind(&spec.time_zone)
            .bind(&policies)
            .fetch_all(&mut *tx)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned nothing".into()))?
                as i32,
            Some((id, name, tz, pol)) => {
                let id = id as i32;
                if (name.as_str(), tz.as_str(), pol.as_str())
                    != (
                        spec.name.as_str(),
                        spec.time_zone.as_str(),
                        policies.as_str(),
                    )
                {
                    sqlx::query(
                        "UPDATE companies SET name = ?2, time_zone = ?3, policies = ?4 WHERE id = ?1",
                    )
                    .bind(id)
                    .bind(&spec.name)
                    .bind(&spec.time_zone)
                    .bind(&policies)
                    .execute(&mut *tx)
                    .await?;
                    bump_data_version(&mut tx, id).await?;
                }
                id
            }
        };
        let stored = seasons_of(
            sqlx::query(
                "SELECT starts, ends FROM heating_seasons WHERE company_id = ?1 ORDER BY starts",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?,
        )?;
        let mut wanted = spec.seasons.clone();
        wanted.sort_by_key(|s| s.start);
        if stored != wanted {
            sqlx::query("DELETE FROM heating_seasons WHERE company_id = ?1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for s in &wanted {
                sqlx::query(
                    "INSERT INTO heating_seasons (company_id, starts, ends) VALUES (?1, ?2, ?3)",
                )
                .bind(id)
                .bind(s.start)
                .bind(s.end)
                .execute(&mut *tx)
                .await?;
            }
            bump_data_version(&mut tx, id).await?;
        }
        tx.commit().await?;
        self.company(&spec.slug).await
    }

    async fn company(&self, slug: &str) -> Result<Company> {
        let r = sqlx::query(
            "SELECT id, slug, name, time_zone, policies, data_version, customers_version
             FROM companies WHERE slug = ?1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no company {slug:?}: create it first with `heatbill company apply FILE`"
            ))
        })?;
        let id = r.try_get::<i64, _>("id")? as i32;
        let seasons = seasons_of(
            sqlx::query(
                "SELECT starts, ends FROM heating_seasons WHERE company_id = ?1 ORDER BY starts",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?,
        )?;
        let policies: String = r.try_get("policies")?;
        Ok(Company {
            id,
            slug: r.try_get("slug")?,
            name: r.try_get("name")?,
            time_zone: r.try_get("time_zone")?,
            policies: serde_json::from_str(&policies)
                .map_err(|e| StoreError::Corrupt(format!("company policies: {e}")))?,
            data_version: r.try_get("data_version")?,
            customers_version: r.try_get("customers_version")?,
            seasons,
        })
    }

    async fn companies(&self) -> Result<Vec<Company>> {
        let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM companies ORDER BY slug")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(slugs.len());
        for s in slugs {
            out.push(self.company(&s).await?);
        }
        Ok(out)
    }

    async fn delete_company(&self, slug: &str) -> Result<()> {
        let company = self.company(slug).await?;
        let mut tx = self.write_tx().await?;
        for sql in [
            "DELETE FROM bills WHERE company_id = ?1",
            "DELETE FROM bill_history WHERE company_id = ?1",
            "DELETE FROM companies WHERE id = ?1",
        ] {
            sqlx::query(sql).bind(company.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn put_plugin(&self, p: &PluginRecord) -> Result<()> {
        // Names and versions are unique per company (add_company_plugin), not here.
        let info = serde_json::to_string(&p.info).expect("JSON serializes");
        sqlx::query(
            "INSERT INTO plugins (digest, name, version, kind, contract_version, info, component)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&p.digest)
        .bind(&p.name)
        .bind(&p.version)
        .bind(&p.kind)
        .bind(&p.contract_version)
        .bind(&info)
        .bind(&p.component)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn plugin(&self, digest: &str) -> Result<PluginRecord> {
        let r = sqlx::query(
            "SELECT digest, name, version, kind, contract_version, info, component
             FROM plugins WHERE digest = ?1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no plugin with sha256 {digest}")))?;
        let info: String = r.try_get("info")?;
        Ok(PluginRecord {
            digest: r.try_get("digest")?,
            name: r.try_get("name")?,
            version: r.try_get("version")?,
            kind: r.try_get("kind")?,
            contract_version: r.try_get("contract_version")?,
            info: serde_json::from_str(&info)
                .map_err(|e| StoreError::Corrupt(format!("plugin info: {e}")))?,
            component: r.try_get("component")?,
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
        let mut tx = self.write_tx().await?;
        let current = sqlx::query(
            "SELECT id, effective_from, digest, definition FROM chain_versions
             WHERE company_id = ?1 AND effective_from = ?2 AND active",
        )
        .bind(company_id)
        .bind(effective_from)
        .fetch_all(&mut *tx)
        .await?
        .pop();
        if let Some(r) = &current {
            let v = chain_version_of(r)?;
            if v.digest == digest {
                return Ok(v);
            }
            sqlx::query("UPDATE chain_versions SET active = 0 WHERE id = ?1")
                .bind(v.id)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query(
            "INSERT INTO chain_versions (company_id, effective_from, digest, definition)
             VALUES (?1, ?2, ?3, ?4) RETURNING id, effective_from, digest, definition",
        )
        .bind(company_id)
        .bind(effective_from)
        .bind(&digest)
        .bind(&definition)
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned nothing".into()))?;
        bump_data_version(&mut tx, company_id).await?;
        tx.commit().await?;
        chain_version_of(&r)
    }

    async fn chain_versions(&self, company_id: i32) -> Result<Vec<ChainVersion>> {
        sqlx::query(
            "SELECT id, effective_from, digest, definition FROM chain_versions
             WHERE company_id = ?1 AND active ORDER BY effective_from",
        )
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(chain_version_of)
        .collect()
    }

    async fn put_line_kinds(&self, chain_version_id: i32, kinds: &[LineKindRecord]) -> Result<()> {
        let stored = self.line_kinds(chain_version_id).await?;
        if stored.is_empty() && !kinds.is_empty() {
            let mut tx = self.write_tx().await?;
            for k in kinds {
                sqlx::query(
                    "INSERT INTO line_kinds (chain_version_id, entry, kind, plugin, plugin_version,
                         code, description, unit, category)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                )
                .bind(chain_version_id)
                .bind(k.entry as i64)
                .bind(k.kind as i64)
                .bind(&k.plugin)
                .bind(&k.plugin_version)
                .bind(&k.code)
                .bind(&k.description)
                .bind(&k.unit)
                .bind(&k.category)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            let stored = self.line_kinds(chain_version_id).await?;
            return check_kinds(&stored, kinds);
        }
        check_kinds(&stored, kinds)
    }

    async fn line_kinds(&self, chain_version_id: i32) -> Result<Vec<LineKindRecord>> {
        sqlx::query(
            "SELECT entry, kind, plugin, plugin_version, code, description, unit, category
             FROM line_kinds WHERE chain_version_id = ?1 ORDER BY entry, kind",
        )
        .bind(chain_version_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(LineKindRecord {
                entry: r.try_get::<i64, _>("entry")? as u16,
                kind: r.try_get::<i64, _>("kind")? as u16,
                plugin: r.try_get("plugin")?,
                plugin_version: r.try_get("plugin_version")?,
                code: r.try_get("code")?,
                description: r.try_get("description")?,
                unit: r.try_get("unit")?,
                category: r.try_get("category")?,
            })
        })
        .collect()
    }

    async fn begin_import(
        &self,
        company: &Company,
        kind: ImportKind,
    ) -> Result<Box<dyn ImportSink>> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DROP TABLE IF EXISTS temp.import_stage")
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE import_stage ({})",
            stage_columns(kind)
        )))
        .execute(&mut *tx)
        .await?;
        Ok(Box::new(SqliteImport {
            tx,
            company_id: company.id,
            kind,
        }))
    }

    async fn ensure_partitions(&self, _from: NaiveDate, _to: NaiveDate) -> Result<u32> {
        Ok(0)
    }

    async fn previous_day(&self, company_id: i32, date: NaiveDate) -> Result<PreviousDay> {
        let (before, previous): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE company_id = ?1 AND bill_date < ?2
                            AND state = 'completed'),
                    EXISTS (SELECT 1 FROM runs WHERE company_id = ?1 AND bill_date = ?3
                            AND state = 'completed')",
        )
        .bind(company_id)
        .bind(date)
        .bind(date.pred_opt().unwrap_or(date))
        .fetch_one(&self.pool)
        .await?;
        Ok(match (before, previous) {
            (_, true) => PreviousDay::Completed,
            (false, false) => PreviousDay::FirstRun,
            (true, false) => PreviousDay::Missing,
        })
    }

    async fn cut_shards(&self, company_id: i32, shard_size: usize) -> Result<Vec<ShardRange>> {
        let firsts: Vec<String> = sqlx::query_scalar(
            "SELECT customer_id FROM (
                 SELECT customer_id, row_number() OVER (ORDER BY customer_id) - 1 AS n
                 FROM customers WHERE company_id = ?1)
             WHERE n % ?2 = 0 ORDER BY customer_id",
        )
        .bind(company_id)
        .bind(shard_size.max(1) as i64)
        .fetch_all(&self.pool)
        .await?;
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
        // SQLite has one writer: BEGIN IMMEDIATE makes the whole check-and-insert exclusive.
        let mut tx = self.write_tx().await?;
        let running = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE company_id = ?1 AND bill_date = ?2 AND state = 'running'"
        )))
        .bind(company_id)
        .bind(date)
        .fetch_all(&mut *tx)
        .await?
        .pop();
        if let Some(r) = running {
            let run = run_of(&r)?;
            let shards = sqlx::query(
                "SELECT shard_no, first_customer, end_customer, state FROM run_shards
                 WHERE run_id = ?1 ORDER BY shard_no",
            )
            .bind(run.id)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut pending = Vec::new();
            let mut done = 0;
            for s in &shards {
                let state: String = s.try_get("state")?;
                if state == "done" {
                    done += 1;
                } else {
                    pending.push(ShardRange {
                        shard_no: s.try_get::<i64, _>("shard_no")? as i32,
                        first: s.try_get("first_customer")?,
                        end: s.try_get("end_customer")?,
                    });
                }
            }
            return Ok(OpenedRun {
                run,
                resumed: true,
                pending,
                done,
            });
        }
        let attempt: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(attempt), 0) + 1 FROM runs WHERE company_id = ?1 AND bill_date = ?2",
        )
        .bind(company_id)
        .bind(date)
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("a query returned no row".into()))?;
        let shards = self.cut_shards(company_id, shard_size).await?;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO runs (company_id, bill_date, attempt, state, chain_version_id, shard_size,
                 shard_count, stamp)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7) RETURNING {RUN_COLUMNS}"
        )))
        .bind(company_id)
        .bind(date)
        .bind(attempt)
        .bind(chain_version_id)
        .bind(shard_size as i64)
        .bind(shards.len() as i64)
        .bind(stamp)
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned nothing".into()))?;
        let run = run_of(&r)?;
        for chunk in shards.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO run_shards (run_id, shard_no, first_customer, end_customer) ",
            );
            q.push_values(chunk, |mut b, s| {
                b.push_bind(run.id)
                    .push_bind(s.shard_no)
                    .push_bind(s.first.clone())
                    .push_bind(s.end.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(OpenedRun {
            run,
            resumed: false,
            pending: shards,
            done: 0,
        })
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
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO runs (company_id, bill_date, attempt, state, chain_version_id, shard_size,
                 shard_count, stamp, report, finished_at)
             SELECT ?1, ?2, coalesce(max(attempt), 0) + 1, 'completed', ?3, 0, 0, ?4, ?5,
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             FROM runs WHERE company_id = ?1 AND bill_date = ?2
             RETURNING {RUN_COLUMNS}"
        )))
        .bind(company_id)
        .bind(date)
        .bind(chain_version_id)
        .bind(stamp)
        .bind(&report)
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned nothing".into()))?;
        tx.commit().await?;
        run_of(&r)
    }

    async fn load_shard(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        with_customers: bool,
    ) -> Result<ShardData> {
        let mut conn = self.pool.acquire().await?;
        let prev = date.pred_opt().unwrap_or(date);
        let q = |sql: String| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(company_id)
                .bind(shard.first.clone())
                .bind(shard.end.clone())
        };
        let customers = if !with_customers {
            Vec::new()
        } else {
            q(format!(
                "SELECT customer_id, digest FROM customer_versions v
             WHERE company_id = ?1 AND {RANGE} AND valid_from = (
                 SELECT max(valid_from) FROM customer_versions w
                 WHERE w.company_id = v.company_id AND w.customer_id = v.customer_id
                   AND w.valid_from <= ?4)
             ORDER BY customer_id"
            ))
            .bind(date)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                let digest: Vec<u8> = r.try_get(1)?;
                Ok(CustomerKey {
                    customer_id: r.try_get(0)?,
                    digest: digest.as_slice().try_into().map_err(|_| {
                        StoreError::Corrupt("a customer digest is not 8 bytes".into())
                    })?,
                })
            })
            .collect::<Result<Vec<_>>>()?
        };
        let pairs = |rows: Vec<SqliteRow>, col: &str| -> Result<Vec<(String, Decimal)>> {
            rows.iter()
                .map(|r| Ok((r.try_get("customer_id")?, dec(r, col)?)))
                .collect()
        };
        let readings = pairs(
            q(format!(
                "SELECT customer_id, heat_gj FROM readings
                 WHERE company_id = ?1 AND {RANGE} AND day = ?4 ORDER BY customer_id"
            ))
            .bind(date)
            .fetch_all(&mut *conn)
            .await?,
            "heat_gj",
        )?;
        let temperatures = pairs(
            q(format!(
                "SELECT customer_id, celsius FROM temperatures
                 WHERE company_id = ?1 AND {RANGE} AND day = ?4 ORDER BY customer_id"
            ))
            .bind(date)
            .fetch_all(&mut *conn)
            .await?,
            "celsius",
        )?;
        let previous = q(format!(
            "SELECT customer_id, charged_before, principal, arrears, arrears_since FROM bills
             WHERE company_id = ?1 AND {RANGE} AND bill_date = ?4 ORDER BY customer_id"
        ))
        .bind(prev)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(CarriedBalance {
                customer_id: r.try_get("customer_id")?,
                charged_before: dec(r, "charged_before")?,
                principal: dec(r, "principal")?,
                arrears: dec(r, "arrears")?,
                arrears_since: r.try_get("arrears_since")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let payments = q(format!(
            "SELECT customer_id, paid_on, amount FROM payments
             WHERE company_id = ?1 AND {RANGE} AND paid_on < ?4 ORDER BY customer_id, paid_on"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Payment {
                customer_id: r.try_get("customer_id")?,
                paid_on: r.try_get("paid_on")?,
                amount: dec(r, "amount")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let openings = q(format!(
            "SELECT customer_id, as_of, arrears, arrears_since FROM opening_balances
             WHERE company_id = ?1 AND {RANGE} ORDER BY customer_id"
        ))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(OpeningBalance {
                customer_id: r.try_get("customer_id")?,
                as_of: r.try_get("as_of")?,
                arrears: dec(r, "arrears")?,
                arrears_since: r.try_get("arrears_since")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let existing = q(format!(
            "SELECT customer_id, version, status, inputs, error FROM bills
             WHERE company_id = ?1 AND {RANGE} AND bill_date = ?4 ORDER BY customer_id"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(ExistingBill {
                customer_id: r.try_get("customer_id")?,
                version: r.try_get::<i64, _>("version")? as i32,
                status: BillStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("bill status {status:?}")))?,
                inputs: r.try_get("inputs")?,
                error: r.try_get("error")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(ShardData {
            customers,
            readings,
            temperatures,
            previous,
            payments,
            openings,
            existing,
        })
    }

    async fn load_customer_versions(
        &self,
        company_id: i32,
        shard: &ShardRange,
    ) -> Result<Vec<CustomerState>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT customer_id, valid_from, class, special_class, status, metered, low_income,
                    building_area, usable_area, ceiling_height, tags, attributes
             FROM customer_versions WHERE company_id = ?1 AND {RANGE}
             ORDER BY customer_id, valid_from"
        )))
        .bind(company_id)
        .bind(&shard.first)
        .bind(&shard.end)
        .fetch_all(&self.pool)
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
        // SQLite has no arrays: the ids go in as a JSON array, read back by json_each.
        let ids = ids.map(|ids| serde_json::to_string(ids).expect("strings serialize"));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT customer_id, valid_from, class, special_class, status, metered, low_income,
                    building_area, usable_area, ceiling_height, tags, attributes
             FROM customer_versions v
             WHERE company_id = ?1 AND {RANGE}
               AND (?5 IS NULL OR customer_id IN (SELECT value FROM json_each(?5)))
               AND valid_from = (
                 SELECT max(valid_from) FROM customer_versions w
                 WHERE w.company_id = v.company_id AND w.customer_id = v.customer_id
                   AND w.valid_from <= ?4)
             ORDER BY customer_id"
        )))
        .bind(company_id)
        .bind(&shard.first)
        .bind(&shard.end)
        .bind(date)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(customer_of)
        .collect()
    }

    async fn write_shard(&self, w: &ShardWrite) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let totals = totals_json(&w.totals);
        let claimed = sqlx::query(
            "UPDATE run_shards SET state = 'done', customers = ?4, written = ?5, revised = ?6,
                 unchanged = ?7, parked = ?8, totals = ?9,
                 done_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE run_id = ?1 AND shard_no = ?2 AND state = 'pending' AND token = ?3",
        )
        .bind(w.run_id)
        .bind(w.shard_no)
        .bind(w.token)
        .bind(w.counts.customers as i64)
        .bind(w.counts.written as i64)
        .bind(w.counts.revised as i64)
        .bind(w.counts.unchanged as i64)
        .bind(w.counts.parked as i64)
        .bind(&totals)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            let why: Option<(String, i64)> = sqlx::query_as(
                "SELECT state, token FROM run_shards WHERE run_id = ?1 AND shard_no = ?2",
            )
            .bind(w.run_id)
            .bind(w.shard_no)
            .fetch_all(&mut *tx)
            .await?
            .pop();
            return Err(claim_lost(w, why));
        }
        let revised: Vec<(&str, i32)> = w
            .rows
            .iter()
            .filter(|b| b.version > 1)
            .map(|b| (b.customer_id.as_str(), b.version - 1))
            .collect();
        let mut deleted = 0;
        for chunk in revised.chunks(CHUNK) {
            for (sql, delete) in [
                (
                    format!(
                        "INSERT INTO bill_history ({BILL_COLUMNS}, written_at, superseded_by_run)
                         SELECT {BILL_COLUMNS}, written_at, "
                    ),
                    false,
                ),
                ("DELETE".to_string(), true),
            ] {
                let mut q = QueryBuilder::<Sqlite>::new(sql);
                if !delete {
                    q.push_bind(w.run_id);
                }
                q.push(" FROM bills WHERE company_id = ")
                    .push_bind(w.company_id)
                    .push(" AND bill_date = ")
                    .push_bind(w.date)
                    .push(" AND (customer_id, version) IN (");
                q.push_values(chunk, |mut b, (id, v)| {
                    b.push_bind(id.to_string()).push_bind(*v);
                });
                q.push(")");
                let n = q.build().execute(&mut *tx).await?.rows_affected();
                if delete {
                    deleted += n;
                }
            }
        }
        if deleted != revised.len() as u64 {
            return Err(StoreError::Conflict(format!(
                "shard {} of run {}: {} of the {} bills it revises changed since it read them; \
                 nothing was written",
                w.shard_no,
                w.run_id,
                revised.len() as u64 - deleted,
                revised.len()
            )));
        }
        for chunk in w.rows.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(format!("INSERT INTO bills ({BILL_COLUMNS}) "));
            q.push_values(chunk, |mut b, r| {
                b.push_bind(w.company_id)
                    .push_bind(w.date)
                    .push_bind(r.customer_id.clone())
                    .push_bind(r.version)
                    .push_bind(r.status.as_str())
                    .push_bind(w.run_id)
                    .push_bind(w.chain_version_id)
                    .push_bind(r.inputs.clone())
                    .push_bind(r.total.to_string())
                    .push_bind(r.customer_total.to_string())
                    .push_bind(r.government_total.to_string())
                    .push_bind(r.employer_total.to_string())
                    .push_bind(r.principal.to_string())
                    .push_bind(r.charged_before.to_string())
                    .push_bind(r.paid_before.to_string())
                    .push_bind(r.arrears.to_string())
                    .push_bind(r.arrears_since)
                    .push_bind(r.lines.clone())
                    .push_bind(r.reason.clone())
                    .push_bind(r.error.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        for chunk in w.parked.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO parked (run_id, shard_no, customer_id, error_kind, plugin,
                     plugin_version, message) ",
            );
            q.push_values(chunk, |mut b, p| {
                b.push_bind(w.run_id)
                    .push_bind(w.shard_no)
                    .push_bind(p.customer_id.clone())
                    .push_bind(p.kind.clone())
                    .push_bind(p.plugin.clone())
                    .push_bind(p.plugin_version.clone())
                    .push_bind(p.message.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE runs SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
        )
        .bind(w.run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run_totals(&self, run_id: i64, parked_limit: usize) -> Result<RunTotals> {
        let rows = sqlx::query(
            "SELECT state, customers, written, revised, unchanged, parked, totals
             FROM run_shards WHERE run_id = ?1",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = RunTotals {
            shard_count: rows.len() as u64,
            ..Default::default()
        };
        for r in &rows {
            let state: String = r.try_get("state")?;
            if state != "done" {
                continue;
            }
            out.shards_done += 1;
            out.counts.add(&ShardCounts {
                customers: r.try_get::<i64, _>("customers")? as u64,
                written: r.try_get::<i64, _>("written")? as u64,
                revised: r.try_get::<i64, _>("revised")? as u64,
                unchanged: r.try_get::<i64, _>("unchanged")? as u64,
                parked: r.try_get::<i64, _>("parked")? as u64,
            });
            let totals: Option<String> = r.try_get("totals")?;
            merge_totals(&mut out.totals, totals.as_deref())?;
        }
        out.parked = sqlx::query(
            "SELECT customer_id, error_kind, plugin, plugin_version, message FROM parked
             WHERE run_id = ?1 ORDER BY customer_id LIMIT ?2",
        )
        .bind(run_id)
        .bind(parked_limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ParkedCustomer {
                customer_id: r.try_get("customer_id")?,
                kind: r.try_get("error_kind")?,
                plugin: r.try_get("plugin")?,
                plugin_version: r.try_get("plugin_version")?,
                message: r.try_get("message")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        out.parked_by = sqlx::query(
            "SELECT plugin, plugin_version, error_kind, count(*) AS n FROM parked
             WHERE run_id = ?1 GROUP BY plugin, plugin_version, error_kind
             ORDER BY n DESC, plugin, plugin_version, error_kind",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ParkedGroup {
                plugin: r.try_get("plugin")?,
                plugin_version: r.try_get("plugin_version")?,
                kind: r.try_get("error_kind")?,
                count: r.try_get::<i64, _>("n")? as u64,
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
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE runs SET state = ?2, report = ?3,
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1 AND state = 'running'",
        )
        .bind(run_id)
        .bind(state)
        .bind(&report)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn claim_shard(
        &self,
        run_id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>> {
        // SQLite has one writer: BEGIN IMMEDIATE serializes claimers, so the pick and the
        // update need no row lock.
        let mut tx = self.write_tx().await?;
        let now: i64 = sqlx::query_scalar("SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)")
            .fetch_all(&mut *tx)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a query returned no row".into()))?;
        let pick: Option<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT shard_no, first_customer, end_customer FROM run_shards
             WHERE run_id = ?1 AND state = 'pending' AND (lease_until IS NULL OR lease_until < ?2)
               -- A cancelled (failed) run's shards are not claimed.
               AND EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND state = 'running')
             ORDER BY lease_until IS NOT NULL, lease_until, shard_no LIMIT 1",
        )
        .bind(run_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .pop();
        let Some((shard_no, first, end)) = pick else {
            return Ok(None);
        };
        let token: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'shard_tokens' RETURNING value",
        )
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("the shard token counter is missing".into()))?;
        sqlx::query(
            "UPDATE run_shards SET token = ?3, lease_until = ?4, claimed_by = ?5,
                 claims = claims + 1
             WHERE run_id = ?1 AND shard_no = ?2",
        )
        .bind(run_id)
        .bind(shard_no)
        .bind(token)
        .bind(now + lease.as_millis() as i64)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Claim {
            shard: ShardRange {
                shard_no: shard_no as i32,
                first,
                end,
            },
            token,
        }))
    }

    async fn renew_lease(
        &self,
        run_id: i64,
        shard_no: i32,
        token: i64,
        lease: Duration,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE run_shards
             SET lease_until = CASE WHEN state = 'pending'
                 THEN CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?4 ELSE lease_until END
             WHERE run_id = ?1 AND shard_no = ?2 AND token = ?3",
        )
        .bind(run_id)
        .bind(shard_no)
        .bind(token)
        .bind(lease.as_millis() as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn end_stalled_writers(
        &self,
        _run_id: i64,
        _lapsed_for: Duration,
    ) -> Result<Vec<StalledShard>> {
        // One process, one writer, no lock that outlives its transaction.
        Ok(Vec::new())
    }

    async fn quarantine_plugin(&self, company_id: i32, q: &Quarantine) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "INSERT INTO plugin_quarantine (company_id, plugin, plugin_version, reason, run_id)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .bind(company_id)
        .bind(&q.plugin)
        .bind(&q.plugin_version)
        .bind(&q.reason)
        .bind(q.run_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            bump_data_version(&mut tx, company_id).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn quarantined_plugins(&self, company_id: i32) -> Result<Vec<Quarantine>> {
        sqlx::query(
            "SELECT plugin, plugin_version, reason, run_id FROM plugin_quarantine
             WHERE company_id = ?1 ORDER BY quarantined_at, plugin, plugin_version",
        )
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Quarantine {
                plugin: r.try_get(0)?,
                plugin_version: r.try_get(1)?,
                reason: r.try_get(2)?,
                run_id: r.try_get(3)?,
            })
        })
        .collect()
    }

    async fn running_runs(&self) -> Result<Vec<RunRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_of)
        .collect()
    }

    async fn arrears(&self, company_id: i32, date: NaiveDate) -> Result<Vec<(String, Decimal)>> {
        // Compared in Rust: SQLite would compare the TEXT decimals as text.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT customer_id, arrears FROM bills WHERE company_id = ?1 AND bill_date = ?2",
        )
        .bind(company_id)
        .bind(date)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (c, a) in rows {
            let a: Decimal = a
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("arrears {a:?}: {e}")))?;
            if a > Decimal::ZERO {
                out.push((c, a));
            }
        }
        Ok(out)
    }

    async fn latest_billed_date(&self, company_id: i32) -> Result<Option<NaiveDate>> {
        Ok(sqlx::query_scalar(
            "SELECT max(bill_date) FROM runs WHERE company_id = ?1 AND state = 'completed'",
        )
        .bind(company_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn run(&self, run_id: i64) -> Result<RunRecord> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no run {run_id}")))?;
        run_of(&r)
    }

    async fn runs(&self, company_id: i32, date: NaiveDate) -> Result<Vec<RunRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE company_id = ?1 AND bill_date = ?2
             ORDER BY attempt"
        )))
        .bind(company_id)
        .bind(date)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_of)
        .collect()
    }

    async fn bills(&self, company_id: i32, date: NaiveDate) -> Result<Vec<StoredBill>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_COLUMNS} FROM bills WHERE company_id = ?1 AND bill_date = ?2
             ORDER BY customer_id"
        )))
        .bind(company_id)
        .bind(date)
        .fetch_all(&self.pool)
        .await?;
        self.stored_bills(rows).await
    }

    async fn bill(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<StoredBill>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_COLUMNS} FROM bills
             WHERE company_id = ?1 AND bill_date = ?2 AND customer_id = ?3"
        )))
        .bind(company_id)
        .bind(date)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.stored_bills(rows).await?.pop())
    }

    async fn bill_history(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Vec<StoredBill>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_COLUMNS} FROM bill_history
             WHERE company_id = ?1 AND bill_date = ?2 AND customer_id = ?3 ORDER BY version"
        )))
        .bind(company_id)
        .bind(date)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        self.stored_bills(rows).await
    }

    async fn bill_bytes(&self, _company_id: i32, _date: NaiveDate) -> Result<Option<u64>> {
        // The dbstat table (compiled into the bundled SQLite) sums the pages of the table.
        let bytes: std::result::Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT sum(pgsize) FROM dbstat WHERE name = 'bills'")
                .fetch_one(&self.pool)
                .await;
        Ok(bytes.ok().flatten().map(|b| b as u64))
    }

    async fn bills_page(
        &self,
        company_id: i32,
        date: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBill>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_COLUMNS} FROM bills WHERE company_id = ?1 AND bill_date = ?2
               AND (?3 IS NULL OR customer_id > ?3)
             ORDER BY customer_id LIMIT ?4"
        )))
        .bind(company_id)
        .bind(date)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        self.stored_bills(rows).await
    }

    async fn bills_in(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<StoredBill>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_COLUMNS} FROM bills WHERE company_id = ?1 AND bill_date = ?2
               AND customer_id >= ?3 AND (?4 IS NULL OR customer_id < ?4)
             ORDER BY customer_id"
        )))
        .bind(company_id)
        .bind(date)
        .bind(&range.first)
        .bind(&range.end)
        .fetch_all(&self.pool)
        .await?;
        self.stored_bills(rows).await
    }

    async fn history_summary(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<HistorySummary>> {
        sqlx::query(
            "SELECT customer_id, count(*) AS n, min(version) AS lo, max(version) AS hi,
                    sum(CASE WHEN version > 1 AND reason IS NULL THEN 1 ELSE 0 END) AS unexplained
             FROM bill_history WHERE company_id = ?1 AND bill_date = ?2
               AND customer_id >= ?3 AND (?4 IS NULL OR customer_id < ?4)
             GROUP BY customer_id ORDER BY customer_id",
        )
        .bind(company_id)
        .bind(date)
        .bind(&range.first)
        .bind(&range.end)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(HistorySummary {
                customer_id: r.try_get("customer_id")?,
                versions: r.try_get("n")?,
                lowest: r.try_get("lo")?,
                highest: r.try_get("hi")?,
                unexplained: r.try_get("unexplained")?,
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_COLUMNS} FROM bills WHERE company_id = ?1 AND customer_id = ?2
               AND bill_date BETWEEN ?3 AND ?4
             ORDER BY bill_date"
        )))
        .bind(company_id)
        .bind(customer_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        self.stored_bills(rows).await
    }

    async fn recent_runs(&self, company_id: i32, limit: usize) -> Result<Vec<RunRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE company_id = ?1 ORDER BY id DESC LIMIT ?2"
        )))
        .bind(company_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_of)
        .collect()
    }

    async fn add_company_plugin(&self, company_id: i32, p: &PluginRecord) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let other: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM company_plugins WHERE company_id = ?1 AND name = ?2 AND version = ?3",
        )
        .bind(company_id)
        .bind(&p.name)
        .bind(&p.version)
        .fetch_all(&mut *tx)
        .await?
        .pop();
        match other {
            Some(d) if d == p.digest => return Ok(false),
            Some(d) => {
                return Err(StoreError::Conflict(format!(
                    "a different component is already stored as {} {} (sha256 {d}); give the new \
                     one another version in describe()",
                    p.name, p.version
                )));
            }
            None => {}
        }
        let n = sqlx::query(
            "INSERT INTO company_plugins (company_id, digest, name, version)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )
        .bind(company_id)
        .bind(&p.digest)
        .bind(&p.name)
        .bind(&p.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn company_plugins(&self, company_id: i32) -> Result<Vec<CompanyPlugin>> {
        let rows = sqlx::query(
            "SELECT p.digest, p.name, p.version, p.kind, p.contract_version, p.info,
                    strftime('%Y-%m-%dT%H:%M:%SZ', c.uploaded_at) AS uploaded_at
             FROM company_plugins c JOIN plugins p ON p.digest = c.digest
             WHERE c.company_id = ?1 ORDER BY p.name, c.uploaded_at",
        )
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let info: String = r.try_get("info")?;
                Ok(CompanyPlugin {
                    digest: r.try_get("digest")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    kind: r.try_get("kind")?,
                    contract_version: r.try_get("contract_version")?,
                    info: serde_json::from_str(&info)
                        .map_err(|e| StoreError::Corrupt(format!("plugin info: {e}")))?,
                    uploaded_at: r.try_get("uploaded_at")?,
                })
            })
            .collect()
    }

    async fn put_plugin_cases(&self, company_id: i32, c: &PluginCases) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_cases (company_id, digest, name, body, passed, report)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (company_id, digest, name) DO UPDATE SET body = excluded.body,
                 passed = excluded.passed, report = excluded.report,
                 uploaded_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(company_id)
        .bind(&c.digest)
        .bind(&c.name)
        .bind(&c.body)
        .bind(c.passed)
        .bind(serde_json::to_string(&c.report).expect("JSON serializes"))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn plugin_cases(&self, company_id: i32, digest: &str) -> Result<Vec<PluginCases>> {
        let rows = sqlx::query(
            "SELECT digest, name, body, passed, report FROM plugin_cases
             WHERE company_id = ?1 AND digest = ?2 ORDER BY name",
        )
        .bind(company_id)
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let report: String = r.try_get("report")?;
                Ok(PluginCases {
                    digest: r.try_get("digest")?,
                    name: r.try_get("name")?,
                    body: r.try_get("body")?,
                    passed: r.try_get("passed")?,
                    report: serde_json::from_str(&report)
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
        let mut tx = self.write_tx().await?;
        let current: Option<i32> = sqlx::query_scalar(
            "SELECT id FROM chain_versions
             WHERE company_id = ?1 AND effective_from = ?2 AND active",
        )
        .bind(company_id)
        .bind(effective_from)
        .fetch_all(&mut *tx)
        .await?
        .pop();
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!(
                "no chain version is active from {effective_from}"
            )));
        };
        sqlx::query("UPDATE chain_versions SET active = 0 WHERE id = ?1")
            .bind(current)
            .execute(&mut *tx)
            .await?;
        let previous = sqlx::query(
            "UPDATE chain_versions SET active = 1 WHERE id = (
                 SELECT id FROM chain_versions
                 WHERE company_id = ?1 AND effective_from = ?2 AND id < ?3
                 ORDER BY id DESC LIMIT 1)
             RETURNING id, effective_from, digest, definition",
        )
        .bind(company_id)
        .bind(effective_from)
        .bind(current)
        .fetch_all(&mut *tx)
        .await?
        .pop();
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
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens (company_id, role, label, token_hash) VALUES (?1, ?2, ?3, ?4)
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(company_id)
        .bind(role)
        .bind(label)
        .bind(token_hash)
        .fetch_all(&self.pool)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned nothing".into()))?;
        token_of(&r)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1"
        )))
        .bind(token_hash)
        .fetch_all(&self.pool)
        .await?
        .first()
        .map(token_of)
        .transpose()
    }

    async fn tokens(&self, company_id: i32) -> Result<Vec<TokenRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE company_id = ?1 ORDER BY id"
        )))
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_of)
        .collect()
    }

    async fn revoke_token(&self, company_id: i32, id: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE company_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        )
        .bind(company_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn run_request(&self, company_id: i32, key: &str) -> Result<Option<RunRequest>> {
        let r = sqlx::query(
            "SELECT request, run_id,
                    CAST((julianday('now') - julianday(created_at)) * 86400 AS INTEGER) AS age_s
             FROM run_requests WHERE company_id = ?1 AND idempotency_key = ?2",
        )
        .bind(company_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await?
        .pop();
        r.map(|r| {
            Ok(RunRequest {
                request: r.try_get("request")?,
                run_id: r.try_get("run_id")?,
                age_s: r.try_get("age_s")?,
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
        let n = sqlx::query(
            "INSERT INTO run_requests (company_id, idempotency_key, request, run_id)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )
        .bind(company_id)
        .bind(key)
        .bind(request)
        .bind(run_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "the idempotency key {key:?} is already used"
            )));
        }
        Ok(())
    }

    async fn put_schedule(&self, company_id: i32, run_at: Option<&str>) -> Result<()> {
        match run_at {
            Some(at) => {
                sqlx::query(
                    "INSERT INTO schedules (company_id, run_at) VALUES (?1, ?2)
                     ON CONFLICT (company_id) DO UPDATE SET run_at = excluded.run_at,
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                )
                .bind(company_id)
                .bind(at)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM schedules WHERE company_id = ?1")
                    .bind(company_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn schedules(&self) -> Result<Vec<(i32, String)>> {
        Ok(
            sqlx::query_as("SELECT company_id, run_at FROM schedules ORDER BY company_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// The columns of a token, as [`token_of`] reads them.
const TOKEN_COLUMNS: &str = "id, company_id, role, label, \
    strftime('%Y-%m-%dT%H:%M:%SZ', created_at) AS created_at, \
    strftime('%Y-%m-%dT%H:%M:%SZ', revoked_at) AS revoked_at";

fn token_of(r: &SqliteRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.try_get("id")?,
        company_id: r.try_get("company_id")?,
        role: r.try_get("role")?,
        label: r.try_get("label")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl SqliteStore {
    async fn stored_bills(&self, rows: Vec<SqliteRow>) -> Result<Vec<StoredBill>> {
        let mut kinds: BTreeMap<i32, Vec<LineKindRecord>> = BTreeMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let chain_version_id = r.try_get::<i64, _>("chain_version_id")? as i32;
            if let std::collections::btree_map::Entry::Vacant(e) = kinds.entry(chain_version_id) {
                e.insert(self.line_kinds(chain_version_id).await?);
            }
            let row = bill_row_of(r)?;
            let lines = resolve_lines(&row.lines, &kinds[&chain_version_id])?;
            out.push(StoredBill {
                customer_id: row.customer_id.clone(),
                bill_date: r.try_get("bill_date")?,
                run_id: r.try_get("run_id")?,
                chain_version_id,
                lines,
                row,
            });
        }
        Ok(out)
    }
}

fn stage_columns(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Customers => {
            "row_no INTEGER, customer_id TEXT, valid_from TEXT, class TEXT, special_class TEXT,
             status TEXT, metered INTEGER, low_income INTEGER, building_area TEXT,
             usable_area TEXT, ceiling_height TEXT, tags TEXT, attributes TEXT, digest BLOB"
        }
        ImportKind::Readings => {
            "row_no INTEGER, customer_id TEXT, day TEXT, hour INTEGER, heat_gj TEXT"
        }
        ImportKind::Temperatures => "row_no INTEGER, customer_id TEXT, day TEXT, celsius TEXT",
        ImportKind::Payments => {
            "row_no INTEGER, payment_id TEXT, customer_id TEXT, paid_on TEXT, amount TEXT"
        }
        ImportKind::Balances => {
            "row_no INTEGER, customer_id TEXT, as_of TEXT, arrears TEXT, arrears_since TEXT"
        }
    }
}

/// An import into SQLite: rows are inserted into a temporary table inside the import's
/// `BEGIN IMMEDIATE` transaction, checked as a set, merged with upserts, and committed together.
struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
    company_id: i32,
    kind: ImportKind,
}

impl SqliteImport {
    async fn check(&mut self, max: usize) -> Result<Vec<RowError>> {
        let (keys, key_names, needs_customer) = match self.kind {
            ImportKind::Customers => ("customer_id, valid_from", "customer and valid_from", false),
            ImportKind::Readings => ("customer_id, day, hour", "customer, date and hour", true),
            ImportKind::Temperatures => ("customer_id, day", "customer and date", true),
            ImportKind::Payments => ("payment_id", "payment_id", true),
            ImportKind::Balances => ("customer_id", "customer", true),
        };
        let mut errors = Vec::new();
        let dups: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT row_no, first FROM (
                 SELECT row_no, min(row_no) OVER (PARTITION BY {keys}) AS first FROM import_stage
             ) WHERE row_no <> first ORDER BY row_no LIMIT ?1"
        )))
        .bind(max as i64)
        .fetch_all(&mut *self.tx)
        .await?;
        errors.extend(dups.into_iter().map(|(row, first)| RowError {
            row: row as u64,
            column: String::new(),
            value: String::new(),
            problem: format!(
                "the same {key_names} as row {first}: a file gives each once; remove one of them"
            ),
        }));
        if needs_customer {
            let unknown: Vec<(i64, String)> = sqlx::query_as(
                "SELECT s.row_no, s.customer_id FROM import_stage s
                 WHERE NOT EXISTS (SELECT 1 FROM customers c
                                   WHERE c.company_id = ?1 AND c.customer_id = s.customer_id)
                 ORDER BY s.row_no LIMIT ?2",
            )
            .bind(self.company_id)
            .bind(max as i64)
            .fetch_all(&mut *self.tx)
            .await?;
            errors.extend(unknown.into_iter().map(|(row, id)| RowError {
                row: row as u64,
                column: "customer_id".into(),
                value: crate::import::shown(&id),
                problem: "no such customer in this company: import the customer first".into(),
            }));
        }
        if self.kind == ImportKind::Readings {
            let mixed: Vec<i64> = sqlx::query_scalar(
                "SELECT s.row_no FROM import_stage s
                 WHERE s.hour IS NULL AND EXISTS (
                     SELECT 1 FROM import_stage t WHERE t.customer_id = s.customer_id
                       AND t.day = s.day AND t.hour IS NOT NULL)
                 ORDER BY s.row_no LIMIT ?1",
            )
            .bind(max as i64)
            .fetch_all(&mut *self.tx)
            .await?;
            errors.extend(mixed.into_iter().map(|row| {
                RowError {
                    row: row as u64,
                    column: "time".into(),
                    value: String::new(),
                    problem: "a daily reading for a customer and date that also has hourly \
                          readings in this file: give either the day's total or its hours"
                        .into(),
                }
            }));
        }
        errors.sort_by_key(|e| e.row);
        errors.truncate(max);
        Ok(errors)
    }

    /// Sums hourly readings per customer and day in Rust (exactly: SQLite would sum TEXT
    /// decimals as floats) into a second staging table.
    async fn roll_up_readings(&mut self) -> Result<()> {
        sqlx::query("DROP TABLE IF EXISTS temp.import_days")
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("CREATE TEMP TABLE import_days (customer_id TEXT, day TEXT, heat_gj TEXT)")
            .execute(&mut *self.tx)
            .await?;
        let rows: Vec<(String, NaiveDate, String)> = sqlx::query_as(
            "SELECT customer_id, day, heat_gj FROM import_stage ORDER BY customer_id, day",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut days: Vec<(String, NaiveDate, Decimal)> = Vec::new();
        for (c, d, h) in rows {
            let h: Decimal = h
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("staged reading {h:?}: {e}")))?;
            match days.last_mut() {
                Some((lc, ld, sum)) if *lc == c && *ld == d => *sum += h,
                _ => days.push((c, d, h)),
            }
        }
        for chunk in days.chunks(CHUNK) {
            let mut q =
                QueryBuilder::<Sqlite>::new("INSERT INTO import_days (customer_id, day, heat_gj) ");
            q.push_values(chunk, |mut b, (c, d, h)| {
                b.push_bind(c.clone())
                    .push_bind(*d)
                    .push_bind(h.to_string());
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn merge(&mut self) -> Result<(u64, u64, u64)> {
        let c = self.company_id;
        if self.kind == ImportKind::Readings {
            self.roll_up_readings().await?;
        }
        let tx = &mut self.tx;
        let scalar = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(c);
        let (distinct_sql, existing_sql, merge_sql): (&str, &str, &str) = match self.kind {
            ImportKind::Customers => {
                sqlx::query(
                    "INSERT INTO customers (company_id, customer_id)
                     SELECT DISTINCT ?1, customer_id FROM import_stage WHERE true
                     ON CONFLICT DO NOTHING",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?;
                (
                    "SELECT count(*) FROM import_stage WHERE ?1 IS NOT NULL",
                    "SELECT count(*) FROM import_stage s JOIN customer_versions v
                     ON v.company_id = ?1 AND v.customer_id = s.customer_id
                    AND v.valid_from = s.valid_from",
                    "INSERT INTO customer_versions (company_id, customer_id, valid_from, class,
                         special_class, status, metered, low_income, building_area, usable_area,
                         ceiling_height, tags, attributes, digest)
                     SELECT ?1, customer_id, valid_from, class, special_class, status, metered,
                         low_income, building_area, usable_area, ceiling_height, tags, attributes,
                         digest
                     FROM import_stage WHERE true
                     ON CONFLICT (company_id, customer_id, valid_from) DO UPDATE SET
                         digest = excluded.digest,
                         class = excluded.class, special_class = excluded.special_class,
                         status = excluded.status, metered = excluded.metered,
                         low_income = excluded.low_income,
                         building_area = excluded.building_area,
                         usable_area = excluded.usable_area,
                         ceiling_height = excluded.ceiling_height, tags = excluded.tags,
                         attributes = excluded.attributes
                     WHERE digest IS NOT excluded.digest OR class IS NOT excluded.class
                        OR special_class IS NOT excluded.special_class
                        OR status IS NOT excluded.status OR metered IS NOT excluded.metered
                        OR low_income IS NOT excluded.low_income
                        OR building_area IS NOT excluded.building_area
                        OR usable_area IS NOT excluded.usable_area
                        OR ceiling_height IS NOT excluded.ceiling_height
                        OR tags IS NOT excluded.tags OR attributes IS NOT excluded.attributes",
                )
            }
            ImportKind::Readings => (
                "SELECT count(*) FROM import_days WHERE ?1 IS NOT NULL",
                "SELECT count(*) FROM import_days s JOIN readings r
                 ON r.company_id = ?1 AND r.day = s.day AND r.customer_id = s.customer_id",
                "INSERT INTO readings (company_id, day, customer_id, heat_gj)
                 SELECT ?1, day, customer_id, heat_gj FROM import_days WHERE true
                 ON CONFLICT (company_id, day, customer_id) DO UPDATE
                     SET heat_gj = excluded.heat_gj
                 WHERE heat_gj IS NOT excluded.heat_gj",
            ),
            ImportKind::Temperatures => (
                "SELECT count(*) FROM import_stage WHERE ?1 IS NOT NULL",
                "SELECT count(*) FROM import_stage s JOIN temperatures t
                 ON t.company_id = ?1 AND t.day = s.day AND t.customer_id = s.customer_id",
                "INSERT INTO temperatures (company_id, day, customer_id, celsius)
                 SELECT ?1, day, customer_id, celsius FROM import_stage WHERE true
                 ON CONFLICT (company_id, day, customer_id) DO UPDATE
                     SET celsius = excluded.celsius
                 WHERE celsius IS NOT excluded.celsius",
            ),
            ImportKind::Payments => (
                "SELECT count(*) FROM import_stage WHERE ?1 IS NOT NULL",
                "SELECT count(*) FROM import_stage s JOIN payments p
                 ON p.company_id = ?1 AND p.payment_id = s.payment_id",
                "INSERT INTO payments (company_id, payment_id, customer_id, paid_on, amount)
                 SELECT ?1, payment_id, customer_id, paid_on, amount FROM import_stage WHERE true
                 ON CONFLICT (company_id, payment_id) DO UPDATE SET
                     customer_id = excluded.customer_id, paid_on = excluded.paid_on,
                     amount = excluded.amount
                 WHERE customer_id IS NOT excluded.customer_id
                    OR paid_on IS NOT excluded.paid_on OR amount IS NOT excluded.amount",
            ),
            ImportKind::Balances => (
                "SELECT count(*) FROM import_stage WHERE ?1 IS NOT NULL",
                "SELECT count(*) FROM import_stage s JOIN opening_balances o
                 ON o.company_id = ?1 AND o.customer_id = s.customer_id",
                "INSERT INTO opening_balances (company_id, customer_id, as_of, arrears,
                     arrears_since)
                 SELECT ?1, customer_id, as_of, arrears, arrears_since FROM import_stage WHERE true
                 ON CONFLICT (company_id, customer_id) DO UPDATE SET
                     as_of = excluded.as_of, arrears = excluded.arrears,
                     arrears_since = excluded.arrears_since
                 WHERE as_of IS NOT excluded.as_of OR arrears IS NOT excluded.arrears
                    OR arrears_since IS NOT excluded.arrears_since",
            ),
        };
        let distinct = one(scalar(distinct_sql).fetch_all(&mut **tx).await?)?;
        let existing = one(scalar(existing_sql).fetch_all(&mut **tx).await?)?;
        let affected = sqlx::query(merge_sql)
            .bind(c)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        Ok((distinct as u64, existing as u64, affected))
    }
}

#[async_trait]
impl ImportSink for SqliteImport {
    async fn push(&mut self, rows: ImportRows) -> Result<()> {
        match &rows {
            ImportRows::Customers(v) => {
                for chunk in v.chunks(CHUNK) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO import_stage (row_no, customer_id, valid_from, class,
                             special_class, status, metered, low_income, building_area,
                             usable_area, ceiling_height, tags, attributes, digest) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        let s = &r.state;
                        b.push_bind(r.row as i64)
                            .push_bind(s.customer_id.clone())
                            .push_bind(s.valid_from)
                            .push_bind(class_str(s.class))
                            .push_bind(s.special_class.clone())
                            .push_bind(status_str(s.status))
                            .push_bind(s.metered)
                            .push_bind(s.low_income)
                            .push_bind(s.building_area.to_string())
                            .push_bind(s.usable_area.map(|d| d.to_string()))
                            .push_bind(s.ceiling_height.map(|d| d.to_string()))
                            .push_bind(tags_json(&s.tags))
                            .push_bind(attributes_json(&s.attributes))
                            .push_bind(s.digest().to_vec());
                    });
                    q.build().execute(&mut *self.tx).await?;
                }
            }
            ImportRows::Readings(v) => {
                for chunk in v.chunks(CHUNK) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO import_stage (row_no, customer_id, day, hour, heat_gj) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.row as i64)
                            .push_bind(r.customer_id.clone())
                            .push_bind(r.day)
                            .push_bind(r.hour.map(i64::from))
                            .push_bind(r.heat_gj.to_string());
                    });
                    q.build().execute(&mut *self.tx).await?;
                }
            }
            ImportRows::Temperatures(v) => {
                for chunk in v.chunks(CHUNK) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO import_stage (row_no, customer_id, day, celsius) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.row as i64)
                            .push_bind(r.customer_id.clone())
                            .push_bind(r.day)
                            .push_bind(r.celsius.to_string());
                    });
                    q.build().execute(&mut *self.tx).await?;
                }
            }
            ImportRows::Payments(v) => {
                for chunk in v.chunks(CHUNK) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO import_stage (row_no, payment_id, customer_id, paid_on, amount) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.row as i64)
                            .push_bind(r.payment_id.clone())
                            .push_bind(r.payment.customer_id.clone())
                            .push_bind(r.payment.paid_on)
                            .push_bind(r.payment.amount.to_string());
                    });
                    q.build().execute(&mut *self.tx).await?;
                }
            }
            ImportRows::Balances(v) => {
                for chunk in v.chunks(CHUNK) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO import_stage (row_no, customer_id, as_of, arrears,
                             arrears_since) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        let x = &r.balance;
                        b.push_bind(r.row as i64)
                            .push_bind(x.customer_id.clone())
                            .push_bind(x.as_of)
                            .push_bind(x.arrears.to_string())
                            .push_bind(x.arrears_since);
                    });
                    q.build().execute(&mut *self.tx).await?;
                }
            }
        }
        Ok(())
    }

    async fn finish(
        mut self: Box<Self>,
        file: &ImportFile,
        parse_errors: usize,
        max_errors: usize,
    ) -> Result<std::result::Result<ImportCounts, Vec<RowError>>> {
        sqlx::query("CREATE INDEX temp.import_stage_customer ON import_stage (customer_id)")
            .execute(&mut *self.tx)
            .await?;
        let errors = self.check(max_errors).await?;
        if parse_errors > 0 || !errors.is_empty() {
            return Ok(Err(errors));
        }
        let (distinct, existing, affected) = self.merge().await?;
        let inserted = distinct.saturating_sub(existing);
        let updated = affected.saturating_sub(inserted);
        let counts = ImportCounts {
            rows: file.rows,
            inserted,
            updated,
            unchanged: distinct.saturating_sub(inserted + updated),
        };
        if affected > 0 {
            bump_data_version(&mut self.tx, self.company_id).await?;
            if self.kind == ImportKind::Customers {
                sqlx::query(
                    "UPDATE companies SET customers_version = customers_version + 1 WHERE id = ?1",
                )
                .bind(self.company_id)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO imports (company_id, kind, file_name, sha256, rows, inserted, updated,
                 unchanged) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(self.company_id)
        .bind(self.kind.as_str())
        .bind(&file.name)
        .bind(&file.sha256)
        .bind(file.rows as i64)
        .bind(counts.inserted as i64)
        .bind(counts.updated as i64)
        .bind(counts.unchanged as i64)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DROP TABLE IF EXISTS temp.import_stage")
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DROP TABLE IF EXISTS temp.import_days")
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(Ok(counts))
    }
}
