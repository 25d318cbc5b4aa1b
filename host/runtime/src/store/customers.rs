//! The store's customers and their data: imports, and the versions of customers a run reads.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::sql::{Engine, Exec, args, customer_of, q};
use super::types::{ImportSink, Result};
use crate::model::*;

/// The customer-id range condition of a shard, on parameters $2 (first) and $3 (end or null).
macro_rules! range {
    () => {
        "customer_id >= $2 AND ($3::text IS NULL OR customer_id < $3)"
    };
}

/// Customers and their data: imports, and customers' versions as a run reads them.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Starts an import of one file's rows of `kind` into `company`.
    async fn begin_import(
        &self,
        company: &Company,
        kind: ImportKind,
    ) -> Result<Box<dyn ImportSink>>;

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

    /// Whether the company has the customer (a version of any date): what tells an unknown
    /// customer (404) from one with nothing in a range (an empty list).
    async fn has_customer(&self, company_id: i32, customer_id: &str) -> Result<bool>;
}

#[async_trait]
impl<E: Engine> CustomerStore for E {
    async fn begin_import(
        &self,
        company: &Company,
        kind: ImportKind,
    ) -> Result<Box<dyn ImportSink>> {
        Engine::begin_import(self, company, kind).await
    }

    async fn load_customer_versions(
        &self,
        company_id: i32,
        shard: &ShardRange,
    ) -> Result<Vec<CustomerState>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT customer_id, valid_from, class, special_class, status, metered,
                            low_income, building_area::text, usable_area::text,
                            ceiling_height::text, tags, attributes
                     FROM customer_versions WHERE company_id = $1 AND ",
                    range!(),
                    " ORDER BY customer_id, valid_from"
                )),
                args![company_id, &shard.first, &shard.end],
            )
            .await?
            .iter()
            .map(customer_of)
            .collect()
    }

    async fn load_customers(
        &self,
        company_id: i32,
        date: NaiveDate,
        shard: &ShardRange,
        ids: Option<&[String]>,
    ) -> Result<Vec<CustomerState>> {
        Engine::load_customers(self, company_id, date, shard, ids).await
    }

    async fn has_customer(&self, company_id: i32, customer_id: &str) -> Result<bool> {
        Ok(self
            .db()
            .opt(
                q!("SELECT 1 FROM customer_versions
                    WHERE company_id = $1 AND customer_id = $2 LIMIT 1"),
                args![company_id, customer_id],
            )
            .await?
            .is_some())
    }
}
