//! How a customer-day accrues a season-based charge, from the `season` a season plugin set.
//!
//! docs/domain.md: regular days get the cumulative share of the season fee; early-start and
//! extension days are either charged at the season's daily rate or free (a 0.00 line records
//! the service); outside the season nothing accrues.

use rust_decimal::Decimal;

use crate::decimal::{
    cumulative_share, cumulative_share_fen, daily_rate, daily_rate_fen, round_fen,
};
use crate::{CustomerDay, RuleError, SeasonDay, SeasonPhase};

/// How the bill date accrues a heating charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accrual {
    /// Not a heating day (outside the season, or no season plugin ran): no charge.
    None,
    /// Day `k` of the `n` days of the regular season: the cumulative share of the season fee.
    Regular {
        /// The 1-based day index.
        k: u32,
        /// The number of days of the regular season.
        n: u32,
    },
    /// An early-start or extension day the company charges at the season's daily rate.
    Charged {
        /// The number of days of the regular season.
        n: u32,
    },
    /// An early-start or extension day the company provides free: a 0.00 line records it.
    Free,
}

impl Accrual {
    /// Reads the day's season position. Fails with [`RuleError::InvalidInput`] when it is
    /// inconsistent (a regular day index outside `1..=season-days`).
    #[inline]
    pub fn of(day: &CustomerDay) -> Result<Accrual, RuleError> {
        match day.season {
            None => Ok(Accrual::None),
            Some(s) => Accrual::of_season(s),
        }
    }

    /// Like [`Accrual::of`], from a [`SeasonDay`].
    #[inline]
    pub fn of_season(s: SeasonDay) -> Result<Accrual, RuleError> {
        match s.phase {
            SeasonPhase::Outside => Ok(Accrual::None),
            SeasonPhase::Regular => {
                if s.day_index == 0 || s.day_index > s.season_days {
                    return Err(RuleError::InvalidInput(format!(
                        "season day index {} is not within 1..={}",
                        s.day_index, s.season_days
                    )));
                }
                Ok(Accrual::Regular {
                    k: s.day_index,
                    n: s.season_days,
                })
            }
            SeasonPhase::Early | SeasonPhase::Extended if s.charged => {
                if s.season_days == 0 {
                    return Err(RuleError::InvalidInput(
                        "a charged early or extension day in a season of 0 days".into(),
                    ));
                }
                Ok(Accrual::Charged { n: s.season_days })
            }
            SeasonPhase::Early | SeasonPhase::Extended => Ok(Accrual::Free),
        }
    }

    /// Whether heat is provided on this day (charged or free).
    #[inline]
    pub fn is_heating_day(self) -> bool {
        !matches!(self, Accrual::None)
    }

    /// The day's part of a season fee `total`: the cumulative share on regular days, the daily
    /// rate `round_fen(T/N)` on charged early/extension days, 0.00 on free ones, and `None` on
    /// days that are not heating days.
    #[inline]
    pub fn season_share(self, total: Decimal) -> Result<Option<Decimal>, RuleError> {
        Ok(match self {
            Accrual::None => None,
            Accrual::Regular { k, n } => Some(cumulative_share(total, k, n)?),
            Accrual::Charged { n } => Some(daily_rate(total, n)?),
            Accrual::Free => Some(Decimal::new(0, 2)),
        })
    }

    /// [`Accrual::season_share`] in whole fen (integer arithmetic only).
    #[inline]
    pub fn season_share_fen(self, total: i128) -> Result<Option<i128>, RuleError> {
        Ok(match self {
            Accrual::None => None,
            Accrual::Regular { k, n } => Some(cumulative_share_fen(total, k, n)?),
            Accrual::Charged { n } => Some(daily_rate_fen(total, n)?),
            Accrual::Free => Some(0),
        })
    }

    /// [`Accrual::per_day`] in whole fen, for a daily amount already in fen.
    #[inline]
    pub fn per_day_fen(self, daily: i128) -> Option<i128> {
        match self {
            Accrual::None => None,
            Accrual::Regular { .. } | Accrual::Charged { .. } => Some(daily),
            Accrual::Free => Some(0),
        }
    }

    /// The day's amount of a per-day price: `round_fen(daily)` on regular and charged days,
    /// 0.00 on free ones, `None` on days that are not heating days.
    #[inline]
    pub fn per_day(self, daily: Decimal) -> Option<Decimal> {
        match self {
            Accrual::None => None,
            Accrual::Regular { .. } | Accrual::Charged { .. } => Some(round_fen(daily)),
            Accrual::Free => Some(Decimal::new(0, 2)),
        }
    }
}

/// Whether the bill date is a heating day (regular, early or extended; charged or free).
/// A day without a season position (no season plugin ran) is not.
#[inline]
pub fn is_heating_day(day: &CustomerDay) -> bool {
    day.season
        .is_some_and(|s| !matches!(s.phase, SeasonPhase::Outside))
}
