//! `low-income-subsidy`: the government covers part of a low-income household's heating fee
//! (低保; docs/domain.md, "Service status and subsidies").
//!
//! For customers with the `low-income` flag, the government covers `share × min(1, cap / area)`
//! of the prior lines the customer pays in the configured categories (default heating), `cap`
//! being the area cap (Harbin: 100 % up to 45 m² of usable area).
//!
//! A season fee is covered as a season fee: when a line is the day's part of a season amount
//! `T`, the subsidy is the same day's part of `S = round_fen(T × share × min(1, cap/area))`, so
//! over the season the government pays exactly S (Harbin, 60 m²: 0.75 × 2299.20 = 1724.40).
//! Rounding each day's subsidy alone would drift (1724.58). Which lines are parts of a season
//! amount, and of which:
//! - contract 0.2.0: the line says so, with its `season_amount` (the area tariffs set it). With
//!   a government share of the price (Shenyang 26 = 23.30 + 2.70 元/m²) the customer's season
//!   amount is `round(a × 26) − round(a × 2.70)`, which quantity × unit price does not give;
//! - a line without one (from a plugin built for contract 0.1.0, which cannot say): by the 0.1.0
//!   convention, when its amount is the day's part of `T = round_fen(quantity × unit price)`.
//!   That guess fails on the days where the two roundings differ, so those days are covered
//!   day by day; it is kept so that a 0.1.0 tariff's bills do not change.
//!
//! Other lines (metered heat, per-day prices) are covered day by day:
//! `round_fen(sum × share × min(1, cap/area))`.
//!
//! Emits a pair of subsidy lines: −s paid by the customer and +s paid by the government, so the
//! bill's total is unchanged and its per-payer totals move s from the customer to the
//! government. W5: heat 12.56 → subsidy 9.42; the customer owes 3.14, the government 9.42.

use heatbill_sdk::area::{AreaBasis, billed_area};
use heatbill_sdk::decimal::input;
use heatbill_sdk::params::{CategorySet, opt_decimal};
use heatbill_sdk::prelude::*;
use heatbill_sdk::season::Accrual;
use serde::Deserialize;

/// The configured subsidy.
#[derive(Debug)]
pub struct LowIncomeSubsidy {
    share: Decimal,
    area_cap: Option<Decimal>,
    area_basis: AreaBasis,
    categories: CategorySet,
    /// The subsidy lines' kind.
    line: LineKindId,
}

/// The parameters of `low-income-subsidy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The share of the fee the government covers, 0..=1 (default "1.00", Harbin 100 %).
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub share: Option<Decimal>,
    /// The area covered in m², e.g. "45" (Harbin): above it the subsidy is prorated by cap /
    /// area. Default: no cap.
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub area_cap: Option<Decimal>,
    /// The area the cap compares with: "building" (default) or "usable" (Harbin).
    #[serde(default)]
    pub area_basis: AreaBasis,
    /// The categories of prior lines subsidised, e.g. ["heating", "consumption"] (default
    /// ["heating"]).
    #[serde(default)]
    pub categories: Option<CategorySet>,
    /// The code of the pair of subsidy lines (default "subsidy").
    #[serde(default = "default_code")]
    pub code: String,
    /// Their text on the bill (default "低保采暖补贴").
    #[serde(default = "default_description")]
    pub description: String,
}

fn default_code() -> String {
    "subsidy".into()
}
fn default_description() -> String {
    "低保采暖补贴".into()
}

