//! The cache in Redis: production, shared by every host.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Cache, CacheError, Ranking};
use crate::coord::redis::Redis;

/// Entries and rankings in Redis.
#[derive(Debug, Clone)]
pub struct RedisCache {
    redis: Redis,
}

impl RedisCache {
    /// The cache on `redis`.
    pub fn new(redis: Redis) -> RedisCache {
        RedisCache { redis }
    }
}

fn err(e: redis::RedisError) -> CacheError {
    CacheError {
        backend: "redis",
        message: e.to_string(),
    }
}

/// Whole fen of an amount (scores of the ranking): exact in a double below 2^53 fen.
fn fen(d: Decimal) -> i64 {
    (d * Decimal::ONE_HUNDRED)
        .round()
        .try_into()
        .unwrap_or(i64::MAX)
}

#[async_trait]
impl Cache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        redis::cmd("GET")
            .arg(self.redis.key("cache", key))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        redis::cmd("SET")
            .arg(self.redis.key("cache", key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut self.redis.conn())
            .await
            .map_err(err)
    }

    async fn put_ranking(
        &self,
        company_id: i32,
        date: NaiveDate,
        arrears: &[(String, Decimal)],
    ) -> Result<(), CacheError> {
        // Built under a temporary key and renamed over the old ranking: readers see the old
        // ranking or the new one, never half of one.
        let key = self.redis.key("rank", &format!("{{company:{company_id}}}"));
        let tmp = format!("{key}:building");
        let date_key = format!("{key}:date");
        let mut conn = self.redis.conn();
        redis::cmd("DEL")
            .arg(&tmp)
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)?;
        let owing: Vec<&(String, Decimal)> =
            arrears.iter().filter(|(_, a)| *a > Decimal::ZERO).collect();
        for chunk in owing.chunks(1000) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&tmp);
            for (customer, a) in chunk {
                cmd.arg(fen(*a)).arg(customer);
            }
            cmd.query_async::<()>(&mut conn).await.map_err(err)?;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        if owing.is_empty() {
            pipe.cmd("DEL").arg(&key).ignore();
        } else {
            pipe.cmd("RENAME").arg(&tmp).arg(&key).ignore();
        }
        pipe.cmd("SET")
            .arg(&date_key)
            .arg(date.to_string())
            .ignore();
        pipe.query_async::<()>(&mut conn).await.map_err(err)
    }

    async fn ranking(&self, company_id: i32, n: usize) -> Result<Option<Ranking>, CacheError> {
        let key = self.redis.key("rank", &format!("{{company:{company_id}}}"));
        let mut conn = self.redis.conn();
        let date: Option<String> = redis::cmd("GET")
            .arg(format!("{key}:date"))
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let Some(date) = date.and_then(|d| d.parse::<NaiveDate>().ok()) else {
            return Ok(None);
        };
        if n == 0 {
            return Ok(Some(Ranking {
                date,
                top: Vec::new(),
            }));
        }
        let top: Vec<(String, i64)> = redis::cmd("ZREVRANGE")
            .arg(&key)
            .arg(0)
            .arg(n as i64 - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(Some(Ranking {
            date,
            top: top
                .into_iter()
                .map(|(c, f)| (c, Decimal::new(f, 2)))
                .collect(),
        }))
    }
}
