//! `temperature-refund`: a refund when the measured indoor temperature is below the standard
//! (docs/domain.md, "Service status and subsidies").
//!
//! Bands of indoor temperature (from inclusive, to exclusive, either end open) carry a refund
//! share: Heilongjiang 30 % for 16–18 °C; Dalian 40 % for 16–18 °C and 100 % below 16 °C. For
//! each payer whose prior lines in the configured categories (default heating and consumption)
//! add up to a nonzero base, the refund is a negative line `−round_fen(base × share)` paid by
//! that payer. An unknown temperature (no measurement) refunds nothing.
//! W7: heat 12.56 at 17.0 °C → refund −3.77; the customer owes 8.79.

use heatbill_sdk::params::{CategorySet, opt_decimal};
use heatbill_sdk::prelude::*;
use serde::Deserialize;

/// The configured refund.
#[derive(Debug)]
pub struct TemperatureRefund {
    bands: Vec<Band>,
    categories: CategorySet,
    /// The refund line's kind.
    line: LineKindId,
}

/// One temperature band.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// The lowest temperature of the band, inclusive (°C); absent: no lower bound.
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub from: Option<Decimal>,
    /// The temperature the band ends below, exclusive (°C); absent: no upper bound.
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub to: Option<Decimal>,
    /// The share of the base refunded, 0..=1.
    #[serde(with = "heatbill_sdk::params::decimal")]
    #[schemars(with = "heatbill_sdk::params::DecimalText")]
    pub share: Decimal,
}

impl Band {
    fn contains(&self, t: Decimal) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|x| t < x)
    }
}

/// The parameters of `temperature-refund`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Temperature bands in °C, from inclusive, to exclusive, either open: [{"from": "16",
    /// "to": "18", "share": "0.30"}] (Heilongjiang); Dalian: [{"from": "16", "to": "18",
    /// "share": "0.40"}, {"to": "16", "share": "1.00"}]. Bands must not overlap; shares are
    /// 0..=1.
    pub bands: Vec<Band>,
    /// The categories of prior lines refunded (default ["heating", "consumption"]).
    #[serde(default)]
    pub categories: Option<CategorySet>,
    /// The code of the refund line (default "refund").
    #[serde(default = "default_code")]
    pub code: String,
    /// Its text on the bill (default "室温不达标退费").
    #[serde(default = "default_description")]
    pub description: String,
}

fn default_code() -> String {
    "refund".into()
}
fn default_description() -> String {
    "室温不达标退费".into()
}

const PAYERS: [Payer; 3] = [Payer::Customer, Payer::Government, Payer::Employer];

impl Plugin for TemperatureRefund {
    type Params = Params;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Subsidy,
            description: "Refund for an indoor temperature below the standard: the band the day's measured temperature falls in gives a share; for each payer with a nonzero base (its prior lines in the given categories), a refund line −round_fen(base × share) paid by that payer. No measurement, no refund.".into(),
            params_schema: heatbill_sdk::params::schema::<Params>(),
        }
    }

    fn configure(p: Params) -> Result<(Self, Vec<LineSpec>), RuleError> {
        let bad = |m: String| Err(RuleError::BadParams(m));
        if p.bands.is_empty() {
            return bad("`bands` is empty: give at least one band, e.g. [{\"from\": \"16\", \"to\": \"18\", \"share\": \"0.30\"}]".into());
        }
        for (i, b) in p.bands.iter().enumerate() {
            if b.share < Decimal::ZERO || b.share > Decimal::ONE {
                return bad(format!(
                    "`bands[{i}].share` is {}: give a share between 0 and 1",
                    b.share
                ));
            }
            if let (Some(f), Some(t)) = (b.from, b.to)
                && f >= t
            {
                return bad(format!("`bands[{i}]`: from {f} is not below to {t}"));
            }
        }
        let mut sorted = p.bands.clone();
        sorted.sort_by_key(|b| b.from.unwrap_or(Decimal::MIN));
        for w in sorted.windows(2) {
            let open_above = w[0].to.is_none_or(|t| w[1].from.is_none_or(|f| f < t));
            if open_above {
                return bad(format!(
                    "`bands` overlap: {:?}..{:?} and {:?}..{:?}; each temperature must fall in one band at most",
                    w[0].from, w[0].to, w[1].from, w[1].to
                ));
            }
        }
        let categories = p.categories.unwrap_or(CategorySet::of(&[
            LineCategory::Heating,
            LineCategory::Consumption,
        ]));
        if categories.is_empty() {
            return bad(
                "`categories` is empty: list the categories refunded, e.g. [\"heating\"]".into(),
            );
        }
        let mut kinds = LineKinds::new();
        let line = kinds.add(line_spec(
            &p.code,
            &p.description,
            "CNY",
            LineCategory::Refund,
        ));
        Ok((
            TemperatureRefund {
                bands: sorted,
                categories,
                line,
            },
            kinds.into_specs(),
        ))
    }

    /// Customer-days with a measured indoor temperature only.
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL.require(bits::HAS_INDOOR_TEMPERATURE)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        let Some(t) = day.indoor_temperature else {
            return Ok(DayOutput::empty());
        };
        let t = heatbill_sdk::decimal::input(t, "indoor-temperature")?;
        let Some(band) = self.bands.iter().find(|b| b.contains(t)) else {
            return Ok(DayOutput::empty());
        };
        if band.share.is_zero() {
            return Ok(DayOutput::empty());
        }
        let mut bases = [Decimal::ZERO; 3];
        for l in &day.prior_lines {
            if self.categories.contains(l.category) {
                bases[l.payer as usize] +=
                    heatbill_sdk::decimal::input(l.amount, "prior-lines.amount")?;
            }
        }
        let mut lines = Vec::new();
        for (payer, base) in PAYERS.into_iter().zip(bases) {
            let refund = round_fen(base * band.share);
            if !refund.is_zero() {
                lines.push(Line::new(self.line, base, band.share, -refund, payer)?);
            }
        }
        Ok(DayOutput::lines(lines))
    }
}

