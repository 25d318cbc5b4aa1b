//! Runs every case file of `plugins/cases/` (format: docs/case-format.md) through the
//! reference plugins natively, with `heatbill_sdk::native::NativeChain`.
//!
//! The host's harness (`heatbill plugin test`) runs the same files through the sandbox; this
//! check catches a wrong figure or a format slip in the files while writing them, with nothing
//! but `cargo test` in plugins/. Both read the files and compare the results with the same code
//! (the host's `heatbill-cases` crate); this file only converts the SDK's native bills to its
//! neutral results.

use std::path::{Path, PathBuf};

use heatbill_cases::{CaseFile, CustomerSpec, DayResult, NaiveDate};
use heatbill_sdk::native::{DynRule, NativeBill, NativeChain, NativeChainError, configure};
use heatbill_sdk::testing::dec;
use heatbill_sdk::{
    CustomerClass, CustomerDay, CustomerFlags, Date, Payer, RuleError, SeasonDay, SeasonPhase,
    ServiceStatus, WitDecimal,
};
use rust_decimal::Decimal;

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

fn load(path: &Path) -> CaseFile {
    CaseFile::load(path).unwrap_or_else(|e| panic!("{e:#}"))
}

fn date(d: NaiveDate) -> Date {
    d.to_string().parse().unwrap()
}

fn wit(d: Decimal) -> WitDecimal {
    WitDecimal::try_from(d).unwrap_or_else(|e| panic!("{d}: {e:?}"))
}

