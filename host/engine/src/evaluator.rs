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
//! within `max_message_bytes`); a violation fails that customer-day with `invalid-output` naming
//! the plugin.
//!
//! # Trap recovery
//!
//! A trap aborts the whole call, and leaves the instance in an unknown state. The engine drops
//! the instance (its slot goes back to the pool), instantiates and configures a fresh one, and
//! evaluates that batch's customer-days again **one at a time**, so that the customer-days the
//! plugin fails on are found and the others are billed: a failing customer never stops the
//! others. A plugin that traps on everyone would then cost a deadline per customer-day; the
//! circuit breaker (`limits.circuit_breaker_traps` consecutive traps) stops the retries and fails
//! the rest of the batch for that plugin as `skipped`.
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

use chrono::Datelike;
use wasmtime::Store;

use crate::bindings::{RulesPlugin, wit};
use crate::chain::{Chain, Schedule};
use crate::decimal::{amount_from_wit, from_wit, to_wit};
use crate::engine::Engine;
use crate::error::{BillError, BillErrorKind, SetupError};
use crate::model::{
    Bill, BillLine, CustomerClass, DayInput, LineCategory, LineKind, Payer, PayerTotals,
    PluginKind, RuleErrorKind, SeasonDay, SeasonPhase, ServiceStatus,
};
use crate::sandbox::{LogBuffer, StoreState};
use crate::trap::classify;

/// The contract's limits on a line spec's strings (`wit/rules.wit`, `line-spec`).
const MAX_CODE_BYTES: usize = 32;
const MAX_DESCRIPTION_BYTES: usize = 200;
const MAX_UNIT_BYTES: usize = 16;

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
    /// Prior lines of the customer-days of one call, flat; reused across calls.
    prior: Vec<wit::PriorLine>,
    /// Per customer-day of one call, its range in `prior`; reused across calls.
    ranges: Vec<(usize, usize)>,
}

struct Slot {
    name: String,
    version: String,
    kind: PluginKind,
    log: LogBuffer,
    state: SlotState,
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
    guest: RulesPlugin,
    kinds: Vec<Arc<LineKind>>,
}

/// One customer-day's bill under construction.
struct Acc {
    lines: Vec<BillLine>,
    season: Option<wit::SeasonDay>,
    error: Option<BillError>,
}

