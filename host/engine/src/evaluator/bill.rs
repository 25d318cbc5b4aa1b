//! Bill assembly: a customer-day's bill as the chain's plugins add to it ([`DayBill`]), the
//! result it turns into at the end of the chain ([`finish`]), and the [`BillError`] that names
//! company, customer, date and plugin when something fails it.
//!
//! Kept apart from the calls and the checks because it is the one place that decides what a
//! caller gets back: the nightly path and the dry run both end here, so both give the same bill.
use rust_decimal::Decimal;

use super::Evaluator;
use crate::bindings::wit;
use crate::error::{BillError, BillErrorKind};
use crate::invariants::Totals;
use crate::model::{Bill, BillLine, DayInput, Payer, PayerTotals, SeasonDay, SeasonPhase};

/// A season position from the contract's type.
fn season_from_wit(s: wit::SeasonDay) -> SeasonDay {
    SeasonDay {
        phase: match s.phase {
            wit::SeasonPhase::Outside => SeasonPhase::Outside,
            wit::SeasonPhase::Regular => SeasonPhase::Regular,
            wit::SeasonPhase::Early => SeasonPhase::Early,
            wit::SeasonPhase::Extended => SeasonPhase::Extended,
        },
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}

/// One customer-day's bill under construction: the lines the chain's plugins have added so far,
/// its season position, its totals, and the error that failed it (if one did).
pub(super) struct DayBill {
    pub(super) lines: Vec<BillLine>,
    pub(super) season: Option<wit::SeasonDay>,
    /// The lines' totals by payer, in fen, kept with checked arithmetic as the lines arrive, so
    /// that an overflow is blamed on the plugin whose line caused it.
    pub(super) totals: Totals,
    /// Boxed: a `DayBill` per customer-day of the batch stays small, and errors are rare.
    pub(super) error: Option<Box<BillError>>,
}

/// A line as it crosses the boundary again, to a later plugin: category and payer codes,
/// (units, scale) decimals.
///
/// Made only for the customer-days a later plugin is called for (its day filter admits them),
/// which is why it is derived as a call is laid out (`CallColumns::fill`, and `prior_line` for
/// the dry run) rather than kept beside every line.
#[derive(Clone, Copy)]
pub(super) struct RawLine {
    /// The line's index in the chain's list of prior kinds (`day-batch.prior-kinds`).
    pub(super) kind: u16,
    pub(super) payer: u8,
    pub(super) quantity: (i64, u8),
    pub(super) unit_price: (i64, u8),
    pub(super) amount: (i64, u8),
    /// (0, 0) for none.
    pub(super) season_amount: (i64, u8),
}

impl RawLine {
    /// `offsets[e]`: where entry e's kinds start in the chain's list of prior kinds.
    pub(super) fn of(l: &BillLine, offsets: &[u32]) -> RawLine {
        // Every decimal of a bill line was made from an s64 and a scale of at most 18 (see
        // `columns::decimal_at` and `columns::amount_at`), so these conversions are exact.
        let raw = |d: Decimal| (d.mantissa() as i64, d.scale() as u8);
        let offset = offsets.get(l.kind.entry as usize).copied().unwrap_or(0);
        RawLine {
            kind: (offset + u32::from(l.kind.index)) as u16,
            payer: match l.payer {
                Payer::Customer => 0,
                Payer::Government => 1,
                Payer::Employer => 2,
            },
            quantity: raw(l.quantity),
            unit_price: raw(l.unit_price),
            amount: raw(l.amount),
            season_amount: l.season_amount.map_or((0, 0), raw),
        }
    }
}

/// Turns an accumulated customer-day into its result.
pub(super) fn finish(day: &DayInput, acc: DayBill) -> Result<Bill, BillError> {
    if let Some(e) = acc.error {
        return Err(*e);
    }
    // The totals were kept in fen with checked arithmetic as the lines came in (`apply`, which
    // also checked that the sum over payers fits), so nothing here can overflow.
    let t = acc.totals;
    let total = t
        .customer
        .saturating_add(t.government)
        .saturating_add(t.employer);
    let by_payer = PayerTotals {
        customer: Decimal::new(t.customer, 2),
        government: Decimal::new(t.government, 2),
        employer: Decimal::new(t.employer, 2),
    };
    Ok(Bill {
        date: day.date,
        lines: acc.lines,
        total: Decimal::new(total, 2),
        by_payer,
        season: acc.season.map(season_from_wit),
    })
}

impl Evaluator {
    /// [`Self::bill_error`], boxed for a [`DayBill`].
    pub(super) fn boxed_error(
        &self,
        e: Option<usize>,
        day: &DayInput,
        kind: BillErrorKind,
    ) -> Box<BillError> {
        Box::new(self.bill_error(e, day, kind))
    }

    /// A bill error naming the chain's company, entry `e`'s plugin and the customer-day. `e` is
    /// `None` for an error in the input itself (a value the contract cannot carry), which names
    /// no plugin.
    pub(super) fn bill_error(
        &self,
        e: Option<usize>,
        day: &DayInput,
        kind: BillErrorKind,
    ) -> BillError {
        let (plugin, plugin_version) = match e.and_then(|e| self.slots.get(e)) {
            Some(s) => (s.name.clone(), s.version.clone()),
            None => (String::new(), String::new()),
        };
        BillError {
            company: self.chain.company().to_string(),
            customer: day.customer.clone(),
            date: day.date,
            plugin,
            plugin_version,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use super::*;
    use crate::model::{LineCategory, LineKind};

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// A line of kind `index` of chain entry `entry`.
    fn line(entry: u32, index: u16, payer: Payer, season_amount: Option<&str>) -> BillLine {
        BillLine {
            kind: Arc::new(LineKind {
                plugin: "area-tariff".into(),
                plugin_version: "1.0.0".into(),
                code: "heat".into(),
                description: "Heating".into(),
                unit: "m2".into(),
                category: LineCategory::Heating,
                entry,
                index,
            }),
            quantity: d("60.5"),
            unit_price: d("38.32"),
            amount: d("2318.36"),
            payer,
            season_amount: season_amount.map(d),
        }
    }

    #[test]
    fn a_prior_lines_kind_is_renumbered_by_its_entrys_offset() {
        // Entry 0 announced 3 kinds and entry 1 two: entry 1's kinds are 3 and 4 in the chain's
        // list of prior kinds, entry 2's start at 5.
        let offsets = [0, 3, 5];
        let kind = |entry, index| RawLine::of(&line(entry, index, Payer::Customer, None), &offsets);
        assert_eq!(kind(0, 2).kind, 2);
        assert_eq!(kind(1, 0).kind, 3);
        assert_eq!(kind(1, 1).kind, 4);
        assert_eq!(kind(2, 0).kind, 5);
        // An entry with no offset yet (the single-day path passes none) counts from 0.
        assert_eq!(RawLine::of(&line(1, 1, Payer::Customer, None), &[]).kind, 1);
    }

    #[test]
    fn a_prior_lines_payer_and_decimals_cross_exactly() {
        let raw = RawLine::of(&line(0, 0, Payer::Government, Some("700.00")), &[0]);
        assert_eq!(raw.payer, 1);
        assert_eq!(raw.quantity, (605, 1));
        assert_eq!(raw.unit_price, (3832, 2));
        assert_eq!(raw.amount, (231_836, 2));
        assert_eq!(raw.season_amount, (70_000, 2));
        let raw = RawLine::of(&line(0, 0, Payer::Employer, None), &[0]);
        assert_eq!((raw.payer, raw.season_amount), (2, (0, 0)));
    }

    #[test]
    fn a_finished_bill_sums_its_payers_and_an_error_wins() {
        let mut totals = Totals::default();
        assert!(totals.add(Payer::Customer, 231_836).is_ok());
        assert!(totals.add(Payer::Government, 70_000).is_ok());
        let day = DayInput::new("c1", chrono::NaiveDate::from_ymd_opt(2025, 10, 20).unwrap());
        let bill = finish(
            &day,
            DayBill {
                lines: vec![line(0, 0, Payer::Customer, None)],
                season: None,
                totals,
                error: None,
            },
        )
        .unwrap();
        assert_eq!(bill.total, d("3018.36"));
        assert_eq!(bill.by_payer.customer, d("2318.36"));
        assert_eq!(bill.by_payer.government, d("700.00"));
        assert_eq!(bill.lines.len(), 1);

        let error = BillError {
            company: "harbin".into(),
            customer: "c1".into(),
            date: day.date,
            plugin: String::new(),
            plugin_version: String::new(),
            kind: BillErrorKind::NoChain,
        };
        let failed = DayBill {
            lines: vec![line(0, 0, Payer::Customer, None)],
            season: None,
            totals: Totals::default(),
            error: Some(Box::new(error.clone())),
        };
        assert_eq!(finish(&day, failed).unwrap_err(), error);
    }
}
