//! The SQL layer the two stores share: query text written once, the dialects' spellings, the
//! arguments, the row mappers and the pure helpers. See the store's module docs for why it is
//! built this way and what stays backend-specific.
//!
//! - [`Sql`]: one query's text, in PostgreSQL's spelling with a few markers, rendered once per
//!   dialect on first use and kept (a query is a `static`; see [`q!`]), so no call rewrites text.
//! - [`Arg`]: a bound value, bound by each backend as its driver wants it.
//! - [`Exec`]: runs a query on a pool or a transaction of either backend.
//! - [`SqlRow`]: reads a column of either backend's rows, where the two store a type differently
//!   (SQLite's integers are all 64-bit, decimals are read as text on both).
//! - [`Engine`]: what a backend supplies: its pool and write transactions, and the methods whose
//!   SQL really differs. Every [`Store`](super::Store) method is implemented once, for every
//!   engine, in the file of its trait (`companies.rs`, `runs.rs`, …).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{ColumnIndex, Row};

use super::types::{Backend, ImportFile, ImportSink, Result, StoreError};
use crate::model::*;

/// The end of a shard's range as the load queries bind it: the shard's own end, or, for the
/// last shard, a text above every customer id (ids are at most 64 characters, compared byte by
/// byte: `COLLATE "C"` in PostgreSQL, SQLite's binary collation; no UTF-8 text of 200
/// characters starting with U+10FFFF or below is greater).
///
/// Binding a value rather than `NULL` keeps `customer_id < $3` an index bound. Written
/// `($3 IS NULL OR customer_id < $3)`, it was not one in PostgreSQL's generic plans (which
/// sqlx's prepared statements get after five executions) nor in SQLite's: each shard's load
/// read the index from its first customer to the company's last, 990,000 entries for a shard
/// of 10,000 at the start of a million-customer company (468 ms against 4 ms, explained on the
/// benchmark's database).
pub(crate) fn range_end(end: &Option<String>) -> String {
    match end {
        Some(e) => e.clone(),
        None => "\u{10FFFF}".repeat(201),
    }
}

/// One query's text, written once in PostgreSQL's spelling, rendered for the dialect that runs
/// it the first time it runs there and kept for the life of the process.
///
/// The spelling: parameters `$1`…; the markers `utc_text(COL)` (a timestamp as
/// `YYYY-MM-DDTHH:MM:SSZ`) and `age_s(COL)` (whole seconds since a timestamp), which both
/// dialects expand. For SQLite, `$N` becomes `?N`, the casts `::text` and `::jsonb` go (SQLite's
/// columns are TEXT already), `now()` becomes SQLite's millisecond UTC timestamp, and
/// `::numeric` casts go too (a decimal is bound as text, `$4::text::numeric` in PostgreSQL), and
/// ` FOR UPDATE` goes (SQLite's write transactions hold the one writer lock from BEGIN).
pub(crate) struct Sql {
    text: &'static str,
    postgres: OnceLock<String>,
    sqlite: OnceLock<String>,
}

impl Sql {
    /// A query's text (see the type's docs for its spelling).
    pub(crate) const fn new(text: &'static str) -> Sql {
        Sql {
            text,
            postgres: OnceLock::new(),
            sqlite: OnceLock::new(),
        }
    }

