//! The PostgreSQL store: production.
//!
//! Bills go in by `COPY … FROM STDIN` in text format inside the shard's transaction (the
//! measured floor: about 233,000 rows/s here with the unique index, against 8 s per million
//! for `unnest` batches and 11 s for multi-row `INSERT`). The `bills` table is partitioned by
//! month of the bill date; `migrate` creates the partitions of the last month and the next
//! twelve, and each run creates its date's partition before it writes.
//!
//! One file, though long: it is one implementation of the `Store` trait, and each method is a
//! query or a transaction that reads right only beside the others (a shard's write touches bills,
//! balances, digests and the run under one fencing token). Split by table, the transaction
//! boundaries would be scattered; kept whole, it reads side by side with `sqlite.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, PgConnection, Postgres, Row, Transaction};

use super::{
    Backend, ImportFile, ImportSink, Result, Store, StoreError, chain_digest, resolve_lines,
};
use crate::model::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool of `max_connections` to `url`.
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<PgStore> {
        let options: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Config(format!(
                "database URL {}: {e}",
                crate::settings::redact_url(url)
            ))
        })?;
        // A run's set-based statements take a second or more at a million customers: only a
        // statement slower than that is worth a warning.
        let options = options
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "cannot connect to PostgreSQL at {}: {e}; is the server running? \
                     (on this machine: pg_ctlcluster --skip-systemctl-redirect \
                     $(ls /etc/postgresql) main start)",
                    crate::settings::redact_url(url)
                ))
            })?;
        Ok(PgStore { pool })
    }

    /// The pool (tests and benchmarks reach the tables directly through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The customer-id range condition of a shard, on parameters $2 (first) and $3 (end or null).
const RANGE: &str = "customer_id >= $2 AND ($3::text IS NULL OR customer_id < $3)";

const BILL_COLUMNS: &str = "company_id, bill_date, customer_id, version, status, run_id, \
     chain_version_id, inputs, total, customer_total, government_total, employer_total, \
     principal, charged_before, paid_before, arrears, arrears_since, lines, reason, error";

/// [`BILL_COLUMNS`] as a read gives them: numerics as text (see [`dec_at`]).
const BILL_READ: &str = "company_id, bill_date, customer_id, version, status, run_id, \
     chain_version_id, inputs, total::text AS total, customer_total::text AS customer_total, \
     government_total::text AS government_total, employer_total::text AS employer_total, \
     principal::text AS principal, charged_before::text AS charged_before, \
     paid_before::text AS paid_before, arrears::text AS arrears, arrears_since, lines, reason, \
     error";

/// A numeric column read as text (`col::text` in the query): sqlx decodes a zero `numeric`
/// as `0` whatever its scale, and a stored `0.00` must read back as `0.00`, byte for byte as
/// SQLite gives it.
fn dec_at<I: sqlx::ColumnIndex<PgRow>>(r: &PgRow, i: I) -> Result<Decimal> {
    let s: &str = r.try_get(i)?;
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{s:?} is not a decimal: {e}")))
}

fn opt_dec_at<I: sqlx::ColumnIndex<PgRow>>(r: &PgRow, i: I) -> Result<Option<Decimal>> {
    let s: Option<&str> = r.try_get(i)?;
    s.map(|s| {
        s.parse()
            .map_err(|e| StoreError::Corrupt(format!("{s:?} is not a decimal: {e}")))
    })
    .transpose()
}

