//! What is due when: billing periods and payment notices (缴费通知单).
//!
//! A daily bill is the accrual: what a customer's heat cost that day. What the customer must
//! pay, and by when, is the company's billing policy (`policies.billing` in its company file):
//! each principal line is due by one of three schedules, chosen by the line's code and the
//! customer's class, with effective dates.
//!
//! - **daily**: the day's charge is due on its day (overdue from the next). The default, and
//!   what every line of a company without a billing policy follows.
//! - **season** (收费期): the season's charges go on one notice, issued on a month-day on or
//!   before the season starts (`issue`), due on a month-day on or after that (`due`). Before the
//!   season has been billed, the notice's amount is a projection: the company's rule chain run
//!   over every day of the season with the customer's data as it stands. When the season is
//!   over, its daily bills are added up and any difference is an adjusting notice.
//! - **month**: a calendar month's charges go on a notice issued on day `issue_day` of the
//!   next month, due `due_days` after; its amount is what the month's daily bills add up to.
//!
//! A correction after a notice was issued (a date billed again) never edits the notice: once the
//! period is over, the difference between what its bills add up to and what its notices asked
//! is issued as an adjusting notice, due `adjust_due_days` after the night it is issued. So the
//! notices of a period always add up, exactly, to what its daily bills charged.
//!
//! **Arrears are what is overdue.** The principal that has fallen due before a date is the
//! opening balance, the daily-schedule principal billed before it, and the notices due before
//! it. The ledger's credits settle what fell due first, oldest first (after late fees, for a
//! company whose allocation order is `fees-first`). What a late-fee rule sees as `arrears` is
//! the part of what fell due that is still unpaid, and `arrears-since` the first day of the
//! current stretch of days with some of it unpaid.
//!
//! **The day boundary.** The bill of a date is computed on the balance at the start of that
//! date: a payment dated D counts from D + 1's bill on. A notice due on 2025-12-31 paid on
//! 2025-12-31 is paid in time (no late fee on 2026-01-01); paid on 2026-01-01, the bill of
//! 2026-01-01 still charges a day's late fee, and the bill of 2026-01-02 none.
//!
//! This module is pure: the policy, the periods and the arithmetic. The store keeps notices
//! (`store::notices`), the run issues them (`run::notices`).

use chrono::{Datelike, Days, NaiveDate};
use heatbill_engine::CustomerClass;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use heatbill_engine::text::html;

use crate::ledger::{Allocation, fen};
use crate::model::{Season, class_str, parse_class, shown};

/// How a line falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// On its day.
    Daily,
    /// On the notice of its calendar month: issued on day `issue_day` of the next month, due
    /// `due_days` later.
    Month {
        /// The day of the next month the notice is issued (1–28).
        issue_day: u32,
        /// Days from issue to due.
        due_days: u32,
    },
    /// On the notice of its heating season: issued on the month-day `issue` on or before the
    /// season's first day, due on the month-day `due` on or after the issue.
    Season {
        /// (month, day) of the issue.
        issue: (u32, u32),
        /// (month, day) of the due date.
        due: (u32, u32),
    },
}

/// One rule of a billing policy: which lines, which schedule, from when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The first date it is in force (none: always). The rules in force on a date are those
    /// with the latest `from` on or before it: a later set replaces an earlier one whole.
    pub from: Option<NaiveDate>,
    /// The customer classes it applies to (none: every class).
    pub classes: Option<Vec<CustomerClass>>,
    /// The line codes it applies to (none: every code).
    pub codes: Option<Vec<String>>,
    /// The schedule.
    pub schedule: Schedule,
}

/// A company's billing policy (`policies.billing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingPolicy {
    /// The rules, in the order given: the first that matches a line decides.
    pub rules: Vec<Rule>,
    /// Days from an adjusting notice's issue to its due date (default 15).
    pub adjust_due_days: u32,
}

