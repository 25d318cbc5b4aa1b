//! The account ledger: what a customer owes, paid and is owed, from entries nobody edits.
//!
//! A customer's account is two append-only streams:
//!
//! - the **daily charges**: the bills. A bill is already append-only (a correction is a new
//!   version, the old one kept in `bill_history` with why), and each carries the principal and
//!   the late fees billed before its date (`charged_before`, `fees_before`), so the charges up to
//!   any billed day are one row, not a sum over a season;
//! - the **entries** (`account_entries`): payments, reversals, refunds, adjustments and
//!   write-offs, each with who recorded it, when, why and from where (`source`). A mistake is
//!   undone by a new entry that names what it undoes (a reversal or a refund names its payment);
//!   nothing is updated or deleted.
//!
//! An entry's `amount` is its effect on the account from the customer's side: a payment, a
//! credit adjustment or a write-off pays (positive); a reversal, a refund or a debit adjustment
//! takes back (negative). The **credits** of an account at a date are the sum of its entries
//! dated up to it (and not before its opening balance, which holds everything before).
//!
//! **Allocation** ([`allocate`]): the credits settle the principal and the late fees billed so
//! far in the company's order, [`Allocation`] (`policies.allocation` in the company file:
//! `principal-first`, the default, or `fees-first`), oldest first within each; what is left over
//! is credit, which settles later charges as they are billed. The nightly run computes a bill's
//! arrears (unpaid principal, what a late-fee rule charges on) the same way, from the same
//! entries, so a payment, a reversal or an adjustment changes the next day's late fee.
//!
//! This module is pure: the store reads the rows, the API and the CLI show what is computed
//! here.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::OpeningBalance;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// Money received (positive).
    Payment,
    /// A payment that did not happen after all (a bounced transfer, a cashier's mistake): the
    /// whole of what is left of it, negative.
    Reversal,
    /// Money paid back to the customer out of a payment (some or all of it), negative.
    Refund,
    /// An operator's correction with a reason code: positive credits the customer, negative
    /// debits.
    Adjustment,
    /// Debt the company gives up (positive), with a reason code.
    WriteOff,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Payment,
        EntryKind::Reversal,
        EntryKind::Refund,
        EntryKind::Adjustment,
        EntryKind::WriteOff,
    ];

    /// Its name (`payment`, `reversal`, `refund`, `adjustment`, `write-off`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Payment => "payment",
            EntryKind::Reversal => "reversal",
            EntryKind::Refund => "refund",
            EntryKind::Adjustment => "adjustment",
            EntryKind::WriteOff => "write-off",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a payment came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// The company's counter (收费台): cash, card or cheque, with a receipt number.
    Counter,
    /// WeChat Pay.
    Wechat,
    /// Alipay.
    Alipay,
    /// A bank transfer.
    Bank,
    /// A government transfer (its share of subsidies).
    Government,
    /// A payments file imported before channels were recorded (`heatbill import payments`).
    Import,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 6] = [
        Channel::Counter,
        Channel::Wechat,
        Channel::Alipay,
        Channel::Bank,
        Channel::Government,
        Channel::Import,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Counter => "counter",
            Channel::Wechat => "wechat",
            Channel::Alipay => "alipay",
            Channel::Bank => "bank",
            Channel::Government => "government",
            Channel::Import => "import",
        }
    }

    /// The channel named `s`.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// In which order credits settle what is billed (`policies.allocation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocation {
    /// Principal first (oldest first), then late fees: the default, and what keeps the late
    /// fee lowest (it is charged on unpaid principal only).
    #[default]
    PrincipalFirst,
    /// Late fees first, then principal (some companies' rule).
    FeesFirst,
}

