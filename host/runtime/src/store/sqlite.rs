//! The SQLite store: the embedded default (one file, no server). What is written here is what
//! SQLite does differently from PostgreSQL; the rest of the store is the shared SQL layer
//! (`sql.rs`) and the traits' files.
//!
//! The same tables as PostgreSQL in SQLite's types: decimals are TEXT, written and read back
//! exactly as `rust_decimal` prints them (SQLite would sum them as floats, so sums happen in
//! Rust); dates are TEXT `YYYY-MM-DD`, which sorts as dates. Writes take the database's one
//! writer lock up front (`BEGIN IMMEDIATE`), and bills go in by multi-row `INSERT`s of a few
//! hundred rows inside the shard's transaction. WAL journal: readers never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::sql::{
    BILL_COLUMNS, Engine, all, carried_of, check_import, claim_lost, customer_key_of, customer_of,
    existing_of, impl_exec, impl_sql_row, merge_profiles, notices_due_of, opening_of, pairs_of,
    payment_of, record_import, revised_changed, totals_json,
};
use super::types::{Backend, ImportFile, ImportSink, Result, StoreError};
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

impl_exec!([] SqlitePool, SqliteRow, Backend::Sqlite, i64, |s| &*s);
impl_exec!(['c] Transaction<'c, Sqlite>, SqliteRow, Backend::Sqlite, i64, |s| &mut **s);
impl_sql_row!(SqliteRow, i64, i64);

const RANGE: &str = "customer_id >= ?2 AND customer_id < ?3";

#[async_trait]
impl Engine for SqliteStore {
    type Db = SqlitePool;
    type Tx = Transaction<'static, Sqlite>;
    type Row = SqliteRow;

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn db(&self) -> SqlitePool {
        self.pool.clone()
    }

    async fn begin(&self) -> Result<Self::Tx> {
        self.write_tx().await
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn upsert_company(&self, tx: &mut Self::Tx, spec: &CompanySpec) -> Result<i32> {
        let policies = serde_json::to_string(&spec.policies).expect("JSON serializes");
        let current: Option<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, name, time_zone, policies FROM companies WHERE slug = ?1")
                .bind(&spec.slug)
                .fetch_all(&mut **tx)
                .await?
                .pop();
        Ok(match current {
            None => one(sqlx::query_scalar::<_, i64>(
                "INSERT INTO companies (slug, name, time_zone, policies)
                     VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )
            .bind(&spec.slug)
            .bind(&spec.name)
            .bind(&spec.time_zone)
            .bind(&policies)
            .fetch_all(&mut **tx)
            .await?)? as i32,
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
                    .execute(&mut **tx)
                    .await?;
                    super::sql::bump_data_version(tx, id).await?;
                }
                id
            }
        })
    }

    async fn insert_shards(
        &self,
        tx: &mut Self::Tx,
        run_id: i64,
        shards: &[ShardRange],
    ) -> Result<()> {
        for chunk in shards.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO run_shards (run_id, shard_no, first_customer, end_customer) ",
            );
            q.push_values(chunk, |mut b, s| {
                b.push_bind(run_id)
                    .push_bind(s.shard_no)
                    .push_bind(s.first.clone())
                    .push_bind(s.end.clone());
            });
            q.build().execute(&mut **tx).await?;
        }
        Ok(())
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
                .bind(super::sql::range_end(&shard.end))
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
            .map(customer_key_of)
            .collect::<Result<Vec<_>>>()?
        };
        let readings = q(format!(
            "SELECT customer_id, heat_gj FROM readings
             WHERE company_id = ?1 AND {RANGE} AND day = ?4 ORDER BY customer_id"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?;
        let temperatures = q(format!(
            "SELECT customer_id, celsius FROM temperatures
             WHERE company_id = ?1 AND {RANGE} AND day = ?4 ORDER BY customer_id"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?;
        let previous = q(format!(
            "SELECT customer_id, charged_before, principal, fees_before, customer_total, arrears,
                    arrears_since, due_through FROM bills
             WHERE company_id = ?1 AND {RANGE} AND bill_date = ?4 ORDER BY customer_id"
        ))
        .bind(prev)
        .fetch_all(&mut *conn)
        .await?;
        let payments = q(format!(
            "SELECT customer_id, on_date, amount FROM account_entries
             WHERE company_id = ?1 AND {RANGE} AND on_date < ?4 ORDER BY customer_id, on_date"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?;
        let openings = q(format!(
            "SELECT customer_id, as_of, arrears, arrears_since FROM opening_balances
             WHERE company_id = ?1 AND {RANGE} ORDER BY customer_id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let existing = q(format!(
            "SELECT customer_id, version, status, inputs, error FROM bills
             WHERE company_id = ?1 AND {RANGE} AND bill_date = ?4 ORDER BY customer_id"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?;
        let due = q(format!(
            "SELECT customer_id, amount FROM notices
             WHERE company_id = ?1 AND {RANGE} AND due_on = ?4 ORDER BY customer_id"
        ))
        .bind(date)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ShardData {
            customers,
            readings: pairs_of(&readings)?,
            temperatures: pairs_of(&temperatures)?,
            previous: all(&previous, carried_of)?,
            payments: all(&payments, payment_of)?,
            openings: all(&openings, opening_of)?,
            existing: all(&existing, existing_of)?,
            notices_due: notices_due_of(&due)?,
        })
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
        .bind(super::sql::range_end(&shard.end))
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
            return Err(revised_changed(w, revised.len(), deleted));
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
                    .push_bind(r.fees_before.to_string())
                    .push_bind(r.arrears.to_string())
                    .push_bind(r.arrears_since)
                    .push_bind(r.lines.clone())
                    .push_bind(r.reason.clone())
                    .push_bind(r.error.clone())
                    .push_bind(r.due_through.map(|d| d.to_string()));
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

    async fn bill_bytes(&self, _company_id: i32, _date: NaiveDate) -> Result<Option<u64>> {
        // The dbstat table (compiled into the bundled SQLite) sums the pages of the table.
        let bytes: std::result::Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT sum(pgsize) FROM dbstat WHERE name = 'bills'")
                .fetch_one(&self.pool)
                .await;
        Ok(bytes.ok().flatten().map(|b| b as u64))
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
        ImportKind::Profiles => {
            "row_no INTEGER, customer_id TEXT, valid_from TEXT, account_no TEXT, name TEXT,
             phone TEXT, community TEXT, building TEXT, unit TEXT, room TEXT, phone_rev TEXT,
             address_key TEXT, reason TEXT"
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
                "SELECT count(*) FROM import_stage s JOIN account_entries e
                 ON e.company_id = ?1 AND e.channel = 'import' AND e.channel_txn = s.payment_id",
                // A payment is never changed: check_import refused a row that differs from
                // the recorded one, so a conflict here is the same payment again.
                "INSERT INTO account_entries (company_id, customer_id, kind, on_date, amount,
                     channel, channel_txn, recorded_by, source)
                 SELECT ?1, customer_id, 'payment', paid_on, amount, 'import', payment_id,
                     'import', 'import' FROM import_stage WHERE true ORDER BY row_no
                 ON CONFLICT (company_id, channel, channel_txn) DO NOTHING",
            ),
            ImportKind::Profiles => {
                return Err(StoreError::Corrupt(
                    "profiles merge through merge_profiles".into(),
                ));
            }
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
            ImportRows::Profiles(v) => {
                for chunk in v.chunks(CHUNK) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO import_stage (row_no, customer_id, valid_from, account_no,
                             name, phone, community, building, unit, room, phone_rev,
                             address_key, reason) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        let p = &r.profile;
                        b.push_bind(r.row as i64)
                            .push_bind(r.customer_id.clone())
                            .push_bind(r.valid_from)
                            .push_bind(p.account_no.clone())
                            .push_bind(p.name.clone())
                            .push_bind(p.phone.clone())
                            .push_bind(p.community.clone())
                            .push_bind(p.building.clone())
                            .push_bind(p.unit.clone())
                            .push_bind(p.room.clone())
                            .push_bind(p.phone_rev())
                            .push_bind(p.address_key())
                            .push_bind(r.reason.clone());
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
        let errors = check_import(&mut self.tx, self.kind, self.company_id, max_errors).await?;
        if parse_errors > 0 || !errors.is_empty() {
            return Ok(Err(errors));
        }
        let merged = if self.kind == ImportKind::Profiles {
            merge_profiles(
                &mut self.tx,
                self.company_id,
                &format!("imported from {}", file.name),
            )
            .await?
        } else if self.kind == ImportKind::Payments {
            // Imported payments are payments like the counter's: their invoice requests and
            // fee control's immediate opens, in the import's transaction.
            let before = super::ledger::last_entry_id(&mut self.tx).await?;
            let merged = self.merge().await?;
            super::ledger::after_import(&mut self.tx, self.company_id, before).await?;
            merged
        } else {
            self.merge().await?
        };
        let counts = record_import(&mut self.tx, self.company_id, self.kind, file, merged).await?;
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
