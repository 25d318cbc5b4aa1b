//! What every bill line must satisfy, whoever wrote the plugin that produced it.
//!
//! The contract (`wit/rules.wit`, `line-category`) promises integrators and operators that a
//! bill's lines mean what their category says. A plugin is third-party code, so the host checks
//! each promise on every line it accepts; a line that breaks one fails its customer-day with
//! `invalid-output` naming the invariant (a stable name below), the plugin and the line. The
//! invariants are deliberately few and cheap (a handful of integer comparisons per line): they
//! catch the ways a plugin can bill wrongly *without any error*, not every possible tariff bug.
//!
//! | invariant | rule | why |
//! |---|---|---|
//! | `amount-range` | \|amount\| ≤ 100,000,000,000.00 | no daily line is near it; every sum of a bill's lines then fits an `s64` of fen and a JavaScript number exactly |
//! | `quantity-range` | \|quantity\| ≤ 100,000,000,000 | no day's area, heat or count is near it; a quantity is printed on the bill and stored, so an absurd one (−9,223,372,036,854,775,808 m²) must not pass for a price's reason |
//! | `unit-price-range` | \|unit price\| ≤ 100,000,000,000 | the same for the price: no unit costs near that much |
//! | `charge-not-negative` | heating, consumption, base-fee, late-fee: amount ≥ 0 | a charge that lowers the bill is a refund or a subsidy, and must say so |
//! | `refund-not-positive` | refund: amount ≤ 0 | a refund gives money back |
//! | `subsidy-sign` | subsidy: customer ≤ 0, government and employer ≥ 0 | a subsidy moves a charge from the customer to a third party |
//! | `subsidy-balanced` | a plugin's subsidy lines of one customer-day sum to 0.00 | what the customer is relieved of, the third party pays; no more, no less |
//! | `late-fee-payer` | late-fee: payer customer | a late fee falls on the customer in arrears |
//! | `amount-within-price` | \|amount\| ≤ \|quantity × unit price\| (rounded up to the fen) + 0.01 | the unit price says what the quantity costs; a day's share of a season fee is less, never more (one fen for rounding) |
//! | `season-share` | a line with a season amount (contract 0.2.0): the amount has its sign (or is 0.00) and is no larger; the season amount is within `amount-range` | a day's share of a season fee is a part of it |
//! | `total-range` | every payer's total, and the bill's, fits an `s64` of fen | checked arithmetic; unreachable while `amount-range` holds, kept as the last guard |
//!
//! Heating lines billed to the government or an employer are allowed on purpose: a payer split
//! (part of a price paid by the state, e.g. Shenyang's 2.70 of 26.00 元/m²) is a heating charge
//! whose payer is the government. `other` lines may have either sign (adjustments), within
//! `amount-range` and `amount-within-price`.

use crate::model::{LineCategory, Payer};

/// The largest magnitude of a line's amount, in fen: 100,000,000,000.00 元 (`amount-range`).
pub const MAX_LINE_AMOUNT_FEN: i64 = 10_000_000_000_000;

/// The largest magnitude of a line's quantity, and of its unit price, in their units:
/// 100,000,000,000 (`quantity-range`, `unit-price-range`), as the amount's bound in 元.
pub const MAX_LINE_QUANTITY: i64 = 100_000_000_000;

/// One line as the checks see it: raw decimals (units, scale) straight from the output columns,
/// the amount already in fen.
pub(crate) struct LineFacts {
    pub category: LineCategory,
    pub payer: Payer,
    pub quantity: (i64, u8),
    pub unit_price: (i64, u8),
    pub amount_fen: i64,
    /// The season amount in fen, when the line is a day's share of a season fee (0.2.0).
    pub season_amount_fen: Option<i64>,
}

/// A broken invariant: its stable name and what the line did.
pub(crate) struct Broken {
    pub invariant: &'static str,
    pub rule: &'static str,
}

