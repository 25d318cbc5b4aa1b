//! The store's runs and shards: opening a run, claiming, loading and writing its shards, its totals, finishing it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;

use super::sql::{
    Commit, Engine, Exec, SqlRow, args, merge_totals, q, run_columns, run_of, shard_of,
    shard_ranges,
};
use super::types::{Result, StoreError};

/// After a run completed: if its date is the company's first stale date and the run was
/// prepared after the latest correction (its stamp's data version), the mark moves to the next
/// billed date, or goes when there is none.
async fn advance_stale<X: Exec>(x: &mut X, run_id: i64) -> Result<()> {
    let r = x
        .one(
            q!("SELECT company_id, bill_date, stamp FROM runs WHERE id = $1"),
            args![run_id],
        )
        .await?;
    let (company_id, date) = (r.int(0)?, r.date(1)?);
    let version = stamp_data_version(r.str(2)?).unwrap_or(0);
    let next = x
        .one(
            q!("SELECT min(bill_date) FROM runs
                WHERE company_id = $1 AND state = 'completed' AND bill_date > $2"),
            args![company_id, date],
        )
        .await?
        .opt_date(0)?;
    x.exec(
        q!("UPDATE companies SET stale_from = $3
            WHERE id = $1 AND stale_from = $2 AND stale_version <= $4"),
        args![company_id, date, next, version],
    )
    .await?;
    Ok(())
}
use crate::model::*;

/// Runs and their shards: opening a run, claiming, loading and writing shards, and finishing.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Makes sure the bills of `from..=to` have somewhere to go (PostgreSQL: monthly
    /// partitions). Returns how many partitions were created.
    async fn ensure_partitions(&self, from: NaiveDate, to: NaiveDate) -> Result<u32>;

    /// Whether the day before `date` was billed (balances carry from it).
    async fn previous_day(&self, company_id: i32, date: NaiveDate) -> Result<PreviousDay>;

    /// The company's customers cut into shards of `shard_size`, as a new run would cut them.
    async fn cut_shards(&self, company_id: i32, shard_size: usize) -> Result<Vec<ShardRange>>;

    /// Picks up the running run of (company, date), or starts the next attempt: cuts the
    /// company's customers into shards of `shard_size` and records them.
    async fn open_run(
        &self,
        company_id: i32,
        date: NaiveDate,
        chain_version_id: i32,
        shard_size: usize,
        stamp: &str,
    ) -> Result<OpenedRun>;

    /// Records a completed run that had nothing to compute (its inputs' stamp equals the last
    /// completed run's), with its report.
    async fn record_unchanged_run(
        &self,
        company_id: i32,
        date: NaiveDate,
        chain_version_id: i32,
        stamp: &str,
        report: &serde_json::Value,
    ) -> Result<RunRecord>;

    /// Claims a pending shard of a run that nobody holds (never claimed, or its lease has
    /// lapsed), for `lease`; the claim's fencing token is new and greater than every earlier
    /// one. `None` when no shard is claimable now (all done, or held by others). Time is the
    /// database's, so the hosts' clocks do not matter.
    async fn claim_shard(
        &self,
        run_id: i64,
        worker: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Claim>>;

    /// Extends a held claim's lease; false when the claim no longer holds (another worker
    /// claimed the shard since, or finished it). A shard this token has just written is still
    /// this claim's: true, with nothing to extend.
    async fn renew_lease(
        &self,
        run_id: i64,
        shard_no: i32,
        token: i64,
        lease: std::time::Duration,
    ) -> Result<bool>;

    /// The pending shards of a run whose leases lapsed more than `lapsed_for` ago and that no
    /// worker has claimed since: their rows are locked by a writer that stalled inside its
    /// transaction (claims skip locked rows). On PostgreSQL each such writer's session (found by
    /// its application name, see `postgres::writer_name`) is ended, which releases the lock; the
    /// returned list says which were found and which were ended. SQLite has one writer in one
    /// process and nothing to end.
    async fn end_stalled_writers(
        &self,
        run_id: i64,
        lapsed_for: std::time::Duration,
    ) -> Result<Vec<StalledShard>>;

    /// The runs still running, of every company (what `heatbill worker` serves).
    async fn running_runs(&self) -> Result<Vec<RunRecord>>;

    /// Loads everything a shard's bills of `date` depend on (without the customers' ids and
    /// digests when `with_customers` is false: the caller has them from the cache).
    async fn load_shard(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        with_customers: bool,
    ) -> Result<ShardData>;

    /// Writes one shard in one transaction (see the module docs).
    async fn write_shard(&self, write: &ShardWrite) -> Result<()>;

    /// A run's counts and totals over its done shards, with up to `parked_limit` parked
    /// customers.
    async fn run_totals(&self, run_id: i64, parked_limit: usize) -> Result<RunTotals>;

    /// Ends a running run (`completed` or `failed`) with its report; false when it had ended
    /// already (another process finished it). A completed run of the company's first stale date
    /// (see [`stale_dates`](RunStore::stale_dates)), prepared after the latest correction, moves
    /// the mark to the next billed date (or clears it), in the same transaction.
    async fn finish_run(
        &self,
        run_id: i64,
        state: &str,
        report: &serde_json::Value,
    ) -> Result<bool>;

    /// A run by id.
    async fn run(&self, run_id: i64) -> Result<RunRecord>;

    /// The runs of a company and date, by attempt.
    async fn runs(&self, company_id: i32, date: NaiveDate) -> Result<Vec<RunRecord>>;

    /// The latest date with a completed run of the company.
    async fn latest_billed_date(&self, company_id: i32) -> Result<Option<NaiveDate>>;

    /// The latest runs of a company (every date), newest first.
    async fn recent_runs(&self, company_id: i32, limit: usize) -> Result<Vec<RunRecord>>;

    /// The company's stale dates: the first billed date a correction reached since its last run
    /// (a ledger entry, an import or a chain version dated before days already billed), and
    /// every billed date from it on (at most 1,000), in the order they must be run again.
    async fn stale_dates(&self, company_id: i32) -> Result<StaleDates>;
}

#[async_trait]
impl<E: Engine> RunStore for E {
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
        if n == 1 && state == "completed" {
            advance_stale(&mut tx, run_id).await?;
        }
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

    async fn latest_billed_date(&self, company_id: i32) -> Result<Option<NaiveDate>> {
        self.db()
            .one(
                q!("SELECT max(bill_date) FROM runs WHERE company_id = $1 AND state = 'completed'"),
                args![company_id],
            )
            .await?
            .opt_date(0)
    }

    async fn stale_dates(&self, company_id: i32) -> Result<StaleDates> {
        let from = self
            .db()
            .opt(
                q!("SELECT stale_from FROM companies WHERE id = $1"),
                args![company_id],
            )
            .await?
            .map(|r| r.opt_date(0))
            .transpose()?
            .flatten();
        let dates = match from {
            None => Vec::new(),
            Some(from) => self
                .db()
                .rows(
                    q!("SELECT DISTINCT bill_date FROM runs
                        WHERE company_id = $1 AND state = 'completed' AND bill_date >= $2
                        ORDER BY bill_date LIMIT 1000"),
                    args![company_id, from],
                )
                .await?
                .iter()
                .map(|r| r.date(0))
                .collect::<Result<_>>()?,
        };
        Ok(StaleDates { from, dates })
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
