//! `late-fee`: a daily late fee on arrears (滞纳金; docs/domain.md, "Service status and subsidies").
//!
//! On every bill date from the company's due date on, a customer whose principal is overdue
//! (`arrears-since` set and not after the bill date) pays `round_fen(arrears × daily_rate)`:
//! simple interest on the principal only (the host's `arrears` excludes earlier late fees),
//! rounded per day. Harbin: 1‰ a day from January 1st; Tianjin caps the rate at 2‰, which
//! `max_daily_rate` enforces when configuring. W6: 1149.60 × 0.001 → 1.15.

use heatbill_sdk::params::opt_decimal;
use heatbill_sdk::prelude::*;
use serde::Deserialize;

/// The configured late fee.
#[derive(Debug)]
pub struct LateFee {
    rate: Decimal,
    due: Date,
    /// The late-fee line's kind.
    line: LineKindId,
}

/// The parameters of `late-fee`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The fee per day as a share of the overdue principal, e.g. "0.001" (1‰, Harbin).
    #[serde(with = "heatbill_sdk::params::decimal")]
    #[schemars(with = "heatbill_sdk::params::DecimalText")]
    pub daily_rate: Decimal,
    /// The first day a late fee accrues, e.g. "2026-01-01" (Harbin: January 1st).
    pub due_date: Date,
    /// The legal cap on the daily rate, e.g. "0.002" (Tianjin 2‰): a daily_rate above it is
    /// refused. Default none.
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]
    pub max_daily_rate: Option<Decimal>,
    /// The code of the late-fee line (default "late-fee").
    #[serde(default = "default_code")]
    pub code: String,
    /// Its text on the bill (default "滞纳金").
    #[serde(default = "default_description")]
    pub description: String,
}

fn default_code() -> String {
    "late-fee".into()
}
fn default_description() -> String {
    "滞纳金".into()
}

impl Plugin for LateFee {
    type Params = Params;

    fn describe() -> PluginInfo {
        PluginInfo {
            // The crate's name and version: Cargo.toml is the one place they are written.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Fee,
            description: "Late fee (滞纳金): from the due date on, a customer whose principal is overdue (arrears-since on or before the bill date) pays round_fen(arrears × daily_rate) a day: simple interest on the principal only, rounded per day.".into(),
            params_schema: heatbill_sdk::params::schema::<Params>(),
        }
    }

    fn configure(p: Params) -> Result<(Self, Vec<LineSpec>), RuleError> {
        if p.daily_rate < Decimal::ZERO {
            return Err(RuleError::BadParams(format!(
                "`daily_rate` is {}: give a share per day, e.g. \"0.001\" for 1‰",
                p.daily_rate
            )));
        }
        if let Some(max) = p.max_daily_rate
            && p.daily_rate > max
        {
            return Err(RuleError::BadParams(format!(
                "`daily_rate` {} is above the legal cap max_daily_rate {max}: lower the rate",
                p.daily_rate
            )));
        }
        let mut kinds = LineKinds::new();
        let line = kinds.add(line_spec(
            &p.code,
            &p.description,
            "CNY",
            LineCategory::LateFee,
        ));
        Ok((
            LateFee {
                rate: p.daily_rate,
                due: p.due_date,
                line,
            },
            kinds.into_specs(),
        ))
    }

    #[inline]
    /// Customers with overdue arrears only (no `arrears-since`, no late fee).
    fn applies_to(&self) -> DayFilter {
        DayFilter::ALL.require(bits::HAS_ARREARS_SINCE)
    }

    fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        let overdue = day.arrears_since.is_some_and(|since| since <= day.date);
        if !overdue || day.date < self.due || day.arrears.units <= 0 {
            return Ok(DayOutput::empty());
        }
        let principal = heatbill_sdk::decimal::input(day.arrears, "arrears")?;
        let fee = round_fen(principal * self.rate);
        if fee.is_zero() {
            return Ok(DayOutput::empty());
        }
        Ok(DayOutput::lines(vec![Line::new(
            self.line,
            principal,
            self.rate,
            fee,
            Payer::Customer,
        )?]))
    }
}

heatbill_sdk::export!(LateFee);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::{amounts, configure, day, try_configure};

    const HARBIN: &str = r#"{"daily_rate": "0.001", "due_date": "2026-01-01"}"#;

    #[test]
    fn w6_harbin_late_fee() {
        let f = configure::<LateFee>(HARBIN);
        let d = day("2026-01-01")
            .arrears("1149.60", Some("2026-01-01"))
            .build();
        assert_eq!(amounts(&f.evaluate(&d)), ["1.15"]);
        assert_eq!(f.specs()[0].category, LineCategory::LateFee);
    }

    #[test]
    fn simple_interest_rounded_per_day() {
        let f = configure::<LateFee>(HARBIN);
        // The principal does not grow with earlier fees: the same fee every day.
        for date in ["2026-01-02", "2026-02-15", "2026-06-30"] {
            let d = day(date).arrears("1149.60", Some("2025-12-20")).build();
            assert_eq!(amounts(&f.evaluate(&d)), ["1.15"]);
        }
    }

    #[test]
    fn no_fee_before_due_or_when_not_overdue() {
        let f = configure::<LateFee>(HARBIN);
        let before_due = day("2025-12-31")
            .arrears("1149.60", Some("2025-12-01"))
            .build();
        assert!(f.evaluate(&before_due).unwrap().lines.is_empty());
        let not_yet_overdue = day("2026-01-05")
            .arrears("1149.60", Some("2026-01-06"))
            .build();
        assert!(f.evaluate(&not_yet_overdue).unwrap().lines.is_empty());
        let no_since = day("2026-01-05").arrears("1149.60", None).build();
        assert!(f.evaluate(&no_since).unwrap().lines.is_empty());
        let paid = day("2026-01-05").arrears("0", Some("2025-12-01")).build();
        assert!(f.evaluate(&paid).unwrap().lines.is_empty());
        let tiny = day("2026-01-05")
            .arrears("4.99", Some("2025-12-01"))
            .build();
        assert!(f.evaluate(&tiny).unwrap().lines.is_empty()); // 0.00499 rounds to 0.00
    }

    #[test]
    fn legal_cap() {
        assert!(
            try_configure::<LateFee>(
                r#"{"daily_rate": "0.002", "due_date": "2026-01-01", "max_daily_rate": "0.002"}"#
            )
            .is_ok()
        );
        let e = try_configure::<LateFee>(
            r#"{"daily_rate": "0.003", "due_date": "2026-01-01", "max_daily_rate": "0.002"}"#,
        )
        .err()
        .unwrap();
        assert!(matches!(&e, RuleError::BadParams(m) if m.contains("max_daily_rate")));
        for p in [
            r#"{"daily_rate": "-0.001", "due_date": "2026-01-01"}"#,
            r#"{"daily_rate": "0.001"}"#,
            r#"{"daily_rate": "0.001", "due_date": "2026-1-1"}"#,
        ] {
            assert!(
                matches!(try_configure::<LateFee>(p), Err(RuleError::BadParams(_))),
                "{p}"
            );
        }
    }
}
