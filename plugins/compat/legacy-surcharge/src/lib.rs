//! Test fixture: a plugin built for contract `heatbill:rules@0.1.0`, the frozen version in
//! `wit/deps/rules-0.1.0`, with plain `wit-bindgen` (the SDK builds the newest version only).
//!
//! The rule: a surcharge of `rate` (a decimal string, e.g. "0.05") on the customer-paid heating
//! lines of the plugins before it, one `heating` line `round_half_up(base × rate)` per
//! customer-day that has any. It reads prior lines by category (all 0.1.0 has) and returns
//! lines without a season amount (0.1.0 has none), so a chain that places it between 0.2.0
//! plugins proves both directions of the host's adapter: what it is given, and what later
//! plugins are given of its lines. Its bills are the same under any host that serves 0.1.0.

#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../../../wit/deps/rules-0.1.0", world: "rules-plugin" });
}

use std::sync::atomic::{AtomicI64, Ordering};

use bindings::exports::heatbill::rules::rules::Guest;
use bindings::heatbill::rules::types::{
    BatchOutput, Configuration, CustomerDay, DayBatch, DayFilter, DayOutput, Decimal,
    DecimalColumn, Line, LineCategory, LineColumn, LineSpec, ParamSpec, ParamType, Payer,
    PluginInfo, PluginKind, RowError, RuleError,
};

/// The configured rate, in basis points (1/10,000); one instance, one configuration.
static RATE_BP: AtomicI64 = AtomicI64::new(-1);

/// The fixture.
pub struct LegacySurcharge;

/// `units × 10^-scale` in fen, rounded half away from zero; `None` if it does not fit.
fn to_fen(units: i64, scale: u8) -> Option<i128> {
    let units = i128::from(units);
    match scale {
        0..=2 => units.checked_mul(10i128.pow(u32::from(2 - scale))),
        _ => {
            let div = 10i128.checked_pow(u32::from(scale - 2))?;
            let q = units / div;
            let r = units % div;
            Some(if r.abs() * 2 >= div {
                q + units.signum()
            } else {
                q
            })
        }
    }
}

/// Parses "0.05" into basis points (at most four decimals).
fn parse_rate(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 4
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<4}");
    Some(whole.parse::<i64>().ok()? * 10_000 + frac.parse::<i64>().ok()?)
}

/// The surcharge on `base_fen`: `round_half_up(base × rate)` in fen.
fn surcharge(base_fen: i128, rate_bp: i64) -> i128 {
    let x = base_fen * i128::from(rate_bp);
    (x + 5_000) / 10_000
}

/// The day's line for a base of customer-paid heating, if any.
fn line(base_fen: i128, rate_bp: i64) -> Option<Line> {
    if base_fen <= 0 {
        return None;
    }
    Some(Line {
        spec: 0,
        quantity: Decimal {
            units: i64::try_from(base_fen).ok()?,
            scale: 2,
        },
        unit_price: Decimal {
            units: rate_bp,
            scale: 4,
        },
        amount: Decimal {
            units: i64::try_from(surcharge(base_fen, rate_bp)).ok()?,
            scale: 2,
        },
        payer: Payer::Customer,
    })
}

fn rate() -> Result<i64, RuleError> {
    match RATE_BP.load(Ordering::Relaxed) {
        r if r >= 0 => Ok(r),
        _ => Err(RuleError::BadParams("configure was not called".into())),
    }
}

impl Guest for LegacySurcharge {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy-surcharge".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Fee,
            description: "Test fixture for contract 0.1.0: a surcharge of `rate` on the customer-paid heating lines before it.".into(),
            params: vec![ParamSpec {
                name: "rate".into(),
                type_: ParamType::Decimal,
                required: true,
                description: "The surcharge rate, e.g. \"0.05\" (at most four decimals).".into(),
            }],
        }
    }

    fn configure(params: String) -> Result<Configuration, RuleError> {
        let rate = params
            .split("\"rate\"")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .and_then(parse_rate)
            .ok_or_else(|| {
                RuleError::BadParams("`rate` must be a decimal string such as \"0.05\"".into())
            })?;
        RATE_BP.store(rate, Ordering::Relaxed);
        Ok(Configuration {
            lines: vec![LineSpec {
                code: "surcharge".into(),
                description: "采暖附加费".into(),
                unit: "CNY".into(),
                category: LineCategory::Heating,
            }],
            applies_to: DayFilter {
                all_of: 0,
                none_of: 0,
            },
        })
    }

    fn evaluate(day: CustomerDay) -> Result<DayOutput, RuleError> {
        let rate = rate()?;
        let mut base = 0i128;
        for l in &day.prior_lines {
            if l.category == LineCategory::Heating && l.payer == Payer::Customer {
                base += to_fen(l.amount.units, l.amount.scale).ok_or_else(|| {
                    RuleError::InvalidInput("a prior amount is out of range".into())
                })?;
            }
        }
        Ok(DayOutput {
            lines: line(base, rate).into_iter().collect(),
            season: None,
        })
    }

    fn evaluate_batch(batch: DayBatch) -> BatchOutput {
        let mut out = LineColumn {
            rows: Vec::new(),
            kinds: Vec::new(),
            payers: Vec::new(),
            quantity: DecimalColumn {
                units: Vec::new(),
                scales: Vec::new(),
            },
            unit_price: DecimalColumn {
                units: Vec::new(),
                scales: Vec::new(),
            },
            amount: DecimalColumn {
                units: Vec::new(),
                scales: Vec::new(),
            },
        };
        let mut errors = Vec::new();
        let rate = match rate() {
            Ok(r) => r,
            Err(error) => {
                errors.extend((0..batch.len).map(|row| RowError {
                    row,
                    error: error.clone(),
                }));
                return BatchOutput {
                    lines: out,
                    errors,
                    season: None,
                };
            }
        };
        // Customer-paid heating, per row: `kinds` are categories in 0.1.0 (heating = 0) and
        // payers are case indices (customer = 0).
        let mut base = vec![0i128; batch.len as usize];
        let p = &batch.prior_lines;
        for i in 0..p.rows.len() {
            if p.kinds[i] == LineCategory::Heating as u16 && p.payers[i] == Payer::Customer as u8 {
                let fen = to_fen(p.amount.units[i], p.amount.scales[i]).unwrap_or(0);
                base[p.rows[i] as usize] += fen;
            }
        }
        for (row, &b) in base.iter().enumerate() {
            if let Some(l) = line(b, rate) {
                out.rows.push(row as u32);
                out.kinds.push(l.spec);
                out.payers.push(Payer::Customer as u8);
                for (col, d) in [
                    (&mut out.quantity, l.quantity),
                    (&mut out.unit_price, l.unit_price),
                    (&mut out.amount, l.amount),
                ] {
                    col.units.push(d.units);
                    col.scales.push(d.scale);
                }
            }
        }
        BatchOutput {
            lines: out,
            errors,
            season: None,
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(LegacySurcharge with_types_in bindings);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_rounding() {
        assert_eq!(parse_rate("0.05"), Some(500));
        assert_eq!(parse_rate("1"), Some(10_000));
        assert_eq!(parse_rate("0.12345"), None);
        assert_eq!(parse_rate("-1"), None);
        // 12.34 × 0.05 = 0.617 → 0.62; 12.30 × 0.05 = 0.615 → 0.62 (half up).
        assert_eq!(surcharge(1234, 500), 62);
        assert_eq!(surcharge(1230, 500), 62);
        assert_eq!(to_fen(125_600, 4), Some(1256));
        assert_eq!(to_fen(3, 0), Some(300));
    }
}
