//! The contract's columnar batch: a `day-batch` into [`CustomerDay`] rows, and a plugin's
//! results back into a `batch-output`.
//!
//! The host sends a batch column by column because the canonical ABI copies a list of integers
//! into the plugin's memory in one block, while a list of records is stored field by field (see
//! `day-batch` in `wit/rules.wit` for the measurement). Plugin code never sees the columns: this
//! module turns them back into the same [`CustomerDay`] rows the single-day `evaluate` receives,
//! so a plugin is written, tested and run natively exactly as before.

use crate::bindings::heatbill::rules::types::{
    BatchOutput, DayBatch, DecimalColumn, LineColumn, RowError, SeasonColumn,
};

use crate::decimal::MAX_SCALE;
use crate::{
    Attribute, CustomerClass, CustomerDay, CustomerFlags, Date, DayOutput, LineCategory, Payer,
    PriorLine, RuleError, SeasonDay, SeasonPhase, ServiceStatus, WitDecimal,
};

/// Bit 0 of `day-batch.bits`: non-residential (`day-bits.non-residential`).
pub const NON_RESIDENTIAL: u32 = 1 << 0;
/// Bit 1: suspended.
pub const SUSPENDED: u32 = 1 << 1;
/// Bit 2: metered.
pub const METERED: u32 = 1 << 2;
/// Bit 3: low-income.
pub const LOW_INCOME: u32 = 1 << 3;
/// Bit 4: `usable-area` present.
pub const HAS_USABLE_AREA: u32 = 1 << 4;
/// Bit 5: `ceiling-height` present.
pub const HAS_CEILING_HEIGHT: u32 = 1 << 5;
/// Bit 6: `heat` present.
pub const HAS_HEAT: u32 = 1 << 6;
/// Bit 7: `indoor-temperature` present.
pub const HAS_INDOOR_TEMPERATURE: u32 = 1 << 7;
/// Bit 8: `arrears-since` present.
pub const HAS_ARREARS_SINCE: u32 = 1 << 8;
/// Bit 9: the season columns present.
pub const HAS_SEASON: u32 = 1 << 9;
/// Bit 10: early and extended days charged.
pub const SEASON_CHARGED: u32 = 1 << 10;

/// Why a batch could not be read (a host bug or a hostile host; reported for every row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError(pub String);

fn column_len(name: &str, got: usize, want: usize) -> Result<(), BatchError> {
    if got != want {
        return Err(BatchError(format!(
            "day-batch column `{name}` has {got} entries for {want} customer-days"
        )));
    }
    Ok(())
}

fn decimal_at(col: &DecimalColumn, i: usize) -> WitDecimal {
    WitDecimal {
        units: col.units[i],
        scale: col.scales[i],
    }
}

fn category(code: u16) -> Result<LineCategory, BatchError> {
    Ok(match code {
        0 => LineCategory::Heating,
        1 => LineCategory::Consumption,
        2 => LineCategory::BaseFee,
        3 => LineCategory::Subsidy,
        4 => LineCategory::Refund,
        5 => LineCategory::LateFee,
        6 => LineCategory::Other,
        _ => {
            return Err(BatchError(format!(
                "line category code {code} is not a category"
            )));
        }
    })
}

fn payer(code: u8) -> Result<Payer, BatchError> {
    Ok(match code {
        0 => Payer::Customer,
        1 => Payer::Government,
        2 => Payer::Employer,
        _ => return Err(BatchError(format!("payer code {code} is not a payer"))),
    })
}

fn phase(code: u8) -> Result<SeasonPhase, BatchError> {
    Ok(match code {
        0 => SeasonPhase::Outside,
        1 => SeasonPhase::Regular,
        2 => SeasonPhase::Early,
        3 => SeasonPhase::Extended,
        _ => {
            return Err(BatchError(format!(
                "season phase code {code} is not a phase"
            )));
        }
    })
}

fn text(texts: &[String], index: u32) -> Result<String, BatchError> {
    texts
        .get(index as usize)
        .cloned()
        .ok_or_else(|| BatchError(format!("text index {index} is out of range")))
}

