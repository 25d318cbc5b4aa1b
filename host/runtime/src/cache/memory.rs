//! The in-process cache (moka): the embedded default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Cache, CacheError, Ranking};

/// A company's ranking: its date and (customer, arrears), largest first.
type Ranked = (NaiveDate, Vec<(String, Decimal)>);

/// Entries in this process's memory, bounded by their total size.
pub struct MemoryCache {
    entries: moka::future::Cache<String, Arc<Vec<u8>>>,
    rankings: Mutex<HashMap<i32, Ranked>>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryCache({} entries)", self.entries.entry_count())
    }
}

impl MemoryCache {
    /// A cache of at most `max_bytes`, whose entries live `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> MemoryCache {
        MemoryCache {
            entries: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Arc<Vec<u8>>| {
                    (k.len() + v.len()).try_into().unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
            rankings: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.entries.get(key).await.map(|v| v.as_ref().clone()))
    }

    async fn put(&self, key: &str, value: &[u8], _ttl: Duration) -> Result<(), CacheError> {
        self.entries
            .insert(key.to_string(), Arc::new(value.to_vec()))
            .await;
        Ok(())
    }

    async fn put_ranking(
        &self,
        company_id: i32,
        date: NaiveDate,
        arrears: &[(String, Decimal)],
    ) -> Result<(), CacheError> {
        let mut list: Vec<(String, Decimal)> = arrears
            .iter()
            .filter(|(_, a)| *a > Decimal::ZERO)
            .cloned()
            .collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        self.rankings
            .lock()
            .expect("the rankings are not poisoned")
            .insert(company_id, (date, list));
        Ok(())
    }

    async fn ranking(&self, company_id: i32, n: usize) -> Result<Option<Ranking>, CacheError> {
        Ok(self
            .rankings
            .lock()
            .expect("the rankings are not poisoned")
            .get(&company_id)
            .map(|(date, list)| Ranking {
                date: *date,
                top: list.iter().take(n).cloned().collect(),
            }))
    }
}
