//! A statement compared with what heatbill recorded: pure, one pass over each side (a hash map
//! on the channel's transaction id), so a day of two million lines reconciles in seconds.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{LineKind, Statement};

/// An entry heatbill recorded in the statement's channel (a payment, or a refund recorded with
/// the channel's refund id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The ledger entry.
    pub entry_id: i64,
    /// Its customer.
    pub customer_id: String,
    /// The channel's transaction id it was recorded under.
    pub channel_txn: String,
    /// Signed from the customer's side, as in the ledger: payment +, refund −.
    pub amount: Decimal,
    /// The date it is booked on.
    pub on_date: NaiveDate,
}

/// What the comparison found for one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Discrepancy {
    /// In both, same amount.
    Matched,
    /// In the channel's statement, not recorded: a lost notification (record it).
    MissingInHeatbill,
    /// Recorded, not in the statement: a payment the channel does not know (or one from
    /// another day's statement).
    MissingInChannel,
    /// In both, with different amounts.
    AmountMismatch {
        /// The statement's.
        channel: Decimal,
        /// heatbill's.
        recorded: Decimal,
    },
}

/// One transaction's outcome: a statement line, an unmatched recorded entry, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What was found.
    pub discrepancy: Discrepancy,
    /// The statement line's kind (none for an entry missing in the channel).
    pub kind: Option<LineKind>,
    /// The statement's line (none for an entry missing in the channel).
    pub line_no: Option<u64>,
    /// The ledger entry (none for a line missing in heatbill).
    pub entry_id: Option<i64>,
    /// The entry's customer.
    pub customer_id: Option<String>,
    /// The channel's transaction id.
    pub channel_txn: String,
    /// The statement line's order number (商户订单号), for finding the customer of a lost
    /// notification.
    pub order_no: Option<String>,
    /// The statement line's account hint (a bank memo's account number).
    pub account_hint: Option<String>,
    /// The statement's amount.
    pub channel_amount: Option<Decimal>,
    /// heatbill's amount.
    pub recorded_amount: Option<Decimal>,
    /// The statement line's time.
    pub time: Option<NaiveDateTime>,
    /// The entry's date.
    pub on_date: Option<NaiveDate>,
    /// The statement line's fee (zero for an entry missing in the channel).
    pub fee: Decimal,
}

/// Count and sums of the items of one kind of outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindTotals {
    /// Items.
    pub count: u64,
    /// Their statement amounts.
    pub channel: Decimal,
    /// Their recorded amounts.
    pub recorded: Decimal,
}

impl KindTotals {
    fn add(&mut self, item: &Item) {
        self.count += 1;
        self.channel += item.channel_amount.unwrap_or_default();
        self.recorded += item.recorded_amount.unwrap_or_default();
    }
}

/// A statement reconciled: one [`Item`] per statement line (in file order), then one per
/// recorded entry the statement does not have (in the order given), with totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Every outcome.
    pub items: Vec<Item>,
    /// [`Discrepancy::Matched`].
    pub matched: KindTotals,
    /// [`Discrepancy::MissingInHeatbill`].
    pub missing_in_heatbill: KindTotals,
    /// [`Discrepancy::MissingInChannel`].
    pub missing_in_channel: KindTotals,
    /// [`Discrepancy::AmountMismatch`].
    pub amount_mismatch: KindTotals,
    /// The statement's fees, as stated.
    pub fees: Decimal,
}

impl Reconciliation {
    /// Nothing but matches.
    pub fn is_clean(&self) -> bool {
        self.missing_in_heatbill.count == 0
            && self.missing_in_channel.count == 0
            && self.amount_mismatch.count == 0
    }

    /// The items that are not matches.
    pub fn discrepancies(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| i.discrepancy != Discrepancy::Matched)
    }
}

