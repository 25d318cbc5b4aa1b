//! `area-tariff`: the area-based heating tariff (按面积计费; docs/domain.md, "Tariffs").
//!
//! Bills active, non-metered customers: metered customers are billed by `metered-tariff`,
//! suspended ones by `suspension-fee` (a chain holds the three side by side; each ignores the
//! others' customers). The season fee `T = round_fen(area × price × surcharge factor)` is spread
//! over the regular season by cumulative rounding; early-start and extension days are charged
//! at the daily rate `round_fen(T/N)` or recorded free with a 0.00 line; outside the season
//! (or without a season position) nothing is billed. With `pricing = "day"` the price is per
//! heating day: `round_fen(area × price)`.
//!
//! All pricing rules (area basis, class prices, special classes, ceiling surcharge, payer
//! split) are parameters, shared with the other area-priced plugins through
//! [`heatbill_sdk::area`].

use heatbill_sdk::area::{AreaLines, AreaPricing, WithArea};
use heatbill_sdk::prelude::*;
use serde::Deserialize;

/// The configured tariff.
#[derive(Debug)]
pub struct AreaTariff {
    pricing: AreaPricing,
    lines: AreaLines,
}

/// The line naming keys of `area-tariff` (besides the area keys of [`heatbill_sdk::area::AreaParams`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Naming {
    /// The code of the heating line (default "heat").
    #[serde(default = "default_code")]
    pub code: String,
    /// The text of the heating line on the bill (default "采暖费").
    #[serde(default = "default_description")]
    pub description: String,
    /// With government_prices: the code of the government's line (default "heat-government").
    #[serde(default = "default_government_code")]
    pub government_code: String,
    /// With government_prices: the text of the government's line (default "采暖费（政府承担）").
    #[serde(default = "default_government_description")]
    pub government_description: String,
}

fn default_code() -> String {
    "heat".into()
}
fn default_description() -> String {
    "采暖费".into()
}
fn default_government_code() -> String {
    "heat-government".into()
}
fn default_government_description() -> String {
    "采暖费（政府承担）".into()
}

impl Plugin for AreaTariff {
    type Params = WithArea<Naming>;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Tariff,
            description: "Area-based heating fee (按面积计费) for active, non-metered customers: area (building or usable) × price per m² by class, with special classes, a ceiling-height surcharge and an optional government share (payer split). A per-season price is spread over the regular season's days by cumulative rounding so the days add up to the season fee; early-start and extension days are charged at the daily rate or recorded free with a 0.00 line; a per-day price is rounded per heating day. Needs a season plugin before it.".into(),
            params_schema: heatbill_sdk::params::schema::<WithArea<Naming>>(),
        }
    }

    fn configure(p: WithArea<Naming>) -> Result<(Self, Vec<LineSpec>), RuleError> {
        let pricing = AreaPricing::new(p.area)?;
        let mut kinds = LineKinds::new();
        let customer = kinds.add(line_spec(
            &p.extra.code,
            &p.extra.description,
            "m2",
            LineCategory::Heating,
        ));
        let government = pricing.has_split().then(|| {
            kinds.add(line_spec(
                &p.extra.government_code,
                &p.extra.government_description,
                "m2",
                LineCategory::Heating,
            ))
        });
        let lines = AreaLines {
            customer,
            government,
            record_free_days: true,
        };
        Ok((AreaTariff { pricing, lines }, kinds.into_specs()))
    }

    #[inline]
    /// Active, unmetered customers only (the others are `suspension-fee`'s and `metered-tariff`'s).
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL.exclude(bits::SUSPENDED | bits::METERED)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        if day.status != ServiceStatus::Active || day.flags.contains(CustomerFlags::METERED) {
            return Ok(DayOutput::empty());
        }
        let mut lines = Vec::new();
        self.pricing
            .push_lines(day, Decimal::ONE, self.lines, &mut lines)?;
        Ok(DayOutput::lines(lines))
    }
}