/// Turns a `day-batch` into rows, checking every column's length and every index.
pub fn decode(batch: &DayBatch) -> Result<Vec<CustomerDay>, BatchError> {
    let n = batch.len as usize;
    column_len("dates", batch.dates.len(), n)?;
    column_len("bits", batch.bits.len(), n)?;
    column_len("special-class", batch.special_class.len(), n)?;
    column_len("building-area", batch.building_area.units.len(), n)?;
    column_len("usable-area", batch.usable_area.units.len(), n)?;
    column_len("ceiling-height", batch.ceiling_height.units.len(), n)?;
    column_len("heat", batch.heat.units.len(), n)?;
    column_len(
        "indoor-temperature",
        batch.indoor_temperature.units.len(),
        n,
    )?;
    column_len("arrears", batch.arrears.units.len(), n)?;
    column_len("arrears-since", batch.arrears_since.len(), n)?;
    column_len("season-phase", batch.season_phase.len(), n)?;
    column_len("season-day-index", batch.season_day_index.len(), n)?;
    column_len("season-days", batch.season_days.len(), n)?;
    let p = &batch.prior_lines;
    let lines = p.rows.len();
    column_len("prior-lines.kinds", p.kinds.len(), lines)?;
    column_len("prior-lines.payers", p.payers.len(), lines)?;
    column_len("prior-lines.quantity", p.quantity.units.len(), lines)?;
    column_len("prior-lines.unit-price", p.unit_price.units.len(), lines)?;
    column_len("prior-lines.amount", p.amount.units.len(), lines)?;
    for c in [
        &batch.building_area,
        &batch.usable_area,
        &batch.ceiling_height,
        &batch.heat,
        &batch.indoor_temperature,
        &batch.arrears,
        &p.quantity,
        &p.unit_price,
        &p.amount,
    ] {
        if c.scales.len() != c.units.len() {
            return Err(BatchError(format!(
                "a decimal column has {} units and {} scales",
                c.units.len(),
                c.scales.len()
            )));
        }
        if let Some(s) = c.scales.iter().find(|&&s| s > MAX_SCALE) {
            return Err(BatchError(format!(
                "a decimal column has scale {s}, above {MAX_SCALE}"
            )));
        }
    }

    let mut days = Vec::with_capacity(n);
    let (mut tag, mut attr, mut line) = (0, 0, 0);
    for i in 0..n {
        let bits = batch.bits[i];
        let has = |b: u32| bits & b != 0;
        let mut flags = CustomerFlags::empty();
        if has(METERED) {
            flags |= CustomerFlags::METERED;
        }
        if has(LOW_INCOME) {
            flags |= CustomerFlags::LOW_INCOME;
        }
        let special = batch.special_class[i];
        let row = i as u32;
        let mut tags = Vec::new();
        while let Some(&(r, t)) = batch.tags.get(tag) {
            if r != row {
                break;
            }
            tags.push(text(&batch.texts, t)?);
            tag += 1;
        }
        let mut attributes = Vec::new();
        while let Some(&(r, k, v)) = batch.attributes.get(attr) {
            if r != row {
                break;
            }
            attributes.push(Attribute {
                key: text(&batch.texts, k)?,
                value: text(&batch.texts, v)?,
            });
            attr += 1;
        }
        let mut prior_lines = Vec::new();
        while line < lines && p.rows[line] == row {
            prior_lines.push(PriorLine {
                category: category(p.kinds[line])?,
                quantity: decimal_at(&p.quantity, line),
                unit_price: decimal_at(&p.unit_price, line),
                amount: decimal_at(&p.amount, line),
                payer: payer(p.payers[line])?,
            });
            line += 1;
        }
        days.push(CustomerDay {
            date: Date::from_days(batch.dates[i]),
            class: if has(NON_RESIDENTIAL) {
                CustomerClass::NonResidential
            } else {
                CustomerClass::Residential
            },
            special_class: if special == 0 {
                None
            } else {
                Some(text(&batch.texts, special - 1)?)
            },
            status: if has(SUSPENDED) {
                ServiceStatus::Suspended
            } else {
                ServiceStatus::Active
            },
            flags,
            building_area: decimal_at(&batch.building_area, i),
            usable_area: has(HAS_USABLE_AREA).then(|| decimal_at(&batch.usable_area, i)),
            ceiling_height: has(HAS_CEILING_HEIGHT).then(|| decimal_at(&batch.ceiling_height, i)),
            heat: has(HAS_HEAT).then(|| decimal_at(&batch.heat, i)),
            indoor_temperature: has(HAS_INDOOR_TEMPERATURE)
                .then(|| decimal_at(&batch.indoor_temperature, i)),
            arrears: decimal_at(&batch.arrears, i),
            arrears_since: has(HAS_ARREARS_SINCE).then(|| Date::from_days(batch.arrears_since[i])),
            season: if has(HAS_SEASON) {
                Some(SeasonDay {
                    phase: phase(batch.season_phase[i])?,
                    day_index: batch.season_day_index[i],
                    season_days: batch.season_days[i],
                    charged: has(SEASON_CHARGED),
                })
            } else {
                None
            },
            tags,
            attributes,
            prior_lines,
        });
    }
    if tag != batch.tags.len() || attr != batch.attributes.len() || line != lines {
        return Err(BatchError(
            "day-batch tags, attributes or prior-lines are not in row order, or name rows past the batch"
                .into(),
        ));
    }
    Ok(days)
}