impl Allocation {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Allocation::PrincipalFirst => "principal-first",
            Allocation::FeesFirst => "fees-first",
        }
    }

    /// The company's policy (`allocation` in its policies; absent means principal first).
    pub fn of(policies: &serde_json::Value) -> Result<Allocation, String> {
        match policies.get("allocation") {
            None | Some(serde_json::Value::Null) => Ok(Allocation::PrincipalFirst),
            Some(serde_json::Value::String(s)) if s == "principal-first" => {
                Ok(Allocation::PrincipalFirst)
            }
            Some(serde_json::Value::String(s)) if s == "fees-first" => Ok(Allocation::FeesFirst),
            Some(v) => Err(format!(
                "policies.allocation is {}: give \"principal-first\" (the default: payments \
                 settle principal, then late fees) or \"fees-first\"",
                crate::model::shown(&v.to_string())
            )),
        }
    }
}

/// What is still due after the credits are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Dues {
    /// Unpaid principal (what late fees are charged on).
    pub principal: Decimal,
    /// Unpaid late fees.
    pub fees: Decimal,
    /// Credit: paid beyond everything billed, kept on the account for later charges.
    pub credit: Decimal,
}

impl Dues {
    /// What the customer owes (negative: what the company owes the customer).
    pub fn balance(&self) -> Decimal {
        self.principal + self.fees - self.credit
    }
}

/// Applies `credits` (the sum of the entries) to `principal` and `fees` billed, in `policy`'s
/// order. Negative credits (more taken back than paid, or debit adjustments) add to the unpaid
/// principal; a negative principal (a bill that gave back more than it charged) is credit.
pub fn allocate(policy: Allocation, principal: Decimal, fees: Decimal, credits: Decimal) -> Dues {
    let d = allocate_exact(policy, principal, fees, credits);
    Dues {
        principal: fen(d.principal),
        fees: fen(d.fees),
        credit: fen(d.credit),
    }
}

/// An amount shown to the fen: `0.00`, not `0` (the sums keep the scale of their terms; a
/// zero nobody added to has none).
pub fn fen(d: Decimal) -> Decimal {
    let mut d = d;
    if d.scale() < 2 {
        d.rescale(2);
    }
    d
}

fn allocate_exact(policy: Allocation, principal: Decimal, fees: Decimal, credits: Decimal) -> Dues {
    let (mut principal, fees) = (principal, fees.max(Decimal::ZERO));
    let mut credits = credits;
    if principal < Decimal::ZERO {
        credits -= principal;
        principal = Decimal::ZERO;
    }
    if credits <= Decimal::ZERO {
        return Dues {
            principal: principal - credits,
            fees,
            credit: Decimal::ZERO,
        };
    }
    let (first, second) = match policy {
        Allocation::PrincipalFirst => (principal, fees),
        Allocation::FeesFirst => (fees, principal),
    };
    let paid_first = credits.min(first);
    let rest = credits - paid_first;
    let paid_second = rest.min(second);
    let (first_due, second_due) = (first - paid_first, second - paid_second);
    let (principal, fees) = match policy {
        Allocation::PrincipalFirst => (first_due, second_due),
        Allocation::FeesFirst => (second_due, first_due),
    };
    Dues {
        principal,
        fees,
        credit: rest - paid_second,
    }
}

/// An entry to record: a payment, an adjustment or a write-off (reversals and refunds are
/// [`Undo`]s: they name what they undo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    /// The customer.
    pub customer_id: String,
    /// `Payment`, `Adjustment` or `WriteOff`.
    pub kind: EntryKind,
    /// The value date.
    pub on_date: NaiveDate,
    /// Signed from the customer's side: a payment and a write-off positive; an adjustment
    /// positive to credit the customer, negative to debit.
    pub amount: Decimal,
    /// A payment's channel.
    pub channel: Option<Channel>,
    /// A payment's transaction id in its channel (a counter receipt: its number).
    pub channel_txn: Option<String>,
    /// How it was paid (cash, card, cheque, transfer, …).
    pub method: Option<String>,
    /// A counter receipt's number.
    pub receipt_no: Option<String>,
    /// The cashier who took it.
    pub cashier: Option<String>,
    /// An adjustment's or a write-off's reason code.
    pub reason_code: Option<String>,
    /// Free text: why.
    pub note: Option<String>,
    /// Who recorded it (a token's label, the CLI's `--by`).
    pub recorded_by: String,
    /// Where it came from (`api`, `cli`, `import <file>`).
    pub source: String,
}

