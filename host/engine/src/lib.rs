//! The heatbill rules engine: runs heating companies' pricing plugins (WebAssembly components of
//! the `heatbill:rules@0.1.0` world, `wit/rules.wit`) for batches of customer-days, sandboxed.
//!
//! This crate has no database, no cache server and no async runtime, because it has two users:
//! the plugin test harness (`heatbill plugin check|test|bench`, an integrator's laptop) and the
//! nightly runtime (a CPU pool on every core of many hosts). Both call the same code with the
//! same limits, so a plugin that passes its tests behaves the same in production.
//!
//! # Using it
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use heatbill_engine::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::default())?;           // one per process
//! let season = engine.load(&std::fs::read("season.wasm")?)?;    // compiled once per digest
//! let tariff = engine.load(&std::fs::read("area_tariff.wasm")?)?;
//! let chain = Arc::new(Chain::new("harbin", [
//!     (season, serde_json::json!({"start": "2025-10-20", "end": "2026-04-20"})),
//!     (tariff, serde_json::json!({"prices": {"residential": "38.32"}})),
//! ])?);                                                          // params checked here
//! let mut evaluator = Evaluator::new(&engine, chain);           // one per worker thread
//! let day = DayInput::new("c1", chrono::NaiveDate::from_ymd_opt(2025, 10, 20).unwrap());
//! for result in evaluator.evaluate(&[day]) {                    // one result per input
//!     match result {
//!         Ok(bill) => println!("{}", bill.total),
//!         Err(e) => eprintln!("{e}"),                           // names company, customer,
//!     }                                                         // date, plugin, version
//! }
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! Every limit is data ([`Limits`], [`PoolConfig`], in [`EngineConfig`]) with its default
//! documented where it is defined, and every one is enforced and tested with a hostile plugin:
//! component size and shape (at load, before compiling: functions, body sizes, locals,
//! nesting, loops, locals × blocks), parameter schemas (size, `$ref` expansion, compiled
//! `pattern`s) and parameters (size, string lengths), linear memory per instance (a store
//! limiter plus the pool's cap), time per call (epoch interruption: a base plus an allowance per customer-day of the batch),
//! lines per customer-day, line kinds per plugin, string sizes (rule-error messages, line specs,
//! `describe`), batch size, and the plugin's log. WASI is linked with nothing granted (no files,
//! no environment, no network, a fixed clock and a fixed random source, see `sandbox`); any
//! other import fails the load with an error naming it.
//!
//! # The two error layers
//!
//! A plugin's *rule error* (`bad-params`, `missing-input`, `invalid-input`, `unsupported`) is
//! data: the plugin refused one customer-day and said why. A *trap* (a panic, a deadline, the
//! memory limit, any crash) is the host's finding about the plugin. The engine adds a third
//! source, its own checks of what a plugin returned (`invalid-output`). All of them end up as a
//! [`BillError`] for the customer-days concerned, naming company, customer, date, plugin and
//! version; the other customer-days of the batch are billed. Errors about the plugin itself
//! ([`LoadError`]) or a chain ([`ChainError`]) are said once, when it is uploaded or saved.
//!
//! # Two entry points, one rule
//!
//! [`Evaluator::evaluate`] is the nightly path: each plugin is called once per batch with the
//! contract's columnar `evaluate-batch`, only for the customer-days its `day-filter` admits.
//! [`Evaluator::dry_run`] bills one customer-day through each plugin's single-day `evaluate`, for
//! an operator's "what would this customer be billed?". Both apply the same checks and error
//! layers, and the integration tests hold them to the same bills on every worked example.
//!
//! # Trap recovery
//!
//! A trap aborts a whole `evaluate` call and leaves the instance unusable. The evaluator drops it,
//! takes a fresh one from the pool, configures it again, and retries the batch one customer-day
//! at a time to find the ones that trap; time budgets (per batch and per plugin) stop the retries
//! of a plugin that makes them expensive. See [`Evaluator`].
//!
//! # The compile cache
//!
//! Compiling a component takes Cranelift tens to hundreds of milliseconds, instantiating it a few
//! microseconds. The engine compiles each component once per digest and keeps it in memory; with
//! [`EngineConfig::cache_dir`] it also writes the precompiled artifact to disk, keyed by digest,
//! wasmtime version and the engine's compatibility hash, so that the next process (every worker
//! host, every `heatbill plugin test`) maps it instead of compiling. Both are bounded, by entries
//! and by bytes ([`EngineConfig::memory_cache_entries`], [`EngineConfig::memory_cache_bytes`],
//! [`EngineConfig::disk_cache_entries`], [`EngineConfig::disk_cache_bytes`]), the least recently
//! used evicted first, and both keep only components that loaded: an upload compiled and then
//! refused (its world, its imports, its `describe`) leaves nothing behind. [`CacheStats`] says
//! what they hold. See [`Engine`].
//!
//! # Where things are
//!
//! The modules import downwards only (`tests/tests/all/layout.rs` fails on a cycle). At the
//! bottom, what everything shares: `format` (an upload's bytes: size, header, digest), `config`
//! (the limits, and the wasmtime configuration built from them), `error`, `text`, `model`. Above
//! them the parts of loading and running a plugin: `sandbox` and `trapped` (the WASI a plugin
//! may use, and the store state it runs in), `bindings` (the contract's versions side by side,
//! instantiated in the sandbox's store state; what an import may name, [`Contract`]'s types or
//! a granted WASI interface), `compile` (the compiler child and the shape check), `cache`,
//! `plugin` (a loaded component), `cpu` (deadlines in CPU time), `trap`, `lift`, `columns`,
//! `invariants`. Then `engine` ([`Engine`]: load, compile cache, limits), which its parts never
//! import; and above it what takes an engine: `evaluator` (a chain run over batches; it also
//! holds [`Engine::evaluator`], so that `engine` does not name it) and `check` (`plugin check`'s
//! report).

