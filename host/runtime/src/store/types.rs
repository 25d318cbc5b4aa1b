//! What every part of the store speaks: its errors, which backend, and the import sink. A leaf:
//! it uses nothing of the store, so the store's files import from here and never from one
//! another in a circle.

use async_trait::async_trait;

use crate::model::*;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is stored (and changed nothing).
    #[error("{0}")]
    Conflict(String),
    /// A shard's claim no longer holds: another worker claimed it since (its fencing token is
    /// newer) or finished it. Nothing was written.
    #[error(
        "shard {shard_no} of run {run_id} is no longer this writer's to write ({why}); nothing was written"
    )]
    ClaimLost {
        /// The run.
        run_id: i64,
        /// The shard.
        shard_no: i32,
        /// What the database found.
        why: String,
        /// The shard is done, with the token the writer holds: the writer's own earlier
        /// commit (a retry after a connection lost during COMMIT finds this).
        done_with_this_token: bool,
    },
    /// A run cannot go on: shards stay locked past their leases by writers that stalled and
    /// could not be ended (`run.stall_s`). Nothing was lost; starting the run again resumes it.
    #[error("{0}")]
    Stalled(String),
    /// The database URL is not one heatbill can use.
    #[error("{0}")]
    Config(String),
    /// The database failed or was unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back (a corrupted or hand-edited row).
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

/// A store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// Where an import's rows go: one transaction, committed by [`finish`](ImportSink::finish) only
/// if every row is good; dropped (rolled back) otherwise.
#[async_trait]
pub trait ImportSink: Send {
    /// Stages a chunk of parsed rows.
    async fn push(&mut self, rows: ImportRows) -> Result<()>;
    /// Checks the staged rows as a set (unknown customers, duplicate keys) and, if there are no
    /// row errors (`parse_errors` counts those found while parsing), merges them and commits.
    /// Returns the counts, or the row errors found here (nothing is then changed).
    async fn finish(
        self: Box<Self>,
        file: &ImportFile,
        parse_errors: usize,
        max_errors: usize,
    ) -> Result<std::result::Result<ImportCounts, Vec<RowError>>>;
}

/// The file an import came from (recorded with the import).
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// Its name.
    pub name: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Data rows.
    pub rows: u64,
}
