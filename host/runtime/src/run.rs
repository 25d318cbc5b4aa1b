//! The daily run: `heatbill run --company C --date D`, on one host or many.
//!
//! ```text
//!  open (locked) ─► claim ─► load ─► compare ─► evaluate ─► write (fenced) ─► finish ─► ranking
//!  shards cut       lease +   a few    digests    changed      one transaction  report
//!  once             token     queries  (CPU pool) customers    per shard
//! ```
//!
//! - **Opening.** The first process to start the run cuts the company's customers into shards
//!   (ranges of ids, stored with the run) under a lock of the company and date, so hosts
//!   started together do not all cut; the database's unique index on the running run is what
//!   makes it one run. Every later process, on any host, joins that run.
//! - **Claims.** Each process claims shards from the database (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL), each with a lease it renews while it works and a fencing token from a
//!   sequence. A process that dies or stalls loses its shards when their leases lapse, and
//!   another claims them with a newer token; the stalled process's late write is refused by
//!   the token check in the write's transaction. Processes keep claiming until every shard is
//!   done, including shards whose holder went silent.
//! - **Each shard**: its customers' digests and the day's data are loaded in a few set-based
//!   queries (the customers through the cache when `cache.shards` is set), compared and
//!   evaluated on the CPU pool ([`pool::Pool`]; only customers whose inputs changed are
//!   evaluated, a customer whose rules fail is parked), and written in one transaction with
//!   the shard's "done" mark, so a shard is written exactly once.
//! - **Failures that pass** (a lost database connection, a restarting server) are retried with
//!   backoff for `run.retry_s`; a write retried after its COMMIT's answer was lost finds its own
//!   commit. Redis failures only cost efficiency: locks, cache and progress are skipped.
//! - **Finishing.** The process that sees the last shard done writes the report with the run
//!   and refreshes the company's arrears ranking.
//!
//! Where things are: this file is the run's protocol from the top (prepare, open, complete,
//! finish), whose steps share the lease and fencing invariants above; every step takes the
//! process's [`Env`] (services, engine, settings). One process's work on a run's shards (the
//! claim, load, evaluate and write stages and the lease renewer) is `join`; the handle the CLI,
//! the admin server and the worker hold to run, start in the background, cancel and wind down
//! runs is [`Runs`] (`handle`), and the nightly scheduler is on it (`schedule`). Beside them:
//! one shard's computation (`shard`), the CPU pool (`pool`), the chain and the dry run
//! (`chain`), the arrears ranking (`ranking`), the report's text (`report`) and the worker loop
//! (`serve`).

mod chain;
mod handle;
mod join;
pub mod notices;
pub mod pool;
mod ranking;
mod report;
mod schedule;
mod serve;
pub mod shard;

pub use chain::{DryRun, chain_for, dry_run, load_chain};
pub use handle::{Counters, Runs};
pub use join::{Joined, join};
pub use ranking::{refresh_ranking, top_arrears};
pub use schedule::due_date;
pub use serve::{Served, serve};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::{Stream, StreamExt};
use heatbill_engine::{
    BillError, Chain, ChainEntry, DayInput, Engine, Evaluator, LineCategory, PluginKind, Schedule,
    ScheduleEvaluator, SeasonDay, SeasonPhase,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{as_of, customers_key, pack_customers, unpack_customers};
use crate::coord::Lock;
use crate::model::*;
use crate::services::Services;
use crate::settings::Settings;
use crate::store::{Backend, StoreError, prelude::*};
use shard::RunContext;
pub use tokio_util::sync::CancellationToken;

/// Why a run could not complete. A run that failed part-way stays open: starting it again (on
/// any host) resumes it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed (for longer than `run.retry_s`, or for a reason that does not pass).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run cannot start as things are (no chain, the previous day not billed, a plugin
    /// that does not load).
    #[error("{0}")]
    Refused(String),
}

/// Progress of a run, reported after each shard this process writes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Shards of the run.
    pub shards: u64,
    /// Shards done before this process started and by this process since.
    pub shards_done: u64,
    /// What this process did so far.
    pub counts: ShardCounts,
    /// Time since this process started the run.
    pub elapsed: Duration,
}

