//! The system of record: one [`Store`] trait, a PostgreSQL implementation (production) and a
//! SQLite one (the embedded default), both held to one contract test suite.
//!
//! Each method is one set-based statement or one transaction; nothing on a run's path goes to
//! the database one customer at a time:
//!
//! - [`Store::load_shard`] reads a shard's customers as of the date (ids and data digests),
//!   readings, temperatures, carried balances, payments, opening balances and current bills in
//!   seven queries; [`Store::load_customers`] then reads the data of the customers whose bills
//!   must be computed (all of them on a date's first run, none on an unchanged re-run);
//! - [`Store::write_shard`] writes a shard's bills (PostgreSQL: `COPY`; SQLite: multi-row
//!   `INSERT`), moves the bills they replace to `bill_history`, records the parked customers
//!   and marks the shard done, all in one transaction whose first statement checks the shard's
//!   claim, so a shard is written once or not at all;
//! - imports stage a file's rows in a temporary table, check them as a set (unknown customers,
//!   duplicates) and merge them, all in one transaction.
//!
//! Correctness lives here, not in the caller: a bill is unique on (company, customer, date), a
//! shard's state changes in the transaction that writes its bills, and a new version replaces
//! exactly the version the run compared against.
//!
//! # One SQL layer, two backends
//!
//! The two databases hold the same tables and most methods run the same SQL, so that SQL is
//! written once (`store/sql.rs`, `store/shared.rs`) and each backend file keeps only what its
//! database does differently:
//!
//! - `sql.rs`: a query is a `static` text in PostgreSQL's spelling (`$1`, `::text` casts,
//!   `now()`, `FOR UPDATE`, and two markers, `utc_text(col)` and `age_s(col)`), rendered for
//!   each dialect the first time it runs there and kept (SQLite: `?1`, no casts, its own
//!   timestamps, no row locks; its one writer lock is taken at `BEGIN IMMEDIATE`). Nothing is
//!   rewritten per call. Arguments are a small enum each backend binds as its driver wants;
//!   rows are read through one trait (`SqlRow`) whose two implementations differ only where the
//!   databases store a type differently (SQLite's integers are 64-bit; decimals are read as
//!   text on both: SQLite stores them as TEXT, PostgreSQL's queries cast `numeric` to text so a
//!   stored `0.00` reads back as `0.00`). The row mappers (`customer_of`, `run_of`,
//!   `bill_row_of`, `company_of`, …) and the pure helpers (`shard_ranges`, `claim_lost`,
//!   `check_kinds`, `totals_json`, `merge_totals`, the import's set checks and its record) are
//!   written once there.
//! - `shared.rs`: the [`Store`] methods written once, for every backend (`Engine`), on the
//!   backend's pool or write transactions.
//! - `postgres.rs`, `sqlite.rs`: connecting, migrating, and the methods whose SQL really
//!   differs, listed below.
//!
//! sqlx's `Any` driver was considered and rejected: it cannot decode `numeric` or date columns
//! (no `rust_decimal` or chrono support), and the hot paths would lose the backends' own bulk
//! paths. Code generic over `sqlx::Database` was rejected too: every function would carry a
//! dozen higher-ranked bounds (`for<'c> &'c mut DB::Connection: Executor<'c>`, `T: Encode +
//! Decode + Type` per column type) for what the argument enum and the row trait say once.
//!
//! ## What stays backend-specific, and why
//!
//! - Connecting (pool options, SQLite's WAL and busy timeout) and the migrations (one directory
//!   per database: the types differ).
//! - Write transactions: SQLite takes its one writer lock at `BEGIN IMMEDIATE` and steps every
//!   statement to its end; PostgreSQL uses ordinary transactions and row locks.
//! - `put_company`'s row: PostgreSQL upserts and compares `jsonb` with `IS DISTINCT FROM`;
//!   SQLite compares the stored text in Rust. (The seasons are shared.)
//! - `write_shard`: PostgreSQL `COPY`s into a private staging table under lease-bounded session
//!   timeouts, moves replaced bills with one `DELETE … USING unnest(…) RETURNING` and names its
//!   session for `end_stalled_writers`; SQLite writes multi-row `INSERT`s of a few hundred
//!   rows (it has no arrays and a bound-parameter limit).
//! - `load_shard` and `load_customers` (hot paths): PostgreSQL runs the seven queries on seven
//!   connections at once and picks a customer's version with `DISTINCT ON`, its ids with
//!   `= ANY($5)`; SQLite runs them one after another on one connection with a correlated
//!   `max(valid_from)` and `json_each` (no `DISTINCT ON`, no arrays). Their row mappers are
//!   shared.
//! - `claim_shard`, `renew_lease`, `end_stalled_writers`: PostgreSQL claims with
//!   `FOR UPDATE SKIP LOCKED`, tokens from a sequence and leases as `timestamptz`, and ends
//!   stalled writers' sessions; SQLite serializes claimers on its writer lock, counts tokens in
//!   a table, keeps leases as epoch milliseconds, and has no sessions to end.
//! - A new run's shards (`unnest` against multi-row `INSERT`), `ensure_partitions` and
//!   `bill_bytes` (PostgreSQL's monthly partitions; SQLite's `dbstat`), and `arrears`
//!   (SQLite compares its TEXT decimals in Rust).
//! - Imports: staging (`COPY` into a typed temporary table against multi-row `INSERT`s) and the
//!   merge (PostgreSQL compares numerics as text in row-value `IS DISTINCT FROM`; SQLite uses
//!   `IS NOT` on its TEXT columns and sums hourly readings in Rust, exactly). The set checks and
//!   the import's record are shared.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::model::*;

