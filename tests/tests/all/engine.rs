//! The engine on the reference plugins: chains, the compile cache, parameter checks, loading and
//! checking components, schedules.
//!
//! Long by design: one test module per area of the suite (this one: the engine on real
//! components), each test one behaviour.

use std::str::FromStr;
use std::sync::Arc;

use chrono::NaiveDate;
use heatbill_engine::{
    BillErrorKind, BinaryFormat, Chain, ChainError, DayInput, Engine, EngineConfig, Evaluator,
    LoadError, LoadOutcome, LoadedPlugin, ParamType, Payer, PluginKind, PoolConfig, RuleErrorKind,
    Schedule, SeasonPhase,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::component;

/// A configuration with a small pool: tests build many engines at once, and each pool reserves
/// address space for all its slots.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        pool: PoolConfig {
            total_component_instances: 64,
            total_core_instances: 256,
            total_memories: 64,
            total_tables: 256,
            ..PoolConfig::default()
        },
        ..EngineConfig::default()
    }
}

pub fn engine() -> Engine {
    Engine::new(test_config()).expect("engine")
}

pub fn load(engine: &Engine, name: &str) -> Arc<LoadedPlugin> {
    engine
        .load(&component(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn harbin_season() -> Value {
    json!({"start": "2025-10-20", "end": "2026-04-20"})
}

fn harbin_tariff() -> Value {
    json!({"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"}})
}

fn household(id: &str, day: &str) -> DayInput {
    let mut d = DayInput::new(id, date(day));
    d.usable_area = Some(dec("60.00"));
    d.building_area = dec("75.00");
    d
}

/// season → area-tariff → low-income-subsidy → late-fee, Harbin figures.
fn reference_chain(engine: &Engine) -> Arc<Chain> {
    Arc::new(
        Chain::new(
            "harbin",
            [
                (load(engine, "season"), harbin_season()),
                (load(engine, "area-tariff"), harbin_tariff()),
                (
                    load(engine, "low-income-subsidy"),
                    json!({"share": "1.00", "area_cap": "45", "area_basis": "usable"}),
                ),
                (
                    load(engine, "late-fee"),
                    json!({"daily_rate": "0.001", "due_date": "2026-01-01"}),
                ),
            ],
        )
        .expect("reference chain"),
    )
}

#[test]
fn w1_days_one_to_three_and_the_whole_season() {
    let engine = engine();
    let chain = Arc::new(
        Chain::new(
            "harbin",
            [
                (load(&engine, "season"), harbin_season()),
                (load(&engine, "area-tariff"), harbin_tariff()),
            ],
        )
        .unwrap(),
    );
    let mut ev = engine.evaluator(chain).expect("configure");

    let days: Vec<DayInput> = ["2025-10-20", "2025-10-21", "2025-10-22"]
        .iter()
        .map(|d| household("c1", d))
        .collect();
    let bills: Vec<_> = ev
        .evaluate(&days)
        .into_iter()
        .map(|r| r.expect("billed"))
        .collect();
    let amounts: Vec<String> = bills
        .iter()
        .map(|b| b.lines[0].amount.to_string())
        .collect();
    assert_eq!(amounts, ["12.56", "12.57", "12.56"]);
    for (k, b) in bills.iter().enumerate() {
        assert_eq!(b.lines.len(), 1);
        let l = &b.lines[0];
        assert_eq!(l.code(), "heat");
        assert_eq!(l.plugin(), "area-tariff");
        assert_eq!(l.plugin_version(), "1.0.0");
        assert_eq!(l.quantity, dec("60.00"));
        assert_eq!(l.payer, Payer::Customer);
        assert_eq!(b.total, l.amount);
        assert_eq!(b.by_payer.customer, l.amount);
        let s = b.season.expect("season position");
        assert_eq!(s.phase, SeasonPhase::Regular);
        assert_eq!((s.day_index, s.season_days), (k as u32 + 1, 183));
    }

    // The 183 days of the season, in one batch, add up to the season fee exactly.
    let start = date("2025-10-20");
    let season: Vec<DayInput> = (0..183)
        .map(|i| household("c1", &(start + chrono::Days::new(i)).to_string()))
        .collect();
    let total: Decimal = ev
        .evaluate(&season)
        .into_iter()
        .map(|r| r.expect("billed").total)
        .sum();
    assert_eq!(total, dec("2299.20"));

    // Outside the season: no line, an empty bill.
    let bill = ev
        .evaluate(&[household("c1", "2026-06-01")])
        .remove(0)
        .unwrap();
    assert!(bill.lines.is_empty());
    assert_eq!(bill.total, dec("0.00"));
    assert_eq!(bill.season.unwrap().phase, SeasonPhase::Outside);
}

#[test]
fn reference_chain_w5_and_w6() {
    let engine = engine();
    let mut ev = engine.evaluator(reference_chain(&engine)).unwrap();

    let mut w5 = household("low-income", "2025-10-20");
    w5.low_income = true;
    let mut w6 = household("in-arrears", "2026-01-01");
    w6.arrears = dec("1149.60");
    w6.arrears_since = Some(date("2026-01-01"));
    let results = ev.evaluate(&[w5, w6]);

    let b5 = results[0].as_ref().expect("W5 billed");
    let lines: Vec<(&str, String, Payer)> = b5
        .lines
        .iter()
        .map(|l| (l.code(), l.amount.to_string(), l.payer))
        .collect();
    assert_eq!(
        lines,
        [
            ("heat", "12.56".to_string(), Payer::Customer),
            ("subsidy", "-9.42".to_string(), Payer::Customer),
            ("subsidy", "9.42".to_string(), Payer::Government),
        ]
    );
    assert_eq!(b5.total, dec("12.56"));
    assert_eq!(b5.by_payer.customer, dec("3.14"));
    assert_eq!(b5.by_payer.government, dec("9.42"));
    assert_eq!(b5.by_payer.employer, dec("0"));

    let b6 = results[1].as_ref().expect("W6 billed");
    let late = b6.lines.iter().find(|l| l.code() == "late-fee").unwrap();
    assert_eq!(late.amount.to_string(), "1.15");
    assert_eq!(late.plugin(), "late-fee");
    assert_eq!(b6.total, dec("13.71"));
}

#[test]
fn a_rule_error_parks_one_customer_and_names_everything() {
    let engine = engine();
    let chain = Arc::new(
        Chain::new(
            "beijing",
            [
                (
                    load(&engine, "season"),
                    json!({"start": "2025-11-15", "end": "2026-03-15"}),
                ),
                (
                    load(&engine, "metered-tariff"),
                    json!({
                        "prices": {"residential": "12", "non-residential": "12"},
                        "unit_prices": {"residential": "44.45", "non-residential": "44.45"}
                    }),
                ),
            ],
        )
        .unwrap(),
    );
    let mut ev = engine.evaluator(chain).unwrap();
    let mut read = DayInput::new("read", date("2025-11-15"));
    read.metered = true;
    read.building_area = dec("80");
    read.heat = Some(dec("1.20"));
    let mut unread = read.clone();
    unread.customer = "unread".into();
    unread.heat = None;
    let results = ev.evaluate(&[unread, read]);

    // W3: basic 7.93 + metered 53.34.
    let bill = results[1].as_ref().expect("the read customer is billed");
    let amounts: Vec<String> = bill.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(amounts, ["7.93", "53.34"]);
    assert_eq!(bill.total, dec("61.27"));

    let err = results[0].as_ref().expect_err("no reading");
    assert!(matches!(
        err.kind,
        BillErrorKind::Rule {
            kind: RuleErrorKind::MissingInput,
            ..
        }
    ));
    assert_eq!(err.kind.name(), "missing-input");
    let text = err.to_string();
    for part in [
        "beijing",
        "unread",
        "2025-11-15",
        "metered-tariff",
        "1.0.0",
        "missing-input",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn compile_cache_in_memory() {
    let engine = engine();
    let bytes = component("season");
    let (a, first) = engine.load_with_outcome(&bytes).unwrap();
    let (b, second) = engine.load_with_outcome(&bytes).unwrap();
    assert_eq!(first, LoadOutcome::Compiled);
    assert_eq!(second, LoadOutcome::MemoryCache);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest().len(), 64);
    let stats = engine.cache_stats();
    assert_eq!((stats.compiled, stats.memory_hits), (1, 1));
}

#[test]
fn compile_cache_on_disk_serves_a_second_engine() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        ..test_config()
    };
    let bytes = component("area-tariff");

    let first = Engine::new(config.clone()).unwrap();
    let (_, outcome) = first.load_with_outcome(&bytes).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert_eq!(first.cache_stats().disk_writes, 1);
    let artifacts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(artifacts[0].ends_with(".cwasm"), "{artifacts:?}");
    drop(first);

    // A second engine (a new process, as far as the cache is concerned) maps the artifact.
    {
        let second = Engine::new(config.clone()).unwrap();
        let (tariff, outcome) = second.load_with_outcome(&bytes).unwrap();
        assert_eq!(outcome, LoadOutcome::DiskCache);
        assert_eq!(second.cache_stats().compiled, 0);
        assert_eq!(second.cache_stats().disk_hits, 1);

        // And the plugin it loaded works.
        let chain = Arc::new(
            Chain::new(
                "harbin",
                [
                    (load(&second, "season"), harbin_season()),
                    (tariff, harbin_tariff()),
                ],
            )
            .unwrap(),
        );
        let bill = Evaluator::new(&second, chain)
            .evaluate(&[household("c1", "2025-10-20")])
            .remove(0)
            .unwrap();
        assert_eq!(bill.total, dec("12.56"));
    }

    // A damaged artifact is not trusted: the engine compiles again and replaces it.
    let path = dir.join(&artifacts[0]);
    std::fs::write(&path, b"not an artifact").unwrap();
    let third = Engine::new(config).unwrap();
    let (_, outcome) = third.load_with_outcome(&bytes).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert_eq!(third.cache_stats().disk_rejected, 1);
    assert_eq!(third.cache_stats().disk_writes, 1);
    assert!(std::fs::metadata(&path).unwrap().len() > 1000);
}

/// What the compile cache holds now: entries and bytes, in memory and on disk.
fn held(engine: &Engine) -> (u64, u64, u64, u64) {
    let s = engine.cache_stats();
    (
        s.memory_entries,
        s.memory_bytes,
        s.disk_entries,
        s.disk_bytes,
    )
}

/// Components that compile and are then refused (no world: "not a heatbill rules plugin"),
/// each with its own digest, as an uploader can make as many of as they like.
fn compiled_then_refused(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| heatbill_fixtures::many_functions(200 + i))
        .collect()
}