    /// The text as `backend` runs it.
    pub(crate) fn get(&'static self, backend: Backend) -> &'static str {
        let cell = match backend {
            Backend::Postgres => &self.postgres,
            Backend::Sqlite => &self.sqlite,
        };
        cell.get_or_init(|| render(backend, self.text))
    }
}

/// A query of the shared layer: a `static` [`Sql`] of the text, rendered once per dialect.
macro_rules! q {
    ($text:expr) => {{
        static Q: $crate::store::sql::Sql = $crate::store::sql::Sql::new($text);
        &Q
    }};
}
pub(crate) use q;

/// The columns of a run, as [`run_of`] reads them.
macro_rules! run_columns {
    () => {
        "id, company_id, bill_date, attempt, state, chain_version_id, shard_count, shard_size, \
         stamp, report::text AS report"
    };
}
pub(crate) use run_columns;

/// The columns of a bill, as [`bill_row_of`] and `stored_bills` read them: numerics as text.
macro_rules! bill_read {
    () => {
        "company_id, bill_date, customer_id, version, status, run_id, chain_version_id, inputs, \
         total::text AS total, customer_total::text AS customer_total, \
         government_total::text AS government_total, employer_total::text AS employer_total, \
         principal::text AS principal, charged_before::text AS charged_before, \
         paid_before::text AS paid_before, fees_before::text AS fees_before, \
         arrears::text AS arrears, arrears_since, lines, reason, error, \
         due_through::text AS due_through"
    };
}
pub(crate) use bill_read;

/// The columns of a token, as [`token_of`] reads them.
macro_rules! token_columns {
    () => {
        "id, company_id, role, label, utc_text(created_at) AS created_at, \
         utc_text(revoked_at) AS revoked_at"
    };
}
pub(crate) use token_columns;

/// The columns of a chain version, as [`chain_version_of`] reads them.
macro_rules! chain_columns {
    () => {
        "id, effective_from, digest, definition::text AS definition"
    };
}
pub(crate) use chain_columns;

/// The columns `bills` is written with (both backends' bulk writes).
pub(crate) const BILL_COLUMNS: &str = "company_id, bill_date, customer_id, version, status, \
     run_id, chain_version_id, inputs, total, customer_total, government_total, employer_total, \
     principal, charged_before, paid_before, fees_before, arrears, arrears_since, lines, reason, \
     error, due_through";

/// `text` as `backend` runs it (see [`Sql`]).
pub(crate) fn render(backend: Backend, text: &str) -> String {
    let text = expand(text, "utc_text(", |col| match backend {
        Backend::Postgres => {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        }
        Backend::Sqlite => format!("strftime('%Y-%m-%dT%H:%M:%SZ', {col})"),
    });
    let text = expand(&text, "age_s(", |col| match backend {
        Backend::Postgres => format!("EXTRACT(EPOCH FROM now() - {col})::bigint"),
        Backend::Sqlite => {
            format!("CAST((julianday('now') - julianday({col})) * 86400 AS INTEGER)")
        }
    });
    match backend {
        Backend::Postgres => text,
        Backend::Sqlite => text
            .replace('$', "?")
            .replace("::text", "")
            .replace("::jsonb", "")
            .replace("::numeric", "")
            .replace("now()", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
            .replace(" FOR UPDATE", ""),
    }
}

/// Replaces each `marker…)` (the marker ends with its opening parenthesis; the argument has no
/// parentheses) by what `with` makes of the argument.
fn expand(text: &str, marker: &str, with: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let close = after.find(')').expect("a marker's argument is closed");
        out.push_str(&with(&after[..close]));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A value bound to a query's parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    /// A small unsigned number (PostgreSQL: `smallint`; SQLite: INTEGER).
    U16(u16),
    /// An integer.
    I32(i32),
    /// A bigint.
    I64(i64),
    /// A bigint or NULL.
    OptI64(Option<i64>),
    /// A boolean.
    Bool(bool),
    /// A boolean or NULL.
    OptBool(Option<bool>),
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// A date.
    Date(NaiveDate),
    /// A date or NULL.
    OptDate(Option<NaiveDate>),
    /// Bytes.
    Bytes(&'a [u8]),
}

impl From<u16> for Arg<'_> {
    fn from(v: u16) -> Self {
        Arg::U16(v)
    }
}
impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::I32(v)
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI64(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<Option<bool>> for Arg<'_> {
    fn from(v: Option<bool>) -> Self {
        Arg::OptBool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}
impl From<NaiveDate> for Arg<'_> {
    fn from(v: NaiveDate) -> Self {
        Arg::Date(v)
    }
}
impl From<Option<NaiveDate>> for Arg<'_> {
    fn from(v: Option<NaiveDate>) -> Self {
        Arg::OptDate(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}

/// The arguments of a query: `args![a, b]` is `&[Arg::from(a), Arg::from(b)]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::store::sql::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// Binds `args` to a query of a backend, each as that backend's driver takes it (`$small`: the
/// type a [`Arg::U16`] is bound as).
macro_rules! bind_args {
    ($query:expr, $args:expr, $small:ty) => {{
        let mut q = $query;
        for a in $args {
            q = match *a {
                $crate::store::sql::Arg::U16(v) => q.bind(v as $small),
                $crate::store::sql::Arg::I32(v) => q.bind(v),
                $crate::store::sql::Arg::I64(v) => q.bind(v),
                $crate::store::sql::Arg::OptI64(v) => q.bind(v),
                $crate::store::sql::Arg::Bool(v) => q.bind(v),
                $crate::store::sql::Arg::OptBool(v) => q.bind(v),
                $crate::store::sql::Arg::Text(v) => q.bind(v),
                $crate::store::sql::Arg::OptText(v) => q.bind(v),
                $crate::store::sql::Arg::Date(v) => q.bind(v),
                $crate::store::sql::Arg::OptDate(v) => q.bind(v),
                $crate::store::sql::Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

/// Runs queries of the shared layer: a backend's pool, or one of its transactions.
#[async_trait]
pub(crate) trait Exec: Send {
    /// The backend's row.
    type Row: SqlRow;
    /// Every row `q` returns (every statement is stepped to its end, which SQLite's write
    /// transactions need before COMMIT).
    async fn rows(&mut self, q: &'static Sql, args: &[Arg<'_>]) -> Result<Vec<Self::Row>>;
    /// Runs `q`; how many rows it changed.
    async fn exec(&mut self, q: &'static Sql, args: &[Arg<'_>]) -> Result<u64>;
    /// The row `q` returns, if any.
    async fn opt(&mut self, q: &'static Sql, args: &[Arg<'_>]) -> Result<Option<Self::Row>> {
        Ok(self.rows(q, args).await?.pop())
    }
    /// The one row `q` returns.
    async fn one(&mut self, q: &'static Sql, args: &[Arg<'_>]) -> Result<Self::Row> {
        self.opt(q, args)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a query returned no row".into()))
    }
}

/// Implements [`Exec`] for a pool or transaction type of a backend: `|s| EXECUTOR` makes the
/// sqlx executor of `s: &mut Self`; `$small` is the type a [`Arg::U16`] is bound as.
macro_rules! impl_exec {
    ([$($gen:tt)*] $ty:ty, $row:ty, $backend:expr, $small:ty, |$s:ident| $executor:expr) => {
        #[async_trait::async_trait]
        impl<$($gen)*> $crate::store::sql::Exec for $ty {
            type Row = $row;
            async fn rows(
                &mut self,
                q: &'static $crate::store::sql::Sql,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> $crate::store::types::Result<Vec<$row>> {
                let $s = self;
                let query = $crate::store::sql::bind_args!(sqlx::query(q.get($backend)), args, $small);
                Ok(query.fetch_all($executor).await?)
            }
            async fn exec(
                &mut self,
                q: &'static $crate::store::sql::Sql,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> $crate::store::types::Result<u64> {
                let $s = self;
                let query = $crate::store::sql::bind_args!(sqlx::query(q.get($backend)), args, $small);
                Ok(query.execute($executor).await?.rows_affected())
            }
        }
    };
}
pub(crate) use impl_exec;

/// A write transaction of the shared layer.
#[async_trait]
pub(crate) trait Commit: Exec {
    /// Commits it (dropping it rolls it back).
    async fn commit(self) -> Result<()>;
}

/// Both backends' transactions commit alike.
macro_rules! impl_commit {
    ($($db:ty),*) => {$(
        #[async_trait]
        impl Commit for sqlx::Transaction<'_, $db> {
            async fn commit(self) -> Result<()> {
                Ok(sqlx::Transaction::commit(self).await?)
            }
        }
    )*};
}
impl_commit!(sqlx::Postgres, sqlx::Sqlite);

/// A column index both backends' rows take: a position or a name.
pub(crate) trait Col:
    ColumnIndex<PgRow> + ColumnIndex<SqliteRow> + Copy + Send + Sync
{
}
impl Col for usize {}
impl Col for &str {}

/// A column of a backend's row, read as the shared mappers want it. Where the two databases
/// store a type alike the methods are the driver's `try_get`; integers differ (SQLite's are
/// 64-bit), and decimals are read from text on both (PostgreSQL's queries cast them: sqlx
/// decodes a zero `numeric` as `0` whatever its scale, and a stored `0.00` must read back as
/// `0.00`, byte for byte as SQLite gives it).
pub(crate) trait SqlRow: Row + Send + Sync + 'static {
    /// An `integer` (PostgreSQL) or INTEGER (SQLite) as i32.
    fn int<I: Col>(&self, i: I) -> Result<i32>;
    /// A `smallint` (PostgreSQL) or INTEGER (SQLite) as u16.
    fn small<I: Col>(&self, i: I) -> Result<u16>;
    /// A bigint.
    fn big<I: Col>(&self, i: I) -> Result<i64>;
    /// A bigint or NULL.
    fn opt_big<I: Col>(&self, i: I) -> Result<Option<i64>>;
    /// A boolean.
    fn bool<I: Col>(&self, i: I) -> Result<bool>;
    /// Text, borrowed.
    fn str<I: Col>(&self, i: I) -> Result<&str>;
    /// Text or NULL, borrowed.
    fn opt_str<I: Col>(&self, i: I) -> Result<Option<&str>>;
    /// Bytes, borrowed.
    fn bytes<I: Col>(&self, i: I) -> Result<&[u8]>;
    /// A date.
    fn date<I: Col>(&self, i: I) -> Result<NaiveDate>;
    /// A date or NULL.
    fn opt_date<I: Col>(&self, i: I) -> Result<Option<NaiveDate>>;

    /// Text, owned.
    fn string<I: Col>(&self, i: I) -> Result<String> {
        Ok(self.str(i)?.to_owned())
    }
    /// Text or NULL, owned.
    fn opt_string<I: Col>(&self, i: I) -> Result<Option<String>> {
        Ok(self.opt_str(i)?.map(str::to_owned))
    }
    /// Bytes, owned.
    fn byte_vec<I: Col>(&self, i: I) -> Result<Vec<u8>> {
        Ok(self.bytes(i)?.to_vec())
    }
    /// A decimal stored (SQLite) or read (PostgreSQL, `col::text`) as text.
    fn dec<I: Col>(&self, i: I) -> Result<Decimal> {
        parse_dec(self.str(i)?)
    }
    /// A decimal or NULL, as [`dec`](SqlRow::dec).
    fn opt_dec<I: Col>(&self, i: I) -> Result<Option<Decimal>> {
        self.opt_str(i)?.map(parse_dec).transpose()
    }
}

fn parse_dec(s: &str) -> Result<Decimal> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{s:?} is not a decimal: {e}")))
}

/// Implements [`SqlRow`] for a backend's row: `$int` and `$small` are the types its integer and
/// smallint columns decode as.
macro_rules! impl_sql_row {
    ($row:ty, $int:ty, $small:ty) => {
        #[allow(clippy::unnecessary_cast)]
        impl $crate::store::sql::SqlRow for $row {
            fn int<I: $crate::store::sql::Col>(&self, i: I) -> $crate::store::types::Result<i32> {
                Ok(sqlx::Row::try_get::<$int, _>(self, i)? as i32)
            }
            fn small<I: $crate::store::sql::Col>(&self, i: I) -> $crate::store::types::Result<u16> {
                Ok(sqlx::Row::try_get::<$small, _>(self, i)? as u16)
            }
            fn big<I: $crate::store::sql::Col>(&self, i: I) -> $crate::store::types::Result<i64> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn opt_big<I: $crate::store::sql::Col>(
                &self,
                i: I,
            ) -> $crate::store::types::Result<Option<i64>> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn bool<I: $crate::store::sql::Col>(&self, i: I) -> $crate::store::types::Result<bool> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn str<I: $crate::store::sql::Col>(&self, i: I) -> $crate::store::types::Result<&str> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn opt_str<I: $crate::store::sql::Col>(
                &self,
                i: I,
            ) -> $crate::store::types::Result<Option<&str>> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn bytes<I: $crate::store::sql::Col>(
                &self,
                i: I,
            ) -> $crate::store::types::Result<&[u8]> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn date<I: $crate::store::sql::Col>(
                &self,
                i: I,
            ) -> $crate::store::types::Result<chrono::NaiveDate> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn opt_date<I: $crate::store::sql::Col>(
                &self,
                i: I,
            ) -> $crate::store::types::Result<Option<chrono::NaiveDate>> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
        }
    };
}
pub(crate) use impl_sql_row;

/// What a backend supplies to the shared store: its connections, and the methods whose SQL
/// really differs (see the store's module docs for which and why). Every type that implements
/// it is a [`Store`](super::Store).
#[async_trait]
pub(crate) trait Engine: Send + Sync + 'static {
    /// The backend's pool, as the shared layer runs queries on it.
    type Db: Exec<Row = Self::Row>;
    /// A write transaction.
    type Tx: Commit<Row = Self::Row>;
    /// The backend's row.
    type Row: SqlRow;