/// Checks the invariants of one line on its own (`subsidy-balanced` and `total-range` span lines;
/// see [`Totals`]).
pub(crate) fn check_line(l: &LineFacts) -> Result<(), Broken> {
    let a = l.amount_fen;
    if a.unsigned_abs() > MAX_LINE_AMOUNT_FEN as u64 {
        return Err(Broken {
            invariant: "amount-range",
            rule: "a line's amount is at most 100000000000.00 in magnitude",
        });
    }
    if !within_magnitude(l.quantity, MAX_LINE_QUANTITY) {
        return Err(Broken {
            invariant: "quantity-range",
            rule: "a line's quantity is at most 100000000000 in magnitude",
        });
    }
    if !within_magnitude(l.unit_price, MAX_LINE_QUANTITY) {
        return Err(Broken {
            invariant: "unit-price-range",
            rule: "a line's unit price is at most 100000000000 in magnitude",
        });
    }
    use LineCategory::*;
    match l.category {
        Heating | Consumption | BaseFee | LateFee if a < 0 => {
            return Err(Broken {
                invariant: "charge-not-negative",
                rule: "a heating, consumption, base-fee or late-fee line is a charge: its amount \
                       is 0.00 or more (money given back is a refund or a subsidy line)",
            });
        }
        Refund if a > 0 => {
            return Err(Broken {
                invariant: "refund-not-positive",
                rule: "a refund line gives money back: its amount is 0.00 or less",
            });
        }
        Subsidy if (l.payer == Payer::Customer) != (a <= 0) && a != 0 => {
            return Err(Broken {
                invariant: "subsidy-sign",
                rule: "a subsidy line is 0.00 or less for the customer, 0.00 or more for the \
                       government or an employer",
            });
        }
        _ => {}
    }
    if l.category == LateFee && l.payer != Payer::Customer {
        return Err(Broken {
            invariant: "late-fee-payer",
            rule: "a late fee is paid by the customer",
        });
    }
    if let Some(t) = l.season_amount_fen
        && (t.unsigned_abs() > MAX_LINE_AMOUNT_FEN as u64
            || a.unsigned_abs() > t.unsigned_abs()
            || (a != 0 && (a < 0) != (t < 0)))
    {
        return Err(Broken {
            invariant: "season-share",
            rule: "a day's share of a season fee has the sign of its season amount (or is 0.00) \
                   and is no larger; the season amount is at most 100000000000.00 in magnitude",
        });
    }
    if !within_price(a, l.quantity, l.unit_price) {
        return Err(Broken {
            invariant: "amount-within-price",
            rule: "a line's amount is at most quantity × unit price in magnitude (plus 0.01 for \
                   rounding)",
        });
    }
    Ok(())
}

/// `|units × 10^-scale| ≤ max`, exactly, in integers.
fn within_magnitude((units, scale): (i64, u8), max: i64) -> bool {
    match 10u128
        .checked_pow(u32::from(scale))
        .and_then(|p| p.checked_mul(max.unsigned_abs().into()))
    {
        Some(bound) => u128::from(units.unsigned_abs()) <= bound,
        // A bound past u128 is past every s64.
        None => true,
    }
}

/// `|amount| ≤ ⌈|quantity × unit price|⌉ + 0.01` (the product rounded up to the fen), exactly,
/// in integers: no decimal arithmetic and no overflow (the product of two `s64` magnitudes fits
/// a `u128`; scales are at most 18 each).
fn within_price(amount_fen: i64, (q, qs): (i64, u8), (p, ps): (i64, u8)) -> bool {
    let product = u128::from(q.unsigned_abs()) * u128::from(p.unsigned_abs());
    let scale = u32::from(qs) + u32::from(ps);
    // The product in fen, rounded up: a plugin may hand over a unit price rounded to the
    // contract's 18 decimal places, a hair below the one it computed with.
    let product_fen = if scale >= 2 {
        product.div_ceil(10u128.pow(scale - 2))
    } else {
        product.saturating_mul(10u128.pow(2 - scale))
    };
    u128::from(amount_fen.unsigned_abs()) <= product_fen.saturating_add(1)
}

/// The running totals of one customer-day, in fen, by payer (checked: `total-range`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub customer: i64,
    pub government: i64,
    pub employer: i64,
}