heatbill_sdk::export!(AreaTariff);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    const HARBIN: &str = r#"{"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"},
        "ceiling_surcharge": {"threshold": "3.2", "step": "0.1", "rate": "0.03", "steps": "completed"}}"#;
    const BEIJING: &str = r#"{"prices": {"residential": "24", "non-residential": "45"}}"#;
    const SHENYANG: &str = r#"{"prices": {"residential": "26", "non-residential": "32"},
        "government_prices": {"residential": "2.7"},
        "special_classes": {"garage": {"share": "0.5", "share_of": "non-residential"}},
        "ceiling_surcharge": {"threshold": "3.5", "step": "0.3", "rate": "0.10"}}"#;

    fn sum(params: &str, n: u32, build: impl Fn(u32) -> CustomerDay) -> Decimal {
        let t = configure::<AreaTariff>(params);
        (1..=n)
            .flat_map(|k| t.evaluate(&build(k)).unwrap().lines)
            .map(|l| l.amount.to_decimal().unwrap())
            .sum()
    }

    #[test]
    fn w1_harbin_first_days_and_season() {
        let t = configure::<AreaTariff>(HARBIN);
        let d = |k| {
            day("2025-10-20")
                .usable_area("60.00")
                .building_area("75")
                .regular(k, 183)
                .build()
        };
        assert_eq!(amounts(&t.evaluate(&d(1))), ["12.56"]);
        assert_eq!(amounts(&t.evaluate(&d(2))), ["12.57"]);
        assert_eq!(amounts(&t.evaluate(&d(3))), ["12.56"]);
        let line = t.evaluate(&d(1)).unwrap().lines[0];
        assert_eq!(line.quantity.to_decimal().unwrap(), Decimal::from(60));
        assert_eq!(line.payer, Payer::Customer);
        assert_eq!(t.specs()[0].code, "heat");
        assert_eq!(sum(HARBIN, 183, d), Decimal::new(229920, 2));
    }

    #[test]
    fn w2_beijing_first_days_and_season() {
        let t = configure::<AreaTariff>(BEIJING);
        let d = |k| {
            day("2025-11-15")
                .building_area("80")
                .regular(k, 121)
                .build()
        };
        let got: Vec<_> = (1..=3).flat_map(|k| amounts(&t.evaluate(&d(k)))).collect();
        assert_eq!(got, ["15.87", "15.87", "15.86"]);
        assert_eq!(sum(BEIJING, 121, d), Decimal::from(1920));
    }

    #[test]
    fn leap_season_sums_exactly() {
        let d = |k| {
            day("2027-10-20")
                .usable_area("60.00")
                .regular(k, 184)
                .build()
        };
        assert_eq!(sum(HARBIN, 184, d), Decimal::new(229920, 2));
    }

    #[test]
    fn shenyang_payer_split_two_lines_each_summing_to_its_season_amount() {
        let t = configure::<AreaTariff>(SHENYANG);
        assert_eq!(t.specs()[1].code, "heat-government");
        let out = t
            .evaluate(
                &day("2025-11-01")
                    .building_area("80")
                    .regular(1, 151)
                    .build(),
            )
            .unwrap();
        assert_eq!(out.lines.len(), 2);
        assert_eq!(
            (out.lines[0].payer, out.lines[1].payer),
            (Payer::Customer, Payer::Government)
        );
        assert_eq!(out.lines[0].amount.to_string(), "12.34"); // 1864 / 151 = 12.344…
        assert_eq!(out.lines[1].amount.to_string(), "1.43"); // 216 / 151 = 1.430…
        let (mut c, mut g) = (Decimal::ZERO, Decimal::ZERO);
        for k in 1..=151 {
            let o = t
                .evaluate(
                    &day("2025-11-01")
                        .building_area("80")
                        .regular(k, 151)
                        .build(),
                )
                .unwrap();
            c += o.lines[0].amount.to_decimal().unwrap();
            g += o.lines[1].amount.to_decimal().unwrap();
        }
        assert_eq!((c, g), (Decimal::from(1864), Decimal::from(216)));
        // Non-residential customers have no government part: one line.
        let nr = t
            .evaluate(
                &day("2025-11-01")
                    .non_residential()
                    .building_area("100")
                    .regular(1, 151)
                    .build(),
            )
            .unwrap();
        assert_eq!(nr.lines.len(), 1);
    }

    #[test]
    fn ceiling_surcharge_in_the_season_fee() {
        // Harbin non-residential, 100 m² usable, 3.55 m: 3 completed steps, +9 %:
        // T = 100 × 43.3 × 1.09 = 4719.70; over the whole season the days add up to it.
        let d = |k| {
            day("2025-10-20")
                .non_residential()
                .usable_area("100")
                .ceiling_height("3.55")
                .regular(k, 183)
                .build()
        };
        assert_eq!(sum(HARBIN, 183, d), Decimal::new(471970, 2));
        // Shenyang, 3.81 m: 2 started steps, +20 %: 100 × 32 × 1.2 = 3840.
        let d = |k| {
            day("2025-11-01")
                .non_residential()
                .building_area("100")
                .ceiling_height("3.81")
                .regular(k, 151)
                .build()
        };
        assert_eq!(sum(SHENYANG, 151, d), Decimal::from(3840));
    }

    #[test]
    fn garage_special_class() {
        // Shenyang garage, 20 m²: 50 % of 32 = 16 元/m², season 320.00.
        let d = |k| {
            day("2025-11-01")
                .special_class("garage")
                .building_area("20")
                .regular(k, 151)
                .build()
        };
        assert_eq!(sum(SHENYANG, 151, d), Decimal::from(320));
        let t = configure::<AreaTariff>(SHENYANG);
        let other = day("2025-11-01")
            .special_class("warehouse")
            .building_area("20")
            .regular(1, 151)
            .build();
        assert!(matches!(t.evaluate(&other), Err(RuleError::Unsupported(_))));
    }

    #[test]
    fn per_day_price() {
        // Xuchang 0.18 元/m²/day, 80 m²: 14.40 every heating day.
        let t = configure::<AreaTariff>(
            r#"{"pricing": "day", "prices": {"residential": "0.18", "non-residential": "0.25"}}"#,
        );
        let d = day("2025-11-15")
            .building_area("80")
            .regular(17, 121)
            .build();
        assert_eq!(amounts(&t.evaluate(&d)), ["14.40"]);
        let d = day("2025-11-15")
            .building_area("80.55")
            .regular(17, 121)
            .build();
        assert_eq!(amounts(&t.evaluate(&d)), ["14.50"]); // 14.499 rounds to 14.50
    }

    #[test]
    fn early_and_extended_days() {
        let t = configure::<AreaTariff>(HARBIN);
        let free = t
            .evaluate(
                &day("2025-10-15")
                    .usable_area("60")
                    .early(183, false)
                    .build(),
            )
            .unwrap();
        assert_eq!(free.lines.len(), 1);
        assert!(free.lines[0].amount.to_decimal().unwrap().is_zero());
        assert_eq!(
            free.lines[0].quantity.to_decimal().unwrap(),
            Decimal::from(60)
        );
        let charged = t.evaluate(&day("2025-10-15").usable_area("60").early(183, true).build());
        assert_eq!(amounts(&charged), ["12.56"]);
        let ext = t.evaluate(
            &day("2026-04-25")
                .usable_area("60")
                .extended(183, true)
                .build(),
        );
        assert_eq!(amounts(&ext), ["12.56"]);
        let outside = t
            .evaluate(&day("2026-06-01").usable_area("60").outside(183).build())
            .unwrap();
        assert!(outside.lines.is_empty());
        let no_season = t
            .evaluate(&day("2026-01-01").usable_area("60").build())
            .unwrap();
        assert!(no_season.lines.is_empty());
    }

    #[test]
    fn skips_metered_and_suspended_customers() {
        let t = configure::<AreaTariff>(BEIJING);
        let m = day("2025-11-15")
            .building_area("80")
            .metered()
            .regular(1, 121)
            .build();
        assert!(t.evaluate(&m).unwrap().lines.is_empty());
        let s = day("2025-11-15")
            .building_area("80")
            .suspended()
            .regular(1, 121)
            .build();
        assert!(t.evaluate(&s).unwrap().lines.is_empty());
    }

    #[test]
    fn missing_usable_area_is_a_missing_input() {
        let t = configure::<AreaTariff>(HARBIN);
        let d = day("2025-10-20")
            .building_area("75")
            .regular(1, 183)
            .build();
        assert!(matches!(t.evaluate(&d), Err(RuleError::MissingInput(_))));
    }

    #[test]
    fn custom_codes_and_bad_params() {
        let t = configure::<AreaTariff>(
            r#"{"prices": {"residential": "24", "non-residential": "45"}, "code": "heating", "description": "Heating"}"#,
        );
        assert_eq!(t.specs()[0].code, "heating");
        for p in [
            r#"{"prices": {"residential": 24, "non-residential": "45"}}"#,
            r#"{"prices": {"residential": "24", "non-residential": "45"}, "code": "has space"}"#,
            r#"{"prices": {"residential": "24", "non-residential": "45"}, "colour": "red"}"#,
            r#"{"prices": {"residential": "24", "non-residential": "45"}, "area_basis": "floor"}"#,
            r#"{}"#,
        ] {
            assert!(
                matches!(try_configure::<AreaTariff>(p), Err(RuleError::BadParams(_))),
                "{p}"
            );
        }
    }
}
