//! The contract's columnar batch: a `day-batch` into [`CustomerDay`] rows, and a plugin's
//! results back into a `batch-output`.
//!
//! The host sends a batch column by column because the canonical ABI copies a list of integers
//! into the plugin's memory in one block, while a list of records is stored field by field (see
//! `day-batch` in `wit/rules.wit` for the measurement). Plugin code never sees the columns: this
//! module turns them back into the same [`CustomerDay`] rows the single-day `evaluate` receives,
//! so a plugin is written, tested and run natively exactly as before.
//!
//! About 500 lines of code and 150 of tests: the decoder and the encoder are the two halves of
//! one columnar format and change together.

use crate::bindings::heatbill::rules::types::{
    BatchOutput, DayBatch, DecimalColumn, LineColumn, RowError, SeasonColumn,
};

use crate::decimal::MAX_SCALE;
use crate::{
    Attribute, CustomerClass, CustomerDay, CustomerFlags, Date, DayOutput, Payer, PriorLine,
    RuleError, SeasonDay, SeasonPhase, ServiceStatus, WitDecimal,
};

use crate::bits::*;

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

fn check_rows(name: &str, rows: impl Iterator<Item = u32>, n: usize) -> Result<(), BatchError> {
    let mut last = 0;
    for r in rows {
        if r < last || r as usize >= n {
            return Err(BatchError(format!(
                "day-batch `{name}` are not in row order, or name a row past the batch's {n}"
            )));
        }
        last = r;
    }
    Ok(())
}

/// Reads a `day-batch` row by row into a reused [`CustomerDay`].
///
/// [`Decoder::new`] checks the whole batch (column lengths, scales, codes, indices, row order),
/// so reading a row cannot fail. Rows are read in order, each into the same `CustomerDay`, whose
/// lists keep their capacity: the per-row cost is a handful of copies, with no allocation unless
/// the row has a special class, tags or attributes (strings the plugin may keep).
pub struct Decoder<'b> {
    batch: &'b DayBatch,
    next: usize,
    tag: usize,
    attr: usize,
    line: usize,
}

