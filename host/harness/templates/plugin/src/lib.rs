//! `{{name}}`: a heatbill rules plugin.
//!
//! As generated, a small area tariff: `price` 元 per m² of building area per heating season,
//! spread over the season's days by cumulative rounding (the days add up to the season fee
//! exactly). Replace the logic with your company's rule; keep prices, dates and ratios in the
//! parameters, never in the code.

use heatbill_sdk::prelude::*;
use heatbill_sdk::season::Accrual;
use serde::Deserialize;

/// The configured plugin: everything that does not depend on the customer, parsed once.
pub struct Tariff {
    price: Decimal,
    /// The heating line's kind, announced in `configure`.
    heat: LineKindId,
}

/// The parameters (a JSON object; decimals are strings, unknown keys are refused). The struct
/// is the one source: `Deserialize` parses it, `JsonSchema` derives the schema the host checks
/// parameters against, and the doc comments are that schema's descriptions.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// 元 per m² per season, e.g. "24".
    #[serde(with = "heatbill_sdk::params::decimal")]
    #[schemars(with = "heatbill_sdk::params::DecimalText")]
    pub price: Decimal,
    /// The line's code (default "heat").
    #[serde(default = "default_code")]
    pub code: String,
}

fn default_code() -> String {
    "heat".into()
}

impl Plugin for Tariff {
    type Params = Params;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Tariff,
            description: "Bills price × building area per season, spread over the regular season by cumulative rounding.".into(),
            params_schema: heatbill_sdk::params::schema::<Params>(),
        }
    }

    fn configure(p: Params) -> Result<(Self, Vec<LineSpec>), RuleError> {
        if p.price < Decimal::ZERO {
            return Err(RuleError::BadParams(format!(
                "`price` is {}: it must not be negative",
                p.price
            )));
        }
        let mut kinds = LineKinds::new();
        let heat = kinds.add(line_spec(&p.code, "采暖费", "m2", LineCategory::Heating));
        Ok((
            Tariff {
                price: p.price,
                heat,
            },
            kinds.into_specs(),
        ))
    }

    /// Active customers only: the host does not call the plugin for suspended ones at all (they
    /// get no line from it). Outside this filter `evaluate` must return nothing.
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL.exclude(bits::SUSPENDED)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        let accrual = Accrual::of(day)?;
        if day.status != ServiceStatus::Active || !accrual.is_heating_day() {
            // No allocation when the rule does not apply.
            return Ok(DayOutput::empty());
        }
        let area = heatbill_sdk::decimal::input(day.building_area, "building-area")?;
        let season_fee = round_fen(area * self.price);
        let Some(amount) = accrual.season_share(season_fee)? else {
            return Ok(DayOutput::empty());
        };
        let line = Line::new(self.heat, area, self.price, amount, Payer::Customer)?;
        Ok(DayOutput::lines(vec![line]))
    }
}

heatbill_sdk::export!(Tariff);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    #[test]
    fn first_days_and_the_whole_season() {
        let t = configure::<Tariff>(r#"{"price": "24"}"#);
        let d = |k| day("2025-11-15").building_area("80").regular(k, 121).build();
        assert_eq!(amounts(&t.evaluate(&d(1))), ["15.87"]);
        assert_eq!(amounts(&t.evaluate(&d(3))), ["15.86"]);
        let season: Decimal = (1..=121)
            .map(|k| t.evaluate(&d(k)).unwrap().lines[0].amount.to_decimal().unwrap())
            .sum();
        assert_eq!(season, Decimal::from(1920));
    }

    #[test]
    fn refuses_bad_params() {
        assert!(try_configure::<Tariff>(r#"{"price": 24}"#).is_err());
        assert!(try_configure::<Tariff>(r#"{"price": "-1"}"#).is_err());
        assert!(try_configure::<Tariff>(r#"{"price": "24", "prise": "1"}"#).is_err());
    }
}
