//! Helpers for plugins' native unit tests: configure from JSON, build customer-days, read
//! amounts.
//!
//! ```
//! use heatbill_sdk::testing::{day, dec};
//! let d = day("2025-10-20").residential().usable_area("60.00").regular(1, 183).build();
//! assert_eq!(d.usable_area, Some(dec("60.00")));
//! ```

use crate::native::{Configured, configure as try_configure_native};
use crate::{
    Attribute, CustomerClass, CustomerDay, CustomerFlags, Date, DayOutput, LineCategory, Payer,
    Plugin, PriorLine, RuleError, SeasonDay, SeasonPhase, ServiceStatus, WitDecimal,
};

/// Configures a plugin from JSON; panics with the rule error if the parameters are refused.
#[track_caller]
pub fn configure<P: Plugin>(params: &str) -> Configured<P> {
    match try_configure_native::<P>(params) {
        Ok(c) => c,
        Err(e) => panic!("configure refused {params}: {}: {}", e.kind(), e.message()),
    }
}

/// Configures a plugin from JSON, returning the refusal: for tests of bad parameters.
pub fn try_configure<P: Plugin>(params: &str) -> Result<Configured<P>, RuleError> {
    try_configure_native::<P>(params)
}

/// A contract decimal from a string, e.g. `dec("12.56")`. Panics on a malformed one.
#[track_caller]
pub fn dec(s: &str) -> WitDecimal {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// A date from `"YYYY-MM-DD"`. Panics on a malformed one.
#[track_caller]
pub fn date(s: &str) -> Date {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// The amounts of an output's lines, as strings ("12.56"), for terse assertions. Panics if the
/// evaluation failed.
#[track_caller]
pub fn amounts(out: &Result<DayOutput, RuleError>) -> Vec<String> {
    match out {
        Ok(o) => o.lines.iter().map(|l| l.amount.to_string()).collect(),
        Err(e) => panic!("evaluation failed: {}: {}", e.kind(), e.message()),
    }
}

/// A customer-day builder; starts from an active residential customer with nothing else set
/// (areas 0, no readings, no arrears, no season position, no prior lines).
#[must_use]
#[track_caller]
pub fn day(bill_date: &str) -> DayBuilder {
    DayBuilder(CustomerDay {
        date: date(bill_date),
        class: CustomerClass::Residential,
        special_class: None,
        status: ServiceStatus::Active,
        flags: CustomerFlags::empty(),
        building_area: WitDecimal::ZERO,
        usable_area: None,
        ceiling_height: None,
        heat: None,
        indoor_temperature: None,
        arrears: WitDecimal::ZERO,
        arrears_since: None,
        season: None,
        tags: Vec::new(),
        attributes: Vec::new(),
        prior_lines: Vec::new(),
    })
}

/// Builds a [`CustomerDay`]; see [`day`].
#[derive(Clone)]
pub struct DayBuilder(CustomerDay);

#[allow(missing_docs)]
impl DayBuilder {
    pub fn residential(mut self) -> Self {
        self.0.class = CustomerClass::Residential;
        self
    }
    pub fn non_residential(mut self) -> Self {
        self.0.class = CustomerClass::NonResidential;
        self
    }
    pub fn special_class(mut self, class: &str) -> Self {
        self.0.special_class = Some(class.into());
        self
    }
    pub fn suspended(mut self) -> Self {
        self.0.status = ServiceStatus::Suspended;
        self
    }
    pub fn metered(mut self) -> Self {
        self.0.flags |= CustomerFlags::METERED;
        self
    }
    pub fn low_income(mut self) -> Self {
        self.0.flags |= CustomerFlags::LOW_INCOME;
        self
    }
    pub fn building_area(mut self, m2: &str) -> Self {
        self.0.building_area = dec(m2);
        self
    }
    pub fn usable_area(mut self, m2: &str) -> Self {
        self.0.usable_area = Some(dec(m2));
        self
    }
    pub fn ceiling_height(mut self, m: &str) -> Self {
        self.0.ceiling_height = Some(dec(m));
        self
    }
    pub fn heat(mut self, gj: &str) -> Self {
        self.0.heat = Some(dec(gj));
        self
    }
    pub fn indoor_temperature(mut self, celsius: &str) -> Self {
        self.0.indoor_temperature = Some(dec(celsius));
        self
    }
    /// Unpaid principal, overdue since `since` (if any).
    pub fn arrears(mut self, yuan: &str, since: Option<&str>) -> Self {
        self.0.arrears = dec(yuan);
        self.0.arrears_since = since.map(date);
        self
    }
    pub fn tag(mut self, tag: &str) -> Self {
        self.0.tags.push(tag.into());
        self
    }
    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.0.attributes.push(Attribute {
            key: key.into(),
            value: value.into(),
        });
        self
    }
    pub fn season(mut self, season: SeasonDay) -> Self {
        self.0.season = Some(season);
        self
    }
    /// Day `k` of a regular season of `n` days.
    pub fn regular(self, k: u32, n: u32) -> Self {
        self.season(SeasonDay {
            phase: SeasonPhase::Regular,
            day_index: k,
            season_days: n,
            charged: true,
        })
    }
    /// An early-start day of a season of `n` days, charged or free.
    pub fn early(self, n: u32, charged: bool) -> Self {
        self.season(SeasonDay {
            phase: SeasonPhase::Early,
            day_index: 1,
            season_days: n,
            charged,
        })
    }
    /// An extension day of a season of `n` days, charged or free.
    pub fn extended(self, n: u32, charged: bool) -> Self {
        self.season(SeasonDay {
            phase: SeasonPhase::Extended,
            day_index: n,
            season_days: n,
            charged,
        })
    }
    /// A day outside a season of `n` days.
    pub fn outside(self, n: u32) -> Self {
        self.season(SeasonDay {
            phase: SeasonPhase::Outside,
            day_index: 0,
            season_days: n,
            charged: false,
        })
    }
    /// A line an earlier plugin produced (quantity and unit price 0, entry 0, no season
    /// amount), its code the category's name (e.g. "heating").
    pub fn prior(self, category: LineCategory, amount: &str, payer: Payer) -> Self {
        let code = format!("{category:?}").to_lowercase();
        self.prior_line(PriorLine {
            code,
            entry: 0,
            category,
            quantity: WitDecimal::ZERO,
            unit_price: WitDecimal::ZERO,
            amount: dec(amount),
            payer,
            season_amount: None,
        })
    }

    /// A line an earlier plugin produced, as given.
    pub fn prior_line(mut self, line: PriorLine) -> Self {
        self.0.prior_lines.push(line);
        self
    }
    pub fn build(self) -> CustomerDay {
        self.0
    }
}
