//! The `heatbill` binary end to end, as an integrator and an operator run it: `plugin test` on
//! the worked examples, `plugin check` on good and hostile components, `plugin new` → `build` →
//! `test`, the demo, and (`runtime`) migrate, company, import and run, including a run killed
//! mid-way and resumed. These spawn the real binary on the real components built from
//! `plugins/` (`./dev plugins`; `./dev test` builds them first) and real databases.
//!
//! Long by design: one test per command story, each spawning the real binary.

mod kits;
mod reliability;
mod runtime;
mod soak;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn components() -> PathBuf {
    let dir = repo().join("plugins/target/wasm32-wasip2/release");
    assert!(
        dir.join("area_tariff.wasm").exists(),
        "the plugins are not built: run `./dev plugins` (or the whole suite with `./dev test`)"
    );
    dir
}

/// Runs the binary with its own component cache, so tests never share state with the user's.
pub fn heatbill(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heatbill"))
        .args(args)
        .env("HEATBILL_CACHE_DIR", cache.join("compiled"))
        .current_dir(repo())
        .output()
        .expect("run heatbill")
}

/// Runs the binary like [`heatbill`], and returns with its output its peak resident set in
/// bytes, as the kernel counted it for that process (`wait4`'s `ru_maxrss`: its own, not this
/// test process's). The wait is bounded: after `limit`, the binary is killed and the test fails;
/// so is it, with a watchdog on its resident memory, past `max_rss` bytes, so that a binary that
/// would read without bound fails the test instead of taking the machine's memory with it.
pub fn heatbill_bounded(
    args: &[&str],
    cache: &Path,
    limit: std::time::Duration,
    max_rss: Option<u64>,
) -> (Output, u64) {
    use std::os::unix::process::ExitStatusExt;
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heatbill"));
    cmd.args(args)
        .env("HEATBILL_CACHE_DIR", cache.join("compiled"))
        .current_dir(repo())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap());
    // Reaped below by `wait4` (which also gives its resource usage), not `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("run heatbill");
    let pid = child.id() as libc::pid_t;
    let deadline = std::time::Instant::now() + limit;
    let (status, usage) = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `wait4` writes only to the two locals it is given, which live across the
        // call; the rusage struct is plain data and valid when zeroed.
        #[allow(unsafe_code)]
        let (reaped, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let r = libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage);
            (r, usage)
        };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped == pid {
            break (status, usage);
        }
        let resident = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024);
        let over = max_rss.is_some_and(|m| resident > m);
        if over || std::time::Instant::now() > deadline {
            // SAFETY: plain syscalls on the child this function spawned and has not reaped.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!(
                "heatbill {args:?} {}; killed. Its output:\n{}{}",
                if over {
                    format!("took more than {} MiB", max_rss.unwrap_or(0) >> 20)
                } else {
                    format!("did not finish in {limit:?}")
                },
                std::fs::read_to_string(out.path()).unwrap_or_default(),
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: std::fs::read(out.path()).unwrap(),
        stderr: std::fs::read(err.path()).unwrap(),
    };
    // ru_maxrss is in KiB on Linux.
    (output, usage.ru_maxrss as u64 * 1024)
}