/// A reversal or a refund of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    /// The payment's entry id.
    pub payment: i64,
    /// `Reversal` (all that is left of the payment) or `Refund` (some of it).
    pub kind: EntryKind,
    /// A refund's amount (positive); a reversal takes all that is left.
    pub amount: Option<Decimal>,
    /// The value date (not before the payment's).
    pub on_date: NaiveDate,
    /// A refund's id in the payment's channel (a WeChat refund number), which makes it
    /// idempotent.
    pub channel_txn: Option<String>,
    /// The cashier, for a counter refund.
    pub cashier: Option<String>,
    /// Why (required).
    pub note: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// Where it came from.
    pub source: String,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its id (increasing in the order entries were recorded).
    pub id: i64,
    /// The customer.
    pub customer_id: String,
    /// What it is.
    pub kind: EntryKind,
    /// The value date.
    pub on_date: NaiveDate,
    /// Its effect on the account, signed from the customer's side.
    pub amount: Decimal,
    /// A payment's (or a refund's) channel.
    pub channel: Option<Channel>,
    /// Its transaction id in the channel.
    pub channel_txn: Option<String>,
    /// How it was paid.
    pub method: Option<String>,
    /// A counter receipt's number.
    pub receipt_no: Option<String>,
    /// The cashier.
    pub cashier: Option<String>,
    /// A reason code.
    pub reason_code: Option<String>,
    /// Why.
    pub note: Option<String>,
    /// The payment a reversal or a refund undoes.
    pub undoes: Option<i64>,
    /// Who recorded it.
    pub recorded_by: String,
    /// Where it came from.
    pub source: String,
    /// When, UTC (`YYYY-MM-DDTHH:MM:SSZ`).
    pub recorded_at: String,
}

/// What recording an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new entry.
    New(Entry),
    /// The same payment (channel and transaction id, customer, date and amount) was recorded
    /// before: that entry, and nothing changed.
    Again(Entry),
}

impl Recorded {
    /// The entry.
    pub fn entry(&self) -> &Entry {
        match self {
            Recorded::New(e) | Recorded::Again(e) => e,
        }
    }
    /// Whether this call recorded it.
    pub fn is_new(&self) -> bool {
        matches!(self, Recorded::New(_))
    }
}

/// The bill that holds a customer's charges up to a date: its carried totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastBill {
    /// Its date.
    pub date: NaiveDate,
    /// Principal billed up to and including it (opening balance included).
    pub principal_through: Decimal,
    /// Late fees billed up to and including it.
    pub fees_through: Decimal,
    /// Unpaid principal at the start of its date (what its plugins saw).
    pub arrears: Decimal,
    /// Overdue since, at the start of its date.
    pub arrears_since: Option<NaiveDate>,
}

/// What the store reads for an account: the opening balance, the last bill up to the date and
/// the entries up to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    /// The opening balance.
    pub opening: Option<OpeningBalance>,
    /// The last bill dated up to the date.
    pub last_bill: Option<LastBill>,
    /// Every entry dated up to the date, oldest first.
    pub entries: Vec<Entry>,
}

/// A customer's account at the end of a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The customer.
    pub customer_id: String,
    /// The date (its end: its bill and its entries count).
    pub as_of: NaiveDate,
    /// The company's allocation order.
    pub allocation: Allocation,
    /// Principal billed up to the date (opening balance included).
    pub principal_billed: Decimal,
    /// Late fees billed up to the date.
    pub fees_billed: Decimal,
    /// The entries' sum (payments less what was taken back, adjustments, write-offs).
    pub credits: Decimal,
    /// What is due after allocation.
    pub dues: Dues,
    /// What the customer owes (negative: credit).
    pub balance: Decimal,
    /// The last bill counted.
    pub last_bill_date: Option<NaiveDate>,
    /// The opening balance's date, when the account has one.
    pub opening_as_of: Option<NaiveDate>,
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
}

