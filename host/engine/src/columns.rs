//! The contract's columnar batch on the host side: customer-days into the columns of a
//! `day-batch`, and the columns of a `batch-output` checked and read back per customer-day.
//!
//! Why columns, with the measurement, is written once, on `day-batch` in `wit/rules.wit`; here
//! a batch's copy into the plugin is a few `memcpy`s per call.

use rust_decimal::Decimal;

use crate::bindings::wit;
use crate::decimal::{MAX_SCALE, to_wit};

/// The bits of `day-batch.bits` (`day-bits` in `wit/rules.wit`).
pub(crate) mod bits {
    pub const NON_RESIDENTIAL: u32 = 1 << 0;
    pub const SUSPENDED: u32 = 1 << 1;
    pub const METERED: u32 = 1 << 2;
    pub const LOW_INCOME: u32 = 1 << 3;
    pub const HAS_USABLE_AREA: u32 = 1 << 4;
    pub const HAS_CEILING_HEIGHT: u32 = 1 << 5;
    pub const HAS_HEAT: u32 = 1 << 6;
    pub const HAS_INDOOR_TEMPERATURE: u32 = 1 << 7;
    pub const HAS_ARREARS_SINCE: u32 = 1 << 8;
    pub const HAS_SEASON: u32 = 1 << 9;
    pub const SEASON_CHARGED: u32 = 1 << 10;
}

/// Powers of ten that fit an `i64` (10^0 ..= 10^18).
pub(crate) const POW10: [i64; 19] = {
    let mut t = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// An owned decimal column: `units[i] × 10^-scales[i]`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Column {
    pub units: Vec<i64>,
    pub scales: Vec<u8>,
}

impl Column {
    /// The column as the bindings borrow it.
    pub fn as_wit(&self) -> wit::DecimalColumnParam<'_> {
        wit::DecimalColumnParam {
            units: &self.units,
            scales: &self.scales,
        }
    }

    /// Fills the column with `values` (absent entries are 0). A value the contract cannot carry
    /// (more than 18 decimals, or more digits than an s64) is reported by row, its entry 0.
    pub fn fill(
        &mut self,
        values: impl Iterator<Item = Option<Decimal>>,
        mut bad: impl FnMut(usize, String),
    ) {
        self.units.clear();
        self.scales.clear();
        for (i, v) in values.enumerate() {
            let (units, scale) = match v.map(to_wit) {
                None => (0, 0),
                Some(Ok(w)) => (w.units, w.scale),
                Some(Err(m)) => {
                    bad(i, m);
                    (0, 0)
                }
            };
            self.units.push(units);
            self.scales.push(scale);
        }
    }

    /// Empties the column.
    pub fn clear(&mut self) {
        self.units.clear();
        self.scales.clear();
    }

    /// Appends one entry as it crossed the boundary before.
    #[inline]
    pub fn push(&mut self, (units, scale): (i64, u8)) {
        self.units.push(units);
        self.scales.push(scale);
    }

    /// Keeps the entries at `idx`.
    pub fn gather(&mut self, from: &Column, idx: &[usize]) {
        self.units.clear();
        self.scales.clear();
        self.units.extend(idx.iter().map(|&i| from.units[i]));
        self.scales.extend(idx.iter().map(|&i| from.scales[i]));
    }
}

/// A decimal of an output column, exactly (its scale was checked by [`check_shape`]).
#[inline]
pub(crate) fn decimal_at(col: &wit::DecimalColumnResult, i: usize) -> Decimal {
    Decimal::new(col.units[i], u32::from(col.scales[i]))
}

/// An amount of an output column as a host decimal of scale 2, or why it is not whole fen.
#[inline]
pub(crate) fn amount_at(col: &wit::DecimalColumnResult, i: usize) -> Result<Decimal, String> {
    let (units, scale) = (col.units[i], col.scales[i]);
    if scale <= 2 {
        let units = units
            .checked_mul(POW10[usize::from(2 - scale)])
            .ok_or_else(|| {
                format!(
                    "amount {} is out of range",
                    Decimal::new(units, u32::from(scale))
                )
            })?;
        return Ok(Decimal::new(units, 2));
    }
    let div = POW10[usize::from(scale - 2)];
    if units % div != 0 {
        return Err(format!(
            "amount {} is not a whole number of fen (0.01); round it with ROUND_HALF_UP",
            Decimal::new(units, u32::from(scale))
        ));
    }
    Ok(Decimal::new(units / div, 2))
}

