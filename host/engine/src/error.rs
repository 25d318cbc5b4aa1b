//! The engine's errors, one enum per boundary.
//!
//! - [`LoadError`]: a component was refused (too big, not a component, wrong world, an import
//!   that is not granted, a bad `describe`). Said once, at upload or `plugin check`.
//! - [`ChainError`]: a chain or schedule was refused (parameters that do not match a plugin's
//!   declared parameters, overlapping effective dates). Said once, when the chain is saved.
//! - [`BillError`]: one customer-day could not be billed. This is the error of the hot path and
//!   it carries both of the contract's error layers: a *rule error* (the plugin refused: data) and
//!   a *trap* (the plugin crashed, ran out of time or memory: the host's finding), plus the host's
//!   own checks of what the plugin returned. Each names company, customer, date, plugin and
//!   version, so a parked bill says everything an operator needs.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::{RuleErrorKind, TrapKind};

/// Why a component was refused by [`Engine::load`](crate::Engine::load).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The component is larger than [`Limits::max_component_bytes`](crate::Limits).
    #[error(
        "the component is {size} bytes, over the limit of {limit} bytes \
         (limits.max_component_bytes); a Rust plugin: strip debug info (`strip = true` in the \
         release profile); a Python or JavaScript component carries its interpreter and loads \
         under a larger limits profile (`heatbill plugin check` names it; `--profile` in the \
         harness, an operator's grant in production)"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary ({detail}); upload the `.wasm` file the build produced")]
    NotWasm {
        /// What the first bytes looked like.
        detail: String,
    },
    /// The bytes are a core WebAssembly module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin with \
         `cargo build --release --target wasm32-wasip2` (which produces a component) or wrap \
         the module with `wasm-tools component new`"
    )]
    CoreModule,
    /// The component is malformed or uses a feature the engine does not enable.
    #[error("the component is malformed or uses an unsupported feature: {message}")]
    Malformed {
        /// Wasmtime's validation or compilation message.
        message: String,
    },
    /// The component's shape is over one of the limits checked before it is compiled
    /// (functions, body size, locals, nesting, loops, tables, memories).
    #[error(
        "the component has {found} {what}, over the limit of {limit} ({key}): compiling a \
         component of this shape costs the host too much; simplify the plugin or ask the \
         operator to raise the limit"
    )]
    OverLimit {
        /// The setting that holds the limit, e.g. `limits.max_loop_depth`.
        key: String,
        /// What was counted, e.g. `nested loops in function 3`.
        what: String,
        /// How many the component has.
        found: u64,
        /// The limit.
        limit: u64,
    },
    /// Compiling the component took longer, or needed more memory, than the engine allows.
    #[error(
        "compiling the component {what} ({key}), so it is refused: a component this costly to \
         compile is refused rather than let it stop the host; simplify the plugin (fewer, \
         smaller functions) or ask the operator to raise the limit"
    )]
    CompileLimit {
        /// The setting that holds the limit, e.g. `compile.timeout_ms`.
        key: String,
        /// What happened, e.g. `took longer than 30000 ms`.
        what: String,
    },
    /// The child process that compiles components failed for a reason of its own.
    #[error(
        "the compiler process failed ({message}); this is a problem of the host, not of the \
         component: tell the operator"
    )]
    Compiler {
        /// How it failed, and the end of what it wrote to stderr.
        message: String,
    },
    /// A component was to be loaded under a limits profile the engine does not have.
    #[error(
        "there is no limits profile `{}`; the profiles are {}",
        crate::text::safe(.profile), .known.join(", ")
    )]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
        /// The profiles there are, `standard` first.
        known: Vec<String>,
    },
    /// The component imports interfaces the sandbox does not grant.
    #[error(
        "the component imports {}, which {} not granted: heatbill plugins may import only the \
         WASI 0.2 interfaces Rust's standard library needs (cli, io, clocks, random, filesystem \
         types and preopens), all with nothing behind them; remove the dependency that pulls \
         the import in",
        list(.imports), if .imports.len() == 1 { "is" } else { "are" }
    )]
    ImportNotGranted {
        /// The denied imports, e.g. `heatbill-fixture:spy/network`.
        imports: Vec<String>,
    },
    /// The component does not export the contract's `rules` interface.
    #[error(
        "the component is not a heatbill rules plugin: it does not export `{expected}` \
         (world `heatbill:rules/rules-plugin@{version}`); it exports {}; implement the world \
         with the heatbill plugin SDK",
        if .found.is_empty() { "nothing".to_string() } else { list(.found) }
    )]
    WrongWorld {
        /// The export the engine looks for.
        expected: String,
        /// The contract version the engine serves.
        version: String,
        /// What the component exports instead.
        found: Vec<String>,
    },
    /// The component exports the rules interface of a contract version the engine does not serve.
    #[error(
        "the component was built for contract `{found}`, but this host serves \
         `heatbill:rules` versions {supported}; rebuild it against one of them (the SDK builds \
         the newest)"
    )]
    ContractVersion {
        /// The exported interface, e.g. `heatbill:rules/rules@0.3.0`.
        found: String,
        /// The versions the engine serves, newest first, e.g. `0.2.0, 0.1.0`.
        supported: String,
    },
    /// The component's imports or exports have the right names but the wrong types.
    #[error("the component does not match the contract's types: {message}")]
    Link {
        /// Wasmtime's type-check message.
        message: String,
    },
    /// Instantiating the component or calling `describe` failed.
    #[error("the component could not be instantiated or described: {message}")]
    Describe {
        /// What went wrong (a trap, an instantiation limit).
        message: String,
    },
    /// `describe` returned something the engine does not accept.
    #[error("describe() returned an invalid plugin-info: {message}")]
    InvalidInfo {
        /// What is wrong and how to fix it.
        message: String,
    },
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a [`Chain`](crate::Chain) or [`Schedule`](crate::Schedule) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A chain has no entries.
    #[error("company `{company}`: the rule chain is empty; add at least one plugin")]
    Empty {
        /// The company.
        company: String,
    },
    /// An entry's parameters do not match what its plugin declares.
    #[error(
        "company `{company}`: plugin {plugin} {version}: {}{problem}",
        match .key { Some(k) => format!("parameter `{k}`: "), None => String::new() }
    )]
    Params {
        /// The company.
        company: String,
        /// The plugin's name.
        plugin: String,
        /// The plugin's version.
        version: String,
        /// The offending key, if the problem is one key.
        key: Option<String>,
        /// What is wrong and what to write instead.
        problem: String,
    },
    /// A schedule has no chain versions, or two with the same effective date.
    #[error("company `{company}`: {problem}")]
    Schedule {
        /// The company.
        company: String,
        /// What is wrong.
        problem: String,
    },
}