/// The account of `customer_id` at the end of `as_of`, from what the store read.
pub fn account(
    customer_id: &str,
    as_of: NaiveDate,
    policy: Allocation,
    facts: AccountFacts,
) -> Account {
    let opening = facts.opening.filter(|o| o.as_of <= as_of);
    let (principal_billed, fees_billed, last_bill_date) = match &facts.last_bill {
        Some(b) => (b.principal_through, b.fees_through, Some(b.date)),
        None => (
            opening.as_ref().map_or(Decimal::ZERO, |o| o.arrears),
            Decimal::ZERO,
            None,
        ),
    };
    let entries: Vec<Entry> = facts
        .entries
        .into_iter()
        .filter(|e| e.on_date <= as_of && opening.as_ref().is_none_or(|o| e.on_date >= o.as_of))
        .collect();
    let credits: Decimal = entries.iter().map(|e| e.amount).sum();
    let dues = allocate(policy, principal_billed, fees_billed, credits);
    Account {
        customer_id: customer_id.to_string(),
        as_of,
        allocation: policy,
        principal_billed: fen(principal_billed),
        fees_billed: fen(fees_billed),
        credits: fen(credits),
        dues,
        balance: fen(dues.balance()),
        last_bill_date,
        opening_as_of: opening.map(|o| o.as_of),
        entries,
    }
}

/// One cashier's takings in one channel on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Till {
    /// The cashier (none for channel payments nobody took by hand).
    pub cashier: Option<String>,
    /// The channel.
    pub channel: Option<Channel>,
    /// Payments taken.
    pub payments: u64,
    /// Their sum.
    pub paid: Decimal,
    /// Reversals and refunds.
    pub undone: u64,
    /// Their sum (negative).
    pub undone_amount: Decimal,
    /// What the till holds for the day: paid plus undone.
    pub net: Decimal,
    /// The entries behind it, by id.
    pub entries: Vec<i64>,
}

/// A day's close (日结): takings per cashier and channel, and the entries behind them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayClose {
    /// The day.
    pub date: NaiveDate,
    /// Per cashier and channel.
    pub tills: Vec<Till>,
    /// Everything taken that day.
    pub net: Decimal,
}

/// The close of `date` from its payments, reversals and refunds (other entries are not money
/// that moved through a till, and are left out).
pub fn day_close(date: NaiveDate, entries: &[Entry]) -> DayClose {
    let mut tills: BTreeMap<(Option<String>, Option<Channel>), Till> = BTreeMap::new();
    for e in entries.iter().filter(|e| {
        e.on_date == date
            && matches!(
                e.kind,
                EntryKind::Payment | EntryKind::Reversal | EntryKind::Refund
            )
    }) {
        let t = tills
            .entry((e.cashier.clone(), e.channel))
            .or_insert_with(|| Till {
                cashier: e.cashier.clone(),
                channel: e.channel,
                payments: 0,
                paid: fen(Decimal::ZERO),
                undone: 0,
                undone_amount: fen(Decimal::ZERO),
                net: fen(Decimal::ZERO),
                entries: Vec::new(),
            });
        if e.kind == EntryKind::Payment {
            t.payments += 1;
            t.paid += e.amount;
        } else {
            t.undone += 1;
            t.undone_amount += e.amount;
        }
        t.net += e.amount;
        t.entries.push(e.id);
    }
    let tills: Vec<Till> = tills.into_values().collect();
    DayClose {
        date,
        net: fen(tills.iter().map(|t| t.net).sum()),
        tills,
    }
}

/// Today in a company's time zone (the UTC date if the zone is not one chrono-tz knows, which
/// the company's checks already refuse).
pub fn local_today(time_zone: &str) -> NaiveDate {
    let now = chrono::Utc::now();
    match time_zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => now.with_timezone(&tz).date_naive(),
        Err(_) => now.date_naive(),
    }
}

