//! Serving `heatbill:rules@0.1.0` plugins: the newest version's values turned into 0.1.0's on
//! the way in and back on the way out.
//!
//! What 0.1.0 lacks, it is not given and does not give: its prior lines carry their category
//! but not their code, entry or season amount, and its lines carry no season amount (a later
//! 0.2.0 rule sees them with none, and covers them day by day). Nothing else differs, so a 0.1.0
//! plugin sees exactly the inputs it saw under a 0.1.0 host and its bills do not change.

use super::v0_1_0::wit as old;
use super::wit;
use crate::model::{ParamSpec, ParamType};

/// One enum into its namesake of the other version, case by case.
macro_rules! same_cases {
    ($value:expr, $from:path => $to:path: $($case:ident),+ $(,)?) => {{
        use $from as From;
        use $to as To;
        match $value {
            $(From::$case => To::$case,)+
        }
    }};
}

fn decimal(d: old::Decimal) -> wit::Decimal {
    wit::Decimal {
        units: d.units,
        scale: d.scale,
    }
}

fn decimal_back(d: wit::Decimal) -> old::Decimal {
    old::Decimal {
        units: d.units,
        scale: d.scale,
    }
}

fn category(c: old::LineCategory) -> wit::LineCategory {
    same_cases!(c, old::LineCategory => wit::LineCategory:
        Heating, Consumption, BaseFee, Subsidy, Refund, LateFee, Other)
}

fn category_back(c: wit::LineCategory) -> old::LineCategory {
    same_cases!(c, wit::LineCategory => old::LineCategory:
        Heating, Consumption, BaseFee, Subsidy, Refund, LateFee, Other)
}

fn payer(p: old::Payer) -> wit::Payer {
    same_cases!(p, old::Payer => wit::Payer: Customer, Government, Employer)
}

fn payer_back(p: wit::Payer) -> old::Payer {
    same_cases!(p, wit::Payer => old::Payer: Customer, Government, Employer)
}

fn season_day(s: old::SeasonDay) -> wit::SeasonDay {
    wit::SeasonDay {
        phase: same_cases!(s.phase, old::SeasonPhase => wit::SeasonPhase:
            Outside, Regular, Early, Extended),
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}

fn season_day_back(s: wit::SeasonDay) -> old::SeasonDay {
    old::SeasonDay {
        phase: same_cases!(s.phase, wit::SeasonPhase => old::SeasonPhase:
            Outside, Regular, Early, Extended),
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}

pub(crate) fn rule_error(e: old::RuleError) -> wit::RuleError {
    match e {
        old::RuleError::BadParams(m) => wit::RuleError::BadParams(m),
        old::RuleError::MissingInput(m) => wit::RuleError::MissingInput(m),
        old::RuleError::InvalidInput(m) => wit::RuleError::InvalidInput(m),
        old::RuleError::Unsupported(m) => wit::RuleError::Unsupported(m),
    }
}

pub(crate) fn plugin_info(i: old::PluginInfo) -> wit::PluginInfo {
    wit::PluginInfo {
        name: i.name,
        version: i.version,
        kind: same_cases!(i.kind, old::PluginKind => wit::PluginKind:
            Season, Tariff, Subsidy, Fee),
        description: i.description,
        params_schema: params_schema(&i.params).to_string(),
    }
}

/// 0.1.0's list of top-level parameter keys as the JSON Schema 0.2.0 carries (see
/// [`crate::params::schema_of_specs`]).
fn params_schema(params: &[old::ParamSpec]) -> serde_json::Value {
    let specs: Vec<ParamSpec> = params
        .iter()
        .map(|p| ParamSpec {
            name: p.name.clone(),
            ty: match p.type_ {
                old::ParamType::Decimal => ParamType::Decimal,
                old::ParamType::Integer => ParamType::Integer,
                old::ParamType::Boolean => ParamType::Boolean,
                old::ParamType::Date => ParamType::Date,
                old::ParamType::Text => ParamType::Text,
                old::ParamType::Json => ParamType::Json,
            },
            required: p.required,
            description: p.description.clone(),
        })
        .collect();
    crate::params::schema_of_specs(&specs)
}

pub(crate) fn configuration(c: old::Configuration) -> wit::Configuration {
    wit::Configuration {
        lines: c
            .lines
            .into_iter()
            .map(|s| wit::LineSpec {
                code: s.code,
                description: s.description,
                unit: s.unit,
                category: category(s.category),
            })
            .collect(),
        applies_to: wit::DayFilter {
            all_of: c.applies_to.all_of,
            none_of: c.applies_to.none_of,
        },
    }
}

/// A customer-day's prior lines as 0.1.0 has them (category, no code).
pub(crate) fn prior_lines(lines: &[wit::PriorLine<'_>]) -> Vec<old::PriorLine> {
    lines
        .iter()
        .map(|l| old::PriorLine {
            category: category_back(l.category),
            quantity: decimal_back(l.quantity),
            unit_price: decimal_back(l.unit_price),
            amount: decimal_back(l.amount),
            payer: payer_back(l.payer),
        })
        .collect()
}

/// A customer-day's attributes as 0.1.0 borrows them.
pub(crate) fn attributes<'a>(attributes: &[wit::Attribute<'a>]) -> Vec<old::Attribute<'a>> {
    attributes
        .iter()
        .map(|a| old::Attribute {
            key: a.key,
            value: a.value,
        })
        .collect()
}

