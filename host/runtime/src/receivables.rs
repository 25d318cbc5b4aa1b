//! The receivables report: what a company's customers owe at a date, by how long it has been
//! owed and by community (小区).
//!
//! Each customer's **balance** is their account's (`crate::ledger::account`): principal and late
//! fees billed through the company's latest completed run dated on or before the report's date,
//! less the ledger's entries dated up to it. A positive balance is **owed**, a negative one is
//! **credit** (paid ahead).
//!
//! **Aging** follows the receivables convention that payments settle the oldest charges first,
//! so what is still owed is the newest charges: the owed amount is matched against what was
//! billed in the last 30 days (*current*), then in the 30 days before (*30–59*), then the 30
//! before those (*60–89*), and what remains is *90+* (opening balances carried in from an old
//! system count from their `arrears_since`, else their date; what an entry takes back, a
//! reversal, a refund or a debit adjustment, counts as a charge of its own date). The days are
//! the report date's
//! windows, cut at the latest completed run on or before each boundary (bills are cumulative, so
//! the billed amount at each cut is one bill row). This is the age of the debt whatever order
//! the company's allocation policy settles principal and fees in.
//!
//! This module is pure: the store reads each page of customers ([`CustomerFacts`]), this module
//! ages them and adds them up ([`Receivables`]).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::ledger::fen;

/// The windows' lengths in days: current is under 30 days, then 30–59, 60–89, and 90+.
pub const WINDOW_DAYS: i64 = 30;

/// The report's cuts: the billed date each window starts after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cuts {
    /// The latest completed run on or before the report's date: what the balances are billed
    /// through.
    pub billed_through: NaiveDate,
    /// The latest completed run on or before 30, 60 and 90 days before the report's date (none
    /// when there is none: everything billed counts as newer).
    pub before: [Option<NaiveDate>; 3],
}

/// What the store reads of one customer for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFacts {
    /// The customer.
    pub customer_id: String,
    /// Principal and late fees billed through [`Cuts::billed_through`] (opening balance
    /// included), and the debits (negative entries) dated up to the report's date.
    pub billed: Decimal,
    /// The same through each of [`Cuts::before`] (bills) and each window's first day (debits):
    /// the customer's bill there, or, without one, the opening balance when it was owed by
    /// then, else nothing.
    pub billed_before: [Decimal; 3],
    /// The positive entries' sum up to the report's date.
    pub credits: Decimal,
    /// The community of the customer's newest profile.
    pub community: Option<String>,
}

/// Balances by age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Buckets {
    /// Customers counted.
    pub customers: u64,
    /// Customers who owe.
    pub owing: u64,
    /// Owed in all (the sum of positive balances).
    pub owed: Decimal,
    /// Owed on charges of the last 30 days.
    pub current: Decimal,
    /// Owed on charges 30–59 days old.
    pub days_30: Decimal,
    /// Owed on charges 60–89 days old.
    pub days_60: Decimal,
    /// Owed on charges 90 days old or older.
    pub days_90: Decimal,
    /// Credit held for customers who paid ahead (the sum of negative balances, positive).
    pub credit: Decimal,
}

impl Buckets {
    fn add(&mut self, b: &Buckets) {
        self.customers += b.customers;
        self.owing += b.owing;
        self.owed += b.owed;
        self.current += b.current;
        self.days_30 += b.days_30;
        self.days_60 += b.days_60;
        self.days_90 += b.days_90;
        self.credit += b.credit;
    }

    fn fen(mut self) -> Buckets {
        for d in [
            &mut self.owed,
            &mut self.current,
            &mut self.days_30,
            &mut self.days_60,
            &mut self.days_90,
            &mut self.credit,
        ] {
            *d = fen(*d);
        }
        self
    }

    /// Whether the buckets add up to what is owed.
    pub fn adds_up(&self) -> bool {
        self.current + self.days_30 + self.days_60 + self.days_90 == self.owed
    }
}

/// One customer aged: the owed amount matched against the newest charges first.
pub fn age(f: &CustomerFacts) -> Buckets {
    let balance = f.billed - f.credits;
    let mut b = Buckets {
        customers: 1,
        ..Buckets::default()
    };
    if balance <= Decimal::ZERO {
        b.credit = -balance;
        return b;
    }
    b.owing = 1;
    b.owed = balance;
    let mut left = balance;
    let mut newer = f.billed;
    for (i, slot) in [&mut b.current, &mut b.days_30, &mut b.days_60]
        .into_iter()
        .enumerate()
    {
        let window = (newer - f.billed_before[i]).max(Decimal::ZERO);
        let take = left.min(window);
        *slot = take;
        left -= take;
        newer = f.billed_before[i];
    }
    b.days_90 = left;
    b
}

