//! Runs a case file through the engine and compares what comes out with what the cases expect
//! (the case-file model and the comparison are `heatbill_cases`'; this module converts the
//! engine's bills and errors to its neutral results).

use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result};
use heatbill_cases::{CaseFile, CustomerSpec};
use heatbill_engine::text::{safe, terminal_safe};
use heatbill_engine::{
    Bill, BillError, BillErrorKind, Chain, ChainEntry, CustomerClass, DayInput, Engine, Evaluator,
    Payer, Schedule, ScheduleEvaluator, SeasonDay, SeasonPhase, ServiceStatus, TrapKind,
};
use heatbill_runtime::company::params_json;
use heatbill_runtime::model::{CustomerState, DayFacts};
use rust_decimal::Decimal;
use serde_json::json;

use crate::Catalog;

pub use heatbill_cases::CaseOutcome;

/// Builds a case file's chain from the catalog, with each entry's first parameters.
pub fn chain(catalog: &Catalog, file: &CaseFile) -> Result<Arc<Chain>> {
    chain_on(catalog, file, None)
}

/// The chain in force on `date` (`None`: before every `[[chain.from]]` date).
fn chain_on(
    catalog: &Catalog,
    file: &CaseFile,
    date: Option<chrono::NaiveDate>,
) -> Result<Arc<Chain>> {
    let mut entries = Vec::new();
    for (i, e) in file.chain.iter().enumerate() {
        let plugin = catalog
            .get(&e.plugin, e.version.as_deref())
            .with_context(|| format!("chain entry {} ({})", i + 1, safe(&e.plugin)))?;
        entries.push(ChainEntry::new(plugin, params_json(e.params_on(date))));
    }
    Ok(Arc::new(Chain::new(file.company(), entries)?))
}

/// A case file's chain versions: the chain with every entry's first parameters, then one
/// version on each `[[chain.from]]` date with the parameters in force from it, as a company's
/// chain versions are. The cases run through them exactly as the nightly run does (a
/// [`ScheduleEvaluator`]), each day under the version in force on it.
pub fn schedule(catalog: &Catalog, file: &CaseFile) -> Result<Arc<Schedule>> {
    let mut versions = vec![(chrono::NaiveDate::MIN, chain_on(catalog, file, None)?)];
    for d in file.version_dates() {
        versions.push((d, chain_on(catalog, file, Some(d))?));
    }
    Ok(Arc::new(Schedule::new(versions)?))
}