/// The largest number of rules a policy may have.
pub const MAX_RULES: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyText {
    #[serde(default)]
    adjust_due_days: Option<u32>,
    rules: Vec<RuleText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    classes: Option<Vec<String>>,
    #[serde(default)]
    codes: Option<Vec<String>>,
    period: String,
    #[serde(default)]
    issue: Option<String>,
    #[serde(default)]
    due: Option<String>,
    #[serde(default)]
    issue_day: Option<u32>,
    #[serde(default)]
    due_days: Option<u32>,
}

/// `MM-DD` as (month, day); February 29th is refused (it is not in every year).
fn month_day(s: &str, what: &str) -> Result<(u32, u32), String> {
    let bad = || {
        format!(
            "{what} is {}: give a month and day as MM-DD, e.g. \"12-31\"",
            shown(s)
        )
    };
    let (m, d) = s.split_once('-').ok_or_else(bad)?;
    if m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (m, d): (u32, u32) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if (m, d) == (2, 29) || NaiveDate::from_ymd_opt(2025, m, d).is_none() {
        return Err(bad());
    }
    Ok((m, d))
}

impl BillingPolicy {
    /// The company's policy: `None` when it has none (every line is due on its day).
    pub fn of(policies: &serde_json::Value) -> Result<Option<BillingPolicy>, String> {
        let v = match policies.get("billing") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let text: PolicyText =
            serde_json::from_value(v.clone()).map_err(|e| format!("policies.billing: {e}"))?;
        if text.rules.is_empty() || text.rules.len() > MAX_RULES {
            return Err(format!(
                "policies.billing has {} rules: give between 1 and {MAX_RULES}",
                text.rules.len()
            ));
        }
        let adjust_due_days = text.adjust_due_days.unwrap_or(15);
        if adjust_due_days > 366 {
            return Err(format!(
                "policies.billing.adjust_due_days is {adjust_due_days}: give at most 366 days"
            ));
        }
        let mut rules = Vec::with_capacity(text.rules.len());
        for (i, r) in text.rules.into_iter().enumerate() {
            let at = format!("policies.billing.rules[{i}]");
            let from = r
                .from
                .as_deref()
                .map(|f| {
                    NaiveDate::parse_from_str(f, "%Y-%m-%d")
                        .map_err(|_| format!("{at}.from is {}: give a date, YYYY-MM-DD", shown(f)))
                })
                .transpose()?;
            let classes = r
                .classes
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            parse_class(c).ok_or_else(|| {
                                format!(
                                    "{at}.classes names {}: give residential or non-residential",
                                    shown(c)
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            if let Some(codes) = &r.codes
                && (codes.is_empty() || codes.iter().any(|c| c.is_empty() || c.len() > 64))
            {
                return Err(format!(
                    "{at}.codes: give the line codes (1 to 64 characters each), or leave it \
                     out to match every code"
                ));
            }
            let only = |allowed: &[&str]| -> Result<(), String> {
                for (name, given) in [
                    ("issue", r.issue.is_some()),
                    ("due", r.due.is_some()),
                    ("issue_day", r.issue_day.is_some()),
                    ("due_days", r.due_days.is_some()),
                ] {
                    if given && !allowed.contains(&name) {
                        return Err(format!(
                            "{at}: `{name}` does not apply to period {}",
                            shown(&r.period)
                        ));
                    }
                }
                Ok(())
            };
            let schedule = match r.period.as_str() {
                "daily" => {
                    only(&[])?;
                    Schedule::Daily
                }
                "month" => {
                    only(&["issue_day", "due_days"])?;
                    let issue_day = r.issue_day.unwrap_or(1);
                    let due_days = r.due_days.unwrap_or(15);
                    if !(1..=28).contains(&issue_day) {
                        return Err(format!(
                            "{at}.issue_day is {issue_day}: give a day of the month, 1 to 28"
                        ));
                    }
                    if due_days > 366 {
                        return Err(format!(
                            "{at}.due_days is {due_days}: give at most 366 days"
                        ));
                    }
                    Schedule::Month {
                        issue_day,
                        due_days,
                    }
                }
                "season" => {
                    only(&["issue", "due"])?;
                    let (Some(issue), Some(due)) = (&r.issue, &r.due) else {
                        return Err(format!(
                            "{at}: a season notice needs `issue` and `due` (month-days, e.g. \
                             issue = \"10-01\", due = \"12-31\")"
                        ));
                    };
                    Schedule::Season {
                        issue: month_day(issue, &format!("{at}.issue"))?,
                        due: month_day(due, &format!("{at}.due"))?,
                    }
                }
                other => {
                    return Err(format!(
                        "{at}.period is {}: give \"daily\", \"month\" or \"season\"",
                        shown(other)
                    ));
                }
            };
            rules.push(Rule {
                from,
                classes,
                codes: r.codes,
                schedule,
            });
        }
        Ok(Some(BillingPolicy {
            rules,
            adjust_due_days,
        }))
    }

    /// Checks the policy against the company's seasons: a season schedule needs them.
    pub fn check(&self, seasons: &[Season]) -> Result<(), String> {
        if seasons.is_empty()
            && self
                .rules
                .iter()
                .any(|r| matches!(r.schedule, Schedule::Season { .. }))
        {
            return Err(
                "policies.billing has a season notice, but the company has no [[season]]: \
                 give its heating seasons (start and end) in the company file"
                    .into(),
            );
        }
        Ok(())
    }

    /// The schedule of a line of `code` billed on `date` to a customer of `class`: the first
    /// matching rule of the set in force on the date (daily when none matches).
    pub fn schedule(&self, date: NaiveDate, class: CustomerClass, code: &str) -> Schedule {
        let set = self
            .rules
            .iter()
            .filter_map(|r| match r.from {
                None => Some(None),
                Some(f) if f <= date => Some(Some(f)),
                Some(_) => None,
            })
            .max();
        let Some(set) = set else {
            return Schedule::Daily;
        };
        self.rules
            .iter()
            .filter(|r| r.from == set)
            .find(|r| {
                r.classes.as_ref().is_none_or(|cs| cs.contains(&class))
                    && r.codes
                        .as_ref()
                        .is_none_or(|cs| cs.iter().any(|c| c == code))
            })
            .map_or(Schedule::Daily, |r| r.schedule)
    }

    /// The period whose notice a line of `code` billed on `date` to a customer of `class` goes
    /// on; `None`: it is due on its day (a daily schedule, or a season schedule on a date in no
    /// season of the company's).
    pub fn period_of(
        &self,
        seasons: &[Season],
        date: NaiveDate,
        class: CustomerClass,
        code: &str,
    ) -> Option<Period> {
        match self.schedule(date, class, code) {
            Schedule::Daily => None,
            Schedule::Month {
                issue_day,
                due_days,
            } => Some(Period::month(date, issue_day, due_days)),
            Schedule::Season { issue, due } => seasons
                .iter()
                .find(|s| s.start <= date && date <= s.end)
                .map(|s| Period::season(s, issue, due)),
        }
    }

    /// The periods a run of `date` may have to issue a first notice for: every period of the
    /// policy's schedules whose issue date is on or before `date` and whose due date is on or
    /// after it (a period whose due date passed before heatbill billed the company is not
    /// issued: its charges are in the opening balances).
    pub fn periods_to_issue(&self, seasons: &[Season], date: NaiveDate) -> Vec<Period> {
        let mut out: Vec<Period> = Vec::new();
        for r in &self.rules {
            match r.schedule {
                Schedule::Daily => {}
                Schedule::Month {
                    issue_day,
                    due_days,
                } => {
                    // The months whose notices can be open: up to a year and two months back
                    // (due_days ≤ 366).
                    let mut m = first_of_month(date);
                    for _ in 0..15 {
                        m = first_of_month(m - Days::new(1));
                        let p = Period::month(m, issue_day, due_days);
                        if p.issue_on <= date && date <= p.due_on {
                            out.push(p);
                        }
                    }
                }
                Schedule::Season { issue, due } => {
                    for s in seasons {
                        let p = Period::season(s, issue, due);
                        if p.issue_on <= date && date <= p.due_on {
                            out.push(p);
                        }
                    }
                }
            }
        }
        out.sort_by_key(|p| (p.start, p.kind));
        out.dedup_by_key(|p| (p.kind, p.start));
        out
    }
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("every month has a first day")
}

/// What kind of period a notice covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodKind {
    /// A calendar month.
    Month,
    /// A heating season.
    Season,
}

impl PeriodKind {
    /// `month` or `season`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Season => "season",
        }
    }
    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<PeriodKind> {
        match s {
            "month" => Some(PeriodKind::Month),
            "season" => Some(PeriodKind::Season),
            _ => None,
        }
    }
}