/// The review's finding: refused uploads grew the server's memory and its disk cache without
/// bound (10 refused 5.3 MB uploads: RSS 640 → 812 MB, the cache directory +165 MB). A
/// component is kept only once it has loaded: compiled, then refused, it leaves nothing.
#[test]
fn a_refused_component_leaves_nothing_in_the_compile_cache() {
    let root = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(root.path().join("cache")),
        ..test_config()
    })
    .unwrap();
    // One plugin that loads, so the cache is not empty to begin with.
    engine.load(&component("season")).unwrap();
    let before = held(&engine);
    assert_eq!((before.0, before.2), (1, 1), "{:?}", engine.cache_stats());
    assert!(before.1 > 0 && before.3 > 0, "{before:?}");
    for bytes in compiled_then_refused(10) {
        match engine.load(&bytes) {
            Err(LoadError::WrongWorld { .. }) => {}
            other => panic!("expected the component to be refused for its world: {other:?}"),
        }
    }
    let stats = engine.cache_stats();
    assert_eq!(
        stats.compiled, 11,
        "each refused component was compiled: {stats:?}"
    );
    assert_eq!(
        held(&engine),
        before,
        "refused components were kept: {stats:?}"
    );
    assert_eq!(stats.disk_writes, 1, "{stats:?}");
    // The plugin that loaded is still served from memory.
    let (_, outcome) = engine.load_with_outcome(&component("season")).unwrap();
    assert_eq!(outcome, LoadOutcome::MemoryCache);
    // `plugin check` keeps nothing for them either.
    let report = engine.check(&compiled_then_refused(11).pop().unwrap());
    assert!(report.error.is_some());
    assert_eq!(held(&engine), before);
}

