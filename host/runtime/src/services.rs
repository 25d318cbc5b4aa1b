//! The services a process of a deployment uses, chosen by configuration: the store (PostgreSQL
//! or SQLite), and the coordination and cache (Redis, or in the process when no Redis URL is
//! set: the embedded default).

use std::sync::Arc;
use std::time::Duration;

use crate::cache::memory::MemoryCache;
use crate::cache::redis::RedisCache;
use crate::cache::{Cache, Cached};
use crate::coord::memory::MemoryCoord;
use crate::coord::redis::{Redis, RedisCoord};
use crate::coord::{Coord, CoordError};
use crate::settings::{CacheSettings, Settings};
use crate::store::{self, StoreError, prelude::*};

/// Why the services could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis.
    #[error(transparent)]
    Redis(#[from] CoordError),
}

/// The store, coordination and cache of this process, and its name among the workers.
#[derive(Debug, Clone)]
pub struct Services {
    /// The system of record.
    pub store: Arc<dyn Store>,
    /// Locks and live progress.
    pub coord: Arc<dyn Coord>,
    /// The cache.
    pub cache: Arc<Cached>,
    /// This process among the workers of a run (`host:pid`), recorded with its claims.
    pub worker: String,
}

/// This process's name among the workers: the host's name and the process id.
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}", std::process::id())
}

impl Services {
    /// Opens the database and, when `redis.url` is set, Redis.
    pub async fn connect(settings: &Settings) -> Result<Services, ServicesError> {
        let db = &settings.database;
        let store = store::open(&db.url, db.max_connections, db.acquire_timeout_s).await?;
        match &settings.redis.url {
            Some(url) => {
                let redis = Redis::connect(&settings.redis, url).await?;
                Ok(Services::with(
                    store,
                    Arc::new(RedisCoord::new(redis.clone())),
                    Arc::new(RedisCache::new(redis)),
                    &settings.cache,
                ))
            }
            None => Ok(Services::embedded(store, &settings.cache)),
        }
    }

    /// A store with in-process coordination and cache.
    pub fn embedded(store: Arc<dyn Store>, cache: &CacheSettings) -> Services {
        let ttl = Duration::from_secs(cache.ttl_s.max(1));
        Services::with(
            store,
            Arc::new(MemoryCoord::new()),
            Arc::new(MemoryCache::new(cache.memory_mb * 1024 * 1024, ttl)),
            cache,
        )
    }

    /// The given parts.
    pub fn with(
        store: Arc<dyn Store>,
        coord: Arc<dyn Coord>,
        cache: Arc<dyn Cache>,
        settings: &CacheSettings,
    ) -> Services {
        Services {
            store,
            coord,
            cache: Arc::new(Cached::new(
                cache,
                Duration::from_secs(settings.ttl_s.max(1)),
            )),
            worker: worker_name(),
        }
    }
}
