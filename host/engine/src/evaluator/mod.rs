//! Evaluating a chain for batches of customer-days.
//!
//! An [`Evaluator`] belongs to one worker thread and one chain. It owns one store and instance
//! per chain entry, created on first use and configured once with the entry's parameters (the
//! contract's rule: parameters are parsed once per instance, never per customer).
//!
//! # The flow of a batch
//!
//! For each chain entry in order, the customer-days still alive (none of the earlier plugins
//! failed them) are lowered in one `evaluate` call, each with the lines the earlier plugins
//! produced for it and its season position. Every result is checked (one result per input, at
//! most `max_lines_per_day` lines, line kinds that `configure` announced, amounts in whole fen,
//! decimals within the contract's range, a season only from a season plugin, rule-error messages
//! within `max_message_bytes`, and each line's invariants of category and payer, see
//! [`crate::invariants`]); a violation fails that customer-day with `invalid-output` naming the
//! plugin (and, for an invariant, its name).
//!
//! # Trap recovery
//!
//! A trap aborts the whole call, and leaves the instance in an unknown state. The engine drops
//! the instance (its slot goes back to the pool), instantiates and configures a fresh one, and
//! evaluates that batch's customer-days again **one at a time**, so that the customer-days the
//! plugin fails on are found and the others are billed: a failing customer never stops the
//! others. A plugin that traps on everyone would then cost a deadline per customer-day; time
//! budgets (twice the batch call's deadline per batch, `limits.retry_budget_ms` per plugin and
//! evaluator) stop the retries and fail the rest of the batch for that plugin as `skipped`.
//!
//! # Purity
//!
//! An instance that has evaluated `limits.fresh_instance_after` customer-days is replaced by a
//! freshly instantiated and configured one before its next call, so state a plugin keeps reaches
//! only so far; [`Evaluator::reset`] replaces them all (the runtime does at every shard).
//!
//! # The hot path
//!
//! Per batch and entry the host allocates a handful of vectors, not one per customer-day: the
//! lowered customer-days borrow their strings from the input (the bindings are generated in
//! borrowing mode), prior lines live in one flat buffer reused across calls, and a line's five
//! strings are one shared [`LineKind`] built when the instance was configured. No string is
//! formatted unless something failed.
//!
//! # Where things are
//!
//! This file holds the public face: [`Evaluator`] and its public methods, [`EntryCost`] and
//! [`PluginLog`]. The work is split by job, one file each, so that each can be read alone:
//!
//! - `batch`: a batch through the chain, one `evaluate-batch` call per entry, and the trap
//!   recovery that retries a failed batch one customer-day at a time;
//! - `instance`: each chain entry's instance, from instantiation and `configure` (with its line
//!   specs checked) to being dropped for purity or after a trap;
//! - `output`: the checks of what a plugin returned, and applying its lines;
//! - `bill`: a customer-day's bill under construction, the result it becomes, its errors;
//! - `lowering`: the conversions to and from the contract's types, and the columns of a call;
//! - `schedule`: [`ScheduleEvaluator`], a company's chain versions by effective date.

// `Result<Bill, BillError>` is the element of the result vector, not an early-return error: a
// `BillError` (136 bytes) is about the size of a `Bill`, and boxing it would cost an allocation
// per failed customer-day and make the harness's and runtime's matching clumsier.
#![allow(clippy::result_large_err)]

mod batch;
mod bill;
mod instance;
mod lowering;
mod output;
mod schedule;

pub use schedule::ScheduleEvaluator;

use std::sync::Arc;
use std::time::Duration;

use crate::bindings::wit;
use crate::chain::Chain;
use crate::engine::Engine;
use crate::error::{BillError, BillErrorKind, SetupError};
use crate::invariants::Totals;
use crate::model::{Bill, DayInput, LineKind};
use crate::sandbox::LogBuffer;
use crate::trap::classify;

use bill::{DayBill, finish};
use instance::{EntrySlot, EntryState, LiveInstance, format_logs};
use lowering::{
    BatchColumns, CallColumns, day_record, one_row_output, prior_line, row_bits, season_to_wit,
};

/// `invalid-output` with `message`: the engine's finding about what a plugin returned.
pub(crate) fn invalid(message: String) -> BillErrorKind {
    BillErrorKind::InvalidOutput { message }
}

/// Cuts `s` to at most `max` bytes (at a character boundary) and marks the cut with `…`.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

/// What a plugin printed, taken with [`Evaluator::take_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLog {
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// Its stdout and stderr, interleaved, ending with a marker if output was dropped.
    pub text: String,
}

