//! Lowering: how a customer-day and the lines before it cross into a plugin. The conversions of
//! categories and season positions to and from the contract's (WIT) types; for the nightly path
//! the columnar `day-batch`, split into [`BatchColumns`] (built once per batch, the same for
//! every entry of the chain) and [`CallColumns`] (per call: the season so far, the prior lines,
//! and a subset's rows gathered); for the dry run the single-day record (`day_record`,
//! `prior_line`) and the conversion of its result to a one-row batch output.
//!
//! This is the hot path of a night's run, kept apart so that its allocation discipline (a
//! handful of vectors per batch and entry, none per customer-day, strings borrowed from the
//! input) can be read and kept in one place.
use chrono::Datelike;
use rust_decimal::Decimal;

use super::bill::{DayBill, RawLine};
use crate::bindings::wit;
use crate::columns::{self, Column};
use crate::decimal::to_wit;
use crate::model::{
    BillLine, CustomerClass, DayInput, LineCategory, Payer, SeasonDay, SeasonPhase, ServiceStatus,
};

/// A line category from the contract's type.
pub(super) fn category_from_wit(c: wit::LineCategory) -> LineCategory {
    match c {
        wit::LineCategory::Heating => LineCategory::Heating,
        wit::LineCategory::Consumption => LineCategory::Consumption,
        wit::LineCategory::BaseFee => LineCategory::BaseFee,
        wit::LineCategory::Subsidy => LineCategory::Subsidy,
        wit::LineCategory::Refund => LineCategory::Refund,
        wit::LineCategory::LateFee => LineCategory::LateFee,
        wit::LineCategory::Other => LineCategory::Other,
    }
}

/// A line category as the contract's type.
pub(super) fn category_to_wit(c: LineCategory) -> wit::LineCategory {
    match c {
        LineCategory::Heating => wit::LineCategory::Heating,
        LineCategory::Consumption => wit::LineCategory::Consumption,
        LineCategory::BaseFee => wit::LineCategory::BaseFee,
        LineCategory::Subsidy => wit::LineCategory::Subsidy,
        LineCategory::Refund => wit::LineCategory::Refund,
        LineCategory::LateFee => wit::LineCategory::LateFee,
        LineCategory::Other => wit::LineCategory::Other,
    }
}

/// A season position as the contract's type.
pub(super) fn season_to_wit(s: SeasonDay) -> wit::SeasonDay {
    wit::SeasonDay {
        phase: match s.phase {
            SeasonPhase::Outside => wit::SeasonPhase::Outside,
            SeasonPhase::Regular => wit::SeasonPhase::Regular,
            SeasonPhase::Early => wit::SeasonPhase::Early,
            SeasonPhase::Extended => wit::SeasonPhase::Extended,
        },
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}

/// The columns of a batch that stay the same along the chain, built once per batch from the
/// customer-days; every call of the chain's plugins borrows them.
pub(super) struct BatchColumns<'a> {
    pub(super) dates: Vec<i32>,
    pub(super) bits: Vec<u32>,
    special: Vec<u32>,
    building: Column,
    usable: Column,
    ceiling: Column,
    heat: Column,
    temperature: Column,
    arrears: Column,
    since: Vec<i32>,
    texts: Vec<&'a str>,
    tags: Vec<(u32, u32)>,
    attributes: Vec<(u32, u32, u32)>,
}