/// Builds a [`DecimalColumn`], entry by entry.
struct ColumnBuilder {
    units: Vec<i64>,
    scales: Vec<u8>,
}

impl ColumnBuilder {
    fn with_capacity(n: usize) -> Self {
        ColumnBuilder {
            units: Vec::with_capacity(n),
            scales: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, d: WitDecimal) {
        self.units.push(d.units);
        self.scales.push(d.scale);
    }

    fn finish(self) -> DecimalColumn {
        DecimalColumn {
            units: self.units,
            scales: self.scales,
        }
    }
}

/// Turns one result per row into a `batch-output`. `season` is set when any row's output has a
/// season position (a season plugin). A row whose output cannot be encoded becomes an error row.
pub fn encode(results: Vec<Result<DayOutput, RuleError>>) -> BatchOutput {
    let n = results.len();
    let lines_hint: usize = results
        .iter()
        .map(|r| r.as_ref().map_or(0, |o| o.lines.len()))
        .sum();
    let mut rows = Vec::with_capacity(lines_hint);
    let mut kinds = Vec::with_capacity(lines_hint);
    let mut payers = Vec::with_capacity(lines_hint);
    let mut quantity = ColumnBuilder::with_capacity(lines_hint);
    let mut unit_price = ColumnBuilder::with_capacity(lines_hint);
    let mut amount = ColumnBuilder::with_capacity(lines_hint);
    let mut errors = Vec::new();
    let any_season = results
        .iter()
        .any(|r| r.as_ref().is_ok_and(|o| o.season.is_some()));
    let mut season = any_season.then(|| SeasonColumn {
        phase: Vec::with_capacity(n),
        day_index: Vec::with_capacity(n),
        season_days: Vec::with_capacity(n),
        charged: Vec::with_capacity(n),
    });
    for (i, r) in results.into_iter().enumerate() {
        let row = i as u32;
        let s = r.as_ref().ok().and_then(|o| o.season);
        if let Some(col) = season.as_mut() {
            let s = s.unwrap_or(SeasonDay {
                phase: SeasonPhase::Outside,
                day_index: 0,
                season_days: 0,
                charged: false,
            });
            col.phase.push(s.phase as u8);
            col.day_index.push(s.day_index);
            col.season_days.push(s.season_days);
            col.charged.push(u8::from(s.charged));
        }
        match r {
            Err(error) => errors.push(RowError { row, error }),
            Ok(out) => {
                if let Some(l) = out.lines.iter().find(|l| {
                    l.quantity.scale > MAX_SCALE
                        || l.unit_price.scale > MAX_SCALE
                        || l.amount.scale > MAX_SCALE
                }) {
                    let s = l.quantity.scale.max(l.unit_price.scale).max(l.amount.scale);
                    errors.push(RowError {
                        row,
                        error: RuleError::InvalidInput(format!(
                            "a line has a decimal of scale {s}, above the contract's {MAX_SCALE}"
                        )),
                    });
                    continue;
                }
                for l in &out.lines {
                    rows.push(row);
                    kinds.push(l.spec);
                    payers.push(l.payer as u8);
                    quantity.push(l.quantity);
                    unit_price.push(l.unit_price);
                    amount.push(l.amount);
                }
            }
        }
    }
    BatchOutput {
        lines: LineColumn {
            rows,
            kinds,
            payers,
            quantity: quantity.finish(),
            unit_price: unit_price.finish(),
            amount: amount.finish(),
        },
        errors,
        season,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Line;

    fn dec(units: i64, scale: u8) -> WitDecimal {
        WitDecimal { units, scale }
    }

    #[test]
    fn lines_keep_each_value_exactly_with_its_own_scale() {
        let out = encode(vec![
            Ok(DayOutput {
                lines: vec![Line {
                    spec: 0,
                    quantity: dec(60, 0),
                    unit_price: dec(3832, 2),
                    amount: dec(1256, 2),
                    payer: Payer::Customer,
                }],
                season: None,
            }),
            Err(RuleError::MissingInput("no reading".into())),
            Ok(DayOutput {
                lines: vec![Line {
                    spec: 1,
                    quantity: dec(1, 18),
                    unit_price: dec(i64::MAX, 0),
                    amount: dec(-5, 1),
                    payer: Payer::Government,
                }],
                season: None,
            }),
        ]);
        assert_eq!(out.lines.rows, [0, 2]);
        assert_eq!(out.lines.kinds, [0, 1]);
        assert_eq!(out.lines.payers, [0, 1]);
        assert_eq!(out.lines.quantity.units, [60, 1]);
        assert_eq!(out.lines.quantity.scales, [0, 18]);
        assert_eq!(out.lines.unit_price.units, [3832, i64::MAX]);
        assert_eq!(out.lines.amount.units, [1256, -5]);
        assert_eq!(out.lines.amount.scales, [2, 1]);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].row, 1);
        assert!(out.season.is_none());
    }