/// A customer version from the 12 columns of `load_customers` (by position: a shard is 10,000
/// rows, and looking columns up by name was a measurable part of loading it).
fn customer_of(r: &PgRow) -> Result<CustomerState> {
    let class: &str = r.try_get(2)?;
    let status: &str = r.try_get(4)?;
    let tags: &str = r.try_get(10)?;
    let attributes: &str = r.try_get(11)?;
    Ok(CustomerState {
        customer_id: r.try_get(0)?,
        valid_from: r.try_get(1)?,
        class: parse_class(class).ok_or_else(|| StoreError::Corrupt(format!("class {class:?}")))?,
        special_class: r.try_get(3)?,
        status: parse_status(status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        metered: r.try_get(5)?,
        low_income: r.try_get(6)?,
        building_area: dec_at(r, 7)?,
        usable_area: opt_dec_at(r, 8)?,
        ceiling_height: opt_dec_at(r, 9)?,
        tags: parse_tags(tags),
        attributes: parse_attributes(attributes),
    })
}

fn seasons_of(rows: Vec<PgRow>) -> Result<Vec<Season>> {
    rows.iter()
        .map(|r| {
            Ok(Season {
                start: r.try_get("starts")?,
                end: r.try_get("ends")?,
            })
        })
        .collect()
}

fn company_of(r: &PgRow, seasons: Vec<Season>) -> Result<Company> {
    let policies: String = r.try_get("policies")?;
    Ok(Company {
        id: r.try_get("id")?,
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

fn chain_version_of(r: &PgRow) -> Result<ChainVersion> {
    let def: String = r.try_get("definition")?;
    Ok(ChainVersion {
        id: r.try_get("id")?,
        effective_from: r.try_get("effective_from")?,
        digest: r.try_get("digest")?,
        entries: serde_json::from_str(&def)
            .map_err(|e| StoreError::Corrupt(format!("chain definition: {e}")))?,
    })
}

fn run_of(r: &PgRow) -> Result<RunRecord> {
    let report: Option<String> = r.try_get("report")?;
    Ok(RunRecord {
        id: r.try_get("id")?,
        company_id: r.try_get("company_id")?,
        bill_date: r.try_get("bill_date")?,
        attempt: r.try_get("attempt")?,
        state: r.try_get("state")?,
        chain_version_id: r.try_get("chain_version_id")?,
        shard_count: r.try_get("shard_count")?,
        shard_size: r.try_get("shard_size")?,
        stamp: r.try_get("stamp")?,
        report: report.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

const RUN_COLUMNS: &str = "id, company_id, bill_date, attempt, state, chain_version_id, \
     shard_count, shard_size, stamp, report::text AS report";

fn bill_row_of(r: &PgRow) -> Result<BillRow> {
    let status: String = r.try_get("status")?;
    Ok(BillRow {
        customer_id: r.try_get("customer_id")?,
        version: r.try_get("version")?,
        status: BillStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("bill status {status:?}")))?,
        inputs: r.try_get("inputs")?,
        total: dec_at(r, "total")?,
        customer_total: dec_at(r, "customer_total")?,
        government_total: dec_at(r, "government_total")?,
        employer_total: dec_at(r, "employer_total")?,
        principal: dec_at(r, "principal")?,
        charged_before: dec_at(r, "charged_before")?,
        paid_before: dec_at(r, "paid_before")?,
        arrears: dec_at(r, "arrears")?,
        arrears_since: r.try_get("arrears_since")?,
        lines: r.try_get("lines")?,
        reason: r.try_get("reason")?,
        error: r.try_get("error")?,
    })
}

/// Appends `s` to a COPY text-format buffer, escaped.
fn copy_text(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn copy_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => copy_text(out, s),
        None => out.extend_from_slice(b"\\N"),
    }
}

fn copy_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    write!(out, "{v}").expect("writing to a Vec cannot fail");
}

/// Appends one bill row (the columns of [`BILL_COLUMNS`]) to a COPY text buffer.
fn copy_bill(out: &mut Vec<u8>, w: &ShardWrite, b: &BillRow) {
    copy_display(out, w.company_id);
    out.push(b'\t');
    copy_display(out, w.date);
    out.push(b'\t');
    copy_text(out, &b.customer_id);
    out.push(b'\t');
    copy_display(out, b.version);
    out.push(b'\t');
    out.extend_from_slice(b.status.as_str().as_bytes());
    out.push(b'\t');
    copy_display(out, w.run_id);
    out.push(b'\t');
    copy_display(out, w.chain_version_id);
    out.push(b'\t');
    out.extend_from_slice(b"\\\\x");
    out.extend_from_slice(hex::encode(&b.inputs).as_bytes());
    for d in [
        b.total,
        b.customer_total,
        b.government_total,
        b.employer_total,
        b.principal,
        b.charged_before,
        b.paid_before,
        b.arrears,
    ] {
        out.push(b'\t');
        copy_display(out, d);
    }
    out.push(b'\t');
    match b.arrears_since {
        Some(d) => copy_display(out, d),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
    copy_text(out, &b.lines);
    out.push(b'\t');
    copy_opt(out, b.reason.as_deref());
    out.push(b'\t');
    copy_opt(out, b.error.as_deref());
    out.push(b'\n');
}

async fn bump_data_version(conn: &mut PgConnection, company_id: i32) -> Result<()> {
    sqlx::query(
        "UPDATE companies SET data_version = data_version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(company_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        let today = chrono::Utc::now().date_naive();
        let from = today - chrono::Months::new(1);
        let to = today + chrono::Months::new(12);
        self.ensure_partitions(from, to).await?;
        Ok(())
    }

    async fn put_company(&self, spec: &CompanySpec) -> Result<Company> {
        let mut tx = self.pool.begin().await?;
        let policies = serde_json::to_string(&spec.policies).expect("JSON serializes");
        let row = sqlx::query(
            "INSERT INTO companies (slug, name, time_zone, policies) VALUES ($1, $2, $3, $4::jsonb)
             ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name,
                 time_zone = EXCLUDED.time_zone, policies = EXCLUDED.policies, updated_at = now(),
                 data_version = companies.data_version + 1
             WHERE (companies.name, companies.time_zone, companies.policies)
                   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.time_zone, EXCLUDED.policies)
             RETURNING id",
        )
        .bind(&spec.slug)
        .bind(&spec.name)
        .bind(&spec.time_zone)
        .bind(&policies)
        .fetch_optional(&mut *tx)
        .await?;
        let id: i32 = match row {
            Some(r) => r.try_get("id")?,
            None => {
                sqlx::query_scalar("SELECT id FROM companies WHERE slug = $1")
                    .bind(&spec.slug)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let stored = seasons_of(
            sqlx::query(
                "SELECT starts, ends FROM heating_seasons WHERE company_id = $1 ORDER BY starts",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?,
        )?;
        let mut wanted = spec.seasons.clone();
        wanted.sort_by_key(|s| s.start);
        if stored != wanted {
            sqlx::query("DELETE FROM heating_seasons WHERE company_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for s in &wanted {
                sqlx::query(
                    "INSERT INTO heating_seasons (company_id, starts, ends) VALUES ($1, $2, $3)",
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
        let row = sqlx::query(
            "SELECT id, slug, name, time_zone, policies::text AS policies, data_version,
                    customers_version
             FROM companies WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no company {slug:?}: create it first with `heatbill company apply FILE`"
            ))
        })?;
        let id: i32 = row.try_get("id")?;
        let seasons = seasons_of(
            sqlx::query(
                "SELECT starts, ends FROM heating_seasons WHERE company_id = $1 ORDER BY starts",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?,
        )?;
        company_of(&row, seasons)
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
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM bills WHERE company_id = $1",
            "DELETE FROM bill_history WHERE company_id = $1",
            "DELETE FROM companies WHERE id = $1",
        ] {
            sqlx::query(sql).bind(company.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn put_plugin(&self, p: &PluginRecord) -> Result<()> {
        // Names and versions are unique per company (add_company_plugin), not here: two
        // companies may each ship their own "late-fee 1.0.0".
        let info = serde_json::to_string(&p.info).expect("JSON serializes");
        sqlx::query(
            "INSERT INTO plugins (digest, name, version, kind, contract_version, info, component)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (digest) DO NOTHING",
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
            "SELECT digest, name, version, kind, contract_version, info::text AS info, component
             FROM plugins WHERE digest = $1",
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
        let mut tx = self.pool.begin().await?;
        let current = sqlx::query(
            "SELECT id, effective_from, digest, definition::text AS definition FROM chain_versions
             WHERE company_id = $1 AND effective_from = $2 AND active FOR UPDATE",
        )
        .bind(company_id)
        .bind(effective_from)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = &current {
            let v = chain_version_of(r)?;
            if v.digest == digest {
                return Ok(v);
            }
            sqlx::query("UPDATE chain_versions SET active = false WHERE id = $1")
                .bind(v.id)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query(
            "INSERT INTO chain_versions (company_id, effective_from, digest, definition)
             VALUES ($1, $2, $3, $4::jsonb)
             RETURNING id, effective_from, digest, definition::text AS definition",
        )
        .bind(company_id)
        .bind(effective_from)
        .bind(&digest)
        .bind(&definition)
        .fetch_one(&mut *tx)
        .await?;
        bump_data_version(&mut tx, company_id).await?;
        tx.commit().await?;
        chain_version_of(&r)
    }

    async fn chain_versions(&self, company_id: i32) -> Result<Vec<ChainVersion>> {
        sqlx::query(
            "SELECT id, effective_from, digest, definition::text AS definition FROM chain_versions
             WHERE company_id = $1 AND active ORDER BY effective_from",
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
            let mut tx = self.pool.begin().await?;
            for k in kinds {
                sqlx::query(
                    "INSERT INTO line_kinds (chain_version_id, entry, kind, plugin, plugin_version,
                         code, description, unit, category)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(chain_version_id)
                .bind(k.entry as i16)
                .bind(k.kind as i16)
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
            // Another host may have recorded them first: compare with what is stored now.
            let stored = self.line_kinds(chain_version_id).await?;
            return check_kinds(&stored, kinds);
        }
        check_kinds(&stored, kinds)
    }

    async fn line_kinds(&self, chain_version_id: i32) -> Result<Vec<LineKindRecord>> {
        sqlx::query(
            "SELECT entry, kind, plugin, plugin_version, code, description, unit, category
             FROM line_kinds WHERE chain_version_id = $1 ORDER BY entry, kind",
        )
        .bind(chain_version_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(LineKindRecord {
                entry: r.try_get::<i16, _>("entry")? as u16,
                kind: r.try_get::<i16, _>("kind")? as u16,
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE import_stage ({}) ON COMMIT DROP",
            stage_columns(kind)
        )))
        .execute(&mut *tx)
        .await?;
        Ok(Box::new(PgImport {
            tx,
            company_id: company.id,
            kind,
            buf: Vec::new(),
        }))
    }

    async fn ensure_partitions(&self, from: NaiveDate, to: NaiveDate) -> Result<u32> {
        let n: i32 = sqlx::query_scalar("SELECT heatbill_ensure_bill_partitions($1, $2)")
            .bind(from)
            .bind(to)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u32)
    }

    async fn previous_day(&self, company_id: i32, date: NaiveDate) -> Result<PreviousDay> {
        let r = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE company_id = $1 AND bill_date < $2
                            AND state = 'completed') AS before,
                    EXISTS (SELECT 1 FROM runs WHERE company_id = $1 AND bill_date = $3
                            AND state = 'completed') AS previous",
        )
        .bind(company_id)
        .bind(date)
        .bind(date.pred_opt().unwrap_or(date))
        .fetch_one(&self.pool)
        .await?;
        let (before, previous): (bool, bool) = (r.try_get("before")?, r.try_get("previous")?);
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
                 FROM customers WHERE company_id = $1) c
             WHERE n % $2 = 0 ORDER BY customer_id",
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
        // Two processes may open the same run at once: the loser of the unique index on the
        // running run picks up the winner's.
        for _ in 0..3 {
            match self
                .try_open_run(company_id, date, chain_version_id, shard_size, stamp)
                .await
            {
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
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO runs (company_id, bill_date, attempt, state, chain_version_id, shard_size,
                 shard_count, stamp, report, finished_at)
             SELECT $1, $2, coalesce(max(attempt), 0) + 1, 'completed', $3, 0, 0, $4, $5::jsonb,
                    now()
             FROM runs WHERE company_id = $1 AND bill_date = $2
             RETURNING {RUN_COLUMNS}"
        )))
        .bind(company_id)
        .bind(date)
        .bind(chain_version_id)
        .bind(stamp)
        .bind(&report)
        .fetch_one(&self.pool)
        .await?;
        run_of(&r)
    }

    async fn load_shard(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        with_customers: bool,
    ) -> Result<ShardData> {
        let prev = date.pred_opt().unwrap_or(date);
        let q = |sql: String, day: Option<NaiveDate>| {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(company_id)
                .bind(shard.first.clone())
                .bind(shard.end.clone());
            match day {
                Some(d) => q.bind(d),
                None => q,
            }
        };
        // The seven queries are independent: each runs on a connection of its own, so the
        // server works on a shard with every core it has.
        let (customers, readings, temperatures, previous, payments, openings, existing) = tokio::try_join!(
            // Backwards, so the newest version of each customer comes first without a
            // sort: DISTINCT ON keeps it. Reversed below.
            async {
                if !with_customers {
                    return Ok(Vec::new());
                }
                q(
                    format!(
                        "SELECT DISTINCT ON (customer_id) customer_id, digest
                         FROM customer_versions
                         WHERE company_id = $1 AND {RANGE} AND valid_from <= $4
                         ORDER BY customer_id DESC, valid_from DESC"
                    ),
                    Some(date),
                )
                .fetch_all(&self.pool)
                .await
            },
            q(
                format!(
                    "SELECT customer_id, heat_gj::text FROM readings
                         WHERE company_id = $1 AND {RANGE} AND day = $4 ORDER BY customer_id"
                ),
                Some(date)
            )
            .fetch_all(&self.pool),
            q(
                format!(
                    "SELECT customer_id, celsius::text FROM temperatures
                         WHERE company_id = $1 AND {RANGE} AND day = $4 ORDER BY customer_id"
                ),
                Some(date)
            )
            .fetch_all(&self.pool),
            q(
                format!(
                    "SELECT customer_id, charged_before::text, principal::text, arrears::text,
                                arrears_since
                         FROM bills WHERE company_id = $1 AND {RANGE} AND bill_date = $4
                         ORDER BY customer_id"
                ),
                Some(prev)
            )
            .fetch_all(&self.pool),
            q(
                format!(
                    "SELECT customer_id, paid_on, amount::text FROM payments
                         WHERE company_id = $1 AND {RANGE} AND paid_on < $4
                         ORDER BY customer_id, paid_on"
                ),
                Some(date)
            )
            .fetch_all(&self.pool),
            q(
                format!(
                    "SELECT customer_id, as_of, arrears::text, arrears_since FROM opening_balances
                         WHERE company_id = $1 AND {RANGE} ORDER BY customer_id"
                ),
                None
            )
            .fetch_all(&self.pool),
            q(
                format!(
                    "SELECT customer_id, version, status, inputs,
                                CASE WHEN status = 'parked' THEN error END
                         FROM bills WHERE company_id = $1 AND {RANGE} AND bill_date = $4
                         ORDER BY customer_id"
                ),
                Some(date)
            )
            .fetch_all(&self.pool),
        )?;
        // By position: a shard is 10,000 rows, and looking columns up by name was a
        // measurable part of loading it.
        let mut customers = customers
            .iter()
            .map(|r| {
                let digest: &[u8] = r.try_get(1)?;
                Ok(CustomerKey {
                    customer_id: r.try_get(0)?,
                    digest: digest.try_into().map_err(|_| {
                        StoreError::Corrupt("a customer digest is not 8 bytes".into())
                    })?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        customers.reverse();
        let pairs = |rows: Vec<PgRow>| -> Result<Vec<(String, Decimal)>> {
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, dec_at(r, 1)?)))
                .collect()
        };
        let previous = previous
            .iter()
            .map(|r| {
                Ok(CarriedBalance {
                    customer_id: r.try_get(0)?,
                    charged_before: dec_at(r, 1)?,
                    principal: dec_at(r, 2)?,
                    arrears: dec_at(r, 3)?,
                    arrears_since: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let payments = payments
            .iter()
            .map(|r| {
                Ok(Payment {
                    customer_id: r.try_get(0)?,
                    paid_on: r.try_get(1)?,
                    amount: dec_at(r, 2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let openings = openings
            .iter()
            .map(|r| {
                Ok(OpeningBalance {
                    customer_id: r.try_get(0)?,
                    as_of: r.try_get(1)?,
                    arrears: dec_at(r, 2)?,
                    arrears_since: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let existing = existing
            .iter()
            .map(|r| {
                let status: &str = r.try_get(2)?;
                Ok(ExistingBill {
                    customer_id: r.try_get(0)?,
                    version: r.try_get(1)?,
                    status: BillStatus::parse(status)
                        .ok_or_else(|| StoreError::Corrupt(format!("bill status {status:?}")))?,
                    inputs: r.try_get(3)?,
                    error: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardData {
            customers,
            readings: pairs(readings)?,
            temperatures: pairs(temperatures)?,
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT customer_id, valid_from, class, special_class, status, metered, low_income,
                    building_area::text, usable_area::text, ceiling_height::text, tags, attributes
             FROM customer_versions WHERE company_id = $1 AND {RANGE}
             ORDER BY customer_id, valid_from"
        )))
        .bind(company_id)
        .bind(&shard.first)
        .bind(&shard.end)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(customer_of).collect()
    }

    async fn load_customers(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        ids: Option<&[String]>,
    ) -> Result<Vec<CustomerState>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT ON (customer_id) customer_id, valid_from, class, special_class,
                    status, metered, low_income, building_area::text, usable_area::text,
                    ceiling_height::text, tags, attributes
             FROM customer_versions WHERE company_id = $1 AND {RANGE} AND valid_from <= $4
               AND ($5::text[] IS NULL OR customer_id = ANY($5))
             ORDER BY customer_id, valid_from DESC"
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
        let mut tx = self.pool.begin().await?;
        // A writer paused inside this transaction (stopped, swapped out, cut off) must not
        // hold anything another worker waits on. The server ends a session that sits idle in
        // the transaction, or runs one statement, longer than the claim's lease. That does not
        // cover a client paused in the middle of a COPY (the backend waits for data with
        // interrupts held: neither timeout fires), so the COPY, the only client-paced step,
        // goes first into a private table, before the fencing UPDATE takes the shard's row
        // lock; every statement after it is server-paced. The application name tells
        // `end_stalled_writers` which shard this session writes, should it stall anyway.
        let ms = w.lease.as_millis().clamp(1000, i32::MAX as u128);
        for setting in [
            format!("idle_in_transaction_session_timeout = {ms}"),
            format!("statement_timeout = {ms}"),
            format!(
                "application_name = '{}'",
                writer_name(w.run_id, w.shard_no, w.token)
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {setting}")))
                .execute(&mut *tx)
                .await?;
        }
        if !w.rows.is_empty() {
            // Dropped at the commit: no state outside the transaction (PgBouncer in
            // transaction mode stays safe), for one catalog entry per shard.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TEMPORARY TABLE bills_stage ON COMMIT DROP AS
                 SELECT {BILL_COLUMNS} FROM bills WITH NO DATA"
            )))
            .execute(&mut *tx)
            .await?;
            let mut buf = Vec::with_capacity(w.rows.len() * 320);
            for b in &w.rows {
                copy_bill(&mut buf, w, b);
            }
            let mut copy = tx
                .copy_in_raw(&format!("COPY bills_stage ({BILL_COLUMNS}) FROM STDIN"))
                .await?;
            if w.stop_in_copy {
                // The fault tests' pause: half the rows sent, then the process stops itself.
                let rest = buf.split_off(buf.len() / 2);
                copy.send(buf).await?;
                crate::fault::stop_this_process_once("inside the COPY of a shard's bills");
                copy.send(rest).await?;
            } else {
                copy.send(buf).await?;
            }
            copy.finish().await?;
        }
        // The claim: a shard is written once, by the holder of its current token.
        let totals = totals_json(&w.totals);
        let claimed = sqlx::query(
            "UPDATE run_shards SET state = 'done', customers = $4, written = $5, revised = $6,
                 unchanged = $7, parked = $8, totals = $9::jsonb, done_at = now()
             WHERE run_id = $1 AND shard_no = $2 AND state = 'pending' AND token = $3",
        )
        .bind(w.run_id)
        .bind(w.shard_no)
        .bind(w.token)
        .bind(w.counts.customers as i32)
        .bind(w.counts.written as i32)
        .bind(w.counts.revised as i32)
        .bind(w.counts.unchanged as i32)
        .bind(w.counts.parked as i32)
        .bind(&totals)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            let why: Option<(String, i64)> = sqlx::query_as(
                "SELECT state, token FROM run_shards WHERE run_id = $1 AND shard_no = $2",
            )
            .bind(w.run_id)
            .bind(w.shard_no)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(claim_lost(w, why));
        }
        // Bills replaced by a new version move to the history, exactly the version compared.
        let (ids, versions): (Vec<String>, Vec<i32>) = w
            .rows
            .iter()
            .filter(|b| b.version > 1)
            .map(|b| (b.customer_id.clone(), b.version - 1))
            .unzip();
        if !ids.is_empty() {
            // One statement: the rows deleted are the rows kept in the history. The join on
            // the unnested pairs lets the planner probe the primary key once per bill.
            let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH gone AS (
                     DELETE FROM bills b USING unnest($3::text[], $4::int[]) AS u (id, v)
                     WHERE b.company_id = $1 AND b.bill_date = $2
                       AND b.customer_id = u.id AND b.version = u.v
                     RETURNING b.*)
                 INSERT INTO bill_history ({BILL_COLUMNS}, written_at, superseded_by_run)
                 SELECT {BILL_COLUMNS}, written_at, $5 FROM gone"
            )))
            .bind(w.company_id)
            .bind(w.date)
            .bind(&ids)
            .bind(&versions)
            .bind(w.run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved != ids.len() as u64 {
                return Err(StoreError::Conflict(format!(
                    "shard {} of run {}: {} of the {} bills it revises changed since it read \
                     them; nothing was written",
                    w.shard_no,
                    w.run_id,
                    ids.len() as u64 - moved,
                    ids.len()
                )));
            }
        }
        if !w.rows.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO bills ({BILL_COLUMNS}) SELECT {BILL_COLUMNS} FROM bills_stage"
            )))
            .execute(&mut *tx)
            .await?;
        }
        if !w.parked.is_empty() {
            let col = |f: fn(&ParkedCustomer) -> &str| -> Vec<String> {
                w.parked.iter().map(|p| f(p).to_string()).collect()
            };
            sqlx::query(
                "INSERT INTO parked (run_id, shard_no, customer_id, error_kind, plugin,
                     plugin_version, message)
                 SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[])",
            )
            .bind(w.run_id)
            .bind(w.shard_no)
            .bind(col(|p| &p.customer_id))
            .bind(col(|p| &p.kind))
            .bind(col(|p| &p.plugin))
            .bind(col(|p| &p.plugin_version))
            .bind(col(|p| &p.message))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE runs SET updated_at = now() WHERE id = $1")
            .bind(w.run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run_totals(&self, run_id: i64, parked_limit: usize) -> Result<RunTotals> {
        let rows = sqlx::query(
            "SELECT state, customers, written, revised, unchanged, parked, totals::text AS totals
             FROM run_shards WHERE run_id = $1",
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
                customers: r.try_get::<i32, _>("customers")? as u64,
                written: r.try_get::<i32, _>("written")? as u64,
                revised: r.try_get::<i32, _>("revised")? as u64,
                unchanged: r.try_get::<i32, _>("unchanged")? as u64,
                parked: r.try_get::<i32, _>("parked")? as u64,
            });
            let totals: Option<String> = r.try_get("totals")?;
            merge_totals(&mut out.totals, totals.as_deref())?;
        }
        out.parked = sqlx::query(
            "SELECT customer_id, error_kind, plugin, plugin_version, message FROM parked
             WHERE run_id = $1 ORDER BY customer_id LIMIT $2",
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
             WHERE run_id = $1 GROUP BY plugin, plugin_version, error_kind
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
        let n = sqlx::query(
            "UPDATE runs SET state = $2, report = $3::jsonb, finished_at = now(), updated_at = now()
             WHERE id = $1 AND state = 'running'",
        )
        .bind(run_id)
        .bind(state)
        .bind(&report)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn claim_shard(
        &self,
        run_id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>> {
        // SKIP LOCKED: concurrent claimers never wait on each other's candidate row; never
        // claimed shards go first (NULLS FIRST), lapsed leases after them.
        let r = sqlx::query(
            "UPDATE run_shards s SET token = nextval('shard_tokens'),
                 lease_until = now() + $3 * interval '1 millisecond',
                 claimed_by = $2, claims = s.claims + 1
             FROM (SELECT run_id, shard_no FROM run_shards
                   WHERE run_id = $1 AND state = 'pending'
                     AND (lease_until IS NULL OR lease_until < now())
                     -- A cancelled (failed) run's shards are not claimed.
                     AND EXISTS (SELECT 1 FROM runs WHERE id = $1 AND state = 'running')
                   ORDER BY lease_until NULLS FIRST, shard_no
                   LIMIT 1 FOR UPDATE SKIP LOCKED) c
             WHERE s.run_id = c.run_id AND s.shard_no = c.shard_no
             RETURNING s.shard_no, s.first_customer, s.end_customer, s.token",
        )
        .bind(run_id)
        .bind(worker)
        .bind(lease.as_millis() as f64)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| {
            Ok(Claim {
                shard: ShardRange {
                    shard_no: r.try_get(0)?,
                    first: r.try_get(1)?,
                    end: r.try_get(2)?,
                },
                token: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn renew_lease(
        &self,
        run_id: i64,
        shard_no: i32,
        token: i64,
        lease: Duration,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE run_shards SET lease_until = CASE WHEN state = 'pending'
                 THEN now() + $4 * interval '1 millisecond' ELSE lease_until END
             WHERE run_id = $1 AND shard_no = $2 AND token = $3",
        )
        .bind(run_id)
        .bind(shard_no)
        .bind(token)
        .bind(lease.as_millis() as f64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn end_stalled_writers(
        &self,
        run_id: i64,
        lapsed_for: Duration,
    ) -> Result<Vec<StalledShard>> {
        // Claims skip locked rows, so a shard still pending long after its lease lapsed is
        // locked by its writer's open transaction: one the server's timeouts did not end (a
        // backend waiting on its client with interrupts held). Ending that session releases
        // the lock; the writer's process, if it ever resumes, finds its claim lost. The same
        // role may end its own sessions, so no privilege beyond the application's is needed.
        let rows = sqlx::query(
            "SELECT s.shard_no, s.claimed_by,
                    (extract(epoch FROM now() - s.lease_until) * 1000)::bigint AS lapsed_ms,
                    a.pid, CASE WHEN a.pid IS NULL THEN false
                                ELSE pg_terminate_backend(a.pid) END AS ended
             FROM run_shards s
             LEFT JOIN pg_stat_activity a ON a.datname = current_database()
                 AND a.application_name =
                     'heatbill write ' || s.run_id || ' ' || s.shard_no || ' ' || s.token
             WHERE s.run_id = $1 AND s.state = 'pending'
               AND s.lease_until < now() - $2 * interval '1 millisecond'
             ORDER BY s.shard_no",
        )
        .bind(run_id)
        .bind(lapsed_for.as_millis() as f64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StalledShard {
                    shard_no: r.try_get("shard_no")?,
                    claimed_by: r.try_get("claimed_by")?,
                    lapsed_ms: r.try_get("lapsed_ms")?,
                    session: r.try_get("pid")?,
                    ended: r.try_get("ended")?,
                })
            })
            .collect()
    }

    async fn quarantine_plugin(&self, company_id: i32, q: &Quarantine) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "INSERT INTO plugin_quarantine (company_id, plugin, plugin_version, reason, run_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
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
             WHERE company_id = $1 ORDER BY quarantined_at, plugin, plugin_version",
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
        sqlx::query(
            "SELECT customer_id, arrears::text FROM bills
             WHERE company_id = $1 AND bill_date = $2 AND arrears > 0",
        )
        .bind(company_id)
        .bind(date)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, dec_at(r, 1)?)))
        .collect()
    }

    async fn latest_billed_date(&self, company_id: i32) -> Result<Option<NaiveDate>> {
        Ok(sqlx::query_scalar(
            "SELECT max(bill_date) FROM runs WHERE company_id = $1 AND state = 'completed'",
        )
        .bind(company_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn run(&self, run_id: i64) -> Result<RunRecord> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no run {run_id}")))?;
        run_of(&r)
    }

    async fn runs(&self, company_id: i32, date: NaiveDate) -> Result<Vec<RunRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE company_id = $1 AND bill_date = $2
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
            "SELECT {BILL_READ} FROM bills WHERE company_id = $1 AND bill_date = $2
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
            "SELECT {BILL_READ} FROM bills
             WHERE company_id = $1 AND bill_date = $2 AND customer_id = $3"
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
            "SELECT {BILL_READ} FROM bill_history
             WHERE company_id = $1 AND bill_date = $2 AND customer_id = $3 ORDER BY version"
        )))
        .bind(company_id)
        .bind(date)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        self.stored_bills(rows).await
    }

    async fn bill_bytes(&self, _company_id: i32, date: NaiveDate) -> Result<Option<u64>> {
        let part = format!("bills_{}", date.format("%Y_%m"));
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT pg_total_relation_size(to_regclass($1))")
                .bind(&part)
                .fetch_one(&self.pool)
                .await?;
        Ok(bytes.map(|b| b as u64))
    }

    async fn bills_page(
        &self,
        company_id: i32,
        date: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBill>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BILL_READ} FROM bills WHERE company_id = $1 AND bill_date = $2
               AND ($3::text IS NULL OR customer_id > $3)
             ORDER BY customer_id LIMIT $4"
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
            "SELECT {BILL_READ} FROM bills WHERE company_id = $1 AND bill_date = $2
               AND customer_id >= $3 AND ($4::text IS NULL OR customer_id < $4)
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
             FROM bill_history WHERE company_id = $1 AND bill_date = $2
               AND customer_id >= $3 AND ($4::text IS NULL OR customer_id < $4)
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
            "SELECT {BILL_READ} FROM bills WHERE company_id = $1 AND customer_id = $2
               AND bill_date BETWEEN $3 AND $4
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
            "SELECT {RUN_COLUMNS} FROM runs WHERE company_id = $1 ORDER BY id DESC LIMIT $2"
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
        let other: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM company_plugins WHERE company_id = $1 AND name = $2 AND version = $3",
        )
        .bind(company_id)
        .bind(&p.name)
        .bind(&p.version)
        .fetch_optional(&self.pool)
        .await?;
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
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(company_id)
        .bind(&p.digest)
        .bind(&p.name)
        .bind(&p.version)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn company_plugins(&self, company_id: i32) -> Result<Vec<CompanyPlugin>> {
        let rows = sqlx::query(
            "SELECT p.digest, p.name, p.version, p.kind, p.contract_version, p.info::text AS info,
                    to_char(c.uploaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS uploaded_at
             FROM company_plugins c JOIN plugins p ON p.digest = c.digest
             WHERE c.company_id = $1 ORDER BY p.name, c.uploaded_at",
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
             VALUES ($1, $2, $3, $4, $5, $6::jsonb)
             ON CONFLICT (company_id, digest, name) DO UPDATE SET body = EXCLUDED.body,
                 passed = EXCLUDED.passed, report = EXCLUDED.report, uploaded_at = now()",
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
            "SELECT digest, name, body, passed, report::text AS report FROM plugin_cases
             WHERE company_id = $1 AND digest = $2 ORDER BY name",
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
        let mut tx = self.pool.begin().await?;
        let current: Option<i32> = sqlx::query_scalar(
            "SELECT id FROM chain_versions
             WHERE company_id = $1 AND effective_from = $2 AND active FOR UPDATE",
        )
        .bind(company_id)
        .bind(effective_from)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!(
                "no chain version is active from {effective_from}"
            )));
        };
        sqlx::query("UPDATE chain_versions SET active = false WHERE id = $1")
            .bind(current)
            .execute(&mut *tx)
            .await?;
        let previous = sqlx::query(
            "UPDATE chain_versions SET active = true WHERE id = (
                 SELECT id FROM chain_versions
                 WHERE company_id = $1 AND effective_from = $2 AND id < $3
                 ORDER BY id DESC LIMIT 1)
             RETURNING id, effective_from, digest, definition::text AS definition",
        )
        .bind(company_id)
        .bind(effective_from)
        .bind(current)
        .fetch_optional(&mut *tx)
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
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens (company_id, role, label, token_hash) VALUES ($1, $2, $3, $4)
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(company_id)
        .bind(role)
        .bind(label)
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        token_of(&r)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(token_of)
        .transpose()
    }

    async fn tokens(&self, company_id: i32) -> Result<Vec<TokenRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE company_id = $1 ORDER BY id"
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
            "UPDATE api_tokens SET revoked_at = now()
             WHERE company_id = $1 AND id = $2 AND revoked_at IS NULL",
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
            "SELECT request, run_id, EXTRACT(EPOCH FROM now() - created_at)::bigint AS age_s
             FROM run_requests WHERE company_id = $1 AND idempotency_key = $2",
        )
        .bind(company_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
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
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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
                    "INSERT INTO schedules (company_id, run_at) VALUES ($1, $2)
                     ON CONFLICT (company_id) DO UPDATE SET run_at = EXCLUDED.run_at,
                         updated_at = now()",
                )
                .bind(company_id)
                .bind(at)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM schedules WHERE company_id = $1")
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
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at, \
    to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS revoked_at";

fn token_of(r: &PgRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.try_get("id")?,
        company_id: r.try_get("company_id")?,
        role: r.try_get("role")?,
        label: r.try_get("label")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl PgStore {
    async fn try_open_run(
        &self,
        company_id: i32,
        date: NaiveDate,
        chain_version_id: i32,
        shard_size: usize,
        stamp: &str,
    ) -> Result<OpenedRun> {
        let mut tx = self.pool.begin().await?;
        let running = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE company_id = $1 AND bill_date = $2 AND state = 'running' FOR UPDATE"
        )))
        .bind(company_id)
        .bind(date)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = running {
            let run = run_of(&r)?;
            let shards = sqlx::query(
                "SELECT shard_no, first_customer, end_customer, state FROM run_shards
                 WHERE run_id = $1 ORDER BY shard_no",
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
                        shard_no: s.try_get("shard_no")?,
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
        let attempt: i32 = sqlx::query_scalar(
            "SELECT coalesce(max(attempt), 0) + 1 FROM runs WHERE company_id = $1 AND bill_date = $2",
        )
        .bind(company_id)
        .bind(date)
        .fetch_one(&mut *tx)
        .await?;
        let shards = self.cut_shards(company_id, shard_size).await?;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO runs (company_id, bill_date, attempt, state, chain_version_id, shard_size,
                 shard_count, stamp)
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7) RETURNING {RUN_COLUMNS}"
        )))
        .bind(company_id)
        .bind(date)
        .bind(attempt)
        .bind(chain_version_id)
        .bind(shard_size as i32)
        .bind(shards.len() as i32)
        .bind(stamp)
        .fetch_one(&mut *tx)
        .await?;
        let run = run_of(&r)?;
        if !shards.is_empty() {
            let nos: Vec<i32> = shards.iter().map(|s| s.shard_no).collect();
            let firsts: Vec<String> = shards.iter().map(|s| s.first.clone()).collect();
            let ends: Vec<Option<String>> = shards.iter().map(|s| s.end.clone()).collect();
            sqlx::query(
                "INSERT INTO run_shards (run_id, shard_no, first_customer, end_customer)
                 SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])",
            )
            .bind(run.id)
            .bind(&nos)
            .bind(&firsts)
            .bind(&ends)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(OpenedRun {
            run,
            resumed: false,
            pending: shards,
            done: 0,
        })
    }

    async fn stored_bills(&self, rows: Vec<PgRow>) -> Result<Vec<StoredBill>> {
        let mut kinds: BTreeMap<i32, Vec<LineKindRecord>> = BTreeMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let chain_version_id: i32 = r.try_get("chain_version_id")?;
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

/// Shard ranges from the first customer id of each shard.
pub(crate) fn shard_ranges(firsts: Vec<String>) -> Vec<ShardRange> {
    let ends: Vec<Option<String>> = firsts.iter().skip(1).cloned().map(Some).collect();
    firsts
        .into_iter()
        .zip(ends.into_iter().chain(std::iter::once(None)))
        .enumerate()
        .map(|(i, (first, end))| ShardRange {
            shard_no: i as i32,
            first,
            end,
        })
        .collect()
}

/// The application name a shard's writer session carries while it writes (PostgreSQL shows it
/// in `pg_stat_activity`), so that [`Store::end_stalled_writers`] can find a writer that stalled
/// with the shard's row locked. At most 63 bytes, as PostgreSQL keeps.
pub(crate) fn writer_name(run_id: i64, shard_no: i32, token: i64) -> String {
    format!("heatbill write {run_id} {shard_no} {token}")
}

pub(crate) fn claim_lost(w: &ShardWrite, found: Option<(String, i64)>) -> StoreError {
    StoreError::ClaimLost {
        run_id: w.run_id,
        shard_no: w.shard_no,
        done_with_this_token: matches!(&found, Some((state, token)) if state == "done" && *token == w.token),
        why: match found {
            None => "the shard does not exist".into(),
            Some((state, token)) if state == "done" => {
                format!("it is already done, by the claim with token {token}")
            }
            Some((_, token)) => format!(
                "another worker claimed it since: its fencing token is {token}, this writer's {}",
                w.token
            ),
        },
    }
}

pub(crate) fn check_kinds(stored: &[LineKindRecord], kinds: &[LineKindRecord]) -> Result<()> {
    if stored == kinds {
        return Ok(());
    }
    Err(StoreError::Conflict(
        "the chain version's plugins announced other line kinds than those recorded for it \
         on an earlier run: a plugin's configure is not deterministic; fix the plugin and save \
         the chain again"
            .into(),
    ))
}

pub(crate) fn totals_json(totals: &BTreeMap<String, Decimal>) -> String {
    let map: BTreeMap<&str, String> = totals
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    serde_json::to_string(&map).expect("JSON serializes")
}

pub(crate) fn merge_totals(into: &mut BTreeMap<String, Decimal>, json: Option<&str>) -> Result<()> {
    let Some(json) = json else { return Ok(()) };
    let map: BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("shard totals: {e}")))?;
    for (k, v) in map {
        let d: Decimal = v
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("shard total {v:?}: {e}")))?;
        *into.entry(k).or_default() += d;
    }
    Ok(())
}

/// The staging table's columns for one kind of import (`row_no` is the file's line number).
fn stage_columns(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Customers => {
            "row_no bigint, customer_id text COLLATE \"C\", valid_from date, class text,
             special_class text, status text, metered boolean, low_income boolean,
             building_area numeric, usable_area numeric, ceiling_height numeric, tags text,
             attributes text, digest bytea"
        }
        ImportKind::Readings => {
            "row_no bigint, customer_id text COLLATE \"C\", day date, hour smallint, heat_gj numeric"
        }
        ImportKind::Temperatures => {
            "row_no bigint, customer_id text COLLATE \"C\", day date, celsius numeric"
        }
        ImportKind::Payments => {
            "row_no bigint, payment_id text COLLATE \"C\", customer_id text COLLATE \"C\",
             paid_on date, amount numeric"
        }
        ImportKind::Balances => {
            "row_no bigint, customer_id text COLLATE \"C\", as_of date, arrears numeric,
             arrears_since date"
        }
    }
}

/// An import into PostgreSQL: rows are COPied into a temporary table of the import's
/// transaction, checked as a set, merged with `INSERT … ON CONFLICT`, and committed together.
struct PgImport {
    tx: Transaction<'static, Postgres>,
    company_id: i32,
    kind: ImportKind,
    buf: Vec<u8>,
}

fn opt_display<T: std::fmt::Display>(out: &mut Vec<u8>, v: Option<T>) {
    match v {
        Some(v) => copy_display(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

impl PgImport {
    fn encode(&mut self, rows: &ImportRows) {
        let out = &mut self.buf;
        out.clear();
        let tab = |out: &mut Vec<u8>| out.push(b'\t');
        match rows {
            ImportRows::Customers(v) => {
                for r in v {
                    let s = &r.state;
                    copy_display(out, r.row);
                    tab(out);
                    copy_text(out, &s.customer_id);
                    tab(out);
                    copy_display(out, s.valid_from);
                    tab(out);
                    copy_text(out, class_str(s.class));
                    tab(out);
                    copy_opt(out, s.special_class.as_deref());
                    tab(out);
                    copy_text(out, status_str(s.status));
                    tab(out);
                    copy_display(out, s.metered);
                    tab(out);
                    copy_display(out, s.low_income);
                    tab(out);
                    copy_display(out, s.building_area);
                    tab(out);
                    opt_display(out, s.usable_area);
                    tab(out);
                    opt_display(out, s.ceiling_height);
                    tab(out);
                    copy_text(out, &tags_json(&s.tags));
                    tab(out);
                    copy_text(out, &attributes_json(&s.attributes));
                    tab(out);
                    out.extend_from_slice(b"\\\\x");
                    out.extend_from_slice(hex::encode(s.digest()).as_bytes());
                    out.push(b'\n');
                }
            }
            ImportRows::Readings(v) => {
                for r in v {
                    copy_display(out, r.row);
                    tab(out);
                    copy_text(out, &r.customer_id);
                    tab(out);
                    copy_display(out, r.day);
                    tab(out);
                    opt_display(out, r.hour);
                    tab(out);
                    copy_display(out, r.heat_gj);
                    out.push(b'\n');
                }
            }
            ImportRows::Temperatures(v) => {
                for r in v {
                    copy_display(out, r.row);
                    tab(out);
                    copy_text(out, &r.customer_id);
                    tab(out);
                    copy_display(out, r.day);
                    tab(out);
                    copy_display(out, r.celsius);
                    out.push(b'\n');
                }
            }
            ImportRows::Payments(v) => {
                for r in v {
                    copy_display(out, r.row);
                    tab(out);
                    copy_text(out, &r.payment_id);
                    tab(out);
                    copy_text(out, &r.payment.customer_id);
                    tab(out);
                    copy_display(out, r.payment.paid_on);
                    tab(out);
                    copy_display(out, r.payment.amount);
                    out.push(b'\n');
                }
            }
            ImportRows::Balances(v) => {
                for r in v {
                    let b = &r.balance;
                    copy_display(out, r.row);
                    tab(out);
                    copy_text(out, &b.customer_id);
                    tab(out);
                    copy_display(out, b.as_of);
                    tab(out);
                    copy_display(out, b.arrears);
                    tab(out);
                    opt_display(out, b.arrears_since);
                    out.push(b'\n');
                }
            }
        }
    }

    /// Row errors found by looking at the staged rows as a set.
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
             ) s WHERE row_no <> first ORDER BY row_no LIMIT $1"
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
                                   WHERE c.company_id = $1 AND c.customer_id = s.customer_id)
                 ORDER BY s.row_no LIMIT $2",
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
                 ORDER BY s.row_no LIMIT $1",
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

    /// Merges the staged rows; returns (distinct records, already stored, inserted or changed).
    async fn merge(&mut self) -> Result<(u64, u64, u64)> {
        let c = self.company_id;
        let tx = &mut self.tx;
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(c);
        let total = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        let (distinct, existing, affected) = match self.kind {
            ImportKind::Customers => {
                sqlx::query(
                    "INSERT INTO customers (company_id, customer_id)
                     SELECT DISTINCT $1, customer_id FROM import_stage ON CONFLICT DO NOTHING",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?;
                let distinct = total("SELECT count(*) FROM import_stage")
                    .fetch_one(&mut **tx)
                    .await?;
                let existing = count(
                    "SELECT count(*) FROM import_stage s JOIN customer_versions v
                     ON v.company_id = $1 AND v.customer_id = s.customer_id
                    AND v.valid_from = s.valid_from",
                )
                .fetch_one(&mut **tx)
                .await?;
                let affected = sqlx::query(
                    "INSERT INTO customer_versions (company_id, customer_id, valid_from, class,
                         special_class, status, metered, low_income, building_area, usable_area,
                         ceiling_height, tags, attributes, digest)
                     SELECT $1, customer_id, valid_from, class, special_class, status, metered,
                         low_income, building_area, usable_area, ceiling_height, tags, attributes,
                         digest
                     FROM import_stage
                     ON CONFLICT (company_id, customer_id, valid_from) DO UPDATE SET
                         digest = EXCLUDED.digest,
                         class = EXCLUDED.class, special_class = EXCLUDED.special_class,
                         status = EXCLUDED.status, metered = EXCLUDED.metered,
                         low_income = EXCLUDED.low_income,
                         building_area = EXCLUDED.building_area,
                         usable_area = EXCLUDED.usable_area,
                         ceiling_height = EXCLUDED.ceiling_height, tags = EXCLUDED.tags,
                         attributes = EXCLUDED.attributes
                     WHERE (customer_versions.digest, customer_versions.class,
                            customer_versions.special_class,
                            customer_versions.status, customer_versions.metered,
                            customer_versions.low_income,
                            customer_versions.building_area::text,
                            customer_versions.usable_area::text,
                            customer_versions.ceiling_height::text, customer_versions.tags,
                            customer_versions.attributes)
                       IS DISTINCT FROM
                           (EXCLUDED.digest, EXCLUDED.class, EXCLUDED.special_class,
                            EXCLUDED.status,
                            EXCLUDED.metered, EXCLUDED.low_income, EXCLUDED.building_area::text,
                            EXCLUDED.usable_area::text, EXCLUDED.ceiling_height::text,
                            EXCLUDED.tags, EXCLUDED.attributes)",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (distinct, existing, affected)
            }
            ImportKind::Readings => {
                let distinct = total(
                    "SELECT count(*) FROM (SELECT DISTINCT customer_id, day FROM import_stage) s",
                )
                .fetch_one(&mut **tx)
                .await?;
                let existing = count(
                    "SELECT count(*) FROM (SELECT DISTINCT customer_id, day FROM import_stage) s
                     JOIN readings r ON r.company_id = $1 AND r.day = s.day
                                    AND r.customer_id = s.customer_id",
                )
                .fetch_one(&mut **tx)
                .await?;
                let affected = sqlx::query(
                    "INSERT INTO readings (company_id, day, customer_id, heat_gj)
                     SELECT $1, day, customer_id, sum(heat_gj) FROM import_stage
                     GROUP BY day, customer_id
                     ON CONFLICT (company_id, day, customer_id) DO UPDATE
                         SET heat_gj = EXCLUDED.heat_gj
                     WHERE readings.heat_gj::text IS DISTINCT FROM EXCLUDED.heat_gj::text",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (distinct, existing, affected)
            }
            ImportKind::Temperatures => {
                let distinct = total("SELECT count(*) FROM import_stage")
                    .fetch_one(&mut **tx)
                    .await?;
                let existing = count(
                    "SELECT count(*) FROM import_stage s JOIN temperatures t
                     ON t.company_id = $1 AND t.day = s.day AND t.customer_id = s.customer_id",
                )
                .fetch_one(&mut **tx)
                .await?;
                let affected = sqlx::query(
                    "INSERT INTO temperatures (company_id, day, customer_id, celsius)
                     SELECT $1, day, customer_id, celsius FROM import_stage
                     ON CONFLICT (company_id, day, customer_id) DO UPDATE
                         SET celsius = EXCLUDED.celsius
                     WHERE temperatures.celsius::text IS DISTINCT FROM EXCLUDED.celsius::text",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (distinct, existing, affected)
            }
            ImportKind::Payments => {
                let distinct = total("SELECT count(*) FROM import_stage")
                    .fetch_one(&mut **tx)
                    .await?;
                let existing = count(
                    "SELECT count(*) FROM import_stage s JOIN payments p
                     ON p.company_id = $1 AND p.payment_id = s.payment_id",
                )
                .fetch_one(&mut **tx)
                .await?;
                let affected = sqlx::query(
                    "INSERT INTO payments (company_id, payment_id, customer_id, paid_on, amount)
                     SELECT $1, payment_id, customer_id, paid_on, amount FROM import_stage
                     ON CONFLICT (company_id, payment_id) DO UPDATE SET
                         customer_id = EXCLUDED.customer_id, paid_on = EXCLUDED.paid_on,
                         amount = EXCLUDED.amount
                     WHERE (payments.customer_id, payments.paid_on, payments.amount::text)
                           IS DISTINCT FROM
                           (EXCLUDED.customer_id, EXCLUDED.paid_on, EXCLUDED.amount::text)",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (distinct, existing, affected)
            }
            ImportKind::Balances => {
                let distinct = total("SELECT count(*) FROM import_stage")
                    .fetch_one(&mut **tx)
                    .await?;
                let existing = count(
                    "SELECT count(*) FROM import_stage s JOIN opening_balances o
                     ON o.company_id = $1 AND o.customer_id = s.customer_id",
                )
                .fetch_one(&mut **tx)
                .await?;
                let affected = sqlx::query(
                    "INSERT INTO opening_balances (company_id, customer_id, as_of, arrears,
                         arrears_since)
                     SELECT $1, customer_id, as_of, arrears, arrears_since FROM import_stage
                     ON CONFLICT (company_id, customer_id) DO UPDATE SET
                         as_of = EXCLUDED.as_of, arrears = EXCLUDED.arrears,
                         arrears_since = EXCLUDED.arrears_since
                     WHERE (opening_balances.as_of, opening_balances.arrears::text,
                            opening_balances.arrears_since)
                           IS DISTINCT FROM
                           (EXCLUDED.as_of, EXCLUDED.arrears::text, EXCLUDED.arrears_since)",
                )
                .bind(c)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (distinct, existing, affected)
            }
        };
        Ok((distinct as u64, existing as u64, affected))
    }
}

#[async_trait]
impl ImportSink for PgImport {
    async fn push(&mut self, rows: ImportRows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.encode(&rows);
        let buf = std::mem::take(&mut self.buf);
        let sql = format!(
            "COPY import_stage ({}) FROM STDIN",
            stage_column_names(self.kind)
        );
        let mut copy = self.tx.copy_in_raw(&sql).await?;
        copy.send(buf).await?;
        copy.finish().await?;
        Ok(())
    }

    async fn finish(
        mut self: Box<Self>,
        file: &ImportFile,
        parse_errors: usize,
        max_errors: usize,
    ) -> Result<std::result::Result<ImportCounts, Vec<RowError>>> {
        sqlx::query("CREATE INDEX ON import_stage (customer_id)")
            .execute(&mut *self.tx)
            .await?;
        let errors = self.check(max_errors).await?;
        if parse_errors > 0 || !errors.is_empty() {
            // Nothing is merged: dropping the transaction rolls it back.
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
                    "UPDATE companies SET customers_version = customers_version + 1 WHERE id = $1",
                )
                .bind(self.company_id)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        if affected > 10_000 {
            // A bulk load leaves the planner's statistics behind (it would guess 3 rows where
            // a shard has 10,000); ANALYZE samples, so it is cheap even at a million rows.
            let tables = match self.kind {
                ImportKind::Customers => "customers, customer_versions",
                ImportKind::Readings => "readings",
                ImportKind::Temperatures => "temperatures",
                ImportKind::Payments => "payments",
                ImportKind::Balances => "opening_balances",
            };
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
                .execute(&mut *self.tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO imports (company_id, kind, file_name, sha256, rows, inserted, updated,
                 unchanged) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
        self.tx.commit().await?;
        Ok(Ok(counts))
    }
}

fn stage_column_names(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Customers => {
            "row_no, customer_id, valid_from, class, special_class, status, metered, low_income, \
             building_area, usable_area, ceiling_height, tags, attributes, digest"
        }
        ImportKind::Readings => "row_no, customer_id, day, hour, heat_gj",
        ImportKind::Temperatures => "row_no, customer_id, day, celsius",
        ImportKind::Payments => "row_no, payment_id, customer_id, paid_on, amount",
        ImportKind::Balances => "row_no, customer_id, as_of, arrears, arrears_since",
    }
}