/// A billing period and its first notice's dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Month or season.
    pub kind: PeriodKind,
    /// Its first day.
    pub start: NaiveDate,
    /// Its last day.
    pub end: NaiveDate,
    /// When its first notice is issued.
    pub issue_on: NaiveDate,
    /// When its first notice is due.
    pub due_on: NaiveDate,
}

impl Period {
    /// The calendar month of `date`.
    pub fn month(date: NaiveDate, issue_day: u32, due_days: u32) -> Period {
        let start = first_of_month(date);
        let next = first_of_month(start + Days::new(31));
        let issue_on = next + Days::new(u64::from(issue_day - 1));
        Period {
            kind: PeriodKind::Month,
            start,
            end: next - Days::new(1),
            issue_on,
            due_on: issue_on + Days::new(u64::from(due_days)),
        }
    }

    /// The heating season `s`.
    pub fn season(s: &Season, issue: (u32, u32), due: (u32, u32)) -> Period {
        // The issue: the month-day on or before the season's first day.
        let at = |y: i32, (m, d): (u32, u32)| NaiveDate::from_ymd_opt(y, m, d);
        let y = s.start.year();
        let issue_on = at(y, issue)
            .filter(|d| *d <= s.start)
            .or_else(|| at(y - 1, issue))
            .expect("a month-day other than February 29th is in every year");
        let due_on = at(issue_on.year(), due)
            .filter(|d| *d >= issue_on)
            .or_else(|| at(issue_on.year() + 1, due))
            .expect("a month-day other than February 29th is in every year");
        Period {
            kind: PeriodKind::Season,
            start: s.start,
            end: s.end,
            issue_on,
            due_on,
        }
    }