/// The report of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's id.
    pub run_id: i64,
    /// The company.
    pub company: String,
    /// The bill date.
    pub date: NaiveDate,
    /// 1 for the date's first run, then +1 per re-run.
    pub attempt: i32,
    /// Whether this process joined a run another process had started (or left unfinished).
    pub resumed: bool,
    /// The chain version that billed the date.
    pub chain_version_id: i32,
    /// Its effective date.
    pub chain_effective_from: NaiveDate,
    /// Shards of the run.
    pub shards: u64,
    /// Counts over the whole run (every process that worked on it).
    pub counts: ShardCounts,
    /// What this process did.
    pub this_process: ShardCounts,
    /// Shards this process computed but could not write: another worker had claimed them
    /// since (this process's lease had lapsed) or finished them. The fencing token refused the
    /// write; the other worker's bills stand.
    #[serde(default)]
    pub writes_refused: u64,
    /// Amounts of the bills the run wrote, by line code (and payer, when not the customer).
    pub totals: BTreeMap<String, Decimal>,
    /// Amounts of the bills the run wrote, by payer.
    pub by_payer: BTreeMap<String, Decimal>,
    /// Parked customers (the first 100, by customer id).
    pub parked: Vec<ParkedCustomer>,
    /// Every parked customer counted by plugin and kind of error: which plugin was cut off
    /// (`skipped`), which failed whom.
    #[serde(default)]
    pub parked_by: Vec<ParkedGroup>,
    /// Set when nothing the run depends on changed since this completed run of the date: the
    /// run computed nothing (its counts are that run's, all unchanged).
    #[serde(default)]
    pub unchanged_since: Option<i64>,
    /// Seconds this process spent on the run.
    pub seconds: f64,
    /// Customers this process settled per second (billed, found unchanged or parked).
    pub customers_per_second: f64,
    /// This process's cache hits and misses.
    #[serde(default)]
    pub cache: crate::cache::CacheStats,
    /// Claims this process made (its shards, and looks that found none claimable).
    #[serde(default)]
    pub claims: u64,
    /// Seconds this process spent claiming shards and renewing leases (overlapping its other
    /// work).
    #[serde(default)]
    pub coordination_seconds: f64,
    /// Plugins this run caught billing a customer-day differently inside a batch than alone,
    /// and quarantined for the company (the date is then billed again, every customer-day
    /// alone).
    #[serde(default)]
    pub quarantined: Vec<Quarantine>,
    /// Things an operator should know.
    pub warnings: Vec<String>,
    /// Payment notices the run issued before billing the date (see [`crate::notices`]).
    #[serde(default)]
    pub notices: Vec<String>,
    /// What fee control (费控) did after the last shard (see [`crate::events`]): none when the
    /// company has no `policies.fee_control`.
    #[serde(default)]
    pub fee_control: Option<crate::store::events::NightOutcome>,
}

/// Parked customers listed in a report.
pub const REPORT_PARKED: usize = 100;

/// The season position the host supplies when the chain has no season plugin: the company's
/// regular season that contains the date, or "outside".
pub fn season_preset(company: &Company, date: NaiveDate) -> Option<SeasonDay> {
    if company.seasons.is_empty() {
        return None;
    }
    Some(
        match company
            .seasons
            .iter()
            .find(|s| s.start <= date && date <= s.end)
        {
            Some(s) => SeasonDay {
                phase: SeasonPhase::Regular,
                day_index: (date - s.start).num_days() as u32 + 1,
                season_days: (s.end - s.start).num_days() as u32 + 1,
                charged: true,
            },
            None => SeasonDay {
                phase: SeasonPhase::Outside,
                day_index: 0,
                season_days: 0,
                charged: false,
            },
        },
    )
}

/// The contract's name of a line category.
pub fn category_str(c: LineCategory) -> &'static str {
    match c {
        LineCategory::Heating => "heating",
        LineCategory::Consumption => "consumption",
        LineCategory::BaseFee => "base-fee",
        LineCategory::Subsidy => "subsidy",
        LineCategory::Refund => "refund",
        LineCategory::LateFee => "late-fee",
        LineCategory::Other => "other",
    }
}

/// Runs `f` with the engine on a blocking thread. Plugin code never runs on the async
/// runtime's threads: WASI's synchronous calls enter a runtime of their own, which tokio
/// forbids inside an async context (and a slow plugin must not stall the loads and writes).
pub async fn blocking<T: Send + 'static>(
    engine: &Engine,
    f: impl FnOnce(&Engine) -> T + Send + 'static,
) -> T {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || f(&engine))
        .await
        .expect("an engine call panicked")
}