pub mod postgres;
mod shared;
mod sql;
pub mod sqlite;
mod types;

pub use sql::chain_digest;
pub use types::{Backend, ImportFile, ImportSink, Result, StoreError};

/// The system of record. See the module docs.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Applies the migrations not applied yet, and (PostgreSQL) creates the bill partitions
    /// of the last month and the next twelve.
    async fn migrate(&self) -> Result<()>;

    /// Creates or updates a company (seasons are replaced).
    async fn put_company(&self, spec: &CompanySpec) -> Result<Company>;
    /// The company with this slug.
    async fn company(&self, slug: &str) -> Result<Company>;
    /// Every company, by slug.
    async fn companies(&self) -> Result<Vec<Company>>;
    /// Deletes a company and everything it owns (customers, data, chains, runs, bills).
    async fn delete_company(&self, slug: &str) -> Result<()>;

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

    /// Starts an import of one file's rows of `kind` into `company`.
    async fn begin_import(
        &self,
        company: &Company,
        kind: ImportKind,
    ) -> Result<Box<dyn ImportSink>>;

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
    /// Quarantines a plugin version for a company (the purity check caught it billing
    /// differently in a batch than alone), bumping the company's data version so that the
    /// date is run again; false when it was quarantined already.
    async fn quarantine_plugin(&self, company_id: i32, q: &Quarantine) -> Result<bool>;
    /// The company's quarantined plugin versions, oldest first.
    async fn quarantined_plugins(&self, company_id: i32) -> Result<Vec<Quarantine>>;
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
    /// Every version of every customer of a shard, by customer and date (what the cache
    /// holds per shard).
    async fn load_customer_versions(
        &self,
        company_id: i32,
        shard: &ShardRange,
    ) -> Result<Vec<CustomerState>>;
    /// The data of the customers of a shard in force on `date`: those of `ids` (sorted), or
    /// all of them. Sorted by customer id.
    async fn load_customers(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        ids: Option<&[String]>,
    ) -> Result<Vec<CustomerState>>;
    /// Writes one shard in one transaction (see the module docs).
    async fn write_shard(&self, write: &ShardWrite) -> Result<()>;
    /// A run's counts and totals over its done shards, with up to `parked_limit` parked
    /// customers.
    async fn run_totals(&self, run_id: i64, parked_limit: usize) -> Result<RunTotals>;
    /// Ends a running run (`completed` or `failed`) with its report; false when it had ended
    /// already (another process finished it).
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

    /// The current rows of a date (bills and parked placeholders), by customer.
    async fn bills(&self, company_id: i32, date: NaiveDate) -> Result<Vec<StoredBill>>;
    /// One customer's current row of a date.
    async fn bill(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<StoredBill>>;
    /// One customer's superseded rows of a date, oldest first.
    async fn bill_history(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Vec<StoredBill>>;
    /// The current bills of a date with unpaid principal (arrears > 0), as (customer,
    /// arrears): what the arrears ranking is rebuilt from.
    async fn arrears(&self, company_id: i32, date: NaiveDate) -> Result<Vec<(String, Decimal)>>;
    /// The latest date with a completed run of the company.
    async fn latest_billed_date(&self, company_id: i32) -> Result<Option<NaiveDate>>;
    /// The bytes the current bills of a date take in the database (table and indexes,
    /// PostgreSQL; `None` where the backend cannot tell).
    async fn bill_bytes(&self, company_id: i32, date: NaiveDate) -> Result<Option<u64>>;

    /// Up to `limit` current rows of a date after customer `after` (keyset pages, by customer):
    /// what listings and the streamed CSV export read, a page at a time.
    async fn bills_page(
        &self,
        company_id: i32,
        date: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBill>>;
    /// The current rows of a date for the customers of `range`, by customer (what the audit
    /// reads, a shard at a time).
    async fn bills_in(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<StoredBill>>;
    /// The superseded versions of a date for the customers of `range`, summed up per customer
    /// (how many, the lowest and highest version, how many lack a reason), by customer.
    async fn history_summary(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<HistorySummary>>;
    /// One customer's current rows of `from..=to`, by date.
    async fn customer_bills(
        &self,
        company_id: i32,
        customer_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StoredBill>>;
    /// The latest runs of a company (every date), newest first.
    async fn recent_runs(&self, company_id: i32, limit: usize) -> Result<Vec<RunRecord>>;

    // The admin API's records.

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
    /// Stores a company token by its hash.
    async fn put_token(
        &self,
        company_id: i32,
        role: &str,
        label: &str,
        token_hash: &str,
    ) -> Result<TokenRecord>;
    /// The token with this hash (revoked or not).
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>>;
    /// A company's tokens, oldest first.
    async fn tokens(&self, company_id: i32) -> Result<Vec<TokenRecord>>;
    /// Revokes a company's token; false when it has no such live token.
    async fn revoke_token(&self, company_id: i32, id: i64) -> Result<bool>;
    /// The run request recorded under a company's idempotency key.
    async fn run_request(&self, company_id: i32, key: &str) -> Result<Option<RunRequest>>;
    /// Records a run request under its idempotency key; a key already used is a `Conflict`.
    async fn put_run_request(
        &self,
        company_id: i32,
        key: &str,
        request: &str,
        run_id: i64,
    ) -> Result<()>;
    /// Sets (or with `None` removes) a company's nightly run time, `HH:MM` local.
    async fn put_schedule(&self, company_id: i32, run_at: Option<&str>) -> Result<()>;
    /// Every company's nightly run time, by company id.
    async fn schedules(&self) -> Result<Vec<(i32, String)>>;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend())
    }
}

/// Opens the store a database URL names: `postgres://…` or `sqlite://PATH` (created if
/// missing).
pub async fn open(
    url: &str,
    max_connections: u32,
    acquire_timeout_s: u64,
) -> Result<Arc<dyn Store>> {
    let timeout = std::time::Duration::from_secs(acquire_timeout_s.max(1));
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect(url, max_connections, timeout).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(url, max_connections, timeout).await?,
        ))
    } else {
        Err(StoreError::Config(format!(
            "database URL {:?} is neither postgres://… nor sqlite://…; for the embedded default \
             use sqlite://heatbill.db",
            crate::settings::redact_url(url)
        )))
    }
}
