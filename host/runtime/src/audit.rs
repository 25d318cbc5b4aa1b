//! `heatbill audit`: an operator's check of a company's books, date by date.
//!
//! What it checks, for every date of the range that has a run:
//!
//! - **runs**: no run of the date is still open (a run left running means its date is not
//!   settled: resume it), and the date is not **stale**: its last completed run started from
//!   the previous day's last completed run (a re-run of the previous day since then changed the
//!   balances this date carries; run the date again), and no correction recorded since reaches
//!   it (a ledger entry, an import or a chain version dated before it: the company's
//!   `stale_from`, see [`RunStore::stale_dates`](crate::store::RunStore::stale_dates));
//! - **bills**, a shard of customers at a time (bounded memory, whatever the company's size):
//!   each bill's total equals the sum of its lines, and its customer, government and employer
//!   totals the sums of their lines; its principal is its customer lines without late fees;
//!   its balance (charged before, paid before, late fees before, arrears and since when) is
//!   exactly what the previous day's bill, the opening balance and the ledger's entries carry to
//!   it (the run's own
//!   [`balance`](crate::run::shard::balance), recomputed from the stored rows);
//! - **history**: a bill's superseded versions are 1 to its version − 1, none missing and none
//!   doubled, and every version after the first says why it replaced the one before.
//!
//! (One current bill per customer and date is the `bills` table's primary key.) It reads only:
//! an audit never changes anything. Problems are counted in full and the first
//! [`AuditOptions::max_listed`] are listed, each with its customer and date.

use std::time::Instant;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::*;
use crate::run::shard::{Cursors, balance};
use crate::run::{stamp_previous_day, terminal_safe};
use crate::store::{StoreError, prelude::*};

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The first date; default: six days before the last billed date.
    pub from: Option<NaiveDate>,
    /// The last date; default: the last billed date.
    pub to: Option<NaiveDate>,
    /// Customers read at a time. Default 10,000.
    pub shard_size: usize,
    /// Problems listed in full (all are counted). Default 100.
    pub max_listed: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            from: None,
            to: None,
            shard_size: 10_000,
            max_listed: 100,
        }
    }
}

/// One thing wrong with the books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What kind: `open-run`, `stale-date`, `totals`, `principal`, `balance`, `history`.
    pub kind: String,
    /// The date.
    pub date: NaiveDate,
    /// The customer, when it is about one.
    pub customer: Option<String>,
    /// What is wrong, with the figures.
    pub detail: String,
}

/// What an audit found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// The company.
    pub company: String,
    /// The range audited.
    pub from: NaiveDate,
    /// The range audited.
    pub to: NaiveDate,
    /// Dates of the range that have a run.
    pub dates: u64,
    /// Bills read.
    pub bills: u64,
    /// Problems found, all of them.
    pub problems_found: u64,
    /// The first problems, by date and customer.
    pub problems: Vec<Problem>,
    /// Dates that must be run again (stale, or their run still open).
    pub stale_dates: Vec<NaiveDate>,
    /// Seconds the audit took.
    pub seconds: f64,
}

impl AuditReport {
    /// Whether the books are in order.
    pub fn ok(&self) -> bool {
        self.problems_found == 0
    }

    fn add(&mut self, max: usize, p: Problem) {
        self.problems_found += 1;
        if self.problems.len() < max {
            self.problems.push(p);
        }
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "audit of {} from {} to {}: {} date(s), {} bill(s), {} problem(s) in {:.1} s",
            self.company,
            self.from,
            self.to,
            self.dates,
            self.bills,
            self.problems_found,
            self.seconds
        )?;
        for p in &self.problems {
            writeln!(
                f,
                "  {} {:<11} {}{}",
                p.date,
                p.kind,
                p.customer
                    .as_deref()
                    .map(|c| format!("customer {}: ", terminal_safe(c, 200)))
                    .unwrap_or_default(),
                terminal_safe(&p.detail, 600)
            )?;
        }
        if self.problems_found > self.problems.len() as u64 {
            writeln!(
                f,
                "  … and {} more",
                self.problems_found - self.problems.len() as u64
            )?;
        }
        if !self.stale_dates.is_empty() {
            let dates: Vec<String> = self.stale_dates.iter().map(|d| d.to_string()).collect();
            writeln!(f, "dates to run again: {}", dates.join(", "))?;
        }
        if self.ok() {
            writeln!(f, "the books are in order")?;
        }
        Ok(())
    }
}

