//! Runs every case file of `plugins/cases/` (format: docs/case-format.md) through the
//! reference plugins natively, with `heatbill_sdk::native::Chain`.
//!
//! The host's harness (`heatbill plugin test`) runs the same files through the sandbox; this
//! check catches a wrong figure or a format slip in the files while writing them, with nothing
//! but `cargo test` in plugins/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use heatbill_sdk::native::{Chain, DynRule, configure};
use heatbill_sdk::testing::dec;
use heatbill_sdk::{
    CustomerClass, CustomerDay, CustomerFlags, Date, Payer, RuleError, SeasonDay, SeasonPhase,
    ServiceStatus, WitDecimal,
};
use rust_decimal::Decimal;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[allow(dead_code)]
    description: Option<String>,
    chain: Vec<ChainEntry>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainEntry {
    plugin: String,
    version: Option<String>,
    #[serde(default)]
    params: Option<toml::Table>,
    /// Later parameters, each in force from its date.
    #[serde(default)]
    from: Vec<ParamsVersion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsVersion {
    date: String,
    params: toml::Table,
}

impl ChainEntry {
    /// The parameters in force on `at` (`None`: the first ones).
    fn params_on(&self, at: Option<Date>) -> toml::Table {
        at.and_then(|d| {
            self.from
                .iter()
                .rfind(|v| v.date.parse::<Date>().unwrap() <= d)
        })
        .map_or_else(
            || self.params.clone().unwrap_or_default(),
            |v| v.params.clone(),
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    customer: Customer,
    dates: Option<Dates>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dates {
    from: String,
    to: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Customer {
    date: Option<String>,
    #[allow(dead_code)]
    id: Option<String>,
    class: Option<String>,
    special_class: Option<String>,
    status: Option<String>,
    #[serde(default)]
    metered: bool,
    #[serde(default)]
    low_income: bool,
    building_area: Option<String>,
    usable_area: Option<String>,
    ceiling_height: Option<String>,
    heat: Option<String>,
    heat_unit: Option<String>,
    indoor_temperature: Option<String>,
    arrears: Option<String>,
    arrears_since: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    season: Option<Season>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Season {
    phase: String,
    day_index: u32,
    season_days: u32,
    charged: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    lines: Option<Vec<ExpectLine>>,
    totals: Option<Totals>,
    error: Option<String>,
    sum: Option<BTreeMap<String, String>>,
    days: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectLine {
    code: String,
    amount: String,
    payer: Option<String>,
    quantity: Option<String>,
    unit_price: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Totals {
    total: Option<String>,
    customer: Option<String>,
    government: Option<String>,
    employer: Option<String>,
}

fn rule(plugin: &str, params: &str) -> Result<Box<dyn DynRule>, RuleError> {
    Ok(match plugin {
        "season" => configure::<season::Season>(params)?.boxed(),
        "area-tariff" => configure::<area_tariff::AreaTariff>(params)?.boxed(),
        "metered-tariff" => configure::<metered_tariff::MeteredTariff>(params)?.boxed(),
        "suspension-fee" => configure::<suspension_fee::SuspensionFee>(params)?.boxed(),
        "low-income-subsidy" => configure::<low_income_subsidy::LowIncomeSubsidy>(params)?.boxed(),
        "temperature-refund" => configure::<temperature_refund::TemperatureRefund>(params)?.boxed(),
        "late-fee" => configure::<late_fee::LateFee>(params)?.boxed(),
        other => panic!("no reference plugin named {other:?}"),
    })
}

fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn customer_day(c: &Customer, date: Date) -> CustomerDay {
    let mut flags = CustomerFlags::empty();
    if c.metered {
        flags |= CustomerFlags::METERED;
    }
    if c.low_income {
        flags |= CustomerFlags::LOW_INCOME;
    }
    CustomerDay {
        date,
        class: match c.class.as_deref() {
            None | Some("residential") => CustomerClass::Residential,
            Some("non-residential") => CustomerClass::NonResidential,
            Some(o) => panic!("class {o:?}"),
        },
        special_class: c.special_class.clone(),
        status: match c.status.as_deref() {
            None | Some("active") => ServiceStatus::Active,
            Some("suspended") => ServiceStatus::Suspended,
            Some(o) => panic!("status {o:?}"),
        },
        flags,
        building_area: c.building_area.as_deref().map_or(WitDecimal::ZERO, dec),
        usable_area: c.usable_area.as_deref().map(dec),
        ceiling_height: c.ceiling_height.as_deref().map(dec),
        // As the host's runner: GJ as written, another unit converted exactly and normalised.
        heat: c.heat.as_deref().map(|h| match c.heat_unit.as_deref() {
            None => dec(h),
            Some(u) => {
                let unit: heatbill_sdk::units::HeatUnit = u.parse().unwrap();
                let gj = unit.to_gj(h.parse().unwrap()).unwrap();
                let gj = if unit == heatbill_sdk::units::HeatUnit::Gj {
                    gj
                } else {
                    gj.normalize()
                };
                WitDecimal::try_from(gj).unwrap()
            }
        }),
        indoor_temperature: c.indoor_temperature.as_deref().map(dec),
        arrears: c.arrears.as_deref().map_or(WitDecimal::ZERO, dec),
        arrears_since: c.arrears_since.as_deref().map(|s| s.parse().unwrap()),
        season: c.season.as_ref().map(|s| SeasonDay {
            phase: match s.phase.as_str() {
                "outside" => SeasonPhase::Outside,
                "regular" => SeasonPhase::Regular,
                "early" => SeasonPhase::Early,
                "extended" => SeasonPhase::Extended,
                o => panic!("phase {o:?}"),
            },
            day_index: s.day_index,
            season_days: s.season_days,
            charged: s.charged,
        }),
        tags: c.tags.clone(),
        attributes: c
            .attributes
            .iter()
            .map(|(k, v)| heatbill_sdk::Attribute {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        prior_lines: Vec::new(),
    }
}

fn payer(name: Option<&str>) -> Payer {
    match name {
        None | Some("customer") => Payer::Customer,
        Some("government") => Payer::Government,
        Some("employer") => Payer::Employer,
        Some(o) => panic!("payer {o:?}"),
    }
}

fn check_totals(
    failures: &mut Vec<String>,
    what: &str,
    t: &Totals,
    got: [Decimal; 4], // total, customer, government, employer
) {
    for (name, want, got) in [
        ("total", &t.total, got[0]),
        ("customer", &t.customer, got[1]),
        ("government", &t.government, got[2]),
        ("employer", &t.employer, got[3]),
    ] {
        if let Some(w) = want
            && d(w) != got
        {
            failures.push(format!("{what}: totals.{name} is {got}, expected {w}"));
        }
    }
}

fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let file: CaseFile =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Verified: every rule is also called for the days its filter excludes, and must return
    // nothing for them (the sandbox would not call it at all).
    let build = |at: Option<Date>| {
        let mut chain = Chain::new().verified();
        for entry in &file.chain {
            let params = serde_json::to_string(&entry.params_on(at)).unwrap();
            let r = rule(&entry.plugin, &params).unwrap_or_else(|e| {
                panic!(
                    "{}: {} refused its params: {}",
                    path.display(),
                    entry.plugin,
                    e.message()
                )
            });
            if let Some(v) = &entry.version {
                assert_eq!(
                    *v,
                    r.info().version,
                    "{}: version of {}",
                    path.display(),
                    entry.plugin
                );
            }
            chain.push(r);
        }
        chain
    };
    // The first parameters, then a chain version on each date some entry's parameters change
    // (the line kinds are the same in every version: `chain.spec` reads them from the first).
    let chain = build(None);
    let mut version_dates: Vec<Date> = file
        .chain
        .iter()
        .flat_map(|e| e.from.iter().map(|v| v.date.parse::<Date>().unwrap()))
        .collect();
    version_dates.sort();
    version_dates.dedup();
    let versions: Vec<(Date, Chain)> = version_dates
        .into_iter()
        .map(|d| (d, build(Some(d))))
        .collect();
    let chain_on = |dt: Date| {
        versions
            .iter()
            .rev()
            .find(|(d, _)| *d <= dt)
            .map_or(&chain, |(_, c)| c)
    };
    let mut failures = Vec::new();
    for case in &file.cases {
        let what = format!(
            "{} / {}",
            path.file_name().unwrap().to_string_lossy(),
            case.name
        );
        let dates: Vec<Date> = match &case.dates {
            Some(r) => {
                let (from, to): (Date, Date) = (r.from.parse().unwrap(), r.to.parse().unwrap());
                (0..=from.days_until(to))
                    .map(|i| from.add_days(i))
                    .collect()
            }
            None => vec![
                case.customer
                    .date
                    .as_deref()
                    .expect("a date")
                    .parse()
                    .unwrap(),
            ],
        };
        let days: Vec<CustomerDay> = dates
            .iter()
            .map(|&dt| customer_day(&case.customer, dt))
            .collect();
        let bills: Vec<_> = if versions.is_empty() {
            chain.evaluate(&days)
        } else {
            days.iter()
                .zip(&dates)
                .map(|(day, &dt)| chain_on(dt).evaluate(std::slice::from_ref(day)).remove(0))
                .collect()
        };
        if let Some(kind) = &case.expect.error {
            match &bills[0] {
                Err(heatbill_sdk::native::ChainError::Rule { error, .. })
                    if error.kind() == kind => {}
                other => failures.push(format!("{what}: expected error {kind}, got {other:?}")),
            }
            continue;
        }
        let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut totals = [Decimal::ZERO; 4];
        let mut with_lines = 0;
        for (bill, date) in bills.iter().zip(&dates) {
            let bill = match bill {
                Ok(b) => b,
                Err(e) => {
                    failures.push(format!("{what}: {date}: {e}"));
                    continue;
                }
            };
            if !bill.lines.is_empty() {
                with_lines += 1;
            }
            for l in &bill.lines {
                let code = chain.spec(l).unwrap().code.clone();
                *sums.entry(code).or_default() += l.line.amount.to_decimal().unwrap();
            }
            totals[0] += bill.total();
            totals[1] += bill.total_for(Payer::Customer);
            totals[2] += bill.total_for(Payer::Government);
            totals[3] += bill.total_for(Payer::Employer);
        }
        if let Some(want) = &case.expect.lines {
            let bill = bills[0].as_ref().ok();
            let got: Vec<_> = bill.map(|b| b.lines.clone()).unwrap_or_default();
            if got.len() != want.len() {
                failures.push(format!(
                    "{what}: {} lines, expected {}: {:?}",
                    got.len(),
                    want.len(),
                    got.iter()
                        .map(|l| format!("{} {}", chain.spec(l).unwrap().code, l.line.amount))
                        .collect::<Vec<_>>()
                ));
            } else {
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    let code = &chain.spec(g).unwrap().code;
                    let mut bad = code != &w.code
                        || g.line.amount.to_decimal().unwrap() != d(&w.amount)
                        || g.line.payer != payer(w.payer.as_deref());
                    if let Some(q) = &w.quantity {
                        bad |= g.line.quantity.to_decimal().unwrap() != d(q);
                    }
                    if let Some(p) = &w.unit_price {
                        bad |= g.line.unit_price.to_decimal().unwrap() != d(p);
                    }
                    if bad {
                        failures.push(format!(
                            "{what}: line {i} is {code} {} {:?} (qty {}, price {}), expected {} {} {:?}",
                            g.line.amount, g.line.payer, g.line.quantity, g.line.unit_price, w.code, w.amount, w.payer
                        ));
                    }
                }
            }
        }
        if let Some(t) = &case.expect.totals {
            check_totals(&mut failures, &what, t, totals);
        }
        if let Some(want) = &case.expect.sum {
            for (code, amount) in want {
                let got = sums.get(code).copied().unwrap_or_default();
                if got != d(amount) {
                    failures.push(format!("{what}: sum of {code} is {got}, expected {amount}"));
                }
            }
        }
        if let Some(n) = case.expect.days
            && n != with_lines
        {
            failures.push(format!(
                "{what}: {with_lines} days with lines, expected {n}"
            ));
        }
    }
    failures
}

#[test]
fn every_case_file_passes_natively() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the case files in {}",
        dir.display()
    );
    let failures: Vec<String> = files.iter().flat_map(|f| run_file(f)).collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every combination of the facts the filters test, on a regular season day, an early day and a
/// day outside the season.
fn synthetic_days() -> Vec<CustomerDay> {
    let mut days = Vec::new();
    let seasons = [
        Some(SeasonDay {
            phase: SeasonPhase::Regular,
            day_index: 50,
            season_days: 183,
            charged: true,
        }),
        Some(SeasonDay {
            phase: SeasonPhase::Early,
            day_index: 1,
            season_days: 183,
            charged: false,
        }),
        Some(SeasonDay {
            phase: SeasonPhase::Outside,
            day_index: 0,
            season_days: 183,
            charged: false,
        }),
        None,
    ];
    for combo in 0u32..64 {
        for season in seasons {
            let has = |bit: u32| combo & (1 << bit) != 0;
            let mut flags = CustomerFlags::empty();
            if has(0) {
                flags |= CustomerFlags::METERED;
            }
            if has(1) {
                flags |= CustomerFlags::LOW_INCOME;
            }
            days.push(CustomerDay {
                date: Date::new(2026, 1, 15).unwrap(),
                class: if has(2) {
                    CustomerClass::NonResidential
                } else {
                    CustomerClass::Residential
                },
                special_class: None,
                status: if has(3) {
                    ServiceStatus::Suspended
                } else {
                    ServiceStatus::Active
                },
                flags,
                building_area: dec("75"),
                usable_area: Some(dec("60")),
                ceiling_height: Some(dec("3.6")),
                heat: Some(dec("1.2")),
                indoor_temperature: has(4).then(|| dec("17.0")),
                arrears: dec("1149.60"),
                arrears_since: has(5).then(|| Date::new(2025, 12, 1).unwrap()),
                season,
                tags: Vec::new(),
                attributes: Vec::new(),
                prior_lines: vec![heatbill_sdk::PriorLine {
                    code: "heat".into(),
                    entry: 1,
                    category: heatbill_sdk::LineCategory::Heating,
                    quantity: dec("60"),
                    unit_price: dec("38.32"),
                    amount: dec("12.56"),
                    payer: Payer::Customer,
                    season_amount: Some(dec("2299.20")),
                }],
            });
        }
    }
    days
}

/// The filter promise (`Plugin::applies_to`) of every plugin configuration in the case files,
/// over every combination of the facts it can test: a day outside the filter gets nothing.
#[test]
fn every_filter_excludes_only_days_the_plugin_does_not_bill() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let days = synthetic_days();
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let file: CaseFile = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let versions = file.chain.iter().flat_map(|e| {
            std::iter::once(e.params_on(None))
                .chain(e.from.iter().map(|v| v.params.clone()))
                .map(move |p| (e, p))
        });
        for (e, table) in versions {
            let params = serde_json::to_string(&table).unwrap();
            let r = rule(&e.plugin, &params).unwrap();
            let filter = r.applies_to();
            let mut out = Vec::new();
            r.evaluate_all(&days, &mut out);
            for (day, result) in days.iter().zip(&out) {
                let bits = heatbill_sdk::bits::of(day);
                if filter.matches(bits) {
                    continue;
                }
                checked += 1;
                let empty = matches!(result, Ok(o) if o.lines.is_empty() && o.season.is_none());
                if !empty {
                    failures.push(format!(
                        "{}: {} bills a day its filter excludes (bits {bits:#x})",
                        path.display(),
                        e.plugin
                    ));
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} excluded days were checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