impl<'a> BatchColumns<'a> {
    /// Builds the columns; a customer-day with a value the contract cannot carry is reported in
    /// `bad` (its entry is 0 and it is not evaluated).
    pub(super) fn build(days: &[&'a DayInput], bad: &mut Vec<(usize, String)>) -> BatchColumns<'a> {
        use columns::bits::*;
        let n = days.len();
        let mut texts: Vec<&'a str> = Vec::new();
        let mut index: std::collections::HashMap<&'a str, u32> = std::collections::HashMap::new();
        let mut text = |s: &'a str| -> u32 {
            *index.entry(s).or_insert_with(|| {
                texts.push(s);
                (texts.len() - 1) as u32
            })
        };
        let mut b = BatchColumns {
            dates: Vec::with_capacity(n),
            bits: Vec::with_capacity(n),
            special: Vec::with_capacity(n),
            building: Column::default(),
            usable: Column::default(),
            ceiling: Column::default(),
            heat: Column::default(),
            temperature: Column::default(),
            arrears: Column::default(),
            since: Vec::with_capacity(n),
            texts: Vec::new(),
            tags: Vec::new(),
            attributes: Vec::new(),
        };
        for (i, d) in days.iter().enumerate() {
            let row = i as u32;
            let mut bits = 0;
            let mut set = |on: bool, bit: u32| {
                if on {
                    bits |= bit;
                }
            };
            set(d.class == CustomerClass::NonResidential, NON_RESIDENTIAL);
            set(d.status == ServiceStatus::Suspended, SUSPENDED);
            set(d.metered, METERED);
            set(d.low_income, LOW_INCOME);
            set(d.usable_area.is_some(), HAS_USABLE_AREA);
            set(d.ceiling_height.is_some(), HAS_CEILING_HEIGHT);
            set(d.heat.is_some(), HAS_HEAT);
            set(d.indoor_temperature.is_some(), HAS_INDOOR_TEMPERATURE);
            set(d.arrears_since.is_some(), HAS_ARREARS_SINCE);
            b.bits.push(bits);
            b.dates.push(date32(d.date));
            b.since.push(d.arrears_since.map_or(0, date32));
            b.special
                .push(d.special_class.as_deref().map_or(0, |s| text(s) + 1));
            for t in &d.tags {
                b.tags.push((row, text(t)));
            }
            for (k, v) in &d.attributes {
                b.attributes.push((row, text(k), text(v)));
            }
        }
        b.texts = texts;
        // One call per column (not a loop over function pointers): each fill inlines its
        // accessor, and this runs for every customer-day of every batch.
        let mut report = |what: &'static str, i: usize, m: String| {
            bad.push((i, format!("{what}: {m}")));
        };
        b.building
            .fill(days.iter().map(|d| Some(d.building_area)), |i, m| {
                report("building_area", i, m)
            });
        b.usable.fill(days.iter().map(|d| d.usable_area), |i, m| {
            report("usable_area", i, m)
        });
        b.ceiling
            .fill(days.iter().map(|d| d.ceiling_height), |i, m| {
                report("ceiling_height", i, m)
            });
        b.heat
            .fill(days.iter().map(|d| d.heat), |i, m| report("heat", i, m));
        b.temperature
            .fill(days.iter().map(|d| d.indoor_temperature), |i, m| {
                report("indoor_temperature", i, m)
            });
        b.arrears
            .fill(days.iter().map(|d| Some(d.arrears)), |i, m| {
                report("arrears", i, m)
            });
        b
    }
}

/// A customer-day as the single-day `evaluate` takes it (season and prior lines are set per
/// plugin). Its strings borrow from the input.
pub(super) fn day_record(d: &DayInput) -> Result<wit::CustomerDay<'_>, String> {
    let dec = |what: &str, v: Decimal| to_wit(v).map_err(|m| format!("{what}: {m}"));
    let opt = |what: &str, v: Option<Decimal>| v.map(|v| dec(what, v)).transpose();
    let date = |d: chrono::NaiveDate| wit::Date {
        year: d.year(),
        month: d.month() as u8,
        day: d.day() as u8,
    };
    let mut flags = wit::CustomerFlags::empty();
    if d.metered {
        flags |= wit::CustomerFlags::METERED;
    }
    if d.low_income {
        flags |= wit::CustomerFlags::LOW_INCOME;
    }
    Ok(wit::CustomerDay {
        date: date(d.date),
        class: match d.class {
            CustomerClass::Residential => wit::CustomerClass::Residential,
            CustomerClass::NonResidential => wit::CustomerClass::NonResidential,
        },
        special_class: d.special_class.as_deref(),
        status: match d.status {
            ServiceStatus::Active => wit::ServiceStatus::Active,
            ServiceStatus::Suspended => wit::ServiceStatus::Suspended,
        },
        flags,
        building_area: dec("building_area", d.building_area)?,
        usable_area: opt("usable_area", d.usable_area)?,
        ceiling_height: opt("ceiling_height", d.ceiling_height)?,
        heat: opt("heat", d.heat)?,
        indoor_temperature: opt("indoor_temperature", d.indoor_temperature)?,
        arrears: dec("arrears", d.arrears)?,
        arrears_since: d.arrears_since.map(date),
        season: None,
        tags: &[],
        attributes: &[],
        prior_lines: &[],
    })
}

