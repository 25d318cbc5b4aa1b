//! Calendar dates without a calendar crate.
//!
//! Plugins need three things from dates: validate them, order them, and count days between
//! them. The contract's [`Date`] (year, month, day) orders correctly as derived, and
//! [`Date::to_days`] counts days with Howard Hinnant's `days_from_civil` (proleptic Gregorian),
//! a dozen integer operations. Chrono would add tens of kilobytes to every component for this;
//! the host uses chrono and converts at the boundary.

use std::fmt;
use std::str::FromStr;

use serde::de::{Deserialize, Deserializer, Error as _};

use crate::Date;

impl Date {
    /// A checked date. Fails with a message when the month or day does not exist (2026-02-29)
    /// or the year is outside 1..=9999.
    pub fn new(year: i32, month: u8, day: u8) -> Result<Date, String> {
        let date = Date { year, month, day };
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(format!("{date} is not a date"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(format!(
                "{date} is not a date (the month has {} days)",
                days_in_month(year, month)
            ));
        }
        Ok(date)
    }

    /// Whether the date exists (see [`Date::new`]).
    pub fn is_valid(self) -> bool {
        Date::new(self.year, self.month, self.day).is_ok()
    }

    /// Days since 1970-01-01 (negative before). Meaningful for valid dates only.
    #[inline]
    pub fn to_days(self) -> i32 {
        let (m, d) = (i32::from(self.month), i32::from(self.day));
        let y = if m <= 2 { self.year - 1 } else { self.year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01 (the inverse of [`Date::to_days`]).
    pub fn from_days(days: i32) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i32::from(month <= 2);
        // month is 1..=12 and day 1..=31 by construction.
        Date {
            year,
            month: month as u8,
            day: day as u8,
        }
    }

    /// The date `n` days later (earlier when negative).
    pub fn add_days(self, n: i32) -> Date {
        Date::from_days(self.to_days() + n)
    }

    /// The number of days from `self` to `later` (negative when `later` is earlier).
    #[inline]
    pub fn days_until(self, later: Date) -> i32 {
        later.to_days() - self.to_days()
    }
}

/// Whether `year` has a February 29th.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days of a month (0 for a month outside 1..=12).
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = String;

    /// Parses `YYYY-MM-DD` and checks the date exists.
    fn from_str(s: &str) -> Result<Date, String> {
        let bad = || format!("{s:?} is not a date written YYYY-MM-DD, e.g. \"2025-10-20\"");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        // Four, two and two digits: the casts cannot truncate.
        Date::new(y as i32, m as u8, d as u8).map_err(|e| format!("{s:?}: {e}"))
    }
}

/// A date parameter is a JSON string `"YYYY-MM-DD"` (the host checks the `date` format).
impl schemars::JsonSchema for Date {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Date".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date",
            "examples": ["2025-10-20"],
        })
    }
}

/// A date parameter is a JSON string `"YYYY-MM-DD"`.
impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let s = String::deserialize(deserializer)
            .map_err(|e| D::Error::custom(format!("{e}; write dates as \"YYYY-MM-DD\"")))?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn days_round_trip_and_known_values() {
        assert_eq!(date("1970-01-01").to_days(), 0);
        assert_eq!(date("2000-03-01").to_days(), 11_017);
        for days in -800_000..800_000 {
            if days % 997 == 0 || (-1000..1000).contains(&days) {
                assert_eq!(Date::from_days(days).to_days(), days);
            }
        }
    }

    #[test]
    fn season_lengths() {
        // Harbin 10-20 → 04-20: 183 days, 184 when February has 29.
        assert_eq!(date("2025-10-20").days_until(date("2026-04-20")) + 1, 183);
        assert_eq!(date("2027-10-20").days_until(date("2028-04-20")) + 1, 184);
        // Beijing 11-15 → 03-15: 121 days.
        assert_eq!(date("2025-11-15").days_until(date("2026-03-15")) + 1, 121);
    }

    #[test]
    fn parsing_and_order() {
        assert!("2026-02-29".parse::<Date>().is_err());
        assert!("2028-02-29".parse::<Date>().is_ok());
        assert!("2026-2-1".parse::<Date>().is_err());
        assert!("2026-13-01".parse::<Date>().is_err());
        assert!("+026-01-01".parse::<Date>().is_err());
        assert!(date("2025-12-31") < date("2026-01-01"));
        assert_eq!(date("2025-12-31").add_days(1), date("2026-01-01"));
        assert_eq!(date("2026-01-01").to_string(), "2026-01-01");
        assert!(
            !Date {
                year: 2026,
                month: 4,
                day: 31
            }
            .is_valid()
        );
    }
}
