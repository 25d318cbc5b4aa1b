//! The store's bills: the current rows of a date, their history, and the pages listings, exports and the audit read.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::chains::ChainStore;
use super::sql::{Arg, Engine, Exec, SqlRow, args, bill_read, bill_row_of, q, resolve_lines};
use super::types::Result;
use crate::model::*;

/// Bills: the current rows of a date, their history, and the reads of listings, exports and the audit.
#[async_trait]
pub trait BillStore: Send + Sync {
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
}

/// How many dates one query of [`BillStore::customer_bills`] names (the query has that many
/// parameters for them).
const DATES_PER_QUERY: usize = 32;

#[async_trait]
impl<E: Engine> BillStore for E {
    async fn bills(&self, company_id: i32, date: NaiveDate) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2 ORDER BY customer_id"
                )),
                args![company_id, date],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn bill(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2 AND customer_id = $3"
                )),
                args![company_id, date, customer_id],
            )
            .await?;
        Ok(stored_bills(self, rows).await?.pop())
    }

    async fn bill_history(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bill_history
                     WHERE company_id = $1 AND bill_date = $2 AND customer_id = $3
                     ORDER BY version"
                )),
                args![company_id, date, customer_id],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn arrears(&self, company_id: i32, date: NaiveDate) -> Result<Vec<(String, Decimal)>> {
        Engine::arrears(self, company_id, date).await
    }

    async fn bill_bytes(&self, company_id: i32, date: NaiveDate) -> Result<Option<u64>> {
        Engine::bill_bytes(self, company_id, date).await
    }

    async fn bills_page(
        &self,
        company_id: i32,
        date: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2
                       AND ($3::text IS NULL OR customer_id > $3)
                     ORDER BY customer_id LIMIT $4"
                )),
                args![company_id, date, after, limit as i64],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn bills_in(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<StoredBill>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    bill_read!(),
                    " FROM bills WHERE company_id = $1 AND bill_date = $2
                       AND customer_id >= $3 AND ($4::text IS NULL OR customer_id < $4)
                     ORDER BY customer_id"
                )),
                args![company_id, date, &range.first, &range.end],
            )
            .await?;
        stored_bills(self, rows).await
    }

    async fn history_summary(
        &self,
        company_id: i32,
        date: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<HistorySummary>> {
        self.db()
            .rows(
                q!(
                    "SELECT customer_id, count(*) AS n, min(version) AS lo, max(version) AS hi,
                           sum(CASE WHEN version > 1 AND reason IS NULL THEN 1 ELSE 0 END)
                               AS unexplained
                    FROM bill_history WHERE company_id = $1 AND bill_date = $2
                      AND customer_id >= $3 AND ($4::text IS NULL OR customer_id < $4)
                    GROUP BY customer_id ORDER BY customer_id"
                ),
                args![company_id, date, &range.first, &range.end],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(HistorySummary {
                    customer_id: r.string("customer_id")?,
                    versions: r.big("n")?,
                    lowest: r.int("lo")?,
                    highest: r.int("hi")?,
                    unexplained: r.big("unexplained")?,
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
        // The key is (company, date, customer): a range of dates with one customer is a scan of
        // every customer billed on those dates (31 M index entries for a month of a million
        // customers), in both databases. Dates named one by one are point lookups, so the
        // dates go `DATES_PER_QUERY` at a time, the last group padded with its last date.
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        let mut rows = Vec::new();
        for group in days.chunks(DATES_PER_QUERY) {
            let mut a = vec![Arg::from(company_id), Arg::from(customer_id)];
            a.extend((0..DATES_PER_QUERY).map(|i| Arg::from(group[i.min(group.len() - 1)])));
            rows.extend(
                self.db()
                    .rows(
                        q!(concat!(
                            "SELECT ",
                            bill_read!(),
                            " FROM bills WHERE company_id = $1 AND customer_id = $2
                               AND bill_date IN ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                                 $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
                                 $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)
                             ORDER BY bill_date"
                        )),
                        &a[..],
                    )
                    .await?,
            );
        }
        stored_bills(self, rows).await
    }
}

/// Stored bills from rows of [`bill_read!`], their lines resolved against their chain
/// versions' line kinds.
async fn stored_bills<E: Engine>(store: &E, rows: Vec<E::Row>) -> Result<Vec<StoredBill>> {
    let mut kinds: BTreeMap<i32, Vec<LineKindRecord>> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let chain_version_id = r.int("chain_version_id")?;
        if let std::collections::btree_map::Entry::Vacant(e) = kinds.entry(chain_version_id) {
            e.insert(store.line_kinds(chain_version_id).await?);
        }
        let row = bill_row_of(r)?;
        let lines = resolve_lines(&row.lines, &kinds[&chain_version_id])?;
        out.push(StoredBill {
            customer_id: row.customer_id.clone(),
            bill_date: r.date("bill_date")?,
            run_id: r.big("run_id")?,
            chain_version_id,
            lines,
            row,
        });
    }
    Ok(out)
}