    #[test]
    fn a_line_beyond_the_contract_fails_its_row_only() {
        let bad = Line {
            spec: 0,
            quantity: dec(1, 19),
            unit_price: dec(1, 0),
            amount: dec(1, 0),
            payer: Payer::Customer,
        };
        let fine = Line {
            spec: 0,
            quantity: dec(1, 18),
            unit_price: dec(1, 0),
            amount: dec(1, 0),
            payer: Payer::Customer,
        };
        let out = encode(vec![
            Ok(DayOutput {
                lines: vec![fine],
                season: None,
            }),
            Ok(DayOutput {
                lines: vec![bad],
                season: None,
            }),
        ]);
        assert_eq!(out.lines.rows, [0]);
        assert_eq!(out.lines.quantity.units.len(), 1);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].row, 1);
    }

    #[test]
    fn decode_checks_lengths_and_rebuilds_rows() {
        let col = |units: Vec<i64>, scale| DecimalColumn {
            scales: vec![scale; units.len()],
            units,
        };
        let batch = DayBatch {
            len: 2,
            dates: vec![20381, 20382],
            bits: vec![HAS_USABLE_AREA | LOW_INCOME, NON_RESIDENTIAL | HAS_SEASON],
            special_class: vec![0, 1],
            building_area: col(vec![7500, 10000], 2),
            usable_area: col(vec![6000, 0], 2),
            ceiling_height: col(vec![0, 0], 0),
            heat: col(vec![0, 0], 0),
            indoor_temperature: col(vec![0, 0], 0),
            arrears: col(vec![0, 114960], 2),
            arrears_since: vec![0, 0],
            season_phase: vec![0, 1],
            season_day_index: vec![0, 1],
            season_days: vec![0, 183],
            texts: vec!["garage".into(), "district:nangang".into()],
            tags: vec![(1, 1)],
            attributes: vec![],
            prior_lines: LineColumn {
                rows: vec![1],
                kinds: vec![0],
                payers: vec![0],
                quantity: col(vec![60], 0),
                unit_price: col(vec![3832], 2),
                amount: col(vec![1256], 2),
            },
        };
        let days = decode(&batch).unwrap();
        assert_eq!(days[0].date, Date::new(2025, 10, 20).unwrap());
        assert!(days[0].flags.contains(CustomerFlags::LOW_INCOME));
        assert_eq!(days[0].usable_area, Some(dec(6000, 2)));
        assert!(days[0].season.is_none() && days[0].prior_lines.is_empty());
        assert_eq!(days[1].class, CustomerClass::NonResidential);
        assert_eq!(days[1].special_class.as_deref(), Some("garage"));
        assert_eq!(days[1].tags, ["district:nangang"]);
        assert_eq!(days[1].season.unwrap().season_days, 183);
        assert_eq!(days[1].prior_lines.len(), 1);
        assert_eq!(days[1].prior_lines[0].amount, dec(1256, 2));

        let mut short = batch.clone();
        short.dates.pop();
        assert!(decode(&short).unwrap_err().0.contains("`dates`"));
    }
}
