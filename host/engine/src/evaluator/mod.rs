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

// `Result<Bill, BillError>` is the element of the result vector, not an early-return error: a
// `BillError` (136 bytes) is about the size of a `Bill`, and boxing it would cost an allocation
// per failed customer-day and make the harness's and runtime's matching clumsier.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Datelike;
use wasmtime::Store;

use crate::bindings::{Contract, Guest, since_v0_1_0, wit};
use crate::chain::{Chain, Schedule};
use rust_decimal::Decimal;

use crate::columns::{self, Column};
use crate::decimal::to_wit;
use crate::engine::Engine;
use crate::error::{BillError, BillErrorKind, SetupError};
use crate::invariants::{self, Broken, LineFacts, Totals};
use crate::lift;
use crate::model::{
    Bill, BillLine, CustomerClass, DayInput, LineCategory, LineKind, Payer, PayerTotals,
    PluginKind, RuleErrorKind, SeasonDay, SeasonPhase, ServiceStatus,
};
use crate::sandbox::{LogBuffer, StoreState};
use crate::trap::classify;

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
    slots: Vec<Slot>,
    /// The per-call columns (season, prior lines, and a subset's gathered base columns);
    /// reused across calls so the hot path allocates nothing per customer-day.
    cols: CallColumns,
    /// Where each entry's line kinds start in the chain's list of prior kinds (entries not
    /// configured yet count as having none; entries are configured in chain order).
    offsets: Vec<u32>,
    /// The prior lines' categories, for a 0.1.0 plugin (`since_v0_1_0::day_batch`).
    prior_categories: Vec<u16>,
}

