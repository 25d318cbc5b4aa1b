//! Coordination in Redis: production, shared by every host.
//!
//! One [`Redis`] connection per process (redis-rs's `ConnectionManager`: multiplexed, reconnects
//! by itself, every request bounded by the response timeout), shared by the coordination and the
//! cache, each under its own key prefix: `{prefix}:lock:`, `{prefix}:progress:` here,
//! `{prefix}:cache:` and `{prefix}:rank:` in the cache. In Redis Cluster every key of one run
//! carries the run's hash tag (`{run:ID}`), so a run's keys share a slot.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Coord, CoordError, LockToken};
use crate::model::ShardCounts;
use crate::settings::{RedisSettings, redact_url};

/// A Redis connection with the deployment's key prefix.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis({})", self.prefix)
    }
}

fn err(e: redis::RedisError) -> CoordError {
    CoordError {
        backend: "redis",
        message: e.to_string(),
    }
}

impl Redis {
    /// Connects to `settings.url`.
    pub async fn connect(settings: &RedisSettings, url: &str) -> Result<Redis, CoordError> {
        let client = redis::Client::open(url).map_err(|e| CoordError {
            backend: "redis",
            message: format!("Redis URL {}: {e}", redact_url(url)),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| CoordError {
                backend: "redis",
                message: format!(
                    "cannot connect to Redis at {} ({e}); is it running? (on this machine: \
                     redis-server --daemonize yes --bind 127.0.0.1 --port 6379)",
                    redact_url(url)
                ),
            })?;
        Ok(Redis {
            conn,
            prefix: settings.prefix.clone(),
        })
    }

    /// The connection (cheap to clone: it is multiplexed).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A key under the deployment's prefix and a use's: `{prefix}:{use}:{rest}`.
    pub fn key(&self, use_: &str, rest: &str) -> String {
        format!("{}:{use_}:{rest}", self.prefix)
    }
}

/// Locks and progress in Redis.
#[derive(Debug, Clone)]
pub struct RedisCoord {
    redis: Redis,
    release: std::sync::Arc<redis::Script>,
    extend: std::sync::Arc<redis::Script>,
}

impl RedisCoord {
    /// Coordination on `redis`.
    pub fn new(redis: Redis) -> RedisCoord {
        RedisCoord {
            redis,
            release: std::sync::Arc::new(redis::Script::new(include_str!("release.lua"))),
            extend: std::sync::Arc::new(redis::Script::new(include_str!("extend.lua"))),
        }
    }

    fn progress_key(&self, run_id: i64) -> String {
        self.redis.key("progress", &format!("{{run:{run_id}}}"))
    }
}

const FIELDS: [&str; 5] = ["customers", "written", "revised", "unchanged", "parked"];

#[async_trait]
impl Coord for RedisCoord {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>, CoordError> {
        let token = LockToken::random();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.redis.key("lock", name))
            .arg(&token.0)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(set.map(|_| token))
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool, CoordError> {
        let n: i64 = self
            .release
            .key(self.redis.key("lock", name))
            .arg(&token.0)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn extend(
        &self,
        name: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, CoordError> {
        let n: i64 = self
            .extend
            .key(self.redis.key("lock", name))
            .arg(&token.0)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn add_progress(&self, run_id: i64, c: &ShardCounts) -> Result<(), CoordError> {
        let key = self.progress_key(run_id);
        let values = [c.customers, c.written, c.revised, c.unchanged, c.parked];
        let mut pipe = redis::pipe();
        for (f, v) in FIELDS.iter().zip(values) {
            pipe.cmd("HINCRBY").arg(&key).arg(*f).arg(v).ignore();
        }
        pipe.cmd("EXPIRE").arg(&key).arg(7 * 24 * 3600).ignore();
        pipe.query_async::<()>(&mut self.redis.conn())
            .await
            .map_err(err)
    }

    async fn progress(&self, run_id: i64) -> Result<Option<ShardCounts>, CoordError> {
        let values: Vec<Option<u64>> = redis::cmd("HMGET")
            .arg(self.progress_key(run_id))
            .arg(&FIELDS[..])
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let v = |i: usize| values.get(i).copied().flatten().unwrap_or(0);
        Ok(Some(ShardCounts {
            customers: v(0),
            written: v(1),
            revised: v(2),
            unchanged: v(3),
            parked: v(4),
        }))
    }

    async fn clear_progress(&self, run_id: i64) -> Result<(), CoordError> {
        redis::cmd("DEL")
            .arg(self.progress_key(run_id))
            .query_async::<()>(&mut self.redis.conn())
            .await
            .map_err(err)
    }
}
