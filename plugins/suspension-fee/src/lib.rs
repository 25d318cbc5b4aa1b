//! `suspension-fee`: the base fee of a suspended customer (报停基本费; docs/domain.md, "Service status
//! and subsidies").
//!
//! A customer who stopped heating pays a fixed `share` of the full area fee (30 % in Taiyuan and
//! Xi'an), prorated like the season fee: `T = round_fen(area × price × surcharge factor × share)`
//! spread over the regular season by cumulative rounding. The area keys are `area-tariff`'s
//! (shared through [`heatbill_sdk::area`]), so a chain passes the same prices to both. Bills only
//! suspended customers. Early-start and extension days accrue the base fee's daily rate when the
//! season charges them, and nothing when they are free (no service is recorded for a customer
//! who takes none).

use heatbill_sdk::area::{AreaLines, AreaPricing, WithArea};
use heatbill_sdk::prelude::*;
use serde::Deserialize;

/// The configured base fee.
#[derive(Debug)]
pub struct SuspensionFee {
    pricing: AreaPricing,
    share: Decimal,
    lines: AreaLines,
}

/// The keys of `suspension-fee` besides the area keys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspension {
    /// The share of the full area fee a suspended customer pays, 0..=1, e.g. "0.30" (Taiyuan,
    /// Xi'an). The area keys' prices are the full heating prices, as in area-tariff.
    #[serde(with = "heatbill_sdk::params::decimal")]
    #[schemars(with = "heatbill_sdk::params::DecimalText")]
    pub share: Decimal,
    /// The code of the base-fee line (default "base-fee").
    #[serde(default = "default_code")]
    pub code: String,
    /// The text of the base-fee line (default "报停基本费").
    #[serde(default = "default_description")]
    pub description: String,
    /// With government_prices: the code of the government's line (default
    /// "base-fee-government").
    #[serde(default = "default_government_code")]
    pub government_code: String,
    /// With government_prices: the text of the government's line (default
    /// "报停基本费（政府承担）").
    #[serde(default = "default_government_description")]
    pub government_description: String,
}

fn default_code() -> String {
    "base-fee".into()
}
fn default_description() -> String {
    "报停基本费".into()
}
fn default_government_code() -> String {
    "base-fee-government".into()
}
fn default_government_description() -> String {
    "报停基本费（政府承担）".into()
}

impl Plugin for SuspensionFee {
    type Params = WithArea<Suspension>;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Tariff,
            description: "Base fee of suspended customers (报停基本费): a share of the full area fee (the area keys of area-tariff), spread over the regular season by cumulative rounding like the season fee. Bills suspended customers only. Needs a season plugin before it.".into(),
            params_schema: heatbill_sdk::params::schema::<WithArea<Suspension>>(),
        }
    }

    fn configure(p: WithArea<Suspension>) -> Result<(Self, Vec<LineSpec>), RuleError> {
        let s = p.extra;
        if s.share < Decimal::ZERO || s.share > Decimal::ONE {
            return Err(RuleError::BadParams(format!(
                "`share` is {}: give the share of the full fee between 0 and 1, e.g. \"0.30\"",
                s.share
            )));
        }
        let pricing = AreaPricing::new(p.area)?;
        let mut kinds = LineKinds::new();
        let customer = kinds.add(line_spec(
            &s.code,
            &s.description,
            "m2",
            LineCategory::BaseFee,
        ));
        let government = pricing.has_split().then(|| {
            kinds.add(line_spec(
                &s.government_code,
                &s.government_description,
                "m2",
                LineCategory::BaseFee,
            ))
        });
        Ok((
            SuspensionFee {
                pricing,
                share: s.share,
                lines: AreaLines {
                    customer,
                    government,
                    record_free_days: false,
                },
            },
            kinds.into_specs(),
        ))
    }

    #[inline]
    /// Suspended customers only.
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL.require(bits::SUSPENDED)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        if day.status != ServiceStatus::Suspended {
            return Ok(DayOutput::empty());
        }
        let mut lines = Vec::new();
        self.pricing
            .push_lines(day, self.share, self.lines, &mut lines)?;
        Ok(DayOutput::lines(lines))
    }
}

heatbill_sdk::export!(SuspensionFee);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    const HARBIN: &str = r#"{"area_basis": "usable", "share": "0.30",
        "prices": {"residential": "38.32", "non-residential": "43.3"}}"#;

    #[test]
    fn w4_harbin_suspended_base_fee() {
        let t = configure::<SuspensionFee>(HARBIN);
        let d = |k| {
            day("2025-10-20")
                .suspended()
                .usable_area("60.00")
                .regular(k, 183)
                .build()
        };
        assert_eq!(amounts(&t.evaluate(&d(1))), ["3.77"]);
        assert_eq!(t.specs()[0].category, LineCategory::BaseFee);
        let season: Decimal = (1..=183)
            .map(|k| {
                t.evaluate(&d(k)).unwrap().lines[0]
                    .amount
                    .to_decimal()
                    .unwrap()
            })
            .sum();
        assert_eq!(season, Decimal::new(68976, 2));
    }

    #[test]
    fn only_suspended_customers_and_no_free_day_lines() {
        let t = configure::<SuspensionFee>(HARBIN);
        let active = day("2025-10-20").usable_area("60").regular(1, 183).build();
        assert!(t.evaluate(&active).unwrap().lines.is_empty());
        let free = day("2025-10-15")
            .suspended()
            .usable_area("60")
            .early(183, false)
            .build();
        assert!(t.evaluate(&free).unwrap().lines.is_empty());
        let charged = day("2025-10-15")
            .suspended()
            .usable_area("60")
            .early(183, true)
            .build();
        assert_eq!(amounts(&t.evaluate(&charged)), ["3.77"]);
        // Billed by usable area, a customer without one: on a free early day nothing is billed,
        // so nothing is missing; on a charged day the area is needed and its absence is named.
        let free = day("2025-10-15").suspended().early(183, false).build();
        assert!(t.evaluate(&free).unwrap().lines.is_empty());
        let charged = day("2025-10-15").suspended().early(183, true).build();
        assert!(matches!(
            t.evaluate(&charged),
            Err(RuleError::MissingInput(_))
        ));
    }

    #[test]
    fn share_must_be_a_share() {
        for p in [
            r#"{"share": "1.5", "prices": {"residential": "1", "non-residential": "1"}}"#,
            r#"{"share": 0.3, "prices": {"residential": "1", "non-residential": "1"}}"#,
            r#"{"prices": {"residential": "1", "non-residential": "1"}}"#,
        ] {
            assert!(
                matches!(
                    try_configure::<SuspensionFee>(p),
                    Err(RuleError::BadParams(_))
                ),
                "{p}"
            );
        }
    }
}
