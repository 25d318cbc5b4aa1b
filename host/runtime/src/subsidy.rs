//! The government's side of subsidies: what it owes, what it has paid, and the settlement list
//! (政府补贴结算) it pays against.
//!
//! A bill's lines each name their payer. The lines the **government** pays (a low-income
//! household's covered share, the government's part of a split price) are not the customer's
//! debt: the customer's account never sees them (`crate::ledger`). They are a receivable of
//! their own, per company: the **government receivable**.
//!
//! - **Billed**: the `government_total` of each current bill (its government lines).
//! - **Transfers** ([`Transfer`]): the money the government sends, each recorded once under its
//!   reference (the transfer's id in the bank or treasury), with the settlement period it pays
//!   for. A transfer returned or recorded wrong is undone by a negative transfer that names it;
//!   nothing is edited or deleted.
//! - **Outstanding** = billed − received. By month ([`receivable`]): each transfer first settles
//!   the months of the period it names, oldest first; what is left of it, and a transfer that
//!   names no period, settles the oldest months still open. What is left after every month is
//!   settled is **paid ahead**.
//! - **The settlement list** ([`SettlementLine`]): for a period, each customer with a
//!   government share: their account number, name and address (from the customer directory, as
//!   of the period's last day), the days billed with a government share, and its amount. The
//!   list is what the company sends to the civil-affairs or heating office to be paid; its total
//!   is the period's billed amount.
//!
//! This module is pure: the store reads the bills and transfers, this module adds them up.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ledger::{check_amount, check_text, csv_cell, fen};

/// A government transfer to record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewTransfer {
    /// The transfer's reference in the bank or treasury: what makes a transfer recorded twice
    /// one transfer.
    pub reference: String,
    /// The day the money arrived.
    pub received_on: NaiveDate,
    /// Yuan, at most two decimals; negative undoes (some of) the transfer named by `undoes`.
    pub amount: Decimal,
    /// The first day of the settlement period the transfer pays for.
    pub period_from: Option<NaiveDate>,
    /// The period's last day.
    pub period_to: Option<NaiveDate>,
    /// The transfer a negative amount undoes (returned money, a transfer recorded wrong).
    pub undoes: Option<i64>,
    /// Free text.
    pub note: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// `api`, `cli`.
    pub source: String,
}

impl NewTransfer {
    /// Checks what can be checked without the database.
    pub fn check(&self) -> Result<(), String> {
        check_amount("the amount", self.amount)?;
        check_text("the reference", &self.reference, 64)?;
        check_text("recorded_by", &self.recorded_by, 64)?;
        if let Some(n) = &self.note {
            check_text("the note", n, 500)?;
        }
        match (self.period_from, self.period_to) {
            (Some(f), Some(t)) if t < f => {
                return Err(format!(
                    "the period ends ({t}) before it starts ({f}): give period_from <= period_to"
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err("give both period_from and period_to, or neither".into());
            }
            _ => {}
        }
        match (self.amount.is_sign_negative(), self.undoes) {
            (true, None) => Err(format!(
                "a transfer of {} is negative: a negative transfer undoes (some of) an earlier \
                 one, so name it (undoes)",
                self.amount
            )),
            (false, Some(_)) => {
                Err("a transfer that undoes another is negative (the amount taken back)".into())
            }
            _ => Ok(()),
        }
    }
}

/// A recorded government transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Its id.
    pub id: i64,
    /// Its reference in the bank or treasury.
    pub reference: String,
    /// The day the money arrived.
    pub received_on: NaiveDate,
    /// Yuan; negative takes back (some of) the transfer named by `undoes`.
    pub amount: Decimal,
    /// The first day of the settlement period it pays for.
    pub period_from: Option<NaiveDate>,
    /// The period's last day.
    pub period_to: Option<NaiveDate>,
    /// The transfer a negative one undoes.
    pub undoes: Option<i64>,
    /// Free text.
    pub note: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// `api`, `cli`.
    pub source: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub recorded_at: String,
}

/// What recording a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferRecorded {
    /// Recorded now.
    New(Transfer),
    /// Recorded before under the same reference, with the same date and amount: nothing new.
    Again(Transfer),
}

impl TransferRecorded {
    /// The transfer, new or not.
    pub fn transfer(&self) -> &Transfer {
        match self {
            TransferRecorded::New(t) | TransferRecorded::Again(t) => t,
        }
    }
}

/// A calendar month, `YYYY-MM`.
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// One month of the government receivable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthFigure {
    /// `YYYY-MM`.
    pub month: String,
    /// The government's share of the month's bills.
    pub billed: Decimal,
    /// What transfers have settled of it.
    pub settled: Decimal,
    /// `billed - settled`.
    pub outstanding: Decimal,
}