    /// Whether `date` is in the period.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end
    }
}

/// One line code's part of a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeLine {
    /// The line code.
    pub code: String,
    /// Its text on the bills.
    pub description: String,
    /// What the customer is asked for (negative: what a subsidy or refund takes off).
    pub amount: Decimal,
}

/// A notice to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    /// The customer.
    pub customer_id: String,
    /// The period.
    pub kind: PeriodKind,
    /// Its first day.
    pub period_start: NaiveDate,
    /// Its last day.
    pub period_end: NaiveDate,
    /// 0 for the period's first notice, then 1, 2, … for each adjusting notice.
    pub seq: i32,
    /// The day it is issued.
    pub issued_on: NaiveDate,
    /// The day it is due (late from the next day).
    pub due_on: NaiveDate,
    /// Its lines, by code.
    pub lines: Vec<NoticeLine>,
    /// Their sum.
    pub amount: Decimal,
    /// Whether its amount is a projection (a season notice issued before the season was
    /// billed).
    pub projected: bool,
}

/// A notice as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Its id.
    pub id: i64,
    /// The customer.
    pub customer_id: String,
    /// The period's kind.
    pub kind: PeriodKind,
    /// The period's first day.
    pub period_start: NaiveDate,
    /// Its last day.
    pub period_end: NaiveDate,
    /// 0: the period's first notice; 1, 2, …: adjusting notices.
    pub seq: i32,
    /// When it was issued.
    pub issued_on: NaiveDate,
    /// When it is due.
    pub due_on: NaiveDate,
    /// What it asks for.
    pub amount: Decimal,
    /// By line code.
    pub lines: Vec<NoticeLine>,
    /// Whether its amount was a projection.
    pub projected: bool,
    /// The run that issued it.
    pub run_id: Option<i64>,
}