/// Why one customer-day has no bill.
///
/// `Display` is one line naming company, customer, date, plugin and version, then the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct BillError {
    /// The company.
    pub company: String,
    /// The customer's id.
    pub customer: String,
    /// The bill date.
    pub date: NaiveDate,
    /// The name of the plugin that failed (empty for [`BillErrorKind::NoChain`]).
    pub plugin: String,
    /// Its version (empty for [`BillErrorKind::NoChain`]).
    pub plugin_version: String,
    /// What happened.
    pub kind: BillErrorKind,
}

impl fmt::Display for BillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "company `{}`, customer `{}`, {}",
            self.company, self.customer, self.date
        )?;
        if !self.plugin.is_empty() {
            write!(f, ", plugin {} {}", self.plugin, self.plugin_version)?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// What happened to a customer-day that has no bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BillErrorKind {
    /// The plugin refused (the contract's `rule-error`): data, not a crash.
    Rule {
        /// Which refusal.
        kind: RuleErrorKind,
        /// The plugin's message.
        message: String,
    },
    /// The plugin crashed, ran out of time or memory.
    Trap {
        /// How.
        kind: TrapKind,
        /// Wasmtime's message, with the plugin's panic message when there is one.
        message: String,
    },
    /// The plugin returned something the contract forbids (too many lines, an amount that is
    /// not whole fen, a line kind it never announced, the wrong number of results).
    InvalidOutput {
        /// What was wrong.
        message: String,
    },
    /// The host could not pass this customer-day to the plugin (a decimal outside the
    /// contract's range, a date out of range).
    Input {
        /// What was wrong.
        message: String,
    },
    /// The customer-day was not evaluated by this plugin: the plugin failed its batch, and
    /// retrying the batch's customer-days one at a time spent the plugin's time budget (the
    /// circuit breaker, `limits.retry_budget_ms`). A re-run of the date bills it.
    Skipped {
        /// Why.
        reason: String,
    },
    /// No version of the company's chain is in force on the date.
    NoChain,
}

impl BillErrorKind {
    /// A short stable name of the kind, as case files write it: the rule-error kind
    /// (`bad-params`, `missing-input`, …) for rule errors, `trap`, `invalid-output`, `input`,
    /// `skipped`, `no-chain`.
    pub fn name(&self) -> &'static str {
        match self {
            BillErrorKind::Rule { kind, .. } => kind.as_str(),
            BillErrorKind::Trap { .. } => "trap",
            BillErrorKind::InvalidOutput { .. } => "invalid-output",
            BillErrorKind::Input { .. } => "input",
            BillErrorKind::Skipped { .. } => "skipped",
            BillErrorKind::NoChain => "no-chain",
        }
    }
}

impl fmt::Display for BillErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BillErrorKind::Rule { kind, message } => write!(f, "rule error ({kind}): {message}"),
            BillErrorKind::Trap { kind, message } => write!(f, "trap ({kind}): {message}"),
            BillErrorKind::InvalidOutput { message } => write!(f, "invalid output: {message}"),
            BillErrorKind::Input { message } => write!(f, "input not passed: {message}"),
            BillErrorKind::Skipped { reason } => write!(f, "skipped: {reason}"),
            BillErrorKind::NoChain => f.write_str("no rule chain is in force on this date"),
        }
    }
}

/// A chain entry that could not be instantiated and configured
/// ([`Evaluator::configure_all`](crate::Evaluator::configure_all)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("company `{company}`, plugin {plugin} {plugin_version}: configure failed: {kind}")]
pub struct SetupError {
    /// The company.
    pub company: String,
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// What happened (a rule error such as bad-params, a trap, invalid line specs).
    pub kind: BillErrorKind,
}

/// Wasmtime's error with its causes, one line.
pub(crate) fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
