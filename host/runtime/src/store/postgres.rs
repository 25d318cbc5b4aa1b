//! The PostgreSQL store: production. What is written here is what PostgreSQL does differently
//! from SQLite; the rest of the store is the shared SQL layer (`sql.rs`) and the traits' files.
//!
//! Bills go in by `COPY … FROM STDIN` in text format inside the shard's transaction (the
//! measured floor: about 233,000 rows/s here with the unique index, against 8 s per million
//! for `unnest` batches and 11 s for multi-row `INSERT`). The `bills` table is partitioned by
//! month of the bill date; `migrate` creates the partitions of the last month and the next
//! twelve, and each run creates its date's partition before it writes. Claims take a shard with
//! `FOR UPDATE SKIP LOCKED` and a token from a sequence; a shard's writer names its session so
//! that `end_stalled_writers` can end it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Postgres, Row, Transaction};

use super::sql::{
    BILL_COLUMNS, Engine, SqlRow, all, carried_of, check_import, claim_lost, customer_key_of,
    customer_of, existing_of, impl_exec, impl_sql_row, merge_profiles, notices_due_of, opening_of,
    pairs_of, payment_of, record_import, revised_changed, shard_of, totals_json,
};
use super::types::{Backend, ImportFile, ImportSink, Result, StoreError};
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