/// A customer-day as 0.1.0 has it, borrowing its lists from the caller.
pub(crate) fn customer_day<'a>(
    d: &wit::CustomerDay<'a>,
    attributes: &'a [old::Attribute<'a>],
    prior_lines: &'a [old::PriorLine],
) -> old::CustomerDay<'a> {
    old::CustomerDay {
        date: old::Date {
            year: d.date.year,
            month: d.date.month,
            day: d.date.day,
        },
        class: same_cases!(d.class, wit::CustomerClass => old::CustomerClass:
            Residential, NonResidential),
        special_class: d.special_class,
        status: same_cases!(d.status, wit::ServiceStatus => old::ServiceStatus:
            Active, Suspended),
        flags: {
            let mut f = old::CustomerFlags::empty();
            if d.flags.contains(wit::CustomerFlags::METERED) {
                f |= old::CustomerFlags::METERED;
            }
            if d.flags.contains(wit::CustomerFlags::LOW_INCOME) {
                f |= old::CustomerFlags::LOW_INCOME;
            }
            f
        },
        building_area: decimal_back(d.building_area),
        usable_area: d.usable_area.map(decimal_back),
        ceiling_height: d.ceiling_height.map(decimal_back),
        heat: d.heat.map(decimal_back),
        indoor_temperature: d.indoor_temperature.map(decimal_back),
        arrears: decimal_back(d.arrears),
        arrears_since: d.arrears_since.map(|a| old::Date {
            year: a.year,
            month: a.month,
            day: a.day,
        }),
        season: d.season.map(season_day_back),
        tags: d.tags,
        attributes,
        prior_lines,
    }
}

pub(crate) fn day_output(o: old::DayOutput) -> wit::DayOutput {
    wit::DayOutput {
        lines: o
            .lines
            .into_iter()
            .map(|l| wit::Line {
                spec: l.spec,
                quantity: decimal(l.quantity),
                unit_price: decimal(l.unit_price),
                amount: decimal(l.amount),
                payer: payer(l.payer),
                season_amount: None,
            })
            .collect(),
        season: o.season.map(season_day),
    }
}

fn column<'a>(c: &wit::DecimalColumnParam<'a>) -> old::DecimalColumnParam<'a> {
    old::DecimalColumnParam {
        units: c.units,
        scales: c.scales,
    }
}

/// A batch as 0.1.0 has it, borrowing every column from `b` except the prior lines' kinds,
/// which 0.1.0 reads as categories: `categories` holds them (the caller's buffer, reused).
pub(crate) fn day_batch<'a>(
    b: &wit::DayBatch<'a>,
    categories: &'a mut Vec<u16>,
) -> old::DayBatch<'a> {
    categories.clear();
    categories.extend(b.prior_lines.kinds.iter().map(|&k| {
        b.prior_kinds
            .get(usize::from(k))
            .map_or(old::LineCategory::Other as u16, |p| {
                category_back(p.category) as u16
            })
    }));
    let p = &b.prior_lines;
    old::DayBatch {
        len: b.len,
        dates: b.dates,
        bits: b.bits,
        special_class: b.special_class,
        building_area: column(&b.building_area),
        usable_area: column(&b.usable_area),
        ceiling_height: column(&b.ceiling_height),
        heat: column(&b.heat),
        indoor_temperature: column(&b.indoor_temperature),
        arrears: column(&b.arrears),
        arrears_since: b.arrears_since,
        season_phase: b.season_phase,
        season_day_index: b.season_day_index,
        season_days: b.season_days,
        texts: b.texts,
        tags: b.tags,
        attributes: b.attributes,
        prior_lines: old::LineColumnParam {
            rows: p.rows,
            kinds: categories,
            payers: p.payers,
            quantity: column(&p.quantity),
            unit_price: column(&p.unit_price),
            amount: column(&p.amount),
        },
    }
}

/// A 0.1.0 plugin's output lines as the newest version has them: no season amounts.
pub(crate) fn line_column(l: old::LineColumnResult) -> wit::LineColumnResult {
    let n = l.rows.len();
    let col = |c: old::DecimalColumnResult| wit::DecimalColumnResult {
        units: c.units,
        scales: c.scales,
    };
    wit::LineColumnResult {
        rows: l.rows,
        kinds: l.kinds,
        payers: l.payers,
        quantity: col(l.quantity),
        unit_price: col(l.unit_price),
        amount: col(l.amount),
        season_amount: wit::DecimalColumnResult {
            units: vec![0; n],
            scales: vec![0; n],
        },
    }
}

pub(crate) fn season_column(s: old::SeasonColumn) -> wit::SeasonColumn {
    wit::SeasonColumn {
        phase: s.phase,
        day_index: s.day_index,
        season_days: s.season_days,
        charged: s.charged,
    }
}
