//! The Python and JavaScript kits end to end, through the real binary: their late-fee and
//! low-income-subsidy stand in for the Rust ones on the same case files, their hostile fixtures
//! are contained with their messages in the log, a component says which profile it needs, and
//! `plugin new --lang python|js` → `build` → `test` passes its own cases out of the box.

use std::path::PathBuf;

use super::{components, heatbill, repo, text};

const KITS: [&str; 2] = ["python", "js"];

/// A component the kit's build made (`./dev plugins` builds every kit's plugins).
fn kit_component(kit: &str, name: &str) -> PathBuf {
    let path = repo().join(format!("plugins/{kit}/target/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `./dev plugins` (or the whole suite with \
         `./dev test`)",
        path.display()
    );
    path
}

#[test]
fn python_and_javascript_rules_pass_the_rust_rules_case_files() {
    components();
    for kit in KITS {
        let cache = tempfile::tempdir().unwrap();
        let late_fee = kit_component(kit, "late-fee");
        let subsidy = kit_component(kit, "low-income-subsidy");
        let out = heatbill(
            &[
                "plugin",
                "test",
                late_fee.to_str().unwrap(),
                "--plugins",
                subsidy.to_str().unwrap(),
                "--profile",
                "interpreted",
                "--cases",
                "plugins/cases/w5.toml",
                "--cases",
                "plugins/cases/w6.toml",
                "--cases",
                "plugins/cases/reference-chain.toml",
                "--cases",
                "plugins/cases/shenyang-low-income.toml",
            ],
            cache.path(),
        );
        let t = text(&out);
        assert!(out.status.success(), "{kit}: plugin test failed:\n{t}");
        // The reference plugins fill in season and the tariff only: the two rules are the kit's.
        let added = t
            .lines()
            .find(|l| l.starts_with("reference plugins from "))
            .unwrap_or_else(|| panic!("{kit}: no reference line:\n{t}"));
        assert!(
            added.contains("season") && !added.contains("late-fee"),
            "{kit}: {added}"
        );
        assert!(!added.contains("low-income-subsidy"), "{kit}: {added}");
        for file in [
            "w5.toml",
            "w6.toml",
            "reference-chain.toml",
            "shenyang-low-income.toml",
        ] {
            assert!(t.contains(file), "{kit}: {file} was not run:\n{t}");
        }
        let last = t.lines().rev().find(|l| l.contains(" passed, ")).unwrap();
        assert!(last.ends_with(" 0 failed"), "{kit}: {last}");
        let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 15, "{kit}: only {passed} cases ran:\n{t}");
    }
}