struct Slot {
    name: String,
    version: String,
    kind: PluginKind,
    /// The contract version the plugin implements.
    contract: Contract,
    /// The line kinds the entry announced, once it has been configured (empty if `configure`
    /// failed). Plugins are pure, so they are the same for every instance; kept across
    /// instances because later entries name prior lines by their place in the chain's list.
    kinds: Option<Vec<Arc<LineKind>>>,
    log: LogBuffer,
    state: SlotState,
    /// What is left of the plugin's retry budget (`limits.retry_budget_ms`) in this evaluator.
    retry_left: Duration,
    /// What the entry cost on the nightly path (see [`EntryCost`]).
    cost: EntryCost,
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

enum SlotState {
    /// Not instantiated yet, or dropped after a trap.
    Empty,
    /// Instantiated and configured.
    Ready(Box<Live>),
    /// `configure` refused or crashed: every customer-day fails with this. Plugins are pure, so
    /// a second instance would fail the same way.
    Failed(BillErrorKind),
}

struct Live {
    store: Store<StoreState>,
    guest: Guest,
    /// `evaluate-batch`, typed at load with the bounded result (`crate::lift`).
    evaluate_batch: wasmtime::component::Func,
    kinds: Vec<Arc<LineKind>>,
    /// The customer-days this configuration bills (`configure`'s `applies-to`).
    filter: wit::DayFilter,
    /// Customer-days the instance has evaluated since `configure`.
    used: u64,
}

/// One customer-day's bill under construction.
struct Acc {
    lines: Vec<BillLine>,
    season: Option<wit::SeasonDay>,
    /// The lines' totals by payer, in fen, kept with checked arithmetic as the lines arrive, so
    /// that an overflow is blamed on the plugin whose line caused it.
    totals: Totals,
    /// Boxed: an `Acc` per customer-day of the batch stays small, and errors are rare.
    error: Option<Box<BillError>>,
}

/// A line as it crosses the boundary again, to a later plugin: category and payer codes,
/// (units, scale) decimals.
///
/// Made only for the customer-days a later plugin is called for (its day filter admits them),
/// which is why it is derived here rather than kept beside every line.
#[derive(Clone, Copy)]
struct RawLine {
    /// The line's index in the chain's list of prior kinds (`day-batch.prior-kinds`).
    kind: u16,
    payer: u8,
    quantity: (i64, u8),
    unit_price: (i64, u8),
    amount: (i64, u8),
    /// (0, 0) for none.
    season_amount: (i64, u8),
}

impl RawLine {
    /// `offsets[e]`: where entry e's kinds start in the chain's list of prior kinds.
    fn of(l: &BillLine, offsets: &[u32]) -> RawLine {
        // Every decimal of a bill line was made from an s64 and a scale of at most 18 (see
        // `columns::decimal_at` and `columns::amount_at`), so these conversions are exact.
        let raw = |d: Decimal| (d.mantissa() as i64, d.scale() as u8);
        let offset = offsets.get(l.kind.entry as usize).copied().unwrap_or(0);
        RawLine {
            kind: (offset + u32::from(l.kind.index)) as u16,
            payer: match l.payer {
                Payer::Customer => 0,
                Payer::Government => 1,
                Payer::Employer => 2,
            },
            quantity: raw(l.quantity),
            unit_price: raw(l.unit_price),
            amount: raw(l.amount),
            season_amount: l.season_amount.map_or((0, 0), raw),
        }
    }
}

/// One customer-day's part of a `batch-output`.
struct Row<'o> {
    lines: &'o wit::LineColumnResult,
    range: std::ops::Range<usize>,
    refusal: Option<wit::RuleError>,
    season: Option<(&'o wit::SeasonColumn, usize)>,
}

impl Evaluator {
    /// An evaluator for `chain`; instances are created on first use (or by
    /// [`prepare`](Self::prepare)).
    pub fn new(engine: &Engine, chain: Arc<Chain>) -> Evaluator {
        let slots = chain
            .entries()
            .iter()
            .map(|e| Slot {
                name: e.plugin().name().to_string(),
                version: e.plugin().version().to_string(),
                kind: e.plugin().kind(),
                contract: e.plugin().contract(),
                kinds: None,
                log: LogBuffer::new(engine.limits().max_log_bytes),
                state: SlotState::Empty,
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
    pub fn prepare(&mut self) -> Result<(), SetupError> {
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
                    SlotState::Ready(live) => live.kinds.clone(),
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
        let base = Base::build(&[day], &mut bad);
        if let Some((_, message)) = bad.into_iter().next() {
            return Err(self.bill_error(usize::MAX, day, BillErrorKind::Input { message }));
        }
        let record = match day_record(day) {
            Ok(r) => r,
            Err(message) => {
                return Err(self.bill_error(usize::MAX, day, BillErrorKind::Input { message }));
            }
        };
        let tags: Vec<&str> = day.tags.iter().map(String::as_str).collect();
        let attributes: Vec<wit::Attribute<'_>> = day
            .attributes
            .iter()
            .map(|(k, v)| wit::Attribute { key: k, value: v })
            .collect();
        let days = [day];
        let mut accs = [Acc {
            lines: Vec::new(),
            season: day.season.map(season_to_wit),
            totals: Totals::default(),
            error: None,
        }];
        for e in 0..self.slots.len() {
            if let Err(kind) = self.ensure_ready(e) {
                return Err(self.bill_error(e, day, kind));
            }
            let Slot { state, log, .. } = &mut self.slots[e];
            let SlotState::Ready(live) = state else {
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
            let Live { store, guest, .. } = &mut **live;
            store.set_epoch_deadline(self.engine.deadline_ticks(1));
            store.data_mut().limiter.denied_memory = None;
            let mark = log.mark();
            let result = guest
                .evaluate(&mut *store, input)
                .map_err(|err| classify(&err, store, log, mark, self.engine.deadline_ms(1)));
            match result {
                Ok(output) => {
                    let output = one_row_output(output);
                    if let Err(message) = self.apply_batch(e, &days, &mut accs, &[0], output) {
                        return Err(self.bill_error(e, day, invalid(message)));
                    }
                }
                Err((kind, message)) => {
                    self.slots[e].state = SlotState::Empty;
                    return Err(self.bill_error(e, day, BillErrorKind::Trap { kind, message }));
                }
            }
            if let Some(err) = accs[0].error.take() {
                return Err(*err);
            }
        }
        let [acc] = accs;
        finish(day, acc)
    }

    fn run(&mut self, days: &[&DayInput], out: &mut Vec<Result<Bill, BillError>>) {
        self.refresh();
        let n = days.len();
        // The columns that stay the same along the chain, built once per batch.
        let mut bad: Vec<(usize, String)> = Vec::new();
        let base = Base::build(days, &mut bad);
        let mut accs: Vec<Acc> = days
            .iter()
            .map(|d| Acc {
                lines: Vec::new(),
                season: d.season.map(season_to_wit),
                totals: Totals::default(),
                error: None,
            })
            .collect();
        for (i, message) in bad {
            if accs[i].error.is_none() {
                accs[i].error =
                    Some(self.boxed_error(usize::MAX, days[i], BillErrorKind::Input { message }));
            }
        }

        let mut alive: Vec<usize> = Vec::with_capacity(n);
        for e in 0..self.slots.len() {
            alive.clear();
            alive.extend((0..n).filter(|&i| accs[i].error.is_none()));
            if alive.is_empty() {
                break;
            }
            if let Err(kind) = self.ensure_ready(e) {
                for &i in &alive {
                    accs[i].error = Some(self.boxed_error(e, days[i], kind.clone()));
                }
                continue;
            }
            // Only the customer-days the plugin bills (its `applies-to`): the others get no
            // lines from it, without a call. A subsidy for 5 % of the customers costs 5 %.
            if let SlotState::Ready(live) = &self.slots[e].state {
                let f = live.filter;
                alive.retain(|&i| {
                    let bits = row_bits(base.bits[i], accs[i].season);
                    bits & f.all_of == f.all_of && bits & f.none_of == 0
                });
            }
            if alive.is_empty() {
                continue;
            }
            let started = Instant::now();
            let carried = alive.len() as u64;
            match self.call(e, &base, &accs, &alive) {
                Ok(output) => {
                    // An output whose shape is broken (columns of different lengths, rows out
                    // of order, more than the bounds let through) cannot be attributed to
                    // customer-days; one customer-day at a time finds the ones it happens on.
                    let applied =
                        output.and_then(|o| self.apply_batch(e, days, &mut accs, &alive, o));
                    if let Err(message) = applied {
                        if alive.len() > 1 {
                            self.isolate(e, days, &base, &mut accs, &alive);
                        } else {
                            let i = alive[0];
                            accs[i].error = Some(self.boxed_error(e, days[i], invalid(message)));
                        }
                    }
                }
                Err((trap, message)) => {
                    self.slots[e].state = SlotState::Empty;
                    if alive.len() == 1 {
                        let i = alive[0];
                        accs[i].error = Some(self.boxed_error(
                            e,
                            days[i],
                            BillErrorKind::Trap {
                                kind: trap,
                                message,
                            },
                        ));
                    } else {
                        self.isolate(e, days, &base, &mut accs, &alive);
                    }
                }
            }
            let cost = &mut self.slots[e].cost;
            cost.calls += 1;
            cost.days += carried;
            cost.time += started.elapsed();
        }

        out.extend(days.iter().zip(accs).map(|(d, acc)| finish(d, acc)));
    }

    /// After a batch trapped (or returned an output of the wrong shape): each customer-day
    /// alone, with a fresh instance after every trap, within the plugin's time budgets.
    ///
    /// The retries are what a misbehaving plugin can make expensive (a deadline per
    /// customer-day, or a malformed batch output and single-day calls that spin just under the
    /// deadline), so they are bounded by time, not by a count of traps: the retries of one
    /// batch may take twice the batch call's own deadline, and all retries of one plugin in this
    /// evaluator `limits.retry_budget_ms`. The customer-days left when a budget is spent fail as
    /// `skipped`, naming the budget; a plugin that traps quickly on some customers (a bug on
    /// one kind of customer) stays far inside them and every other customer is billed.
    fn isolate(
        &mut self,
        e: usize,
        days: &[&DayInput],
        base: &Base<'_>,
        accs: &mut [Acc],
        alive: &[usize],
    ) {
        let batch_ms = self.engine.deadline_ms(alive.len()).saturating_mul(2);
        let batch_budget = Duration::from_millis(batch_ms);
        let run_budget = self.engine.limits().retry_budget_ms;
        let started = Instant::now();
        for &i in alive {
            if accs[i].error.is_some() {
                continue;
            }
            let spent = started.elapsed();
            let over = if spent >= self.slots[e].retry_left {
                Some(format!(
                    "its retry budget of {run_budget} ms for this run (limits.retry_budget_ms)"
                ))
            } else if spent >= batch_budget {
                Some(format!(
                    "the time budget of this batch, {batch_ms} ms (twice the batch call's \
                     deadline: limits.deadline_base_ms and deadline_per_day_us)"
                ))
            } else {
                None
            };
            if let Some(budget) = over {
                let reason = format!(
                    "plugin {} {} failed its batch, and retrying its customer-days one at a \
                     time spent {budget}, so this customer-day was not retried; a re-run of the \
                     date bills it",
                    self.slots[e].name, self.slots[e].version
                );
                accs[i].error =
                    Some(self.boxed_error(e, days[i], BillErrorKind::Skipped { reason }));
                continue;
            }
            if let Err(kind) = self.ensure_ready(e) {
                accs[i].error = Some(self.boxed_error(e, days[i], kind));
                continue;
            }
            match self.call(e, base, accs, &[i]) {
                Ok(output) => {
                    let applied = output.and_then(|o| self.apply_batch(e, days, accs, &[i], o));
                    if let Err(message) = applied {
                        accs[i].error = Some(self.boxed_error(e, days[i], invalid(message)));
                    }
                }
                Err((trap, message)) => {
                    self.slots[e].state = SlotState::Empty;
                    accs[i].error = Some(self.boxed_error(
                        e,
                        days[i],
                        BillErrorKind::Trap {
                            kind: trap,
                            message,
                        },
                    ));
                }
            }
        }
        let slot = &mut self.slots[e];
        slot.retry_left = slot.retry_left.saturating_sub(started.elapsed());
    }

    /// One `evaluate-batch` call of entry `e` over the customer-days `idx` (ascending).
    fn call(
        &mut self,
        e: usize,
        base: &Base<'_>,
        accs: &[Acc],
        idx: &[usize],
    ) -> Result<Result<wit::BatchOutput, String>, (crate::model::TrapKind, String)> {
        let full = idx.len() == base.dates.len();
        self.cols.fill(base, accs, idx, full, &self.offsets);
        let Evaluator {
            engine,
            slots,
            cols,
            prior_categories,
            ..
        } = self;
        let (before, rest) = slots.split_at_mut(e);
        let prior_kinds: Vec<wit::PriorKind<'_>> = before
            .iter()
            .zip(0u32..)
            .flat_map(|(s, entry)| {
                s.kinds.iter().flatten().map(move |k| wit::PriorKind {
                    code: &k.code,
                    entry,
                    category: category_to_wit(k.category),
                })
            })
            .collect();
        let slot = &mut rest[0];
        let contract = slot.contract;
        let SlotState::Ready(live) = &mut slot.state else {
            return Err((
                crate::model::TrapKind::Other,
                "internal: the instance is not ready".to_string(),
            ));
        };
        live.used += idx.len() as u64;
        let Live {
            store,
            evaluate_batch,
            ..
        } = &mut **live;
        store.set_epoch_deadline(engine.deadline_ticks(idx.len()));
        store.data_mut().limiter.denied_memory = None;
        let mark = slot.log.mark();
        let max_message = engine.limits().max_message_bytes;
        let view = cols.view(base, idx.len(), full, &prior_kinds);
        let bounds = lift::Bounds::set(idx.len(), max_message);
        // SAFETY (both arms): the function's type was checked against these types when the
        // plugin was loaded (`Engine::load`), for its contract version, and it belongs to this
        // store's instance.
        #[allow(unsafe_code)]
        let result = match contract {
            Contract::V0_2_0 => unsafe {
                wasmtime::component::TypedFunc::<(wit::DayBatch<'_>,), (lift::BatchOutput,)>::new_unchecked(
                    *evaluate_batch,
                )
            }
            .call(&mut *store, (view,))
            .map(|(out,)| out),
            Contract::V0_1_0 => {
                let old = since_v0_1_0::day_batch(&view, prior_categories);
                unsafe {
                    wasmtime::component::TypedFunc::<
                        (crate::bindings::v0_1_0::wit::DayBatch<'_>,),
                        (lift::BatchOutputV0_1_0,),
                    >::new_unchecked(*evaluate_batch)
                }
                .call(&mut *store, (old,))
                .map(|(out,)| out.into_latest())
            }
        };
        drop(bounds);
        result
            .map(|out| out.into_wit(idx.len(), max_message))
            .map_err(|err| classify(&err, store, &slot.log, mark, engine.deadline_ms(idx.len())))
    }

    /// Checks one call's output and applies it to the customer-days `idx`. Returns why the
    /// output as a whole is unreadable; a problem with one customer-day's part fails that
    /// customer-day alone.
    fn apply_batch(
        &self,
        e: usize,
        days: &[&DayInput],
        accs: &mut [Acc],
        idx: &[usize],
        output: wit::BatchOutput,
    ) -> Result<(), String> {
        columns::check_shape(&output, idx.len())?;
        let SlotState::Ready(live) = &self.slots[e].state else {
            return Ok(());
        };
        let wit::BatchOutput {
            lines,
            errors,
            season,
        } = output;
        let mut errors = errors.into_iter().peekable();
        let mut next = 0;
        for (j, &i) in idx.iter().enumerate() {
            let start = next;
            while next < lines.rows.len() && lines.rows[next] as usize == j {
                next += 1;
            }
            let refusal = errors.next_if(|x| x.row as usize == j).map(|x| x.error);
            if accs[i].error.is_some() {
                continue;
            }
            let row = Row {
                lines: &lines,
                range: start..next,
                refusal,
                season: season.as_ref().map(|s| (s, j)),
            };
            if let Err(kind) = self.apply(e, &live.kinds, &mut accs[i], row) {
                accs[i].error = Some(self.boxed_error(e, days[i], kind));
            }
        }
        Ok(())
    }

    /// Checks one customer-day's part of an output and adds its lines (or returns why it fails
    /// the customer-day).
    fn apply(
        &self,
        e: usize,
        kinds: &[Arc<LineKind>],
        acc: &mut Acc,
        row: Row<'_>,
    ) -> Result<(), BillErrorKind> {
        let limits = self.engine.limits();
        if let Some(rule) = row.refusal {
            if !row.range.is_empty() {
                return Err(invalid(
                    "a customer-day has both lines and a rule error; the contract allows one or \
                     the other"
                        .to_string(),
                ));
            }
            let (rule, message) = match rule {
                wit::RuleError::BadParams(m) => (RuleErrorKind::BadParams, m),
                wit::RuleError::MissingInput(m) => (RuleErrorKind::MissingInput, m),
                wit::RuleError::InvalidInput(m) => (RuleErrorKind::InvalidInput, m),
                wit::RuleError::Unsupported(m) => (RuleErrorKind::Unsupported, m),
            };
            if message.len() > limits.max_message_bytes {
                return Err(invalid(format!(
                    "a rule error ({rule}) with a message of {} bytes; the limit is {} \
                     (limits.max_message_bytes)",
                    message.len(),
                    limits.max_message_bytes
                )));
            }
            return Err(BillErrorKind::Rule {
                kind: rule,
                message,
            });
        }
        if let Some((column, j)) = row.season {
            if self.slots[e].kind != PluginKind::Season {
                return Err(invalid(format!(
                    "a {} plugin returned season positions; only season plugins may",
                    self.slots[e].kind
                )));
            }
            let season = columns::season_at(column, j).map_err(invalid)?;
            check_season(&season)?;
            acc.season = Some(season);
        }
        let count = row.range.len();
        let total = acc.lines.len() + count;
        if total > limits.max_lines_per_day {
            return Err(invalid(format!(
                "{count} lines, which makes {total} for this customer-day; the limit is {} \
                 (limits.max_lines_per_day)",
                limits.max_lines_per_day
            )));
        }
        let l = row.lines;
        acc.lines.reserve(count);
        let mut subsidy: i128 = 0;
        for (n, k) in row.range.enumerate() {
            let Some(kind) = kinds.get(usize::from(l.kinds[k])) else {
                return Err(invalid(format!(
                    "line {n} names line kind {}, but configure announced {} kinds",
                    l.kinds[k],
                    kinds.len()
                )));
            };
            let payer = match l.payers[k] {
                0 => Payer::Customer,
                1 => Payer::Government,
                2 => Payer::Employer,
                p => return Err(invalid(format!("line {n}: payer code {p} is not a payer"))),
            };
            let amount =
                columns::amount_at(&l.amount, k).map_err(|m| invalid(format!("line {n}: {m}")))?;
            // Whole fen at scale 2 (`amount_at`), made from an s64: the mantissa is the fen.
            let fen = amount.mantissa() as i64;
            let season_amount = if l.season_amount.units[k] == 0 {
                None
            } else {
                Some(
                    columns::amount_at(&l.season_amount, k)
                        .map_err(|m| invalid(format!("line {n}: season amount: {m}")))?,
                )
            };
            let facts = LineFacts {
                category: kind.category,
                payer,
                quantity: (l.quantity.units[k], l.quantity.scales[k]),
                unit_price: (l.unit_price.units[k], l.unit_price.scales[k]),
                amount_fen: fen,
                season_amount_fen: season_amount.map(|t| t.mantissa() as i64),
            };
            let line = BillLine {
                kind: kind.clone(),
                quantity: columns::decimal_at(&l.quantity, k),
                unit_price: columns::decimal_at(&l.unit_price, k),
                amount,
                payer,
                season_amount,
            };
            invariants::check_line(&facts)
                .and_then(|()| acc.totals.add(payer, fen))
                .and_then(|()| acc.totals.total().map(drop))
                .map_err(|b| broken(n, &line, b))?;
            if kind.category == LineCategory::Subsidy {
                // Within the range of an s64 by `amount-range` times `max_lines_per_day`.
                subsidy += i128::from(fen);
            }
            acc.lines.push(line);
        }
        if subsidy != 0 {
            return Err(invalid(format!(
                "the subsidy lines sum to {}, not 0.00; breaks the invariant {}: {}",
                Decimal::from_i128_with_scale(subsidy, 2),
                invariants::SUBSIDY_BALANCED.invariant,
                invariants::SUBSIDY_BALANCED.rule
            )));
        }
        Ok(())
    }

    /// Drops every instance that has evaluated `limits.fresh_instance_after` customer-days, so
    /// that its next call starts from a freshly configured one: whatever a plugin keeps in its
    /// memory reaches that far and no further. State *within* one call is not reachable this
    /// way; `plugin test` bills each case in varied batches to catch it, and a run re-bills a
    /// sample alone.
    fn refresh(&mut self) {
        let after = self.engine.limits().fresh_instance_after;
        if after == 0 {
            return;
        }
        for slot in &mut self.slots {
            if let SlotState::Ready(live) = &slot.state
                && live.used >= after
            {
                slot.state = SlotState::Empty;
            }
        }
    }

    /// Drops every instance, used or not: the next call instantiates and configures afresh.
    /// (A chain entry whose `configure` failed stays failed.)
    pub fn reset(&mut self) {
        for slot in &mut self.slots {
            if let SlotState::Ready(_) = slot.state {
                slot.state = SlotState::Empty;
            }
        }
    }

    /// Instantiates and configures entry `e` if it is not ready.
    fn ensure_ready(&mut self, e: usize) -> Result<(), BillErrorKind> {
        match &self.slots[e].state {
            SlotState::Ready(_) => return Ok(()),
            SlotState::Failed(kind) => return Err(kind.clone()),
            SlotState::Empty => {}
        }
        let entry = &self.chain.entries()[e];
        // Prior lines name their kind by its place in the chain's list (a u16 in a batch).
        let kinds_before: usize = self.slots[..e]
            .iter()
            .map(|s| s.kinds.as_ref().map_or(0, Vec::len))
            .sum();
        let slot = &mut self.slots[e];
        let mut store = self.engine.new_store(&slot.log);
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
                    self.engine.deadline_ms(0),
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
        let max_configure = Duration::from_millis(self.engine.limits().max_configure_ms);
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
                    self.engine.deadline_ms(0)
                ),
            }),
            Err(err) => {
                let (trap, message) = classify(
                    &err,
                    &mut store,
                    &slot.log,
                    mark,
                    self.engine.deadline_ms(0),
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
                slot.state = SlotState::Ready(Box::new(Live {
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
                slot.state = SlotState::Failed(kind.clone());
                Err(kind)
            }
        }
    }

    /// [`Self::bill_error`], boxed for an [`Acc`].
    fn boxed_error(&self, e: usize, day: &DayInput, kind: BillErrorKind) -> Box<BillError> {
        Box::new(self.bill_error(e, day, kind))
    }

    /// A bill error naming the chain's company, entry `e`'s plugin (none for `usize::MAX`) and
    /// the customer-day.
    fn bill_error(&self, e: usize, day: &DayInput, kind: BillErrorKind) -> BillError {
        let (plugin, plugin_version) = match self.slots.get(e) {
            Some(s) => (s.name.clone(), s.version.clone()),
            None => (String::new(), String::new()),
        };
        BillError {
            company: self.chain.company().to_string(),
            customer: day.customer.clone(),
            date: day.date,
            plugin,
            plugin_version,
            kind,
        }
    }
}

/// Builds the shared line kinds from `configure`'s specs, checking the contract's limits.
fn line_kinds(
    slot: &Slot,
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

/// The CPU time the calling thread has used. Unlike wall time it does not grow while the thread
/// waits for a core, so a busy machine (several workers and the database on two cores) does not
/// make an honest `configure` look slow.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid pointer to a local.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn format_logs(logs: Vec<PluginLog>) -> String {
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

fn invalid(message: String) -> BillErrorKind {
    BillErrorKind::InvalidOutput { message }
}

/// `invalid-output` for line `n` that broke an invariant: the invariant's name and rule, and the
/// line as the plugin wrote it.
#[cold]
fn broken(n: usize, l: &BillLine, b: Broken) -> BillErrorKind {
    invalid(format!(
        "line {n} (code {:?}, {}, payer {}: quantity {} × unit price {}, amount {}) breaks the \
         invariant {}: {}",
        l.kind.code,
        l.kind.category.as_str(),
        l.payer.as_str(),
        l.quantity,
        l.unit_price,
        l.amount,
        b.invariant,
        b.rule
    ))
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

fn check_season(s: &wit::SeasonDay) -> Result<(), BillErrorKind> {
    let ok = match s.phase {
        wit::SeasonPhase::Outside => s.day_index == 0,
        _ => s.season_days >= 1 && s.day_index >= 1 && s.day_index <= s.season_days,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "season position {:?} day {} of {}: a heating day's index must be 1..=N with N ≥ 1, \
             and an outside day's index 0",
            s.phase, s.day_index, s.season_days
        )))
    }
}

/// Turns an accumulated customer-day into its result.
fn finish(day: &DayInput, acc: Acc) -> Result<Bill, BillError> {
    if let Some(e) = acc.error {
        return Err(*e);
    }
    // The totals were kept in fen with checked arithmetic as the lines came in (`apply`, which
    // also checked that the sum over payers fits), so nothing here can overflow.
    let t = acc.totals;
    let total = t
        .customer
        .saturating_add(t.government)
        .saturating_add(t.employer);
    let by_payer = PayerTotals {
        customer: Decimal::new(t.customer, 2),
        government: Decimal::new(t.government, 2),
        employer: Decimal::new(t.employer, 2),
    };
    Ok(Bill {
        date: day.date,
        lines: acc.lines,
        total: Decimal::new(total, 2),
        by_payer,
        season: acc.season.map(season_from_wit),
    })
}

fn category_from_wit(c: wit::LineCategory) -> LineCategory {
    match c {
        wit::LineCategory::Heating => LineCategory::Heating,
        wit::LineCategory::Consumption => LineCategory::Consumption,
        wit::LineCategory::BaseFee => LineCategory::BaseFee,
        wit::LineCategory::Subsidy => LineCategory::Subsidy,
        wit::LineCategory::Refund => LineCategory::Refund,
        wit::LineCategory::LateFee => LineCategory::LateFee,
        wit::LineCategory::Other => LineCategory::Other,
    }
}

fn category_to_wit(c: LineCategory) -> wit::LineCategory {
    match c {
        LineCategory::Heating => wit::LineCategory::Heating,
        LineCategory::Consumption => wit::LineCategory::Consumption,
        LineCategory::BaseFee => wit::LineCategory::BaseFee,
        LineCategory::Subsidy => wit::LineCategory::Subsidy,
        LineCategory::Refund => wit::LineCategory::Refund,
        LineCategory::LateFee => wit::LineCategory::LateFee,
        LineCategory::Other => wit::LineCategory::Other,
    }
}

fn season_to_wit(s: SeasonDay) -> wit::SeasonDay {
    wit::SeasonDay {
        phase: match s.phase {
            SeasonPhase::Outside => wit::SeasonPhase::Outside,
            SeasonPhase::Regular => wit::SeasonPhase::Regular,
            SeasonPhase::Early => wit::SeasonPhase::Early,
            SeasonPhase::Extended => wit::SeasonPhase::Extended,
        },
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}

fn season_from_wit(s: wit::SeasonDay) -> SeasonDay {
    SeasonDay {
        phase: match s.phase {
            wit::SeasonPhase::Outside => SeasonPhase::Outside,
            wit::SeasonPhase::Regular => SeasonPhase::Regular,
            wit::SeasonPhase::Early => SeasonPhase::Early,
            wit::SeasonPhase::Extended => SeasonPhase::Extended,
        },
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}

/// The columns of a batch that stay the same along the chain, built once per batch from the
/// customer-days; every call of the chain's plugins borrows them.
struct Base<'a> {
    dates: Vec<i32>,
    bits: Vec<u32>,
    special: Vec<u32>,
    building: Column,
    usable: Column,
    ceiling: Column,
    heat: Column,
    temperature: Column,
    arrears: Column,
    since: Vec<i32>,
    texts: Vec<&'a str>,
    tags: Vec<(u32, u32)>,
    attributes: Vec<(u32, u32, u32)>,
}

/// A customer-day as the single-day `evaluate` takes it (season and prior lines are set per
/// plugin). Its strings borrow from the input.
fn day_record(d: &DayInput) -> Result<wit::CustomerDay<'_>, String> {
    let dec = |what: &str, v: Decimal| to_wit(v).map_err(|m| format!("{what}: {m}"));
    let opt = |what: &str, v: Option<Decimal>| v.map(|v| dec(what, v)).transpose();
    let date = |d: chrono::NaiveDate| wit::Date {
        year: d.year(),
        month: d.month() as u8,
        day: d.day() as u8,
    };
    let mut flags = wit::CustomerFlags::empty();
    if d.metered {
        flags |= wit::CustomerFlags::METERED;
    }
    if d.low_income {
        flags |= wit::CustomerFlags::LOW_INCOME;
    }
    Ok(wit::CustomerDay {
        date: date(d.date),
        class: match d.class {
            CustomerClass::Residential => wit::CustomerClass::Residential,
            CustomerClass::NonResidential => wit::CustomerClass::NonResidential,
        },
        special_class: d.special_class.as_deref(),
        status: match d.status {
            ServiceStatus::Active => wit::ServiceStatus::Active,
            ServiceStatus::Suspended => wit::ServiceStatus::Suspended,
        },
        flags,
        building_area: dec("building_area", d.building_area)?,
        usable_area: opt("usable_area", d.usable_area)?,
        ceiling_height: opt("ceiling_height", d.ceiling_height)?,
        heat: opt("heat", d.heat)?,
        indoor_temperature: opt("indoor_temperature", d.indoor_temperature)?,
        arrears: dec("arrears", d.arrears)?,
        arrears_since: d.arrears_since.map(date),
        season: None,
        tags: &[],
        attributes: &[],
        prior_lines: &[],
    })
}

/// An earlier line as the single-day `evaluate` takes it.
fn prior_line(l: &BillLine) -> wit::PriorLine<'_> {
    let raw = RawLine::of(l, &[]);
    let d = |(units, scale): (i64, u8)| wit::Decimal { units, scale };
    wit::PriorLine {
        code: &l.kind.code,
        entry: l.kind.entry,
        season_amount: (raw.season_amount.0 != 0).then(|| d(raw.season_amount)),
        category: category_to_wit(l.kind.category),
        quantity: d(raw.quantity),
        unit_price: d(raw.unit_price),
        amount: d(raw.amount),
        payer: match l.payer {
            Payer::Customer => wit::Payer::Customer,
            Payer::Government => wit::Payer::Government,
            Payer::Employer => wit::Payer::Employer,
        },
    }
}

/// A single-day result as a one-row `batch-output`, so that both paths are checked and applied
/// by the same code.
fn one_row_output(r: Result<wit::DayOutput, wit::RuleError>) -> wit::BatchOutput {
    let empty = || wit::DecimalColumnResult {
        units: Vec::new(),
        scales: Vec::new(),
    };
    let mut out = wit::BatchOutput {
        lines: wit::LineColumnResult {
            rows: Vec::new(),
            kinds: Vec::new(),
            payers: Vec::new(),
            quantity: empty(),
            unit_price: empty(),
            amount: empty(),
            season_amount: empty(),
        },
        errors: Vec::new(),
        season: None,
    };
    match r {
        Err(error) => out.errors.push(wit::RowError { row: 0, error }),
        Ok(o) => {
            let l = &mut out.lines;
            for line in o.lines {
                l.rows.push(0);
                l.kinds.push(line.spec);
                l.payers.push(match line.payer {
                    wit::Payer::Customer => 0,
                    wit::Payer::Government => 1,
                    wit::Payer::Employer => 2,
                });
                let none = wit::Decimal { units: 0, scale: 0 };
                for (col, v) in [
                    (&mut l.quantity, line.quantity),
                    (&mut l.unit_price, line.unit_price),
                    (&mut l.amount, line.amount),
                    (&mut l.season_amount, line.season_amount.unwrap_or(none)),
                ] {
                    col.units.push(v.units);
                    col.scales.push(v.scale);
                }
            }
            out.season = o.season.map(|s| wit::SeasonColumn {
                phase: vec![columns::phase_code(s.phase)],
                day_index: vec![s.day_index],
                season_days: vec![s.season_days],
                charged: vec![u8::from(s.charged)],
            });
        }
    }
    out
}

/// A customer-day's `day-bits`: its base bits and those of its season position so far.
#[inline]
fn row_bits(base: u32, season: Option<wit::SeasonDay>) -> u32 {
    use columns::bits::*;
    match season {
        Some(s) if s.charged => base | HAS_SEASON | SEASON_CHARGED,
        Some(_) => base | HAS_SEASON,
        None => base,
    }
}

/// Days since 1970-01-01 (the contract's `date32`).
fn date32(d: chrono::NaiveDate) -> i32 {
    // 719,163 is the number of days from 0001-01-01 (CE day 1) to 1970-01-01.
    d.num_days_from_ce() - 719_163
}

impl<'a> Base<'a> {
    /// Builds the columns; a customer-day with a value the contract cannot carry is reported in
    /// `bad` (its entry is 0 and it is not evaluated).
    fn build(days: &[&'a DayInput], bad: &mut Vec<(usize, String)>) -> Base<'a> {
        use columns::bits::*;
        let n = days.len();
        let mut texts: Vec<&'a str> = Vec::new();
        let mut index: std::collections::HashMap<&'a str, u32> = std::collections::HashMap::new();
        let mut text = |s: &'a str| -> u32 {
            *index.entry(s).or_insert_with(|| {
                texts.push(s);
                (texts.len() - 1) as u32
            })
        };
        let mut b = Base {
            dates: Vec::with_capacity(n),
            bits: Vec::with_capacity(n),
            special: Vec::with_capacity(n),
            building: Column::default(),
            usable: Column::default(),
            ceiling: Column::default(),
            heat: Column::default(),
            temperature: Column::default(),
            arrears: Column::default(),
            since: Vec::with_capacity(n),
            texts: Vec::new(),
            tags: Vec::new(),
            attributes: Vec::new(),
        };
        for (i, d) in days.iter().enumerate() {
            let row = i as u32;
            let mut bits = 0;
            let mut set = |on: bool, bit: u32| {
                if on {
                    bits |= bit;
                }
            };
            set(d.class == CustomerClass::NonResidential, NON_RESIDENTIAL);
            set(d.status == ServiceStatus::Suspended, SUSPENDED);
            set(d.metered, METERED);
            set(d.low_income, LOW_INCOME);
            set(d.usable_area.is_some(), HAS_USABLE_AREA);
            set(d.ceiling_height.is_some(), HAS_CEILING_HEIGHT);
            set(d.heat.is_some(), HAS_HEAT);
            set(d.indoor_temperature.is_some(), HAS_INDOOR_TEMPERATURE);
            set(d.arrears_since.is_some(), HAS_ARREARS_SINCE);
            b.bits.push(bits);
            b.dates.push(date32(d.date));
            b.since.push(d.arrears_since.map_or(0, date32));
            b.special
                .push(d.special_class.as_deref().map_or(0, |s| text(s) + 1));
            for t in &d.tags {
                b.tags.push((row, text(t)));
            }
            for (k, v) in &d.attributes {
                b.attributes.push((row, text(k), text(v)));
            }
        }
        b.texts = texts;
        // One call per column (not a loop over function pointers): each fill inlines its
        // accessor, and this runs for every customer-day of every batch.
        let mut report = |what: &'static str, i: usize, m: String| {
            bad.push((i, format!("{what}: {m}")));
        };
        b.building
            .fill(days.iter().map(|d| Some(d.building_area)), |i, m| {
                report("building_area", i, m)
            });
        b.usable.fill(days.iter().map(|d| d.usable_area), |i, m| {
            report("usable_area", i, m)
        });
        b.ceiling
            .fill(days.iter().map(|d| d.ceiling_height), |i, m| {
                report("ceiling_height", i, m)
            });
        b.heat
            .fill(days.iter().map(|d| d.heat), |i, m| report("heat", i, m));
        b.temperature
            .fill(days.iter().map(|d| d.indoor_temperature), |i, m| {
                report("indoor_temperature", i, m)
            });
        b.arrears
            .fill(days.iter().map(|d| Some(d.arrears)), |i, m| {
                report("arrears", i, m)
            });
        b
    }
}

/// The columns of one call that change along the chain (bits with the season, the season
/// position, the prior lines) and, for a call over a subset of the batch, the base columns
/// gathered for that subset. Owned by the evaluator and reused, so a call allocates only when a
/// batch is larger than any before.
#[derive(Default)]
struct CallColumns {
    bits: Vec<u32>,
    phase: Vec<u8>,
    day_index: Vec<u32>,
    season_days: Vec<u32>,
    prior_rows: Vec<u32>,
    prior_kinds: Vec<u16>,
    prior_payers: Vec<u8>,
    prior_quantity: Column,
    prior_unit_price: Column,
    prior_amount: Column,
    prior_season_amount: Column,
    // A subset's base columns.
    dates: Vec<i32>,
    special: Vec<u32>,
    building: Column,
    usable: Column,
    ceiling: Column,
    heat: Column,
    temperature: Column,
    arrears: Column,
    since: Vec<i32>,
    tags: Vec<(u32, u32)>,
    attributes: Vec<(u32, u32, u32)>,
}

fn gather<T: Copy>(out: &mut Vec<T>, from: &[T], idx: &[usize]) {
    out.clear();
    out.extend(idx.iter().map(|&i| from[i]));
}

impl CallColumns {
    /// Fills the per-call columns for the customer-days `idx` (ascending) of the batch; `full`
    /// when `idx` is the whole batch (the base columns are then borrowed as they are).
    fn fill(&mut self, base: &Base<'_>, accs: &[Acc], idx: &[usize], full: bool, offsets: &[u32]) {
        self.bits.clear();
        self.phase.clear();
        self.day_index.clear();
        self.season_days.clear();
        self.prior_rows.clear();
        self.prior_kinds.clear();
        self.prior_payers.clear();
        self.prior_quantity.clear();
        self.prior_unit_price.clear();
        self.prior_amount.clear();
        self.prior_season_amount.clear();
        for (j, &i) in idx.iter().enumerate() {
            let acc = &accs[i];
            match acc.season {
                Some(s) => {
                    self.phase.push(columns::phase_code(s.phase));
                    self.day_index.push(s.day_index);
                    self.season_days.push(s.season_days);
                }
                None => {
                    self.phase.push(0);
                    self.day_index.push(0);
                    self.season_days.push(0);
                }
            }
            self.bits.push(row_bits(base.bits[i], acc.season));
            for l in acc.lines.iter().map(|l| RawLine::of(l, offsets)) {
                self.prior_rows.push(j as u32);
                self.prior_kinds.push(l.kind);
                self.prior_payers.push(l.payer);
                self.prior_quantity.push(l.quantity);
                self.prior_unit_price.push(l.unit_price);
                self.prior_amount.push(l.amount);
                self.prior_season_amount.push(l.season_amount);
            }
        }
        if !full {
            gather(&mut self.dates, &base.dates, idx);
            gather(&mut self.special, &base.special, idx);
            gather(&mut self.since, &base.since, idx);
            self.building.gather(&base.building, idx);
            self.usable.gather(&base.usable, idx);
            self.ceiling.gather(&base.ceiling, idx);
            self.heat.gather(&base.heat, idx);
            self.temperature.gather(&base.temperature, idx);
            self.arrears.gather(&base.arrears, idx);
            // Tags and attributes renumbered to positions in `idx` (both are in row order).
            self.tags.clear();
            self.attributes.clear();
            let mut pos = idx.iter().enumerate().peekable();
            for &(row, t) in &base.tags {
                while pos.peek().is_some_and(|(_, i)| **i < row as usize) {
                    pos.next();
                }
                if let Some((j, _)) = pos.peek().filter(|(_, i)| **i == row as usize) {
                    self.tags.push((*j as u32, t));
                }
            }
            let mut pos = idx.iter().enumerate().peekable();
            for &(row, k, v) in &base.attributes {
                while pos.peek().is_some_and(|(_, i)| **i < row as usize) {
                    pos.next();
                }
                if let Some((j, _)) = pos.peek().filter(|(_, i)| **i == row as usize) {
                    self.attributes.push((*j as u32, k, v));
                }
            }
        }
    }

    /// The batch of one call, borrowing the base columns (`full`) or the gathered ones.
    fn view<'s>(
        &'s self,
        base: &'s Base<'_>,
        len: usize,
        full: bool,
        prior_kinds: &'s [wit::PriorKind<'s>],
    ) -> wit::DayBatch<'s> {
        let src = |b: &'s Column, own: &'s Column| if full { b.as_wit() } else { own.as_wit() };
        wit::DayBatch {
            len: len as u32,
            dates: if full { &base.dates } else { &self.dates },
            bits: &self.bits,
            special_class: if full { &base.special } else { &self.special },
            building_area: src(&base.building, &self.building),
            usable_area: src(&base.usable, &self.usable),
            ceiling_height: src(&base.ceiling, &self.ceiling),
            heat: src(&base.heat, &self.heat),
            indoor_temperature: src(&base.temperature, &self.temperature),
            arrears: src(&base.arrears, &self.arrears),
            arrears_since: if full { &base.since } else { &self.since },
            season_phase: &self.phase,
            season_day_index: &self.day_index,
            season_days: &self.season_days,
            texts: &base.texts,
            tags: if full { &base.tags } else { &self.tags },
            attributes: if full {
                &base.attributes
            } else {
                &self.attributes
            },
            prior_lines: wit::LineColumnParam {
                rows: &self.prior_rows,
                kinds: &self.prior_kinds,
                payers: &self.prior_payers,
                quantity: self.prior_quantity.as_wit(),
                unit_price: self.prior_unit_price.as_wit(),
                amount: self.prior_amount.as_wit(),
                season_amount: self.prior_season_amount.as_wit(),
            },
            prior_kinds,
        }
    }
}

/// Evaluates a company's [`Schedule`]: each customer-day by the chain version in force on its
/// date.
///
/// Holds one [`Evaluator`] per chain version, created when a batch first has a day of that
/// version. A batch whose days are all under one version (the nightly run: one date) goes to
/// that version's evaluator as it is; a mixed batch (a range of dates across a price change) is
/// split by version and the results put back in input order.
pub struct ScheduleEvaluator {
    engine: Engine,
    schedule: Arc<Schedule>,
    evaluators: Vec<Option<Evaluator>>,
}

impl ScheduleEvaluator {
    /// An evaluator for `schedule`.
    pub fn new(engine: &Engine, schedule: Arc<Schedule>) -> ScheduleEvaluator {
        let evaluators = schedule.versions().iter().map(|_| None).collect();
        ScheduleEvaluator {
            engine: engine.clone(),
            schedule,
            evaluators,
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &Arc<Schedule> {
        &self.schedule
    }

    /// Instantiates and configures every entry of every version now, returning the first
    /// failure (see [`Evaluator::prepare`]).
    pub fn prepare(&mut self) -> Result<(), SetupError> {
        for v in 0..self.evaluators.len() {
            self.evaluator(v).prepare()?;
        }
        Ok(())
    }

    /// The line kinds of chain version `version` (an index into the schedule's versions), per
    /// entry; see [`Evaluator::line_kinds`].
    pub fn line_kinds(&mut self, version: usize) -> Vec<Vec<Arc<LineKind>>> {
        self.evaluator(version).line_kinds()
    }

    /// Takes what the plugins of every version printed since the last take, as one text (see
    /// [`Evaluator::take_log`]).
    pub fn take_log(&mut self) -> String {
        format_logs(self.take_plugin_logs())
    }

    /// Takes what the plugins of every version printed since the last take, per plugin.
    pub fn take_plugin_logs(&mut self) -> Vec<PluginLog> {
        self.evaluators
            .iter_mut()
            .flatten()
            .flat_map(Evaluator::take_plugin_logs)
            .collect()
    }

    /// Drops every instance of every version (see [`Evaluator::reset`]).
    pub fn reset(&mut self) {
        self.evaluators
            .iter_mut()
            .flatten()
            .for_each(Evaluator::reset);
    }

    fn evaluator(&mut self, v: usize) -> &mut Evaluator {
        let (engine, schedule) = (&self.engine, &self.schedule);
        self.evaluators[v]
            .get_or_insert_with(|| Evaluator::new(engine, schedule.versions()[v].1.clone()))
    }

    /// The error of a customer-day before the schedule's first effective date.
    fn no_chain(&self, day: &DayInput) -> BillError {
        BillError {
            company: self.schedule.company().to_string(),
            customer: day.customer.clone(),
            date: day.date,
            plugin: String::new(),
            plugin_version: String::new(),
            kind: BillErrorKind::NoChain,
        }
    }

    /// Bills one customer-day through the single-day `evaluate` export of the chain version in
    /// force on its date (see [`Evaluator::dry_run`]).
    // The engine's results are `Result<Bill, BillError>` values (see the module docs).
    #[allow(clippy::result_large_err)]
    pub fn dry_run(&mut self, day: &DayInput) -> Result<Bill, BillError> {
        match self.schedule.version_for(day.date) {
            Some(v) => self.evaluator(v).dry_run(day),
            None => Err(self.no_chain(day)),
        }
    }

    /// Evaluates `days`, each under the chain version in force on its date: one result per
    /// input, in order. A day before the first effective date fails with
    /// [`BillErrorKind::NoChain`].
    pub fn evaluate(&mut self, days: &[DayInput]) -> Vec<Result<Bill, BillError>> {
        let versions: Vec<Option<usize>> = days
            .iter()
            .map(|d| self.schedule.version_for(d.date))
            .collect();
        if let Some(Some(v)) = versions.first().copied()
            && versions.iter().all(|x| *x == Some(v))
        {
            return self.evaluator(v).evaluate(days);
        }
        let mut out: Vec<Option<Result<Bill, BillError>>> = days.iter().map(|_| None).collect();
        for (i, d) in days.iter().enumerate() {
            if versions[i].is_none() {
                out[i] = Some(Err(self.no_chain(d)));
            }
        }
        for v in 0..self.evaluators.len() {
            let idx: Vec<usize> = (0..days.len())
                .filter(|&i| versions[i] == Some(v))
                .collect();
            if idx.is_empty() {
                continue;
            }
            let refs: Vec<&DayInput> = idx.iter().map(|&i| &days[i]).collect();
            let mut results = Vec::with_capacity(idx.len());
            self.evaluator(v).evaluate_refs(&refs, &mut results);
            for (i, r) in idx.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .zip(days)
            .map(|(r, d)| r.unwrap_or_else(|| Err(self.no_chain(d))))
            .collect()
    }
}
