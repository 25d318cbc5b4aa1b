//! `season`: the bill date's place in the heating season (docs/domain.md, "Heating season").
//!
//! Outputs a `season-day` for every customer-day and no lines: phase (outside, regular, early,
//! extended), the 1-based day index k in the regular season (1 for early days, N for extension
//! days), the number of days N of the regular season, and whether an early or extension day is
//! charged. Later plugins spread season fees with k and N.
//!
//! The dates are parameters: one parameter version per season (a company's tariff versions
//! carry effective dates), and the early start or extension a company decides during the year
//! is a new parameter version too.

use heatbill_sdk::prelude::*;
use serde::Deserialize;

/// The configured season.
#[derive(Debug)]
pub struct Season {
    start: i32,
    end: i32,
    early_start: Option<i32>,
    extension_end: Option<i32>,
    early_charged: bool,
    extension_charged: bool,
    days: u32,
}

/// The parameters of `season`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeasonParams {
    /// The first day of the regular season, inclusive, e.g. "2025-10-20" (Harbin).
    pub start: Date,
    /// The last day of the regular season, inclusive, e.g. "2026-04-20" (Harbin: 183 days, 184
    /// when February has 29).
    pub end: Date,
    /// The first day of an early start (提前供热) the company decided, before start. Default
    /// none.
    #[serde(default)]
    pub early_start: Option<Date>,
    /// The last day of an extension (延长供热) the company decided, after end. Default none.
    #[serde(default)]
    pub extension_end: Option<Date>,
    /// Whether early-start days are charged at the season's daily rate round_fen(T/N); default
    /// false: free, recorded by a 0.00 line.
    #[serde(default)]
    pub early_charged: bool,
    /// Whether extension days are charged at the season's daily rate; default false: free.
    #[serde(default)]
    pub extension_charged: bool,
}

impl Plugin for Season {
    type Params = SeasonParams;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Season,
            description: "The heating season: tells every later plugin whether the bill date is a regular, early-start, extension or outside day, its 1-based index k in the regular season and the season's length N (both dates inclusive), and whether early and extension days are charged. Produces no lines.".into(),
            params_schema: heatbill_sdk::params::schema::<SeasonParams>(),
        }
    }

    fn configure(p: SeasonParams) -> Result<(Self, Vec<LineSpec>), RuleError> {
        let bad = |m: String| Err(RuleError::BadParams(m));
        if p.end < p.start {
            return bad(format!(
                "`end` {} is before `start` {}: give the season's first and last days",
                p.end, p.start
            ));
        }
        let days = p.start.days_until(p.end) + 1;
        if days > 366 {
            return bad(format!(
                "the season {} to {} has {days} days: a heating season is at most a year",
                p.start, p.end
            ));
        }
        if let Some(e) = p.early_start
            && e >= p.start
        {
            return bad(format!(
                "`early_start` {e} is not before `start` {}: an early start begins before the regular season",
                p.start
            ));
        }
        if let Some(x) = p.extension_end
            && x <= p.end
        {
            return bad(format!(
                "`extension_end` {x} is not after `end` {}: an extension ends after the regular season",
                p.end
            ));
        }
        let season = Season {
            start: p.start.to_days(),
            end: p.end.to_days(),
            early_start: p.early_start.map(Date::to_days),
            extension_end: p.extension_end.map(Date::to_days),
            early_charged: p.early_charged,
            extension_charged: p.extension_charged,
            // 1..=366 here.
            days: days as u32,
        };
        Ok((season, Vec::new()))
    }

    #[inline]
    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        Ok(DayOutput {
            lines: Vec::new(),
            season: Some(self.position(day.date)?),
        })
    }
}