/// Checks the shape of a `batch-output` for a call of `rows` customer-days: equal column
/// lengths, rows in order and in range, scales within the contract. A violation makes the whole
/// output unreadable (whose line is whose?), so it is reported for the call, not a row.
pub(crate) fn check_shape(out: &wit::BatchOutput, rows: usize) -> Result<(), String> {
    let l = &out.lines;
    let n = l.rows.len();
    let cols = [
        ("kinds", l.kinds.len()),
        ("payers", l.payers.len()),
        ("quantity", l.quantity.units.len()),
        ("unit-price", l.unit_price.units.len()),
        ("amount", l.amount.units.len()),
        ("quantity scales", l.quantity.scales.len()),
        ("unit-price scales", l.unit_price.scales.len()),
        ("amount scales", l.amount.scales.len()),
        ("season-amount", l.season_amount.units.len()),
        ("season-amount scales", l.season_amount.scales.len()),
    ];
    for (name, len) in cols {
        if len != n {
            return Err(format!(
                "batch-output line columns differ in length: {n} rows but {len} {name}"
            ));
        }
    }
    for c in [&l.quantity, &l.unit_price, &l.amount, &l.season_amount] {
        if let Some(s) = c.scales.iter().find(|&&s| s > MAX_SCALE) {
            return Err(format!(
                "a line decimal has scale {s}; the contract's limit is {MAX_SCALE}"
            ));
        }
    }
    if !l.rows.is_sorted() || l.rows.last().is_some_and(|&r| r as usize >= rows) {
        return Err(format!(
            "batch-output lines must be in row order with rows below {rows}"
        ));
    }
    let e = &out.errors;
    if e.windows(2).any(|w| w[0].row >= w[1].row)
        || e.last().is_some_and(|x| x.row as usize >= rows)
    {
        return Err(format!(
            "batch-output errors must be in row order, one per row, with rows below {rows}"
        ));
    }
    if let Some(s) = &out.season {
        for (name, len) in [
            ("phase", s.phase.len()),
            ("day-index", s.day_index.len()),
            ("season-days", s.season_days.len()),
            ("charged", s.charged.len()),
        ] {
            if len != rows {
                return Err(format!(
                    "batch-output season column {name} has {len} entries for {rows} customer-days"
                ));
            }
        }
    }
    Ok(())
}

/// The season position of row `j` of a season column, or why it is not one.
pub(crate) fn season_at(s: &wit::SeasonColumn, j: usize) -> Result<wit::SeasonDay, String> {
    let phase = match s.phase[j] {
        0 => wit::SeasonPhase::Outside,
        1 => wit::SeasonPhase::Regular,
        2 => wit::SeasonPhase::Early,
        3 => wit::SeasonPhase::Extended,
        p => return Err(format!("season phase code {p} is not a phase")),
    };
    Ok(wit::SeasonDay {
        phase,
        day_index: s.day_index[j],
        season_days: s.season_days[j],
        charged: s.charged[j] != 0,
    })
}

/// The contract's case index of a season phase.
pub(crate) fn phase_code(p: wit::SeasonPhase) -> u8 {
    match p {
        wit::SeasonPhase::Outside => 0,
        wit::SeasonPhase::Regular => 1,
        wit::SeasonPhase::Early => 2,
        wit::SeasonPhase::Extended => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_column_keeps_each_value_exactly() {
        let v = |s: &str| Some(Decimal::from_str(s).unwrap());
        let mut c = Column::default();
        let mut bad = Vec::new();
        let values = [v("60.00"), None, v("0.000000000000000001"), v("38.32")];
        c.fill(values.iter().copied(), |i, m| bad.push((i, m)));
        assert!(bad.is_empty());
        assert_eq!(c.units, [6000, 0, 1, 3832]);
        assert_eq!(c.scales, [2, 0, 18, 2]);
    }

    #[test]
    fn a_value_that_does_not_fit_fails_its_row_only() {
        let v = |s: &str| Some(Decimal::from_str(s).unwrap());
        let mut c = Column::default();
        let mut bad = Vec::new();
        let values = [v("1.5"), v("79228162514264337593543950335")];
        c.fill(values.iter().copied(), |i, m| bad.push((i, m)));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 1);
        assert_eq!(c.units, [15, 0]);
    }

    #[test]
    fn amounts_must_be_whole_fen() {
        let col = |units: &[i64], scale| wit::DecimalColumnResult {
            scales: vec![scale; units.len()],
            units: units.to_vec(),
        };
        assert_eq!(amount_at(&col(&[1256], 2), 0).unwrap().to_string(), "12.56");
        assert_eq!(amount_at(&col(&[3], 0), 0).unwrap().to_string(), "3.00");
        assert_eq!(
            amount_at(&col(&[125_600], 4), 0).unwrap().to_string(),
            "12.56"
        );
        assert!(amount_at(&col(&[1005], 3), 0).is_err());
    }
}