impl Notice {
    /// Its number as printed: company-wide id, e.g. `N-000123`.
    pub fn number(&self) -> String {
        format!("N-{:06}", self.id)
    }
}

/// The notice lines that bring what was asked (`issued`) to what is owed (`target`), by code;
/// empty when they agree. Codes in sorted order.
pub fn difference(target: &[NoticeLine], issued: &[NoticeLine]) -> Vec<NoticeLine> {
    let mut by: std::collections::BTreeMap<&str, (String, Decimal)> = Default::default();
    for l in target {
        let e = by
            .entry(l.code.as_str())
            .or_insert_with(|| (l.description.clone(), Decimal::ZERO));
        e.1 += l.amount;
    }
    for l in issued {
        let e = by
            .entry(l.code.as_str())
            .or_insert_with(|| (l.description.clone(), Decimal::ZERO));
        e.1 -= l.amount;
    }
    by.into_iter()
        .filter(|(_, (_, a))| !a.is_zero())
        .map(|(code, (description, amount))| NoticeLine {
            code: code.to_string(),
            description,
            amount: fen(amount),
        })
        .collect()
}

/// Where a customer stands with a notice at a date: what the ledger's credits paid of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeStanding {
    /// The notice.
    pub notice: Notice,
    /// What the credits paid of it.
    pub paid: Decimal,
    /// What is left.
    pub outstanding: Decimal,
    /// Whether it is past its due date at the date, with something left.
    pub overdue: bool,
}

/// What a customer owes by notice at the end of `as_of`: the credits (after late fees for a
/// `fees-first` company, and after the opening balance, which fell due first) settle the
/// notices oldest due date first. Notices issued after `as_of` are left out.
pub fn standing(
    notices: &[Notice],
    opening: Decimal,
    fees: Decimal,
    credits: Decimal,
    policy: Allocation,
    as_of: NaiveDate,
) -> Vec<NoticeStanding> {
    let mut left = match policy {
        Allocation::PrincipalFirst => credits,
        Allocation::FeesFirst => credits - fees.max(Decimal::ZERO).min(credits.max(Decimal::ZERO)),
    };
    left -= opening.max(Decimal::ZERO);
    let mut left = left.max(Decimal::ZERO);
    let mut ns: Vec<&Notice> = notices.iter().filter(|n| n.issued_on <= as_of).collect();
    ns.sort_by_key(|n| (n.due_on, n.id));
    ns.into_iter()
        .map(|n| {
            let paid = if n.amount > Decimal::ZERO {
                left.min(n.amount)
            } else {
                Decimal::ZERO
            };
            left -= paid;
            // A negative notice (an adjustment down) is credit: it pays the next ones.
            if n.amount < Decimal::ZERO {
                left -= n.amount;
            }
            let outstanding = (n.amount - paid).max(Decimal::ZERO);
            NoticeStanding {
                notice: n.clone(),
                paid: fen(paid),
                outstanding: fen(outstanding),
                overdue: outstanding > Decimal::ZERO && n.due_on < as_of,
            }
        })
        .collect()
}

/// The header of a notices CSV export.
pub const NOTICES_CSV_HEADER: &str =
    "number,customer_id,kind,period_start,period_end,seq,issued_on,due_on,amount,projected,lines\n";

