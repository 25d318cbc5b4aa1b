//! Runs a case file through the engine and compares what comes out with what the cases expect.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use heatbill_engine::{
    Bill, BillError, Chain, ChainEntry, CustomerClass, DayInput, Engine, Evaluator, Payer,
    SeasonDay, SeasonPhase, ServiceStatus,
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::cases::{Case, CaseFile, CustomerSpec, params_json};
use crate::harness::Catalog;

/// Builds a case file's chain from the catalog.
pub fn chain(catalog: &Catalog, file: &CaseFile) -> Result<Arc<Chain>> {
    let mut entries = Vec::new();
    for (i, e) in file.chain.iter().enumerate() {
        let plugin = catalog
            .get(&e.plugin)
            .with_context(|| format!("chain entry {} ({})", i + 1, e.plugin))?;
        if let Some(v) = &e.version
            && *v != plugin.info().version
        {
            bail!(
                "chain entry {} asks for {} {v}, but the component is version {}",
                i + 1,
                e.plugin,
                plugin.info().version
            );
        }
        entries.push(ChainEntry::new(plugin, params_json(&e.params)));
    }
    Ok(Arc::new(Chain::new(file.company(), entries)?))
}

/// The engine's input for a case customer on one date.
pub fn day_input(c: &CustomerSpec, date: chrono::NaiveDate) -> DayInput {
    let mut d = DayInput::new(c.id.clone(), date);
    d.class = match c.class.as_str() {
        "non-residential" => CustomerClass::NonResidential,
        _ => CustomerClass::Residential,
    };
    d.special_class = c.special_class.clone();
    d.status = match c.status.as_str() {
        "suspended" => ServiceStatus::Suspended,
        _ => ServiceStatus::Active,
    };
    d.metered = c.metered;
    d.low_income = c.low_income;
    d.building_area = c.building_area;
    d.usable_area = c.usable_area;
    d.ceiling_height = c.ceiling_height;
    d.heat = c.heat;
    d.indoor_temperature = c.indoor_temperature;
    d.arrears = c.arrears;
    d.arrears_since = c.arrears_since;
    d.tags = c.tags.clone();
    d.attributes = c
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    d.season = c.season.as_ref().map(|s| SeasonDay {
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
    d
}

fn dates_of(case: &Case) -> Vec<chrono::NaiveDate> {
    match (&case.dates, case.customer.date) {
        (Some(r), _) => r.days().collect(),
        (None, Some(d)) => vec![d],
        (None, None) => Vec::new(),
    }
}

/// Every customer-day of a case file, in case order.
pub fn case_days(file: &CaseFile) -> Result<Vec<DayInput>> {
    Ok(file
        .cases
        .iter()
        .flat_map(|c| {
            dates_of(c)
                .into_iter()
                .map(move |d| day_input(&c.customer, d))
        })
        .collect())
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// What went wrong; empty when the case passed.
    pub diffs: Vec<String>,
    /// A one-line summary of what came out (lines, or the error).
    pub got: String,
}

impl CaseOutcome {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.diffs.is_empty()
    }
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

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => writeln!(f, "{} — {d}", self.path)?,
            None => writeln!(f, "{}", self.path)?,
        }
        if let Some(e) = &self.setup_error {
            writeln!(f, "  ERROR  {}", e.replace('\n', "\n         "))?;
        }
        let width = self
            .outcomes
            .iter()
            .map(|o| o.name.chars().count())
            .max()
            .unwrap_or(0);
        for o in &self.outcomes {
            let mark = if o.passed() { "ok  " } else { "FAIL" };
            let pad = width - o.name.chars().count();
            writeln!(f, "  {mark}  {}{}  {}", o.name, " ".repeat(pad), o.got)?;
            for d in &o.diffs {
                writeln!(f, "          - {d}")?;
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
    let evaluator = chain(catalog, file).and_then(|c| evaluator(engine, c));
    let mut evaluator = match evaluator {
        Ok(e) => e,
        Err(e) => {
            report.setup_error = Some(format!("{e:#}"));
            return report;
        }
    };
    for case in &file.cases {
        let days: Vec<DayInput> = dates_of(case)
            .into_iter()
            .map(|d| day_input(&case.customer, d))
            .collect();
        let results = evaluator.evaluate(&days);
        // The same customer-days through the single-day export (the dry run): a plugin whose
        // two entry points disagree would bill differently at night than in a dry run.
        let mut disagree = Vec::new();
        for (day, batch) in days.iter().zip(&results) {
            let single = evaluator.dry_run(day);
            if &single != batch {
                disagree.push(format!(
                    "{}: evaluate-batch gave {}, the single-day evaluate gave {}",
                    day.date,
                    brief(batch),
                    brief(&single)
                ));
            }
        }
        let log = evaluator.take_log();
        let mut outcome = if case.dates.is_some() {
            compare_range(case, &results)
        } else {
            compare_day(case, &results[0])
        };
        outcome.diffs.extend(disagree.into_iter().take(3));
        if !outcome.passed() && !log.is_empty() {
            outcome
                .diffs
                .push(format!("plugin output:\n{}", log.trim_end()));
        }
        report.outcomes.push(outcome);
    }
    report
}

fn error_kind(e: &BillError) -> &'static str {
    e.kind.name()
}

/// An evaluator for a chain, instantiated and configured: a configuration the plugins refuse
/// (bad params) is an error here, before any customer is evaluated.
pub fn evaluator(engine: &Engine, chain: Arc<Chain>) -> Result<Evaluator> {
    let mut ev = Evaluator::new(engine, chain);
    ev.prepare()?;
    Ok(ev)
}

fn brief(r: &Result<Bill, BillError>) -> String {
    match r {
        Ok(b) => summary(b),
        Err(e) => format!("error {}", error_kind(e)),
    }
}

fn summary(bill: &Bill) -> String {
    let lines: Vec<String> = bill
        .lines
        .iter()
        .map(|l| {
            if l.payer == Payer::Customer {
                format!("{} {}", l.code(), l.amount)
            } else {
                format!("{} {} ({})", l.code(), l.amount, l.payer.as_str())
            }
        })
        .collect();
    format!("{} | total {}", lines.join(", "), bill.total)
}

fn compare_day(case: &Case, result: &Result<Bill, BillError>) -> CaseOutcome {
    let e = &case.expect;
    let mut diffs = Vec::new();
    let got = match result {
        Ok(b) => summary(b),
        Err(err) => format!("error {}: {err}", error_kind(err)),
    };
    match (result, &e.error) {
        (Err(err), Some(want)) => {
            if error_kind(err) != want {
                diffs.push(format!("error: expected {want}, got {}", error_kind(err)));
            }
        }
        (Err(err), None) => diffs.push(format!("expected a bill, got an error: {err}")),
        (Ok(_), Some(want)) => diffs.push(format!("expected error {want}, got a bill")),
        (Ok(bill), None) => {
            if let Some(want) = &e.lines {
                compare_lines(want, bill, &mut diffs);
            }
            if let Some(t) = &e.totals {
                compare_totals(t, bill.total, &bill.by_payer, &mut diffs);
            }
        }
    }
    CaseOutcome {
        name: case.name.clone(),
        diffs,
        got,
    }
}

fn compare_lines(want: &[crate::cases::ExpectLine], bill: &Bill, diffs: &mut Vec<String>) {
    for (i, w) in want.iter().enumerate() {
        let n = i + 1;
        let Some(g) = bill.lines.get(i) else {
            diffs.push(format!(
                "line {n}: expected {} {} ({}), got no line",
                w.code, w.amount, w.payer
            ));
            continue;
        };
        if g.code() != w.code {
            diffs.push(format!(
                "line {n}: code expected {}, got {}",
                w.code,
                g.code()
            ));
        }
        if g.payer.as_str() != w.payer {
            diffs.push(format!(
                "line {n} {}: payer expected {}, got {}",
                w.code,
                w.payer,
                g.payer.as_str()
            ));
        }
        if g.amount != w.amount {
            diffs.push(format!(
                "line {n} {}: amount expected {}, got {}",
                w.code, w.amount, g.amount
            ));
        }
        if let Some(q) = w.quantity
            && g.quantity != q
        {
            diffs.push(format!(
                "line {n} {}: quantity expected {q}, got {}",
                w.code, g.quantity
            ));
        }
        if let Some(p) = w.unit_price
            && g.unit_price != p
        {
            diffs.push(format!(
                "line {n} {}: unit_price expected {p}, got {}",
                w.code, g.unit_price
            ));
        }
    }
    for (i, g) in bill.lines.iter().enumerate().skip(want.len()) {
        diffs.push(format!(
            "line {}: unexpected {} {} ({})",
            i + 1,
            g.code(),
            g.amount,
            g.payer.as_str()
        ));
    }
}

fn compare_totals(
    want: &crate::cases::ExpectTotals,
    total: Decimal,
    by_payer: &heatbill_engine::PayerTotals,
    diffs: &mut Vec<String>,
) {
    let checks = [
        ("total", want.total, total),
        ("customer", want.customer, by_payer.customer),
        ("government", want.government, by_payer.government),
        ("employer", want.employer, by_payer.employer),
    ];
    for (name, w, g) in checks {
        if let Some(w) = w
            && w != g
        {
            diffs.push(format!("totals.{name}: expected {w}, got {g}"));
        }
    }
}

fn compare_range(case: &Case, results: &[Result<Bill, BillError>]) -> CaseOutcome {
    let e = &case.expect;
    let mut diffs = Vec::new();
    let mut sum: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut total = Decimal::ZERO;
    let mut by_payer = heatbill_engine::PayerTotals::default();
    let mut days = 0u32;
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(b) => {
                if !b.lines.is_empty() {
                    days += 1;
                }
                for l in &b.lines {
                    *sum.entry(l.code().to_string()).or_default() += l.amount;
                }
                total += b.total;
                by_payer.customer += b.by_payer.customer;
                by_payer.government += b.by_payer.government;
                by_payer.employer += b.by_payer.employer;
            }
            Err(err) => errors.push(err),
        }
    }
    let got = format!(
        "{} days billed, {} | total {total}",
        days,
        sum.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match &e.error {
        Some(want) => {
            if errors.len() != results.len() || errors.iter().any(|x| error_kind(x) != want) {
                diffs.push(format!(
                    "expected error {want} on every date; {} of {} dates failed",
                    errors.len(),
                    results.len()
                ));
            }
        }
        None => {
            if let Some(first) = errors.first() {
                diffs.push(format!(
                    "{} of {} dates failed; first: {first}",
                    errors.len(),
                    results.len()
                ));
            }
            for (code, w) in e.sum.iter().flatten() {
                let g = sum.get(code).copied().unwrap_or_default();
                if g != *w {
                    diffs.push(format!("sum.{code}: expected {w}, got {g}"));
                }
            }
            if let Some(t) = &e.totals {
                compare_totals(t, total, &by_payer, &mut diffs);
            }
            if let Some(d) = e.days
                && d != days
            {
                diffs.push(format!("days: expected {d}, got {days}"));
            }
        }
    }
    CaseOutcome {
        name: case.name.clone(),
        diffs,
        got,
    }
}