/// The engine's input for a case customer on one date: the case's customer read as the
/// runtime stores a customer, then the run's own translation
/// ([`heatbill_runtime::model::CustomerState::day_input`]), so a case bills what a night would.
pub fn day_input(c: &CustomerSpec, date: chrono::NaiveDate) -> DayInput {
    let state = CustomerState {
        customer_id: c.id.clone(),
        valid_from: date,
        class: match c.class.as_str() {
            "non-residential" => CustomerClass::NonResidential,
            _ => CustomerClass::Residential,
        },
        special_class: c.special_class.clone(),
        status: match c.status.as_str() {
            "suspended" => ServiceStatus::Suspended,
            _ => ServiceStatus::Active,
        },
        metered: c.metered,
        low_income: c.low_income,
        building_area: c.building_area,
        usable_area: c.usable_area,
        ceiling_height: c.ceiling_height,
        tags: c.tags.clone(),
        // Sorted by key, as stored (the case file's map is ordered).
        attributes: c
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let facts = DayFacts {
        // Exact; reading the case file refused a reading that does not fit in GJ.
        heat: c.heat_gj(),
        indoor_temperature: c.indoor_temperature,
        arrears: c.arrears,
        arrears_since: c.arrears_since,
    };
    // A case may state the season day itself (a company's season preset, as the run passes it
    // when the chain has no season plugin).
    let season = c.season.as_ref().map(|s| SeasonDay {
        phase: match s.phase.as_str() {
            "outside" => SeasonPhase::Outside,
            "early" => SeasonPhase::Early,
            "extended" => SeasonPhase::Extended,
            _ => SeasonPhase::Regular,
        },
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    });
    state.day_input(date, &facts, season)
}

/// Every customer-day of a case file, in case order.
pub fn case_days(file: &CaseFile) -> Result<Vec<DayInput>> {
    Ok(file
        .cases
        .iter()
        .flat_map(|c| {
            c.dates()
                .into_iter()
                .map(move |d| day_input(&c.customer, d))
        })
        .collect())
}

/// The results of one case file.
#[derive(Debug)]
pub struct FileReport {
    /// The file.
    pub path: String,
    /// Its description.
    pub description: Option<String>,
    /// An error that kept the file's cases from running (chain could not be built).
    pub setup_error: Option<String>,
    /// One outcome per case.
    pub outcomes: Vec<CaseOutcome>,
}

impl FileReport {
    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "file": self.path,
            "description": self.description,
            "setup_error": self.setup_error,
            "cases": self.outcomes.iter().map(|o| json!({
                "name": o.name,
                "passed": o.passed(),
                "got": o.got,
                "diffs": o.diffs,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Human-readable: every text that did not come from heatbill itself (the case file's names and
/// descriptions, what a plugin returned or printed, a diff quoting it) is escaped for the
/// terminal, so that no message can rewrite the table (`--json` escapes by itself).
impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => writeln!(f, "{} — {}", safe(&self.path), safe(d))?,
            None => writeln!(f, "{}", safe(&self.path))?,
        }
        if let Some(e) = &self.setup_error {
            // heatbill's own setup errors span lines; each line is escaped on its own.
            let lines: Vec<String> = e.split('\n').map(safe).collect();
            writeln!(f, "  ERROR  {}", lines.join("\n         "))?;
        }
        let names: Vec<String> = self.outcomes.iter().map(|o| safe(&o.name)).collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        for (o, name) in self.outcomes.iter().zip(&names) {
            let mark = if o.passed() { "ok  " } else { "FAIL" };
            let pad = width - name.chars().count();
            writeln!(f, "  {mark}  {name}{}  {}", " ".repeat(pad), safe(&o.got))?;
            for d in &o.diffs {
                // The plugin's output keeps its lines, each escaped and behind a bar under the
                // diff, so that none can pass for a row; every other diff is one line.
                match d.strip_prefix(PLUGIN_OUTPUT) {
                    Some(log) => {
                        let lines: Vec<String> = log.split('\n').map(safe).collect();
                        writeln!(
                            f,
                            "          - {PLUGIN_OUTPUT}            | {}",
                            lines.join("\n            | ")
                        )?;
                    }
                    None => writeln!(f, "          - {}", safe(d))?,
                }
            }
        }
        writeln!(f)
    }
}

/// Runs every case of a file through its chain (one evaluator, one batch per case) and compares;
/// every customer-day also goes through the single-day export, which must agree.
pub fn run_file(engine: &Engine, catalog: &Catalog, file: &CaseFile) -> FileReport {
    let mut report = FileReport {
        path: file.path.display().to_string(),
        description: file.description.clone(),
        setup_error: None,
        outcomes: Vec::new(),
    };
    let mut evaluator = match schedule(catalog, file) {
        Ok(s) => ScheduleEvaluator::new(engine, s),
        Err(e) => {
            report.setup_error = Some(format!("{e:#}"));
            return report;
        }
    };
    let configured = evaluator.configure_all();
    if let Some(expected) = &file.refused {
        // A file that tests a refusal: the chain was built (its plugins found, its versions
        // right), and configuring it must fail, saying what the file says.
        let refusal = configured
            .err()
            .map(|e| format!("{:#}", anyhow::Error::from(e)));
        report.outcomes.push(refused(expected, refusal));
        return report;
    }
    if let Err(e) = configured {
        report.setup_error = Some(format!("{:#}", anyhow::Error::from(e)));
        return report;
    }
    let impure = purity(&mut evaluator, file, engine.limits().max_batch.max(1));
    for (c, case) in file.cases.iter().enumerate() {
        let days: Vec<DayInput> = case
            .dates()
            .into_iter()
            .map(|d| day_input(&case.customer, d))
            .collect();
        // Alone, from fresh instances: the reference every other way of billing it must match.
        evaluator.reset();
        let results = evaluator.evaluate(&days);
        // The same customer-days through the single-day export (the dry run): a plugin whose
        // two entry points disagree would bill differently at night than in a dry run.
        let mut disagree = Vec::new();
        for (day, batch) in days.iter().zip(&results) {
            let single = evaluator.dry_run(day);
            if !agree(&single, batch) {
                disagree.push(format!(
                    "{}: evaluate-batch gave {}, the single-day evaluate gave {}",
                    day.date,
                    brief(batch),
                    brief(&single)
                ));
            }
        }
        let log = evaluator.take_log();
        let got: Vec<heatbill_cases::DayResult> = results.iter().map(neutral).collect();
        let mut outcome = heatbill_cases::compare(case, &got);
        outcome.diffs.extend(disagree.into_iter().take(3));
        outcome.diffs.extend(
            impure
                .iter()
                .filter(|(k, _)| *k == c)
                .map(|(_, d)| d.clone())
                .take(3),
        );
        if !outcome.passed() && !log.is_empty() {
            outcome.diffs.push(format!(
                "{PLUGIN_OUTPUT}{}",
                collapse_repeats(log.trim_end())
            ));
        }
        report.outcomes.push(outcome);
    }
    report
}

/// The outcome of a file that expects its chain refused: `refusal` is what configuring it said,
/// `None` when it configured.
fn refused(
    expected: &heatbill_cases::Refused,
    refusal: Option<String>,
) -> heatbill_cases::CaseOutcome {
    let name = "the chain is refused".to_string();
    let saying = expected
        .message
        .as_ref()
        .map(|m| format!(", saying {m:?}"))
        .unwrap_or_default();
    match refusal {
        None => heatbill_cases::CaseOutcome {
            name,
            got: "the chain configured".into(),
            diffs: vec![format!(
                "expected the chain to be refused{saying}; it configured"
            )],
        },
        Some(said) => {
            let diffs = match &expected.message {
                Some(m) if !said.contains(m.as_str()) => {
                    vec![format!("expected the refusal to say {m:?}")]
                }
                _ => Vec::new(),
            };
            heatbill_cases::CaseOutcome {
                name,
                got: said.replace('\n', " "),
                diffs,
            }
        }
    }
}

/// The most customer-days of one case file that the purity check bills in its varied batches
/// (a file of season-long range cases has thousands; the first ones are enough to show state).
const PURITY_DAYS: usize = 2_000;

/// The contract's purity rule, tested: every customer-day of the file (up to [`PURITY_DAYS`]) is
/// billed alone, from fresh instances, and then inside varied batches: all together, shuffled,
/// each twice in a row, among generated filler customer-days, and at the end of a full call of
/// other customer-days. A bill that differs anywhere depends on something besides
/// its customer-day: the plugin keeps state, and production (which batches customers by the
/// thousand, on several threads) would bill differently from the cases. Returns (case index,
/// diff) for each difference found.
// The engine's results are `Result<Bill, BillError>` elements, not early returns (see the
// evaluator's module).
#[allow(clippy::result_large_err)]
fn purity(ev: &mut ScheduleEvaluator, file: &CaseFile, max_batch: usize) -> Vec<(usize, String)> {
    let mut days: Vec<(usize, DayInput)> = Vec::new();
    for (c, case) in file.cases.iter().enumerate() {
        for d in case.dates() {
            if days.len() == PURITY_DAYS {
                break;
            }
            days.push((c, day_input(&case.customer, d)));
        }
    }
    if days.is_empty() {
        return Vec::new();
    }
    let alone: Vec<Result<Bill, BillError>> = days
        .iter()
        .map(|(_, d)| {
            ev.reset();
            ev.evaluate(std::slice::from_ref(d)).remove(0)
        })
        .collect();
    // Filler: the cases' own customer-days under other ids, with other areas and arrears, and
    // of every class, status and kind of household, so that the cases are billed beside every
    // kind of customer a night's batch holds (a rule whose bill changes when its call mixes
    // classes passed a file of one class).
    let filler = |n: usize| -> Vec<DayInput> {
        (0..n)
            .map(|k| {
                let mut d = days[k % days.len()].1.clone();
                d.customer = format!("filler-{k}");
                let f = Decimal::from(k % 7 + 1);
                d.building_area *= f;
                d.usable_area = d.usable_area.map(|a| a * f);
                d.arrears *= f;
                if k % 2 == 1 {
                    d.class = match d.class {
                        CustomerClass::Residential => CustomerClass::NonResidential,
                        CustomerClass::NonResidential => CustomerClass::Residential,
                    };
                }
                if k % 5 == 3 {
                    d.status = match d.status {
                        ServiceStatus::Active => ServiceStatus::Suspended,
                        ServiceStatus::Suspended => ServiceStatus::Active,
                    };
                }
                if k % 7 == 2 {
                    d.low_income = !d.low_income;
                }
                if k % 11 == 4 {
                    d.special_class = Some("garage".into());
                }
                d
            })
            .collect()
    };
    let n = days.len();
    let mut order: Vec<usize> = (0..n).collect();
    // A fixed shuffle (xorshift), so a failure is reproducible.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let together: Vec<usize> = (0..n).collect();
    let twice: Vec<usize> = (0..n).flat_map(|i| [i, i]).collect();
    let variants: [(&str, Vec<usize>, Vec<DayInput>, bool); 5] = [
        (
            "billed together with the file's other customer-days",
            together.clone(),
            Vec::new(),
            false,
        ),
        ("billed in shuffled order", order, Vec::new(), false),
        (
            "billed twice in a row in one batch",
            twice,
            Vec::new(),
            false,
        ),
        (
            "billed among generated customer-days",
            together.clone(),
            filler(n),
            true,
        ),
        (
            "billed at the end of a full batch of other customer-days",
            together,
            // The cases last in one call of `max_batch` customer-days (the engine may start
            // each call from a fresh instance, so state must build up within the call).
            filler(max_batch.saturating_sub(n).max(1)),
            false,
        ),
    ];
    let mut diffs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (what, idx, filler, interleave) in variants {
        let mut batch: Vec<DayInput> = Vec::with_capacity(idx.len() + filler.len());
        let mut at: Vec<usize> = Vec::with_capacity(idx.len());
        if interleave {
            for (j, &i) in idx.iter().enumerate() {
                batch.push(filler[j % filler.len()].clone());
                at.push(batch.len());
                batch.push(days[i].1.clone());
            }
        } else {
            batch.extend(filler);
            for &i in &idx {
                at.push(batch.len());
                batch.push(days[i].1.clone());
            }
        }
        ev.reset();
        // One call where the engine allows it: the variants are about what one call sees.
        let results = ev.evaluate(&batch);
        // The night bills full batches under the same limits: a customer-day billed alone
        // that runs out of time in a batch (a rule too slow per customer-day) would be parked
        // at night, in every batch.
        let late: Vec<&BillError> = idx
            .iter()
            .zip(&at)
            .filter(|(i, _)| alone[**i].is_ok())
            .filter_map(|(_, k)| results[*k].as_ref().err())
            .filter(|e| out_of_time(e))
            .collect();
        if let Some(first) = late.first()
            && seen.insert((0, days[0].1.date, what))
        {
            let failed = results
                .iter()
                .filter(|r| r.as_ref().is_err_and(out_of_time))
                .count();
            diffs.push((
                0,
                format!(
                    "{} of the file's customer-days billed alone ran out of time {what} ({failed} \
                     of the call's {} customer-days did, one call as the night bills them), e.g. \
                     {}: the night would park them; make the rule cheaper per customer-day (the \
                     limits are in the plugin guide)",
                    late.len(),
                    batch.len(),
                    terminal_safe(&first.to_string(), 300)
                ),
            ));
        }
        for (&i, &k) in idx.iter().zip(&at) {
            let (case, day) = (&days[i].0, &days[i].1);
            if !same(&alone[i], &results[k]) && seen.insert((*case, day.date, what)) {
                diffs.push((
                    *case,
                    format!(
                        "{}: the bill depends on the other customer-days of its batch: billed \
                         alone {}; {what}, {}",
                        day.date,
                        brief(&alone[i]),
                        brief(&results[k])
                    ),
                ));
            }
        }
    }
    diffs
}

/// Whether two results of one customer-day agree: bills exactly; errors by kind (a message may
/// name the batch's deadline), and an error the circuit breaker caused matches anything.
/// The diff that carries a failed case's plugin log.
const PLUGIN_OUTPUT: &str = "plugin output:\n";

/// The plugin's log with repeated runs collapsed: blocks are separated by a blank line, and a
/// run of one block, or of a cycle of up to four blocks, printed again and again is kept once
/// with a count. A plugin that fails every customer-day prints the same traceback (or the same
/// few blocks: a JavaScript error, its stack, the abort) for each retry; the reader needs it
/// once.
fn collapse_repeats(log: &str) -> String {
    let blocks: Vec<&str> = log.split("\n\n").collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        let mut best = (1, 0); // (cycle length, further repeats)
        for period in 1..=4 {
            let mut repeats = 0;
            while i + (repeats + 2) * period <= blocks.len()
                && blocks[i..i + period]
                    == blocks[i + (repeats + 1) * period..i + (repeats + 2) * period]
            {
                repeats += 1;
            }
            if repeats * period > best.1 * best.0 {
                best = (period, repeats);
            }
        }
        let (period, repeats) = best;
        out.extend(blocks[i..i + period].iter().map(|b| b.to_string()));
        if repeats > 0 {
            out.push(format!(
                "[the {} above repeated {repeats} more time{}]",
                if period == 1 { "block" } else { "blocks" },
                if repeats == 1 { "" } else { "s" }
            ));
        }
        i += period * (repeats + 1);
    }
    out.join("\n\n")
}

/// Whether the single-day and the batch entry point agree on a customer-day: the same bill, or
/// the same refusal; two traps agree when they are of one kind, because a trap's message may
/// name the place in the plugin's runtime it was raised from, which differs between the two
/// entry points (componentize-py panics at a different line for each) without the rule
/// differing.
fn agree(a: &Result<Bill, BillError>, b: &Result<Bill, BillError>) -> bool {
    match (a, b) {
        (
            Err(BillError {
                kind: BillErrorKind::Trap { kind: x, .. },
                ..
            }),
            Err(BillError {
                kind: BillErrorKind::Trap { kind: y, .. },
                ..
            }),
        ) => x == y,
        _ => a == b,
    }
}

/// Whether a customer-day failed for lack of time (a deadline, or skipped when a budget was
/// spent): a limit, reported as such, never as impurity.
fn out_of_time(e: &BillError) -> bool {
    matches!(
        e.kind,
        BillErrorKind::Skipped { .. }
            | BillErrorKind::Trap {
                kind: TrapKind::Deadline,
                ..
            }
    )
}

/// Whether a customer-day billed alone and in a batch agree. A result that ran out of time
/// agrees with anything: what it says is about the limits, not about the bill.
fn same(a: &Result<Bill, BillError>, b: &Result<Bill, BillError>) -> bool {
    match (a, b) {
        (Err(x), _) | (_, Err(x)) if out_of_time(x) => true,
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x.kind.name() == y.kind.name(),
        _ => false,
    }
}

/// An evaluator for a chain, instantiated and configured: a configuration the plugins refuse
/// (bad params) is an error here, before any customer is evaluated.
pub fn evaluator(engine: &Engine, chain: Arc<Chain>) -> Result<Evaluator> {
    let mut ev = Evaluator::new(engine, chain);
    ev.configure_all()?;
    Ok(ev)
}

fn brief(r: &Result<Bill, BillError>) -> String {
    heatbill_cases::brief(&neutral(r))
}

/// The engine's result of a customer-day as the case comparison's neutral result. An error's
/// `message` is its kind's text (what `expect.message` must contain), its `text` the whole error
/// with company, customer, date and plugin.
// The engine's results are `Result<Bill, BillError>` elements (see the evaluator's module).
#[allow(clippy::result_large_err)]
pub fn neutral(r: &Result<Bill, BillError>) -> heatbill_cases::DayResult {
    match r {
        Ok(b) => Ok(heatbill_cases::Bill {
            lines: b
                .lines
                .iter()
                .map(|l| heatbill_cases::Line {
                    code: l.code().to_string(),
                    amount: l.amount,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    payer: match l.payer {
                        Payer::Customer => heatbill_cases::Payer::Customer,
                        Payer::Government => heatbill_cases::Payer::Government,
                        Payer::Employer => heatbill_cases::Payer::Employer,
                    },
                    category: l.category().as_str().to_string(),
                })
                .collect(),
            total: b.total,
            by_payer: heatbill_cases::PayerTotals {
                customer: b.by_payer.customer,
                government: b.by_payer.government,
                employer: b.by_payer.employer,
            },
        }),
        Err(e) => Err(heatbill_cases::BillError {
            kind: e.kind.name().to_string(),
            message: e.kind.to_string(),
            text: e.to_string(),
        }),
    }
}