/// The government receivable at the end of a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receivable {
    /// Bills and transfers dated up to it count.
    pub as_of: NaiveDate,
    /// The government's share of every bill up to `as_of`.
    pub billed: Decimal,
    /// The transfers received up to `as_of`, net of the ones undone.
    pub received: Decimal,
    /// `billed - received` when positive.
    pub outstanding: Decimal,
    /// `received - billed` when positive: paid ahead, settling the months to come.
    pub paid_ahead: Decimal,
    /// By month, oldest first.
    pub months: Vec<MonthFigure>,
}

/// The government receivable at the end of `as_of` from the government's share billed by month
/// (`YYYY-MM`) and the transfers received up to it (in any order: they are applied by date,
/// then id). See the module docs for the rule.
pub fn receivable(
    as_of: NaiveDate,
    billed: &BTreeMap<String, Decimal>,
    transfers: &[Transfer],
) -> Receivable {
    // A transfer's net amount: its own less what later transfers took back of it.
    let mut net: BTreeMap<i64, Decimal> = BTreeMap::new();
    for t in transfers.iter().filter(|t| t.amount > Decimal::ZERO) {
        net.insert(t.id, t.amount);
    }
    for t in transfers.iter().filter(|t| t.amount < Decimal::ZERO) {
        if let Some(n) = t.undoes.and_then(|u| net.get_mut(&u)) {
            *n += t.amount;
        }
    }
    let mut ordered: Vec<&Transfer> = transfers
        .iter()
        .filter(|t| t.amount > Decimal::ZERO)
        .collect();
    ordered.sort_by_key(|t| (t.received_on, t.id));

    let mut open: BTreeMap<String, Decimal> = billed
        .iter()
        .map(|(m, b)| (m.clone(), (*b).max(Decimal::ZERO)))
        .collect();
    let mut pool = Decimal::ZERO;
    for t in &ordered {
        let mut left = net[&t.id].max(Decimal::ZERO);
        if let (Some(f), Some(to)) = (t.period_from, t.period_to) {
            let (f, to) = (month_of(f), month_of(to));
            for (_, due) in open.range_mut(f..=to) {
                let take = left.min(*due);
                *due -= take;
                left -= take;
            }
        }
        pool += left;
    }
    for due in open.values_mut() {
        let take = pool.min(*due);
        *due -= take;
        pool -= take;
    }
    let months = billed
        .iter()
        .map(|(m, b)| {
            let outstanding = open.get(m.as_str()).copied().unwrap_or_default();
            MonthFigure {
                month: m.clone(),
                billed: fen(*b),
                settled: fen(b.max(&Decimal::ZERO) - outstanding),
                outstanding: fen(outstanding),
            }
        })
        .collect();
    let billed_sum: Decimal = billed.values().sum();
    let received: Decimal = net.values().map(|n| (*n).max(Decimal::ZERO)).sum();
    Receivable {
        as_of,
        billed: fen(billed_sum),
        received: fen(received),
        outstanding: fen((billed_sum - received).max(Decimal::ZERO)),
        paid_ahead: fen((received - billed_sum).max(Decimal::ZERO)),
        months,
    }
}

/// One customer of a settlement list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettlementLine {
    /// The customer.
    pub customer_id: String,
    /// From the customer's profile in force on the period's last day.
    pub account_no: Option<String>,
    /// Masked unless the list was asked for with personal data.
    pub name: Option<String>,
    /// The community (小区).
    pub community: Option<String>,
    /// The building (楼号).
    pub building: Option<String>,
    /// The unit (单元).
    pub unit: Option<String>,
    /// The room (房号).
    pub room: Option<String>,
    /// The days of the period billed with a government share.
    pub days: u32,
    /// The first of them.
    pub first_day: NaiveDate,
    /// The last of them.
    pub last_day: NaiveDate,
    /// The government's share of those days' bills.
    pub amount: Decimal,
}

/// A settlement list's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SettlementTotals {
    /// Customers with a government share in the period.
    pub customers: u64,
    /// Their days with a government share.
    pub days: u64,
    /// The government's share of the period's bills: what the list asks the government to pay.
    pub amount: Decimal,
}

impl SettlementTotals {
    /// Adds a line.
    pub fn add(&mut self, l: &SettlementLine) {
        self.customers += 1;
        self.days += u64::from(l.days);
        self.amount += l.amount;
    }
}

/// The settlement list's CSV header.
pub const SETTLEMENT_CSV_HEADER: &str =
    "customer,account_no,name,community,building,unit,room,days,first_day,last_day,amount\n";

impl SettlementLine {
    /// The line as a CSV row (a text field a spreadsheet would run as a formula is prefixed
    /// with `'`).
    pub fn csv(&self) -> String {
        let o = |v: &Option<String>| v.as_deref().map(csv_cell).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_cell(&self.customer_id),
            o(&self.account_no),
            o(&self.name),
            o(&self.community),
            o(&self.building),
            o(&self.unit),
            o(&self.room),
            self.days,
            self.first_day,
            self.last_day,
            fen(self.amount)
        )
    }
}

