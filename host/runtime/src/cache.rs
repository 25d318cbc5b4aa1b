//! The cache: what runs read again and again, in Redis (production, shared by every host,
//! [`redis::RedisCache`]) or in the process (the embedded default, [`memory::MemoryCache`]),
//! behind one trait held to one contract test suite.
//!
//! What is cached, and under which keys (all under `{prefix}:cache:`):
//!
//! | key | value | stale when |
//! |---|---|---|
//! | `chains:{company}:{data_version}` | the company's active chain versions | never read: the data version bumps on every change |
//! | `plugin:{sha256}` | a component's bytes | never: content-addressed |
//! | `customers:{company}:{customers_version}:{shard}` | every version of a shard's customers, packed | never read: imports of customers bump the version |
//!
//! Keys carry the version of what they hold, so a stale entry is never read: a write path bumps
//! the version instead of deleting entries, and old entries expire (`cache.ttl_s`). Redis holds
//! nothing that cannot be rebuilt from the database: a flushed or restarted Redis means misses,
//! never other bills. A miss is loaded once per process however many tasks want the key at once
//! (single flight, [`Cached::get_or_load`]); hits and misses are counted.
//!
//! The arrears ranking (each company's customers by unpaid principal, after its latest run) is a
//! sorted set in Redis (scores are whole fen, exact in a double up to 2^53 fen), rebuilt from the
//! database when missing.

pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rust_decimal::Decimal;

use crate::model::{CustomerState, parse_class, parse_status};

/// Why a cache call failed (Redis unreachable or too slow). Callers treat it as a miss.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cache ({backend}) failed: {message}")]
pub struct CacheError {
    /// Which backend.
    pub backend: &'static str,
    /// What happened.
    pub message: String,
}

/// A company's arrears ranking: customers by unpaid principal, largest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// The bill date it was taken from.
    pub date: NaiveDate,
    /// (customer, arrears).
    pub top: Vec<(String, Decimal)>,
}

/// Bytes by key, and the arrears rankings.
#[async_trait]
pub trait Cache: Send + Sync {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;
    /// The value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// Stores `value` under `key` for `ttl`.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;
    /// Replaces a company's arrears ranking with the unpaid principal of each customer on
    /// `date` (customers owing nothing are left out).
    async fn put_ranking(
        &self,
        company_id: i32,
        date: NaiveDate,
        arrears: &[(String, Decimal)],
    ) -> Result<(), CacheError>;
    /// The `n` customers of a company with the most unpaid principal, if a ranking is held.
    async fn ranking(&self, company_id: i32, n: usize) -> Result<Option<Ranking>, CacheError>;
}

impl std::fmt::Debug for dyn Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cache({})", self.backend())
    }
}

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Reads answered by the cache.
    pub hits: u64,
    /// Reads that went to the database.
    pub misses: u64,
    /// Cache calls that failed (counted as misses too).
    pub errors: u64,
}

type Loading = Shared<BoxFuture<'static, Result<Arc<Vec<u8>>, String>>>;

/// A cache with single flight and counters: what the runtime uses.
pub struct Cached {
    cache: Arc<dyn Cache>,
    ttl: Duration,
    loading: std::sync::Mutex<HashMap<String, Loading>>,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cached({}, {:?})", self.cache.backend(), self.stats())
    }
}