/// One month's charges of one line code on a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthCharge {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The line code (`opening-balance` for an opening balance dated in the period).
    pub code: String,
    /// The line's description.
    pub description: String,
    /// What the customer was charged (their own lines: the government's share is not theirs).
    pub amount: Decimal,
}

/// A customer statement (对账单) for a period: what the account owed at its start, what was
/// charged by month and line code, what was paid and taken back, what was adjusted, and what it
/// owes at its end. Opening balance + charges − payments − adjustments = closing balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The customer.
    pub customer_id: String,
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
    /// The balance at the end of the day before `from` (negative: credit).
    pub opening_balance: Decimal,
    /// The charges, by month and line code.
    pub charges: Vec<MonthCharge>,
    /// Their sum.
    pub charges_total: Decimal,
    /// Payments, reversals and refunds dated in the period.
    pub payments: Vec<Entry>,
    /// Their sum (what they paid: a reversal or refund counts negative).
    pub payments_total: Decimal,
    /// Adjustments and write-offs dated in the period.
    pub adjustments: Vec<Entry>,
    /// Their sum (positive credited the customer).
    pub adjustments_total: Decimal,
    /// The balance at the end of `to` (negative: credit).
    pub closing_balance: Decimal,
    /// What is due at the end of `to`, by the company's allocation order.
    pub closing: Dues,
}

/// A customer's statement for `from..=to`, from the accounts at the end of the day before and
/// of the last day, the current bills of the period (with their lines) and the entries up to
/// `to`.
pub fn statement(
    opening: &Account,
    closing: &Account,
    bills: &[crate::model::StoredBill],
    opening_balance: Option<&OpeningBalance>,
    from: NaiveDate,
) -> Statement {
    let to = closing.as_of;
    // By month, an opening balance first in its month, then by line code.
    let mut charges: BTreeMap<(String, bool, String), (String, Decimal)> = BTreeMap::new();
    let month = |d: NaiveDate| d.format("%Y-%m").to_string();
    if let Some(o) = opening_balance.filter(|o| o.as_of >= from && o.as_of <= to) {
        charges.insert(
            (month(o.as_of), false, "opening-balance".into()),
            ("Opening balance".into(), o.arrears),
        );
    }
    for b in bills
        .iter()
        .filter(|b| b.bill_date >= from && b.bill_date <= to)
    {
        for l in b.lines.iter().filter(|l| l.payer == "customer") {
            let e = charges
                .entry((month(b.bill_date), true, l.code.clone()))
                .or_insert_with(|| (l.description.clone(), Decimal::ZERO));
            e.1 += l.amount;
        }
    }
    let charges: Vec<MonthCharge> = charges
        .into_iter()
        .map(|((month, _, code), (description, amount))| MonthCharge {
            month,
            code,
            description,
            amount: fen(amount),
        })
        .collect();
    let in_period = |e: &&Entry| e.on_date >= from && e.on_date <= to;
    let payments: Vec<Entry> = closing
        .entries
        .iter()
        .filter(in_period)
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::Payment | EntryKind::Reversal | EntryKind::Refund
            )
        })
        .cloned()
        .collect();
    let adjustments: Vec<Entry> = closing
        .entries
        .iter()
        .filter(in_period)
        .filter(|e| matches!(e.kind, EntryKind::Adjustment | EntryKind::WriteOff))
        .cloned()
        .collect();
    Statement {
        customer_id: closing.customer_id.clone(),
        from,
        to,
        opening_balance: opening.balance,
        charges_total: fen(charges.iter().map(|c| c.amount).sum()),
        charges,
        payments_total: fen(payments.iter().map(|e| e.amount).sum()),
        payments,
        adjustments_total: fen(adjustments.iter().map(|e| e.amount).sum()),
        adjustments,
        closing_balance: closing.balance,
        closing: closing.dues,
    }
}