/// An earlier line as the single-day `evaluate` takes it.
pub(super) fn prior_line(l: &BillLine) -> wit::PriorLine<'_> {
    let raw = RawLine::of(l, &[]);
    let d = |(units, scale): (i64, u8)| wit::Decimal { units, scale };
    wit::PriorLine {
        code: &l.kind.code,
        entry: l.kind.entry,
        season_amount: (raw.season_amount.0 != 0).then(|| d(raw.season_amount)),
        category: category_to_wit(l.kind.category),
        quantity: d(raw.quantity),
        unit_price: d(raw.unit_price),
        amount: d(raw.amount),
        payer: match l.payer {
            Payer::Customer => wit::Payer::Customer,
            Payer::Government => wit::Payer::Government,
            Payer::Employer => wit::Payer::Employer,
        },
    }
}

/// A single-day result as a one-row `batch-output`, so that both paths are checked and applied
/// by the same code.
pub(super) fn one_row_output(r: Result<wit::DayOutput, wit::RuleError>) -> wit::BatchOutput {
    let empty = || wit::DecimalColumnResult {
        units: Vec::new(),
        scales: Vec::new(),
    };
    let mut out = wit::BatchOutput {
        lines: wit::LineColumnResult {
            rows: Vec::new(),
            kinds: Vec::new(),
            payers: Vec::new(),
            quantity: empty(),
            unit_price: empty(),
            amount: empty(),
            season_amount: empty(),
        },
        errors: Vec::new(),
        season: None,
    };
    match r {
        Err(error) => out.errors.push(wit::RowError { row: 0, error }),
        Ok(o) => {
            let l = &mut out.lines;
            for line in o.lines {
                l.rows.push(0);
                l.kinds.push(line.spec);
                l.payers.push(match line.payer {
                    wit::Payer::Customer => 0,
                    wit::Payer::Government => 1,
                    wit::Payer::Employer => 2,
                });
                let none = wit::Decimal { units: 0, scale: 0 };
                for (col, v) in [
                    (&mut l.quantity, line.quantity),
                    (&mut l.unit_price, line.unit_price),
                    (&mut l.amount, line.amount),
                    (&mut l.season_amount, line.season_amount.unwrap_or(none)),
                ] {
                    col.units.push(v.units);
                    col.scales.push(v.scale);
                }
            }
            out.season = o.season.map(|s| wit::SeasonColumn {
                phase: vec![columns::phase_code(s.phase)],
                day_index: vec![s.day_index],
                season_days: vec![s.season_days],
                charged: vec![u8::from(s.charged)],
            });
        }
    }
    out
}

/// A customer-day's `day-bits`: its base bits and those of its season position so far.
#[inline]
pub(super) fn row_bits(base: u32, season: Option<wit::SeasonDay>) -> u32 {
    use columns::bits::*;
    match season {
        Some(s) if s.charged => base | HAS_SEASON | SEASON_CHARGED,
        Some(_) => base | HAS_SEASON,
        None => base,
    }
}

/// Days since 1970-01-01 (the contract's `date32`).
fn date32(d: chrono::NaiveDate) -> i32 {
    // 719,163 is the number of days from 0001-01-01 (CE day 1) to 1970-01-01.
    d.num_days_from_ce() - 719_163
}

/// The columns of one call that change along the chain (bits with the season, the season
/// position, the prior lines) and, for a call over a subset of the batch, the base columns
/// gathered for that subset. Owned by the evaluator and reused, so a call allocates only when a
/// batch is larger than any before.
#[derive(Default)]
pub(super) struct CallColumns {
    bits: Vec<u32>,
    phase: Vec<u8>,
    day_index: Vec<u32>,
    season_days: Vec<u32>,
    prior_rows: Vec<u32>,
    prior_kinds: Vec<u16>,
    prior_payers: Vec<u8>,
    prior_quantity: Column,
    prior_unit_price: Column,
    prior_amount: Column,
    prior_season_amount: Column,
    // A subset's base columns.
    dates: Vec<i32>,
    special: Vec<u32>,
    building: Column,
    usable: Column,
    ceiling: Column,
    heat: Column,
    temperature: Column,
    arrears: Column,
    since: Vec<i32>,
    tags: Vec<(u32, u32)>,
    attributes: Vec<(u32, u32, u32)>,
}