    /// Which database this is.
    fn backend(&self) -> Backend;
    /// The pool.
    fn db(&self) -> Self::Db;
    /// A write transaction (SQLite: `BEGIN IMMEDIATE`, taking the one writer lock up front).
    async fn begin(&self) -> Result<Self::Tx>;

    /// See [`Store::migrate`](super::Store::migrate).
    async fn migrate(&self) -> Result<()>;
    /// Inserts or updates a company's row (not its seasons) inside `tx`, bumping its data
    /// version when something changed; its id.
    async fn upsert_company(&self, tx: &mut Self::Tx, spec: &CompanySpec) -> Result<i32>;
    /// Records a new run's shards inside `tx`.
    async fn insert_shards(
        &self,
        tx: &mut Self::Tx,
        run_id: i64,
        shards: &[ShardRange],
    ) -> Result<()>;
    /// See [`CustomerStore::begin_import`](super::CustomerStore::begin_import).
    async fn begin_import(
        &self,
        company: &Company,
        kind: ImportKind,
    ) -> Result<Box<dyn ImportSink>>;
    /// See [`RunStore::ensure_partitions`](super::RunStore::ensure_partitions).
    async fn ensure_partitions(&self, from: NaiveDate, to: NaiveDate) -> Result<u32>;
    /// See [`RunStore::claim_shard`](super::RunStore::claim_shard).
    async fn claim_shard(
        &self,
        run_id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>>;
    /// See [`RunStore::renew_lease`](super::RunStore::renew_lease).
    async fn renew_lease(
        &self,
        run_id: i64,
        shard_no: i32,
        token: i64,
        lease: Duration,
    ) -> Result<bool>;
    /// See [`RunStore::end_stalled_writers`](super::RunStore::end_stalled_writers).
    async fn end_stalled_writers(
        &self,
        run_id: i64,
        lapsed_for: Duration,
    ) -> Result<Vec<StalledShard>>;
    /// See [`RunStore::load_shard`](super::RunStore::load_shard).
    async fn load_shard(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        with_customers: bool,
    ) -> Result<ShardData>;
    /// See [`CustomerStore::load_customers`](super::CustomerStore::load_customers).
    async fn load_customers(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        ids: Option<&[String]>,
    ) -> Result<Vec<CustomerState>>;
    /// See [`RunStore::write_shard`](super::RunStore::write_shard).
    async fn write_shard(&self, write: &ShardWrite) -> Result<()>;
    /// See [`BillStore::arrears`](super::BillStore::arrears).
    async fn arrears(&self, company_id: i32, date: NaiveDate) -> Result<Vec<(String, Decimal)>>;
    /// See [`BillStore::bill_bytes`](super::BillStore::bill_bytes).
    async fn bill_bytes(&self, company_id: i32, date: NaiveDate) -> Result<Option<u64>>;
}

// The row mappers, one for both backends.

/// Refuses a customer the company does not have (404, saying which): what a write about one
/// customer checks first, in its own transaction.
pub(crate) async fn known_customer<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
) -> Result<()> {
    match x
        .opt(
            q!("SELECT 1 FROM customers WHERE company_id = $1 AND customer_id = $2"),
            args![company_id, customer_id],
        )
        .await?
    {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!(
            "no customer {} in this company",
            shown(customer_id)
        ))),
    }
}