/// The compile cache is bounded in memory and on disk, by entries and by bytes, and evicts
/// the least recently used.
#[test]
fn the_compile_cache_evicts_the_least_recently_used() {
    let root = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        cache_dir: Some(root.path().join("cache")),
        memory_cache_entries: 2,
        disk_cache_entries: 2,
        ..test_config()
    };
    let (season, tariff, fee) = (
        component("season"),
        component("area-tariff"),
        component("late-fee"),
    );
    let engine = Engine::new(config.clone()).unwrap();
    engine.load(&season).unwrap();
    engine.load(&tariff).unwrap();
    // season is used again, so area-tariff is the least recently used in memory.
    let (_, outcome) = engine.load_with_outcome(&season).unwrap();
    assert_eq!(outcome, LoadOutcome::MemoryCache);
    engine.load(&fee).unwrap();
    let s = engine.cache_stats();
    assert_eq!((s.memory_entries, s.memory_evictions), (2, 1), "{s:?}");
    assert_eq!((s.disk_entries, s.disk_evictions), (2, 1), "{s:?}");
    let (_, outcome) = engine.load_with_outcome(&season).unwrap();
    assert_eq!(
        outcome,
        LoadOutcome::MemoryCache,
        "season was used last but one"
    );
    let (_, outcome) = engine.load_with_outcome(&tariff).unwrap();
    assert_ne!(outcome, LoadOutcome::MemoryCache, "area-tariff was evicted");
    // On disk, recency is of writes and disk hits: season, written first, was evicted.
    let second = Engine::new(config.clone()).unwrap();
    let (_, outcome) = second.load_with_outcome(&season).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert!(second.cache_stats().disk_entries <= 2);

    // By bytes: a cap that holds the largest of the three alone, and no two together.
    let sizes: Vec<u64> = [&season, &tariff, &fee]
        .iter()
        .map(|bytes| {
            let e = Engine::new(test_config()).unwrap();
            e.load(bytes).unwrap();
            held(&e).1
        })
        .collect();
    let cap = *sizes.iter().max().unwrap();
    let mut sorted = sizes.clone();
    sorted.sort();
    assert!(sorted[0] + sorted[1] > cap, "{sizes:?}");
    let small = Engine::new(EngineConfig {
        memory_cache_entries: 100,
        memory_cache_bytes: cap,
        cache_dir: None,
        ..config
    })
    .unwrap();
    for bytes in [&season, &tariff, &fee] {
        small.load(bytes).unwrap();
        let s = small.cache_stats();
        assert!(s.memory_bytes <= cap, "{s:?}");
        assert_eq!(s.memory_entries, 1, "{s:?}");
    }
    assert_eq!(small.cache_stats().memory_evictions, 2);
    let (_, outcome) = small.load_with_outcome(&fee).unwrap();
    assert_eq!(
        outcome,
        LoadOutcome::MemoryCache,
        "the last one loaded is kept"
    );
}

