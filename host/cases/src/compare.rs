//! What a chain produced for a customer-day, in neutral terms, and its comparison with what a
//! case expects. The host's harness converts the engine's bills and errors to these types, the
//! guest workspace's native check converts the SDK's; both then compare with the same code and
//! report the same differences.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;

use crate::file::{Case, ExpectLine, ExpectTotals};

/// Who pays a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payer {
    /// The customer.
    Customer,
    /// The government (a subsidy).
    Government,
    /// An employer or other third party.
    Employer,
}

impl Payer {
    /// "customer", "government" or "employer", as case files name payers.
    pub fn as_str(self) -> &'static str {
        match self {
            Payer::Customer => "customer",
            Payer::Government => "government",
            Payer::Employer => "employer",
        }
    }
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's code (`heat`).
    pub code: String,
    /// The amount in yuan.
    pub amount: Decimal,
    /// The quantity billed.
    pub quantity: Decimal,
    /// The price per unit.
    pub unit_price: Decimal,
    /// Who pays it.
    pub payer: Payer,
    /// The category of its line kind (`heating`, `subsidy`, …); informative.
    pub category: String,
}

/// A bill's totals by payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PayerTotals {
    /// What the customer pays.
    pub customer: Decimal,
    /// What the government pays.
    pub government: Decimal,
    /// What an employer or other third party pays.
    pub employer: Decimal,
}

impl PayerTotals {
    fn add(&mut self, other: &PayerTotals) {
        self.customer += other.customer;
        self.government += other.government;
        self.employer += other.employer;
    }
}

/// The bill of one customer-day.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bill {
    /// The lines, in chain order.
    pub lines: Vec<Line>,
    /// The sum of the lines' amounts.
    pub total: Decimal,
    /// The sum of the lines' amounts by payer.
    pub by_payer: PayerTotals,
}

impl Bill {
    /// A bill of `lines`, with its totals summed from them.
    pub fn from_lines(lines: Vec<Line>) -> Self {
        let mut total = Decimal::ZERO;
        let mut by_payer = PayerTotals::default();
        for l in &lines {
            total += l.amount;
            match l.payer {
                Payer::Customer => by_payer.customer += l.amount,
                Payer::Government => by_payer.government += l.amount,
                Payer::Employer => by_payer.employer += l.amount,
            }
        }
        Self {
            lines,
            total,
            by_payer,
        }
    }
}

/// Why a customer-day has no bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillError {
    /// The kind, as case files name it: a rule-error kind (`bad-params`, `missing-input`,
    /// `invalid-input`, `unsupported`), or `trap`, `invalid-output`, `input`, `skipped`,
    /// `no-chain`.
    pub kind: String,
    /// What happened: the text `expect.message` must contain.
    pub message: String,
    /// The whole error as reported, with where it happened (company, customer, date, plugin).
    pub text: String,
}

impl fmt::Display for BillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What came out for one customer-day.
pub type DayResult = Result<Bill, BillError>;

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Compares the results of a case's dates ([`Case::dates`], in order) with what it expects: a
/// range case by [`compare_range`], a single-day case by [`compare_day`] on its one result.
pub fn compare(case: &Case, results: &[DayResult]) -> CaseOutcome {
    match (&case.dates, results) {
        (None, [result]) => compare_day(case, result),
        (None, _) => CaseOutcome {
            name: case.name.clone(),
            diffs: vec![format!(
                "expected the result of one date, got {}",
                results.len()
            )],
            got: String::new(),
        },
        (Some(_), _) => compare_range(case, results),
    }
}

/// A result in a few words: its lines and total, or its error's kind.
pub fn brief(r: &DayResult) -> String {
    match r {
        Ok(b) => summary(b),
        Err(e) => format!("error {}", e.kind),
    }
}

/// A bill on one line: `heat 12.56, subsidy -3.14 (government) | total 9.42`.
pub fn summary(bill: &Bill) -> String {
    let lines: Vec<String> = bill
        .lines
        .iter()
        .map(|l| {
            if l.payer == Payer::Customer {
                format!("{} {}", l.code, l.amount)
            } else {
                format!("{} {} ({})", l.code, l.amount, l.payer.as_str())
            }
        })
        .collect();
    format!("{} | total {}", lines.join(", "), bill.total)
}

/// Compares the result of a single-day case with what it expects.
pub fn compare_day(case: &Case, result: &DayResult) -> CaseOutcome {
    let e = &case.expect;
    let mut diffs = Vec::new();
    let got = match result {
        Ok(b) => summary(b),
        Err(err) => format!("error {}: {err}", err.kind),
    };
    match (result, &e.error) {
        (Err(err), Some(want)) => {
            if &err.kind != want {
                diffs.push(format!("error: expected {want}, got {}", err.kind));
            }
            if let Some(m) = &e.message
                && !err.message.contains(m.as_str())
            {
                diffs.push(format!(
                    "error: expected a message containing {m:?}, got: {err}"
                ));
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

/// Compares a bill's lines with the expected ones, in order; appends one diff per difference.
pub fn compare_lines(want: &[ExpectLine], bill: &Bill, diffs: &mut Vec<String>) {
    for (i, w) in want.iter().enumerate() {
        let n = i + 1;
        let Some(g) = bill.lines.get(i) else {
            diffs.push(format!(
                "line {n}: expected {} {} ({}), got no line",
                w.code, w.amount, w.payer
            ));
            continue;
        };
        if g.code != w.code {
            diffs.push(format!(
                "line {n}: code expected {}, got {}",
                w.code, g.code
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
            g.code,
            g.amount,
            g.payer.as_str()
        ));
    }
}

/// Compares totals with the expected ones (each only when given); appends one diff per
/// difference.
pub fn compare_totals(
    want: &ExpectTotals,
    total: Decimal,
    by_payer: &PayerTotals,
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

/// Compares the results of a range case (one per date) with what it expects: the sums per line
/// code, the totals and the number of dates with lines summed over the range, or the same
/// error on every date.
pub fn compare_range(case: &Case, results: &[DayResult]) -> CaseOutcome {
    let e = &case.expect;
    let mut diffs = Vec::new();
    let mut sum: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut total = Decimal::ZERO;
    let mut by_payer = PayerTotals::default();
    let mut days = 0u32;
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(b) => {
                if !b.lines.is_empty() {
                    days += 1;
                }
                for l in &b.lines {
                    *sum.entry(l.code.clone()).or_default() += l.amount;
                }
                total += b.total;
                by_payer.add(&b.by_payer);
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
            let message_ok = |x: &BillError| {
                e.message
                    .as_ref()
                    .is_none_or(|m| x.message.contains(m.as_str()))
            };
            if errors.len() != results.len()
                || errors.iter().any(|x| &x.kind != want || !message_ok(x))
            {
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