#![warn(missing_docs)]

mod bindings;
mod cache;
mod chain;
mod check;
mod columns;
mod compile;
mod config;
/// The contract's limits and text rules, compiled from the SDK's source file so the host and
/// the SDK cannot drift apart (`plugins/sdk/src/contract.rs`).
#[path = "../../../plugins/sdk/src/contract.rs"]
pub mod contract;
mod cpu;
mod decimal;
mod engine;
mod error;
mod evaluator;
mod format;
mod invariants;
#[cfg(test)]
mod kit_constants;
mod lift;
mod model;
mod params;
mod plugin;
mod sandbox;
pub mod text;
mod trap;
mod trapped;
mod units;

pub use bindings::Contract;
pub use chain::{Chain, ChainEntry, Schedule};
pub use check::{CheckReport, ImportCheck};
pub use compile::{COMPILE_COMMAND, Structure, check_structure, compile_child_main};
pub use config::{CompileConfig, EngineConfig, INTERPRETED, Limits, PoolConfig, Profile, STANDARD};
pub use engine::{
    CONTRACT_VERSION, CacheStats, Engine, EngineError, LoadOutcome, RULES_INTERFACE, RULES_WORLD,
};
pub use error::{BillError, BillErrorKind, ChainError, LoadError, SetupError};
pub use evaluator::{EntryCost, Evaluator, PluginLog, ScheduleEvaluator};
pub use format::{BinaryFormat, component_digest};
pub use invariants::{MAX_LINE_AMOUNT_FEN, MAX_LINE_QUANTITY};
pub use model::{
    Bill, BillLine, CustomerClass, DayInput, HeatUnit, LineCategory, LineKind, ParamSpec,
    ParamType, Payer, PayerTotals, PluginInfo, PluginKind, RuleErrorKind, SeasonDay, SeasonPhase,
    ServiceStatus, TrapKind,
};
pub use plugin::LoadedPlugin;

/// The granted WASI interfaces (names without version; any WASI 0.2.x is accepted).
pub fn granted_interfaces() -> &'static [&'static str] {
    sandbox::GRANTED_INTERFACES
}

// What the runtime relies on: one engine and its plugins and chains shared by every worker
// thread, an evaluator moved into each.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    const fn sent<T: Send>() {}
    shared::<Engine>();
    shared::<LoadedPlugin>();
    shared::<Chain>();
    shared::<Schedule>();
    sent::<Evaluator>();
    sent::<ScheduleEvaluator>();
};