/// One case file per hostile fixture: each must fail its customer-day with the trap named, and
/// the host goes on to the next. `message` is a text the error must contain.
#[test]
fn hostile_python_and_javascript_plugins_are_contained() {
    let work = tempfile::tempdir().unwrap();
    let fixtures = [
        (
            "python",
            "py-raises",
            "the plugin raised RuntimeError: py-raises: deliberate failure",
        ),
        ("python", "py-spins", "trap (deadline)"),
        ("python", "py-memory-bomb", "trap (memory-limit)"),
        (
            "python",
            "py-sockets",
            "wasi:sockets/tcp-create-socket@0.2.9#create-tcp-socket, which is not granted",
        ),
        (
            "js",
            "js-throws",
            "the plugin threw Error: js-throws: deliberate failure",
        ),
        ("js", "js-spins", "trap (deadline)"),
        ("js", "js-memory-bomb", "trap (memory-limit)"),
    ];
    let mut args: Vec<String> = vec!["plugin".into(), "test".into()];
    for (i, (kit, name, message)) in fixtures.iter().enumerate() {
        let file = work.path().join(format!("{name}.toml"));
        std::fs::write(
            &file,
            format!(
                "[[chain]]\nplugin = \"{name}\"\n[[case]]\nname = \"{name} is contained\"\n\
                 customer = {{ date = \"2025-11-15\" }}\n\
                 expect = {{ error = \"trap\", message = \"{message}\" }}\n"
            ),
        )
        .unwrap();
        let component = kit_component(kit, name);
        if i == 0 {
            args.push(component.to_str().unwrap().into());
        } else {
            args.extend(["--plugins".into(), component.to_str().unwrap().into()]);
        }
        args.extend(["--cases".into(), file.to_str().unwrap().into()]);
    }
    // A case that expects the wrong message fails, and prints the plugin's log: the JavaScript
    // error and its stack reach it (the Python traceback: below).
    let wrong_js = work.path().join("wrong-js.toml");
    std::fs::write(
        &wrong_js,
        "[[chain]]\nplugin = \"js-throws\"\n[[case]]\nname = \"js log\"\n\
         customer = { date = \"2025-11-15\" }\nexpect = { error = \"trap\", message = \"nothing like this\" }\n",
    )
    .unwrap();
    args.extend(["--cases".into(), wrong_js.to_str().unwrap().into()]);
    args.extend([
        "--no-reference".into(),
        "--profile".into(),
        "interpreted".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = heatbill(&args, work.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("7 passed, 1 failed"), "{t}");
    for needle in [
        "| js-throws 1.0.0: evaluate: uncaught Error: js-throws: deliberate failure",
        "|   evaluate@bundle.js:",
    ] {
        assert!(t.contains(needle), "the log lacks {needle:?}:\n{t}");
    }

    let py_wrong = work.path().join("py-wrong.toml");
    std::fs::write(
        &py_wrong,
        "[[chain]]\nplugin = \"py-raises\"\n[[case]]\nname = \"py log\"\n\
         customer = { date = \"2025-11-15\" }\nexpect = { error = \"trap\", message = \"nothing like this\" }\n",
    )
    .unwrap();
    let py = kit_component("python", "py-raises");
    let out = heatbill(
        &[
            "plugin",
            "test",
            py.to_str().unwrap(),
            "--no-reference",
            "--profile",
            "interpreted",
            "--cases",
            py_wrong.to_str().unwrap(),
        ],
        work.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for needle in [
        "| Traceback (most recent call last):",
        "in evaluate",
        "| RuntimeError: py-raises: deliberate failure",
        "[the block above repeated",
    ] {
        assert!(t.contains(needle), "the log lacks {needle:?}:\n{t}");
    }
}

#[test]
fn a_python_or_javascript_component_says_which_profile_it_needs() {
    for kit in KITS {
        let work = tempfile::tempdir().unwrap();
        let component = kit_component(kit, "late-fee");
        let c = component.to_str().unwrap();
        let out = heatbill(&["plugin", "check", c], work.path());
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{kit}: {t}");
        assert!(t.contains("profile   standard"), "{kit}: {t}");
        assert!(
            t.contains("needs     the profile `interpreted`: it loads under it"),
            "{kit}: {t}"
        );
        let digest = t
            .lines()
            .find_map(|l| l.trim().strip_prefix("sha256    "))
            .unwrap_or_else(|| panic!("{kit}: no digest:\n{t}"))
            .to_string();

        let out = heatbill(
            &["plugin", "check", c, "--profile", "interpreted"],
            work.path(),
        );
        let t = text(&out);
        assert!(out.status.success(), "{kit}: {t}");
        assert!(
            t.contains("ok  the plugin loads (profile interpreted)"),
            "{kit}: {t}"
        );
        assert!(t.contains("ok  shape     "), "{kit}: {t}");

        // The operator's grant, in the engine settings, by digest: no --profile needed.
        let config = work.path().join("engine.toml");
        std::fs::write(
            &config,
            format!("[grants]\n\"{digest}\" = \"interpreted\"\n"),
        )
        .unwrap();
        let out = heatbill(
            &[
                "plugin",
                "check",
                c,
                "--engine-config",
                config.to_str().unwrap(),
            ],
            work.path(),
        );
        let t = text(&out);
        assert!(out.status.success(), "{kit}: {t}");
        assert!(t.contains("(profile interpreted)"), "{kit}: {t}");

        // A grant to a profile that does not exist stops the engine, naming it.
        std::fs::write(&config, format!("[grants]\n\"{digest}\" = \"roomy\"\n")).unwrap();
        let out = heatbill(
            &[
                "plugin",
                "check",
                c,
                "--engine-config",
                config.to_str().unwrap(),
            ],
            work.path(),
        );
        let t = text(&out);
        assert!(!out.status.success(), "{kit}: {t}");
        assert!(
            t.contains("the profile `roomy`, which does not exist"),
            "{kit}: {t}"
        );
    }
}

#[test]
fn plugin_new_python_and_js_build_and_pass_their_own_cases() {
    components();
    for kit in KITS {
        let work = tempfile::tempdir().unwrap();
        let name = format!("{kit}-flat-fee");
        let dir = work.path().join(&name);
        let d = dir.to_str().unwrap();
        let out = heatbill(
            &["plugin", "new", &name, "--lang", kit, "--dir", d],
            work.path(),
        );
        let t = text(&out);
        assert!(out.status.success(), "{kit}: {t}");
        assert!(
            dir.join("vendor/heatbill-kit/wit/rules.wit").exists(),
            "{kit}"
        );
        assert!(
            dir.join("cases").join(format!("{name}.toml")).exists(),
            "{kit}"
        );

        // The toolchain comes from PyPI / npm at the kit's pins, once per user (its cache).
        let out = heatbill(&["plugin", "build", d], work.path());
        let t = text(&out);
        assert!(out.status.success(), "{kit}: plugin build failed:\n{t}");
        assert!(
            t.contains("ok  the plugin loads (profile interpreted)"),
            "{kit}: {t}"
        );
        assert!(
            dir.join("target").join(format!("{name}.wasm")).exists(),
            "{kit}: {t}"
        );

        let cases = dir.join("cases");
        let out = heatbill(
            &[
                "plugin",
                "test",
                d,
                "--profile",
                "interpreted",
                "--cases",
                cases.to_str().unwrap(),
            ],
            work.path(),
        );
        let t = text(&out);
        assert!(
            out.status.success(),
            "{kit}: the template's own cases fail:\n{t}"
        );
        assert!(t.contains(" passed, 0 failed"), "{kit}: {t}");

        // Without the profile the harness says why it cannot load the component, and how.
        let out = heatbill(
            &["plugin", "test", d, "--cases", cases.to_str().unwrap()],
            work.path(),
        );
        let t = text(&out);
        assert!(!out.status.success(), "{kit}: {t}");
        assert!(t.contains("`heatbill plugin check` names it"), "{kit}: {t}");

        let again = heatbill(
            &["plugin", "new", &name, "--lang", kit, "--dir", d],
            work.path(),
        );
        assert_eq!(
            again.status.code(),
            Some(2),
            "{kit}: plugin new overwrote a plugin"
        );
    }
}