/// Evaluates one chain for batches of customer-days, on one thread.
///
/// Create one per worker thread and chain (it is `Send`, not `Sync`); reuse it for every batch.
pub struct Evaluator {
    engine: Engine,
    chain: Arc<Chain>,
    slots: Vec<EntrySlot>,
    /// The per-call columns (season, prior lines, and a subset's gathered base columns);
    /// reused across calls so the hot path allocates nothing per customer-day.
    cols: CallColumns,
    /// Where each entry's line kinds start in the chain's list of prior kinds (entries not
    /// configured yet count as having none; entries are configured in chain order).
    offsets: Vec<u32>,
    /// The prior lines' categories, for a 0.1.0 plugin (`since_v0_1_0::day_batch`).
    prior_categories: Vec<u16>,
}

/// What one chain entry cost an evaluator on the nightly path (`evaluate`): its batch calls,
/// the customer-days they carried (those its day filter let through), and the time spent on
/// them: laying out the columns, the call itself, lifting and checking its output, applying its
/// lines. What `heatbill plugin bench` reports per plugin.
#[derive(Debug, Clone, Default)]
pub struct EntryCost {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `evaluate-batch` calls.
    pub calls: u64,
    /// Customer-days those calls carried.
    pub days: u64,
    /// Time spent on them.
    pub time: Duration,
}

impl Evaluator {
    /// An evaluator for `chain`; instances are created on first use (or by
    /// [`configure_all`](Self::configure_all)).
    pub fn new(engine: &Engine, chain: Arc<Chain>) -> Evaluator {
        let slots = chain
            .entries()
            .iter()
            .map(|e| EntrySlot {
                name: e.plugin().name().to_string(),
                version: e.plugin().version().to_string(),
                kind: e.plugin().kind(),
                contract: e.plugin().contract(),
                kinds: None,
                log: LogBuffer::new(engine.limits().max_log_bytes),
                state: EntryState::Empty,
                retry_left: Duration::from_millis(engine.limits().retry_budget_ms),
                cost: EntryCost {
                    name: e.plugin().name().to_string(),
                    version: e.plugin().version().to_string(),
                    ..EntryCost::default()
                },
            })
            .collect();
        Evaluator {
            engine: engine.clone(),
            chain,
            slots,
            cols: CallColumns::default(),
            offsets: Vec::new(),
            prior_categories: Vec::new(),
        }
    }

    /// The chain this evaluator runs.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Instantiates and configures every entry now, returning the first failure (bad params,
    /// a trap in `configure`, invalid line specs). Optional: `evaluate` does the same lazily and
    /// fails each customer-day with the entry's error instead.
    pub fn configure_all(&mut self) -> Result<(), SetupError> {
        for e in 0..self.slots.len() {
            if let Err(kind) = self.ensure_ready(e) {
                let s = &self.slots[e];
                return Err(SetupError {
                    company: self.chain.company().to_string(),
                    plugin: s.name.clone(),
                    plugin_version: s.version.clone(),
                    kind,
                });
            }
        }
        Ok(())
    }

    /// The line kinds each entry announced in `configure`, one list per chain entry in chain
    /// order (configuring the entries not ready yet). An entry whose `configure` failed has an
    /// empty list: every customer-day fails at it, so none of its lines can appear.
    ///
    /// The runtime records these once per chain version, and a stored bill names each line by
    /// (entry, index in this list) instead of repeating its code, description and unit: plugins
    /// are pure, so a chain version's kinds are the same on every host and every night.
    pub fn line_kinds(&mut self) -> Vec<Vec<Arc<LineKind>>> {
        (0..self.slots.len())
            .map(|e| {
                let _ = self.ensure_ready(e);
                match &self.slots[e].state {
                    EntryState::Ready(live) => live.kinds.clone(),
                    _ => Vec::new(),
                }
            })
            .collect()
    }

    /// What each entry of the chain cost this evaluator so far, in chain order.
    pub fn costs(&self) -> Vec<EntryCost> {
        self.slots.iter().map(|s| s.cost.clone()).collect()
    }

    /// Takes what the chain's plugins printed since the last take, as one text: each plugin's
    /// output under a `[name version]` header line (plugins with no output are left out;
    /// empty when none printed anything).
    pub fn take_log(&mut self) -> String {
        format_logs(self.take_plugin_logs())
    }

    /// Takes what the chain's plugins printed since the last take, per plugin (plugins with no
    /// output are left out).
    pub fn take_plugin_logs(&mut self) -> Vec<PluginLog> {
        self.slots
            .iter()
            .filter(|s| !s.log.is_empty())
            .map(|s| PluginLog {
                plugin: s.name.clone(),
                version: s.version.clone(),
                text: s.log.take(),
            })
            .collect()
    }

