//! The process-wide [`Engine`]: compiles and caches plugins, owns the epoch ticker.
//!
//! Over 600 lines: the load path in its order (size, format, profile, cache or compile, world,
//! imports, link, `describe`) reads best as one piece; `plugin check`'s reporting variant of it
//! is in `check`, the cache's files in `cache`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, types::ComponentItem};

use crate::bindings::{Contract, Guest, is_granted, link_types};
use crate::cache::{
    ArtifactError, MemoryCache, deserialize_artifact, deserialize_child_artifact, disk_usage,
    evict_disk, open_cache, read_artifact, seal_artifact, touch, write_atomically,
};
use crate::chain::{Chain, ChainEntry};
use crate::compile::{check_structure, compile_in_child};
use crate::config::{EngineConfig, Limits, wasmtime_config};
use crate::error::{ChainError, LoadError, error_chain};
use crate::format::{check_format, check_size};
use crate::plugin::{Budget, LoadedPlugin, checked_info};
use crate::sandbox::{LogBuffer, StoreState, link_sandbox};
use crate::trap::classify;
use crate::trapped::link_traps;

/// The newest contract version this engine serves (what the SDK builds).
/// Every version in [`Contract::ALL`] is served: a plugin for any of them loads, and plugins of
/// different versions bill side by side in one chain.
pub const CONTRACT_VERSION: &str = Contract::LATEST.as_str();
/// The interface every plugin of the newest version exports.
pub const RULES_INTERFACE: &str = "heatbill:rules/rules@0.2.0";
/// The world every plugin of the newest version implements.
pub const RULES_WORLD: &str = "heatbill:rules/rules-plugin@0.2.0";

/// The wasmtime version the engine is built with; part of the on-disk cache key.
const WASMTIME_VERSION: &str = "48.0.8";

/// Why an [`Engine`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rules engine could not be built: {message}")]
pub struct EngineError {
    /// What went wrong (wasmtime's configuration error, an unusable cache directory).
    pub message: String,
}

/// How [`Engine::load`] obtained a plugin's compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadOutcome {
    /// Compiled now (and written to the disk cache, when there is one).
    Compiled,
    /// Found in this engine's memory cache: compiled earlier in this process.
    MemoryCache,
    /// Loaded from the on-disk cache: compiled by an earlier process with the same engine
    /// configuration.
    DiskCache,
}

/// Counters of the compile cache, since the engine was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CacheStats {
    /// Components compiled.
    pub compiled: u64,
    /// Loads served from memory.
    pub memory_hits: u64,
    /// Loads served from the disk cache.
    pub disk_hits: u64,
    /// Precompiled artifacts written to the disk cache.
    pub disk_writes: u64,
    /// Disk cache reads or writes that failed (the load went on without the cache).
    pub disk_errors: u64,
    /// Artifacts refused because they did not authenticate (swapped, changed, truncated, or
    /// written with another key): compiled again instead.
    pub disk_rejected: u64,
    /// Compiled components kept in memory now ([`EngineConfig::memory_cache_entries`]).
    pub memory_entries: u64,
    /// Bytes of compiled code kept in memory now ([`EngineConfig::memory_cache_bytes`]).
    pub memory_bytes: u64,
    /// Components dropped from memory to stay within its caps.
    pub memory_evictions: u64,
    /// Artifacts in the cache directory now ([`EngineConfig::disk_cache_entries`]; 0 without
    /// one).
    pub disk_entries: u64,
    /// Bytes of artifacts in the cache directory now ([`EngineConfig::disk_cache_bytes`]).
    pub disk_bytes: u64,
    /// Artifacts this engine deleted to keep the directory within its caps.
    pub disk_evictions: u64,
}

/// A compiled component found or made by [`Engine::component`], not yet kept in the caches.
pub(crate) struct Fetched {
    /// The component.
    pub(crate) component: Component,
    /// Where it came from.
    pub(crate) outcome: LoadOutcome,
    /// The artifact the compiler child sent back, for the disk cache.
    artifact: Option<Vec<u8>>,
}