impl Statement {
    /// Whether the figures add up: opening + charges − payments − adjustments = closing. They
    /// do when every bill of the period is billed (a date not run yet leaves its charges out of
    /// both the closing balance and the charges, and they still add up).
    pub fn adds_up(&self) -> bool {
        self.opening_balance + self.charges_total - self.payments_total - self.adjustments_total
            == self.closing_balance
    }

    /// The statement as CSV: one row per figure (`section,month,code,description,date,entry,
    /// kind,amount`), text fields that a spreadsheet would run as a formula prefixed with `'`.
    pub fn csv(&self) -> String {
        let mut out = String::from("section,month,code,description,date,entry,kind,amount\n");
        let text = csv_cell;
        out.push_str(&format!(
            "opening,,,,{},,,{}\n",
            self.from.pred_opt().unwrap_or(self.from),
            self.opening_balance
        ));
        for c in &self.charges {
            out.push_str(&format!(
                "charge,{},{},{},,,,{}\n",
                c.month,
                text(&c.code),
                text(&c.description),
                c.amount
            ));
        }
        for (section, entries) in [
            ("payment", &self.payments),
            ("adjustment", &self.adjustments),
        ] {
            for e in entries {
                out.push_str(&format!(
                    "{section},,{},{},{},{},{},{}\n",
                    text(e.reason_code.as_deref().unwrap_or("")),
                    text(e.note.as_deref().unwrap_or("")),
                    e.on_date,
                    e.id,
                    e.kind.as_str(),
                    e.amount
                ));
            }
        }
        out.push_str(&format!(
            "closing,,,,{},,,{}\n",
            self.to, self.closing_balance
        ));
        out
    }
}

/// A text cell of an exported CSV: a value a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`, unless it is a plain
/// number (`-12.50` stays a number); a value with a comma, a quote or a line break is quoted.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<Decimal>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The most a single entry may move: a bound that catches a mistyped amount.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Checks an amount: at most two decimals (fen), not zero, within [`MAX_AMOUNT`].
pub fn check_amount(what: &str, amount: Decimal) -> Result<(), String> {
    if amount.is_zero() {
        return Err(format!("{what} is 0: give an amount in yuan, e.g. 100.00"));
    }
    if amount.normalize().scale() > 2 {
        return Err(format!(
            "{what} {amount} has more than two decimals: money is in yuan to the fen (0.01)"
        ));
    }
    if amount.abs() > MAX_AMOUNT {
        return Err(format!(
            "{what} {amount} is more than {MAX_AMOUNT} yuan: check the amount"
        ));
    }
    Ok(())
}

/// Checks a short text field: at most `max` characters, no control characters.
pub fn check_text(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{what} {} holds control characters",
            crate::model::shown(value)
        ));
    }
    Ok(())
}

impl NewEntry {
    /// Checks what can be checked without the database: the kind's sign and required fields,
    /// the amount's precision and bounds, the text fields' sizes.
    pub fn check(&self) -> Result<(), String> {
        check_amount("the amount", self.amount)?;
        let text = [
            ("channel_txn", &self.channel_txn, 64),
            ("method", &self.method, 32),
            ("receipt_no", &self.receipt_no, 64),
            ("cashier", &self.cashier, 64),
            ("reason_code", &self.reason_code, 32),
            ("note", &self.note, 500),
        ];
        for (name, v, max) in text {
            if let Some(v) = v {
                check_text(name, v, max)?;
            }
        }
        check_text("recorded_by", &self.recorded_by, 64)?;
        match self.kind {
            EntryKind::Payment => {
                if self.amount < Decimal::ZERO {
                    return Err(format!(
                        "a payment of {} is negative: record a refund or a reversal of the \
                         payment instead",
                        self.amount
                    ));
                }
                if self.channel.is_none() {
                    return Err(
                        "a payment needs its channel (counter, wechat, alipay, bank, \
                                government)"
                            .into(),
                    );
                }
                if self.channel_txn.is_none() {
                    return Err("a payment needs its transaction id in the channel \
                                (channel_txn; for the counter, the receipt number): it is \
                                what makes a payment recorded twice one payment"
                        .into());
                }
            }
            EntryKind::Adjustment | EntryKind::WriteOff => {
                if self.reason_code.is_none() {
                    return Err(format!(
                        "an {} needs a reason_code (and a note saying why)",
                        self.kind.as_str()
                    ));
                }
                if self.kind == EntryKind::WriteOff && self.amount < Decimal::ZERO {
                    return Err("a write-off's amount is the debt given up, positive".into());
                }
                if self.channel.is_some() || self.channel_txn.is_some() {
                    return Err(format!(
                        "an {} moves no money through a channel: leave channel and \
                         channel_txn out",
                        self.kind.as_str()
                    ));
                }
            }
            EntryKind::Reversal | EntryKind::Refund => {
                return Err(format!(
                    "a {} names the payment it undoes: record it on the payment",
                    self.kind.as_str()
                ));
            }
        }
        Ok(())
    }
}