/// A customer version from the 12 columns of `load_customers` and `load_customer_versions` (by
/// position: a shard is 10,000 rows, and looking columns up by name was a measurable part of
/// loading it).
pub(crate) fn customer_of<R: SqlRow>(r: &R) -> Result<CustomerState> {
    let class = r.str(2)?;
    let status = r.str(4)?;
    Ok(CustomerState {
        customer_id: r.string(0)?,
        valid_from: r.date(1)?,
        class: parse_class(class).ok_or_else(|| StoreError::Corrupt(format!("class {class:?}")))?,
        special_class: r.opt_string(3)?,
        status: parse_status(status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        metered: r.bool(5)?,
        low_income: r.bool(6)?,
        building_area: r.dec(7)?,
        usable_area: r.opt_dec(8)?,
        ceiling_height: r.opt_dec(9)?,
        tags: parse_tags(r.str(10)?),
        attributes: parse_attributes(r.str(11)?),
    })
}

/// A customer's id and data digest (`customer_id, digest`).
pub(crate) fn customer_key_of<R: SqlRow>(r: &R) -> Result<CustomerKey> {
    Ok(CustomerKey {
        customer_id: r.string(0)?,
        digest: r
            .bytes(1)?
            .try_into()
            .map_err(|_| StoreError::Corrupt("a customer digest is not 8 bytes".into()))?,
    })
}

/// Every row mapped by `of`.
pub(crate) fn all<R, T>(rows: &[R], of: fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(of).collect()
}

/// A customer and a decimal (`customer_id, value`): readings and temperatures.
pub(crate) fn pairs_of<R: SqlRow>(rows: &[R]) -> Result<Vec<(String, Decimal)>> {
    rows.iter().map(|r| Ok((r.string(0)?, r.dec(1)?))).collect()
}

/// The balance carried from the day before (`customer_id, charged_before, principal,
/// fees_before, customer_total, arrears, arrears_since, due_through`).
pub(crate) fn carried_of<R: SqlRow>(r: &R) -> Result<CarriedBalance> {
    let principal = r.dec(2)?;
    Ok(CarriedBalance {
        customer_id: r.string(0)?,
        charged_before: r.dec(1)?,
        principal,
        fees_before: r.dec(3)?,
        fees: r.dec(4)? - principal,
        arrears: r.dec(5)?,
        arrears_since: r.opt_date(6)?,
        due_through: r.opt_dec(7)?,
    })
}

/// What the notices due on a date ask of each customer (`customer_id, amount` rows, by
/// customer), summed per customer.
pub(crate) fn notices_due_of<R: SqlRow>(rows: &[R]) -> Result<Vec<(String, Decimal)>> {
    let mut out: Vec<(String, Decimal)> = Vec::new();
    for r in rows {
        let (id, amount) = (r.str(0)?, r.dec(1)?);
        match out.last_mut() {
            Some(last) if last.0 == id => last.1 += amount,
            _ => out.push((id.to_string(), amount)),
        }
    }
    Ok(out)
}

/// A payment (`customer_id, paid_on, amount`).
pub(crate) fn payment_of<R: SqlRow>(r: &R) -> Result<Payment> {
    Ok(Payment {
        customer_id: r.string(0)?,
        paid_on: r.date(1)?,
        amount: r.dec(2)?,
    })
}

/// An opening balance (`customer_id, as_of, arrears, arrears_since`).
pub(crate) fn opening_of<R: SqlRow>(r: &R) -> Result<OpeningBalance> {
    Ok(OpeningBalance {
        customer_id: r.string(0)?,
        as_of: r.date(1)?,
        arrears: r.dec(2)?,
        arrears_since: r.opt_date(3)?,
    })
}

/// A bill a shard's run compares against (`customer_id, version, status, inputs, error`).
pub(crate) fn existing_of<R: SqlRow>(r: &R) -> Result<ExistingBill> {
    let status = r.str(2)?;
    Ok(ExistingBill {
        customer_id: r.string(0)?,
        version: r.int(1)?,
        status: BillStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("bill status {status:?}")))?,
        inputs: r.byte_vec(3)?,
        error: r.opt_string(4)?,
    })
}