impl SettlementTotals {
    /// The list's closing CSV row: the totals (`total,,,,,,,days,,,amount`, the customers
    /// counted in the second column).
    pub fn csv(&self) -> String {
        format!(
            "total,{},,,,,,{},,,{}\n",
            self.customers,
            self.days,
            fen(self.amount)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn transfer(id: i64, on: &str, amount: &str, period: Option<(&str, &str)>) -> Transfer {
        Transfer {
            id,
            reference: format!("T{id}"),
            received_on: d(on),
            amount: dec(amount),
            period_from: period.map(|p| d(p.0)),
            period_to: period.map(|p| d(p.1)),
            undoes: None,
            note: None,
            recorded_by: "t".into(),
            source: "cli".into(),
            recorded_at: String::new(),
        }
    }

    fn billed() -> BTreeMap<String, Decimal> {
        [
            ("2025-11", "100.00"),
            ("2025-12", "200.00"),
            ("2026-01", "300.00"),
        ]
        .into_iter()
        .map(|(m, a)| (m.to_string(), dec(a)))
        .collect()
    }

    #[test]
    fn a_transfer_settles_its_period_first_then_the_oldest_months() {
        // December paid for by name, more than December owed: the rest settles November.
        let t = [transfer(
            1,
            "2026-01-10",
            "250.00",
            Some(("2025-12-01", "2025-12-31")),
        )];
        let r = receivable(d("2026-01-31"), &billed(), &t);
        let out: Vec<_> = r.months.iter().map(|m| m.outstanding.to_string()).collect();
        assert_eq!(out, ["50.00", "0.00", "300.00"]);
        assert_eq!(r.billed, dec("600"));
        assert_eq!(r.received, dec("250"));
        assert_eq!(r.outstanding, dec("350"));
        assert_eq!(r.paid_ahead, Decimal::ZERO);
    }

    #[test]
    fn a_transfer_without_a_period_settles_the_oldest_months() {
        let t = [transfer(1, "2026-01-10", "150.00", None)];
        let r = receivable(d("2026-01-31"), &billed(), &t);
        let out: Vec<_> = r.months.iter().map(|m| m.outstanding.to_string()).collect();
        assert_eq!(out, ["0.00", "150.00", "300.00"]);
    }

    #[test]
    fn an_undone_transfer_counts_only_what_is_left_of_it() {
        let mut back = transfer(2, "2026-01-20", "-100.00", None);
        back.undoes = Some(1);
        let t = [
            transfer(
                1,
                "2026-01-10",
                "700.00",
                Some(("2025-11-01", "2026-01-31")),
            ),
            back,
        ];
        let r = receivable(d("2026-01-31"), &billed(), &t);
        assert_eq!(r.received, dec("600"));
        assert_eq!(r.outstanding, Decimal::ZERO);
        assert_eq!(r.paid_ahead, Decimal::ZERO);
        assert!(r.months.iter().all(|m| m.outstanding.is_zero()));
    }

    #[test]
    fn more_than_billed_is_paid_ahead() {
        let t = [transfer(1, "2026-01-10", "650.00", None)];
        let r = receivable(d("2026-01-31"), &billed(), &t);
        assert_eq!(r.paid_ahead, dec("50"));
        assert_eq!(r.outstanding, Decimal::ZERO);
    }

    #[test]
    fn checks_say_what_to_fix() {
        let ok = NewTransfer {
            reference: "GOV-2026-01".into(),
            received_on: d("2026-01-10"),
            amount: dec("100.00"),
            period_from: Some(d("2025-12-01")),
            period_to: Some(d("2025-12-31")),
            undoes: None,
            note: None,
            recorded_by: "li".into(),
            source: "cli".into(),
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = |f: &dyn Fn(&mut NewTransfer)| {
            let mut t = ok.clone();
            f(&mut t);
            t.check().unwrap_err()
        };
        assert!(bad(&|t| t.amount = dec("-5")).contains("undoes"));
        assert!(bad(&|t| t.undoes = Some(3)).contains("negative"));
        assert!(bad(&|t| t.period_to = None).contains("both"));
        assert!(bad(&|t| t.period_to = Some(d("2025-11-01"))).contains("before it starts"));
        assert!(bad(&|t| t.amount = dec("1.001")).contains("two decimals"));
        assert!(bad(&|t| t.reference = "a\u{1b}b".into()).contains("control"));
    }

    #[test]
    fn the_csv_escapes_formulas() {
        let l = SettlementLine {
            customer_id: "=cmd".into(),
            account_no: Some("A1".into()),
            name: Some("王*".into()),
            community: Some("a,b".into()),
            building: None,
            unit: None,
            room: None,
            days: 3,
            first_day: d("2026-01-01"),
            last_day: d("2026-01-03"),
            amount: dec("28.26"),
        };
        assert_eq!(
            l.csv(),
            "'=cmd,A1,王*,\"a,b\",,,,3,2026-01-01,2026-01-03,28.26\n"
        );
    }
}
