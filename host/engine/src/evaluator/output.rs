//! Output checks: what a plugin returned is checked before any of it reaches a bill (one
//! result per input, the line limit, announced line kinds, payer codes, whole-fen amounts, a
//! season only from a season plugin, rule-error sizes, each line's invariants and balanced
//! subsidies), and applied to the customer-days' bills.
//!
//! Both paths (the batch call and the single-day dry run, whose result is first made a one-row
//! batch output) end in `apply_batch`, so they are held to the same checks; a
//! violation is `invalid-output` naming the plugin.
use std::sync::Arc;

use rust_decimal::Decimal;

use super::bill::DayBill;
use super::instance::EntryState;
use super::{Evaluator, invalid};
use crate::bindings::wit;
use crate::columns;
use crate::error::BillErrorKind;
use crate::invariants::{self, Broken, LineFacts};
use crate::model::{BillLine, DayInput, LineCategory, LineKind, Payer, PluginKind, RuleErrorKind};

/// One customer-day's part of a `batch-output`.
struct Row<'o> {
    lines: &'o wit::LineColumnResult,
    range: std::ops::Range<usize>,
    refusal: Option<wit::RuleError>,
    season: Option<(&'o wit::SeasonColumn, usize)>,
}

impl Evaluator {
    /// Checks one call's output and applies it to the customer-days `idx`. Returns why the
    /// output as a whole is unreadable; a problem with one customer-day's part fails that
    /// customer-day alone.
    pub(super) fn apply_batch(
        &self,
        e: usize,
        days: &[&DayInput],
        accs: &mut [DayBill],
        idx: &[usize],
        output: wit::BatchOutput,
    ) -> Result<(), String> {
        columns::check_shape(&output, idx.len())?;
        let EntryState::Ready(live) = &self.slots[e].state else {
            return Ok(());
        };
        let wit::BatchOutput {
            lines,
            errors,
            season,
        } = output;
        let mut errors = errors.into_iter().peekable();
        let mut next = 0;
        for (j, &i) in idx.iter().enumerate() {
            let start = next;
            while next < lines.rows.len() && lines.rows[next] as usize == j {
                next += 1;
            }
            let refusal = errors.next_if(|x| x.row as usize == j).map(|x| x.error);
            if accs[i].error.is_some() {
                continue;
            }
            let row = Row {
                lines: &lines,
                range: start..next,
                refusal,
                season: season.as_ref().map(|s| (s, j)),
            };
            if let Err(kind) = self.apply(e, &live.kinds, &mut accs[i], row) {
                accs[i].error = Some(self.boxed_error(Some(e), days[i], kind));
            }
        }
        Ok(())
    }

