//! A company's schedule of chain versions: [`ScheduleEvaluator`] bills each customer-day by the
//! chain version in force on its date, with one [`Evaluator`] per version.
//!
//! Apart from the evaluator because it adds nothing to how a chain is run, only which chain runs
//! a customer-day.
use std::sync::Arc;

use super::instance::format_logs;
use super::{Evaluator, PluginLog};
use crate::chain::Schedule;
use crate::engine::Engine;
use crate::error::{BillError, BillErrorKind, SetupError};
use crate::model::{Bill, DayInput, LineKind};

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
    /// failure (see [`Evaluator::configure_all`]).
    pub fn configure_all(&mut self) -> Result<(), SetupError> {
        for v in 0..self.evaluators.len() {
            self.evaluator(v).configure_all()?;
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
    // The engine's results are `Result<Bill, BillError>` values (see the `allow` at the top of `evaluator/mod.rs`).
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