impl Totals {
    /// Adds a line's amount to its payer's total.
    pub fn add(&mut self, payer: Payer, fen: i64) -> Result<(), Broken> {
        let t = match payer {
            Payer::Customer => &mut self.customer,
            Payer::Government => &mut self.government,
            Payer::Employer => &mut self.employer,
        };
        *t = t.checked_add(fen).ok_or(TOTAL_RANGE)?;
        Ok(())
    }

    /// The bill's total over every payer.
    pub fn total(&self) -> Result<i64, Broken> {
        self.customer
            .checked_add(self.government)
            .and_then(|t| t.checked_add(self.employer))
            .ok_or(TOTAL_RANGE)
    }
}

const TOTAL_RANGE: Broken = Broken {
    invariant: "total-range",
    rule: "a bill's totals fit a signed 64-bit number of fen",
};

/// The `subsidy-balanced` rule, checked over one plugin's lines for one customer-day.
pub(crate) const SUBSIDY_BALANCED: Broken = Broken {
    invariant: "subsidy-balanced",
    rule: "a plugin's subsidy lines of one customer-day sum to 0.00: what the customer is \
           relieved of, a third party pays",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(category: LineCategory, payer: Payer, q: i64, p: i64, a: i64) -> LineFacts {
        LineFacts {
            category,
            payer,
            quantity: (q, 2),
            unit_price: (p, 2),
            amount_fen: a,
            season_amount_fen: None,
        }
    }

    #[test]
    fn a_season_share_is_a_part_of_its_season_amount() {
        let share = |a: i64, t: i64| LineFacts {
            season_amount_fen: Some(t),
            ..facts(LineCategory::Heating, Payer::Customer, 6000, 3832, a)
        };
        assert_eq!(broken(share(1256, 229_920)), "ok");
        assert_eq!(broken(share(0, 229_920)), "ok");
        assert_eq!(broken(share(229_921, 229_920)), "season-share");
        assert_eq!(broken(share(1256, -229_920)), "season-share");
        assert_eq!(broken(share(1256, MAX_LINE_AMOUNT_FEN + 1)), "season-share");
    }

    fn broken(l: LineFacts) -> &'static str {
        check_line(&l).err().map_or("ok", |b| b.invariant)
    }

    #[test]
    fn each_invariant_by_name() {
        use LineCategory::*;
        use Payer::*;
        // 60.00 m² at 38.32/m²: a day's share (12.56) and the whole season (2299.20) pass.
        assert_eq!(broken(facts(Heating, Customer, 6000, 3832, 1256)), "ok");
        assert_eq!(broken(facts(Heating, Customer, 6000, 3832, 229920)), "ok");
        assert_eq!(broken(facts(Heating, Customer, 6000, 3832, 229921)), "ok");
        assert_eq!(
            broken(facts(Heating, Customer, 6000, 3832, 229922)),
            "amount-within-price"
        );
        assert_eq!(broken(facts(Heating, Government, 100, 100, 100)), "ok");
        assert_eq!(
            broken(facts(Heating, Customer, 100, 100, -100)),
            "charge-not-negative"
        );
        assert_eq!(
            broken(facts(LateFee, Government, 100, 100, 1)),
            "late-fee-payer"
        );
        assert_eq!(
            broken(facts(Refund, Customer, 100, 500, 500)),
            "refund-not-positive"
        );
        assert_eq!(broken(facts(Refund, Government, 100, 500, -500)), "ok");
        assert_eq!(broken(facts(Subsidy, Customer, 100, 100, -100)), "ok");
        assert_eq!(
            broken(facts(Subsidy, Customer, 100, 100, 100)),
            "subsidy-sign"
        );
        assert_eq!(
            broken(facts(Subsidy, Employer, 100, 100, -100)),
            "subsidy-sign"
        );
        assert_eq!(broken(facts(Subsidy, Government, 100, 100, 0)), "ok");
        assert_eq!(broken(facts(Other, Customer, 100, 100, -100)), "ok");
        assert_eq!(
            broken(facts(Other, Customer, i64::MAX, i64::MAX, i64::MIN)),
            "amount-range"
        );
        // At the quantity and price bounds, the largest amount passes.
        let max = MAX_LINE_QUANTITY * 100;
        assert_eq!(
            broken(facts(Other, Customer, -max, max, MAX_LINE_AMOUNT_FEN)),
            "ok"
        );
        // Past them, a quantity or a price is refused whatever the amount: the review's
        // −9,223,372,036,854,775,808 × 9.22 = 1.00 heating line.
        let huge = LineFacts {
            quantity: (i64::MIN, 0),
            unit_price: (922, 2),
            ..facts(Heating, Customer, 0, 0, 100)
        };
        assert_eq!(broken(huge), "quantity-range");
        assert_eq!(
            broken(facts(Other, Customer, -max - 1, max, 100)),
            "quantity-range"
        );
        assert_eq!(
            broken(facts(Other, Customer, max, max + 1, 100)),
            "unit-price-range"
        );
        let tiny_by_huge = LineFacts {
            quantity: (1, 18),
            unit_price: (i64::MIN, 0),
            ..facts(Heating, Customer, 0, 0, 100)
        };
        assert_eq!(broken(tiny_by_huge), "unit-price-range");
    }

    #[test]
    fn the_quantity_bound_is_exact_at_every_scale() {
        assert!(within_magnitude((MAX_LINE_QUANTITY, 0), MAX_LINE_QUANTITY));
        assert!(!within_magnitude(
            (MAX_LINE_QUANTITY + 1, 0),
            MAX_LINE_QUANTITY
        ));
        assert!(within_magnitude((-MAX_LINE_QUANTITY, 0), MAX_LINE_QUANTITY));
        // 100000000000.0000001 (scale 7) is over; i64's extremes at scale 18 are ±9.22.
        assert!(!within_magnitude(
            (1_000_000_000_000_000_001, 7),
            MAX_LINE_QUANTITY
        ));
        assert!(within_magnitude(
            (1_000_000_000_000_000_000, 7),
            MAX_LINE_QUANTITY
        ));
        assert!(within_magnitude((i64::MIN, 18), MAX_LINE_QUANTITY));
        assert!(within_magnitude((i64::MAX, 8), MAX_LINE_QUANTITY));
        assert!(!within_magnitude((i64::MAX, 7), MAX_LINE_QUANTITY));
        assert!(!within_magnitude((i64::MIN, 0), MAX_LINE_QUANTITY));
        // Scales past the contract's cannot overflow the check.
        assert!(within_magnitude((i64::MIN, 255), MAX_LINE_QUANTITY));
    }

    #[test]
    fn the_price_bound_is_exact_at_every_scale() {
        // quantity 1 (scale 0) × 0.005 (scale 3) = 0.005: at most 0.01 + 0.01.
        assert!(within_price(1, (1, 0), (5, 3)));
        assert!(within_price(2, (1, 0), (5, 3)));
        assert!(!within_price(3, (1, 0), (5, 3)));
        // 3 × 7 at scale 0: 21.00 = 2100 fen, plus one.
        assert!(within_price(2101, (3, 0), (7, 0)));
        assert!(!within_price(2102, (3, 0), (7, 0)));
        // Scales of 18 each: 1e-36 rounds up to one fen, and one fen of rounding is allowed.
        assert!(within_price(2, (1, 18), (1, 18)));
        assert!(!within_price(3, (1, 18), (1, 18)));
        // A zero price allows only the rounding fen.
        assert!(within_price(-1, (100, 0), (0, 0)));
        assert!(!within_price(-2, (100, 0), (0, 0)));
    }

    #[test]
    fn totals_are_checked() {
        let mut t = Totals::default();
        t.add(Payer::Customer, i64::MAX).ok().unwrap();
        assert_eq!(
            t.add(Payer::Customer, 1).err().map(|b| b.invariant),
            Some("total-range")
        );
        let mut t = Totals::default();
        t.add(Payer::Customer, i64::MAX).ok().unwrap();
        t.add(Payer::Government, 1).ok().unwrap();
        assert!(t.total().is_err());
    }
}