    /// Checks one customer-day's part of an output and adds its lines (or returns why it fails
    /// the customer-day).
    fn apply(
        &self,
        e: usize,
        kinds: &[Arc<LineKind>],
        acc: &mut DayBill,
        row: Row<'_>,
    ) -> Result<(), BillErrorKind> {
        let limits = self.engine.limits();
        if let Some(rule) = row.refusal {
            if !row.range.is_empty() {
                return Err(invalid(
                    "a customer-day has both lines and a rule error; the contract allows one or \
                     the other"
                        .to_string(),
                ));
            }
            let (rule, message) = match rule {
                wit::RuleError::BadParams(m) => (RuleErrorKind::BadParams, m),
                wit::RuleError::MissingInput(m) => (RuleErrorKind::MissingInput, m),
                wit::RuleError::InvalidInput(m) => (RuleErrorKind::InvalidInput, m),
                wit::RuleError::Unsupported(m) => (RuleErrorKind::Unsupported, m),
            };
            if message.len() > limits.max_message_bytes {
                return Err(invalid(format!(
                    "a rule error ({rule}) with a message of {} bytes; the limit is {} \
                     (limits.max_message_bytes)",
                    message.len(),
                    limits.max_message_bytes
                )));
            }
            return Err(BillErrorKind::Rule {
                kind: rule,
                message,
            });
        }
        if let Some((column, j)) = row.season {
            if self.slots[e].kind != PluginKind::Season {
                return Err(invalid(format!(
                    "a {} plugin returned season positions; only season plugins may",
                    self.slots[e].kind
                )));
            }
            let season = columns::season_at(column, j).map_err(invalid)?;
            check_season(&season)?;
            acc.season = Some(season);
        }
        let count = row.range.len();
        let total = acc.lines.len() + count;
        if total > limits.max_lines_per_day {
            return Err(invalid(format!(
                "{count} lines, which makes {total} for this customer-day; the limit is {} \
                 (limits.max_lines_per_day)",
                limits.max_lines_per_day
            )));
        }
        let l = row.lines;
        acc.lines.reserve(count);
        let mut subsidy: i128 = 0;
        for (n, k) in row.range.enumerate() {
            let Some(kind) = kinds.get(usize::from(l.kinds[k])) else {
                return Err(invalid(format!(
                    "line {n} names line kind {}, but configure announced {} kinds",
                    l.kinds[k],
                    kinds.len()
                )));
            };
            let payer = match l.payers[k] {
                0 => Payer::Customer,
                1 => Payer::Government,
                2 => Payer::Employer,
                p => return Err(invalid(format!("line {n}: payer code {p} is not a payer"))),
            };
            let amount =
                columns::amount_at(&l.amount, k).map_err(|m| invalid(format!("line {n}: {m}")))?;
            // Whole fen at scale 2 (`amount_at`), made from an s64: the mantissa is the fen.
            let fen = amount.mantissa() as i64;
            let season_amount = if l.season_amount.units[k] == 0 {
                None
            } else {
                Some(
                    columns::amount_at(&l.season_amount, k)
                        .map_err(|m| invalid(format!("line {n}: season amount: {m}")))?,
                )
            };
            let facts = LineFacts {
                category: kind.category,
                payer,
                quantity: (l.quantity.units[k], l.quantity.scales[k]),
                unit_price: (l.unit_price.units[k], l.unit_price.scales[k]),
                amount_fen: fen,
                season_amount_fen: season_amount.map(|t| t.mantissa() as i64),
            };
            let line = BillLine {
                kind: kind.clone(),
                quantity: columns::decimal_at(&l.quantity, k),
                unit_price: columns::decimal_at(&l.unit_price, k),
                amount,
                payer,
                season_amount,
            };
            invariants::check_line(&facts)
                .and_then(|()| acc.totals.add(payer, fen))
                .and_then(|()| acc.totals.total().map(drop))
                .map_err(|b| broken(n, &line, b))?;
            if kind.category == LineCategory::Subsidy {
                // Within the range of an s64 by `amount-range` times `max_lines_per_day`.
                subsidy += i128::from(fen);
            }
            acc.lines.push(line);
        }
        if subsidy != 0 {
            return Err(invalid(format!(
                "the subsidy lines sum to {}, not 0.00; breaks the invariant {}: {}",
                Decimal::from_i128_with_scale(subsidy, 2),
                invariants::SUBSIDY_BALANCED.invariant,
                invariants::SUBSIDY_BALANCED.rule
            )));
        }
        Ok(())
    }
}

/// `invalid-output` for line `n` that broke an invariant: the invariant's name and rule, and the
/// line as the plugin wrote it.
#[cold]
fn broken(n: usize, l: &BillLine, b: Broken) -> BillErrorKind {
    invalid(format!(
        "line {n} (code {:?}, {}, payer {}: quantity {} × unit price {}, amount {}) breaks the \
         invariant {}: {}",
        l.kind.code,
        l.kind.category.as_str(),
        l.payer.as_str(),
        l.quantity,
        l.unit_price,
        l.amount,
        b.invariant,
        b.rule
    ))
}

/// Checks a season position a season plugin returned: a heating day's index is 1..=N with
/// N ≥ 1, an outside day's index 0.
fn check_season(s: &wit::SeasonDay) -> Result<(), BillErrorKind> {
    let ok = match s.phase {
        wit::SeasonPhase::Outside => s.day_index == 0,
        _ => s.season_days >= 1 && s.day_index >= 1 && s.day_index <= s.season_days,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "season position {:?} day {} of {}: a heating day's index must be 1..=N with N ≥ 1, \
             and an outside day's index 0",
            s.phase, s.day_index, s.season_days
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::truncate;
    use super::*;

    #[test]
    fn truncate_cuts_at_a_character_boundary_and_marks_the_cut() {
        let cut = |s: &str, max| {
            let mut s = s.to_string();
            truncate(&mut s, max);
            s
        };
        // "é" is bytes 1..3: a cut at 2 would split it.
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("héllo", 3), "hé…");
        assert_eq!(cut("héllo", 6), "héllo");
        assert_eq!(cut("héllo", 5), "héll…");
    }

    #[test]
    fn a_season_position_must_be_in_its_season() {
        let at = |phase, day_index, season_days| {
            check_season(&wit::SeasonDay {
                phase,
                day_index,
                season_days,
                charged: false,
            })
        };
        use wit::SeasonPhase::*;
        assert!(at(Regular, 1, 151).is_ok());
        assert!(at(Extended, 151, 151).is_ok());
        assert!(at(Outside, 0, 0).is_ok());
        assert!(at(Regular, 0, 151).is_err());
        assert!(at(Early, 152, 151).is_err());
        assert!(at(Regular, 1, 0).is_err());
        assert!(at(Outside, 3, 151).is_err());
    }
}