impl_exec!([] PgPool, PgRow, Backend::Postgres, i16, |s| &*s);
impl_exec!(['c] Transaction<'c, Postgres>, PgRow, Backend::Postgres, i16, |s| &mut **s);
impl_sql_row!(PgRow, i32, i16);

/// The customer-id range condition of a shard, on parameters $2 (first) and $3 (the end, or
/// for the last shard [`super::sql::range_end`]'s text above every id).
const RANGE: &str = "customer_id >= $2 AND customer_id < $3";

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
        b.fees_before,
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
    out.push(b'\t');
    match b.due_through {
        Some(d) => copy_display(out, d),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\n');
}

#[async_trait]
impl Engine for PgStore {
    type Db = PgPool;
    type Tx = Transaction<'static, Postgres>;
    type Row = PgRow;

    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn db(&self) -> PgPool {
        self.pool.clone()
    }

    async fn begin(&self) -> Result<Self::Tx> {
        Ok(self.pool.begin().await?)
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        let today = chrono::Utc::now().date_naive();
        let from = today - chrono::Months::new(1);
        let to = today + chrono::Months::new(12);
        Engine::ensure_partitions(self, from, to).await?;
        Ok(())
    }

    async fn upsert_company(&self, tx: &mut Self::Tx, spec: &CompanySpec) -> Result<i32> {
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
        .fetch_optional(&mut **tx)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("id")?,
            None => {
                sqlx::query_scalar("SELECT id FROM companies WHERE slug = $1")
                    .bind(&spec.slug)
                    .fetch_one(&mut **tx)
                    .await?
            }
        })
    }

    async fn insert_shards(
        &self,
        tx: &mut Self::Tx,
        run_id: i64,
        shards: &[ShardRange],
    ) -> Result<()> {
        let nos: Vec<i32> = shards.iter().map(|s| s.shard_no).collect();
        let firsts: Vec<String> = shards.iter().map(|s| s.first.clone()).collect();
        let ends: Vec<Option<String>> = shards.iter().map(|s| s.end.clone()).collect();
        sqlx::query(
            "INSERT INTO run_shards (run_id, shard_no, first_customer, end_customer)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])",
        )
        .bind(run_id)
        .bind(&nos)
        .bind(&firsts)
        .bind(&ends)
        .execute(&mut **tx)
        .await?;
        Ok(())
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
                .bind(super::sql::range_end(&shard.end));
            match day {
                Some(d) => q.bind(d),
                None => q,
            }
        };
        // The eight queries are independent: each runs on a connection of its own, so the
        // server works on a shard with every core it has.
        let (customers, readings, temperatures, previous, payments, openings, existing, due) = tokio::try_join!(
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
                    "SELECT customer_id, charged_before::text, principal::text,
                                fees_before::text, customer_total::text, arrears::text,
                                arrears_since, due_through::text
                         FROM bills WHERE company_id = $1 AND {RANGE} AND bill_date = $4
                         ORDER BY customer_id"
                ),
                Some(prev)
            )
            .fetch_all(&self.pool),
            q(
                format!(
                    "SELECT customer_id, on_date, amount::text FROM account_entries
                         WHERE company_id = $1 AND {RANGE} AND on_date < $4
                         ORDER BY customer_id, on_date"
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
            q(
                format!(
                    "SELECT customer_id, amount::text FROM notices
                         WHERE company_id = $1 AND {RANGE} AND due_on = $4
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
            .map(customer_key_of)
            .collect::<Result<Vec<_>>>()?;
        customers.reverse();
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
        // Two texts, not `($5 IS NULL OR customer_id = ANY($5))`: in a generic plan that is a
        // filter that scans the array for every customer of the shard (150 ms for 1,000 ids in
        // a shard of 10,000, against 2 ms as an index condition).
        let only = if ids.is_some() {
            "AND customer_id = ANY($5)"
        } else {
            "AND $5::text[] IS NULL"
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT ON (customer_id) customer_id, valid_from, class, special_class,
                    status, metered, low_income, building_area::text, usable_area::text,
                    ceiling_height::text, tags, attributes
             FROM customer_versions WHERE company_id = $1 AND {RANGE} AND valid_from <= $4
               {only}
             ORDER BY customer_id, valid_from DESC"
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
                return Err(revised_changed(w, ids.len(), moved));
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
                shard: shard_of(&r)?,
                token: r.big(3)?,
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
        .map(|r| Ok((r.string(0)?, r.dec(1)?)))
        .collect()
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
}

/// The application name a shard's writer session carries while it writes (PostgreSQL shows it
/// in `pg_stat_activity`), so that [`Store::end_stalled_writers`] can find a writer that stalled
/// with the shard's row locked. At most 63 bytes, as PostgreSQL keeps.
pub(crate) fn writer_name(run_id: i64, shard_no: i32, token: i64) -> String {
    format!("heatbill write {run_id} {shard_no} {token}")
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
        ImportKind::Profiles => {
            "row_no bigint, customer_id text COLLATE \"C\", valid_from date,
             account_no text COLLATE \"C\", name text COLLATE \"C\", phone text,
             community text, building text, unit text, room text, phone_rev text COLLATE \"C\",
             address_key text COLLATE \"C\", reason text"
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
            ImportRows::Profiles(v) => {
                for r in v {
                    let p = &r.profile;
                    copy_display(out, r.row);
                    tab(out);
                    copy_text(out, &r.customer_id);
                    tab(out);
                    copy_display(out, r.valid_from);
                    for f in [&p.account_no, &p.name, &p.phone, &p.community, &p.building]
                        .into_iter()
                        .chain([
                            &p.unit,
                            &p.room,
                            &p.phone_rev(),
                            &p.address_key(),
                            &r.reason,
                        ])
                    {
                        tab(out);
                        copy_opt(out, f.as_deref());
                    }
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
                    "SELECT count(*) FROM import_stage s JOIN account_entries e
                     ON e.company_id = $1 AND e.channel = 'import'
                        AND e.channel_txn = s.payment_id",
                )
                .fetch_one(&mut **tx)
                .await?;
                // A payment is never changed: check_import refused a row that differs from
                // the recorded one, so a conflict here is the same payment again.
                let affected = sqlx::query(
                    "INSERT INTO account_entries (company_id, customer_id, kind, on_date, amount,
                         channel, channel_txn, recorded_by, source)
                     SELECT $1, customer_id, 'payment', paid_on, amount, 'import', payment_id,
                         'import', 'import' FROM import_stage ORDER BY row_no
                     ON CONFLICT (company_id, channel, channel_txn) DO NOTHING",
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
            ImportKind::Profiles => {
                return Err(StoreError::Corrupt(
                    "profiles merge through merge_profiles".into(),
                ));
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
        let errors = check_import(&mut self.tx, self.kind, self.company_id, max_errors).await?;
        if parse_errors > 0 || !errors.is_empty() {
            // Nothing is merged: dropping the transaction rolls it back.
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
        if merged.2 > 10_000 {
            // A bulk load leaves the planner's statistics behind (it would guess 3 rows where
            // a shard has 10,000); ANALYZE samples, so it is cheap even at a million rows.
            let tables = match self.kind {
                ImportKind::Customers => "customers, customer_versions",
                ImportKind::Readings => "readings",
                ImportKind::Temperatures => "temperatures",
                ImportKind::Payments => "account_entries",
                ImportKind::Balances => "opening_balances",
                ImportKind::Profiles => "customer_profiles",
            };
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
                .execute(&mut *self.tx)
                .await?;
        }
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
        ImportKind::Profiles => {
            "row_no, customer_id, valid_from, account_no, name, phone, community, building, \
             unit, room, phone_rev, address_key, reason"
        }
    }
}
