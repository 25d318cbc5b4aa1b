//! The commands: the runtime's (`migrate`, `company`, `import`, `run`, `demo`, …) and the
//! plugin harness's (`plugin`). Each module holds its command's clap arguments beside the
//! function that runs it; the work itself is `heatbill-runtime`'s, or the harness's
//! ([`heatbill_harness`]).

pub mod account;
pub mod arrears;
pub mod audit;
pub mod company;
pub mod customer;
pub mod demo;
pub mod event;
pub mod import;
pub mod migrate;
pub mod notice;
pub mod plugin;
pub mod run;
pub mod serve;
pub mod statement;
pub mod subsidy;
pub mod warm;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use heatbill_engine::Engine;
use heatbill_runtime::services::Services;
use heatbill_runtime::settings::Settings;
use heatbill_runtime::store::{self, prelude::*};

/// Options every runtime command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// A settings file (TOML; every key is described in the README's Configuration section).
    /// `HEATBILL_<SECTION>__<KEY>` variables override it.
    #[arg(long, env = "HEATBILL_CONFIG")]
    pub config: Option<PathBuf>,
    /// The database, overriding the settings: postgres://USER@HOST/DB or sqlite://PATH
    /// (default sqlite://heatbill.db).
    #[arg(long)]
    pub database: Option<String>,
    /// Redis, overriding the settings: redis://HOST[:PORT] (default: none, the cache, locks
    /// and progress live in the process).
    #[arg(long)]
    pub redis: Option<String>,
}

impl Common {
    /// The settings: the file, then the environment, then `--database`.
    pub fn settings(&self) -> Result<Settings> {
        let mut s = Settings::load(self.config.as_deref())?;
        if let Some(url) = &self.database {
            s.database.url = url.clone();
        }
        if let Some(url) = &self.redis {
            s.redis.url = Some(url.clone());
        }
        Ok(s)
    }
}

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM: how `serve` and `worker` are told to stop
/// (a service manager sends SIGTERM; a terminal, SIGINT).
pub async fn stop_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        // No SIGTERM handler to be had: Ctrl-C still stops the process.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Opens the store the settings name.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
    let db = &settings.database;
    Ok(store::open(&db.url, db.max_connections, db.acquire_timeout_s).await?)
}

/// Opens the store, and Redis when the settings name one.
pub async fn open_services(settings: &Settings) -> Result<Services> {
    Ok(Services::connect(settings).await?)
}

/// The rules engine the settings describe, with the compile cache in `HEATBILL_CACHE_DIR` or
/// the user's cache directory unless the settings name one, and `compiler` as the compiler
/// child (see [`heatbill_harness::EngineOptions::compiler`]).
pub fn engine(settings: &Settings, compiler: Option<&Path>) -> Result<Engine> {
    heatbill_harness::build_engine(
        settings.engine.clone(),
        std::env::var_os("HEATBILL_CACHE_DIR").map(PathBuf::from),
        compiler.map(Path::to_path_buf),
    )
}

/// The reference plugins of this checkout (built by `./dev plugins`).
pub fn default_plugins() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins")
}
