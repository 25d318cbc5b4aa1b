//! Amounts parsed exactly, digit by digit: no float, no exponent, no locale.

use rust_decimal::Decimal;

/// The most integer digits an amount may have: 13 (ten trillion yuan) keeps any sum of
/// [`crate::Limits::max_rows`] amounts well inside [`Decimal`]'s 28 digits.
const MAX_INTEGER_DIGITS: usize = 13;

/// How an amount may be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    /// The most decimals (2 for amounts; WeChat states fees to 5).
    pub max_scale: u32,
    /// `1,234.56` allowed (groups of three).
    pub thousands: bool,
}

pub(crate) const AMOUNT: Format = Format {
    max_scale: 2,
    thousands: false,
};

/// Parses `s` (already trimmed) as an amount: an optional sign, digits, and at most
/// `max_scale` decimals. The result has at least two decimals (`5` is `5.00`). The error says
/// what is expected.
pub(crate) fn parse(s: &str, format: Format) -> Result<Decimal, String> {
    let expected = || {
        format!(
            "not an amount: write digits with at most {} decimals and a point, like 1200.50{}",
            format.max_scale,
            if format.thousands {
                " or 1,200.50"
            } else {
                " (no thousands separator, no exponent, no currency sign)"
            }
        )
    };
    if s.is_empty() {
        return Err("empty: an amount is required (write 0.00 for none)".to_string());
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    // The integer part: digits, or (when allowed) groups of three after the first one to three.
    let mut digits = String::with_capacity(int_part.len());
    if format.thousands && int_part.contains(',') {
        let mut groups = int_part.split(',');
        let first = groups.next().unwrap_or_default();
        if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        digits.push_str(first);
        for group in groups {
            if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
                return Err(expected());
            }
            digits.push_str(group);
        }
    } else {
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        digits.push_str(int_part);
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_INTEGER_DIGITS {
        return Err(format!(
            "too large: an amount has at most {MAX_INTEGER_DIGITS} digits before the point"
        ));
    }
    let frac = frac_part.unwrap_or("");
    if frac_part.is_some() && frac.is_empty() {
        return Err(expected());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    if frac.len() > format.max_scale as usize {
        return Err(format!(
            "{} decimals: at most {} are allowed (fen){}",
            frac.len(),
            format.max_scale,
            if format.max_scale == 2 {
                ""
            } else {
                " for this figure"
            }
        ));
    }
    // Checked above: at most 13 significant integer digits and `max_scale` (≤ 5) decimals,
    // so the mantissa fits in an i128 and the scale in Decimal's 28.
    let mantissa_text = format!(
        "{}{}",
        if significant.is_empty() {
            "0"
        } else {
            significant
        },
        frac
    );
    let mantissa: i128 = mantissa_text.parse().map_err(|_| expected())?;
    let mut value = Decimal::try_from_i128_with_scale(
        if negative { -mantissa } else { mantissa },
        frac.len() as u32,
    )
    .map_err(|_| expected())?;
    if value.scale() < 2 {
        value.rescale(2);
    }
    Ok(value)
}

/// The decimals of a spreadsheet number kept before it is rounded to the fen: what lies beyond
/// (under 1e-12 yuan) cannot change whether it is within [`SHEET_TOLERANCE`] of a fen.
const SHEET_DECIMALS: usize = 12;

/// How far a spreadsheet number may be from a whole fen and still be that fen: a float's error
/// on a statement's amount (`0.30000000000000004`) is about 1e-17 yuan; a real third decimal
/// (`1.005`) is 1e-3.
const SHEET_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 6);

/// Parses the `<v>` of a spreadsheet's number cell as an amount. Excel stores binary floats and
/// writes the shortest text that reads back as the same float, so a cell showing `0.30` may
/// hold `0.30000000000000004`, and `1200.5` is `1200.50`. The text is read exactly (digits, a
/// point, an exponent; never through a float); a value within 1e-6 yuan of a fen is that fen,
/// anything further is refused: the cell holds more than fen, and money is never silently
/// changed.
pub(crate) fn from_sheet(s: &str) -> Result<Decimal, String> {
    let expected = || {
        format!(
            "not an amount: the cell is a number, but its value \"{}\" is not one a \
             spreadsheet writes",
            crate::text::escape(s)
        )
    };
    if s.is_empty() || s.len() > 64 {
        return Err(expected());
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(expected());
            }
            e.parse().map_err(|_| expected())?
        }
    };
    let (negative, rest) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = rest.split_once('.').unwrap_or((rest, ""));
    if int_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || (rest.contains('.') && frac_part.is_empty())
    {
        return Err(expected());
    }
    // The digits and where the point falls among them, after the exponent.
    let digits = format!("{int_part}{frac_part}");
    let point = int_part.len() as i64 + exponent;
    let (int_digits, frac_digits) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        let (i, f) = digits.split_at(point as usize);
        (i.to_string(), f.to_string())
    };
    let significant = int_digits.trim_start_matches('0');
    if significant.len() > MAX_INTEGER_DIGITS {
        return Err(format!(
            "too large: an amount has at most {MAX_INTEGER_DIGITS} digits before the point"
        ));
    }
    let kept = &frac_digits[..frac_digits.len().min(SHEET_DECIMALS)];
    let mantissa_text = format!(
        "{}{kept}",
        if significant.is_empty() {
            "0"
        } else {
            significant
        }
    );
    let mantissa: i128 = mantissa_text.parse().map_err(|_| expected())?;
    let exact = Decimal::try_from_i128_with_scale(
        if negative { -mantissa } else { mantissa },
        kept.len() as u32,
    )
    .map_err(|_| expected())?;
    let mut fen =
        exact.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    if (exact - fen).abs() >= SHEET_TOLERANCE {
        return Err(format!(
            "{} decimals: the cell holds {}, not a whole fen (the sheet may show it rounded, but \
             the file holds this value); round it in the sheet or fix the amount",
            frac_digits.trim_end_matches('0').len(),
            exact.normalize()
        ));
    }
    fen.rescale(2);
    Ok(fen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        parse(s, AMOUNT).unwrap().to_string()
    }

    #[test]
    fn exact_amounts() {
        assert_eq!(ok("1200.50"), "1200.50");
        assert_eq!(ok("5"), "5.00");
        assert_eq!(ok("0.1"), "0.10");
        assert_eq!(ok("-35.20"), "-35.20");
        assert_eq!(ok("+35.20"), "35.20");
        assert_eq!(ok("007.00"), "7.00");
        assert_eq!(ok("9999999999999.99"), "9999999999999.99");
    }

    #[test]
    fn refuses_what_is_not_exact() {
        for bad in [
            "",
            "1e3",
            "1E3",
            "1,200.00",
            "1.005",
            "12.",
            ".5",
            "1 200",
            "NaN",
            "inf",
            "--1",
            "１２",
            "¥12",
            "12.5.1",
            "0x10",
            "−5",
            "99999999999999.00",
            " 1",
        ] {
            assert!(parse(bad, AMOUNT).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn thousands_when_allowed() {
        let f = Format {
            max_scale: 2,
            thousands: true,
        };
        assert_eq!(parse("1,234,567.89", f).unwrap().to_string(), "1234567.89");
        assert_eq!(parse("-1,200", f).unwrap().to_string(), "-1200.00");
        for bad in ["1,20.00", ",100", "1234,567", "1,,234"] {
            assert!(parse(bad, f).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn fees_to_five_decimals() {
        let f = Format {
            max_scale: 5,
            thousands: false,
        };
        assert_eq!(parse("0.00006", f).unwrap().to_string(), "0.00006");
        assert!(parse("0.000061", f).is_err());
    }

    #[test]
    fn spreadsheet_numbers() {
        let ok = |s: &str| from_sheet(s).unwrap().to_string();
        assert_eq!(ok("1200.5"), "1200.50");
        assert_eq!(ok("0.30000000000000004"), "0.30");
        assert_eq!(ok("1200.4999999999998"), "1200.50");
        assert_eq!(ok("-35.2"), "-35.20");
        assert_eq!(ok("7"), "7.00");
        assert_eq!(ok("1.2E3"), "1200.00");
        assert_eq!(ok("1.5e-1"), "0.15");
        assert_eq!(ok("1E-30"), "0.00");
        assert_eq!(ok("9999999999999.99"), "9999999999999.99");
        for bad in [
            "1.005",
            "2.675",
            "0.001",
            "1e-3",
            "",
            "1.",
            ".5",
            "--1",
            "+1",
            "1e",
            "1e1000",
            "NaN",
            "inf",
            "0x10",
            "1,200",
            " 1",
            "1e14",
            "99999999999999",
        ] {
            assert!(from_sheet(bad).is_err(), "{bad:?} was taken");
        }
        let e = from_sheet("1.005").unwrap_err();
        assert!(e.starts_with("3 decimals"), "{e}");
        assert!(e.contains("1.005"), "{e}");
    }
}