/// A company's receivables at a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receivables {
    /// The report's date: the entries up to it count.
    pub as_of: NaiveDate,
    /// The cuts the balances and windows are billed through.
    pub cuts: Cuts,
    /// The whole company.
    pub total: Buckets,
    /// By community, in order; customers without one under `None`.
    pub communities: Vec<(Option<String>, Buckets)>,
}

/// Adds up aged customers, page by page.
#[derive(Debug, Clone)]
pub struct Report {
    as_of: NaiveDate,
    cuts: Cuts,
    total: Buckets,
    by: BTreeMap<Option<String>, Buckets>,
}

impl Report {
    /// An empty report.
    pub fn new(as_of: NaiveDate, cuts: Cuts) -> Report {
        Report {
            as_of,
            cuts,
            total: Buckets::default(),
            by: BTreeMap::new(),
        }
    }

    /// Ages and counts one customer.
    pub fn add(&mut self, f: &CustomerFacts) {
        let b = age(f);
        self.total.add(&b);
        self.by.entry(f.community.clone()).or_default().add(&b);
    }

    /// The report.
    pub fn finish(self) -> Receivables {
        Receivables {
            as_of: self.as_of,
            cuts: self.cuts,
            total: self.total.fen(),
            communities: self.by.into_iter().map(|(k, v)| (k, v.fen())).collect(),
        }
    }
}

impl Receivables {
    /// The report as CSV: one row per community and a total, text cells escaped against
    /// spreadsheet formula injection.
    pub fn csv(&self) -> String {
        let mut out =
            String::from("community,customers,owing,owed,current,days_30,days_60,days_90,credit\n");
        let mut row = |name: &str, b: &Buckets| {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                crate::ledger::csv_cell(name),
                b.customers,
                b.owing,
                b.owed,
                b.current,
                b.days_30,
                b.days_60,
                b.days_90,
                b.credit
            ));
        };
        for (c, b) in &self.communities {
            row(c.as_deref().unwrap_or("(none)"), b);
        }
        row("(total)", &self.total);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn facts(billed: &str, before: [&str; 3], credits: &str, community: &str) -> CustomerFacts {
        CustomerFacts {
            customer_id: "x".into(),
            billed: dec(billed),
            billed_before: before.map(dec),
            credits: dec(credits),
            community: Some(community.into()),
        }
    }

    #[test]
    fn the_newest_charges_are_what_is_still_owed() {
        // Billed 100 a month for four months, paid 150: 250 owed, the newest first.
        let b = age(&facts("400", ["300", "200", "100"], "150", "a"));
        assert_eq!(
            (b.owed, b.current, b.days_30, b.days_60, b.days_90),
            (dec("250"), dec("100"), dec("100"), dec("50"), dec("0"))
        );
        assert!(b.adds_up());
        // Nothing paid on an old opening balance: the rest is 90+.
        let b = age(&facts("700", ["600", "500", "400"], "0", "a"));
        assert_eq!((b.current, b.days_90), (dec("100"), dec("400")));
        // Paid ahead: credit, nothing owed.
        let b = age(&facts("100", ["0", "0", "0"], "130.50", "a"));
        assert_eq!((b.owing, b.owed, b.credit), (0, dec("0"), dec("30.50")));
    }

    #[test]
    fn a_report_adds_up_by_community() {
        let mut r = Report::new(
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            Cuts {
                billed_through: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
                before: [None; 3],
            },
        );
        r.add(&facts("400", ["300", "200", "100"], "150", "=HYPERLINK(1)"));
        r.add(&facts("100", ["0", "0", "0"], "130", "b"));
        r.add(&facts("50", ["0", "0", "0"], "0", "b"));
        let r = r.finish();
        assert_eq!(r.total.customers, 3);
        assert_eq!(r.total.owed, dec("300.00"));
        assert_eq!(r.total.credit, dec("30.00"));
        assert!(r.total.adds_up());
        assert_eq!(r.communities.len(), 2);
        let csv = r.csv();
        assert!(csv.contains("'=HYPERLINK(1),1,1,250.00"), "{csv}");
        assert!(
            csv.ends_with("(total),3,2,300.00,150.00,100.00,50.00,0.00,30.00\n"),
            "{csv}"
        );
    }
}