impl Plugin for LowIncomeSubsidy {
    type Params = Params;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Subsidy,
            description: "Low-income (低保) heating subsidy: for customers with the low-income flag, the government covers share of the customer-paid prior lines in the given categories, up to an area cap: s = round_fen(base × share × min(1, cap / area)). Emits two subsidy lines, −s paid by the customer and +s paid by the government.".into(),
            params_schema: heatbill_sdk::params::schema::<Params>(),
        }
    }

    fn configure(p: Params) -> Result<(Self, Vec<LineSpec>), RuleError> {
        let share = p.share.unwrap_or(Decimal::ONE);
        if share < Decimal::ZERO || share > Decimal::ONE {
            return Err(RuleError::BadParams(format!(
                "`share` is {share}: give the covered share between 0 and 1, e.g. \"1.00\""
            )));
        }
        if let Some(cap) = p.area_cap
            && cap <= Decimal::ZERO
        {
            return Err(RuleError::BadParams(format!(
                "`area_cap` is {cap} m²: give a positive area, e.g. \"45\", or leave it out for no cap"
            )));
        }
        let categories = p
            .categories
            .unwrap_or(CategorySet::of(&[LineCategory::Heating]));
        if categories.is_empty() {
            return Err(RuleError::BadParams(
                "`categories` is empty: list the categories subsidised, e.g. [\"heating\"]".into(),
            ));
        }
        let mut kinds = LineKinds::new();
        let line = kinds.add(line_spec(
            &p.code,
            &p.description,
            "CNY",
            LineCategory::Subsidy,
        ));
        Ok((
            LowIncomeSubsidy {
                share,
                area_cap: p.area_cap,
                area_basis: p.area_basis,
                categories,
                line,
            },
            kinds.into_specs(),
        ))
    }

    /// Low-income households only.
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL.require(bits::LOW_INCOME)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        if !day.flags.contains(CustomerFlags::LOW_INCOME) {
            return Ok(DayOutput::empty());
        }
        let accrual = Accrual::of(day)?;
        let mut base = Decimal::ZERO;
        let mut per_day = Decimal::ZERO;
        let mut season = Decimal::ZERO;
        let mut area = None;
        for l in &day.prior_lines {
            if l.payer != Payer::Customer || !self.categories.contains(l.category) {
                continue;
            }
            let amount = input(l.amount, "prior-lines.amount")?;
            base += amount;
            let t = match l.season_amount {
                Some(t) => input(t, "prior-lines.season-amount")?,
                // The 0.1.0 convention, for lines that cannot say (see the module's doc).
                None => {
                    let t = round_fen(
                        input(l.quantity, "prior-lines.quantity")?
                            * input(l.unit_price, "prior-lines.unit-price")?,
                    );
                    if accrual.season_share(t)? == Some(amount) {
                        t
                    } else {
                        Decimal::ZERO
                    }
                }
            };
            let covered = if t.is_zero() {
                None
            } else {
                accrual.season_share(round_fen(self.cover(t, day, &mut area)?))?
            };
            match covered {
                Some(c) => season += c,
                None => per_day += amount,
            }
        }
        if base <= Decimal::ZERO {
            return Ok(DayOutput::empty());
        }
        let s = season + round_fen(self.cover(per_day, day, &mut area)?);
        if s.is_zero() {
            return Ok(DayOutput::empty());
        }
        let ratio = self.cover(Decimal::ONE, day, &mut area)?;
        Ok(DayOutput::lines(vec![
            // Quantity: the subsidised base; unit price: the share of it covered.
            Line::new(self.line, base, ratio, -s, Payer::Customer)?,
            Line::new(self.line, base, ratio, s, Payer::Government)?,
        ]))
    }
}

impl LowIncomeSubsidy {
    /// `x × share × min(1, cap / area)`, multiplying before dividing (one division, exact to 28
    /// digits). The billed area is read once per customer-day, and only when there is a cap.
    fn cover(
        &self,
        x: Decimal,
        day: &CustomerDay,
        area: &mut Option<Decimal>,
    ) -> Result<Decimal, RuleError> {
        let covered = x * self.share;
        let Some(cap) = self.area_cap else {
            return Ok(covered);
        };
        let a = match *area {
            Some(a) => a,
            None => *area.insert(billed_area(self.area_basis, day)?),
        };
        Ok(if a > cap { covered * cap / a } else { covered })
    }
}