/// The seasons of a company (`starts, ends`).
pub(crate) fn seasons_of<R: SqlRow>(rows: &[R]) -> Result<Vec<Season>> {
    rows.iter()
        .map(|r| {
            Ok(Season {
                start: r.date("starts")?,
                end: r.date("ends")?,
            })
        })
        .collect()
}

/// A company from its row and its seasons.
pub(crate) fn company_of<R: SqlRow>(r: &R, seasons: Vec<Season>) -> Result<Company> {
    Ok(Company {
        id: r.int("id")?,
        slug: r.string("slug")?,
        name: r.string("name")?,
        time_zone: r.string("time_zone")?,
        policies: serde_json::from_str(r.str("policies")?)
            .map_err(|e| StoreError::Corrupt(format!("company policies: {e}")))?,
        data_version: r.big("data_version")?,
        customers_version: r.big("customers_version")?,
        seasons,
    })
}

/// A chain version ([`chain_columns!`]).
pub(crate) fn chain_version_of<R: SqlRow>(r: &R) -> Result<ChainVersion> {
    Ok(ChainVersion {
        id: r.int("id")?,
        effective_from: r.date("effective_from")?,
        digest: r.string("digest")?,
        entries: serde_json::from_str(r.str("definition")?)
            .map_err(|e| StoreError::Corrupt(format!("chain definition: {e}")))?,
    })
}

/// A run ([`run_columns!`]).
pub(crate) fn run_of<R: SqlRow>(r: &R) -> Result<RunRecord> {
    Ok(RunRecord {
        id: r.big("id")?,
        company_id: r.int("company_id")?,
        bill_date: r.date("bill_date")?,
        attempt: r.int("attempt")?,
        state: r.string("state")?,
        chain_version_id: r.int("chain_version_id")?,
        shard_count: r.int("shard_count")?,
        shard_size: r.int("shard_size")?,
        stamp: r.string("stamp")?,
        report: r
            .opt_str("report")?
            .and_then(|s| serde_json::from_str(s).ok()),
    })
}

/// A bill's row ([`bill_read!`]).
pub(crate) fn bill_row_of<R: SqlRow>(r: &R) -> Result<BillRow> {
    let status = r.str("status")?;
    Ok(BillRow {
        customer_id: r.string("customer_id")?,
        version: r.int("version")?,
        status: BillStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("bill status {status:?}")))?,
        inputs: r.byte_vec("inputs")?,
        total: r.dec("total")?,
        customer_total: r.dec("customer_total")?,
        government_total: r.dec("government_total")?,
        employer_total: r.dec("employer_total")?,
        principal: r.dec("principal")?,
        charged_before: r.dec("charged_before")?,
        paid_before: r.dec("paid_before")?,
        fees_before: r.dec("fees_before")?,
        arrears: r.dec("arrears")?,
        arrears_since: r.opt_date("arrears_since")?,
        due_through: r.opt_dec("due_through")?,
        lines: r.string("lines")?,
        reason: r.opt_string("reason")?,
        error: r.opt_string("error")?,
    })
}

/// A token ([`token_columns!`]).
pub(crate) fn token_of<R: SqlRow>(r: &R) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.big("id")?,
        company_id: r.int("company_id")?,
        role: r.string("role")?,
        label: r.string("label")?,
        created_at: r.string("created_at")?,
        revoked_at: r.opt_string("revoked_at")?,
    })
}