impl Cached {
    /// A cache whose entries live `ttl`.
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Cached {
        Cached {
            cache,
            ttl,
            loading: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// The backend.
    pub fn inner(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    /// Hits, misses and errors so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// The value of `key`, or `load()`'s, stored for the next reader. Concurrent callers of one
    /// key in this process share one load. A failing cache is a miss (logged): the database
    /// answers.
    pub async fn get_or_load<F, Fut, E>(&self, key: &str, load: F) -> Result<Arc<Vec<u8>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
        E: std::fmt::Display + From<String>,
    {
        match self.cache.get(key).await {
            Ok(Some(v)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Arc::new(v));
            }
            Ok(None) => {}
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%key, error = %e, "cache read failed; reading the database");
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let (shared, first) = {
            let mut loading = self
                .loading
                .lock()
                .expect("the single-flight map is not poisoned");
            match loading.get(key) {
                Some(f) => (f.clone(), false),
                None => {
                    let fut = load();
                    let f: Loading =
                        async move { fut.await.map(Arc::new).map_err(|e| e.to_string()) }
                            .boxed()
                            .shared();
                    loading.insert(key.to_string(), f.clone());
                    (f, true)
                }
            }
        };
        let out = shared.await;
        if first {
            self.loading
                .lock()
                .expect("the single-flight map is not poisoned")
                .remove(key);
            if let Ok(v) = &out
                && let Err(e) = self.cache.put(key, v, self.ttl).await
            {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%key, error = %e, "cache write failed");
            }
        }
        out.map_err(E::from)
    }
}

/// The cache key of a shard's customers.
pub fn customers_key(
    company_id: i32,
    customers_version: i64,
    first: &str,
    end: Option<&str>,
) -> String {
    use sha2::{Digest, Sha256};
    let range = Sha256::digest(format!("{first}\u{0}{}", end.unwrap_or("\u{0}")).as_bytes());
    format!(
        "customers:{company_id}:{customers_version}:{}",
        hex::encode(&range[..12])
    )
}

/// Packs customer versions compactly (lengths, decimals as their 16-byte form, dates as days):
/// a shard of 10,000 customers is about 0.8 MB, read back in a millisecond or two.
pub fn pack_customers(list: &[CustomerState]) -> Vec<u8> {
    fn str_(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn dec(out: &mut Vec<u8>, d: Option<Decimal>) {
        match d {
            Some(d) => {
                out.push(1);
                out.extend_from_slice(&d.serialize());
            }
            None => out.push(0),
        }
    }
    let mut out = Vec::with_capacity(list.len() * 80 + 8);
    out.extend_from_slice(b"HBC1");
    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
    for c in list {
        str_(&mut out, &c.customer_id);
        out.extend_from_slice(&chrono::Datelike::num_days_from_ce(&c.valid_from).to_le_bytes());
        str_(&mut out, crate::model::class_str(c.class));
        match &c.special_class {
            Some(s) => {
                out.push(1);
                str_(&mut out, s);
            }
            None => out.push(0),
        }
        str_(&mut out, crate::model::status_str(c.status));
        out.push(u8::from(c.metered) | (u8::from(c.low_income) << 1));
        dec(&mut out, Some(c.building_area));
        dec(&mut out, c.usable_area);
        dec(&mut out, c.ceiling_height);
        out.extend_from_slice(&(c.tags.len() as u32).to_le_bytes());
        for t in &c.tags {
            str_(&mut out, t);
        }
        out.extend_from_slice(&(c.attributes.len() as u32).to_le_bytes());
        for (k, v) in &c.attributes {
            str_(&mut out, k);
            str_(&mut out, v);
        }
    }
    out
}

/// Unpacks [`pack_customers`]; `None` for bytes it did not write (a value from another
/// version: the caller reads the database).
pub fn unpack_customers(bytes: &[u8]) -> Option<Vec<CustomerState>> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn i32(&mut self) -> Option<i32> {
            Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u8(&mut self) -> Option<u8> {
            Some(self.take(1)?[0])
        }
        fn str(&mut self) -> Option<String> {
            let n = self.u32()? as usize;
            String::from_utf8(self.take(n)?.to_vec()).ok()
        }
        fn dec(&mut self) -> Option<Option<Decimal>> {
            match self.u8()? {
                0 => Some(None),
                _ => Some(Some(Decimal::deserialize(self.take(16)?.try_into().ok()?))),
            }
        }
    }
    let mut r = R(bytes);
    if r.take(4)? != b"HBC1" {
        return None;
    }
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let customer_id = r.str()?;
        let valid_from = NaiveDate::from_num_days_from_ce_opt(r.i32()?)?;
        let class = parse_class(&r.str()?)?;
        let special_class = match r.u8()? {
            0 => None,
            _ => Some(r.str()?),
        };
        let status = parse_status(&r.str()?)?;
        let flags = r.u8()?;
        let building_area = r.dec()??;
        let usable_area = r.dec()?;
        let ceiling_height = r.dec()?;
        let tags = (0..r.u32()?).map(|_| r.str()).collect::<Option<Vec<_>>>()?;
        let attributes = (0..r.u32()?)
            .map(|_| Some((r.str()?, r.str()?)))
            .collect::<Option<Vec<_>>>()?;
        out.push(CustomerState {
            customer_id,
            valid_from,
            class,
            special_class,
            status,
            metered: flags & 1 != 0,
            low_income: flags & 2 != 0,
            building_area,
            usable_area,
            ceiling_height,
            tags,
            attributes,
        });
    }
    r.0.is_empty().then_some(out)
}

/// The versions in force on `date`, from every version of some customers sorted by customer
/// and date: for each customer, its latest version on or before `date`.
pub fn as_of(versions: &[CustomerState], date: NaiveDate) -> Vec<CustomerState> {
    let mut out: Vec<CustomerState> = Vec::new();
    for v in versions.iter().filter(|v| v.valid_from <= date) {
        match out.last_mut() {
            Some(last) if last.customer_id == v.customer_id => *last = v.clone(),
            _ => out.push(v.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_customers_read_back_exactly() {
        let c = CustomerState {
            customer_id: "C1 \u{1F3E0}".into(),
            valid_from: NaiveDate::from_ymd_opt(2025, 10, 1).unwrap(),
            class: heatbill_engine::CustomerClass::NonResidential,
            special_class: Some("garage".into()),
            status: heatbill_engine::ServiceStatus::Suspended,
            metered: true,
            low_income: false,
            building_area: "60.00".parse().unwrap(),
            usable_area: None,
            ceiling_height: Some("3.55".parse().unwrap()),
            tags: vec!["a".into(), "".into()],
            attributes: vec![("k".into(), "v".into())],
        };
        let mut d = c.clone();
        d.customer_id = "C2".into();
        d.building_area = "0.0".parse().unwrap();
        let packed = pack_customers(&[c.clone(), d.clone()]);
        let back = unpack_customers(&packed).unwrap();
        assert_eq!(back, [c, d]);
        assert_eq!(back[1].building_area.to_string(), "0.0");
        assert!(unpack_customers(&packed[..packed.len() - 1]).is_none());
        assert!(unpack_customers(b"nonsense").is_none());
    }
}
