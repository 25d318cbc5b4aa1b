//! `metered-tariff`: the two-part metered tariff (两部制; docs/domain.md, "Tariffs").
//!
//! Bills active customers with the `metered` flag (the others are `area-tariff`'s and
//! `suspension-fee`'s): a basic part per m² per season, priced and spread exactly like
//! `area-tariff` (same area keys: the `prices` are the basic prices, or with `basic_share` the
//! area prices the basic part is a share of: Xuchang's basic part is 30 % of its per-day area
//! price, `basic_share = "0.30"`), plus the day's metered
//! heat × the unit price of the customer's class, rounded once. The unit price is per GJ, or per
//! kWh or MWh with `price_unit` (Xuchang 0.158 元/kWh): the day's heat, which the host hands over
//! in GJ converted exactly from the meter's unit, is billed in the price's unit, and the line
//! shows that unit (120 kWh read → 0.432 GJ → 120 kWh × 0.158 = 18.96). A heating day without a
//! reading is a `missing-input` error unless `estimate_gj_per_m2` sets the policy of estimating
//! it as area × that rate. Free early-start and extension days get a 0.00 basic line (and a 0.00
//! metered line recording the reading, if any).

use heatbill_sdk::area::{AreaLines, AreaPricing, ClassPrices, WithArea};
use heatbill_sdk::params::opt_decimal;
use heatbill_sdk::prelude::*;
use heatbill_sdk::season::Accrual;
use heatbill_sdk::units::HeatUnit;
use serde::Deserialize;

/// The configured tariff.
#[derive(Debug)]
pub struct MeteredTariff {
    basic: AreaPricing,
    /// The basic line's kind, and the government's with a payer split.
    basic_lines: AreaLines,
    /// The metered line's kind.
    metered: LineKindId,
    /// The basic part's share of the area prices (1 when the prices are the basic prices).
    basic_share: Decimal,
    residential: Decimal,
    non_residential: Decimal,
    estimate: Option<Decimal>,
    price_unit: HeatUnit,
}

/// The keys of `metered-tariff` besides the area keys. The area keys' `prices` are the basic
/// part (基本热价) per m², or, with `basic_share`, the area prices the basic part is a share of.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metered {
    /// The price per price_unit of metered heat by class, e.g. {"residential": "44.45",
    /// "non-residential": "44.45"} (Beijing 44.45 元/GJ; Harbin 2011 39.14 元/GJ; Xuchang
    /// 0.158 元/kWh).
    pub unit_prices: ClassPrices,
    /// The unit the unit prices are per: "GJ" (default), "kWh" or "MWh". The metered line's
    /// quantity and unit are in it; the host's readings, in GJ, are converted exactly (1 kWh =
    /// 0.0036 GJ, 1 MWh = 3.6 GJ).
    #[serde(default)]
    pub price_unit: HeatUnit,
    /// The basic part as a share of the area prices, 0..=1, e.g. "0.30" (Xuchang: 30 % of the
    /// per-day area price): the basic line is billed at prices × basic_share, rounded as the
    /// area fee is. Default none: the prices are the basic prices.
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub basic_share: Option<Decimal>,
    /// The company's policy for a heating day without a meter reading: estimate the heat as
    /// area × this many GJ per m², e.g. "0.015". Default none: a missing reading is a
    /// missing-input error.
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub estimate_gj_per_m2: Option<Decimal>,
    /// The code of the basic line (default "basic").
    #[serde(default = "default_basic_code")]
    pub basic_code: String,
    /// The text of the basic line (default "基本热费").
    #[serde(default = "default_basic_description")]
    pub basic_description: String,
    /// The code of the metered line (default "metered").
    #[serde(default = "default_metered_code")]
    pub metered_code: String,
    /// The text of the metered line (default "计量热费").
    #[serde(default = "default_metered_description")]
    pub metered_description: String,
    /// With government_prices: the code of the government's basic line (default
    /// "basic-government").
    #[serde(default = "default_government_code")]
    pub government_code: String,
    /// With government_prices: the text of the government's basic line (default
    /// "基本热费（政府承担）").
    #[serde(default = "default_government_description")]
    pub government_description: String,
}