/// A shard of a run (`shard_no, first_customer, end_customer`).
pub(crate) fn shard_of<R: SqlRow>(r: &R) -> Result<ShardRange> {
    Ok(ShardRange {
        shard_no: r.int(0)?,
        first: r.string(1)?,
        end: r.opt_string(2)?,
    })
}

// The pure helpers.

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

/// Why a shard's write found its claim gone, from the shard's (state, token) as found.
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

/// The error of a shard's write that found fewer of the bills it revises than it read.
pub(crate) fn revised_changed(w: &ShardWrite, revised: usize, moved: u64) -> StoreError {
    StoreError::Conflict(format!(
        "shard {} of run {}: {} of the {} bills it revises changed since it read them; nothing \
         was written",
        w.shard_no,
        w.run_id,
        revised as u64 - moved,
        revised
    ))
}

/// Line kinds announced now against those recorded: the same, or a `Conflict`.
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

/// A shard's totals as stored (JSON, decimals as strings).
pub(crate) fn totals_json(totals: &BTreeMap<String, Decimal>) -> String {
    let map: BTreeMap<&str, String> = totals
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    serde_json::to_string(&map).expect("JSON serializes")
}

/// Adds a shard's stored totals into a run's.
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

/// Bumps a company's data version (what makes the next run of a date compute again).
pub(crate) async fn bump_data_version<X: Exec>(x: &mut X, company_id: i32) -> Result<()> {
    x.exec(
        q!(
            "UPDATE companies SET data_version = data_version + 1, updated_at = now() WHERE id = $1"
        ),
        args![company_id],
    )
    .await?;
    Ok(())
}

