//! Sandbox hardening: what a hostile integrator or a tampered host tried, and what stops it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use heatbill_engine::{Chain, DayInput, Engine, EngineConfig, Evaluator, LoadOutcome};
use serde_json::json;

use crate::engine::{date, dec, test_config};
use crate::support::component;

/// A cache directory inside a temporary directory (the key file sits beside it).
fn cache_config(root: &Path) -> (EngineConfig, PathBuf) {
    let dir = root.join("cache");
    (
        EngineConfig {
            cache_dir: Some(dir.clone()),
            ..test_config()
        },
        dir,
    )
}

/// The cache file of a component.
fn artifact_of(dir: &Path, bytes: &[u8]) -> PathBuf {
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&hex))
        .expect("the component's artifact is in the cache")
}

fn bill_60m2(engine: &Engine, tariff_bytes: &[u8]) -> rust_decimal::Decimal {
    let season = engine.load(&component("season")).unwrap();
    let tariff = engine.load(tariff_bytes).unwrap();
    let chain = Arc::new(
        Chain::new(
            "harbin",
            [
                (season, json!({"start": "2025-10-20", "end": "2026-04-20"})),
                (
                    tariff,
                    json!({"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"}}),
                ),
            ],
        )
        .unwrap(),
    );
    let mut d = DayInput::new("c1", date("2025-10-20"));
    d.usable_area = Some(dec("60.00"));
    Evaluator::new(engine, chain)
        .evaluate(&[d])
        .remove(0)
        .unwrap()
        .total
}

/// Another plugin's artifact under an honest plugin's name (same engine, other code) was loaded
/// and billed its customers; now it does not authenticate and the honest plugin is compiled.
#[test]
fn a_swapped_artifact_is_refused_not_run() {
    let root = tempfile::tempdir().unwrap();
    let (config, dir) = cache_config(root.path());
    let (tariff, season) = (component("area-tariff"), component("season"));
    let first = Engine::new(config.clone()).unwrap();
    first.load(&tariff).unwrap();
    first.load(&season).unwrap();
    drop(first);
    let honest = artifact_of(&dir, &tariff);
    std::fs::copy(artifact_of(&dir, &season), &honest).unwrap();

    let engine = Engine::new(config).unwrap();
    let (plugin, outcome) = engine.load_with_outcome(&tariff).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert_eq!(plugin.name(), "area-tariff");
    assert_eq!(engine.cache_stats().disk_rejected, 1);
    assert_eq!(bill_60m2(&engine, &tariff), dec("12.56"));
    let report = engine.check(&tariff);
    assert!(report.ok());
    assert_eq!(report.info.unwrap().name, "area-tariff");
}

/// An artifact whose code was overwritten crashed the host (SIGTRAP, SIGSEGV); a truncated one
/// crashed a run that had it mapped (SIGBUS). Now both are refused, and a loaded artifact lives
/// in memory, so the file can change under a running process.
#[test]
fn a_changed_or_truncated_artifact_is_compiled_again_and_never_crashes() {
    let root = tempfile::tempdir().unwrap();
    let (config, dir) = cache_config(root.path());
    let tariff = component("area-tariff");
    Engine::new(config.clone()).unwrap().load(&tariff).unwrap();
    let path = artifact_of(&dir, &tariff);
    let original = std::fs::read(&path).unwrap();

    let mut changed = original.clone();
    let middle = changed.len() / 2;
    for b in &mut changed[middle..middle + 4096] {
        *b = 0xcc; // int3
    }
    std::fs::write(&path, &changed).unwrap();
    let engine = Engine::new(config.clone()).unwrap();
    let (_, outcome) = engine.load_with_outcome(&tariff).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert_eq!(engine.cache_stats().disk_rejected, 1);
    assert_eq!(bill_60m2(&engine, &tariff), dec("12.56"));

    std::fs::write(&path, &original[..original.len() / 2]).unwrap();
    let engine = Engine::new(config.clone()).unwrap();
    let (_, outcome) = engine.load_with_outcome(&tariff).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert_eq!(engine.cache_stats().disk_rejected, 1);

    // Loaded from the disk, then the file is truncated under the running engine: it bills on.
    let engine = Engine::new(config).unwrap();
    let (_, outcome) = engine.load_with_outcome(&tariff).unwrap();
    assert_eq!(outcome, LoadOutcome::DiskCache);
    std::fs::write(&path, b"").unwrap();
    assert_eq!(bill_60m2(&engine, &tariff), dec("12.56"));
}