fn params_error(engine: &Engine, plugin: &str, params: Value) -> ChainError {
    Chain::new("harbin", [(load(engine, plugin), params)]).expect_err("params must be refused")
}

#[test]
fn parameters_are_checked_against_the_declared_ones() {
    let engine = engine();

    let e = params_error(
        &engine,
        "season",
        json!({"start": "2025-10-20", "end": "2026-04-20", "stat": "x"}),
    );
    let ChainError::Params {
        company,
        plugin,
        version,
        key,
        problem,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (company.as_str(), plugin.as_str(), version.as_str()),
        ("harbin", "season", "1.0.0")
    );
    assert_eq!(key.as_deref(), Some("stat"));
    assert!(
        problem.contains("unknown parameter") && problem.contains("`start`"),
        "{problem}"
    );
    let text = e.to_string();
    assert!(
        text.contains("harbin") && text.contains("season 1.0.0") && text.contains("`stat`"),
        "{text}"
    );

    let e = params_error(&engine, "season", json!({"start": "2025-10-20"}));
    assert!(
        matches!(&e, ChainError::Params { key: Some(k), problem, .. } if k == "end" && problem.contains("required")),
        "{e}"
    );

    let e = params_error(
        &engine,
        "season",
        json!({"start": "2025-10-20", "end": "20.4.2026"}),
    );
    assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");

    let e = params_error(
        &engine,
        "late-fee",
        json!({"daily_rate": 0.001, "due_date": "2026-01-01"}),
    );
    assert!(
        matches!(&e, ChainError::Params { key: Some(k), problem, .. } if k == "daily_rate" && problem.contains("in quotes")),
        "{e}"
    );

    let e = params_error(
        &engine,
        "late-fee",
        json!({"daily_rate": "one permille", "due_date": "2026-01-01"}),
    );
    assert!(e.to_string().contains("not an exact decimal"), "{e}");

    let e = params_error(
        &engine,
        "season",
        json!({"start": "2025-10-20", "end": "2026-04-20", "early_charged": "yes"}),
    );
    assert!(e.to_string().contains("true or false"), "{e}");

    let e = params_error(&engine, "season", json!(["2025-10-20"]));
    assert!(e.to_string().contains("must be a JSON object"), "{e}");

    // At any depth: the schema describes the nested objects too, and the key path is named.
    let e = params_error(
        &engine,
        "area-tariff",
        json!({"prices": {"residential": 38.32, "non-residential": "43.3"}}),
    );
    assert!(
        matches!(&e, ChainError::Params { key: Some(k), problem, .. } if k == "prices.residential" && problem.contains("\"38.32\"")),
        "{e}"
    );
    let e = params_error(
        &engine,
        "area-tariff",
        json!({"prices": {"residential": "1", "non-residential": "1"},
               "ceiling_surcharge": {"threshold": "3.2", "step": "0.1", "rate": "0.03", "stpes": "completed"}}),
    );
    assert!(
        matches!(&e, ChainError::Params { key: Some(k), problem, .. } if k == "ceiling_surcharge" && problem.contains("`stpes`")),
        "{e}"
    );
    let e = params_error(
        &engine,
        "low-income-subsidy",
        json!({"categories": ["heating", "heat"]}),
    );
    assert!(
        matches!(&e, ChainError::Params { key: Some(k), .. } if k == "categories.1"),
        "{e}"
    );

    let e = Chain::new("harbin", Vec::<(Arc<LoadedPlugin>, Value)>::new()).unwrap_err();
    assert!(matches!(e, ChainError::Empty { .. }), "{e}");
}