/// Compares `statement` with `recorded` by the channel's transaction id (refunds too: a
/// recorded refund carries the channel's refund id). Linear: one hash map over `recorded`.
///
/// A transaction id recorded twice (the ledger prevents it; a caller's join might not) matches
/// once: the first entry is compared, the others are missing in the channel. The caller picks
/// which entries to pass (the statement's channel and dates); an entry of another day shows as
/// missing in the channel.
pub fn reconcile(statement: &Statement, recorded: &[Recorded]) -> Reconciliation {
    let mut by_txn: HashMap<&str, usize> = HashMap::with_capacity(recorded.len());
    for (i, r) in recorded.iter().enumerate() {
        // The first entry of a repeated id is the one compared; the others stay unused.
        by_txn.entry(r.channel_txn.as_str()).or_insert(i);
    }
    let mut used = vec![false; recorded.len()];
    let mut out = Reconciliation {
        items: Vec::with_capacity(statement.lines.len() + recorded.len() / 16),
        ..Reconciliation::default()
    };
    for line in &statement.lines {
        let found = by_txn.get(line.channel_txn.as_str()).copied();
        let entry = found.map(|i| &recorded[i]);
        if let Some(i) = found {
            used[i] = true;
        }
        let discrepancy = match entry {
            None => Discrepancy::MissingInHeatbill,
            Some(r) if r.amount == line.amount => Discrepancy::Matched,
            Some(r) => Discrepancy::AmountMismatch {
                channel: line.amount,
                recorded: r.amount,
            },
        };
        out.fees += line.fee;
        out.items.push(Item {
            discrepancy,
            kind: Some(line.kind),
            line_no: Some(line.line_no),
            entry_id: entry.map(|r| r.entry_id),
            customer_id: entry.map(|r| r.customer_id.clone()),
            channel_txn: line.channel_txn.clone(),
            order_no: line.order_no.clone(),
            account_hint: line.account_hint.clone(),
            channel_amount: Some(line.amount),
            recorded_amount: entry.map(|r| r.amount),
            time: Some(line.time),
            on_date: entry.map(|r| r.on_date),
            fee: line.fee,
        });
    }
    for (r, _) in recorded.iter().zip(&used).filter(|(_, used)| !**used) {
        out.items.push(Item {
            discrepancy: Discrepancy::MissingInChannel,
            kind: None,
            line_no: None,
            entry_id: Some(r.entry_id),
            customer_id: Some(r.customer_id.clone()),
            channel_txn: r.channel_txn.clone(),
            order_no: None,
            account_hint: None,
            channel_amount: None,
            recorded_amount: Some(r.amount),
            time: None,
            on_date: Some(r.on_date),
            fee: Decimal::ZERO,
        });
    }
    for item in &out.items {
        match item.discrepancy {
            Discrepancy::Matched => out.matched.add(item),
            Discrepancy::MissingInHeatbill => out.missing_in_heatbill.add(item),
            Discrepancy::MissingInChannel => out.missing_in_channel.add(item),
            Discrepancy::AmountMismatch { .. } => out.amount_mismatch.add(item),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, Inject, WechatOpts};
    use crate::{Channel, Limits, parse_wechat};

    /// A day of 200,000 lines parsed and reconciled (the hash map keeps it linear; nothing is
    /// timed here: `statements-bench` prints the figures).
    #[test]
    fn two_hundred_thousand_lines() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let inject = Inject {
            only_in_statement: 17,
            only_recorded: 9,
            amount_mismatch: 5,
        };
        let s = fixtures::scenario(Channel::Wechat, 2026, date, 196_000, 4_000, inject);
        let bill = fixtures::wechat_bill(
            date,
            &s.day.payments,
            &s.day.refunds,
            &WechatOpts::default(),
        );
        let statement = parse_wechat(&bill, &Limits::default()).unwrap();
        assert_eq!(statement.lines.len(), 200_000);
        let r = reconcile(&statement, &s.recorded);
        assert_eq!(r.items.len(), 200_000 + 9);
        assert_eq!(r.missing_in_heatbill.count, 17);
        assert_eq!(r.missing_in_channel.count, 9);
        assert_eq!(r.amount_mismatch.count, 5);
        assert_eq!(r.matched.count, 200_000 - 17 - 5);
        assert_eq!(r.fees, statement.totals.fees);
        assert_eq!(
            r.amount_mismatch.recorded - r.amount_mismatch.channel,
            Decimal::from(5)
        );
        assert!(!r.is_clean());
        assert_eq!(r.discrepancies().count(), 17 + 9 + 5);
    }
}