/// A cache directory others can write, or a key others can read, was used without a word.
#[test]
fn a_cache_others_can_write_or_a_key_others_can_read_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (config, dir) = cache_config(root.path());
    Engine::new(config.clone()).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Engine::new(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains("can be written by other users (mode 777)"),
        "{e}"
    );
    assert!(e.contains("chmod 700"), "{e}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = root.path().join("cache.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Engine::new(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains("cache key file") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Engine::new(config).unwrap();
}

/// Engines started at once on a fresh cache (a run's worker processes) agree on one key: none
/// fails because another made the key first, and none reads a half-written one.
#[test]
fn engines_started_at_once_on_a_fresh_cache_share_one_key() {
    for _ in 0..20 {
        let root = tempfile::tempdir().unwrap();
        let (config, _) = cache_config(root.path());
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    Engine::new(config.clone()).expect("an engine on a shared fresh cache")
                });
            }
        });
        let key = root.path().join("cache.key");
        assert_eq!(std::fs::read(&key).unwrap().len(), 32);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "temporary key files left: {left:?}");
    }
}

/// Hosts share a cache by sharing its key: an artifact written under another key is refused.
#[test]
fn an_artifact_written_under_another_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (config, _) = cache_config(root.path());
    let tariff = component("area-tariff");
    Engine::new(config.clone()).unwrap().load(&tariff).unwrap();
    let shared = EngineConfig {
        cache_key: Some("ab".repeat(32)),
        ..config.clone()
    };
    let other = Engine::new(shared.clone()).unwrap();
    let (_, outcome) = other.load_with_outcome(&tariff).unwrap();
    assert_eq!(outcome, LoadOutcome::Compiled);
    assert_eq!(other.cache_stats().disk_rejected, 1);
    // Rewritten under the shared key, it serves a second host with that key.
    let (_, outcome) = Engine::new(shared)
        .unwrap()
        .load_with_outcome(&tariff)
        .unwrap();
    assert_eq!(outcome, LoadOutcome::DiskCache);
    let bad = EngineConfig {
        cache_key: Some("not hex".into()),
        ..config
    };
    let e = Engine::new(bad).unwrap_err().to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    assert!(
        !format!(
            "{:?}",
            EngineConfig {
                cache_key: Some("cd".repeat(32)),
                ..test_config()
            }
        )
        .contains("cdcd")
    );
}

// ---- Bounded compilation: the shape of a component is checked before it is compiled ----

/// Loads `bytes` and returns the limit its refusal names (the `key` of `OverLimit`).
fn refused_limit(engine: &Engine, bytes: &[u8]) -> String {
    match engine.load(bytes) {
        Err(heatbill_engine::LoadError::OverLimit { key, .. }) => key,
        Err(e) => panic!("refused, but not by a structural limit: {e}"),
        Ok(_) => panic!("a hostile component loaded"),
    }
}

#[test]
fn the_nested_loop_bomb_is_refused_before_compiling_at_any_size() {
    use heatbill_fixtures as fx;
    let engine = Engine::new(test_config()).unwrap();
    // The review's bomb: 83 KB of nested loops took 30 s and 303 MB to compile; 7.5 MB was
    // killed at 24 GB. Refused now by the loop depth, before compiling.
    let small = fx::nested_loops(27_000, 1);
    assert!(small.len() > 80_000);
    assert_eq!(refused_limit(&engine, &small), "limits.max_loop_depth");
    let at_cap = fx::nested_loops_of_size(27_000, engine.limits().max_component_bytes - 1_000);
    assert!(at_cap.len() > 8_000_000 && at_cap.len() <= engine.limits().max_component_bytes);
    assert_eq!(refused_limit(&engine, &at_cap), "limits.max_loop_depth");
    // Shallow loops, many of them: each costs ~10 µs to compile, so the count is bounded.
    let shallow = fx::nested_loops_of_size(20, engine.limits().max_component_bytes - 1_000);
    let key = refused_limit(&engine, &shallow);
    assert!(
        key == "limits.max_loops" || key == "limits.max_functions",
        "{key}"
    );
    assert_eq!(
        refused_limit(&engine, &fx::nested_loops(4, 30_000)),
        "limits.max_loops"
    );
    // Nothing was compiled.
    assert_eq!(engine.cache_stats().compiled, 0);
}