/// Whether a store error is one that passes: the connection was lost or refused, the server
/// is shutting down or restarting, the pool had no connection in time.
pub fn transient(e: &StoreError) -> bool {
    let StoreError::Database(e) = e else {
        return false;
    };
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now;
            // 25P03: the session sat idle in a transaction past its limit (the process was
            // paused); 57014: a statement ran past its timeout (a writer paused inside it: the
            // retry finds whether its claim still holds); 53300: too many connections;
            // 40001/40P01: serialization failure, deadlock.
            c.starts_with("08")
                || c.starts_with("57P0")
                || c == "25P03"
                || c == "57014"
                || c == "53300"
                || c == "40001"
                || c == "40P01"
        }),
        _ => false,
    }
}

/// Calls `f` until it succeeds, retrying failures that pass ([`transient`]) with exponential
/// backoff (100 ms doubling to 5 s) for at most `budget` after the first failure. (Counted from
/// the failure, not the first call: a call that failed after its process was stopped for an
/// hour still gets its retries.)
pub async fn retry<T, F, Fut>(what: &str, budget: Duration, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut failed: Option<Instant> = None;
    let mut pause = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e)
                if transient(&e)
                    && failed.get_or_insert_with(Instant::now).elapsed() + pause < budget =>
            {
                tracing::warn!(%what, error = %e, ?pause, "the database failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A cache loader's error: the store's, as text.
#[derive(Debug)]
struct CacheLoadError(String);

impl fmt::Display for CacheLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for CacheLoadError {
    fn from(s: String) -> Self {
        CacheLoadError(s)
    }
}

impl From<StoreError> for CacheLoadError {
    fn from(e: StoreError) -> Self {
        CacheLoadError(e.to_string())
    }
}

/// What every step of a run needs from its process: the store, cache and coordination, the
/// rules engine and the configuration. One value passed down the run's steps instead of three
/// arguments to each; cheap to clone (the services and the engine are shared handles, the
/// settings are behind an `Arc`), so a spawned task owns its own.
#[derive(Clone)]
pub struct Env {
    /// The store, cache and coordination.
    pub services: Services,
    /// The rules engine.
    pub engine: Engine,
    /// The configuration.
    pub settings: Arc<Settings>,
}

impl Env {
    /// The environment of a process's runs.
    pub fn new(services: Services, engine: Engine, settings: Settings) -> Env {
        Env {
            services,
            engine,
            settings: Arc::new(settings),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

/// What every process working on a run of a company and date needs, prepared once.
pub struct Prepared {
    /// The company.
    pub company: Company,
    /// The chain version in force on the date.
    pub version: ChainVersion,
    /// The schedule the pool's evaluators run (that one version).
    pub schedule: Arc<Schedule>,
    /// What every shard of the run shares.
    pub ctx: Arc<RunContext>,
    /// The run's inputs as a whole (see [`stamp_of`]).
    pub stamp: String,
    /// The chain's plugins quarantined for the company when the run was prepared ("name
    /// version"): the run bills every customer-day alone.
    pub quarantined: Vec<String>,
    /// What preparing issued: payment notices (see [`crate::notices`]).
    pub notices: Vec<String>,
}

/// Prepares a run of `company` for `date`: the previous day is billed, the chain is in force
/// and loads, its line kinds are recorded, the date's partition exists.
pub async fn prepare(env: &Env, company: &str, date: NaiveDate) -> Result<Prepared, RunError> {
    let Env {
        services,
        engine,
        settings,
    } = env;
    let store = &services.store;
    let budget = Duration::from_secs(settings.run.retry_s);
    let company = retry("reading the company", budget, || store.company(company)).await?;
    match retry("checking the previous day", budget, || {
        store.previous_day(company.id, date)
    })
    .await?
    {
        PreviousDay::Missing => {
            let prev = date.pred_opt().unwrap_or(date);
            return Err(RunError::Refused(format!(
                "company {}: {prev} has not been billed (no completed run), and each customer's \
                 balance carries from one day's bill to the next: run {prev} first \
                 (heatbill run --company {} --date {prev})",
                company.slug, company.slug
            )));
        }
        PreviousDay::FirstRun | PreviousDay::Completed => {}
    }
    let (version, chain) = chain_for(services, engine, &company, date).await?;
    let has_season_plugin = chain
        .entries()
        .iter()
        .any(|e| e.plugin().kind() == PluginKind::Season);
    let season = if has_season_plugin {
        None
    } else {
        season_preset(&company, date)
    };
    let schedule = Arc::new(
        Schedule::new([(version.effective_from, chain.clone())])
            .map_err(|e| RunError::Refused(e.to_string()))?,
    );

    // The chain version's line kinds, recorded once: stored bills name kinds by (entry, index).
    let announced = {
        let schedule = schedule.clone();
        blocking(engine, move |engine| {
            ScheduleEvaluator::new(engine, schedule).line_kinds(0)
        })
        .await
    };
    let mut kinds = HashMap::new();
    let mut records = Vec::new();
    for (e, list) in announced.into_iter().enumerate() {
        for (k, kind) in list.into_iter().enumerate() {
            records.push(LineKindRecord {
                entry: e as u16,
                kind: k as u16,
                plugin: kind.plugin.clone(),
                plugin_version: kind.plugin_version.clone(),
                code: kind.code.clone(),
                description: kind.description.clone(),
                unit: kind.unit.clone(),
                category: category_str(kind.category).to_string(),
            });
            kinds.insert((*kind).clone(), (e as u16, k as u16));
        }
    }
    retry("recording the line kinds", budget, || {
        store.put_line_kinds(version.id, &records)
    })
    .await?;
    retry("creating the date's partition", budget, || {
        store.ensure_partitions(date, date)
    })
    .await?;

    // Plugins of the chain caught breaking the purity rule: the whole chain is billed one
    // customer-day at a time (and the digests change with it, so every bill a quarantined
    // plugin made in batches is billed again).
    let quarantined: Vec<String> = retry("reading the quarantined plugins", budget, || {
        store.quarantined_plugins(company.id)
    })
    .await?
    .into_iter()
    .filter(|q| {
        chain
            .entries()
            .iter()
            .any(|e| e.plugin().name() == q.plugin && e.plugin().version() == q.plugin_version)
    })
    .map(|q| format!("{} {}", q.plugin, q.plugin_version))
    .collect();
    let mut chain_hash = Sha256::new();
    chain_hash.update(version.digest.as_bytes());
    chain_hash.update(format!("{season:?}").as_bytes());
    if !quarantined.is_empty() {
        chain_hash.update(format!("strict {quarantined:?}").as_bytes());
    }
    let chain_part: [u8; 8] = chain_hash.finalize()[..8]
        .try_into()
        .expect("8 bytes of a digest");

    let prev = date.pred_opt().unwrap_or(date);
    let previous_runs = retry("reading the previous day's runs", budget, || {
        store.runs(company.id, prev)
    })
    .await?;
    // A re-run of the previous day still going would change the balances this date starts
    // from, after this date had read them: this date waits for it.
    if let Some(r) = previous_runs.iter().find(|r| r.state == "running") {
        return Err(RunError::Refused(format!(
            "company {}: run {} (attempt {}) of {prev} is still going, and each customer's \
             balance carries from {prev}'s bill to {date}'s: let it finish (or resume it: \
             heatbill run --company {} --date {prev}), then run {date}",
            company.slug, r.id, r.attempt, company.slug
        )));
    }
    let allocation = crate::ledger::Allocation::of(&company.policies)
        .map_err(|e| RunError::Refused(format!("company {}: {e}", company.slug)))?;
    // What is due when: the notices the date must issue first (idempotent), and which of the
    // chain's lines go on notices.
    let policy = crate::notices::BillingPolicy::of(&company.policies)
        .map_err(|e| RunError::Refused(format!("company {}: {e}", company.slug)))?;
    let (notices, billing, latest_notice) = match &policy {
        None => (Vec::new(), None, 0),
        Some(policy) => {
            let issued = notices::issue(env, &company, policy, date).await?;
            let latest = retry("reading the company's notices", budget, || {
                store.latest_notice_id(company.id)
            })
            .await?;
            let billing = shard::RunBilling::new(policy, &company.seasons, date, &kinds);
            (issued, Some(Arc::new(billing)), latest)
        }
    };
    let mut stamp = stamp_of(&company, &version, season, &previous_runs);
    if policy.is_some() {
        stamp.push_str(&format!("; notices {latest_notice}"));
    }
    let ctx = Arc::new(RunContext {
        company: company.slug.clone(),
        company_id: company.id,
        customers_version: company.customers_version,
        use_cache: settings.cache.shards,
        date,
        allocation,
        chain_version_id: version.id,
        chain_part,
        season,
        kinds,
        batch: settings
            .run
            .batch
            .clamp(1, engine.limits().max_batch.max(1)),
        purity_sample: settings.run.purity_sample,
        strict: (!quarantined.is_empty()).into(),
        billing,
    });
    Ok(Prepared {
        company,
        version,
        schedule,
        ctx,
        stamp,
        quarantined,
        notices,
    })
}

/// The run's inputs as a whole. Every write path of a company's data bumps its data version
/// (imports, company and chain changes); the previous day's rows change only through a run of
/// that day, and only a completed run of it counts (an attempt still going, or cut off, has not
/// replaced its bills yet); plugins are pure. So a run whose stamp equals the date's last
/// completed run's would find every digest unchanged, and every customer that run parked for a
/// rule's refusal parked again ([`parked_for_good`]).
fn stamp_of(
    company: &Company,
    version: &ChainVersion,
    season: Option<SeasonDay>,
    previous_runs: &[RunRecord],
) -> String {
    let previous = previous_runs
        .iter()
        .filter(|r| r.state == "completed")
        .map(|r| r.id)
        .max()
        .unwrap_or(0);
    format!(
        "data {}; chain {} {}; season {:?}; previous day {}; heatbill {}",
        company.data_version,
        version.id,
        version.digest,
        season,
        previous,
        env!("CARGO_PKG_VERSION"),
    )
}

pub use crate::model::{stamp_data_version, stamp_previous_day};

/// The lock of a company's date (opening and finishing its run).
fn run_lock(company_id: i32, date: NaiveDate) -> String {
    format!("run:{company_id}:{date}")
}

/// Runs (or joins, or resumes) the daily run of `company` for `date`. See the module docs.
pub async fn run(
    env: &Env,
    company: &str,
    date: NaiveDate,
    mut on_progress: impl FnMut(&Progress) + Send,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let p = prepare(env, company, date).await?;
    match open(env, &p, started).await? {
        Opened::Unchanged(report) => Ok(*report),
        Opened::Running(running) => {
            complete(
                env,
                &p,
                running,
                started,
                &mut on_progress,
                &CancellationToken::new(),
            )
            .await
        }
    }
}

/// How many times [`complete`] runs a date again because its inputs changed while it ran.
const MAX_ROUNDS: usize = 3;

/// A run opened by [`open`].
#[derive(Debug)]
pub enum Opened {
    /// Nothing the date's bills depend on changed since its last completed run: a completed
    /// run was recorded with this report, and nothing is left to do.
    Unchanged(Box<RunReport>),
    /// The run is open: [`complete`] works on it.
    Running(Running),
}

/// An open run, before this process works on it.
#[derive(Debug, Clone)]
pub struct Running {
    /// The run.
    pub run: RunRecord,
    /// Whether it had been opened before (by another process, or a run cut off).
    pub resumed: bool,
    /// Shards done before.
    pub done: u64,
}

/// Opens the run of a prepared (company, date): picks up the running run, or records an
/// unchanged re-run, or starts the next attempt. What the admin API does before answering a
/// run request with the run's id.
pub async fn open(env: &Env, p: &Prepared, started: Instant) -> Result<Opened, RunError> {
    let Env {
        services, settings, ..
    } = env;
    let store = &services.store;
    let budget = Duration::from_secs(settings.run.retry_s);
    let (company, version, date) = (&p.company, &p.version, p.ctx.date);
    // Open under the date's lock, so hosts started together do not all cut the company into
    // shards; the database's unique index on the running run is what makes it one run.
    let lock = Lock::acquire(
        &services.coord,
        &run_lock(company.id, date),
        Duration::from_secs(60),
        Duration::from_secs(settings.run.lock_wait_s),
    )
    .await;
    let runs = retry("reading the date's runs", budget, || {
        store.runs(company.id, date)
    })
    .await?;
    let last = runs.iter().rev().find(|r| r.state == "completed");
    let running = runs.iter().any(|r| r.state == "running");
    if let Some(last) = last
        && !settings.run.always_compare
        && !running
        && last.stamp == p.stamp
        && let Some(before) = last
            .report
            .as_ref()
            .and_then(|r| serde_json::from_value::<RunReport>(r.clone()).ok())
        && parked_for_good(&before)
    {
        let report = record_unchanged(services, p, last, &before, started).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        return report.map(|r| Opened::Unchanged(Box::new(r)));
    }
    let opened = retry("opening the run", budget, || {
        store.open_run(
            company.id,
            date,
            version.id,
            settings.run.shard_size.max(1),
            &p.stamp,
        )
    })
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let opened = opened?;
    let run = opened.run.clone();
    tracing::info!(
        run = run.id,
        company = %company.slug,
        %date,
        attempt = run.attempt,
        resumed = opened.resumed,
        shards = run.shard_count,
        pending = opened.pending.len(),
        "run opened"
    );
    Ok(Opened::Running(Running {
        run,
        resumed: opened.resumed,
        done: opened.done as u64,
    }))
}

/// Works on an opened run until every shard is done, and finishes it with its report.
///
/// A run opened on other inputs than `p`'s (this process joined a run another opened before a
/// correction was imported, so some of its shards were billed on the old data) is finished,
/// and then the date is run again on the current inputs, which bills exactly what changed: what
/// this returns is current, never an older run's success. The report says so. After
/// [`MAX_ROUNDS`] rounds of inputs changing under it, it stops with an error (the date is left
/// to be run again). `wind_down` stops claiming new shards (the ones in hand are written).
pub async fn complete(
    env: &Env,
    p: &Prepared,
    running: Running,
    started: Instant,
    on_progress: &mut (impl FnMut(&Progress) + Send),
    wind_down: &CancellationToken,
) -> Result<RunReport, RunError> {
    let mut carried: Vec<String> = Vec::new();
    let mut carried_quarantine: Vec<Quarantine> = Vec::new();
    let mut next: Option<Prepared> = None;
    let mut running = running;
    for _ in 0..MAX_ROUNDS {
        let p = next.as_ref().unwrap_or(p);
        let outdated = running.run.stamp != p.stamp;
        let (id, attempt) = (running.run.id, running.run.attempt);
        let mut report = complete_once(env, p, running, started, on_progress, wind_down).await?;
        report.warnings.splice(0..0, carried.drain(..));
        report
            .quarantined
            .splice(0..0, carried_quarantine.drain(..));
        // A plugin caught and quarantined during the run: calls before that were billed in
        // batches whose samples matched, which does not prove them right; the next round
        // bills every customer-day alone (the digests' chain part changed).
        let caught = !report.quarantined.is_empty();
        if !outdated && !caught {
            return Ok(report);
        }
        carried = std::mem::take(&mut report.warnings);
        carried_quarantine = std::mem::take(&mut report.quarantined);
        carried.push(if caught {
            format!(
                "run {id} (attempt {attempt}) quarantined a plugin: the date was run again, \
                 every customer-day billed alone"
            )
        } else {
            format!(
                "joined run {id} (attempt {attempt}), which was opened on other inputs than the \
                 current ones (the company's data, chain or previous day changed since): \
                 finished it, then ran the date again on the current inputs"
            )
        });
        if wind_down.is_cancelled() {
            return Err(RunError::Refused(format!(
                "{}; stopped before the date was run again on the current inputs: run it again",
                carried.join("; ")
            )));
        }
        let again = prepare(env, &p.company.slug, p.ctx.date).await?;
        match open(env, &again, started).await? {
            Opened::Unchanged(mut r) => {
                r.warnings.splice(0..0, carried);
                r.quarantined.splice(0..0, carried_quarantine);
                return Ok(*r);
            }
            Opened::Running(r) => {
                running = r;
                next = Some(again);
            }
        }
    }
    Err(RunError::Refused(format!(
        "{}; the company's inputs kept changing while the date ran ({MAX_ROUNDS} rounds): run \
         it again once imports have settled",
        carried.join("; ")
    )))
}

/// One run, opened, worked on until every shard is done, and finished.
async fn complete_once(
    env: &Env,
    p: &Prepared,
    running: Running,
    started: Instant,
    on_progress: &mut (impl FnMut(&Progress) + Send),
    wind_down: &CancellationToken,
) -> Result<RunReport, RunError> {
    let Running { run, resumed, done } = running;
    let mut warnings = Vec::new();
    if resumed {
        warnings.push(format!(
            "joined run {} (attempt {}): {} of {} shards were already written",
            run.id, run.attempt, done, run.shard_count
        ));
    }
    let joined = join(env, p, &run, done, on_progress, wind_down).await?;
    if joined.writes_refused > 0 {
        warnings.push(format!(
            "{} shard(s) computed here were written by another worker first: this process's \
             claim had lapsed (it was paused or cut off), and the fencing token refused its \
             late write",
            joined.writes_refused
        ));
    }
    finish(env, p, &run, resumed, joined, warnings, started).await
}

/// Whether a completed run's parked customers, if any, would be parked again by a run on the
/// same inputs: their rules refused them (a rule error, an invalid output, no chain), which pure
/// plugins do again on the same inputs. A trap, a customer-day skipped when a time budget was
/// spent, or data that changed while the run read it may go otherwise: those are billed again.
/// So a new request for a date whose inputs did not change costs nothing, even with a customer
/// parked for a missing reading.
fn parked_for_good(report: &RunReport) -> bool {
    report.counts.parked == 0
        || (!report.parked_by.is_empty()
            && report.parked_by.iter().map(|g| g.count).sum::<u64>() == report.counts.parked
            && report.parked_by.iter().all(|g| {
                matches!(
                    g.kind.as_str(),
                    "bad-params"
                        | "missing-input"
                        | "invalid-input"
                        | "unsupported"
                        | "invalid-output"
                        | "no-chain"
                )
            }))
}

/// Records a re-run that has nothing to compute.
async fn record_unchanged(
    services: &Services,
    p: &Prepared,
    last: &RunRecord,
    before: &RunReport,
    started: Instant,
) -> Result<RunReport, RunError> {
    let counts = ShardCounts {
        customers: before.counts.customers,
        unchanged: before.counts.customers - before.counts.parked,
        parked: before.counts.parked,
        ..Default::default()
    };
    let mut report = RunReport {
        run_id: 0,
        company: p.company.slug.clone(),
        date: p.ctx.date,
        attempt: 0,
        resumed: false,
        chain_version_id: p.version.id,
        chain_effective_from: p.version.effective_from,
        shards: 0,
        counts,
        this_process: counts,
        writes_refused: 0,
        totals: BTreeMap::new(),
        by_payer: BTreeMap::new(),
        parked: Vec::new(),
        parked_by: Vec::new(),
        unchanged_since: Some(last.id),
        seconds: 0.0,
        customers_per_second: 0.0,
        cache: services.cache.stats(),
        claims: 0,
        coordination_seconds: 0.0,
        quarantined: Vec::new(),
        warnings: vec![format!(
            "nothing changed since run {} (attempt {}): the same data version, chain version and \
             previous day; no customer was read (heatbill run --verify compares every \
             customer's inputs anyway){}",
            last.id,
            last.attempt,
            if before.counts.parked > 0 {
                format!(
                    "; its {} parked customer(s) stay parked: their rules refused them, and \
                     would again on the same inputs (fix the cause, then run the date again)",
                    before.counts.parked
                )
            } else {
                String::new()
            }
        )],
        notices: p.notices.clone(),
        fee_control: None,
    };
    report.parked = before.parked.clone();
    report.parked_by = before.parked_by.clone();
    report.seconds = started.elapsed().as_secs_f64();
    let record = services
        .store
        .record_unchanged_run(
            p.company.id,
            p.ctx.date,
            p.version.id,
            &p.stamp,
            &serde_json::to_value(&report).expect("a report serializes"),
        )
        .await?;
    report.run_id = record.id;
    report.attempt = record.attempt;
    services
        .store
        .finish_run(
            record.id,
            "completed",
            &serde_json::to_value(&report).expect("a report serializes"),
        )
        .await?;
    tracing::info!(
        run = record.id,
        unchanged_since = last.id,
        "nothing changed"
    );
    Ok(report)
}

/// Ends a run whose shards are all done: the report (from the database's per-shard counts, so
/// it covers every process), the run marked completed by whichever process gets there first,
/// and the company's arrears ranking refreshed by that one.
async fn finish(
    env: &Env,
    p: &Prepared,
    run: &RunRecord,
    resumed: bool,
    joined: Joined,
    mut warnings: Vec<String>,
    started: Instant,
) -> Result<RunReport, RunError> {
    let Env {
        services, settings, ..
    } = env;
    let store = &services.store;
    let budget = Duration::from_secs(settings.run.retry_s);
    let totals = retry("reading the run's totals", budget, || {
        store.run_totals(run.id, REPORT_PARKED)
    })
    .await?;
    if totals.shards_done < totals.shard_count {
        return Err(RunError::Refused(format!(
            "run {}: {} of {} shards are done; start the run again to finish it",
            run.id, totals.shards_done, totals.shard_count
        )));
    }
    if totals.counts.parked > 0 {
        warnings.push(format!(
            "{} customer(s) parked: their rules failed; fix the cause and run the date again \
             to bill them",
            totals.counts.parked
        ));
    }
    let quarantined: Vec<Quarantine> = retry("reading the quarantined plugins", budget, || {
        store.quarantined_plugins(p.company.id)
    })
    .await?
    .into_iter()
    .filter(|q| {
        q.run_id == Some(run.id)
            && !p
                .quarantined
                .contains(&format!("{} {}", q.plugin, q.plugin_version))
    })
    .collect();
    for q in &quarantined {
        warnings.push(format!(
            "plugin {} {} is quarantined for the company: it billed a customer-day differently \
             inside its batch than alone ({}); the calls where that was caught were billed \
             again one customer-day at a time, and from now on every customer-day is billed \
             alone (slower) until the chain uses a fixed version",
            q.plugin,
            q.plugin_version,
            terminal_safe(&q.reason, 600)
        ));
    }
    // Data imported while the run went may not be in every shard's bills: say so (the next run
    // of the date bills exactly what changed).
    if let Ok(now) = store.company(&p.company.slug).await
        && stamp_data_version(&run.stamp).is_some_and(|v| v != now.data_version)
    {
        warnings.push(format!(
            "the company's data changed while this run went (data version {} when it opened, \
             {} now): shards billed before the change used the earlier data; run the date \
             again to bill what changed",
            stamp_data_version(&run.stamp).unwrap_or_default(),
            now.data_version
        ));
    }
    // Fee control over the night's balances, before the run is marked completed: a host that
    // dies here leaves the run to resume, and the evaluation runs again under the same keys
    // (nothing is asked twice).
    // Only the company's newest night acts on valves: a past date billed again (a correction
    // reached it) must not close a valve for a balance it no longer has.
    let newest = retry("reading the latest billed date", budget, || {
        store.latest_billed_date(p.company.id)
    })
    .await?
    .is_none_or(|latest| latest <= p.ctx.date);
    let fee_control = match crate::events::FeeControl::of(&p.company.policies) {
        Ok(Some(_)) if !newest => None,
        Ok(Some(policy)) => Some(
            retry("applying fee control", budget, || {
                store.fee_night(p.company.id, p.ctx.date, &policy)
            })
            .await?,
        ),
        Ok(None) => None,
        Err(e) => {
            warnings.push(format!("fee control was not applied: {e}"));
            None
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut by_payer: BTreeMap<String, Decimal> = BTreeMap::new();
    for (k, v) in &totals.totals {
        let payer = match k.rsplit_once(" (") {
            Some((_, p)) => p.trim_end_matches(')').to_string(),
            None => "customer".to_string(),
        };
        *by_payer.entry(payer).or_default() += *v;
    }
    let this = joined.counts;
    let report = RunReport {
        run_id: run.id,
        company: p.company.slug.clone(),
        date: p.ctx.date,
        attempt: run.attempt,
        resumed,
        chain_version_id: p.version.id,
        chain_effective_from: p.version.effective_from,
        shards: totals.shard_count,
        counts: totals.counts,
        this_process: this,
        writes_refused: joined.writes_refused,
        totals: totals.totals,
        by_payer,
        parked: totals.parked,
        parked_by: totals.parked_by,
        unchanged_since: None,
        seconds,
        customers_per_second: if seconds > 0.0 {
            this.customers as f64 / seconds
        } else {
            0.0
        },
        cache: services.cache.stats(),
        claims: joined.claims,
        coordination_seconds: joined.coordination_seconds,
        quarantined,
        warnings,
        notices: p.notices.clone(),
        fee_control,
    };
    let json = serde_json::to_value(&report).expect("a report serializes");
    let finished = retry("finishing the run", budget, || {
        store.finish_run(run.id, "completed", &json)
    })
    .await?;
    if finished {
        tracing::info!(run = run.id, seconds, "run completed");
        if let Err(e) = services.coord.clear_progress(run.id).await {
            tracing::debug!(error = %e, "live progress not cleared");
        }
        if let Err(e) = refresh_ranking(services, p.company.id, p.ctx.date).await {
            tracing::warn!(error = %e, "the arrears ranking was not refreshed");
        }
        // A date billed again in a period whose notices were settled: the next run adds the
        // period's bills up again (an adjusting notice if they changed).
        if p.ctx.billing.is_some() && report.counts.revised > 0 {
            retry("marking the date's notice periods", budget, || {
                store.mark_notice_periods(p.company.id, p.ctx.date)
            })
            .await?;
        }
    }
    Ok(report)
}

/// Fills a shard's caches ahead of its run (the nightly warm-up): the customers of every shard
/// the run will cut, packed, under the company's customer-data version.
pub async fn warm(
    services: &Services,
    settings: &Settings,
    company: &Company,
) -> Result<u64, RunError> {
    let mut n = 0;
    for shard in services
        .store
        .cut_shards(company.id, settings.run.shard_size.max(1))
        .await?
    {
        let key = customers_key(
            company.id,
            company.customers_version,
            &shard.first,
            shard.end.as_deref(),
        );
        let store = services.store.clone();
        let cid = company.id;
        services
            .cache
            .get_or_load(&key, move || async move {
                let v = store.load_customer_versions(cid, &shard).await?;
                Ok::<_, CacheLoadError>(pack_customers(&v))
            })
            .await
            .map_err(|e| RunError::Refused(format!("warming the cache: {e}")))?;
        n += 1;
    }
    Ok(n)
}

/// Text from plugins and files, made safe for a terminal: control and invisible characters
/// escaped, at most `max` characters (the engine's one definition).
pub use heatbill_engine::text::terminal_safe;