type Results = Vec<Result<wit::DayOutput, wit::RuleError>>;

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
                log: LogBuffer::new(engine.limits().max_log_bytes),
                state: SlotState::Empty,
            })
            .collect();
        Evaluator {
            engine: engine.clone(),
            chain,
            slots,
            prior: Vec::new(),
            ranges: Vec::new(),
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

    fn run(&mut self, days: &[&DayInput], out: &mut Vec<Result<Bill, BillError>>) {
        let n = days.len();
        // Strings of the batch, flat, so that each lowered customer-day borrows slices of them.
        let mut tags: Vec<&str> = Vec::new();
        let mut attrs: Vec<wit::Attribute<'_>> = Vec::new();
        for d in days {
            tags.extend(d.tags.iter().map(String::as_str));
            attrs.extend(
                d.attributes
                    .iter()
                    .map(|(k, v)| wit::Attribute { key: k, value: v }),
            );
        }
        let mut base: Vec<Option<wit::CustomerDay<'_>>> = Vec::with_capacity(n);
        let mut accs: Vec<Acc> = Vec::with_capacity(n);
        let (mut t, mut a) = (0, 0);
        for d in days {
            let day_tags = &tags[t..t + d.tags.len()];
            let day_attrs = &attrs[a..a + d.attributes.len()];
            t += d.tags.len();
            a += d.attributes.len();
            let mut acc = Acc {
                lines: Vec::new(),
                season: d.season.map(season_to_wit),
                error: None,
            };
            match lower_day(d, day_tags, day_attrs) {
                Ok(w) => base.push(Some(w)),
                Err(message) => {
                    base.push(None);
                    acc.error =
                        Some(self.bill_error(usize::MAX, d, BillErrorKind::Input { message }));
                }
            }
            accs.push(acc);
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
                    accs[i].error = Some(self.bill_error(e, days[i], kind.clone()));
                }
                continue;
            }
            match self.call(e, &base, &accs, &alive) {
                // A wrong number of results poisons the whole batch (which result is whose?);
                // one customer-day at a time finds the customer-days it happens on.
                Ok(results) if results.len() != alive.len() && alive.len() > 1 => {
                    self.isolate(e, days, &base, &mut accs, &alive)
                }
                Ok(results) => self.apply_all(e, days, &mut accs, &alive, results),
                Err((trap, message)) => {
                    self.slots[e].state = SlotState::Empty;
                    if alive.len() == 1 {
                        let i = alive[0];
                        accs[i].error = Some(self.bill_error(
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
        }

        out.extend(days.iter().zip(accs).map(|(d, acc)| finish(d, acc)));
    }

    /// After a batch trapped (or returned the wrong number of results): each customer-day
    /// alone, with a fresh instance after every trap, until the circuit breaker opens.
    fn isolate(
        &mut self,
        e: usize,
        days: &[&DayInput],
        base: &[Option<wit::CustomerDay<'_>>],
        accs: &mut [Acc],
        alive: &[usize],
    ) {
        let breaker = self.engine.limits().circuit_breaker_traps.max(1);
        let mut consecutive = 0u32;
        for &i in alive {
            if consecutive >= breaker {
                let reason = format!(
                    "plugin {} {} trapped on {breaker} customer-days of this batch in a row \
                     (limits.circuit_breaker_traps), so the rest of the batch was not retried; \
                     see the trap on the customer-days before this one",
                    self.slots[e].name, self.slots[e].version
                );
                accs[i].error =
                    Some(self.bill_error(e, days[i], BillErrorKind::Skipped { reason }));
                continue;
            }
            if let Err(kind) = self.ensure_ready(e) {
                accs[i].error = Some(self.bill_error(e, days[i], kind));
                continue;
            }
            match self.call(e, base, accs, &[i]) {
                Ok(results) => {
                    consecutive = 0;
                    self.apply_all(e, days, accs, &[i], results);
                }
                Err((trap, message)) => {
                    consecutive += 1;
                    self.slots[e].state = SlotState::Empty;
                    accs[i].error = Some(self.bill_error(
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
    }

    /// One `evaluate` call of entry `e` over the customer-days `idx`.
    fn call(
        &mut self,
        e: usize,
        base: &[Option<wit::CustomerDay<'_>>],
        accs: &[Acc],
        idx: &[usize],
    ) -> Result<Results, (crate::model::TrapKind, String)> {
        let Evaluator {
            engine,
            slots,
            prior,
            ranges,
            ..
        } = self;
        prior.clear();
        ranges.clear();
        for &i in idx {
            let start = prior.len();
            prior.extend(accs[i].lines.iter().map(prior_line));
            ranges.push((start, prior.len()));
        }
        let mut lowered: Vec<wit::CustomerDay<'_>> = Vec::with_capacity(idx.len());
        for (&i, &(s, t)) in idx.iter().zip(ranges.iter()) {
            // `base[i]` is some for every alive customer-day (a failed lowering is an error).
            if let Some(b) = &base[i] {
                let mut d = b.clone();
                d.season = accs[i].season;
                d.prior_lines = &prior[s..t];
                lowered.push(d);
            }
        }
        let slot = &mut slots[e];
        let SlotState::Ready(live) = &mut slot.state else {
            return Err((
                crate::model::TrapKind::Other,
                "internal: the instance is not ready".to_string(),
            ));
        };
        let Live { store, guest, .. } = &mut **live;
        store.set_epoch_deadline(engine.deadline_ticks(idx.len()));
        store.data_mut().limiter.denied_memory = None;
        let mark = slot.log.mark();
        guest
            .heatbill_rules_rules()
            .call_evaluate(&mut *store, &lowered)
            .map_err(|err| classify(&err, store, &slot.log, mark, engine.deadline_ms(idx.len())))
    }

    /// Applies the results of one call to the customer-days `idx`.
    fn apply_all(
        &self,
        e: usize,
        days: &[&DayInput],
        accs: &mut [Acc],
        idx: &[usize],
        results: Results,
    ) {
        if results.len() != idx.len() {
            let message = format!(
                "evaluate returned {} results for {} customer-days; the contract requires \
                 exactly one result per customer-day, in order",
                results.len(),
                idx.len()
            );
            for &i in idx {
                accs[i].error = Some(self.bill_error(
                    e,
                    days[i],
                    BillErrorKind::InvalidOutput {
                        message: message.clone(),
                    },
                ));
            }
            return;
        }
        let SlotState::Ready(live) = &self.slots[e].state else {
            return;
        };
        for (&i, r) in idx.iter().zip(results) {
            if let Err(kind) = self.apply(e, &live.kinds, &mut accs[i], r) {
                accs[i].error = Some(self.bill_error(e, days[i], kind));
            }
        }
    }

    /// Checks one result and adds its lines (or returns why it fails the customer-day).
    fn apply(
        &self,
        e: usize,
        kinds: &[Arc<LineKind>],
        acc: &mut Acc,
        r: Result<wit::DayOutput, wit::RuleError>,
    ) -> Result<(), BillErrorKind> {
        let limits = self.engine.limits();
        let out = match r {
            Ok(out) => out,
            Err(rule) => {
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
        };
        if let Some(season) = out.season {
            if self.slots[e].kind != PluginKind::Season {
                return Err(invalid(format!(
                    "a {} plugin returned a season position; only season plugins may",
                    self.slots[e].kind
                )));
            }
            check_season(&season)?;
            acc.season = Some(season);
        }
        let total = acc.lines.len() + out.lines.len();
        if total > limits.max_lines_per_day {
            return Err(invalid(format!(
                "{} lines, which makes {total} for this customer-day; the limit is {} \
                 (limits.max_lines_per_day)",
                out.lines.len(),
                limits.max_lines_per_day
            )));
        }
        acc.lines.reserve(out.lines.len());
        for (n, line) in out.lines.iter().enumerate() {
            let Some(kind) = kinds.get(usize::from(line.spec)) else {
                return Err(invalid(format!(
                    "line {n} names line kind {}, but configure announced {} kinds",
                    line.spec,
                    kinds.len()
                )));
            };
            let quantity =
                from_wit(line.quantity).map_err(|m| invalid(format!("line {n}: {m}")))?;
            let unit_price =
                from_wit(line.unit_price).map_err(|m| invalid(format!("line {n}: {m}")))?;
            let amount =
                amount_from_wit(line.amount).map_err(|m| invalid(format!("line {n}: {m}")))?;
            acc.lines.push(BillLine {
                kind: kind.clone(),
                quantity,
                unit_price,
                amount,
                payer: payer_from_wit(line.payer),
            });
        }
        Ok(())
    }

    /// Instantiates and configures entry `e` if it is not ready.
    fn ensure_ready(&mut self, e: usize) -> Result<(), BillErrorKind> {
        match &self.slots[e].state {
            SlotState::Ready(_) => return Ok(()),
            SlotState::Failed(kind) => return Err(kind.clone()),
            SlotState::Empty => {}
        }
        let entry = &self.chain.entries()[e];
        let slot = &mut self.slots[e];
        let mut store = self.engine.new_store(&slot.log);
        let mark = slot.log.mark();
        let guest = match entry.plugin().pre.instantiate(&mut store) {
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
        let result = match guest
            .heatbill_rules_rules()
            .call_configure(&mut store, entry.params_json())
        {
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
            Ok(Ok(specs)) => line_kinds(slot, specs, self.engine.limits().max_line_specs),
        };
        match result {
            Ok(kinds) => {
                slot.state = SlotState::Ready(Box::new(Live {
                    store,
                    guest,
                    kinds,
                }));
                Ok(())
            }
            Err(kind) => {
                slot.state = SlotState::Failed(kind.clone());
                Err(kind)
            }
        }
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
    specs: Vec<wit::LineSpec>,
    max: usize,
) -> Result<Vec<Arc<LineKind>>, BillErrorKind> {
    let max = max.min(usize::from(u16::MAX) + 1);
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
            let field = |what: &str, v: &str, lo: usize, hi: usize| {
                if v.len() < lo || v.len() > hi {
                    Err(invalid(format!(
                        "configure: line kind {n}: the {what} is {} bytes; it must be {lo} to \
                         {hi} bytes",
                        v.len()
                    )))
                } else {
                    Ok(())
                }
            };
            field("code", &s.code, 1, MAX_CODE_BYTES)?;
            field("description", &s.description, 0, MAX_DESCRIPTION_BYTES)?;
            field("unit", &s.unit, 0, MAX_UNIT_BYTES)?;
            Ok(Arc::new(LineKind {
                plugin: slot.name.clone(),
                plugin_version: slot.version.clone(),
                code: s.code,
                description: s.description,
                unit: s.unit,
                category: category_from_wit(s.category),
            }))
        })
        .collect()
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
        return Err(e);
    }
    let mut by_payer = PayerTotals::default();
    let mut total = rust_decimal::Decimal::ZERO;
    for l in &acc.lines {
        total += l.amount;
        match l.payer {
            Payer::Customer => by_payer.customer += l.amount,
            Payer::Government => by_payer.government += l.amount,
            Payer::Employer => by_payer.employer += l.amount,
        }
    }
    total.rescale(2);
    by_payer.customer.rescale(2);
    by_payer.government.rescale(2);
    by_payer.employer.rescale(2);
    Ok(Bill {
        date: day.date,
        lines: acc.lines,
        total,
        by_payer,
        season: acc.season.map(season_from_wit),
    })
}

/// Lowers the parts of a customer-day that do not change along the chain.
fn lower_day<'a>(
    d: &'a DayInput,
    tags: &'a [&'a str],
    attributes: &'a [wit::Attribute<'a>],
) -> Result<wit::CustomerDay<'a>, String> {
    let dec = |what: &str, v: rust_decimal::Decimal| to_wit(v).map_err(|m| format!("{what}: {m}"));
    let opt = |what: &str, v: Option<rust_decimal::Decimal>| v.map(|v| dec(what, v)).transpose();
    let mut flags = wit::CustomerFlags::empty();
    if d.metered {
        flags |= wit::CustomerFlags::METERED;
    }
    if d.low_income {
        flags |= wit::CustomerFlags::LOW_INCOME;
    }
    Ok(wit::CustomerDay {
        date: date_to_wit(d.date),
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
        arrears_since: d.arrears_since.map(date_to_wit),
        season: None,
        tags,
        attributes,
        prior_lines: &[],
    })
}

fn date_to_wit(d: chrono::NaiveDate) -> wit::Date {
    wit::Date {
        year: d.year(),
        month: d.month() as u8,
        day: d.day() as u8,
    }
}

/// A bill line as later plugins see it. Its decimals came from the contract's (amounts rescaled
/// to 2 only when the digits still fit an s64, see `amount_from_wit`), so they convert back.
fn prior_line(l: &BillLine) -> wit::PriorLine {
    let back = |d: rust_decimal::Decimal| to_wit(d).unwrap_or(wit::Decimal { units: 0, scale: 0 });
    wit::PriorLine {
        category: category_to_wit(l.kind.category),
        quantity: back(l.quantity),
        unit_price: back(l.unit_price),
        amount: back(l.amount),
        payer: match l.payer {
            Payer::Customer => wit::Payer::Customer,
            Payer::Government => wit::Payer::Government,
            Payer::Employer => wit::Payer::Employer,
        },
    }
}

fn payer_from_wit(p: wit::Payer) -> Payer {
    match p {
        wit::Payer::Customer => Payer::Customer,
        wit::Payer::Government => Payer::Government,
        wit::Payer::Employer => Payer::Employer,
    }
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

    fn evaluator(&mut self, v: usize) -> &mut Evaluator {
        let (engine, schedule) = (&self.engine, &self.schedule);
        self.evaluators[v]
            .get_or_insert_with(|| Evaluator::new(engine, schedule.versions()[v].1.clone()))
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
                out[i] = Some(Err(BillError {
                    company: self.schedule.company().to_string(),
                    customer: d.customer.clone(),
                    date: d.date,
                    plugin: String::new(),
                    plugin_version: String::new(),
                    kind: BillErrorKind::NoChain,
                }));
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
            .map(|(r, d)| {
                r.unwrap_or_else(|| {
                    Err(BillError {
                        company: self.schedule.company().to_string(),
                        customer: d.customer.clone(),
                        date: d.date,
                        plugin: String::new(),
                        plugin_version: String::new(),
                        kind: BillErrorKind::NoChain,
                    })
                })
            })
            .collect()
    }
}