#[test]
fn parameters_the_plugin_refuses_fail_configure_with_a_named_error() {
    let engine = engine();
    // Well-typed, so the host accepts it; the season plugin refuses an end before the start.
    let chain = Arc::new(
        Chain::new(
            "harbin",
            [(
                load(&engine, "season"),
                json!({"start": "2026-04-20", "end": "2025-10-20"}),
            )],
        )
        .unwrap(),
    );
    let e = engine
        .evaluator(chain.clone())
        .err()
        .expect("configure refuses");
    assert_eq!(
        (e.plugin.as_str(), e.plugin_version.as_str()),
        ("season", "1.0.0")
    );
    assert!(matches!(
        e.kind,
        BillErrorKind::Rule {
            kind: RuleErrorKind::BadParams,
            ..
        }
    ));
    let text = e.to_string();
    assert!(
        text.contains("harbin") && text.contains("season 1.0.0") && text.contains("`end`"),
        "{text}"
    );

    // Lazily, through evaluate: every customer-day fails with the same named error.
    let mut ev = Evaluator::new(&engine, chain);
    let results = ev.evaluate(&[household("a", "2025-10-20"), household("b", "2025-10-21")]);
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert_eq!(err.kind.name(), "bad-params");
        assert_eq!(err.plugin, "season");
    }
}

#[test]
fn malformed_binaries_and_core_modules_are_refused_clearly() {
    let engine = engine();

    let e = engine.load(b"PK\x03\x04 this is a zip file").unwrap_err();
    assert!(matches!(e, LoadError::NotWasm { .. }), "{e}");
    assert!(e.to_string().contains("not a WebAssembly binary"), "{e}");

    let e = engine.load(b"").unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");

    // A core module: the smallest valid one, just the header.
    let e = engine.load(b"\0asm\x01\0\0\0").unwrap_err();
    assert_eq!(e, LoadError::CoreModule);
    assert!(e.to_string().contains("wasm32-wasip2"), "{e}");

    // A component header followed by garbage.
    let mut bad = b"\0asm\x0d\0\x01\0".to_vec();
    bad.extend_from_slice(&[0xff; 32]);
    let e = engine.load(&bad).unwrap_err();
    assert!(matches!(e, LoadError::Malformed { .. }), "{e}");

    // A truncated real component.
    let mut truncated = component("season");
    truncated.truncate(truncated.len() / 2);
    let e = engine.load(&truncated).unwrap_err();
    assert!(matches!(e, LoadError::Malformed { .. }), "{e}");

    let report = engine.check(b"\0asm\x01\0\0\0");
    assert!(!report.ok());
    assert_eq!(report.format, BinaryFormat::CoreModule);
    assert!(report.to_string().contains("not a component"), "{report}");
}

#[test]
fn wrong_world_is_refused_and_flagged_by_check() {
    let engine = engine();
    let bytes = component("wrong_world");
    let e = engine.load(&bytes).unwrap_err();
    let LoadError::WrongWorld {
        expected, found, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(expected, "heatbill:rules/rules@0.2.0");
    assert!(!found.iter().any(|f| f == expected), "{found:?}");
    assert!(e.to_string().contains("not a heatbill rules plugin"), "{e}");

    let report = engine.check(&bytes);
    assert!(!report.ok());
    assert_eq!(report.format, BinaryFormat::Component);
    assert!(report.world.is_none());
    assert!(report.info.is_none());
    assert!(
        report
            .exports
            .iter()
            .all(|x| x != "heatbill:rules/rules@0.2.0")
    );
    let text = report.to_string();
    assert!(
        text.contains("ERR world") && text.contains("not a heatbill rules plugin"),
        "{text}"
    );
}

#[test]
fn an_import_that_is_not_granted_is_refused_and_flagged_by_check() {
    let engine = engine();
    let bytes = component("spy");
    let e = engine.load(&bytes).unwrap_err();
    let LoadError::ImportNotGranted { imports } = &e else {
        panic!("{e:?}")
    };
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("heatbill-fixture:spy/network")),
        "{imports:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("heatbill-fixture:spy/network") && text.contains("not granted"),
        "{text}"
    );

    let report = engine.check(&bytes);
    assert!(!report.ok());
    let spy = report
        .imports
        .iter()
        .find(|i| i.name.starts_with("heatbill-fixture:spy/network"))
        .expect("the spy import is listed");
    assert!(!spy.granted);
    assert!(
        report
            .imports
            .iter()
            .filter(|i| i.name.starts_with("wasi:"))
            .all(|i| i.granted),
        "{report}"
    );
    assert!(report.to_string().contains("NOT GRANTED"), "{report}");
    // Its exports are right (a 0.1.0 plugin: the host serves that version too): only the
    // import is wrong.
    assert_eq!(
        report.world.as_deref(),
        Some("heatbill:rules/rules-plugin@0.1.0")
    );
}