/// Marks a company's billed dates from `from` on stale after a correction in this transaction
/// (call it after [`bump_data_version`]): `companies.stale_from` becomes the first completed
/// date on or after `from` if that is earlier than the mark, and `stale_version` the company's
/// data version, so a run prepared before the correction does not clear it. A correction that
/// reaches no billed date marks nothing.
pub(crate) async fn mark_stale<X: Exec>(x: &mut X, company_id: i32, from: NaiveDate) -> Result<()> {
    let first = x
        .one(
            q!("SELECT min(bill_date) FROM runs
                WHERE company_id = $1 AND state = 'completed' AND bill_date >= $2"),
            args![company_id, from],
        )
        .await?
        .opt_date(0)?;
    if let Some(first) = first {
        x.exec(
            q!("UPDATE companies SET
                    stale_from = CASE WHEN stale_from IS NULL OR stale_from > $2 THEN $2
                                      ELSE stale_from END,
                    stale_version = data_version
                WHERE id = $1"),
            args![company_id, first],
        )
        .await?;
    }
    Ok(())
}

/// The first date an import's staged rows reach (`None`: no rows): a customer's version from
/// its `valid_from`, a reading or temperature its day, a payment the day after it, an opening
/// balance its `as_of`.
async fn import_reaches<X: Exec>(x: &mut X, kind: ImportKind) -> Result<Option<NaiveDate>> {
    let q = match kind {
        ImportKind::Customers => q!("SELECT min(valid_from) FROM import_stage"),
        ImportKind::Readings | ImportKind::Temperatures => {
            q!("SELECT min(day) FROM import_stage")
        }
        ImportKind::Payments => q!("SELECT min(paid_on) FROM import_stage"),
        ImportKind::Balances => q!("SELECT min(as_of) FROM import_stage"),
        // Bills do not depend on the directory.
        ImportKind::Profiles => return Ok(None),
    };
    let first = x.one(q, args![]).await?.opt_date(0)?;
    Ok(match kind {
        ImportKind::Payments => first.and_then(|d| d.succ_opt()),
        _ => first,
    })
}

/// The staged rows that repeat an earlier row's key (`row_no, first`).
macro_rules! dup_rows {
    ($keys:literal) => {
        concat!(
            "SELECT row_no, first FROM (
                 SELECT row_no, min(row_no) OVER (PARTITION BY ",
            $keys,
            ") AS first FROM import_stage
             ) s WHERE row_no <> first ORDER BY row_no LIMIT $1"
        )
    };
}

/// Row errors found by looking at an import's staged rows (`import_stage`) as a set: repeated
/// keys, unknown customers, daily and hourly readings mixed. At most `max`, by row.
pub(crate) async fn check_import<X: Exec>(
    x: &mut X,
    kind: ImportKind,
    company_id: i32,
    max: usize,
) -> Result<Vec<RowError>> {
    let (dups, key_names, needs_customer) = match kind {
        ImportKind::Customers => (
            q!(dup_rows!("customer_id, valid_from")),
            "customer and valid_from",
            false,
        ),
        ImportKind::Readings => (
            q!(dup_rows!("customer_id, day, hour")),
            "customer, date and hour",
            true,
        ),
        ImportKind::Temperatures => (q!(dup_rows!("customer_id, day")), "customer and date", true),
        ImportKind::Payments => (q!(dup_rows!("payment_id")), "payment_id", true),
        ImportKind::Balances => (q!(dup_rows!("customer_id")), "customer", true),
        ImportKind::Profiles => (
            q!(dup_rows!("customer_id, valid_from")),
            "customer and valid_from",
            true,
        ),
    };
    let mut errors = Vec::new();
    for r in x.rows(dups, args![max as i64]).await? {
        let first = r.big(1)?;
        errors.push(RowError {
            row: r.big(0)? as u64,
            column: String::new(),
            value: String::new(),
            problem: format!(
                "the same {key_names} as row {first}: a file gives each once; remove one of them"
            ),
        });
    }
    if needs_customer {
        let unknown = q!("SELECT s.row_no, s.customer_id FROM import_stage s
             WHERE NOT EXISTS (SELECT 1 FROM customers c
                               WHERE c.company_id = $1 AND c.customer_id = s.customer_id)
             ORDER BY s.row_no LIMIT $2");
        for r in x.rows(unknown, args![company_id, max as i64]).await? {
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "customer_id".into(),
                value: shown(r.str(1)?),
                problem: "no such customer in this company: import the customer first".into(),
            });
        }
    }
    if kind == ImportKind::Payments {
        // The ledger is append-only: a payment id already imported with other values is a
        // correction, which is a reversal and a new payment, never an edit.
        let changed = q!(
            "SELECT s.row_no, e.id, e.customer_id, e.on_date, e.amount::text
             FROM import_stage s JOIN account_entries e
               ON e.company_id = $1 AND e.channel = 'import' AND e.channel_txn = s.payment_id
             WHERE e.customer_id <> s.customer_id OR e.on_date <> s.paid_on
                OR e.amount::text <> s.amount::text
             ORDER BY s.row_no LIMIT $2"
        );
        for r in x.rows(changed, args![company_id, max as i64]).await? {
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "payment_id".into(),
                value: String::new(),
                problem: format!(
                    "this payment id is recorded already, as entry {} (customer {}, {}, {}), \
                     and a payment is never changed: reverse entry {} and import the right \
                     payment under a new id",
                    r.big(1)?,
                    shown(r.str(2)?),
                    r.date(3)?,
                    r.str(4)?,
                    r.big(1)?
                ),
            });
        }
        // An opening balance holds everything before its date: a payment dated before it
        // would never count, so it is refused rather than silently ignored.
        let early = q!(
            "SELECT s.row_no, o.as_of FROM import_stage s JOIN opening_balances o
               ON o.company_id = $1 AND o.customer_id = s.customer_id
             WHERE s.paid_on < o.as_of ORDER BY s.row_no LIMIT $2"
        );
        for r in x.rows(early, args![company_id, max as i64]).await? {
            let as_of = r.date(1)?;
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "paid_on".into(),
                value: String::new(),
                problem: format!(
                    "dated before the customer's opening balance (as of {as_of}), which holds \
                     everything owed and paid before it: date the payment on or after \
                     {as_of}, or correct the opening balance"
                ),
            });
        }
    }
    if kind == ImportKind::Balances {
        let early = q!("SELECT s.row_no, min(e.on_date)::text FROM import_stage s
               JOIN account_entries e ON e.company_id = $1 AND e.customer_id = s.customer_id
             WHERE e.on_date < s.as_of GROUP BY s.row_no ORDER BY s.row_no LIMIT $2");
        for r in x.rows(early, args![company_id, max as i64]).await? {
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "as_of".into(),
                value: String::new(),
                problem: format!(
                    "the customer's ledger has entries dated before this opening balance \
                     (the first on {}), which would no longer count: date the opening balance \
                     on or before it",
                    r.str(1)?
                ),
            });
        }
    }
    if kind == ImportKind::Profiles {
        // An account number names one customer: within the file, and against the other
        // customers' newest profiles.
        let shared = q!("SELECT row_no, first FROM (
                 SELECT row_no, min(row_no) OVER (PARTITION BY account_no) AS first,
                        min(customer_id) OVER (PARTITION BY account_no) AS lo,
                        max(customer_id) OVER (PARTITION BY account_no) AS hi
                 FROM import_stage WHERE account_no IS NOT NULL
             ) s WHERE lo <> hi AND row_no <> first ORDER BY row_no LIMIT $1");
        for r in x.rows(shared, args![max as i64]).await? {
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "account_no".into(),
                value: String::new(),
                problem: format!(
                    "the same account number as row {}, for another customer: an account \
                     number names one customer",
                    r.big(1)?
                ),
            });
        }
        let held = q!(
            "SELECT s.row_no, p.customer_id, p.account_no FROM import_stage s
               JOIN customer_profiles p ON p.company_id = $1 AND p.account_no = s.account_no
                                       AND p.customer_id <> s.customer_id
             WHERE NOT EXISTS (SELECT 1 FROM customer_profiles n
                               WHERE n.company_id = p.company_id
                                 AND n.customer_id = p.customer_id
                                 AND (n.valid_from > p.valid_from
                                      OR (n.valid_from = p.valid_from AND n.id > p.id)))
             ORDER BY s.row_no LIMIT $2"
        );
        for r in x.rows(held, args![company_id, max as i64]).await? {
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "account_no".into(),
                value: shown(r.str(2)?),
                problem: format!(
                    "belongs to customer {}: an account number names one customer; give that \
                     customer another number first (an earlier file), or check the number",
                    shown(r.str(1)?)
                ),
            });
        }
    }
    if kind == ImportKind::Readings {
        let mixed = q!("SELECT s.row_no FROM import_stage s
             WHERE s.hour IS NULL AND EXISTS (
                 SELECT 1 FROM import_stage t WHERE t.customer_id = s.customer_id
                   AND t.day = s.day AND t.hour IS NOT NULL)
             ORDER BY s.row_no LIMIT $1");
        for r in x.rows(mixed, args![max as i64]).await? {
            errors.push(RowError {
                row: r.big(0)? as u64,
                column: "time".into(),
                value: String::new(),
                problem: "a daily reading for a customer and date that also has hourly \
                          readings in this file: give either the day's total or its hours"
                    .into(),
            });
        }
    }
    errors.sort_by_key(|e| e.row);
    errors.truncate(max);
    Ok(errors)
}