fn default_basic_code() -> String {
    "basic".into()
}
fn default_basic_description() -> String {
    "基本热费".into()
}
fn default_metered_code() -> String {
    "metered".into()
}
fn default_metered_description() -> String {
    "计量热费".into()
}
fn default_government_code() -> String {
    "basic-government".into()
}
fn default_government_description() -> String {
    "基本热费（政府承担）".into()
}

impl Plugin for MeteredTariff {
    type Params = WithArea<Metered>;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Tariff,
            description: "Two-part metered tariff (两部制) for active customers with the metered flag: a basic part per m² per season by class, spread over the season by cumulative rounding (the area keys of area-tariff, prices = the basic prices, or the area prices times basic_share), plus the day's metered heat × the unit price per GJ (or kWh, MWh) of the class, rounded once. A heating day without a reading is a missing-input error unless estimate_gj_per_m2 estimates it. Needs a season plugin before it.".into(),
            params_schema: heatbill_sdk::params::schema::<WithArea<Metered>>(),
        }
    }

    fn configure(p: WithArea<Metered>) -> Result<(Self, Vec<LineSpec>), RuleError> {
        let basic = AreaPricing::new(p.area)?;
        let m = p.extra;
        for (name, v) in [
            ("unit_prices.residential", m.unit_prices.residential),
            ("unit_prices.non-residential", m.unit_prices.non_residential),
        ] {
            if v < Decimal::ZERO {
                return Err(RuleError::BadParams(format!(
                    "`{name}` is {v}: it must not be negative"
                )));
            }
        }
        if let Some(share) = m.basic_share
            && (share < Decimal::ZERO || share > Decimal::ONE)
        {
            return Err(RuleError::BadParams(format!(
                "`basic_share` is {share}: give the basic part's share of the area prices between 0 and 1, e.g. \"0.30\""
            )));
        }
        if let Some(e) = m.estimate_gj_per_m2
            && e < Decimal::ZERO
        {
            return Err(RuleError::BadParams(format!(
                "`estimate_gj_per_m2` is {e}: it must not be negative"
            )));
        }
        let mut kinds = LineKinds::new();
        let basic_kind = kinds.add(line_spec(
            &m.basic_code,
            &m.basic_description,
            "m2",
            LineCategory::Heating,
        ));
        let metered = kinds.add(line_spec(
            &m.metered_code,
            &m.metered_description,
            m.price_unit.as_str(),
            LineCategory::Consumption,
        ));
        let government = basic.has_split().then(|| {
            kinds.add(line_spec(
                &m.government_code,
                &m.government_description,
                "m2",
                LineCategory::Heating,
            ))
        });
        Ok((
            MeteredTariff {
                basic,
                basic_lines: AreaLines {
                    customer: basic_kind,
                    government,
                    record_free_days: true,
                },
                metered,
                basic_share: m.basic_share.unwrap_or(Decimal::ONE),
                residential: m.unit_prices.residential,
                non_residential: m.unit_prices.non_residential,
                estimate: m.estimate_gj_per_m2,
                price_unit: m.price_unit,
            },
            kinds.into_specs(),
        ))
    }

    /// Active, metered customers only.
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL
            .require(bits::METERED)
            .exclude(bits::SUSPENDED)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        if day.status != ServiceStatus::Active || !day.flags.contains(CustomerFlags::METERED) {
            return Ok(DayOutput::empty());
        }
        let accrual = Accrual::of(day)?;
        if !accrual.is_heating_day() {
            return Ok(DayOutput::empty());
        }
        let mut lines = Vec::with_capacity(2);
        self.basic
            .push_lines(day, self.basic_share, self.basic_lines, &mut lines)?;
        let unit_price = match day.class {
            CustomerClass::Residential => self.residential,
            CustomerClass::NonResidential => self.non_residential,
        };
        let heat = match (day.heat, self.estimate) {
            (Some(h), _) => {
                let h = heatbill_sdk::decimal::input(h, "heat")?;
                if h < Decimal::ZERO {
                    return Err(RuleError::InvalidInput(format!(
                        "the meter reading is {h} GJ: heat cannot be negative"
                    )));
                }
                Some(h)
            }
            (None, _) if accrual == Accrual::Free => None,
            (None, Some(per_m2)) => Some(self.basic.area(day)? * per_m2),
            (None, None) => {
                return Err(RuleError::MissingInput(format!(
                    "no meter reading on {} for a metered customer: import the reading, or set the tariff's estimate_gj_per_m2 policy",
                    day.date
                )));
            }
        };
        if let Some(heat_gj) = heat {
            let heat = self.price_unit.from_gj(heat_gj)?;
            let amount = if accrual == Accrual::Free {
                Decimal::new(0, 2)
            } else {
                // Exact, then rounded once (the heat in GJ times the price, over the unit).
                round_fen(self.price_unit.cost(heat_gj, unit_price)?)
            };
            // The line shows the heat in the price's unit; a conversion that is not a finite
            // decimal (GJ read, priced per kWh) is shown to 6 decimals, the amount having been
            // computed from the whole quotient.
            let shown = if heat.scale() > 6 {
                heat.round_dp_with_strategy(6, heatbill_sdk::RoundingStrategy::MidpointAwayFromZero)
            } else {
                heat
            };
            lines.push(Line::new(
                self.metered,
                shown,
                unit_price,
                amount,
                Payer::Customer,
            )?);
        }
        Ok(DayOutput::lines(lines))
    }
}