/// `out` becomes the elements of `from` at the positions `idx`, in that order.
fn gather<T: Copy>(out: &mut Vec<T>, from: &[T], idx: &[usize]) {
    out.clear();
    out.extend(idx.iter().map(|&i| from[i]));
}

impl CallColumns {
    /// Fills the per-call columns for the customer-days `idx` (ascending) of the batch; `full`
    /// when `idx` is the whole batch (the base columns are then borrowed as they are).
    pub(super) fn fill(
        &mut self,
        base: &BatchColumns<'_>,
        accs: &[DayBill],
        idx: &[usize],
        full: bool,
        offsets: &[u32],
    ) {
        self.bits.clear();
        self.phase.clear();
        self.day_index.clear();
        self.season_days.clear();
        self.prior_rows.clear();
        self.prior_kinds.clear();
        self.prior_payers.clear();
        self.prior_quantity.clear();
        self.prior_unit_price.clear();
        self.prior_amount.clear();
        self.prior_season_amount.clear();
        for (j, &i) in idx.iter().enumerate() {
            let acc = &accs[i];
            match acc.season {
                Some(s) => {
                    self.phase.push(columns::phase_code(s.phase));
                    self.day_index.push(s.day_index);
                    self.season_days.push(s.season_days);
                }
                None => {
                    self.phase.push(0);
                    self.day_index.push(0);
                    self.season_days.push(0);
                }
            }
            self.bits.push(row_bits(base.bits[i], acc.season));
            for l in acc.lines.iter().map(|l| RawLine::of(l, offsets)) {
                self.prior_rows.push(j as u32);
                self.prior_kinds.push(l.kind);
                self.prior_payers.push(l.payer);
                self.prior_quantity.push(l.quantity);
                self.prior_unit_price.push(l.unit_price);
                self.prior_amount.push(l.amount);
                self.prior_season_amount.push(l.season_amount);
            }
        }
        if !full {
            gather(&mut self.dates, &base.dates, idx);
            gather(&mut self.special, &base.special, idx);
            gather(&mut self.since, &base.since, idx);
            self.building.gather(&base.building, idx);
            self.usable.gather(&base.usable, idx);
            self.ceiling.gather(&base.ceiling, idx);
            self.heat.gather(&base.heat, idx);
            self.temperature.gather(&base.temperature, idx);
            self.arrears.gather(&base.arrears, idx);
            // Tags and attributes renumbered to positions in `idx` (both are in row order).
            self.tags.clear();
            self.attributes.clear();
            let mut pos = idx.iter().enumerate().peekable();
            for &(row, t) in &base.tags {
                while pos.peek().is_some_and(|(_, i)| **i < row as usize) {
                    pos.next();
                }
                if let Some((j, _)) = pos.peek().filter(|(_, i)| **i == row as usize) {
                    self.tags.push((*j as u32, t));
                }
            }
            let mut pos = idx.iter().enumerate().peekable();
            for &(row, k, v) in &base.attributes {
                while pos.peek().is_some_and(|(_, i)| **i < row as usize) {
                    pos.next();
                }
                if let Some((j, _)) = pos.peek().filter(|(_, i)| **i == row as usize) {
                    self.attributes.push((*j as u32, k, v));
                }
            }
        }
    }