    /// Evaluates the chain for `days`: one result per input, in order. Batches longer than
    /// `limits.max_batch` are cut into calls of that size.
    pub fn evaluate(&mut self, days: &[DayInput]) -> Vec<Result<Bill, BillError>> {
        let refs: Vec<&DayInput> = days.iter().collect();
        let mut out = Vec::with_capacity(days.len());
        self.evaluate_refs(&refs, &mut out);
        out
    }

    /// [`evaluate`](Self::evaluate) over borrowed inputs, appending to `out`.
    pub fn evaluate_refs(&mut self, days: &[&DayInput], out: &mut Vec<Result<Bill, BillError>>) {
        let max = self.engine.limits().max_batch.max(1);
        for chunk in days.chunks(max) {
            self.run(chunk, out);
        }
    }

    /// Evaluates one customer-day through the chain with each plugin's single-day `evaluate`
    /// export instead of `evaluate-batch`: the dry run of one bill that an operator asks for
    /// (the admin API's "what would this customer be billed today?"), with the same filters,
    /// checks and error layers as the nightly path. Both paths must give the same bill; the
    /// integration tests compare them on every worked example.
    pub fn dry_run(&mut self, day: &DayInput) -> Result<Bill, BillError> {
        self.refresh();
        let mut bad = Vec::new();
        let base = BatchColumns::build(&[day], &mut bad);
        if let Some((_, message)) = bad.into_iter().next() {
            return Err(self.bill_error(None, day, BillErrorKind::Input { message }));
        }
        let record = match day_record(day) {
            Ok(r) => r,
            Err(message) => {
                return Err(self.bill_error(None, day, BillErrorKind::Input { message }));
            }
        };
        let tags: Vec<&str> = day.tags.iter().map(String::as_str).collect();
        let attributes: Vec<wit::Attribute<'_>> = day
            .attributes
            .iter()
            .map(|(k, v)| wit::Attribute { key: k, value: v })
            .collect();
        let days = [day];
        let mut accs = [DayBill {
            lines: Vec::new(),
            season: day.season.map(season_to_wit),
            totals: Totals::default(),
            error: None,
        }];
        for e in 0..self.slots.len() {
            if let Err(kind) = self.ensure_ready(e) {
                return Err(self.bill_error(Some(e), day, kind));
            }
            let EntrySlot { state, log, .. } = &mut self.slots[e];
            let EntryState::Ready(live) = state else {
                continue;
            };
            let f = live.filter;
            let bits = row_bits(base.bits[0], accs[0].season);
            if bits & f.all_of != f.all_of || bits & f.none_of != 0 {
                continue;
            }
            let prior: Vec<wit::PriorLine> = accs[0].lines.iter().map(|l| prior_line(l)).collect();
            let mut input = record.clone();
            input.season = accs[0].season;
            input.prior_lines = &prior;
            input.tags = &tags;
            input.attributes = &attributes;
            live.used += 1;
            let LiveInstance { store, guest, .. } = &mut **live;
            let budget = &self.chain.entries()[e].plugin().budget;
            self.engine.arm_deadline(store, budget, 1);
            store.data_mut().limiter.denied_memory = None;
            let mark = log.mark();
            let result = guest.evaluate(&mut *store, input).map_err(|err| {
                classify(&err, store, log, mark, self.engine.deadline_ms(budget, 1))
            });
            match result {
                Ok(output) => {
                    let output = one_row_output(output);
                    if let Err(message) = self.apply_batch(e, &days, &mut accs, &[0], output) {
                        return Err(self.bill_error(Some(e), day, invalid(message)));
                    }
                }
                Err((kind, message)) => {
                    self.slots[e].state = EntryState::Empty;
                    return Err(self.bill_error(
                        Some(e),
                        day,
                        BillErrorKind::Trap { kind, message },
                    ));
                }
            }
            if let Some(err) = accs[0].error.take() {
                return Err(*err);
            }
        }
        let [acc] = accs;
        finish(day, acc)
    }

    /// Drops every instance, used or not: the next call instantiates and configures afresh.
    /// (A chain entry whose `configure` failed stays failed.)
    pub fn reset(&mut self) {
        for slot in &mut self.slots {
            if let EntryState::Ready(_) = slot.state {
                slot.state = EntryState::Empty;
            }
        }
    }
}

/// The evaluator is the engine's to hand out; the method lives here, beside what it builds, so
/// that `engine.rs` does not import the evaluator that imports it.
impl Engine {
    /// An evaluator for `chain`, with every entry instantiated and configured now, so that bad
    /// parameters are one error here rather than one per customer-day
    /// ([`Evaluator::new`] + [`Evaluator::configure_all`]).
    pub fn evaluator(&self, chain: Arc<Chain>) -> Result<Evaluator, SetupError> {
        let mut ev = Evaluator::new(self, chain);
        ev.configure_all()?;
        Ok(ev)
    }
}