#[test]
fn every_structural_limit_is_named_when_crossed() {
    use heatbill_fixtures as fx;
    let engine = Engine::new(test_config()).unwrap();
    let l = engine.limits().clone();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // A million empty functions (7 MB) took 43 s and 5.5 GB to compile.
        ("limits.max_functions", fx::many_functions(1_000_000)),
        (
            "limits.max_function_bytes",
            fx::long_function(l.max_function_bytes as usize + 100),
        ),
        (
            "limits.max_locals",
            fx::many_locals(l.max_locals as u32 + 1),
        ),
        (
            "limits.max_nesting_depth",
            fx::nested_blocks(l.max_nesting_depth as usize + 1, 1),
        ),
        // Refused before with "malformed or unsupported feature".
        ("limits.max_table_elements", fx::tables(1, 10_000_000)),
        ("pool.max_tables_per_module", fx::tables(9, 1)),
        (
            "pool.max_tables_per_component",
            fx::tables_in_modules(9, 1, 1),
        ),
        ("pool.max_memories_per_module", fx::memories(3, 1)),
        (
            "pool.max_memories_per_component",
            fx::memories_in_modules(3, 1, 1),
        ),
        ("limits.max_memory_bytes", fx::memories(1, 65_536)),
    ];
    for (key, bytes) in cases {
        let got = refused_limit(&engine, &bytes);
        assert_eq!(got, key, "{} bytes", bytes.len());
        let message = engine.load(&bytes).unwrap_err().to_string();
        assert!(message.contains(key), "{message}");
    }
    assert_eq!(engine.cache_stats().compiled, 0);
    // Just under each limit, the same shapes compile (and are refused later, for their world).
    for bytes in [
        fx::many_functions(2_000),
        fx::long_function(64 << 10),
        fx::many_locals(l.max_locals as u32),
        fx::nested_blocks(l.max_nesting_depth as usize, 1),
        fx::nested_loops(l.max_loop_depth as usize, 1),
        fx::tables(1, l.max_table_elements as u64),
        fx::tables_in_modules(8, 1, 1),
        fx::memories_in_modules(2, 1, 1),
    ] {
        match engine.load(&bytes) {
            Err(heatbill_engine::LoadError::WrongWorld { .. }) => {}
            other => panic!("expected to compile and be refused for its world: {other:?}"),
        }
    }
}

#[test]
fn the_reference_plugins_are_far_inside_the_structural_limits() {
    let l = heatbill_engine::Limits::default();
    let pool = heatbill_engine::PoolConfig::default();
    for name in [
        "season",
        "area_tariff",
        "metered_tariff",
        "low_income_subsidy",
        "late_fee",
    ] {
        let s = heatbill_engine::check_structure(&component(name), &l, &pool).unwrap();
        assert!(
            s.functions > 10 && s.functions * 10 < l.max_functions,
            "{name}: {s:?}"
        );
        assert!(s.max_loop_depth * 4 <= l.max_loop_depth, "{name}: {s:?}");
        assert!(s.loops * 10 < l.max_loops, "{name}: {s:?}");
        assert!(
            s.max_function_bytes * 10 < l.max_function_bytes,
            "{name}: {s:?}"
        );
        assert!(
            s.max_nesting_depth * 4 < l.max_nesting_depth,
            "{name}: {s:?}"
        );
        assert!(
            s.locals_times_blocks * 10 < l.max_locals_times_blocks,
            "{name}: {s:?}"
        );
        assert!(
            s.max_function_locals_times_blocks * 10 < l.max_function_locals_times_blocks,
            "{name}: {s:?}"
        );
    }
}

/// A compile-time bomb that every other structural limit lets through: blocks in a row (no
/// loops, one deep), each joining two paths, and many locals read after them. 72 KB needed
/// more than 1 GiB and 20 s to compile (the review's 85 KB upload held an engine slot until
/// the 30 s compile limit); its shape gives it away at once: locals × blocks.
#[test]
fn locals_read_across_many_blocks_are_refused_before_compiling() {
    use heatbill_fixtures as fx;
    let engine = Engine::new(test_config()).unwrap();
    let l = engine.limits().clone();
    let bomb = fx::locals_across_blocks(4_000, 10_000, 1);
    assert!(bomb.len() < 85_000, "{}", bomb.len());
    let s = heatbill_engine::check_structure(&bomb, &l, &engine.config().pool);
    match s {
        Err(heatbill_engine::LoadError::OverLimit {
            key, found, limit, ..
        }) => {
            assert_eq!(key, "limits.max_function_locals_times_blocks");
            assert!(found > limit);
        }
        other => panic!("the bomb passed the structural check: {other:?}"),
    }
    assert_eq!(
        refused_limit(&engine, &bomb),
        "limits.max_function_locals_times_blocks"
    );
    let message = engine.load(&bomb).unwrap_err().to_string();
    assert!(message.contains("10000 locals × 8000 blocks"), "{message}");
    // Functions each under the limit alone are counted together.
    let one = fx::locals_across_blocks(1_000, 1_000, 1);
    let per_function = heatbill_engine::check_structure(&one, &l, &engine.config().pool)
        .unwrap()
        .locals_times_blocks;
    let n = (l.max_locals_times_blocks / per_function + 1) as usize;
    assert_eq!(
        refused_limit(&engine, &fx::locals_across_blocks(1_000, 1_000, n)),
        "limits.max_locals_times_blocks"
    );
    assert_eq!(engine.cache_stats().compiled, 0, "nothing was compiled");
    // Under the limit, the same shape compiles (and is refused later, for its world).
    match engine.load(&one) {
        Err(heatbill_engine::LoadError::WrongWorld { .. }) => {}
        other => panic!("expected to compile and be refused for its world: {other:?}"),
    }
}