heatbill_sdk::export!(TemperatureRefund);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    const HEILONGJIANG: &str = r#"{"bands": [{"from": "16", "to": "18", "share": "0.30"}]}"#;
    const DALIAN: &str = r#"{"bands": [{"from": "16", "to": "18", "share": "0.40"}, {"to": "16", "share": "1.00"}]}"#;

    fn at(params: &str, t: Option<&str>) -> Vec<String> {
        let r = configure::<TemperatureRefund>(params);
        let mut d = day("2025-10-20").prior(LineCategory::Heating, "12.56", Payer::Customer);
        if let Some(t) = t {
            d = d.indoor_temperature(t);
        }
        amounts(&r.evaluate(&d.build()))
    }

    #[test]
    fn w7_heilongjiang() {
        assert_eq!(at(HEILONGJIANG, Some("17.0")), ["-3.77"]);
        assert_eq!(at(HEILONGJIANG, Some("16")), ["-3.77"]);
        assert!(at(HEILONGJIANG, Some("18")).is_empty());
        assert!(at(HEILONGJIANG, Some("15.9")).is_empty());
        assert!(at(HEILONGJIANG, None).is_empty());
    }

    #[test]
    fn dalian_two_bands() {
        assert_eq!(at(DALIAN, Some("17.5")), ["-5.02"]); // 12.56 × 0.4 = 5.024
        assert_eq!(at(DALIAN, Some("15.99")), ["-12.56"]);
        assert!(at(DALIAN, Some("18.0")).is_empty());
    }

    #[test]
    fn per_payer_refunds_of_heating_and_consumption() {
        let r = configure::<TemperatureRefund>(HEILONGJIANG);
        let d = day("2025-11-01")
            .indoor_temperature("17")
            .prior(LineCategory::Heating, "12.34", Payer::Customer)
            .prior(LineCategory::Heating, "1.43", Payer::Government)
            .prior(LineCategory::Consumption, "53.34", Payer::Customer)
            .prior(LineCategory::LateFee, "1.15", Payer::Customer)
            .build();
        let out = r.evaluate(&d);
        // Customer: (12.34 + 53.34) × 0.3 = 19.704; government 1.43 × 0.3 = 0.429.
        assert_eq!(amounts(&out), ["-19.70", "-0.43"]);
        assert_eq!(out.unwrap().lines[1].payer, Payer::Government);
    }

    #[test]
    fn bad_params() {
        for p in [
            r#"{"bands": []}"#,
            r#"{"bands": [{"from": "18", "to": "16", "share": "0.3"}]}"#,
            r#"{"bands": [{"from": "16", "to": "18", "share": "1.3"}]}"#,
            r#"{"bands": [{"from": "16", "to": "18", "share": "0.3"}, {"from": "17", "share": "0.1"}]}"#,
            r#"{"bands": [{"to": "18", "share": "0.3"}, {"to": "16", "share": "1"}]}"#,
            r#"{"bands": [{"from": "16", "to": "18", "share": 0.3}]}"#,
        ] {
            assert!(
                matches!(
                    try_configure::<TemperatureRefund>(p),
                    Err(RuleError::BadParams(_))
                ),
                "{p}"
            );
        }
    }
}
