//! Limits as data: the engine's profiles and the grants that admit a component to one, on the
//! real Python and JavaScript components the kits build (`plugins/python`, `plugins/js`).

use std::collections::BTreeMap;

use heatbill_engine::{Engine, EngineConfig, INTERPRETED, LoadError, Profile, STANDARD};
use sha2::{Digest, Sha256};

use crate::engine::test_config;
use crate::support::{component, kit_component};

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn with_grants(grants: &[(&str, &str)]) -> EngineConfig {
    EngineConfig {
        grants: grants
            .iter()
            .map(|(d, p)| (d.to_string(), p.to_string()))
            .collect(),
        ..test_config()
    }
}

#[test]
fn interpreted_components_load_only_under_a_granted_profile() {
    let js = kit_component("js", "late-fee");
    let py = kit_component("python", "late-fee");

    // Without a grant: the standard limits, and the check names the profile it needs.
    let engine = Engine::new(test_config()).unwrap();
    for bytes in [&js, &py] {
        let e = engine.load(bytes).unwrap_err();
        assert!(matches!(e, LoadError::TooLarge { .. }), "{e}");
        let report = engine.check_needs(bytes, STANDARD);
        assert!(!report.ok());
        assert_eq!(report.needs.as_deref(), Some(INTERPRETED), "{report}");
        assert!(report.to_string().contains(&digest(bytes)), "{report}");
    }

    // A grant admits exactly the bytes it names: the JS component, not the Python one.
    let engine = Engine::new(with_grants(&[(&digest(&js), INTERPRETED)])).unwrap();
    let plugin = engine.load(&js).expect("the granted component loads");
    assert_eq!(plugin.profile(), INTERPRETED);
    assert_eq!(plugin.name(), "late-fee");
    let e = engine.load(&py).unwrap_err();
    assert!(matches!(e, LoadError::TooLarge { .. }), "{e}");

    // A Rust component with no grant runs under the standard profile, as before.
    let rust = engine.load(&component("late_fee")).unwrap();
    assert_eq!(rust.profile(), STANDARD);

    // The harness's explicit profile (the integrator is the operator there).
    let (p, _) = engine
        .load_as(&py, INTERPRETED)
        .expect("loads under the profile");
    assert_eq!(p.profile(), INTERPRETED);
    let e = engine.load_as(&py, "roomy").unwrap_err();
    assert!(
        e.to_string()
            .contains("there is no limits profile `roomy`; the profiles are standard, interpreted"),
        "{e}"
    );
}

#[test]
fn the_standard_limits_still_refuse_what_a_profile_allows() {
    let py = kit_component("python", "late-fee");
    // CPython imports wasi:sockets: the standard profile does not link it even when the size
    // would pass; `interpreted` links it to traps.
    let mut config = test_config();
    config.limits.max_component_bytes = 64 << 20;
    config.limits.max_functions = 200_000;
    config.pool.max_core_instances_per_component = 64;
    config.pool.max_memories_per_component = 4;
    config.pool.max_tables_per_component = 16;
    let engine = Engine::new(config).unwrap();
    let e = engine.load(&py).unwrap_err();
    match &e {
        LoadError::ImportNotGranted { imports } => {
            assert!(
                imports.iter().any(|i| i.starts_with("wasi:sockets/tcp@")),
                "{e}"
            )
        }
        other => panic!("expected the sockets import to be refused, got {other}"),
    }
    let report = engine.check_as(&py, INTERPRETED);
    assert!(report.ok(), "{report}");
    let trapped: Vec<&str> = report
        .imports
        .iter()
        .filter(|i| i.trapped)
        .map(|i| i.name.as_str())
        .collect();
    assert!(!trapped.is_empty() && trapped.iter().all(|i| i.starts_with("wasi:sockets/")));
}

#[test]
fn a_profile_holds_its_components_to_its_own_figures() {
    let py = kit_component("python", "late-fee");
    // A profile as large as `interpreted` in every way but core instances: the Python
    // component's interpreter has 14 (its libraries, linked at instantiation), and the refusal
    // names the setting.
    let tight = Profile {
        max_core_instances: 8,
        ..Profile::interpreted()
    };
    let config = EngineConfig {
        profiles: BTreeMap::from([("tight".to_string(), tight)]),
        ..test_config()
    };
    let engine = Engine::new(config).unwrap();
    let e = engine.load_as(&py, "tight").unwrap_err();
    match &e {
        LoadError::OverLimit {
            key, found, limit, ..
        } => {
            assert_eq!(key, "pool.max_core_instances_per_component");
            assert_eq!(*limit, 8);
            assert!(*found > 8, "{e}");
        }
        other => panic!("expected the core-instance limit, got {other}"),
    }
    // A settings file's [profiles] replaces the built-in ones: `interpreted` is gone here.
    assert!(engine.load_as(&py, INTERPRETED).is_err());
}

#[test]
fn profiles_and_grants_that_cannot_mean_what_they_say_stop_the_engine() {
    let refused = |config: EngineConfig| Engine::new(config).unwrap_err().to_string();
    let e = refused(with_grants(&[("not-a-digest", INTERPRETED)]));
    assert!(e.contains("is not a component digest"), "{e}");
    let e = refused(with_grants(&[(&"ab".repeat(32), "roomy")]));
    assert!(
        e.contains("the profile `roomy`, which does not exist"),
        "{e}"
    );
    let e = refused(EngineConfig {
        profiles: BTreeMap::from([(STANDARD.to_string(), Profile::default())]),
        ..test_config()
    });
    assert!(e.contains("is the name of the standard limits"), "{e}");
    // And a settings file is the same data: TOML names only what a profile changes.
    let config: EngineConfig = toml::from_str(
        r#"
        [profiles.roomy]
        max_component_bytes = 16777216
        [grants]
        "0000000000000000000000000000000000000000000000000000000000000000" = "roomy"
        "#,
    )
    .unwrap();
    assert_eq!(config.profiles["roomy"].max_memory_bytes, 64 << 20);
    assert!(!config.profiles.contains_key(INTERPRETED));
    Engine::new(EngineConfig {
        pool: test_config().pool,
        ..config
    })
    .unwrap();
    assert!(toml::from_str::<EngineConfig>("[profiles.x]\nmax_component_byte = 1\n").is_err());
}
