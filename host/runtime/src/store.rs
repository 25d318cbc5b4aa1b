//! The system of record: the [`Store`] traits, a PostgreSQL implementation (production) and a
//! SQLite one (the embedded default), both held to one contract test suite.
//!
//! Each method is one set-based statement or one transaction; nothing on a run's path goes to
//! the database one customer at a time:
//!
//! - [`RunStore::load_shard`] reads a shard's customers as of the date (ids and data digests),
//!   readings, temperatures, carried balances, the ledger's entries, opening balances, current bills
//!   and the notices due on the date in eight queries; [`CustomerStore::load_customers`] then reads the data of the customers whose bills
//!   must be computed (all of them on a date's first run, none on an unchanged re-run);
//! - [`RunStore::write_shard`] writes a shard's bills (PostgreSQL: `COPY`; SQLite: multi-row
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
//! written once (`store/sql.rs` and the traits' files) and each backend file keeps only what its
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
//! - The traits, one file per concern, each with its methods written once for every backend
//!   (`impl<E: Engine> … for E`, on the backend's pool or write transactions): `companies.rs`
//!   ([`CompanyStore`]), `customers.rs` ([`CustomerStore`]: customers, their data and imports),
//!   `chains.rs` ([`ChainStore`]: chains and plugins), `runs.rs` ([`RunStore`]: runs and
//!   shards), `bills.rs` ([`BillStore`]), `records.rs` ([`RecordStore`]: the admin API's tokens,
//!   run requests and schedules), `ledger.rs` ([`LedgerStore`]: the account ledger's entries,
//!   append-only and idempotent by channel transaction), `profiles.rs` ([`ProfileStore`]: the
//!   customer directory's profile revisions and searches), `statements.rs` ([`StatementStore`]:
//!   channel statements reconciled and kept, banks' column mappings), `subsidy.rs`
//!   ([`SubsidyStore`]: government transfers, the government's share by month, settlement
//!   lists), `notices.rs` ([`NoticeStore`]: payment notices and the periods they were issued
//!   for), `events.rs` ([`EventStore`]: the outbox, its deliveries, fee control's valve
//!   states), `invoices.rs` ([`InvoiceStore`]: e-invoice requests and their answers), and below
//!   them `outbox.rs` (what a change writes for the world outside in its transaction: events,
//!   invoice requests, valve states; the ledger's payments and the nights both write through
//!   it). [`Store`] is all of them (and
//!   `Arc<dyn Store>` is what the runtime holds); callers `use heatbill_runtime::store::prelude::*` to call their methods.
//! - `types.rs`: the errors, [`Backend`] and the import sink, which every other file uses and
//!   which uses none of them (no file of the store imports from one that imports from it).
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
//! - `load_shard` and `load_customers` (hot paths): PostgreSQL runs the eight queries on eight
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

pub mod bills;
pub mod chains;
pub mod companies;
pub mod customers;
pub mod events;
pub mod invoices;
pub mod ledger;
pub mod notices;
mod outbox;
pub mod postgres;
pub mod profiles;
pub mod records;
pub mod runs;
mod sql;
pub mod sqlite;
pub mod statements;
pub mod subsidy;
mod types;

pub use bills::BillStore;
pub use chains::ChainStore;
pub use companies::CompanyStore;
pub use customers::CustomerStore;
pub use events::EventStore;
pub use invoices::InvoiceStore;
pub use ledger::LedgerStore;
pub use notices::NoticeStore;
pub use profiles::ProfileStore;
pub use records::RecordStore;
pub use runs::RunStore;
pub use sql::chain_digest;
pub use statements::StatementStore;
pub use subsidy::SubsidyStore;
pub use types::{Backend, ImportFile, ImportSink, Result, StoreError};

/// The system of record, one trait per concern (see the module docs): [`CompanyStore`],
/// [`CustomerStore`], [`ChainStore`], [`RunStore`], [`BillStore`], [`RecordStore`],
/// [`LedgerStore`], [`ProfileStore`], [`StatementStore`], [`SubsidyStore`], [`NoticeStore`],
/// [`EventStore`], [`InvoiceStore`].
/// Callers bring
/// them into scope with [`prelude`].
#[async_trait]
pub trait Store:
    CompanyStore
    + CustomerStore
    + ChainStore
    + RunStore
    + BillStore
    + RecordStore
    + LedgerStore
    + ProfileStore
    + StatementStore
    + SubsidyStore
    + NoticeStore
    + EventStore
    + InvoiceStore
    + Send
    + Sync
{
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Applies the migrations not applied yet, and (PostgreSQL) creates the bill partitions
    /// of the last month and the next twelve.
    async fn migrate(&self) -> Result<()>;
}

#[async_trait]
impl<E: sql::Engine> Store for E {
    fn backend(&self) -> Backend {
        sql::Engine::backend(self)
    }

    async fn migrate(&self) -> Result<()> {
        sql::Engine::migrate(self).await
    }
}

/// The store's traits, for `use heatbill_runtime::store::prelude::*`: a method of [`Store`] is
/// one of its sub-traits', and a trait's methods need the trait in scope.
pub mod prelude {
    pub use super::{
        BillStore, ChainStore, CompanyStore, CustomerStore, EventStore, InvoiceStore, LedgerStore,
        NoticeStore, ProfileStore, RecordStore, RunStore, StatementStore, Store, SubsidyStore,
    };
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