impl Undo {
    /// Checks what can be checked without the database.
    pub fn check(&self) -> Result<(), String> {
        match (self.kind, self.amount) {
            (EntryKind::Reversal, None) => {}
            (EntryKind::Reversal, Some(_)) => {
                return Err(
                    "a reversal undoes all that is left of the payment: give no \
                            amount (a refund gives one)"
                        .into(),
                );
            }
            (EntryKind::Refund, Some(a)) => {
                check_amount("the refund", a)?;
                if a < Decimal::ZERO {
                    return Err("a refund's amount is what is paid back, positive".into());
                }
            }
            (EntryKind::Refund, None) => return Err("a refund needs its amount".into()),
            (k, _) => {
                return Err(format!(
                    "a {} undoes nothing: only a reversal or a refund names a payment",
                    k.as_str()
                ));
            }
        }
        check_text("note", &self.note, 500)?;
        check_text("recorded_by", &self.recorded_by, 64)?;
        if let Some(t) = &self.channel_txn {
            check_text("channel_txn", t, 64)?;
        }
        if let Some(c) = &self.cashier {
            check_text("cashier", c, 64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
        assert_eq!(csv_cell("\t=cmd()"), "'\t=cmd()");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("-12.50"), "-12.50", "a number stays a number");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn allocation_orders_principal_and_fees() {
        let p = Allocation::PrincipalFirst;
        let f = Allocation::FeesFirst;
        // 100 principal, 5 fees, 60 paid.
        assert_eq!(
            allocate(p, d("100"), d("5"), d("60")),
            Dues {
                principal: d("40"),
                fees: d("5"),
                credit: d("0")
            }
        );
        assert_eq!(
            allocate(f, d("100"), d("5"), d("60")),
            Dues {
                principal: d("45"),
                fees: d("0"),
                credit: d("0")
            }
        );
        // Overpaid: credit, whatever the order.
        for policy in [p, f] {
            let dues = allocate(policy, d("100"), d("5"), d("130"));
            assert_eq!(dues.credit, d("25"));
            assert_eq!(dues.balance(), d("-25"));
        }
        // Taken back more than paid: the principal grows.
        assert_eq!(allocate(p, d("100"), d("5"), d("-10")).principal, d("110"));
        // A negative principal is credit.
        assert_eq!(allocate(p, d("-3"), d("0"), d("0")).credit, d("3"));
    }

    #[test]
    fn policies_name_the_allocation() {
        assert_eq!(
            Allocation::of(&serde_json::json!({})),
            Ok(Allocation::PrincipalFirst)
        );
        assert_eq!(
            Allocation::of(&serde_json::json!({"allocation": "fees-first"})),
            Ok(Allocation::FeesFirst)
        );
        assert!(
            Allocation::of(&serde_json::json!({"allocation": "newest"}))
                .unwrap_err()
                .contains("principal-first")
        );
    }
}