/// Merges staged profiles (both backends): a row becomes a new revision unless the latest
/// revision of its customer and `valid_from` already says exactly the same; returns (distinct
/// records, already stored, inserted) as [`record_import`] takes them. A row without a reason
/// takes `default_reason` (the file's name).
pub(crate) async fn merge_profiles<X: Exec>(
    x: &mut X,
    company_id: i32,
    default_reason: &str,
) -> Result<(u64, u64, u64)> {
    let distinct = x
        .one(q!("SELECT count(*) FROM import_stage"), args![])
        .await?
        .big(0)?;
    let existing = x
        .one(
            q!("SELECT count(*) FROM import_stage s WHERE EXISTS (
                    SELECT 1 FROM customer_profiles p
                    WHERE p.company_id = $1 AND p.customer_id = s.customer_id
                      AND p.valid_from = s.valid_from)"),
            args![company_id],
        )
        .await?
        .big(0)?;
    let inserted = x
        .exec(
            q!(
                "INSERT INTO customer_profiles (company_id, customer_id, valid_from, account_no,
                    name, phone, community, building, unit, room, phone_rev, address_key, reason,
                    recorded_by, source)
                SELECT $1, s.customer_id, s.valid_from, s.account_no, s.name, s.phone,
                    s.community, s.building, s.unit, s.room, s.phone_rev, s.address_key,
                    coalesce(s.reason, $2), 'import', 'import'
                FROM import_stage s
                WHERE NOT EXISTS (
                    SELECT 1 FROM customer_profiles p
                    WHERE p.company_id = $1 AND p.customer_id = s.customer_id
                      AND p.valid_from = s.valid_from
                      AND p.id = (SELECT max(m.id) FROM customer_profiles m
                                  WHERE m.company_id = $1 AND m.customer_id = s.customer_id
                                    AND m.valid_from = s.valid_from)
                      AND p.account_no IS NOT DISTINCT FROM s.account_no
                      AND p.name IS NOT DISTINCT FROM s.name
                      AND p.phone IS NOT DISTINCT FROM s.phone
                      AND p.community IS NOT DISTINCT FROM s.community
                      AND p.building IS NOT DISTINCT FROM s.building
                      AND p.unit IS NOT DISTINCT FROM s.unit
                      AND p.room IS NOT DISTINCT FROM s.room)
                ORDER BY s.row_no"
            ),
            args![company_id, default_reason],
        )
        .await?;
    Ok((distinct as u64, existing as u64, inserted))
}

/// After a merge of (distinct records, already stored, inserted or changed): the counts, the
/// company's versions bumped when something changed, and the import recorded.
pub(crate) async fn record_import<X: Exec>(
    x: &mut X,
    company_id: i32,
    kind: ImportKind,
    file: &ImportFile,
    (distinct, existing, affected): (u64, u64, u64),
) -> Result<ImportCounts> {
    let inserted = distinct.saturating_sub(existing);
    let updated = affected.saturating_sub(inserted);
    let counts = ImportCounts {
        rows: file.rows,
        inserted,
        updated,
        unchanged: distinct.saturating_sub(inserted + updated),
    };
    // The directory is not what bills read: a profile changes neither the data version the
    // run's caches key on nor which billed days are stale.
    if affected > 0 && kind != ImportKind::Profiles {
        bump_data_version(x, company_id).await?;
        if let Some(from) = import_reaches(x, kind).await? {
            mark_stale(x, company_id, from).await?;
        }
        if kind == ImportKind::Customers {
            x.exec(
                q!("UPDATE companies SET customers_version = customers_version + 1 WHERE id = $1"),
                args![company_id],
            )
            .await?;
        }
    }
    x.exec(
        q!(
            "INSERT INTO imports (company_id, kind, file_name, sha256, rows, inserted, updated,
                 unchanged) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        args![
            company_id,
            kind.as_str(),
            &file.name,
            &file.sha256,
            file.rows as i64,
            counts.inserted as i64,
            counts.updated as i64,
            counts.unchanged as i64
        ],
    )
    .await?;
    Ok(counts)
}

/// Lines of a stored bill, with their kinds resolved.
pub(crate) fn resolve_lines(lines_json: &str, kinds: &[LineKindRecord]) -> Result<Vec<StoredLine>> {
    let raw: Vec<(u16, u16, String, String, String, String)> = serde_json::from_str(lines_json)
        .map_err(|e| StoreError::Corrupt(format!("bill lines {lines_json:?}: {e}")))?;
    raw.into_iter()
        .map(|(entry, kind, q, p, a, payer)| {
            let k = kinds
                .iter()
                .find(|k| k.entry == entry && k.kind == kind)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("bill line names unknown kind {entry}.{kind}"))
                })?;
            let dec = |s: &str| {
                s.parse::<rust_decimal::Decimal>()
                    .map_err(|e| StoreError::Corrupt(format!("bill line decimal {s:?}: {e}")))
            };
            Ok(StoredLine {
                code: k.code.clone(),
                description: k.description.clone(),
                category: k.category.clone(),
                unit: k.unit.clone(),
                plugin: k.plugin.clone(),
                plugin_version: k.plugin_version.clone(),
                quantity: dec(&q)?,
                unit_price: dec(&p)?,
                amount: dec(&a)?,
                payer: match payer.as_str() {
                    "c" => "customer",
                    "g" => "government",
                    _ => "employer",
                }
                .to_string(),
            })
        })
        .collect()
}

/// The SHA-256 of a chain definition: what makes two definitions the same.
pub fn chain_digest(entries: &[ChainEntryDef]) -> String {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::to_string(entries).expect("chain definitions serialize");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}
