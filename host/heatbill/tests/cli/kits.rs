//! The Python and JavaScript kits end to end, through the real binary: their late-fee and
//! low-income-subsidy stand in for the Rust ones on the same case files, their hostile fixtures
//! are contained with their messages in the log, a component says which profile it needs, and
//! `plugin new --lang python|js` → `build` → `test` passes its own cases out of the box.

use std::path::{Path, PathBuf};

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

/// `plugin build` ran the `vendor/heatbill-kit/build.py` (or `build.mjs`) found in the plugin's
/// own directory, and installed what the pins beside it said: building someone else's plugin ran
/// their code outside any sandbox. It runs the binary's own copy of the kit's build script, with
/// the binary's pins, now (and says so when the plugin's copy differs); the plugin's vendored SDK
/// and contract are still what is bundled into the component. The interpreters here are
/// stand-ins that record what they were asked to run, so no toolchain is installed.
#[test]
fn plugin_build_runs_heatbills_own_build_script() {
    use std::os::unix::fs::PermissionsExt;
    for kit in KITS {
        let work = tempfile::tempdir().unwrap();
        let name = format!("evil-{kit}");
        let dir = work.path().join(&name);
        let d = dir.to_str().unwrap();
        let out = heatbill(
            &["plugin", "new", &name, "--lang", kit, "--dir", d],
            work.path(),
        );
        assert!(out.status.success(), "{kit}: {}", text(&out));
        let script = if kit == "python" {
            "build.py"
        } else {
            "build.mjs"
        };
        let vendored = dir.join("vendor/heatbill-kit");
        let marker = work.path().join("the plugin's script ran");
        std::fs::write(
            vendored.join(script),
            format!(
                "// a plugin's own build script: anything at all\n// touch {}\n",
                marker.display()
            ),
        )
        .unwrap();
        let bin = work.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let record = work.path().join("asked");
        for interpreter in ["python3", "node"] {
            let path = bin.join(interpreter);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexit 3\n",
                    record.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let cache = work.path().join("cache");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_heatbill"))
            .args(["plugin", "build", d])
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("XDG_CACHE_HOME", &cache)
            .env("HEATBILL_CACHE_DIR", cache.join("compiled"))
            .output()
            .unwrap();
        let t = text(&out);
        // The stand-in interpreter fails the build; what matters is what it was asked to run.
        assert!(!out.status.success(), "{kit}: {t}");
        let asked = std::fs::read_to_string(&record)
            .unwrap_or_else(|e| panic!("{kit}: the interpreter was not run ({e}):\n{t}"));
        let asked: Vec<&str> = asked.lines().collect();
        let ran = Path::new(asked[0]);
        assert!(
            ran.ends_with(script) && !ran.starts_with(&dir) && !ran.starts_with(work.path()),
            "{kit}: the build ran {}, not heatbill's own script",
            ran.display()
        );
        assert_eq!(asked[1], d, "{kit}: {asked:?}");
        let arg = |flag: &str| {
            asked
                .iter()
                .position(|a| *a == flag)
                .map(|i| asked[i + 1])
                .unwrap_or_else(|| panic!("{kit}: no {flag} in {asked:?}"))
        };
        // The plugin's SDK and contract are bundled as before; the toolchain is the one the
        // binary pins, in the user's cache.
        assert_eq!(Path::new(arg("--sdk")), vendored.join("sdk"), "{kit}");
        assert_eq!(Path::new(arg("--wit")), vendored.join("wit"), "{kit}");
        assert!(
            Path::new(arg("--toolchain")).starts_with(cache.join("heatbill/toolchains")),
            "{kit}: {asked:?}"
        );
        assert!(!marker.exists(), "{kit}: the plugin's own script ran");
        assert!(
            t.contains(&format!("is not this heatbill's {script}")),
            "{kit}: no note about the plugin's own script:\n{t}"
        );
        // The binary's copy was written for the build and is gone with it.
        assert!(!ran.exists(), "{kit}: {} was left behind", ran.display());
    }
}
