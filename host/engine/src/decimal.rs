//! Exact conversions between `rust_decimal::Decimal` and the contract's `decimal`
//! (`units × 10^-scale`, `units: s64`, `scale ≤ 18`).
//!
//! No float anywhere. A conversion either keeps the value exactly or fails with a message; it
//! never rounds. Host → plugin tries the value as it is, then with its trailing zeros removed
//! (`1.500000…` with a huge mantissa may still fit); plugin → host is read column by column
//! (`columns`).

use rust_decimal::Decimal;

use crate::bindings::wit;

/// The largest scale the contract allows.
pub const MAX_SCALE: u8 = 18;

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
            assert_eq!(Decimal::new(w.units, u32::from(w.scale)), v, "{s}");
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
    }
}
