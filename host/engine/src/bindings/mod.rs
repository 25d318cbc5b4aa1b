//! The generated bindings of every contract version the host serves, one module per version
//! (the newest, `heatbill:rules@0.2.0` from `wit/rules.wit`, and the frozen 0.1.0 from
//! `wit/deps/rules-0.1.0/rules.wit`), and [`Guest`]: a plugin instance of any of them, called
//! with the newest version's types.
//!
//! The engine works in the newest version's types ([`wit`]) alone. An older version's plugin is
//! adapted at the boundary (`since_v0_1_0`): its inputs are the newest inputs with the new
//! fields left out, its outputs are turned into the newest outputs with the new fields empty,
//! so it bills exactly as it did under the host that was built for it.
//!
//! Synchronous (the engine runs on a CPU pool, never inside an async task) and *borrowing*: the
//! customer-days the host passes to `evaluate` borrow their strings and lists from the caller's
//! [`DayInput`](crate::DayInput)s and from one flat buffer of prior lines per batch, so lowering a
//! batch allocates nothing on the host per customer.

use wasmtime::Store;
use wasmtime::component::Instance;

use crate::sandbox::StoreState;

pub(crate) mod since_v0_1_0;

/// `heatbill:rules@0.2.0`, the newest version: the engine's own types.
pub(crate) mod latest {
    // Generated code: it uses `unsafe` internally (typed function handles) and leaves some host
    // helpers unused; neither is ours to change.
    #![allow(missing_docs, unsafe_code, unused, clippy::all)]
    wasmtime::component::bindgen!({
        world: "heatbill:rules/rules-plugin@0.2.0",
        path: "../../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

/// `heatbill:rules@0.1.0`, frozen.
pub(crate) mod v0_1_0 {
    #![allow(missing_docs, unsafe_code, unused, clippy::all)]
    wasmtime::component::bindgen!({
        world: "heatbill:rules/rules-plugin@0.1.0",
        path: "../../wit/deps/rules-0.1.0",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
    pub(crate) use heatbill::rules::types as wit;
}

pub(crate) use latest::heatbill::rules0_2_0::types as wit;

/// A contract version the host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contract {
    /// `heatbill:rules@0.1.0` (frozen; served through an adapter).
    V0_1_0,
    /// `heatbill:rules@0.2.0`, the newest.
    V0_2_0,
}

impl Contract {
    /// Every version served, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1_0, Contract::V0_2_0];
    /// The newest version: what `plugin new` and the SDK build.
    pub const LATEST: Contract = Contract::V0_2_0;

    /// The version, e.g. `0.2.0`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
            Contract::V0_2_0 => "0.2.0",
        }
    }

    /// The served version a package version belongs to: `0.2.0`, or a later patch of a served
    /// minor version (its types are the same by semver).
    pub fn of_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| {
            let minor = c.as_str().rsplit_once('.').map_or("", |(m, _)| m);
            version
                .strip_prefix(minor)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// The version a component's export name implements: `heatbill:rules/rules@0.2.0` (or a
    /// later patch of a served minor version).
    pub fn of_export(name: &str) -> Option<Contract> {
        Contract::of_version(name.strip_prefix("heatbill:rules/rules@")?)
    }

    /// The versions served, newest first, e.g. `0.2.0, 0.1.0` (for messages).
    pub fn served() -> String {
        let mut v: Vec<&str> = Contract::ALL.iter().map(|c| c.as_str()).collect();
        v.reverse();
        v.join(", ")
    }
}

/// The contract's own types interface, one per version served ([`Contract::ALL`]). A world that
/// exports `rules` imports it implicitly (for the type definitions `rules` uses); it has no
/// functions, so linking it grants nothing.
pub(crate) const CONTRACT_TYPES: &str = "heatbill:rules/types";

/// Links the contract's types interfaces, one per version served.
pub(crate) fn link_types<T>(linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
    for c in Contract::ALL {
        linker.instance(&format!("{CONTRACT_TYPES}@{c}"))?;
    }
    Ok(())
}

/// Whether an import name (e.g. `wasi:cli/stdout@0.2.6`) is one the engine links: a WASI 0.2
/// interface the sandbox grants ([`crate::sandbox::GRANTED_INTERFACES`]), or the types of a
/// contract version served. Here rather than in the sandbox, which knows nothing of the contract.
pub(crate) fn is_granted(import: &str) -> bool {
    match import.split_once('@') {
        Some((CONTRACT_TYPES, v)) => Contract::of_version(v).is_some(),
        Some((name, v)) => {
            v.starts_with("0.2.") && crate::sandbox::GRANTED_INTERFACES.contains(&name)
        }
        None => false,
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin instance of any served version, called with the newest version's types.
pub(crate) enum Guest {
    Latest(latest::RulesPlugin),
    V0_1_0(v0_1_0::RulesPlugin),
}

impl Guest {
    /// Binds the exports of `instance`, which implements `contract`.
    pub(crate) fn new(
        contract: Contract,
        store: &mut Store<StoreState>,
        instance: &Instance,
    ) -> wasmtime::Result<Guest> {
        Ok(match contract {
            Contract::V0_2_0 => Guest::Latest(latest::RulesPlugin::new(store, instance)?),
            Contract::V0_1_0 => Guest::V0_1_0(v0_1_0::RulesPlugin::new(store, instance)?),
        })
    }

    /// Checks once, at load, that a linked component has the exports its version promises.
    pub(crate) fn check_exports(
        contract: Contract,
        pre: wasmtime::component::InstancePre<StoreState>,
    ) -> wasmtime::Result<()> {
        match contract {
            Contract::V0_2_0 => latest::RulesPluginPre::new(pre).map(drop),
            Contract::V0_1_0 => v0_1_0::RulesPluginPre::new(pre).map(drop),
        }
    }

    pub(crate) fn describe(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<wit::PluginInfo> {
        match self {
            Guest::Latest(g) => g.heatbill_rules0_2_0_rules().call_describe(store),
            Guest::V0_1_0(g) => g
                .heatbill_rules_rules()
                .call_describe(store)
                .map(since_v0_1_0::plugin_info),
        }
    }

    pub(crate) fn configure(
        &self,
        store: &mut Store<StoreState>,
        params: &str,
    ) -> wasmtime::Result<Result<wit::Configuration, wit::RuleError>> {
        match self {
            Guest::Latest(g) => g.heatbill_rules0_2_0_rules().call_configure(store, params),
            Guest::V0_1_0(g) => g
                .heatbill_rules_rules()
                .call_configure(store, params)
                .map(|r| {
                    r.map(since_v0_1_0::configuration)
                        .map_err(since_v0_1_0::rule_error)
                }),
        }
    }

    pub(crate) fn evaluate(
        &self,
        store: &mut Store<StoreState>,
        day: wit::CustomerDay<'_>,
    ) -> wasmtime::Result<Result<wit::DayOutput, wit::RuleError>> {
        match self {
            Guest::Latest(g) => g.heatbill_rules0_2_0_rules().call_evaluate(store, day),
            Guest::V0_1_0(g) => {
                let prior = since_v0_1_0::prior_lines(day.prior_lines);
                let attributes = since_v0_1_0::attributes(day.attributes);
                g.heatbill_rules_rules()
                    .call_evaluate(store, since_v0_1_0::customer_day(&day, &attributes, &prior))
                    .map(|r| {
                        r.map(since_v0_1_0::day_output)
                            .map_err(since_v0_1_0::rule_error)
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_imports_are_wasi_0_2_without_sockets() {
        assert!(is_granted("wasi:cli/stdout@0.2.6"));
        assert!(is_granted("wasi:io/streams@0.2.0"));
        assert!(!is_granted("wasi:sockets/tcp@0.2.6"));
        assert!(!is_granted("wasi:http/outgoing-handler@0.2.6"));
        assert!(!is_granted("heatbill-fixture:spy/network"));
        assert!(!is_granted("wasi:cli/stdout@0.3.0"));
        assert!(is_granted("heatbill:rules/types@0.1.0"));
        assert!(is_granted("heatbill:rules/types@0.2.0"));
        assert!(!is_granted("heatbill:rules/types@0.3.0"));
    }
}