    /// The batch of one call, borrowing the base columns (`full`) or the gathered ones.
    pub(super) fn view<'s>(
        &'s self,
        base: &'s BatchColumns<'_>,
        len: usize,
        full: bool,
        prior_kinds: &'s [wit::PriorKind<'s>],
    ) -> wit::DayBatch<'s> {
        let src = |b: &'s Column, own: &'s Column| if full { b.as_wit() } else { own.as_wit() };
        wit::DayBatch {
            len: len as u32,
            dates: if full { &base.dates } else { &self.dates },
            bits: &self.bits,
            special_class: if full { &base.special } else { &self.special },
            building_area: src(&base.building, &self.building),
            usable_area: src(&base.usable, &self.usable),
            ceiling_height: src(&base.ceiling, &self.ceiling),
            heat: src(&base.heat, &self.heat),
            indoor_temperature: src(&base.temperature, &self.temperature),
            arrears: src(&base.arrears, &self.arrears),
            arrears_since: if full { &base.since } else { &self.since },
            season_phase: &self.phase,
            season_day_index: &self.day_index,
            season_days: &self.season_days,
            texts: &base.texts,
            tags: if full { &base.tags } else { &self.tags },
            attributes: if full {
                &base.attributes
            } else {
                &self.attributes
            },
            prior_lines: wit::LineColumnParam {
                rows: &self.prior_rows,
                kinds: &self.prior_kinds,
                payers: &self.prior_payers,
                quantity: self.prior_quantity.as_wit(),
                unit_price: self.prior_unit_price.as_wit(),
                amount: self.prior_amount.as_wit(),
                season_amount: self.prior_season_amount.as_wit(),
            },
            prior_kinds,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::invariants::Totals;
    use crate::model::LineKind;
    use columns::bits::{HAS_SEASON, METERED, SEASON_CHARGED};

    fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn date32_counts_days_from_1970() {
        assert_eq!(date32(date(1970, 1, 1)), 0);
        assert_eq!(date32(date(1969, 12, 31)), -1);
        assert_eq!(date32(date(2000, 1, 1)), 10_957);
        assert_eq!(date32(date(2025, 10, 20)), 20_381);
    }

    #[test]
    fn row_bits_add_the_season_so_far() {
        let season = |charged| {
            Some(wit::SeasonDay {
                phase: wit::SeasonPhase::Early,
                day_index: 1,
                season_days: 151,
                charged,
            })
        };
        assert_eq!(row_bits(METERED, None), METERED);
        assert_eq!(row_bits(METERED, season(false)), METERED | HAS_SEASON);
        assert_eq!(
            row_bits(METERED, season(true)),
            METERED | HAS_SEASON | SEASON_CHARGED
        );
    }

    #[test]
    fn gather_takes_the_rows_asked_for_in_order() {
        let mut out = vec![9, 9, 9, 9, 9];
        gather(&mut out, &[10, 11, 12, 13], &[1, 3]);
        assert_eq!(out, [11, 13]);
        gather(&mut out, &[10, 11, 12, 13], &[]);
        assert!(out.is_empty());
    }

    #[test]
    fn a_subset_call_renumbers_rows_and_prior_kinds() {
        let mut days: Vec<DayInput> = (0..4)
            .map(|i| DayInput::new(format!("c{i}"), date(2025, 10, 20 + i)))
            .collect();
        days[0].tags = vec!["a".into()];
        days[1].tags = vec!["b".into()];
        days[2].tags = vec!["c".into(), "a".into()];
        days[3].attributes = vec![("k".into(), "v".into())];
        let refs: Vec<&DayInput> = days.iter().collect();
        let mut bad = Vec::new();
        let base = BatchColumns::build(&refs, &mut bad);
        assert!(bad.is_empty());
        assert_eq!(base.texts, ["a", "b", "c", "k", "v"]);

        // Day 2 carries a line of entry 1's kind 0; entry 0 announced two kinds.
        let kind = Arc::new(LineKind {
            plugin: "p".into(),
            plugin_version: "1.0.0".into(),
            code: "heat".into(),
            description: "Heating".into(),
            unit: "m2".into(),
            category: LineCategory::Heating,
            entry: 1,
            index: 0,
        });
        let mut accs: Vec<DayBill> = (0..4)
            .map(|_| DayBill {
                lines: Vec::new(),
                season: None,
                totals: Totals::default(),
                error: None,
            })
            .collect();
        accs[2].lines.push(BillLine {
            kind,
            quantity: Decimal::new(605, 1),
            unit_price: Decimal::new(3832, 2),
            amount: Decimal::new(231_836, 2),
            payer: Payer::Customer,
            season_amount: None,
        });

        let mut cols = CallColumns::default();
        cols.fill(&base, &accs, &[1, 2, 3], false, &[0, 2]);
        // Rows are positions in the subset: day 1 is row 0, day 2 row 1, day 3 row 2.
        assert_eq!(cols.tags, [(0, 1), (1, 2), (1, 0)]);
        assert_eq!(cols.attributes, [(2, 3, 4)]);
        assert_eq!(
            cols.dates,
            [
                date32(date(2025, 10, 21)),
                date32(date(2025, 10, 22)),
                date32(date(2025, 10, 23))
            ]
        );
        assert_eq!(cols.prior_rows, [1]);
        assert_eq!(cols.prior_kinds, [2]);
        assert_eq!(cols.prior_amount.units, [231_836]);
    }
}