/// Audits `company`'s books over the options' range (see the module docs).
pub async fn audit(
    store: &dyn Store,
    company: &str,
    options: &AuditOptions,
) -> Result<AuditReport, StoreError> {
    let started = Instant::now();
    let company = store.company(company).await?;
    let last = store.latest_billed_date(company.id).await?;
    let allocation =
        crate::ledger::Allocation::of(&company.policies).map_err(StoreError::Corrupt)?;
    let noticed = crate::notices::BillingPolicy::of(&company.policies)
        .map_err(StoreError::Corrupt)?
        .is_some();
    let stale_from = store.stale_dates(company.id).await?.from;
    let to = match (options.to, last) {
        (Some(t), _) => t,
        (None, Some(l)) => l,
        (None, None) => {
            return Err(StoreError::NotFound(format!(
                "company {} has no billed date to audit: run a date first",
                company.slug
            )));
        }
    };
    let from = options
        .from
        .unwrap_or_else(|| to - chrono::Days::new(6))
        .min(to);
    let max = options.max_listed;
    let mut report = AuditReport {
        company: company.slug.clone(),
        from,
        to,
        dates: 0,
        bills: 0,
        problems_found: 0,
        problems: Vec::new(),
        stale_dates: Vec::new(),
        seconds: 0.0,
    };
    let ranges = store
        .cut_shards(company.id, options.shard_size.max(1))
        .await?;
    let mut previous_runs = store
        .runs(company.id, from.pred_opt().unwrap_or(from))
        .await?;
    let mut date = from;
    while date <= to {
        let runs = store.runs(company.id, date).await?;
        if runs.is_empty() {
            previous_runs = runs;
            date = date.succ_opt().expect("a date before 9999");
            continue;
        }
        report.dates += 1;
        check_runs(
            store,
            &mut report,
            (max, stale_from),
            date,
            &runs,
            &previous_runs,
        )
        .await?;
        for range in &ranges {
            check_shard(
                store,
                &mut report,
                max,
                (company.id, allocation, noticed),
                date,
                range,
            )
            .await?;
        }
        previous_runs = runs;
        date = date.succ_opt().expect("a date before 9999");
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Open runs and staleness.
async fn check_runs(
    store: &dyn Store,
    report: &mut AuditReport,
    (max, stale_from): (usize, Option<NaiveDate>),
    date: NaiveDate,
    runs: &[RunRecord],
    previous_runs: &[RunRecord],
) -> Result<(), StoreError> {
    let mut stale = false;
    if let Some(from) = stale_from
        && date >= from
        && runs.iter().any(|r| r.state == "completed")
    {
        stale = true;
        report.add(
            max,
            Problem {
                kind: "stale-date".into(),
                date,
                customer: None,
                detail: format!(
                    "a correction recorded since it was billed reaches this date (the company's \
                     dates are stale from {from}): run them again in order (heatbill run \
                     --stale)"
                ),
            },
        );
    }
    for r in runs.iter().filter(|r| r.state == "running") {
        let t = store.run_totals(r.id, 0).await?;
        stale = true;
        report.add(
            max,
            Problem {
                kind: "open-run".into(),
                date,
                customer: None,
                detail: format!(
                    "run {} (attempt {}) is still running, {} of {} shards done: the date is \
                     not settled until it finishes (heatbill run resumes it)",
                    r.id, r.attempt, t.shards_done, t.shard_count
                ),
            },
        );
    }
    let last = runs.iter().rev().find(|r| r.state == "completed");
    let previous = previous_runs
        .iter()
        .filter(|r| r.state == "completed")
        .map(|r| r.id)
        .max();
    if let (Some(last), Some(previous)) = (last, previous)
        && let Some(from) = stamp_previous_day(&last.stamp)
        && from != previous
    {
        stale = true;
        report.add(
            max,
            Problem {
                kind: "stale-date".into(),
                date,
                customer: None,
                detail: format!(
                    "its last run ({}) carried the balances of the previous day's run {from}, \
                     but run {previous} billed the previous day since: run the date again",
                    last.id
                ),
            },
        );
    }
    if stale {
        report.stale_dates.push(date);
    }
    Ok(())
}

/// The bills of one shard of customers on one date.
async fn check_shard(
    store: &dyn Store,
    report: &mut AuditReport,
    max: usize,
    (company_id, allocation, noticed): (i32, crate::ledger::Allocation, bool),
    date: NaiveDate,
    range: &ShardRange,
) -> Result<(), StoreError> {
    let bills = store.bills_in(company_id, date, range).await?;
    if bills.is_empty() {
        return Ok(());
    }
    report.bills += bills.len() as u64;
    let data = store.load_shard(company_id, date, range, false).await?;
    let mut cursors = Cursors::new(&data, Some(range.first.as_str()));
    for b in &bills {
        let problem = |kind: &str, detail: String| Problem {
            kind: kind.into(),
            date,
            customer: Some(b.customer_id.clone()),
            detail,
        };
        // Totals against lines.
        let sum = |payer: Option<&str>| -> Decimal {
            b.lines
                .iter()
                .filter(|l| payer.is_none_or(|p| l.payer == p))
                .map(|l| l.amount)
                .sum()
        };
        let r = &b.row;
        for (what, stored, lines) in [
            ("total", r.total, sum(None)),
            ("customer total", r.customer_total, sum(Some("customer"))),
            (
                "government total",
                r.government_total,
                sum(Some("government")),
            ),
            ("employer total", r.employer_total, sum(Some("employer"))),
        ] {
            if stored != lines {
                report.add(
                    max,
                    problem(
                        "totals",
                        format!("the {what} is {stored}, its lines sum to {lines}"),
                    ),
                );
            }
        }
        let principal: Decimal = b
            .lines
            .iter()
            .filter(|l| l.payer == "customer" && l.category != "late-fee")
            .map(|l| l.amount)
            .sum();
        if r.principal != principal {
            report.add(
                max,
                problem(
                    "principal",
                    format!(
                        "the principal is {}, its customer lines without late fees sum to \
                         {principal}",
                        r.principal
                    ),
                ),
            );
        }
        // The balance, as the run computes it from what is stored.
        let found = cursors.find(&b.customer_id);
        let expected = balance(&found, date, allocation, noticed);
        let stored = (
            r.charged_before,
            r.paid_before,
            r.fees_before,
            r.arrears,
            r.arrears_since,
        );
        let carried = (
            expected.charged_before,
            expected.paid_before,
            expected.fees_before,
            expected.arrears,
            expected.since,
        );
        if stored != carried {
            report.add(
                max,
                problem(
                    "balance",
                    format!(
                        "stored: charged before {}, paid before {}, late fees before {}, \
                         arrears {} since {}; the previous day's bill, the opening balance and \
                         the ledger's entries carry: charged before {}, paid before {}, late \
                         fees before {}, arrears {} since {}",
                        stored.0,
                        stored.1,
                        stored.2,
                        stored.3,
                        since(stored.4),
                        carried.0,
                        carried.1,
                        carried.2,
                        carried.3,
                        since(carried.4)
                    ),
                ),
            );
        }
    }
    // The history of the shard's customers on the date.
    let history = store.history_summary(company_id, date, range).await?;
    let mut current = bills.iter().peekable();
    for h in &history {
        while current.next_if(|b| b.customer_id < h.customer_id).is_some() {}
        let version = current
            .peek()
            .filter(|b| b.customer_id == h.customer_id)
            .map(|b| b.row.version);
        let problem = |detail: String| Problem {
            kind: "history".into(),
            date,
            customer: Some(h.customer_id.clone()),
            detail,
        };
        match version {
            None => report.add(
                max,
                problem(format!(
                    "{} superseded version(s) but no current bill",
                    h.versions
                )),
            ),
            Some(v) if h.lowest != 1 || h.highest != v - 1 || h.versions != i64::from(v - 1) => {
                report.add(
                    max,
                    problem(format!(
                        "the current bill is version {v}, and the history keeps {} version(s) \
                         from {} to {} (expected 1 to {})",
                        h.versions,
                        h.lowest,
                        h.highest,
                        v - 1
                    )),
                )
            }
            Some(_) => {}
        }
        if h.unexplained > 0 {
            report.add(
                max,
                problem(format!(
                    "{} superseded version(s) after the first do not say why they replaced the \
                     one before",
                    h.unexplained
                )),
            );
        }
    }
    for b in bills
        .iter()
        .filter(|b| b.row.version > 1 && b.row.reason.is_none())
    {
        report.add(
            max,
            Problem {
                kind: "history".into(),
                date,
                customer: Some(b.customer_id.clone()),
                detail: format!(
                    "the current bill is version {} and does not say why it replaced the one \
                     before",
                    b.row.version
                ),
            },
        );
    }
    for b in bills.iter().filter(|b| b.row.version > 1) {
        if history
            .binary_search_by(|h| h.customer_id.as_str().cmp(&b.customer_id))
            .is_err()
        {
            report.add(
                max,
                Problem {
                    kind: "history".into(),
                    date,
                    customer: Some(b.customer_id.clone()),
                    detail: format!(
                        "the current bill is version {} and the history keeps none before it",
                        b.row.version
                    ),
                },
            );
        }
    }
    Ok(())
}

fn since(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "-".to_string(), |d| d.to_string())
}