#[test]
fn an_oversize_component_is_refused_before_parsing() {
    let mut config = test_config();
    config.limits.max_component_bytes = 50_000;
    let engine = Engine::new(config).unwrap();
    let bytes = component("area-tariff");
    let e = engine.load(&bytes).unwrap_err();
    assert_eq!(
        e,
        LoadError::TooLarge {
            size: bytes.len(),
            limit: 50_000
        }
    );
    assert!(e.to_string().contains("max_component_bytes"), "{e}");
    assert!(!engine.check(&bytes).ok());
    assert_eq!(engine.cache_stats().compiled, 0);
}

#[test]
fn check_reports_a_good_plugin() {
    let engine = engine();
    let report = engine.check(&component("late-fee"));
    assert!(report.ok(), "{report}");
    assert_eq!(
        report.world.as_deref(),
        Some("heatbill:rules/rules-plugin@0.2.0")
    );
    let info = report.info.as_ref().unwrap();
    assert_eq!(
        (info.name.as_str(), info.kind),
        ("late-fee", PluginKind::Fee)
    );
    assert!(
        info.params
            .iter()
            .any(|p| p.name == "daily_rate" && p.required && p.ty == ParamType::Decimal)
    );
    // The schema the SDK derived from the plugin's Params struct, with its doc comments.
    let daily_rate = &info.params_schema["properties"]["daily_rate"];
    assert_eq!(daily_rate["format"], "decimal");
    assert!(daily_rate["description"].as_str().unwrap().contains("1‰"));
    assert_eq!(info.params_schema["additionalProperties"], false);
    assert!(report.imports.iter().all(|i| i.granted), "{report}");
    assert!(report.size < report.max_size);
    let text = report.to_string();
    assert!(text.contains("late-fee 1.0.0 (fee)"), "{text}");
    assert!(text.contains("ok  the plugin loads"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["info"]["name"], "late-fee");
    assert!(json["error"].is_null());
}

#[test]
fn a_schedule_bills_each_date_by_the_version_in_force() {
    let engine = engine();
    let season = load(&engine, "season");
    let tariff = load(&engine, "area-tariff");
    let version = |price: &str| {
        Arc::new(
            Chain::new(
                "harbin",
                [
                    (season.clone(), harbin_season()),
                    (
                        tariff.clone(),
                        json!({
                            "area_basis": "usable",
                            "prices": {"residential": price, "non-residential": price}
                        }),
                    ),
                ],
            )
            .unwrap(),
        )
    };
    let schedule = Arc::new(
        Schedule::new([
            (date("2026-01-01"), version("45.00")),
            (date("2025-10-01"), version("38.32")),
        ])
        .unwrap(),
    );
    assert_eq!(schedule.version_for(date("2025-09-30")), None);
    assert_eq!(schedule.version_for(date("2025-10-20")), Some(0));
    assert_eq!(schedule.version_for(date("2026-01-01")), Some(1));
    assert!(schedule.chain_for(date("2026-03-01")).is_some());

    let mut ev = heatbill_engine::ScheduleEvaluator::new(&engine, schedule);
    let days = [
        household("a", "2025-10-20"),
        household("b", "2026-01-01"),
        household("c", "2025-09-01"),
        household("d", "2025-10-21"),
    ];
    let results = ev.evaluate(&days);
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().total, dec("12.56"));
    // 60 × 45.00 = 2700.00 over 183 days; day 74: round(2700·74/183) − round(2700·73/183).
    assert_eq!(results[1].as_ref().unwrap().total, dec("14.75"));
    let e = results[2].as_ref().unwrap_err();
    assert_eq!(e.kind, BillErrorKind::NoChain);
    assert_eq!(e.customer, "c");
    assert_eq!(results[3].as_ref().unwrap().total, dec("12.57"));

    let e = Schedule::new([
        (date("2026-01-01"), version("45.00")),
        (date("2026-01-01"), version("38.32")),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("2026-01-01"), "{e}");
}

#[test]
fn inputs_the_contract_cannot_carry_fail_that_customer_only() {
    let engine = engine();
    let chain = Arc::new(
        Chain::new(
            "harbin",
            [
                (load(&engine, "season"), harbin_season()),
                (load(&engine, "area-tariff"), harbin_tariff()),
            ],
        )
        .unwrap(),
    );
    let mut ev = Evaluator::new(&engine, chain);
    let mut bad = household("bad", "2025-10-20");
    bad.usable_area = Some(dec("0.0000000000000000001")); // 19 digits after the point
    let results = ev.evaluate(&[bad, household("good", "2025-10-20")]);
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(e.kind.name(), "input");
    assert!(e.to_string().contains("usable_area"), "{e}");
    assert_eq!(results[1].as_ref().unwrap().total, dec("12.56"));
}

/// The single-day `evaluate` export (the dry run) and the columnar `evaluate-batch` (the nightly
/// run) are two codecs over one rule: on every customer-day of every case file, both must give
/// the same bill or the same error.
#[test]
fn the_dry_run_and_the_batch_give_the_same_bills_on_every_case() {
    use heatbill_cases::CaseFile;
    use heatbill_harness::Catalog;
    use heatbill_harness::runner;

    let engine = Engine::new(EngineConfig::default()).unwrap();
    let catalog = Catalog::load(&engine, &crate::support::plugins_dir()).unwrap();
    let dir = crate::support::repo_root().join("plugins/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    // And a chain with a plugin of contract 0.1.0 among 0.2.0 ones.
    files.push(crate::support::repo_root().join("plugins/compat/legacy-surcharge/cases.toml"));
    let (mut compared, mut errors) = (0, 0);
    for path in files {
        let file = CaseFile::load(&path).unwrap();
        if file.refused.is_some() {
            continue; // a chain that must not configure bills nothing
        }
        let chain = runner::chain(&catalog, &file).unwrap();
        let days = runner::case_days(&file).unwrap();
        let batch = runner::evaluator(&engine, chain.clone())
            .unwrap()
            .evaluate(&days);
        let mut single = runner::evaluator(&engine, chain).unwrap();
        for (day, b) in days.iter().zip(&batch) {
            let d = single.dry_run(day);
            assert_eq!(
                &d,
                b,
                "{}: {} on {}",
                path.display(),
                day.customer,
                day.date
            );
            compared += 1;
            errors += usize::from(d.is_err());
        }
    }
    assert!(compared > 500, "only {compared} customer-days compared");
    assert!(errors > 0, "no case exercised an error through both paths");
}

/// Contract versions side by side: a plugin built for 0.1.0 (frozen in `wit/deps/`) loads as
/// 0.1.0, bills in one chain between plugins built for 0.2.0, and its case file passes through
/// the production engine. The case file is written so that a prior line's 0.2.0 kind index,
/// handed to the 0.1.0 plugin unconverted, would not read as its category.
#[test]
fn a_contract_0_1_0_plugin_bills_beside_0_2_0_plugins_in_one_chain() {
    use heatbill_cases::CaseFile;
    use heatbill_engine::Contract;
    use heatbill_harness::Catalog;
    use heatbill_harness::runner;

    let engine = Engine::new(EngineConfig::default()).unwrap();
    let legacy = engine.load(&component("legacy-surcharge")).unwrap();
    assert_eq!(legacy.contract(), Contract::V0_1_0);
    let report = engine.check(&component("legacy-surcharge"));
    assert_eq!(
        report.world.as_deref(),
        Some("heatbill:rules/rules-plugin@0.1.0"),
        "{report}"
    );
    for name in ["season", "area-tariff", "low-income-subsidy", "late-fee"] {
        assert_eq!(
            engine.load(&component(name)).unwrap().contract(),
            Contract::V0_2_0,
            "{name}"
        );
    }

    let catalog = Catalog::load(&engine, &crate::support::plugins_dir()).unwrap();
    let path = crate::support::repo_root().join("plugins/compat/legacy-surcharge/cases.toml");
    let file = CaseFile::load(&path).unwrap();
    let report = runner::run_file(&engine, &catalog, &file);
    let json = report.to_json();
    assert!(
        report.setup_error.is_none() && report.outcomes.iter().all(|c| c.passed()),
        "{}",
        serde_json::to_string_pretty(&json).unwrap()
    );
    assert_eq!(report.outcomes.len(), 3);

    // The 0.2.0 subsidy sees the 0.1.0 line with its code and chain entry, and no season
    // amount: the surcharge is covered day by day.
    let chain = runner::chain(&catalog, &file).unwrap();
    let days = runner::case_days(&file).unwrap();
    let low = days
        .iter()
        .find(|d| d.low_income && d.date == chrono::NaiveDate::from_ymd_opt(2025, 11, 1).unwrap())
        .unwrap();
    let bill = runner::evaluator(&engine, chain)
        .unwrap()
        .evaluate(std::slice::from_ref(low))
        .remove(0)
        .unwrap();
    let surcharge = bill
        .lines
        .iter()
        .find(|l| l.kind.code == "surcharge")
        .unwrap();
    assert_eq!((surcharge.kind.entry, surcharge.season_amount), (3, None));
    let heat = bill.lines.iter().find(|l| l.kind.code == "heat").unwrap();
    assert_eq!(heat.kind.entry, 2);
    assert_eq!(heat.season_amount, Some(dec("1864.00")));
}

/// The parameter tables of `docs/reference-plugins.md` list, for each reference plugin, exactly
/// the top-level parameters of the schema its `describe()` gives (the schema is derived from
/// the plugin's `Params` struct), with the same type and whether it is required. A parameter
/// added to a struct and not to the guide, or a row left for a removed one, fails here.
#[test]
fn the_reference_guide_lists_each_plugins_parameters_as_its_schema_does() {
    let engine = engine();
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference-plugins.md"),
    )
    .unwrap();
    /// A table row: the names in its first column, its type, whether it says required.
    type Row = (Vec<String>, String, bool);
    // Each `## name` section's table rows.
    let mut sections: Vec<(String, Vec<Row>)> = Vec::new();
    for line in doc.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            sections.push((name.trim().to_string(), Vec::new()));
            continue;
        }
        let Some((_, rows)) = sections.last_mut() else {
            continue;
        };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !line.starts_with("| `") && !line.starts_with("| (area keys)") {
            continue;
        }
        let names = if cells[1] == "(area keys)" {
            vec!["(area keys)".to_string()]
        } else {
            cells[1]
                .split(',')
                .map(|n| n.trim().trim_matches('`').to_string())
                .collect()
        };
        rows.push((
            names,
            cells[2].to_string(),
            cells[3].starts_with("yes") || cells[3].contains("yes"),
        ));
    }
    let rows_of = |name: &str| {
        sections
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no section ## {name}"))
            .1
            .clone()
    };
    // The area keys are the first table of the area-tariff section.
    let area_keys: Vec<String> = rows_of("area-tariff")
        .iter()
        .flat_map(|(names, _, _)| names.clone())
        .filter(|n| {
            [
                "area_basis",
                "prices",
                "pricing",
                "special_classes",
                "ceiling_surcharge",
                "government_prices",
            ]
            .contains(&n.as_str())
        })
        .collect();
    assert_eq!(area_keys.len(), 6, "{area_keys:?}");
    for plugin in [
        "season",
        "area-tariff",
        "metered-tariff",
        "suspension-fee",
        "low-income-subsidy",
        "temperature-refund",
        "late-fee",
    ] {
        let info = load(&engine, plugin).info().clone();
        let mut documented: Vec<String> = Vec::new();
        for (names, ty, required) in rows_of(plugin) {
            if names == ["(area keys)"] {
                documented.extend(area_keys.iter().cloned());
                continue;
            }
            for name in names {
                let spec = info
                    .params
                    .iter()
                    .find(|p| p.name == name)
                    .unwrap_or_else(|| {
                        panic!(
                            "{plugin}: the guide lists `{name}`, the schema has no such parameter"
                        )
                    });
                assert_eq!(
                    spec.ty.to_string(),
                    ty,
                    "{plugin}.{name}: the type in the guide"
                );
                assert_eq!(
                    spec.required, required,
                    "{plugin}.{name}: required in the guide"
                );
                documented.push(name);
            }
        }
        let mut documented_sorted = documented.clone();
        documented_sorted.sort();
        documented_sorted.dedup();
        let mut schema: Vec<String> = info.params.iter().map(|p| p.name.clone()).collect();
        schema.sort();
        assert_eq!(
            documented_sorted, schema,
            "{plugin}: the guide's parameters against the schema's"
        );
    }
}
