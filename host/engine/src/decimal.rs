//! Exact conversions between `rust_decimal::Decimal` and the contract's `decimal`
//! (`units × 10^-scale`, `units: s64`, `scale ≤ 18`).
//!
//! No float anywhere. A conversion either keeps the value exactly or fails with a message; it
//! never rounds. Host → plugin tries the value as it is, then with its trailing zeros removed
//! (`1.500000…` with a huge mantissa may still fit); plugin → host accepts any `units` with
//! `scale ≤ 18`.

use rust_decimal::Decimal;

use crate::bindings::wit;

/// The largest scale the contract allows.
pub const MAX_SCALE: u8 = 18;

/// Powers of ten that fit an `i64` (10^0 ..= 10^18).
const POW10: [i64; 19] = {
    let mut t = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Converts a host decimal to the contract's, exactly.
pub(crate) fn to_wit(d: Decimal) -> Result<wit::Decimal, String> {
    if let Some(w) = try_to_wit(d) {
        return Ok(w);
    }
    try_to_wit(d.normalize()).ok_or_else(|| {
        format!(
            "{d} does not fit the contract's decimal (at most 18 digits after the point and \
             a signed 64-bit integer of digits)"
        )
    })
}

#[inline]
fn try_to_wit(d: Decimal) -> Option<wit::Decimal> {
    let scale = d.scale();
    if scale > u32::from(MAX_SCALE) {
        return None;
    }
    let units = i64::try_from(d.mantissa()).ok()?;
    Some(wit::Decimal {
        units,
        scale: scale as u8,
    })
}

/// Converts the contract's decimal to the host's, exactly; fails when the scale is above 18.
#[inline]
pub(crate) fn from_wit(w: wit::Decimal) -> Result<Decimal, String> {
    if w.scale > MAX_SCALE {
        return Err(format!(
            "decimal {{units: {}, scale: {}}} has a scale above {MAX_SCALE}",
            w.units, w.scale
        ));
    }
    Ok(Decimal::new(w.units, u32::from(w.scale)))
}

/// Converts an amount of money, which must be whole fen, to the host's decimal with scale 2.
#[inline]
pub(crate) fn amount_from_wit(w: wit::Decimal) -> Result<Decimal, String> {
    if w.scale > MAX_SCALE {
        return from_wit(w);
    }
    if w.scale <= 2 {
        // Kept at scale 2, and its digits must still fit the contract's s64 so that the line
        // can be passed on to later plugins exactly.
        let units = w
            .units
            .checked_mul(POW10[usize::from(2 - w.scale)])
            .ok_or_else(|| {
                format!(
                    "amount {} is out of range",
                    Decimal::new(w.units, u32::from(w.scale))
                )
            })?;
        return Ok(Decimal::new(units, 2));
    }
    let div = POW10[usize::from(w.scale - 2)];
    if w.units % div != 0 {
        return Err(format!(
            "amount {} is not a whole number of fen (0.01); round it with ROUND_HALF_UP",
            Decimal::new(w.units, u32::from(w.scale))
        ));
    }
    Ok(Decimal::new(w.units / div, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn round_trips_exactly() {
        for s in [
            "0",
            "38.32",
            "-3.77",
            "0.001",
            "123456789012.345678",
            "1e-18",
        ] {
            let v = Decimal::from_scientific(s).unwrap_or_else(|_| d(s));
            let w = to_wit(v).unwrap();
            assert_eq!(from_wit(w).unwrap(), v, "{s}");
        }
    }

    #[test]
    fn trailing_zeros_are_dropped_only_when_needed() {
        let v = d("1.5000000000000000000000");
        let w = to_wit(v).unwrap();
        assert_eq!((w.units, w.scale), (15, 1));
        let w = to_wit(d("38.320")).unwrap();
        assert_eq!((w.units, w.scale), (38320, 3));
    }

    #[test]
    fn out_of_range_fails_loudly() {
        assert!(to_wit(d("0.0000000000000000001")).is_err());
        assert!(to_wit(d("79228162514264337593543950335")).is_err());
        assert!(
            from_wit(wit::Decimal {
                units: 1,
                scale: 19
            })
            .is_err()
        );
    }

    #[test]
    fn amounts_must_be_whole_fen() {
        let a = amount_from_wit(wit::Decimal {
            units: 1256,
            scale: 2,
        })
        .unwrap();
        assert_eq!(a.to_string(), "12.56");
        let a = amount_from_wit(wit::Decimal { units: 3, scale: 0 }).unwrap();
        assert_eq!(a.to_string(), "3.00");
        let a = amount_from_wit(wit::Decimal {
            units: 125600,
            scale: 4,
        })
        .unwrap();
        assert_eq!(a.to_string(), "12.56");
        assert!(
            amount_from_wit(wit::Decimal {
                units: 12561,
                scale: 3
            })
            .is_err()
        );
    }
}