impl Notice {
    /// Its row of a CSV export (text cells that a spreadsheet would run as a formula are
    /// prefixed with `'`); `lines` is `code=amount` pairs joined by `;`.
    pub fn csv(&self) -> String {
        use crate::ledger::csv_cell;
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{}={}", l.code, l.amount))
            .collect();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            self.number(),
            csv_cell(&self.customer_id),
            self.kind.as_str(),
            self.period_start,
            self.period_end,
            self.seq,
            self.issued_on,
            self.due_on,
            self.amount,
            self.projected,
            csv_cell(&lines.join(";"))
        )
    }
}

/// Who a printed notice is addressed to.
#[derive(Debug, Clone, Default)]
pub struct Addressee {
    /// The account number (户号).
    pub account_no: Option<String>,
    /// The name.
    pub name: Option<String>,
    /// The address, one line.
    pub address: Option<String>,
}

impl Addressee {
    /// From the customer's profile (none: every field blank).
    pub fn of(profile: Option<crate::directory::Profile>) -> Addressee {
        profile.map_or_else(Addressee::default, |p| {
            let parts: Vec<&str> = [&p.community, &p.building, &p.unit, &p.room]
                .into_iter()
                .filter_map(|x| x.as_deref())
                .collect();
            Addressee {
                address: (!parts.is_empty()).then(|| parts.join(" ")),
                account_no: p.account_no,
                name: p.name,
            }
        })
    }
}

/// A printable notice (缴费通知单): one HTML page, A5-sized when printed, bilingual labels,
/// no script and no outside resource. Every text from the company's data is escaped.
pub fn printable(company_name: &str, n: &Notice, to: &Addressee) -> String {
    let title = if n.seq == 0 {
        "缴费通知单 · Payment notice"
    } else {
        "调整通知单 · Adjusting notice"
    };
    let period = match n.kind {
        PeriodKind::Season => format!(
            "采暖期 Heating season {} – {}",
            n.period_start, n.period_end
        ),
        PeriodKind::Month => format!("月份 Month {}", n.period_start.format("%Y-%m")),
    };
    let opt = |v: &Option<String>| html(v.as_deref().unwrap_or("—"));
    let mut rows = String::new();
    for l in &n.lines {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>\n",
            html(&l.description),
            html(&l.code),
            l.amount
        ));
    }
    let note = if n.projected {
        "<p class=\"small\">本期金额按采暖期预计计算，采暖期结束后多退少补。 The amount is the \
         season's projected charge; any difference is settled on an adjusting notice after the \
         season.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<title>{number}</title><style>@page{{size:A5}}body{{font-family:sans-serif;margin:2em}}\
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #444;padding:4px 8px}}\
.n{{text-align:right}}.small{{font-size:80%}}</style></head><body>\n\
<h1>{company}</h1><h2>{title}</h2>\n\
<p>编号 No. <b>{number}</b> · 开具日期 Issued {issued}</p>\n\
<p>户号 Account: {account} · 用户编号 Customer: {customer}<br>户名 Name: {name}<br>地址 Address: {address}</p>\n\
<p>{period}</p>\n\
<table><tr><th>项目 Item</th><th>代码 Code</th><th class=\"n\">金额 Amount (元)</th></tr>\n{rows}\
<tr><th colspan=\"2\">合计 Total</th><th class=\"n\">{amount}</th></tr></table>\n\
<p><b>请于 {due} 前缴清 · Please pay by {due}.</b> 逾期未缴按公司规定收取滞纳金。 Unpaid amounts are \
charged a late fee from the next day.</p>\n{note}</body></html>\n",
        number = html(&n.number()),
        company = html(company_name),
        issued = n.issued_on,
        account = opt(&to.account_no),
        customer = html(&n.customer_id),
        name = opt(&to.name),
        address = opt(&to.address),
        amount = n.amount,
        due = n.due_on,
    )
}

