//! Instance lifecycle: each chain entry's [`EntrySlot`], its state (empty, ready, failed), and
//! the live instance itself; `ensure_ready` instantiates and configures an entry (checking the
//! line specs `configure` announced, [`line_kinds`]), `refresh` drops instances for purity.
//!
//! Everything that touches a store outside an evaluation call is here, so the rules about when
//! an instance is made, kept, replaced or given up on (a trap, `fresh_instance_after`, a
//! `configure` that fails or is too slow) read in one place.
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::lowering::category_from_wit;
use super::{EntryCost, Evaluator, PluginLog};
use super::{invalid, truncate};
use crate::bindings::{Contract, Guest, wit};
use crate::cpu::thread_cpu_time;
use crate::error::BillErrorKind;
use crate::model::{LineKind, PluginKind, RuleErrorKind};
use crate::sandbox::{LogBuffer, StoreState};
use crate::trap::classify;

/// One chain entry as this evaluator holds it: the plugin's identity, the line kinds it
/// announced, its log, its instance (or why it has none), and what it has spent.
pub(super) struct EntrySlot {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) kind: PluginKind,
    /// The contract version the plugin implements.
    pub(super) contract: Contract,
    /// The line kinds the entry announced, once it has been configured (empty if `configure`
    /// failed). Plugins are pure, so they are the same for every instance; kept across
    /// instances because later entries name prior lines by their place in the chain's list.
    pub(super) kinds: Option<Vec<Arc<LineKind>>>,
    pub(super) log: LogBuffer,
    pub(super) state: EntryState,
    /// What is left of the plugin's retry budget (`limits.retry_budget_ms`) in this evaluator.
    pub(super) retry_left: Duration,
    /// What the entry cost on the nightly path (see [`EntryCost`]).
    pub(super) cost: EntryCost,
}

/// Where an entry's instance stands.
pub(super) enum EntryState {
    /// Not instantiated yet, or dropped after a trap.
    Empty,
    /// Instantiated and configured.
    Ready(Box<LiveInstance>),
    /// `configure` refused or crashed: every customer-day fails with this. Plugins are pure, so
    /// a second instance would fail the same way.
    Failed(BillErrorKind),
}

/// An instantiated and configured instance of an entry's plugin, with what its `configure`
/// returned.
pub(super) struct LiveInstance {
    pub(super) store: Store<StoreState>,
    pub(super) guest: Guest,
    /// `evaluate-batch`, typed at load with the bounded result (`crate::lift`).
    pub(super) evaluate_batch: wasmtime::component::Func,
    pub(super) kinds: Vec<Arc<LineKind>>,
    /// The customer-days this configuration bills (`configure`'s `applies-to`).
    pub(super) filter: wit::DayFilter,
    /// Customer-days the instance has evaluated since `configure`.
    pub(super) used: u64,
}

impl Evaluator {
    /// Drops every instance that has evaluated `limits.fresh_instance_after` customer-days, so
    /// that its next call starts from a freshly configured one: whatever a plugin keeps in its
    /// memory reaches that far and no further. State *within* one call is not reachable this
    /// way; `plugin test` bills each case in varied batches to catch it, and a run re-bills a
    /// sample alone.
    pub(super) fn refresh(&mut self) {
        let after = self.engine.limits().fresh_instance_after;
        if after == 0 {
            return;
        }
        for slot in &mut self.slots {
            if let EntryState::Ready(live) = &slot.state
                && live.used >= after
            {
                slot.state = EntryState::Empty;
            }
        }
    }

