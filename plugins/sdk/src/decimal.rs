//! Exact money: the contract's [`WitDecimal`] and `rust_decimal`'s [`Decimal`], rounding to the
//! fen, and the cumulative spread of a season fee over its days.
//!
//! Rounding is ROUND_HALF_UP (四舍五入) everywhere, which for signed amounts is
//! [`RoundingStrategy::MidpointAwayFromZero`]: 0.125 → 0.13 and −0.125 → −0.13, so a refund of a
//! charge is exactly the negated charge.
//!
//! The season spread works in whole fen with integer arithmetic: it is exact, costs two integer
//! divisions per day (no decimal division on the hot path), and the days of a season add up to
//! the season fee by construction.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::{RuleError, WitDecimal};

/// The largest scale the contract allows (`units × 10^-18`).
pub const MAX_SCALE: u8 = 18;

/// Why a value cannot cross the boundary as a [`WitDecimal`], or be read from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// More than 18 decimals (after dropping trailing zeros).
    ScaleTooLarge(u32),
    /// The units do not fit a signed 64-bit integer.
    OutOfRange,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecimalError::ScaleTooLarge(s) => {
                write!(
                    f,
                    "has {s} decimals, more than the {MAX_SCALE} the contract allows"
                )
            }
            DecimalError::OutOfRange => f.write_str("is too large for the contract's decimal"),
        }
    }
}

impl std::error::Error for DecimalError {}

impl WitDecimal {
    /// Zero.
    pub const ZERO: WitDecimal = WitDecimal { units: 0, scale: 0 };

    /// The exact value as a [`Decimal`]. Fails when `scale` is above 18 (a malformed input).
    #[inline]
    pub fn to_decimal(self) -> Result<Decimal, DecimalError> {
        if self.scale > MAX_SCALE {
            return Err(DecimalError::ScaleTooLarge(u32::from(self.scale)));
        }
        Ok(Decimal::new(self.units, u32::from(self.scale)))
    }

    /// Like `WitDecimal::try_from`, but rounds (half away from zero) to 18 decimals instead of
    /// failing: for informative values such as a unit price derived by division.
    pub fn from_decimal_rounded(d: Decimal) -> Result<WitDecimal, DecimalError> {
        WitDecimal::try_from(
            d.round_dp_with_strategy(u32::from(MAX_SCALE), RoundingStrategy::MidpointAwayFromZero),
        )
    }

    /// Whether the value is a whole number of fen (at most two decimals after dropping trailing
    /// zeros), as every line amount must be.
    pub fn is_whole_fen(self) -> bool {
        if self.scale <= 2 {
            return true;
        }
        match 10i64.checked_pow(u32::from(self.scale) - 2) {
            Some(p) => self.units % p == 0,
            None => self.units == 0,
        }
    }
}

impl TryFrom<Decimal> for WitDecimal {
    type Error = DecimalError;

    /// Exact: fails rather than round when more than 18 decimals remain after dropping trailing
    /// zeros, or when the units do not fit `i64`.
    #[inline]
    fn try_from(d: Decimal) -> Result<WitDecimal, DecimalError> {
        let d = if d.scale() > u32::from(MAX_SCALE) {
            d.normalize()
        } else {
            d
        };
        if d.scale() > u32::from(MAX_SCALE) {
            return Err(DecimalError::ScaleTooLarge(d.scale()));
        }
        let units = i64::try_from(d.mantissa()).map_err(|_| DecimalError::OutOfRange)?;
        Ok(WitDecimal {
            units,
            // At most 18 here.
            scale: d.scale() as u8,
        })
    }
}

impl fmt::Display for WitDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_decimal() {
            Ok(d) => fmt::Display::fmt(&d, f),
            Err(_) => write!(f, "{}e-{}", self.units, self.scale),
        }
    }
}

impl FromStr for WitDecimal {
    type Err = String;

    /// Parses "12.56", "-3.77", "0": exact, at most 18 decimals.
    fn from_str(s: &str) -> Result<WitDecimal, String> {
        let d = Decimal::from_str_exact(s.trim())
            .map_err(|e| format!("{s:?} is not a decimal number: {e}"))?;
        WitDecimal::try_from(d).map_err(|e| format!("{s:?} {e}"))
    }
}