heatbill_sdk::export!(LowIncomeSubsidy);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    const HARBIN: &str = r#"{"share": "1.00", "area_cap": "45", "area_basis": "usable"}"#;

    /// A season fee is covered as a season fee: over Harbin's 183 days the government pays
    /// exactly 0.75 × 2299.20 = 1724.40, and day 1 is W5's 9.42.
    #[test]
    fn a_season_fee_is_covered_exactly_over_the_season() {
        use heatbill_sdk::testing::dec;
        let t = configure::<LowIncomeSubsidy>(HARBIN);
        let fee = Decimal::new(229_920, 2);
        let mut total = Decimal::ZERO;
        let mut day1 = None;
        for k in 1..=183 {
            let heat = cumulative_share(fee, k, 183).unwrap();
            let mut d = day("2025-10-20")
                .low_income()
                .usable_area("60.00")
                .regular(k, 183)
                .build();
            d.prior_lines.push(PriorLine {
                code: "heat".into(),
                entry: 1,
                category: LineCategory::Heating,
                quantity: dec("60.00"),
                unit_price: dec("38.32"),
                amount: WitDecimal::try_from(heat).unwrap(),
                payer: Payer::Customer,
                // A 0.1.0 tariff's line: no season amount; the convention finds it.
                season_amount: None,
            });
            let out = t.evaluate(&d).unwrap();
            let government = out.lines[1].amount.to_decimal().unwrap();
            day1.get_or_insert(government);
            total += government;
        }
        assert_eq!(day1, Some(Decimal::new(942, 2)));
        assert_eq!(total, Decimal::new(172_440, 2));
    }

    /// The government share (Shenyang 26 = 23.30 + 2.70 元/m², 80.15 m², capped at 45 m²): the
    /// customer's season amount is round(80.15 × 26) − round(80.15 × 2.70) = 2083.90 − 216.41 =
    /// 1867.49, the subsidy's 1867.49 × 45 / 80.15 = 1048.50, spread over the 151 days: day 2
    /// is 6.95 (rounding alone gives 6.94), and the season adds up to 1048.50.
    #[test]
    fn a_season_fee_with_a_government_share_is_covered_from_its_season_amount() {
        use heatbill_sdk::testing::dec;
        let t = configure::<LowIncomeSubsidy>(r#"{"share": "1.00", "area_cap": "45"}"#);
        let fee = Decimal::new(186_749, 2);
        let mut total = Decimal::ZERO;
        let mut day2 = None;
        for k in 1..=151 {
            let heat = cumulative_share(fee, k, 151).unwrap();
            let d = day("2025-11-01")
                .low_income()
                .building_area("80.15")
                .regular(k, 151)
                .prior_line(PriorLine {
                    code: "heat".into(),
                    entry: 1,
                    category: LineCategory::Heating,
                    quantity: dec("80.15"),
                    unit_price: dec("23.30"),
                    amount: WitDecimal::try_from(heat).unwrap(),
                    payer: Payer::Customer,
                    season_amount: Some(WitDecimal::try_from(fee).unwrap()),
                })
                .build();
            let out = t.evaluate(&d).unwrap();
            let government = out.lines[1].amount.to_decimal().unwrap();
            if k == 2 {
                day2 = Some(government);
            }
            total += government;
        }
        assert_eq!(day2, Some(Decimal::new(695, 2)));
        assert_eq!(total, Decimal::new(104_850, 2));
    }

    #[test]
    fn w5_harbin_low_income() {
        let t = configure::<LowIncomeSubsidy>(HARBIN);
        let d = day("2025-10-20")
            .low_income()
            .usable_area("60.00")
            .regular(1, 183)
            .prior(LineCategory::Heating, "12.56", Payer::Customer)
            .build();
        let out = t.evaluate(&d);
        assert_eq!(amounts(&out), ["-9.42", "9.42"]);
        let lines = out.unwrap().lines;
        assert_eq!(
            (lines[0].payer, lines[1].payer),
            (Payer::Customer, Payer::Government)
        );
        // The customer owes 12.56 − 9.42 = 3.14.
        let customer = Decimal::new(1256, 2) + lines[0].amount.to_decimal().unwrap();
        assert_eq!(customer, Decimal::new(314, 2));
    }

    #[test]
    fn under_the_cap_the_whole_fee_is_covered() {
        let t = configure::<LowIncomeSubsidy>(HARBIN);
        let d = day("2025-10-20")
            .low_income()
            .usable_area("40")
            .prior(LineCategory::Heating, "8.37", Payer::Customer)
            .build();
        assert_eq!(amounts(&t.evaluate(&d)), ["-8.37", "8.37"]);
    }

    #[test]
    fn only_low_income_customer_paid_lines_in_the_categories() {
        let t = configure::<LowIncomeSubsidy>(HARBIN);
        let not_low = day("2025-10-20")
            .usable_area("40")
            .prior(LineCategory::Heating, "8", Payer::Customer)
            .build();
        assert!(t.evaluate(&not_low).unwrap().lines.is_empty());
        let other = day("2025-10-20")
            .low_income()
            .usable_area("40")
            .prior(LineCategory::Heating, "1.43", Payer::Government)
            .prior(LineCategory::LateFee, "1.15", Payer::Customer)
            .build();
        assert!(t.evaluate(&other).unwrap().lines.is_empty());
        let missing_area = day("2025-10-20")
            .low_income()
            .prior(LineCategory::Heating, "8", Payer::Customer)
            .build();
        assert!(matches!(
            t.evaluate(&missing_area),
            Err(RuleError::MissingInput(_))
        ));
    }

    #[test]
    fn partial_share_and_more_categories() {
        let t = configure::<LowIncomeSubsidy>(
            r#"{"share": "0.5", "categories": ["heating", "consumption"]}"#,
        );
        let d = day("2025-11-15")
            .low_income()
            .building_area("80")
            .prior(LineCategory::Heating, "7.93", Payer::Customer)
            .prior(LineCategory::Consumption, "53.34", Payer::Customer)
            .build();
        // (7.93 + 53.34) × 0.5 = 30.635 → 30.64.
        assert_eq!(amounts(&t.evaluate(&d)), ["-30.64", "30.64"]);
    }

    #[test]
    fn bad_params() {
        for p in [
            r#"{"share": "1.2"}"#,
            r#"{"area_cap": "0"}"#,
            r#"{"categories": []}"#,
            r#"{"categories": ["heat"]}"#,
            r#"{"cap": "45"}"#,
        ] {
            assert!(
                matches!(
                    try_configure::<LowIncomeSubsidy>(p),
                    Err(RuleError::BadParams(_))
                ),
                "{p}"
            );
        }
    }
}