    /// Instantiates and configures entry `e` if it is not ready.
    pub(super) fn ensure_ready(&mut self, e: usize) -> Result<(), BillErrorKind> {
        match &self.slots[e].state {
            EntryState::Ready(_) => return Ok(()),
            EntryState::Failed(kind) => return Err(kind.clone()),
            EntryState::Empty => {}
        }
        let entry = &self.chain.entries()[e];
        // Prior lines name their kind by its place in the chain's list (a u16 in a batch).
        let kinds_before: usize = self.slots[..e]
            .iter()
            .map(|s| s.kinds.as_ref().map_or(0, Vec::len))
            .sum();
        let slot = &mut self.slots[e];
        let budget = &entry.plugin().budget;
        let mut store = self.engine.new_store(&slot.log, budget);
        let mark = slot.log.mark();
        let instantiated = entry
            .plugin()
            .pre
            .instantiate(&mut store)
            .and_then(|instance| {
                let guest = Guest::new(slot.contract, &mut store, &instance)?;
                let batch = instance
                    .get_func(&mut store, entry.plugin().evaluate_batch)
                    .ok_or_else(|| wasmtime::format_err!("evaluate-batch is not a function"))?;
                Ok((guest, batch))
            });
        let (guest, evaluate_batch) = match instantiated {
            Ok(g) => g,
            // Not remembered: instantiation fails for reasons of the host too (a full pool).
            Err(err) => {
                let (trap, message) = classify(
                    &err,
                    &mut store,
                    &slot.log,
                    mark,
                    self.engine.deadline_ms(budget, 0),
                );
                return Err(BillErrorKind::Trap {
                    kind: trap,
                    message: format!("instantiating the plugin failed: {message}"),
                });
            }
        };
        let configure_started = thread_cpu_time();
        let configured = guest.configure(&mut store, entry.params_json());
        let configure_took = thread_cpu_time().saturating_sub(configure_started);
        let max_configure = Duration::from_millis(budget.max_configure_ms);
        let result = match configured {
            // A configure this slow (in CPU time, so a busy machine does not count) is reported
            // as such, whatever it returned: one that runs near its deadline would overrun it
            // on some later configure (after a trap, for the next batch) and fail customers at
            // random. Failing it here, every time it is this slow, is the deterministic outcome.
            Ok(_) if configure_took > max_configure => Err(BillErrorKind::Trap {
                kind: crate::model::TrapKind::Deadline,
                message: format!(
                    "configure is too slow: it took {} ms, and limits.max_configure_ms is {} \
                     (its hard deadline is {} ms); configure runs for every batch, so make it \
                     cheaper (parse the parameters, nothing more)",
                    configure_took.as_millis(),
                    max_configure.as_millis(),
                    self.engine.deadline_ms(budget, 0)
                ),
            }),
            Err(err) => {
                let (trap, message) = classify(
                    &err,
                    &mut store,
                    &slot.log,
                    mark,
                    self.engine.deadline_ms(budget, 0),
                );
                Err(BillErrorKind::Trap {
                    kind: trap,
                    message: format!("in configure: {message}"),
                })
            }
            Ok(Err(rule)) => {
                let (rule, message) = match rule {
                    wit::RuleError::BadParams(m) => (RuleErrorKind::BadParams, m),
                    wit::RuleError::MissingInput(m) => (RuleErrorKind::MissingInput, m),
                    wit::RuleError::InvalidInput(m) => (RuleErrorKind::InvalidInput, m),
                    wit::RuleError::Unsupported(m) => (RuleErrorKind::Unsupported, m),
                };
                let mut message = message;
                truncate(&mut message, self.engine.limits().max_message_bytes);
                Err(BillErrorKind::Rule {
                    kind: rule,
                    message: format!("configure refused the parameters: {message}"),
                })
            }
            Ok(Ok(config)) => {
                line_kinds(slot, e, config.lines, self.engine.limits().max_line_specs)
                    .map(|kinds| (kinds, config.applies_to))
            }
        };
        let result = match result {
            Ok((kinds, _))
                if kinds_before + kinds.len() > crate::contract::MAX_CHAIN_LINE_KINDS =>
            {
                Err(invalid(format!(
                    "configure announced {} line kinds, which makes {} in the chain so far; a \
                     chain's entries may announce at most 65536 together",
                    kinds.len(),
                    kinds_before + kinds.len()
                )))
            }
            other => other,
        };
        if slot.kinds.is_none() {
            slot.kinds = Some(match &result {
                Ok((kinds, _)) => kinds.clone(),
                Err(_) => Vec::new(),
            });
            let mut at = 0u32;
            self.offsets = self
                .slots
                .iter()
                .map(|s| {
                    let offset = at;
                    at += s.kinds.as_ref().map_or(0, |k| k.len() as u32);
                    offset
                })
                .collect();
        }
        let slot = &mut self.slots[e];
        match result {
            Ok((kinds, filter)) => {
                slot.state = EntryState::Ready(Box::new(LiveInstance {
                    store,
                    guest,
                    evaluate_batch,
                    kinds,
                    filter,
                    used: 0,
                }));
                Ok(())
            }
            Err(kind) => {
                slot.state = EntryState::Failed(kind.clone());
                Err(kind)
            }
        }
    }
}

/// Builds the shared line kinds from `configure`'s specs, checking the contract's limits.
fn line_kinds(
    slot: &EntrySlot,
    entry: usize,
    specs: Vec<wit::LineSpec>,
    max: usize,
) -> Result<Vec<Arc<LineKind>>, BillErrorKind> {
    let max = max.min(crate::contract::MAX_CHAIN_LINE_KINDS);
    if specs.len() > max {
        return Err(invalid(format!(
            "configure announced {} line kinds; the limit is {max} (limits.max_line_specs)",
            specs.len()
        )));
    }
    specs
        .into_iter()
        .enumerate()
        .map(|(n, s)| {
            // The same rules the SDK applies in `configure` (one source file for both).
            if let Some(problem) =
                crate::contract::line_spec_problem(n, &s.code, &s.description, &s.unit)
            {
                return Err(invalid(problem));
            }
            Ok(Arc::new(LineKind {
                plugin: slot.name.clone(),
                plugin_version: slot.version.clone(),
                code: s.code,
                description: s.description,
                unit: s.unit,
                category: category_from_wit(s.category),
                entry: entry as u32,
                index: n as u16,
            }))
        })
        .collect()
}

/// The plugins' logs as one text, each under a `[name version]` header line.
pub(super) fn format_logs(logs: Vec<PluginLog>) -> String {
    let mut text = String::new();
    for l in logs {
        text.push_str(&format!("[{} {}]\n", l.plugin, l.version));
        text.push_str(&l.text);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}