impl From<i64> for WitDecimal {
    fn from(units: i64) -> WitDecimal {
        WitDecimal { units, scale: 0 }
    }
}

/// Reads an input decimal, naming the field in the error ([`RuleError::InvalidInput`]).
#[inline]
pub fn input(d: WitDecimal, field: &str) -> Result<Decimal, RuleError> {
    d.to_decimal()
        .map_err(|e| RuleError::InvalidInput(format!("the input `{field}` {e}")))
}

/// Converts an output value, naming it in the error ([`RuleError::InvalidInput`]: only absurd
/// inputs make an output unrepresentable).
#[inline]
pub fn output(d: Decimal, what: &str) -> Result<WitDecimal, RuleError> {
    WitDecimal::try_from(d).or_else(|e| match e {
        // An informative value (a unit price from a division) may carry more digits than the
        // contract's scale; only amounts must be exact, and those have two decimals.
        DecimalError::ScaleTooLarge(_) => WitDecimal::from_decimal_rounded(d)
            .map_err(|e| RuleError::InvalidInput(format!("the {what} {d} {e}"))),
        DecimalError::OutOfRange => Err(RuleError::InvalidInput(format!("the {what} {d} {e}"))),
    })
}

/// Rounds to the fen (0.01) with ROUND_HALF_UP (half away from zero).
#[inline]
pub fn round_fen(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// A decimal rounded to the fen, as a whole number of fen (12.56 → 1256).
#[inline]
pub fn to_fen(d: Decimal) -> Result<i128, RuleError> {
    let scale = d.scale();
    let m = d.mantissa();
    if scale <= 2 {
        // Exact: scale up (cannot overflow: |m| < 2^96).
        return Ok(m * POW10[(2 - scale) as usize]);
    }
    Ok(div_round(m, POW10[(scale - 2) as usize]))
}

/// A whole number of fen as a decimal with two decimals (1256 → 12.56).
#[inline]
pub fn from_fen(fen: i128) -> Decimal {
    Decimal::from_i128_with_scale(fen, 2)
}

/// A whole number of fen as the contract's decimal, `{units: fen, scale: 2}`.
#[inline]
pub fn fen_to_wit(fen: i128) -> Result<WitDecimal, RuleError> {
    let units = i64::try_from(fen).map_err(|_| {
        RuleError::InvalidInput(format!("the amount {} is too large", from_fen(fen)))
    })?;
    Ok(WitDecimal { units, scale: 2 })
}

/// `round_fen(a × b)` as a whole number of fen: exact, and computed with one integer
/// multiplication and one integer division when the operands have at most 18 significant
/// digits (every realistic area, price and reading), which is several times faster than
/// `Decimal` multiplication and rounding on the per-customer path.
#[inline]
pub fn mul_fen(a: Decimal, b: Decimal) -> Result<i128, RuleError> {
    let (ma, mb) = (a.mantissa(), b.mantissa());
    if ma.unsigned_abs() < (1 << 62) && mb.unsigned_abs() < (1 << 62) {
        // |ma × mb| < 2^124: no overflow.
        let m = ma * mb;
        let scale = a.scale() + b.scale();
        if scale <= 2 {
            return Ok(m * POW10[(2 - scale) as usize]);
        }
        if let Some(&p) = POW10.get((scale - 2) as usize) {
            return Ok(div_round(m, p));
        }
    }
    let product = a
        .checked_mul(b)
        .ok_or_else(|| RuleError::InvalidInput(format!("the product {a} × {b} is too large")))?;
    to_fen(product)
}

/// Powers of ten that fit an `i128` (10^0 ..= 10^38).
const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `round(a / b)` half away from zero, for `b > 0`.
#[inline]
fn div_round(a: i128, b: i128) -> i128 {
    // Fast path in 64 bits: realistic amounts in fen × a day index fit easily, and 128-bit
    // division is a library call on wasm32.
    if let (Ok(a), Ok(b)) = (i64::try_from(a), i64::try_from(b))
        && a.unsigned_abs() < (1 << 61)
        && b < (1 << 61)
    {
        let q = (2 * a.abs() + b) / (2 * b);
        return i128::from(if a < 0 { -q } else { q });
    }
    // |a| < 2^126 here in every caller, so 2|a| + b does not overflow.
    let q = (2 * a.abs() + b) / (2 * b);
    if a < 0 { -q } else { q }
}

/// [`cumulative_share`] in whole fen: the share of day `k` of a season fee of `total` fen.
#[inline]
pub fn cumulative_share_fen(total: i128, k: u32, n: u32) -> Result<i128, RuleError> {
    if n == 0 || k == 0 || k > n {
        return Err(RuleError::InvalidInput(format!(
            "the season day index {k} is not within 1..={n}"
        )));
    }
    if total.unsigned_abs() >= (1 << 90) {
        return Err(RuleError::InvalidInput(format!(
            "the amount {} is too large to spread over a season",
            from_fen(total)
        )));
    }
    // |total × k| < 2^122.
    let (k, n) = (i128::from(k), i128::from(n));
    Ok(div_round(total * k, n) - div_round(total * (k - 1), n))
}

/// [`daily_rate`] in whole fen.
#[inline]
pub fn daily_rate_fen(total: i128, n: u32) -> Result<i128, RuleError> {
    if n == 0 {
        return Err(RuleError::InvalidInput(
            "the season has 0 days: no daily rate".into(),
        ));
    }
    if total.unsigned_abs() >= (1 << 120) {
        return Err(RuleError::InvalidInput("the amount is too large".into()));
    }
    Ok(div_round(total, i128::from(n)))
}

/// The share of day `k` (1-based) of a season fee `total` spread over `n` days by cumulative
/// rounding, `round(T·k/N) − round(T·(k−1)/N)` (docs/domain.md, "Money and rounding").
///
/// `total` is first rounded to the fen (a season fee is an amount of money); the `n` shares then
/// add up to it exactly, each is within a fen of `T/N`, and each day is computed alone.
/// Example: `cumulative_share(2299.20, k, 183)` is 12.56, 12.57, 12.56 for k = 1, 2, 3.
///
/// Fails with [`RuleError::InvalidInput`] unless `1 <= k <= n`.
#[inline]
pub fn cumulative_share(total: Decimal, k: u32, n: u32) -> Result<Decimal, RuleError> {
    Ok(from_fen(cumulative_share_fen(to_fen(total)?, k, n)?))
}

/// The season's daily rate `round_fen(T/N)`, for early-start and extension days charged at the
/// season's rate. `total` is rounded to the fen first, as in [`cumulative_share`].
#[inline]
pub fn daily_rate(total: Decimal, n: u32) -> Result<Decimal, RuleError> {
    Ok(from_fen(daily_rate_fen(to_fen(total)?, n)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn round_half_up_both_signs() {
        assert_eq!(round_fen(d("3.768")), d("3.77"));
        assert_eq!(round_fen(d("1.005")), d("1.01"));
        assert_eq!(round_fen(d("-1.005")), d("-1.01"));
        assert_eq!(round_fen(d("1.0049")), d("1.00"));
        assert_eq!(round_fen(d("1.1496")), d("1.15"));
    }

    #[test]
    fn w1_first_days_and_whole_season() {
        let t = d("2299.20");
        let days: Vec<Decimal> = (1..=183)
            .map(|k| cumulative_share(t, k, 183).unwrap())
            .collect();
        assert_eq!(&days[..3], &[d("12.56"), d("12.57"), d("12.56")]);
        assert_eq!(days.iter().sum::<Decimal>(), t);
        assert!(days.iter().all(|x| *x == d("12.56") || *x == d("12.57")));
    }

    #[test]
    fn w2_first_days_and_whole_season() {
        let t = d("1920");
        let days: Vec<Decimal> = (1..=121)
            .map(|k| cumulative_share(t, k, 121).unwrap())
            .collect();
        assert_eq!(&days[..3], &[d("15.87"), d("15.87"), d("15.86")]);
        assert_eq!(days.iter().sum::<Decimal>(), t);
    }

    #[test]
    fn spread_sums_exactly_for_awkward_totals_and_signs() {
        for (t, n) in [
            ("0.01", 183),
            ("689.76", 184),
            ("-9.42", 121),
            ("123456.78", 151),
        ] {
            let t = d(t);
            let sum: Decimal = (1..=n).map(|k| cumulative_share(t, k, n).unwrap()).sum();
            assert_eq!(sum, t, "{t} over {n}");
        }
        // A total with more than two decimals is rounded to the fen first.
        let sum: Decimal = (1..=3)
            .map(|k| cumulative_share(d("1.005"), k, 3).unwrap())
            .sum();
        assert_eq!(sum, d("1.01"));
    }

    #[test]
    fn spread_rejects_bad_indices() {
        assert!(cumulative_share(d("1"), 0, 3).is_err());
        assert!(cumulative_share(d("1"), 4, 3).is_err());
        assert!(cumulative_share(d("1"), 1, 0).is_err());
        assert!(daily_rate(d("1"), 0).is_err());
    }

    #[test]
    fn daily_rate_rounds_half_up() {
        assert_eq!(daily_rate(d("2299.20"), 183).unwrap(), d("12.56"));
        assert_eq!(daily_rate(d("689.76"), 183).unwrap(), d("3.77"));
        assert_eq!(daily_rate(d("0.05"), 2).unwrap(), d("0.03"));
        assert_eq!(daily_rate(d("-0.05"), 2).unwrap(), d("-0.03"));
    }

    #[test]
    fn mul_fen_matches_decimal_rounding() {
        for (a, b) in [
            ("60.00", "38.32"),
            ("80.55", "0.18"),
            ("1.20", "44.45"),
            ("1149.60", "0.001"),
            ("-12.56", "0.30"),
            ("0.005", "1"),
            ("-0.005", "1"),
            ("100", "47.197"),
            ("123456789.123456789", "987654321.987654321"),
            ("0.000000000000000001", "0.5"),
        ] {
            let (a, b) = (d(a), d(b));
            assert_eq!(
                from_fen(mul_fen(a, b).unwrap()),
                round_fen(a * b),
                "{a} × {b}"
            );
        }
        assert_eq!(to_fen(d("12.5")).unwrap(), 1250);
        assert_eq!(to_fen(d("-0.125")).unwrap(), -13);
        assert!(mul_fen(Decimal::MAX, Decimal::MAX).is_err());
        assert_eq!(
            fen_to_wit(1256).unwrap(),
            WitDecimal {
                units: 1256,
                scale: 2
            }
        );
    }

    #[test]
    fn wit_conversions() {
        let w = WitDecimal {
            units: 3832,
            scale: 2,
        };
        assert_eq!(w.to_decimal().unwrap(), d("38.32"));
        assert_eq!(WitDecimal::try_from(d("38.32")).unwrap(), w);
        assert_eq!(w.to_string(), "38.32");
        assert_eq!(
            "0.001".parse::<WitDecimal>().unwrap(),
            WitDecimal { units: 1, scale: 3 }
        );
        assert_eq!(
            WitDecimal {
                units: 1,
                scale: 19
            }
            .to_decimal(),
            Err(DecimalError::ScaleTooLarge(19))
        );
        assert_eq!(
            WitDecimal::try_from(Decimal::MAX),
            Err(DecimalError::OutOfRange)
        );
        // Trailing zeros beyond 18 decimals are dropped, not an error.
        let long = Decimal::from_i128_with_scale(5 * 10i128.pow(20), 22);
        assert_eq!(
            WitDecimal::try_from(long).unwrap().to_decimal().unwrap(),
            d("0.05")
        );
        let third = Decimal::ONE / Decimal::from(3);
        assert!(WitDecimal::try_from(third).is_err());
        assert_eq!(WitDecimal::from_decimal_rounded(third).unwrap().scale, 18);
        assert!(output(third, "unit price").is_ok());
        assert!(output(Decimal::MAX, "amount").is_err());
        assert!(
            WitDecimal {
                units: 1230,
                scale: 3
            }
            .is_whole_fen()
        );
        assert!(
            !WitDecimal {
                units: 1005,
                scale: 3
            }
            .is_whole_fen()
        );
        assert!(
            WitDecimal {
                units: 0,
                scale: 18
            }
            .is_whole_fen()
        );
    }
}