/// The rules engine: one per process, shared by every worker thread.
///
/// Cheap to clone (an `Arc`), `Send` and `Sync`. It holds:
///
/// - the wasmtime engine, configured with the **pooling allocator** (instantiation takes a
///   pre-reserved slot instead of mapping memory; it matters because a trap recycles an instance)
///   and **epoch interruption** (a deadline costs a counter check at loop heads and function
///   entries, far cheaper than fuel metering, and a ticker thread owned by the engine advances
///   the epoch; the thread stops when the last clone of the engine is dropped);
/// - the linker with WASI granted as nothing (see the `sandbox` module);
/// - the **compile cache**: compiled components by SHA-256 digest in memory, and, when
///   [`EngineConfig::cache_dir`] is set, precompiled artifacts on disk keyed by digest, wasmtime
///   version and the engine's compatibility hash, so that a second process with the same
///   configuration maps the native code instead of compiling again. Both are bounded (entries
///   and bytes, the least recently used evicted first) and hold only components that loaded:
///   an upload refused after compiling leaves nothing behind.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    wasmtime: wasmtime::Engine,
    linker: Linker<StoreState>,
    config: EngineConfig,
    /// Hex of a SHA-256 over the engine's precompile compatibility hash and wasmtime version.
    compat: String,
    /// The compile cache in memory (`cache::MemoryCache`).
    memory: Mutex<MemoryCache>,
    compiled: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_writes: AtomicU64,
    disk_errors: AtomicU64,
    disk_rejected: AtomicU64,
    disk_evictions: AtomicU64,
    /// The key that authenticates the disk cache's artifacts.
    cache_key: Option<[u8; 32]>,
    /// Advances the epoch; stopped when the last clone of the engine is dropped.
    _ticker: Ticker,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .field("cache", &self.cache_stats())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine: wasmtime with the pooling allocator sized by `config.pool`, memory
    /// capped by `config.limits`, epoch interruption, the WASI sandbox, and the ticker thread.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let err = |message: String| EngineError { message };
        check_profiles(&config).map_err(err)?;
        let c = wasmtime_config(&config, true);
        let wasmtime = wasmtime::Engine::new(&c).map_err(|e| err(format!("{e:#}")))?;

        let mut linker = Linker::new(&wasmtime);
        link_sandbox(&mut linker).map_err(|e| err(format!("linking WASI: {e:#}")))?;
        link_types(&mut linker).map_err(|e| err(format!("linking the contract: {e:#}")))?;

        let compat = {
            let mut h = ShaHasher(Sha256::new());
            std::hash::Hash::hash(&wasmtime.precompile_compatibility_hash(), &mut h);
            h.0.update(WASMTIME_VERSION.as_bytes());
            hex::encode(h.0.finalize())
        };
        let cache_key = match &config.cache_dir {
            Some(dir) => Some(open_cache(dir, config.cache_key.as_deref()).map_err(err)?),
            None => None,
        };
        let ticker = Ticker::start(wasmtime.clone(), config.epoch_tick())
            .map_err(|e| err(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(Engine {
            inner: Arc::new(Inner {
                wasmtime,
                linker,
                config,
                compat,
                memory: Mutex::new(MemoryCache::new()),
                compiled: AtomicU64::new(0),
                memory_hits: AtomicU64::new(0),
                disk_hits: AtomicU64::new(0),
                disk_writes: AtomicU64::new(0),
                disk_errors: AtomicU64::new(0),
                disk_rejected: AtomicU64::new(0),
                disk_evictions: AtomicU64::new(0),
                cache_key,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The wasmtime engine underneath.
    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The standard limits: every plugin's, except the figures of the profile a component is
    /// granted ([`LoadedPlugin::profile`]).
    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// The compile cache's counters, and what it holds now (the disk figures are read from the
    /// cache directory, which other processes may share).
    pub fn cache_stats(&self) -> CacheStats {
        let i = &self.inner;
        let (memory_entries, memory_bytes, memory_evictions) = {
            let m = lock(&i.memory);
            let (entries, bytes) = m.usage();
            (entries as u64, bytes, m.evictions)
        };
        let (disk_entries, disk_bytes) = i.config.cache_dir.as_deref().map_or((0, 0), disk_usage);
        CacheStats {
            memory_entries,
            memory_bytes,
            memory_evictions,
            disk_entries: disk_entries as u64,
            disk_bytes,
            disk_evictions: i.disk_evictions.load(Ordering::Relaxed),
            compiled: i.compiled.load(Ordering::Relaxed),
            memory_hits: i.memory_hits.load(Ordering::Relaxed),
            disk_hits: i.disk_hits.load(Ordering::Relaxed),
            disk_writes: i.disk_writes.load(Ordering::Relaxed),
            disk_errors: i.disk_errors.load(Ordering::Relaxed),
            disk_rejected: i.disk_rejected.load(Ordering::Relaxed),
        }
    }

    /// The CPU-time deadline of a call over `days` customer-days into a plugin with `budget`.
    pub(crate) fn deadline(&self, budget: &Budget, days: usize) -> Duration {
        let l = &self.inner.config.limits;
        let us = budget
            .deadline_base_ms
            .saturating_mul(1_000)
            .saturating_add(l.deadline_per_day_us.saturating_mul(days as u64));
        Duration::from_micros(us)
    }

    /// Arms `store`'s deadline for a call over `days` customer-days, from now: the plugin's
    /// CPU time on this thread (`crate::cpu`).
    pub(crate) fn arm_deadline(&self, store: &mut Store<StoreState>, budget: &Budget, days: usize) {
        let ticks = store.data_mut().deadline.arm(self.deadline(budget, days));
        store.set_epoch_deadline(ticks);
    }

    /// The deadline of a call over `days` customer-days, in milliseconds (for messages).
    pub(crate) fn deadline_ms(&self, budget: &Budget, days: usize) -> u64 {
        let l = &self.inner.config.limits;
        budget.deadline_base_ms + l.deadline_per_day_us.saturating_mul(days as u64) / 1_000
    }

    /// A fresh store for one instance of a plugin with `budget`, with the sandbox, the memory
    /// limiter and a deadline for the calls made while setting it up.
    pub(crate) fn new_store(&self, log: &LogBuffer, budget: &Budget) -> Store<StoreState> {
        let l = &self.inner.config.limits;
        let mut store = Store::new(
            &self.inner.wasmtime,
            StoreState::new(
                log,
                budget.max_memory_bytes,
                l.max_table_elements,
                self.inner.config.epoch_tick(),
            ),
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().deadline.on_epoch()));
        self.arm_deadline(&mut store, budget, 0);
        store
    }

    /// Builds a chain of this engine's plugins ([`Chain::new`]).
    pub fn chain<I>(&self, company: impl Into<String>, entries: I) -> Result<Chain, ChainError>
    where
        I: IntoIterator,
        I::Item: Into<ChainEntry>,
    {
        Chain::new(company, entries)
    }

    /// Loads a plugin under the limits profile granted to its digest
    /// ([`EngineConfig::grants`]; the standard limits without one): checks size and format,
    /// compiles it (or takes it from the cache), checks its world and imports, prepares its
    /// instantiation and calls `describe()` once.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedPlugin>, LoadError> {
        self.load_with_outcome(bytes).map(|(p, _)| p)
    }

    /// [`load`](Self::load), also saying where the compiled code came from.
    pub fn load_with_outcome(
        &self,
        bytes: &[u8],
    ) -> Result<(Arc<LoadedPlugin>, LoadOutcome), LoadError> {
        let (profile, digest) = self.granted(bytes);
        self.load_digested(bytes, &profile, digest)
    }

    /// Loads a plugin under the named limits profile, whatever is granted: for the local
    /// harness (`heatbill plugin test --profile`), where the integrator is the operator.
    pub fn load_as(
        &self,
        bytes: &[u8],
        profile: &str,
    ) -> Result<(Arc<LoadedPlugin>, LoadOutcome), LoadError> {
        self.load_digested(bytes, profile, None)
    }

    /// The load under `profile`, with the digest when finding the grant already computed it.
    fn load_digested(
        &self,
        bytes: &[u8],
        profile: &str,
        digest: Option<[u8; 32]>,
    ) -> Result<(Arc<LoadedPlugin>, LoadOutcome), LoadError> {
        let eff = self.effective(profile)?;
        check_size(bytes.len(), eff.limits.max_component_bytes)?;
        check_format(bytes)?;
        let digest = digest.unwrap_or_else(|| Sha256::digest(bytes).into());
        let fetched = self.component(bytes, &digest, &eff)?;
        let outcome = fetched.outcome;
        let plugin = self.prepare(
            fetched.component.clone(),
            &digest,
            bytes.len(),
            profile,
            &eff,
        )?;
        self.keep(&digest, fetched);
        Ok((Arc::new(plugin), outcome))
    }

    /// The limits profile granted to these bytes ([`EngineConfig::grants`]), `standard`
    /// without a grant.
    pub fn profile_of(&self, bytes: &[u8]) -> String {
        self.granted(bytes).0
    }

    /// The profile granted to these bytes, and their digest when finding it took one. Nothing
    /// larger than the largest profile allows is hashed.
    fn granted(&self, bytes: &[u8]) -> (String, Option<[u8; 32]>) {
        let c = &self.inner.config;
        let largest = c
            .profiles
            .values()
            .map(|p| p.max_component_bytes)
            .fold(c.limits.max_component_bytes, usize::max);
        if c.grants.is_empty() || bytes.len() > largest {
            return (crate::config::STANDARD.to_string(), None);
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let profile = c.granted_profile(&hex::encode(digest)).to_string();
        (profile, Some(digest))
    }

    /// The configuration for `profile`, or an error naming the profiles there are.
    pub(crate) fn effective(&self, profile: &str) -> Result<EngineConfig, LoadError> {
        let c = &self.inner.config;
        c.effective(profile)
            .ok_or_else(|| LoadError::UnknownProfile {
                profile: profile.to_string(),
                known: c.profile_names(),
            })
    }

    /// Whether `profile` links the import `name` (with its version) to traps.
    pub(crate) fn traps(&self, profile: &str, name: &str) -> bool {
        let interface = name.split_once('@').map_or(name, |(n, _)| n);
        self.inner.config.traps_import(profile, interface)
    }

    /// The compiled component for `bytes`: from memory, from disk, or compiled now. Nothing is
    /// kept yet: [`keep`](Self::keep) keeps it once it has passed every check, so a component
    /// refused after compiling leaves nothing in the caches.
    pub(crate) fn component(
        &self,
        bytes: &[u8],
        digest: &[u8; 32],
        eff: &EngineConfig,
    ) -> Result<Fetched, LoadError> {
        let i = &self.inner;
        // The shape is checked on every load, not only before compiling: a component compiled
        // (and cached) under one profile's figures must not pass under a smaller profile's
        // because it was found in a cache. Linear in the size: about 1.5 ms per MiB here.
        check_structure(bytes, &eff.limits, &eff.pool)?;
        if let Some(component) = lock(&i.memory).get(digest) {
            i.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Fetched {
                component,
                outcome: LoadOutcome::MemoryCache,
                artifact: None,
            });
        }
        let path = self.artifact_path(digest);
        if let (Some(path), Some(key)) = (path.as_deref().filter(|p| p.exists()), &i.cache_key) {
            match read_artifact(path, key, digest, &i.compat) {
                Ok(artifact) => match deserialize_artifact(&i.wasmtime, &artifact) {
                    Ok(component) => {
                        i.disk_hits.fetch_add(1, Ordering::Relaxed);
                        touch(path);
                        return Ok(Fetched {
                            component,
                            outcome: LoadOutcome::DiskCache,
                            artifact: None,
                        });
                    }
                    // An authentic artifact of an incompatible build: compile again, replace it.
                    Err(_) => {
                        i.disk_errors.fetch_add(1, Ordering::Relaxed);
                    }
                },
                // Swapped, changed, truncated or keyed otherwise: never run it.
                Err(ArtifactError::Rejected) => {
                    i.disk_rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(ArtifactError::Io) => {
                    i.disk_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let (component, artifact) = self.compile(bytes, eff)?;
        i.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(Fetched {
            component,
            outcome: LoadOutcome::Compiled,
            artifact,
        })
    }

    /// Keeps a component that passed every check: in memory (within
    /// [`EngineConfig::memory_cache_entries`] and [`EngineConfig::memory_cache_bytes`], the
    /// least recently used evicted), and, when it was compiled now, on disk (within
    /// [`EngineConfig::disk_cache_entries`] and [`EngineConfig::disk_cache_bytes`]).
    pub(crate) fn keep(&self, digest: &[u8; 32], fetched: Fetched) {
        let i = &self.inner;
        let c = &i.config;
        if fetched.outcome != LoadOutcome::MemoryCache {
            lock(&i.memory).insert(
                *digest,
                fetched.component.clone(),
                c.memory_cache_entries,
                c.memory_cache_bytes,
            );
        }
        if fetched.outcome != LoadOutcome::Compiled {
            return;
        }
        let (Some(dir), Some(path), Some(key)) =
            (&c.cache_dir, self.artifact_path(digest), &i.cache_key)
        else {
            return;
        };
        let artifact = match fetched.artifact {
            Some(a) => Ok(a),
            None => fetched.component.serialize().map_err(|e| e.to_string()),
        };
        let Ok(artifact) = artifact else {
            i.disk_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let sealed = seal_artifact(key, digest, &i.compat, &artifact);
        drop(artifact);
        if c.disk_cache_entries == 0 || sealed.len() as u64 > c.disk_cache_bytes {
            return;
        }
        match write_atomically(&path, &sealed) {
            Ok(()) => {
                i.disk_writes.fetch_add(1, Ordering::Relaxed);
                let evicted = evict_disk(dir, &path, c.disk_cache_entries, c.disk_cache_bytes);
                i.disk_evictions.fetch_add(evicted, Ordering::Relaxed);
            }
            Err(_) => {
                i.disk_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Where the disk cache keeps the artifact of `digest` (none without a cache directory).
    fn artifact_path(&self, digest: &[u8; 32]) -> Option<std::path::PathBuf> {
        let i = &self.inner;
        i.config
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}-{}.cwasm", hex::encode(digest), &i.compat[..16])))
    }

    /// Compiles a component whose shape passed [`check_structure`]: in the compiler child when
    /// [`CompileConfig::program`](crate::CompileConfig::program) is set (returning its
    /// artifact too), else in this process.
    fn compile(
        &self,
        bytes: &[u8],
        eff: &EngineConfig,
    ) -> Result<(Component, Option<Vec<u8>>), LoadError> {
        let i = &self.inner;
        match &i.config.compile.program {
            Some(program) => {
                let artifact = compile_in_child(program, eff, bytes)?;
                let c = deserialize_child_artifact(&i.wasmtime, &artifact).map_err(|e| {
                    LoadError::Compiler {
                        message: format!(
                            "its artifact does not load: {}; is {} the same build as this \
                             host?",
                            error_chain(&e),
                            program.display()
                        ),
                    }
                })?;
                Ok((c, Some(artifact)))
            }
            None => Component::new(&i.wasmtime, bytes)
                .map(|c| (c, None))
                .map_err(|e| LoadError::Malformed {
                    message: error_chain(&e),
                }),
        }
    }

    /// World, imports, instantiation, `describe()`.
    pub(crate) fn prepare(
        &self,
        component: Component,
        digest: &[u8; 32],
        size: usize,
        profile: &str,
        eff: &EngineConfig,
    ) -> Result<LoadedPlugin, LoadError> {
        let engine = &self.inner.wasmtime;
        let ty = component.component_type();

        let exports: Vec<(String, bool)> = ty
            .exports(engine)
            .map(|(n, item)| {
                (
                    n.to_string(),
                    matches!(item.ty, ComponentItem::ComponentInstance(_)),
                )
            })
            .collect();
        let served = exports
            .iter()
            .filter(|(_, inst)| *inst)
            .find_map(|(n, _)| Contract::of_export(n).map(|c| (n.clone(), c)));
        let Some((export, contract)) = served else {
            if let Some((other, _)) = exports
                .iter()
                .find(|(n, _)| n.starts_with("heatbill:rules/rules@"))
            {
                return Err(LoadError::ContractVersion {
                    found: other.clone(),
                    supported: Contract::served(),
                });
            }
            return Err(LoadError::WrongWorld {
                expected: RULES_INTERFACE.to_string(),
                version: CONTRACT_VERSION.to_string(),
                found: exports.into_iter().map(|(n, _)| n).collect(),
            });
        };
        // Imports after exports: a component for another version of the contract also imports
        // that version's `types`, and must be told about the version, not about an import.
        let (trapped, denied): (Vec<&str>, Vec<&str>) = ty
            .imports(engine)
            .map(|(name, _)| name)
            .filter(|name| !is_granted(name))
            .partition(|name| self.traps(profile, name));
        if !denied.is_empty() {
            return Err(LoadError::ImportNotGranted {
                imports: denied.into_iter().map(str::to_string).collect(),
            });
        }
        // The profile's trapped imports: linked, for this component alone, to functions that
        // trap (every import left unlinked is one of them: the others were refused above).
        let trap_linker;
        let linker = if trapped.is_empty() {
            &self.inner.linker
        } else {
            let mut l = self.inner.linker.clone();
            link_traps(&mut l, engine, &component, &trapped).map_err(|e| LoadError::Link {
                message: error_chain(&e),
            })?;
            trap_linker = l;
            &trap_linker
        };
        let budget = Budget {
            profile: profile.to_string(),
            max_memory_bytes: eff.limits.max_memory_bytes,
            deadline_base_ms: eff.limits.deadline_base_ms,
            max_configure_ms: eff.limits.max_configure_ms,
        };

        // `evaluate-batch` of the contract's interface, for the bounded lift (`crate::lift`).
        let evaluate_batch = component
            .get_export_index(None, &export)
            .and_then(|iface| component.get_export_index(Some(&iface), "evaluate-batch"))
            .ok_or_else(|| LoadError::Link {
                message: "the rules interface exports no evaluate-batch".to_string(),
            })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                message: error_chain(&e),
            })?;
        Guest::check_exports(contract, pre.clone()).map_err(|e| LoadError::Link {
            message: error_chain(&e),
        })?;

        let log = LogBuffer::new(self.limits().max_log_bytes);
        let mut store = self.new_store(&log, &budget);
        let describe_error = |store: &mut Store<StoreState>, e: wasmtime::Error| {
            let (kind, message) = classify(&e, store, &log, 0, self.deadline_ms(&budget, 0));
            LoadError::Describe {
                message: format!("{kind}: {message}"),
            }
        };
        let instance = match pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(describe_error(&mut store, e)),
        };
        let guest = match Guest::new(contract, &mut store, &instance) {
            Ok(g) => g,
            Err(e) => return Err(describe_error(&mut store, e)),
        };
        // The bounded result type must match the component's `evaluate-batch` (it mirrors the
        // contract's `batch-output`); checked once here, so calls can skip the check.
        let func = instance
            .get_func(&mut store, evaluate_batch)
            .ok_or_else(|| LoadError::Link {
                message: "evaluate-batch is not a function".to_string(),
            })?;
        let typed = match contract {
            Contract::V0_2_0 => func
                .typed::<(crate::bindings::wit::DayBatch<'_>,), (crate::lift::BatchOutput,)>(&store)
                .map(drop),
            Contract::V0_1_0 => func
                .typed::<(
                    crate::bindings::v0_1_0::wit::DayBatch<'_>,
                ), (crate::lift::BatchOutputV0_1_0,)>(&store)
                .map(drop),
        };
        typed.map_err(|e| LoadError::Link {
            message: error_chain(&e),
        })?;
        let info = match guest.describe(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(describe_error(&mut store, e)),
        };
        let (info, params_schema) = checked_info(info, self.limits())
            .map_err(|message| LoadError::InvalidInfo { message })?;
        Ok(LoadedPlugin {
            info,
            digest: hex::encode(digest),
            size,
            pre,
            contract,
            evaluate_batch,
            max_params_bytes: self.limits().max_params_bytes,
            params_schema,
            budget,
        })
    }
}

/// Refuses profiles and grants that cannot mean what they say: a profile named `standard`, a
/// grant to a profile that does not exist, a digest that is not 64 hex digits.
fn check_profiles(config: &EngineConfig) -> Result<(), String> {
    if config.profiles.contains_key(crate::config::STANDARD) {
        return Err(format!(
            "profiles: `{}` is the name of the standard limits (`[limits]` and `[pool]`); \
             give the profile another name",
            crate::config::STANDARD
        ));
    }
    for (digest, profile) in &config.grants {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "grants: `{}` is not a component digest: write the 64 hex digits of its \
                 SHA-256, as `heatbill plugin check` prints them",
                crate::text::safe(digest)
            ));
        }
        if profile != crate::config::STANDARD && !config.profiles.contains_key(profile) {
            return Err(format!(
                "grants: {digest} is granted the profile `{}`, which does not exist; the \
                 profiles are {}",
                crate::text::safe(profile),
                config.profile_names().join(", ")
            ));
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Feeds a `Hash` into SHA-256, for a cache key that is stable across processes and builds
/// (std's `DefaultHasher` promises neither).
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The thread that advances the engine's epoch every tick, stopped and joined on drop.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("heatbill-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