impl<'b> Decoder<'b> {
    /// Checks a batch for reading.
    pub fn new(batch: &'b DayBatch) -> Result<Decoder<'b>, BatchError> {
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
        column_len(
            "prior-lines.season-amount",
            p.season_amount.units.len(),
            lines,
        )?;
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
            &p.season_amount,
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
        let kinds = batch.prior_kinds.len();
        if let Some(&k) = p.kinds.iter().find(|&&k| usize::from(k) >= kinds) {
            return Err(BatchError(format!(
                "a prior line names kind {k}, but the batch has {kinds} prior kinds"
            )));
        }
        for &c in &p.payers {
            payer(c)?;
        }
        for (i, &b) in batch.bits.iter().enumerate() {
            if b & HAS_SEASON != 0 {
                phase(batch.season_phase[i])?;
            }
        }
        let texts = batch.texts.len() as u32;
        let special_ok = batch.special_class.iter().all(|&s| s <= texts);
        let tags_ok = batch.tags.iter().all(|&(_, t)| t < texts);
        let attrs_ok = batch
            .attributes
            .iter()
            .all(|&(_, k, v)| k < texts && v < texts);
        if !(special_ok && tags_ok && attrs_ok) {
            return Err(BatchError(
                "a special class, tag or attribute names a text past `texts`".into(),
            ));
        }
        check_rows("tags", batch.tags.iter().map(|t| t.0), n)?;
        check_rows("attributes", batch.attributes.iter().map(|a| a.0), n)?;
        check_rows("prior-lines", p.rows.iter().copied(), n)?;
        Ok(Decoder {
            batch,
            next: 0,
            tag: 0,
            attr: 0,
            line: 0,
        })
    }

    /// How many rows the batch has.
    pub fn len(&self) -> usize {
        self.batch.len as usize
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.batch.len == 0
    }

    /// Reads the next row into `day` (rows come in order; `None` after the last).
    pub fn next_into(&mut self, day: &mut CustomerDay) -> Option<()> {
        let b = self.batch;
        let i = self.next;
        if i >= b.len as usize {
            return None;
        }
        self.next += 1;
        let row = i as u32;
        let bits = b.bits[i];
        let has = |bit: u32| bits & bit != 0;
        let mut flags = CustomerFlags::empty();
        if has(METERED) {
            flags |= CustomerFlags::METERED;
        }
        if has(LOW_INCOME) {
            flags |= CustomerFlags::LOW_INCOME;
        }
        day.date = Date::from_days(b.dates[i]);
        day.class = if has(NON_RESIDENTIAL) {
            CustomerClass::NonResidential
        } else {
            CustomerClass::Residential
        };
        let special = b.special_class[i];
        day.special_class = (special != 0).then(|| b.texts[special as usize - 1].clone());
        day.status = if has(SUSPENDED) {
            ServiceStatus::Suspended
        } else {
            ServiceStatus::Active
        };
        day.flags = flags;
        day.building_area = decimal_at(&b.building_area, i);
        day.usable_area = has(HAS_USABLE_AREA).then(|| decimal_at(&b.usable_area, i));
        day.ceiling_height = has(HAS_CEILING_HEIGHT).then(|| decimal_at(&b.ceiling_height, i));
        day.heat = has(HAS_HEAT).then(|| decimal_at(&b.heat, i));
        day.indoor_temperature =
            has(HAS_INDOOR_TEMPERATURE).then(|| decimal_at(&b.indoor_temperature, i));
        day.arrears = decimal_at(&b.arrears, i);
        day.arrears_since = has(HAS_ARREARS_SINCE).then(|| Date::from_days(b.arrears_since[i]));
        day.season = has(HAS_SEASON).then(|| SeasonDay {
            // Checked by `new`.
            phase: phase(b.season_phase[i]).unwrap_or(SeasonPhase::Outside),
            day_index: b.season_day_index[i],
            season_days: b.season_days[i],
            charged: has(SEASON_CHARGED),
        });
        day.tags.clear();
        while let Some(&(r, t)) = b.tags.get(self.tag) {
            if r != row {
                break;
            }
            day.tags.push(b.texts[t as usize].clone());
            self.tag += 1;
        }
        day.attributes.clear();
        while let Some(&(r, k, v)) = b.attributes.get(self.attr) {
            if r != row {
                break;
            }
            day.attributes.push(Attribute {
                key: b.texts[k as usize].clone(),
                value: b.texts[v as usize].clone(),
            });
            self.attr += 1;
        }
        // The row's prior lines overwrite the last row's in place: a line's code reuses the
        // string it had (`clone_from`), so reading a batch allocates no string per line.
        let p = &b.prior_lines;
        let mut count = 0;
        while self.line < p.rows.len() && p.rows[self.line] == row {
            let l = self.line;
            let kind = &b.prior_kinds[usize::from(p.kinds[l])];
            let season_amount =
                (p.season_amount.units[l] != 0).then(|| decimal_at(&p.season_amount, l));
            let line = PriorLine {
                code: String::new(),
                entry: kind.entry,
                category: kind.category,
                quantity: decimal_at(&p.quantity, l),
                unit_price: decimal_at(&p.unit_price, l),
                amount: decimal_at(&p.amount, l),
                payer: payer(p.payers[l]).unwrap_or(Payer::Customer),
                season_amount,
            };
            match day.prior_lines.get_mut(count) {
                Some(slot) => {
                    let mut code = std::mem::take(&mut slot.code);
                    code.clone_from(&kind.code);
                    *slot = PriorLine { code, ..line };
                }
                None => day.prior_lines.push(PriorLine {
                    code: kind.code.clone(),
                    ..line
                }),
            }
            count += 1;
            self.line += 1;
        }
        day.prior_lines.truncate(count);
        Some(())
    }
}

/// An empty customer-day to read rows into.
pub fn blank_day() -> CustomerDay {
    let zero = WitDecimal { units: 0, scale: 0 };
    CustomerDay {
        date: Date::from_days(0),
        class: CustomerClass::Residential,
        special_class: None,
        status: ServiceStatus::Active,
        flags: CustomerFlags::empty(),
        building_area: zero,
        usable_area: None,
        ceiling_height: None,
        heat: None,
        indoor_temperature: None,
        arrears: zero,
        arrears_since: None,
        season: None,
        tags: Vec::new(),
        attributes: Vec::new(),
        prior_lines: Vec::new(),
    }
}

/// Turns a `day-batch` into rows (for tests and tools; the component streams with
/// [`Decoder`]).
pub fn decode(batch: &DayBatch) -> Result<Vec<CustomerDay>, BatchError> {
    let mut d = Decoder::new(batch)?;
    let mut days = Vec::with_capacity(d.len());
    let mut day = blank_day();
    while d.next_into(&mut day).is_some() {
        days.push(day.clone());
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

/// Builds a `batch-output` from one result per row, in row order.
pub struct Encoder {
    rows: Vec<u32>,
    kinds: Vec<u16>,
    payers: Vec<u8>,
    quantity: ColumnBuilder,
    unit_price: ColumnBuilder,
    amount: ColumnBuilder,
    season_amount: ColumnBuilder,
    errors: Vec<RowError>,
    season: Option<SeasonColumn>,
    pushed: u32,
}

const OUTSIDE: SeasonDay = SeasonDay {
    phase: SeasonPhase::Outside,
    day_index: 0,
    season_days: 0,
    charged: false,
};

fn push_season(col: &mut SeasonColumn, s: SeasonDay) {
    col.phase.push(s.phase as u8);
    col.day_index.push(s.day_index);
    col.season_days.push(s.season_days);
    col.charged.push(u8::from(s.charged));
}

impl Encoder {
    /// An encoder for a batch of about `n` rows.
    pub fn new(n: usize) -> Encoder {
        Encoder {
            rows: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            payers: Vec::with_capacity(n),
            quantity: ColumnBuilder::with_capacity(n),
            unit_price: ColumnBuilder::with_capacity(n),
            amount: ColumnBuilder::with_capacity(n),
            season_amount: ColumnBuilder::with_capacity(n),
            errors: Vec::new(),
            season: None,
            pushed: 0,
        }
    }

    /// Adds the next row's result. A season position, from the first row that has one, makes
    /// the output carry a season column (earlier rows are outside the season). A line that the
    /// contract cannot carry (a scale above 18) fails its row.
    pub fn push(&mut self, result: Result<DayOutput, RuleError>) {
        let row = self.pushed;
        self.pushed += 1;
        let season = result.as_ref().ok().and_then(|o| o.season);
        if self.season.is_none() && season.is_some() {
            let mut col = SeasonColumn {
                phase: Vec::new(),
                day_index: Vec::new(),
                season_days: Vec::new(),
                charged: Vec::new(),
            };
            for _ in 0..row {
                push_season(&mut col, OUTSIDE);
            }
            self.season = Some(col);
        }
        if let Some(col) = self.season.as_mut() {
            push_season(col, season.unwrap_or(OUTSIDE));
        }
        let out = match result {
            Err(error) => {
                self.errors.push(RowError { row, error });
                return;
            }
            Ok(out) => out,
        };
        let season_scale = |l: &crate::Line| l.season_amount.map_or(0, |t| t.scale);
        if let Some(l) = out.lines.iter().find(|l| {
            l.quantity.scale > MAX_SCALE
                || l.unit_price.scale > MAX_SCALE
                || l.amount.scale > MAX_SCALE
                || season_scale(l) > MAX_SCALE
        }) {
            let s = l
                .quantity
                .scale
                .max(l.unit_price.scale)
                .max(l.amount.scale)
                .max(season_scale(l));
            self.errors.push(RowError {
                row,
                error: RuleError::InvalidInput(format!(
                    "a line has a decimal of scale {s}, above the contract's {MAX_SCALE}"
                )),
            });
            return;
        }
        for l in &out.lines {
            self.rows.push(row);
            self.kinds.push(l.spec);
            self.payers.push(l.payer as u8);
            self.quantity.push(l.quantity);
            self.unit_price.push(l.unit_price);
            self.amount.push(l.amount);
            self.season_amount
                .push(l.season_amount.unwrap_or(WitDecimal { units: 0, scale: 0 }));
        }
    }

    /// The output.
    pub fn finish(self) -> BatchOutput {
        BatchOutput {
            lines: LineColumn {
                rows: self.rows,
                kinds: self.kinds,
                payers: self.payers,
                quantity: self.quantity.finish(),
                unit_price: self.unit_price.finish(),
                amount: self.amount.finish(),
                season_amount: self.season_amount.finish(),
            },
            errors: self.errors,
            season: self.season,
        }
    }
}

/// Turns one result per row into a `batch-output` (see [`Encoder`]).
pub fn encode(results: Vec<Result<DayOutput, RuleError>>) -> BatchOutput {
    let mut e = Encoder::new(results.len());
    for r in results {
        e.push(r);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Line, LineCategory, PriorKind};

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
                    season_amount: None,
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
                    season_amount: None,
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
            season_amount: None,
        };
        let fine = Line {
            spec: 0,
            quantity: dec(1, 18),
            unit_price: dec(1, 0),
            amount: dec(1, 0),
            payer: Payer::Customer,
            season_amount: None,
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
                season_amount: col(vec![229_920], 2),
            },
            prior_kinds: vec![PriorKind {
                code: "heat".into(),
                entry: 1,
                category: LineCategory::Heating,
            }],
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
        assert_eq!(days[1].prior_lines[0].code, "heat");
        assert_eq!(days[1].prior_lines[0].entry, 1);
        assert_eq!(days[1].prior_lines[0].category, LineCategory::Heating);
        assert_eq!(days[1].prior_lines[0].season_amount, Some(dec(229_920, 2)));

        let mut short = batch.clone();
        short.dates.pop();
        assert!(decode(&short).unwrap_err().0.contains("`dates`"));
        let mut unordered = batch.clone();
        unordered.tags = vec![(1, 1), (0, 0)];
        assert!(decode(&unordered).unwrap_err().0.contains("row order"));
        let mut bad_text = batch.clone();
        bad_text.special_class = vec![0, 9];
        assert!(decode(&bad_text).is_err());
    }
}