/// Writes `cases` (a case file's text) to a fresh directory and runs `heatbill plugin test
/// plugins --cases <it>` with `extra` arguments; the output, and the directory to keep alive.
fn test_cases(cases: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    components();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.toml");
    std::fs::write(&file, cases).unwrap();
    let mut args = vec![
        "plugin",
        "test",
        "plugins",
        "--cases",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = heatbill(&args, dir.path());
    (out, dir)
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn worked_examples_pass_through_plugin_test() {
    components();
    let cache = tempfile::tempdir().unwrap();
    let out = heatbill(
        &["plugin", "test", "plugins", "--cases", "plugins/cases"],
        cache.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "plugin test failed:\n{t}");
    for w in [
        "w1.toml", "w2.toml", "w3.toml", "w4.toml", "w5.toml", "w6.toml", "w7.toml",
    ] {
        assert!(t.contains(w), "{w} was not run:\n{t}");
    }
    let last = t.lines().rev().find(|l| l.contains(" passed, ")).unwrap();
    assert!(last.ends_with(" 0 failed"), "{last}");
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 20, "only {passed} cases ran:\n{t}");
}

/// A binary copied out of the checkout, with the reference plugins in its data directory as
/// `./dev dist` lays a release out, finds them there (not in the checkout it was built from).
#[test]
fn a_copied_binary_finds_the_reference_plugins_beside_it() {
    let built = components();
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    let share = root.path().join("share/heatbill/reference-plugins");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&share).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_heatbill"), bin.join("heatbill")).unwrap();
    for p in ["season", "area_tariff"] {
        std::fs::copy(
            built.join(format!("{p}.wasm")),
            share.join(format!("{p}.wasm")),
        )
        .unwrap();
    }
    let cases = tempfile::tempdir().unwrap();
    let w1 = cases.path().join("w1.toml");
    std::fs::copy(repo().join("plugins/cases/w1.toml"), &w1).unwrap();
    let out = Command::new(bin.join("heatbill"))
        .args(["plugin", "test"])
        .arg(share.join("season.wasm"))
        .arg("--cases")
        .arg(&w1)
        .env_remove("HEATBILL_REFERENCE_PLUGINS")
        .env("HEATBILL_CACHE_DIR", root.path().join("compiled"))
        .current_dir(cases.path())
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "reference plugins from {}",
            bin.join("../share/heatbill/reference-plugins").display()
        )),
        "{t}"
    );
    assert!(t.contains(" 0 failed"), "{t}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff_and_exit_1() {
    let cases = r#"
description = "W1 day 2 with a wrong figure"
[[chain]]
plugin = "season"
params = { start = "2025-10-20", end = "2026-04-20" }
[[chain]]
plugin = "area-tariff"
params = { area_basis = "usable", prices = { residential = "38.32", non-residential = "43.3" } }
[[case]]
name = "day 2"
customer = { date = "2025-10-21", usable_area = "60.00", building_area = "75" }
expect.lines = [{ code = "heat", amount = "12.56" }]
"#;
    let (out, _dir) = test_cases(cases, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL"), "{t}");
    assert!(
        t.contains("amount expected 12.56, got 12.57"),
        "no diff for the line:\n{t}"
    );
    assert!(t.contains("0 passed, 1 failed"), "{t}");

    let (json, _dir) = test_cases(cases, &["--json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["files"][0]["cases"][0]["passed"], false);
}

/// A case file can expect its chain to be refused (a plugin's parameter check), with the
/// message: `late-fee-cap.toml` passes among the worked examples; here, a chain that
/// configures, or a refusal that says something else, fails the file.
#[test]
fn a_file_can_expect_a_refused_chain() {
    components();
    let cap = |rate: &str, says: &str| {
        format!(
            r#"
[[chain]]
plugin = "late-fee"
params = {{ daily_rate = "{rate}", max_daily_rate = "0.003", due_date = "2026-01-01" }}
[refused]
message = "{says}"
"#
        )
    };
    let (out, _dir) = test_cases(&cap("0.005", "above the legal cap"), &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("ok    the chain is refused"), "{t}");
    let (out, _dir) = test_cases(&cap("0.001", "above the legal cap"), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "expected the chain to be refused, saying \"above the legal cap\"; it configured"
        ),
        "{t}"
    );
    let (out, _dir) = test_cases(&cap("0.005", "negative"), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("expected the refusal to say \"negative\""),
        "{t}"
    );
    // A refused chain bills nothing: a file with both is refused as it is read.
    let both = format!(
        "{}[[case]]\nname = \"a\"\ncustomer = {{ date = \"2026-01-02\" }}\nexpect = {{ error = \"bad-params\" }}\n",
        cap("0.005", "cap")
    );
    let (out, _dir) = test_cases(&both, &[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("put the cases in a file of their own"), "{t}");
}

/// A rule-error message made to rewrite the terminal (CR, ANSI colours, an OSC title, a newline
/// and a fake summary) is printed escaped: the table still says FAIL and the real count.
#[test]
fn a_message_cannot_rewrite_the_plugin_test_table() {
    let cases = r#"
[[chain]]
plugin = "hostile"
params = { mode = "escape-message" }
[[case]]
name = "evil"
customer = { date = "2025-11-15", tags = ["hostile"] }
expect.lines = [{ code = "hostile", amount = "1.00" }]
"#;
    let (out, _dir) = test_cases(cases, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for raw in ['\r', '\x1b', '\x07'] {
        assert!(!t.contains(raw), "{raw:?} printed raw:\n{t:?}");
    }
    assert!(t.contains("\\u{1b}[32mok"), "{t}");
    assert!(t.contains("FAIL  evil"), "{t}");
    let fakes = t.lines().filter(|l| l.starts_with("1 passed")).count();
    assert_eq!(fakes, 0, "the fake summary got a line of its own:\n{t}");
    assert!(t.lines().any(|l| l == "0 passed, 1 failed"), "{t}");

    // --json keeps the message as it was, escaped by JSON itself.
    let (json, _dir) = test_cases(cases, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    let got = v["files"][0]["cases"][0]["got"].as_str().unwrap();
    assert!(got.contains("\r\x1b[2K"), "{got:?}");
}

/// Case files can expect what the host refuses: `invalid-output` naming the broken invariant.
#[test]
fn a_case_can_expect_invalid_output_and_its_invariant() {
    let cases = r#"
[[chain]]
plugin = "hostile"
params = { mode = "subsidy-skim" }
[[case]]
name = "a subsidy that pays the government more than it relieves"
customer = { date = "2025-11-15", tags = ["hostile"] }
expect = { error = "invalid-output", message = "invariant subsidy-balanced" }
[[case]]
name = "the same, over three days"
customer = { tags = ["hostile"] }
dates = { from = "2025-11-15", to = "2025-11-17" }
expect = { error = "invalid-output", message = "subsidy lines sum to 999.89" }
[[case]]
name = "a wrong expectation of the message fails"
customer = { date = "2025-11-15", tags = ["hostile"] }
expect = { error = "invalid-output", message = "invariant amount-range" }
"#;
    let (out, _dir) = test_cases(cases, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("2 passed, 1 failed"), "{t}");
    assert!(
        t.contains("expected a message containing \"invariant amount-range\""),
        "{t}"
    );
}

/// Two different components that describe themselves alike in one folder are refused by name,
/// not resolved to whichever was read last; the same bytes twice are one plugin.
#[test]
fn two_components_with_one_name_and_version_are_refused() {
    let built = components();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    std::fs::create_dir(&folder).unwrap();
    let tariff = std::fs::read(built.join("area_tariff.wasm")).unwrap();
    std::fs::copy(built.join("season.wasm"), folder.join("season.wasm")).unwrap();
    std::fs::write(folder.join("area_tariff.wasm"), &tariff).unwrap();
    std::fs::write(folder.join("copy_of_area_tariff.wasm"), &tariff).unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        r#"
[[chain]]
plugin = "season"
params = { start = "2025-10-20", end = "2026-04-20" }
[[chain]]
plugin = "area-tariff"
params = { area_basis = "usable", prices = { residential = "38.32", non-residential = "43.3" } }
[[case]]
name = "W1 day 1"
customer = { date = "2025-10-20", usable_area = "60.00" }
expect.lines = [{ code = "heat", amount = "12.56" }]
"#,
    )
    .unwrap();
    let args = [
        "plugin",
        "test",
        folder.to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
    ];
    let out = heatbill(&args, dir.path());
    assert!(out.status.success(), "{}", text(&out));

    // Other code under the same name and version: the same component with a custom section
    // appended (id 0, size 3, name "x", payload "y"), so `describe` says the same.
    let mut other = tariff.clone();
    other.extend_from_slice(&[0, 3, 1, b'x', b'y']);
    std::fs::write(folder.join("zz_area_tariff.wasm"), &other).unwrap();
    let out = heatbill(&args, dir.path());
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("2 different components describe themselves as area-tariff 1.0.0")
            && t.contains("area_tariff.wasm")
            && t.contains("zz_area_tariff.wasm"),
        "{t}"
    );
}

/// Plugins that keep state between customer-days pass every case billed alone, and fail once
/// the cases are billed in varied batches, as production batches them.
#[test]
fn plugin_test_fails_plugins_whose_bills_depend_on_the_batch() {
    for (mode, variant) in [
        (
            "skim",
            "billed together with the file's other customer-days",
        ),
        ("previous", "billed twice in a row in one batch"),
        (
            "after-n",
            "billed at the end of a full batch of other customer-days",
        ),
        // The cases are all of one class; the generated customers are of every class.
        ("mixed-class", "billed among generated customer-days"),
    ] {
        let cases = format!(
            r#"
[[chain]]
plugin = "hostile"
params = {{ mode = "{mode}" }}
[[case]]
name = "a"
customer = {{ date = "2025-11-15", building_area = "61" }}
expect.lines = [{{ code = "hostile", amount = "1.00" }}]
[[case]]
name = "b"
customer = {{ date = "2025-11-15", building_area = "75" }}
expect.lines = [{{ code = "hostile", amount = "1.00" }}]
[[case]]
name = "c"
customer = {{ date = "2025-11-16", building_area = "88" }}
expect.lines = [{{ code = "hostile", amount = "1.00" }}]
"#
        );
        let (out, _dir) = test_cases(&cases, &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{mode}: {t}");
        assert!(
            t.contains("the bill depends on the other customer-days of its batch")
                && t.contains(variant),
            "{mode}: {t}"
        );
    }
}

/// A rule that is fast enough for a case file's few customer-days but too slow per
/// customer-day for a full batch would park its customers every night (each batch runs out of
/// time, its retries spend the budgets): `plugin test` bills the cases in a full batch under the
/// production limits, as the night does, and fails.
#[test]
fn plugin_test_fails_a_rule_too_slow_for_a_full_batch() {
    let cases = r#"
[[chain]]
plugin = "hostile"
params = { mode = "spin", spin = 5000000 }
[[case]]
name = "a"
customer = { date = "2025-11-15", building_area = "61", tags = ["hostile"] }
expect.lines = [{ code = "hostile", amount = "1.00" }]
[[case]]
name = "b"
customer = { date = "2025-11-15", building_area = "75", tags = ["hostile"] }
expect.lines = [{ code = "hostile", amount = "1.00" }]
"#;
    let (out, _dir) = test_cases(cases, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("billed at the end of a full batch of other customer-days")
            && t.contains("ran out of time")
            && t.contains("the night would park them"),
        "{t}"
    );
    assert!(
        !t.contains("the bill depends on the other customer-days"),
        "running out of time is not reported as impurity: {t}"
    );
}

#[test]
fn a_case_file_with_an_unknown_key_is_refused() {
    let cases = r#"
[[chain]]
plugin = "season"
params = { start = "2025-10-20", end = "2026-04-20" }
[[case]]
name = "typo"
customer = { date = "2025-10-21", usable_aera = "60.00" }
expect.lines = []
"#;
    let (out, _dir) = test_cases(cases, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("usable_aera"),
        "the error does not name the key:\n{t}"
    );
}

#[test]
fn check_accepts_a_reference_plugin_and_refuses_hostile_components() {
    let dir = components();
    let cache = tempfile::tempdir().unwrap();
    let ok = heatbill(
        &[
            "plugin",
            "check",
            dir.join("area_tariff.wasm").to_str().unwrap(),
        ],
        cache.path(),
    );
    let t = text(&ok);
    assert!(ok.status.success(), "{t}");
    assert!(t.contains("area-tariff"), "{t}");
    assert!(t.contains("heatbill:rules"), "{t}");

    let spy = heatbill(
        &["plugin", "check", dir.join("spy.wasm").to_str().unwrap()],
        cache.path(),
    );
    let t = text(&spy);
    assert_eq!(spy.status.code(), Some(1), "{t}");
    assert!(t.contains("heatbill-fixture:spy/network"), "{t}");

    let wrong = heatbill(
        &[
            "plugin",
            "check",
            dir.join("wrong_world.wasm").to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));

    let junk = cache.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let bad = heatbill(&["plugin", "check", junk.to_str().unwrap()], cache.path());
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
}

#[test]
fn new_build_test_a_plugin_from_the_template() {
    components();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("xuchang-tariff");
    let out = heatbill(
        &[
            "plugin",
            "new",
            "xuchang-tariff",
            "--dir",
            dir.to_str().unwrap(),
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("src/lib.rs").exists());
    // The SDK is vendored (the crate does not depend on this checkout), and it says so.
    let t = text(&out);
    assert!(
        t.contains("SDK: heatbill-sdk 0.2.0 (contract heatbill:rules@0.2.0), vendored"),
        "{t}"
    );
    assert!(dir.join("vendor/heatbill-sdk/wit/rules.wit").exists());
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"heatbill-sdk = { path = "vendor/heatbill-sdk" }"#),
        "{manifest}"
    );
    assert!(!manifest.contains(repo().to_str().unwrap()), "{manifest}");

    // Share the plugins workspace's target directory: the SDK and its dependencies are built.
    let target = repo().join("plugins/target");
    let build = Command::new(env!("CARGO_BIN_EXE_heatbill"))
        .args(["plugin", "build", dir.to_str().unwrap()])
        .env("HEATBILL_CACHE_DIR", work.path().join("compiled"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let t = text(&build);
    assert!(build.status.success(), "plugin build failed:\n{t}");
    let component = target.join("wasm32-wasip2/release/xuchang_tariff.wasm");
    assert!(component.exists(), "{t}");

    let test = heatbill(
        &[
            "plugin",
            "test",
            component.to_str().unwrap(),
            "--cases",
            dir.join("cases.toml").to_str().unwrap(),
        ],
        work.path(),
    );
    let t = text(&test);
    assert!(test.status.success(), "the template's own cases fail:\n{t}");
    assert!(t.contains(" passed, 0 failed"), "{t}");

    let again = heatbill(
        &[
            "plugin",
            "new",
            "xuchang-tariff",
            "--dir",
            dir.to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(again.status.code(), Some(2), "plugin new overwrote a crate");
}

#[test]
fn bench_reports_throughput() {
    components();
    let cache = tempfile::tempdir().unwrap();
    let out = heatbill(
        &[
            "plugin",
            "bench",
            "plugins",
            "--cases",
            // W1's cases expect no error, so every customer-day must be billed.
            "plugins/cases/w1.toml",
            "--case-customers",
            "--days",
            "20000",
            "--threads",
            "1",
        ],
        cache.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("from 1 case customer-days") || t.contains("case customer-days"),
        "{t}"
    );
    let row = t
        .lines()
        .find(|l| l.starts_with("| 20000 "))
        .unwrap_or_else(|| panic!("no result row:\n{t}"));
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    let rate: f64 = cols[4].parse().unwrap();
    assert!(rate > 0.0, "{row}");
    assert_eq!((cols[7], cols[8]), ("0", "0"), "refused or failed: {row}");
    // Each plugin's own cost: W1's chain is season then area-tariff, each called for every
    // customer-day (20 calls of 1,024 at most).
    for plugin in ["season 1.0.0", "area-tariff 1.0.0"] {
        let row = t
            .lines()
            .find(|l| l.starts_with(&format!("| {plugin} |")))
            .unwrap_or_else(|| panic!("no row for {plugin}:\n{t}"));
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cols[2], "20", "{row}");
        assert_eq!(cols[3], "20000", "{row}");
        assert!(cols[4].parse::<f64>().unwrap() > 0.0, "{row}");
    }
    assert!(t.contains("| the host (inputs, filters, totals) |"), "{t}");

    // By default a generated company (the demo's mix) on the file's first date.
    let run = |file: &str, extra: &[&str]| {
        let mut a = vec!["plugin", "bench", "plugins", "--cases", file];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--days", "5000", "--threads", "1"]);
        let t = text(&heatbill(&a, cache.path()));
        let row = t
            .lines()
            .find(|l| l.starts_with("| 5000 "))
            .unwrap_or_else(|| panic!("no result row:\n{t}"))
            .to_string();
        let cols: Vec<String> = row.split('|').map(|c| c.trim().to_string()).collect();
        (t, cols)
    };
    let (t, cols) = run("plugins/cases/reference-chain.toml", &[]);
    assert!(
        t.contains("of a generated company (5000 customers, the demo's mix) on 2025-10-20"),
        "{t}"
    );
    assert_eq!(cols[8], "0", "failures: {cols:?}");
    // W3's metered customers without a reading: the rule's own refusals (what production
    // parks), counted apart from failures.
    let (t, cols) = run("plugins/cases/w3.toml", &["--case-customers"]);
    assert_eq!(cols[8], "0", "failures: {cols:?}");
    let refused: usize = cols[7].parse().unwrap();
    assert!(refused > 0, "{cols:?}");
    assert!(
        t.contains(&format!("refused by the rules: missing-input {refused}")),
        "{t}"
    );
}

#[test]
fn demo_bills_every_customer_and_the_second_run_writes_nothing() {
    components();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    let out = heatbill(
        &["demo", "--customers", "5000", "--database", &db],
        dir.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(" 5000 rows in"), "{t}");
    assert!(
        t.contains("customers 5000: 5000 billed, 0 revised, 0 unchanged, 0 parked"),
        "{t}"
    );
    assert!(
        t.contains("5000 customers, 5000 unchanged, 0 written"),
        "{t}"
    );
}

#[test]
fn the_readme_engine_settings_are_the_real_ones_and_typos_are_refused() {
    let dir = components();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("```toml\ncache_dir")
        .expect("README has the engine settings")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    let work = tempfile::tempdir().unwrap();
    let settings = readme[start..end].replace(
        "/var/cache/heatbill/components",
        work.path().join("cache").to_str().unwrap(),
    );
    let file = work.path().join("engine.toml");
    std::fs::write(&file, &settings).unwrap();
    let component = dir.join("season.wasm");
    let args = [
        "plugin",
        "check",
        component.to_str().unwrap(),
        "--engine-config",
        file.to_str().unwrap(),
    ];
    let ok = heatbill(&args, work.path());
    assert!(ok.status.success(), "{}", text(&ok));

    std::fs::write(
        &file,
        settings.replace("max_lines_per_day", "max_line_per_day"),
    )
    .unwrap();
    let typo = heatbill(&args, work.path());
    let t = text(&typo);
    assert_eq!(typo.status.code(), Some(2), "{t}");
    assert!(
        t.contains("max_line_per_day"),
        "the error does not name the key:\n{t}"
    );
}

#[test]
fn a_plugin_whose_two_entry_points_disagree_fails_its_cases() {
    let cases = r#"
[[chain]]
plugin = "hostile"
params = { mode = "two-faced" }
[[case]]
name = "the batch bills 1.00, the single-day evaluate 2.00"
customer = { date = "2025-11-01", tags = ["hostile"] }
expect.lines = [{ code = "hostile", amount = "1.00" }]
[[case]]
name = "an ordinary customer: both agree"
customer = { date = "2025-11-01" }
expect.lines = [{ code = "hostile", amount = "1.00" }]
"#;
    let (out, _dir) = test_cases(cases, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("evaluate-batch gave hostile 1.00 | total 1.00, the single-day evaluate gave hostile 2.00 | total 2.00"),
        "{t}"
    );
    assert!(t.contains("1 passed, 1 failed"), "{t}");
}

/// Compiling happens in a child process with a wall-clock and a memory limit: a component whose
/// shape passes the structural limits but costs too much to compile is refused with the limit
/// named, and the `heatbill` process lives to say so.
#[test]
fn a_compile_that_costs_too_much_is_refused_and_the_host_lives() {
    let dir = tempfile::tempdir().unwrap();
    // 49,999 functions of one loop each: inside every structural limit, yet about 2.5 s and
    // 330 MB to compile: the costliest shape known within the limits.
    let costly = dir.path().join("costly.wasm");
    std::fs::write(&costly, heatbill_fixtures::nested_loops(1, 49_999)).unwrap();
    let config = dir.path().join("engine.toml");
    let runs = std::cell::Cell::new(0);
    let check = |settings: &str| {
        std::fs::write(&config, settings).unwrap();
        // A compile cache of its own per check: `plugin check` tries a refused component under
        // the larger profiles too, whose compile limits let it compile (and be cached).
        runs.set(runs.get() + 1);
        let cache = dir.path().join(format!("cache-{}", runs.get()));
        let out = heatbill(
            &[
                "plugin",
                "check",
                costly.to_str().unwrap(),
                "--engine-config",
                config.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            dir.path(),
        );
        (out.status.code(), text(&out))
    };
    let (code, t) = check("[compile]\nmax_memory_bytes = 100_000_000\n");
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("compile.max_memory_bytes"), "{t}");
    let (code, t) = check("[compile]\ntimeout_ms = 300\n");
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("compile.timeout_ms"), "{t}");
    // Under the defaults it compiles (in the child, whose artifact the host loads) and is then
    // refused for what it is: not a rules plugin.
    let (code, t) = check("");
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("not a heatbill rules plugin"), "{t}");

    // The review's bomb at the size cap is refused by its shape, before any compiling.
    let bomb = dir.path().join("bomb.wasm");
    std::fs::write(
        &bomb,
        heatbill_fixtures::nested_loops_of_size(27_000, (8 << 20) - 1_000),
    )
    .unwrap();
    let out = heatbill(&["plugin", "check", bomb.to_str().unwrap()], dir.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("limits.max_loop_depth"), "{t}");
}

/// The review's 257-byte case file (a range from 0001-01-01 to 9999-12-31) made `plugin test`
/// make a customer-day for each of its 3,652,059 dates before any bound was checked: about 1 GB,
/// then hours of billing. It is refused from its dates now, before anything is made, and the
/// binary's peak memory is what loading the plugin takes. So is a file of a million cases.
#[test]
fn a_case_file_over_millennia_is_refused_before_it_is_billed() {
    let dir = tempfile::tempdir().unwrap();
    let tariff = components().join("area_tariff.wasm");
    let forever = dir.path().join("forever.toml");
    let range = "[[chain]]\nplugin = \"area-tariff\"\nparams = { area_basis = \"usable\", prices = \
                { residential = \"38.32\", non-residential = \"43.3\" } }\n[[case]]\nname = \
                \"forever\"\ndates = { from = \"0001-01-01\", to = \"9999-12-31\" }\n\
                expect.days = 0\n";
    assert!(range.len() < 300);
    std::fs::write(&forever, range).unwrap();
    // A case file as large as the cap allows, of single-day cases: refused by its size.
    let many = dir.path().join("many.toml");
    let case = "[[case]]\nname = \"c\"\ncustomer.date = \"2026-01-15\"\nexpect.days = 0\n";
    std::fs::write(
        &many,
        format!(
            "[[chain]]\nplugin = \"area-tariff\"\n{}",
            case.repeat(20_000)
        ),
    )
    .unwrap();
    for (file, says) in [
        (
            &forever,
            "the cases bill 3652059 customer-days; a case file bills at most 100000",
        ),
        (&many, "a case file is at most 1048576 bytes"),
    ] {
        let (out, peak) = heatbill_bounded(
            &[
                "plugin",
                "test",
                tariff.to_str().unwrap(),
                "--no-reference",
                "--cases",
                file.to_str().unwrap(),
            ],
            dir.path(),
            std::time::Duration::from_secs(300),
            Some(1 << 30),
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(says), "{t}");
        assert!(
            peak < 256 << 20,
            "plugin test peaked at {} MiB on {}",
            peak >> 20,
            file.display()
        );
        eprintln!(
            "{}: refused; peak resident set {} MiB",
            file.display(),
            peak >> 20
        );
    }
}

/// `company apply --plugins DIR` read whatever a path in DIR named: a link to /dev/zero took
/// 3 GB in two seconds, a FIFO hung it. A component must be a regular file (links followed) no
/// larger than the largest component a limits profile accepts; anything else is refused by its
/// type or size before it is read, and nothing is applied.
#[test]
fn company_apply_reads_regular_component_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("heatbill.db").display());
    let company = dir.path().join("company.toml");
    std::fs::write(
        &company,
        "slug = \"harbin\"\nname = \"Harbin Heat\"\ntime_zone = \"Asia/Harbin\"\n\
         [[chain]]\neffective_from = \"2025-10-01\"\n[[chain.entry]]\nplugin = \"area-tariff\"\n\
         params = { area_basis = \"usable\", prices = { residential = \"38.32\", \
         non-residential = \"43.3\" } }\n",
    )
    .unwrap();
    let out = heatbill(&["migrate", "--database", &db], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((32 << 20) + 1)
        .unwrap();
    for (name, target, says) in [
        (
            "zero",
            Path::new("/dev/zero"),
            "is a device, FIFO or socket, not a regular file",
        ),
        (
            "fifo",
            fifo.as_path(),
            "is a device, FIFO or socket, not a regular file",
        ),
        (
            "big",
            big.as_path(),
            "is 33554433 bytes; a component is at most 33554432 bytes, so it was not read",
        ),
    ] {
        let plugins = dir.path().join(format!("plugins-{name}"));
        std::fs::create_dir(&plugins).unwrap();
        std::fs::copy(
            components().join("area_tariff.wasm"),
            plugins.join("area_tariff.wasm"),
        )
        .unwrap();
        let evil = plugins.join("evil.wasm");
        std::os::unix::fs::symlink(target, &evil).unwrap();
        let (out, peak) = heatbill_bounded(
            &[
                "company",
                "apply",
                company.to_str().unwrap(),
                "--plugins",
                plugins.to_str().unwrap(),
                "--database",
                &db,
            ],
            dir.path(),
            std::time::Duration::from_secs(120),
            Some(1 << 30),
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {t}");
        assert!(
            t.contains(&format!("{} {says}", evil.display())),
            "{name}: {t}"
        );
        assert!(
            peak < 256 << 20,
            "{name}: company apply peaked at {} MiB",
            peak >> 20
        );
    }
    // Nothing was applied; with the honest component alone, the company is.
    let plugins = dir.path().join("plugins-zero");
    std::fs::remove_file(plugins.join("evil.wasm")).unwrap();
    let out = heatbill(
        &["company", "show", "harbin", "--database", &db],
        dir.path(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    let out = heatbill(
        &[
            "company",
            "apply",
            company.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
            "--database",
            &db,
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// `plugin check` retried a component whose compile ran out of time under the `interpreted`
/// profile by itself: a compile bomb the API refuses in 30 s took 150 s and 1.6 GB. A compile
/// that runs out of its limits is not retried under a larger profile now, and the report says
/// so; a refusal a profile does lift (the size here) is retried, and the binary says which
/// profile it tries, and why, before it does.
#[test]
fn plugin_check_retries_only_what_a_profile_lifts_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let tariff = components().join("area_tariff.wasm");
    // No compile finishes in a millisecond (the compiler is a child process): every component
    // runs out of this compile time, whatever the machine's load.
    let slow = dir.path().join("compile.toml");
    std::fs::write(&slow, "[compile]\ntimeout_ms = 1\n").unwrap();
    let out = heatbill(
        &[
            "plugin",
            "check",
            tariff.to_str().unwrap(),
            "--engine-config",
            slow.to_str().unwrap(),
        ],
        dir.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("(compile.timeout_ms)"), "{t}");
    assert!(
        t.contains("no larger profile is tried after a compile that runs out of time or memory"),
        "{t}"
    );
    assert!(
        !t.contains("trying the profile") && !t.contains("needs     the profile"),
        "{t}"
    );

    // Over the standard size cap: the interpreted profile lifts that, and is tried, saying so.
    let small = dir.path().join("small.toml");
    std::fs::write(&small, "[limits]\nmax_component_bytes = 1000\n").unwrap();
    let out = heatbill(
        &[
            "plugin",
            "check",
            tariff.to_str().unwrap(),
            "--engine-config",
            small.to_str().unwrap(),
        ],
        dir.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused under the profile `standard` (the component is")
            && stderr.contains(
                "trying the profile `interpreted` (components up to 33554432 \
                                bytes; compiling takes at most 120 s and 2048 MiB)"
            ),
        "{t}"
    );
    assert!(t.contains("needs     the profile `interpreted`"), "{t}");
}

/// A new plugin tested after the reference ones without copying them: the reference plugins are
/// found by default, `--plugins` adds components from elsewhere, `--no-reference` leaves the
/// reference ones out.
#[test]
fn plugins_are_tested_together_from_several_places() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::copy(
        components().join("late_fee.wasm"),
        mine.join("late_fee.wasm"),
    )
    .unwrap();
    let mine = mine.to_str().unwrap();
    let w6 = "plugins/cases/w6.toml";
    // late-fee alone: season and area-tariff come from the reference plugins.
    let out = heatbill(&["plugin", "test", mine, "--cases", w6], dir.path());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("reference plugins from") && t.contains("season"),
        "{t}"
    );
    // Without them, the chain cannot be made, and the error says what is there.
    let out = heatbill(
        &["plugin", "test", mine, "--no-reference", "--cases", w6],
        dir.path(),
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("no plugin named \"season\""), "{t}");
    // With --plugins naming the other components' directory, it passes again.
    let others = components();
    let out = heatbill(
        &[
            "plugin",
            "test",
            mine,
            "--no-reference",
            "--plugins",
            others.to_str().unwrap(),
            "--cases",
            w6,
        ],
        dir.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("reference plugins from"), "{t}");
}

/// `plugin new` by version or by path says so and writes that dependency (nothing vendored).
#[test]
fn plugin_new_depends_on_the_sdk_by_version_or_path() {
    let work = tempfile::tempdir().unwrap();
    let by_version = work.path().join("a");
    let out = heatbill(
        &[
            "plugin",
            "new",
            "a-tariff",
            "--dir",
            by_version.to_str().unwrap(),
            "--sdk-version",
            "0.2.0",
        ],
        work.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("SDK: heatbill-sdk 0.2.0 from the crates registry"),
        "{t}"
    );
    let manifest = std::fs::read_to_string(by_version.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(r#"heatbill-sdk = "0.2.0""#), "{manifest}");
    assert!(!by_version.join("vendor").exists());

    let by_path = work.path().join("b");
    let sdk = repo().join("plugins/sdk");
    let out = heatbill(
        &[
            "plugin",
            "new",
            "b-tariff",
            "--dir",
            by_path.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
        work.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("SDK: heatbill-sdk from"), "{t}");
    let manifest = std::fs::read_to_string(by_path.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("plugins/sdk"), "{manifest}");
    // Both at once is refused.
    let out = heatbill(
        &[
            "plugin",
            "new",
            "c-tariff",
            "--dir",
            work.path().join("c").to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
            "--sdk-version",
            "0.2.0",
        ],
        work.path(),
    );
    assert!(!out.status.success());
}
