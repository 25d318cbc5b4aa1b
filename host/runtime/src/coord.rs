//! Coordination between the hosts of one deployment: locks and live progress counters, in Redis
//! (production, [`redis::RedisCoord`]) or in the process (the embedded default,
//! [`memory::MemoryCoord`]), behind one trait held to one contract test suite.
//!
//! **Locks are an efficiency measure, never a correctness one.** Redis can lose a lock (a
//! failover, an expiry while its holder is paused), so nothing here decides who may write a
//! bill: the database does, with the fencing token of each shard claim checked in the writer's
//! transaction (`Store::claim_shard`, `Store::write_shard`). A lock only keeps hosts from doing
//! the same work at once (cutting a run into shards, finishing it) — Kleppmann's argument
//! against relying on Redlock, taken at its word.
//!
//! A lock is `SET key token NX PX ttl` with a random token; release and extension are Lua
//! compare-and-delete / compare-and-expire scripts (`coord/release.lua`, `coord/extend.lua`),
//! loaded once per server and run by their SHA-1. Progress counters are one Redis hash per run.
//!
//! Every operation is bounded by the Redis settings' timeouts, and the callers treat a failure
//! as "no coordination this time": a run goes on without Redis, only less efficiently.

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::model::ShardCounts;

/// Why a coordination call failed (Redis unreachable or too slow).
#[derive(Debug, thiserror::Error)]
#[error("coordination ({backend}) failed: {message}")]
pub struct CoordError {
    /// Which backend.
    pub backend: &'static str,
    /// What happened.
    pub message: String,
}

/// The proof of holding a lock: the random value stored under the lock's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

impl LockToken {
    /// A fresh random token (128 bits from the OS's source, via the standard library's
    /// randomly seeded hasher state, mixed with the time and the process).
    pub fn random() -> LockToken {
        use std::hash::{BuildHasher, Hasher};
        let mut out = String::with_capacity(32);
        for i in 0..2u64 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.write_u32(std::process::id());
            out.push_str(&format!("{:016x}", h.finish()));
        }
        LockToken(out)
    }
}

/// Locks and progress counters.
#[async_trait]
pub trait Coord: Send + Sync {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;
    /// Takes lock `name` for `ttl` if nobody holds it.
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>, CoordError>;
    /// Releases lock `name` if `token` still holds it; whether it did.
    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool, CoordError>;
    /// Extends lock `name` to `ttl` from now if `token` still holds it; whether it did.
    async fn extend(
        &self,
        name: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, CoordError>;
    /// Adds a shard's counts to a run's live progress.
    async fn add_progress(&self, run_id: i64, counts: &ShardCounts) -> Result<(), CoordError>;
    /// A run's live progress: the counts of the shards written so far, by every process.
    async fn progress(&self, run_id: i64) -> Result<Option<ShardCounts>, CoordError>;
    /// Forgets a run's live progress (it is in the database once the run ends).
    async fn clear_progress(&self, run_id: i64) -> Result<(), CoordError>;
}

/// A held lock; release it with [`Lock::release`] (a dropped lock expires on its own).
#[derive(Debug)]
pub struct Lock {
    coord: Arc<dyn Coord>,
    name: String,
    token: LockToken,
}

impl std::fmt::Debug for dyn Coord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Coord({})", self.backend())
    }
}

impl Lock {
    /// Takes lock `name` for `ttl`, waiting up to `wait` for its holder to release it (or for
    /// it to expire). `None` when it could not be had in time, or the backend failed: the
    /// caller goes on without it (locks are an efficiency measure).
    pub async fn acquire(
        coord: &Arc<dyn Coord>,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Option<Lock> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match coord.try_lock(name, ttl).await {
                Ok(Some(token)) => {
                    return Some(Lock {
                        coord: coord.clone(),
                        name: name.to_string(),
                        token,
                    });
                }
                Ok(None) if start.elapsed() < wait => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(lock = name, error = %e, "going on without the lock");
                    return None;
                }
            }
        }
    }

    /// Extends the lock to `ttl` from now; false when it is no longer ours (it lapsed and
    /// another took it) or the backend failed.
    pub async fn extend(&self, ttl: Duration) -> bool {
        self.coord
            .extend(&self.name, &self.token, ttl)
            .await
            .unwrap_or(false)
    }

    /// Releases the lock (if it is still ours).
    pub async fn release(self) {
        if let Err(e) = self.coord.unlock(&self.name, &self.token).await {
            tracing::warn!(lock = %self.name, error = %e, "releasing a lock failed; it expires");
        }
    }
}