/// The customer-day the host's runner builds from a case's customer, in the guest's types.
fn customer_day(c: &CustomerSpec, on: NaiveDate) -> CustomerDay {
    let mut flags = CustomerFlags::empty();
    if c.metered {
        flags |= CustomerFlags::METERED;
    }
    if c.low_income {
        flags |= CustomerFlags::LOW_INCOME;
    }
    // The values were checked when the file was read.
    CustomerDay {
        date: date(on),
        class: match c.class.as_str() {
            "non-residential" => CustomerClass::NonResidential,
            _ => CustomerClass::Residential,
        },
        special_class: c.special_class.clone(),
        status: match c.status.as_str() {
            "suspended" => ServiceStatus::Suspended,
            _ => ServiceStatus::Active,
        },
        flags,
        building_area: wit(c.building_area),
        usable_area: c.usable_area.map(wit),
        ceiling_height: c.ceiling_height.map(wit),
        // In GJ: as written, or converted exactly from the unit it was read in.
        heat: c.heat_gj().map(wit),
        indoor_temperature: c.indoor_temperature.map(wit),
        arrears: wit(c.arrears),
        arrears_since: c.arrears_since.map(date),
        season: c.season.as_ref().map(|s| SeasonDay {
            phase: match s.phase.as_str() {
                "outside" => SeasonPhase::Outside,
                "early" => SeasonPhase::Early,
                "extended" => SeasonPhase::Extended,
                _ => SeasonPhase::Regular,
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

/// A native chain's result as the case comparison's neutral result. A rule error's `message`
/// is the plugin's own text; a broken contract is an `invalid-output`, as the host reports it.
fn neutral(chain: &NativeChain, result: &Result<NativeBill, NativeChainError>) -> DayResult {
    let d = |w: WitDecimal| w.to_decimal().unwrap();
    match result {
        Ok(bill) => Ok(heatbill_cases::Bill::from_lines(
            bill.lines
                .iter()
                .map(|l| heatbill_cases::Line {
                    code: chain.spec(l).unwrap().code.clone(),
                    amount: d(l.line.amount),
                    quantity: d(l.line.quantity),
                    unit_price: d(l.line.unit_price),
                    payer: match l.line.payer {
                        Payer::Customer => heatbill_cases::Payer::Customer,
                        Payer::Government => heatbill_cases::Payer::Government,
                        Payer::Employer => heatbill_cases::Payer::Employer,
                    },
                    category: heatbill_sdk::params::category_name(l.category).to_string(),
                })
                .collect(),
        )),
        Err(e) => {
            let (kind, message) = match e {
                NativeChainError::Rule { error, .. } => (error.kind(), error.message().to_string()),
                NativeChainError::Contract { message, .. } => ("invalid-output", message.clone()),
            };
            Err(heatbill_cases::BillError {
                kind: kind.to_string(),
                message,
                text: e.to_string(),
            })
        }
    }
}

fn run_file(path: &Path) -> Vec<String> {
    let file = load(path);
    // A file that expects its chain refused: natively too, an entry refuses its parameters,
    // saying what the file says.
    if let Some(expected) = &file.refused {
        let refusal = file.chain.iter().find_map(|entry| {
            let params = serde_json::to_string(entry.params_on(None)).unwrap();
            rule(&entry.plugin, &params)
                .err()
                .map(|e| e.message().to_string())
        });
        return match (refusal, &expected.message) {
            (None, _) => vec![format!(
                "{}: expected the chain refused; every entry took its parameters",
                path.display()
            )],
            (Some(said), Some(want)) if !said.contains(want.as_str()) => vec![format!(
                "{}: the refusal {said:?} does not say {want:?}",
                path.display()
            )],
            _ => Vec::new(),
        };
    }
    // Verified: every rule is also called for the days its filter excludes, and must return
    // nothing for them (the sandbox would not call it at all).
    let build = |at: Option<NaiveDate>| {
        let mut chain = NativeChain::new().verified();
        for entry in &file.chain {
            let params = serde_json::to_string(entry.params_on(at)).unwrap();
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
    // The first parameters, then a chain version on each date some entry's parameters change.
    let first = build(None);
    let versions: Vec<(NaiveDate, NativeChain)> = file
        .version_dates()
        .into_iter()
        .map(|d| (d, build(Some(d))))
        .collect();
    let chain_on = |on: NaiveDate| {
        versions
            .iter()
            .rev()
            .find(|(d, _)| *d <= on)
            .map_or(&first, |(_, c)| c)
    };
    let mut failures = Vec::new();
    for case in &file.cases {
        let what = format!(
            "{} / {}",
            path.file_name().unwrap().to_string_lossy(),
            case.name
        );
        let dates = case.dates();
        let days: Vec<CustomerDay> = dates
            .iter()
            .map(|&on| customer_day(&case.customer, on))
            .collect();
        let results: Vec<DayResult> = if versions.is_empty() {
            let bills = first.evaluate(&days);
            bills.iter().map(|b| neutral(&first, b)).collect()
        } else {
            days.iter()
                .zip(&dates)
                .map(|(day, &on)| {
                    let chain = chain_on(on);
                    neutral(chain, &chain.evaluate(std::slice::from_ref(day))[0])
                })
                .collect()
        };
        let outcome = heatbill_cases::compare(case, &results);
        failures.extend(outcome.diffs.iter().map(|d| format!("{what}: {d}")));
    }
    failures
}

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_case_file_passes_natively() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let files = case_files(&dir);
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

/// A case file is input from whoever wrote it: its bounds are checked when it is read, before a
/// single customer-day is made, here as in the host's harness (one crate reads both). The
/// review's 257-byte range over 3,652,059 dates, and a file over the size cap, are refused.
#[test]
fn a_case_file_over_its_bounds_is_refused_when_read() {
    let dir = std::env::temp_dir().join(format!("cases-check-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let forever = dir.join("forever.toml");
    std::fs::write(
        &forever,
        "[[chain]]\nplugin = \"area-tariff\"\n[[case]]\nname = \"forever\"\n\
         dates = { from = \"0001-01-01\", to = \"9999-12-31\" }\nexpect.days = 0\n",
    )
    .unwrap();
    let big = dir.join("big.toml");
    std::fs::write(
        &big,
        format!(
            "[[chain]]\nplugin = \"area-tariff\"\n# {}\n",
            "x".repeat(heatbill_cases::MAX_FILE_BYTES as usize)
        ),
    )
    .unwrap();
    for (path, says) in [
        (&forever, "the cases bill 3652059 customer-days"),
        (&big, "a case file is at most 1048576 bytes"),
    ] {
        let e = format!("{:#}", CaseFile::load(path).unwrap_err());
        assert!(e.contains(says), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
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
    for path in case_files(&dir) {
        let file = load(&path);
        if file.refused.is_some() {
            continue; // its chain does not configure: nothing to filter
        }
        let versions = file.chain.iter().flat_map(|e| {
            std::iter::once(&e.params)
                .chain(e.from.iter().map(|v| &v.params))
                .map(move |p| (e, p))
        });
        for (e, params) in versions {
            let params = serde_json::to_string(params).unwrap();
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
