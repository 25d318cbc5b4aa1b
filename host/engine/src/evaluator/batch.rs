//! A batch through the chain, and trap recovery: `run` calls each entry once with
//! the customer-days still alive, `isolate` retries a batch that trapped (or returned an output
//! of the wrong shape) one customer-day at a time within the plugin's time budgets, and `call`
//! makes one `evaluate-batch` call.
//!
//! The orchestration lives apart from the instances it uses (`instance`), the checks of what
//! comes back (`output`) and the columns it lays out (`lowering`), so that the order of events
//! for a batch (and what happens when a plugin traps) reads in one place.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Evaluator;
use super::bill::{DayBill, finish};
use super::instance::{EntryState, LiveInstance};
use super::invalid;
use super::lowering::{BatchColumns, category_to_wit, row_bits, season_to_wit};
use crate::bindings::{Contract, since_v0_1_0, wit};
use crate::cpu::thread_cpu_time;
use crate::error::{BillError, BillErrorKind};
use crate::invariants::Totals;
use crate::lift;
use crate::model::{Bill, DayInput};
use crate::trap::classify;

impl Evaluator {
    /// One batch of at most `limits.max_batch` customer-days through the chain, appending one
    /// result per input to `out`.
    pub(super) fn run(&mut self, days: &[&DayInput], out: &mut Vec<Result<Bill, BillError>>) {
        self.refresh();
        let n = days.len();
        // The columns that stay the same along the chain, built once per batch.
        let mut bad: Vec<(usize, String)> = Vec::new();
        let base = BatchColumns::build(days, &mut bad);
        let mut accs: Vec<DayBill> = days
            .iter()
            .map(|d| DayBill {
                lines: Vec::new(),
                season: d.season.map(season_to_wit),
                totals: Totals::default(),
                error: None,
            })
            .collect();
        for (i, message) in bad {
            if accs[i].error.is_none() {
                accs[i].error =
                    Some(self.boxed_error(None, days[i], BillErrorKind::Input { message }));
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
                    accs[i].error = Some(self.boxed_error(Some(e), days[i], kind.clone()));
                }
                continue;
            }
            // Only the customer-days the plugin bills (its `applies-to`): the others get no
            // lines from it, without a call. A subsidy for 5 % of the customers costs 5 %.
            if let EntryState::Ready(live) = &self.slots[e].state {
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
                            accs[i].error =
                                Some(self.boxed_error(Some(e), days[i], invalid(message)));
                        }
                    }
                }
                Err((trap, message)) => {
                    self.slots[e].state = EntryState::Empty;
                    if alive.len() == 1 {
                        let i = alive[0];
                        accs[i].error = Some(self.boxed_error(
                            Some(e),
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
        base: &BatchColumns<'_>,
        accs: &mut [DayBill],
        alive: &[usize],
    ) {
        let budget = &self.chain.entries()[e].plugin().budget;
        let batch_ms = self
            .engine
            .deadline_ms(budget, alive.len())
            .saturating_mul(2);
        let batch_budget = Duration::from_millis(batch_ms);
        let run_budget = self.engine.limits().retry_budget_ms;
        // CPU time of this thread, like the deadlines: what the retries cost the host, which a
        // busy machine does not inflate (a wall-clock budget skipped honest customer-days
        // whenever other processes held the cores).
        let started = thread_cpu_time();
        for &i in alive {
            if accs[i].error.is_some() {
                continue;
            }
            let spent = thread_cpu_time().saturating_sub(started);
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
                    Some(self.boxed_error(Some(e), days[i], BillErrorKind::Skipped { reason }));
                continue;
            }
            if let Err(kind) = self.ensure_ready(e) {
                accs[i].error = Some(self.boxed_error(Some(e), days[i], kind));
                continue;
            }
            match self.call(e, base, accs, &[i]) {
                Ok(output) => {
                    let applied = output.and_then(|o| self.apply_batch(e, days, accs, &[i], o));
                    if let Err(message) = applied {
                        accs[i].error = Some(self.boxed_error(Some(e), days[i], invalid(message)));
                    }
                }
                Err((trap, message)) => {
                    self.slots[e].state = EntryState::Empty;
                    accs[i].error = Some(self.boxed_error(
                        Some(e),
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
        slot.retry_left = slot
            .retry_left
            .saturating_sub(thread_cpu_time().saturating_sub(started));
    }

    /// One `evaluate-batch` call of entry `e` over the customer-days `idx` (ascending).
    fn call(
        &mut self,
        e: usize,
        base: &BatchColumns<'_>,
        accs: &[DayBill],
        idx: &[usize],
    ) -> Result<Result<wit::BatchOutput, String>, (crate::model::TrapKind, String)> {
        let full = idx.len() == base.dates.len();
        self.cols.fill(base, accs, idx, full, &self.offsets);
        let chain = Arc::clone(&self.chain);
        let budget = &chain.entries()[e].plugin().budget;
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
        let EntryState::Ready(live) = &mut slot.state else {
            return Err((
                crate::model::TrapKind::Other,
                "internal: the instance is not ready".to_string(),
            ));
        };
        live.used += idx.len() as u64;
        let LiveInstance {
            store,
            evaluate_batch,
            ..
        } = &mut **live;
        engine.arm_deadline(store, budget, idx.len());
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
            .map_err(|err| {
                classify(
                    &err,
                    store,
                    &slot.log,
                    mark,
                    engine.deadline_ms(budget, idx.len()),
                )
            })
    }
}