heatbill_sdk::export!(MeteredTariff);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    const BEIJING: &str = r#"{"prices": {"residential": "12", "non-residential": "12"},
        "unit_prices": {"residential": "44.45", "non-residential": "44.45"}}"#;

    /// Xuchang prices heat per kWh: 120 kWh read, handed over as 0.432 GJ, billed as 120 kWh
    /// × 0.158 = 18.96, the line in kWh; a reading taken in GJ is billed at the same price per
    /// kWh, rounded once (1.2 GJ = 333.33… kWh → 52.67).
    #[test]
    fn a_price_per_kwh_bills_the_reading_in_kwh() {
        let t = configure::<MeteredTariff>(
            r#"{"prices": {"residential": "0", "non-residential": "0"},
                "unit_prices": {"residential": "0.158", "non-residential": "0.158"},
                "price_unit": "kWh"}"#,
        );
        assert_eq!(t.specs()[1].unit, "kWh");
        let d = day("2025-11-15")
            .metered()
            .building_area("80")
            .heat("0.432")
            .regular(1, 121)
            .build();
        let out = t.evaluate(&d).unwrap();
        let metered = &out.lines[1];
        assert_eq!(metered.amount.to_decimal().unwrap(), Decimal::new(1896, 2));
        assert_eq!(metered.quantity.to_decimal().unwrap(), Decimal::new(120, 0));
        let d = day("2025-11-15")
            .metered()
            .building_area("80")
            .heat("1.2")
            .regular(1, 121)
            .build();
        assert_eq!(amounts(&t.evaluate(&d))[1], "52.67");
        assert!(matches!(
            try_configure::<MeteredTariff>(
                r#"{"prices": {"residential": "0", "non-residential": "0"},
                    "unit_prices": {"residential": "1", "non-residential": "1"},
                    "price_unit": "kJ"}"#
            ),
            Err(RuleError::BadParams(_))
        ));
    }

    /// Xuchang's basic part is 30 % of its per-day area price 0.18 元/m²: with `basic_share`
    /// the integrator writes the area price and the share, not 0.054 multiplied out by hand.
    /// 100 m² → round(100 × 0.18 × 0.30) = 5.40 a heating day; 85.33 m² → 4.60782 → 4.61.
    #[test]
    fn the_basic_part_as_a_share_of_the_area_price() {
        let t = configure::<MeteredTariff>(
            r#"{"prices": {"residential": "0.18", "non-residential": "0.18"}, "pricing": "day",
                "basic_share": "0.30", "price_unit": "kWh",
                "unit_prices": {"residential": "0.158", "non-residential": "0.158"}}"#,
        );
        let d = |area: &str| {
            day("2025-12-01")
                .metered()
                .building_area(area)
                .heat("0.432")
                .regular(17, 121)
                .build()
        };
        assert_eq!(amounts(&t.evaluate(&d("100"))), ["5.40", "18.96"]);
        assert_eq!(amounts(&t.evaluate(&d("85.33"))), ["4.61", "18.96"]);
        let basic = &t.evaluate(&d("100")).unwrap().lines[0];
        assert_eq!(basic.unit_price.to_decimal().unwrap(), Decimal::new(54, 3));
        for share in ["1.5", "-0.1"] {
            let params = format!(
                r#"{{"prices": {{"residential": "1", "non-residential": "1"}}, "basic_share": "{share}",
                    "unit_prices": {{"residential": "1", "non-residential": "1"}}}}"#
            );
            assert!(matches!(
                try_configure::<MeteredTariff>(&params),
                Err(RuleError::BadParams(m)) if m.contains("basic_share")
            ));
        }
    }

    #[test]
    fn w3_beijing_two_part() {
        let t = configure::<MeteredTariff>(BEIJING);
        let d = day("2025-11-15")
            .metered()
            .building_area("80")
            .heat("1.20")
            .regular(1, 121)
            .build();
        let out = t.evaluate(&d);
        assert_eq!(amounts(&out), ["7.93", "53.34"]);
        let lines = out.unwrap().lines;
        assert_eq!(t.specs()[usize::from(lines[1].spec)].code, "metered");
        assert_eq!(
            t.specs()[usize::from(lines[1].spec)].category,
            LineCategory::Consumption
        );
        assert_eq!(lines[1].quantity.to_string(), "1.20");
    }

    #[test]
    fn basic_part_sums_to_the_season() {
        let t = configure::<MeteredTariff>(BEIJING);
        let total: Decimal = (1..=121)
            .map(|k| {
                day("2025-11-15")
                    .metered()
                    .building_area("80")
                    .heat("0")
                    .regular(k, 121)
                    .build()
            })
            .map(|d| {
                t.evaluate(&d).unwrap().lines[0]
                    .amount
                    .to_decimal()
                    .unwrap()
            })
            .sum();
        assert_eq!(total, Decimal::from(960));
    }

    #[test]
    fn missing_reading_is_an_error_unless_estimated() {
        let t = configure::<MeteredTariff>(BEIJING);
        let d = day("2025-11-15")
            .metered()
            .building_area("80")
            .regular(1, 121)
            .build();
        assert!(matches!(t.evaluate(&d), Err(RuleError::MissingInput(_))));
        let e = configure::<MeteredTariff>(
            r#"{"prices": {"residential": "12", "non-residential": "12"},
            "unit_prices": {"residential": "44.45", "non-residential": "44.45"}, "estimate_gj_per_m2": "0.015"}"#,
        );
        // 80 × 0.015 = 1.2 GJ estimated.
        assert_eq!(amounts(&e.evaluate(&d)), ["7.93", "53.34"]);
    }

    #[test]
    fn free_days_record_the_reading_at_zero() {
        let t = configure::<MeteredTariff>(BEIJING);
        let d = day("2025-11-10")
            .metered()
            .building_area("80")
            .heat("1.0")
            .early(121, false)
            .build();
        assert_eq!(amounts(&t.evaluate(&d)), ["0.00", "0.00"]);
        let no_reading = day("2025-11-10")
            .metered()
            .building_area("80")
            .early(121, false)
            .build();
        assert_eq!(amounts(&t.evaluate(&no_reading)), ["0.00"]);
    }

    #[test]
    fn only_metered_active_customers_on_heating_days() {
        let t = configure::<MeteredTariff>(BEIJING);
        let not_metered = day("2025-11-15")
            .building_area("80")
            .heat("1")
            .regular(1, 121)
            .build();
        assert!(t.evaluate(&not_metered).unwrap().lines.is_empty());
        let outside = day("2025-06-15")
            .metered()
            .building_area("80")
            .outside(121)
            .build();
        assert!(t.evaluate(&outside).unwrap().lines.is_empty());
        let negative = day("2025-11-15")
            .metered()
            .building_area("80")
            .heat("-1")
            .regular(1, 121)
            .build();
        assert!(matches!(
            t.evaluate(&negative),
            Err(RuleError::InvalidInput(_))
        ));
    }

    #[test]
    fn bad_params() {
        for p in [
            r#"{"prices": {"residential": "12", "non-residential": "12"}}"#,
            r#"{"prices": {"residential": "12", "non-residential": "12"}, "unit_prices": {"residential": "-1", "non-residential": "1"}}"#,
            r#"{"prices": {"residential": "12", "non-residential": "12"}, "unit_prices": {"residential": "1", "non-residential": "1"}, "estimate": "1"}"#,
        ] {
            assert!(
                matches!(
                    try_configure::<MeteredTariff>(p),
                    Err(RuleError::BadParams(_))
                ),
                "{p}"
            );
        }
    }
}
