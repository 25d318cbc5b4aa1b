//! In-process coordination: the embedded default, where one process is the whole deployment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Coord, CoordError, LockToken};
use crate::model::ShardCounts;

/// Locks and counters in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryCoord {
    locks: Mutex<HashMap<String, (LockToken, Instant)>>,
    progress: Mutex<HashMap<i64, ShardCounts>>,
}

impl MemoryCoord {
    /// Empty.
    pub fn new() -> MemoryCoord {
        MemoryCoord::default()
    }
}

#[async_trait]
impl Coord for MemoryCoord {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockToken>, CoordError> {
        let mut locks = self.locks.lock().expect("the lock table is not poisoned");
        let now = Instant::now();
        if let Some((_, until)) = locks.get(name)
            && *until > now
        {
            return Ok(None);
        }
        let token = LockToken::random();
        locks.insert(name.to_string(), (token.clone(), now + ttl));
        Ok(Some(token))
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<bool, CoordError> {
        let mut locks = self.locks.lock().expect("the lock table is not poisoned");
        match locks.get(name) {
            Some((t, until)) if t == token && *until > Instant::now() => {
                locks.remove(name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn extend(
        &self,
        name: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, CoordError> {
        let mut locks = self.locks.lock().expect("the lock table is not poisoned");
        match locks.get_mut(name) {
            Some((t, until)) if t == token && *until > Instant::now() => {
                *until = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn add_progress(&self, run_id: i64, counts: &ShardCounts) -> Result<(), CoordError> {
        self.progress
            .lock()
            .expect("the progress table is not poisoned")
            .entry(run_id)
            .or_default()
            .add(counts);
        Ok(())
    }

    async fn progress(&self, run_id: i64) -> Result<Option<ShardCounts>, CoordError> {
        Ok(self
            .progress
            .lock()
            .expect("the progress table is not poisoned")
            .get(&run_id)
            .copied())
    }

    async fn clear_progress(&self, run_id: i64) -> Result<(), CoordError> {
        self.progress
            .lock()
            .expect("the progress table is not poisoned")
            .remove(&run_id);
        Ok(())
    }
}