impl Season {
    /// The position of `date` in this season.
    pub fn position(&self, date: Date) -> Result<SeasonDay, RuleError> {
        if !date.is_valid() {
            return Err(RuleError::InvalidInput(format!(
                "the bill date {date} does not exist"
            )));
        }
        let d = date.to_days();
        let n = self.days;
        let (phase, k, charged) = if d >= self.start && d <= self.end {
            // Within the season: 1..=n.
            (SeasonPhase::Regular, (d - self.start + 1) as u32, true)
        } else if d < self.start && self.early_start.is_some_and(|e| d >= e) {
            (SeasonPhase::Early, 1, self.early_charged)
        } else if d > self.end && self.extension_end.is_some_and(|x| d <= x) {
            (SeasonPhase::Extended, n, self.extension_charged)
        } else {
            (SeasonPhase::Outside, 0, false)
        };
        Ok(SeasonDay {
            phase,
            day_index: k,
            season_days: n,
            charged,
        })
    }
}

heatbill_sdk::export!(Season);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{configure, date, day, try_configure};

    fn at(params: &str, d: &str) -> SeasonDay {
        let s = configure::<Season>(params);
        s.evaluate(&day(d).build()).unwrap().season.unwrap()
    }

    const HARBIN: &str = r#"{"start": "2025-10-20", "end": "2026-04-20"}"#;

    #[test]
    fn harbin_regular_days() {
        let first = at(HARBIN, "2025-10-20");
        assert_eq!(
            (first.phase, first.day_index, first.season_days),
            (SeasonPhase::Regular, 1, 183)
        );
        assert_eq!(at(HARBIN, "2025-10-22").day_index, 3);
        assert_eq!(at(HARBIN, "2026-01-01").day_index, 74);
        assert_eq!(at(HARBIN, "2026-04-20").day_index, 183);
        assert_eq!(at(HARBIN, "2026-04-21").phase, SeasonPhase::Outside);
        assert_eq!(at(HARBIN, "2025-10-19").phase, SeasonPhase::Outside);
        assert_eq!(at(HARBIN, "2025-10-19").day_index, 0);
    }

    #[test]
    fn leap_year_season_has_184_days() {
        let p = r#"{"start": "2027-10-20", "end": "2028-04-20"}"#;
        assert_eq!(at(p, "2028-02-29").season_days, 184);
        assert_eq!(at(p, "2028-04-20").day_index, 184);
    }

    #[test]
    fn early_and_extended_days() {
        let free = r#"{"start": "2025-10-20", "end": "2026-04-20", "early_start": "2025-10-15", "extension_end": "2026-04-30"}"#;
        let e = at(free, "2025-10-15");
        assert_eq!(
            (e.phase, e.day_index, e.charged),
            (SeasonPhase::Early, 1, false)
        );
        assert_eq!(at(free, "2025-10-14").phase, SeasonPhase::Outside);
        let x = at(free, "2026-04-30");
        assert_eq!(
            (x.phase, x.day_index, x.charged),
            (SeasonPhase::Extended, 183, false)
        );
        assert_eq!(at(free, "2026-05-01").phase, SeasonPhase::Outside);
        let charged = r#"{"start": "2025-10-20", "end": "2026-04-20", "early_start": "2025-10-15", "early_charged": true, "extension_end": "2026-04-30", "extension_charged": true}"#;
        assert!(at(charged, "2025-10-16").charged);
        assert!(at(charged, "2026-04-21").charged);
    }

    #[test]
    fn bad_params() {
        for p in [
            r#"{"start": "2026-04-20", "end": "2025-10-20"}"#,
            r#"{"start": "2025-10-20", "end": "2026-04-20", "early_start": "2025-10-20"}"#,
            r#"{"start": "2025-10-20", "end": "2026-04-20", "extension_end": "2026-04-20"}"#,
            r#"{"start": "2025-10-20", "end": "2027-04-20"}"#,
            r#"{"start": "2025-10-20"}"#,
            r#"{"start": "2025-10-20", "end": "2026-02-29"}"#,
            r#"{"start": "2025-10-20", "end": "2026-04-20", "early": true}"#,
        ] {
            assert!(
                matches!(try_configure::<Season>(p), Err(RuleError::BadParams(_))),
                "{p}"
            );
        }
        assert_eq!(date("2025-10-20").to_string(), "2025-10-20");
    }

    #[test]
    fn produces_no_lines() {
        let s = configure::<Season>(HARBIN);
        assert!(s.specs().is_empty());
        assert!(
            s.evaluate(&day("2025-11-01").build())
                .unwrap()
                .lines
                .is_empty()
        );
    }
}