/// The class's name in a policy's `classes`.
pub fn class_name(c: CustomerClass) -> &'static str {
    class_str(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn policy(json: serde_json::Value) -> Result<Option<BillingPolicy>, String> {
        BillingPolicy::of(&serde_json::json!({ "billing": json }))
    }

    const HARBIN: Season = Season {
        start: NaiveDate::from_ymd_opt(2025, 10, 20).unwrap(),
        end: NaiveDate::from_ymd_opt(2026, 4, 20).unwrap(),
    };

    #[test]
    fn a_company_without_a_policy_bills_daily() {
        assert_eq!(BillingPolicy::of(&serde_json::json!({})).unwrap(), None);
    }

    #[test]
    fn harbin_season_notice_dates() {
        let p = policy(serde_json::json!({"rules": [
            {"period": "season", "issue": "10-01", "due": "12-31"}
        ]}))
        .unwrap()
        .unwrap();
        let got = p
            .period_of(
                &[HARBIN],
                d("2026-01-05"),
                CustomerClass::Residential,
                "heating",
            )
            .unwrap();
        assert_eq!(
            (got.start, got.end, got.issue_on, got.due_on),
            (
                d("2025-10-20"),
                d("2026-04-20"),
                d("2025-10-01"),
                d("2025-12-31")
            )
        );
        // Outside the season: due on its day.
        assert_eq!(
            p.period_of(&[HARBIN], d("2026-05-01"), CustomerClass::Residential, "x"),
            None
        );
        assert_eq!(p.periods_to_issue(&[HARBIN], d("2025-09-30")), vec![]);
        assert_eq!(p.periods_to_issue(&[HARBIN], d("2025-10-01")), vec![got]);
        assert_eq!(p.periods_to_issue(&[HARBIN], d("2025-12-31")), vec![got]);
        assert_eq!(p.periods_to_issue(&[HARBIN], d("2026-01-01")), vec![]);
    }

    #[test]
    fn beijing_two_part_by_code_and_month() {
        let p = policy(serde_json::json!({"rules": [
            {"codes": ["basic"], "period": "season", "issue": "11-01", "due": "03-15"},
            {"codes": ["metered"], "period": "month", "issue_day": 1, "due_days": 14},
        ]}))
        .unwrap()
        .unwrap();
        let nov = p
            .period_of(&[], d("2025-11-20"), CustomerClass::Residential, "metered")
            .unwrap();
        assert_eq!(
            (nov.start, nov.end, nov.issue_on, nov.due_on),
            (
                d("2025-11-01"),
                d("2025-11-30"),
                d("2025-12-01"),
                d("2025-12-15")
            )
        );
        assert_eq!(
            p.schedule(d("2025-11-20"), CustomerClass::Residential, "late-fee"),
            Schedule::Daily
        );
        assert_eq!(p.periods_to_issue(&[], d("2025-12-01")), vec![nov]);
        assert_eq!(p.periods_to_issue(&[], d("2025-12-15")), vec![nov]);
        // December's notice is issued on January 1st; the year turns.
        let dec = Period::month(d("2025-12-31"), 1, 14);
        assert_eq!(
            (dec.issue_on, dec.due_on),
            (d("2026-01-01"), d("2026-01-15"))
        );
    }

    #[test]
    fn later_rules_replace_earlier_ones_whole() {
        let p = policy(serde_json::json!({"rules": [
            {"period": "month"},
            {"from": "2026-01-01", "classes": ["non-residential"], "period": "month", "due_days": 30},
        ]}))
        .unwrap()
        .unwrap();
        let r = CustomerClass::Residential;
        assert!(matches!(
            p.schedule(d("2025-12-31"), r, "heating"),
            Schedule::Month { due_days: 15, .. }
        ));
        // From 2026 only the second set is in force: residential lines are daily again.
        assert_eq!(p.schedule(d("2026-01-01"), r, "heating"), Schedule::Daily);
        assert!(matches!(
            p.schedule(d("2026-01-01"), CustomerClass::NonResidential, "heating"),
            Schedule::Month { due_days: 30, .. }
        ));
    }

    #[test]
    fn bad_policies_say_what_to_fix() {
        for (json, want) in [
            (serde_json::json!({"rules": []}), "between 1 and"),
            (
                serde_json::json!({"rules": [{"period": "weekly"}]}),
                "give \"daily\", \"month\" or \"season\"",
            ),
            (
                serde_json::json!({"rules": [{"period": "season", "issue": "10-01"}]}),
                "needs `issue` and `due`",
            ),
            (
                serde_json::json!({"rules": [{"period": "season", "issue": "02-29", "due": "03-01"}]}),
                "MM-DD",
            ),
            (
                serde_json::json!({"rules": [{"period": "month", "issue_day": 31}]}),
                "1 to 28",
            ),
            (
                serde_json::json!({"rules": [{"period": "daily", "due_days": 3}]}),
                "does not apply",
            ),
            (
                serde_json::json!({"rules": [{"period": "month", "classes": ["farm"]}]}),
                "residential or non-residential",
            ),
            (
                serde_json::json!({"rules": [{"period": "month", "when": 1}]}),
                "unknown field",
            ),
        ] {
            let e = policy(json.clone()).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
        let season = policy(serde_json::json!({"rules": [
            {"period": "season", "issue": "10-01", "due": "12-31"}
        ]}))
        .unwrap()
        .unwrap();
        assert!(season.check(&[]).unwrap_err().contains("[[season]]"));
    }

    fn notice(id: i64, due: &str, amount: &str) -> Notice {
        Notice {
            id,
            customer_id: "A".into(),
            kind: PeriodKind::Month,
            period_start: d("2025-11-01"),
            period_end: d("2025-11-30"),
            seq: 0,
            issued_on: d("2025-10-01"),
            due_on: d(due),
            amount: amount.parse().unwrap(),
            lines: vec![],
            projected: false,
            run_id: None,
        }
    }

    #[test]
    fn credits_settle_the_oldest_due_notice_first() {
        let ns = [
            notice(2, "2026-03-15", "960.00"),
            notice(1, "2025-12-15", "1600.20"),
        ];
        let s = standing(
            &ns,
            Decimal::ZERO,
            Decimal::ZERO,
            "1700.00".parse().unwrap(),
            Allocation::PrincipalFirst,
            d("2025-12-20"),
        );
        assert_eq!(s[0].notice.id, 1);
        assert_eq!(
            (
                s[0].paid.to_string(),
                s[0].outstanding.to_string(),
                s[0].overdue
            ),
            ("1600.20".into(), "0.00".into(), false)
        );
        assert_eq!(
            (
                s[1].paid.to_string(),
                s[1].outstanding.to_string(),
                s[1].overdue
            ),
            ("99.80".into(), "860.20".into(), false)
        );
        // Fees first: 10.00 of late fees take their share before any notice.
        let s = standing(
            &ns,
            Decimal::ZERO,
            "10.00".parse().unwrap(),
            "1600.20".parse().unwrap(),
            Allocation::FeesFirst,
            d("2025-12-20"),
        );
        assert_eq!(s[0].outstanding.to_string(), "10.00");
        assert!(s[0].overdue);
    }

    #[test]
    fn a_difference_is_by_code_and_empty_when_they_agree() {
        let l = |c: &str, a: &str| NoticeLine {
            code: c.into(),
            description: c.into(),
            amount: a.parse().unwrap(),
        };
        let target = [l("heating", "2299.20"), l("subsidy", "-100.00")];
        assert!(difference(&target, &target).is_empty());
        let got = difference(&[l("heating", "2200.00")], &target);
        assert_eq!(got, vec![l("heating", "-99.20"), l("subsidy", "100.00")]);
    }
}
