//! The runtime's commands as an operator runs them, on real databases: a company applied, its
//! files imported (a bad one refused with every bad row named), a day run and run again, and a
//! run killed with SIGKILL mid-way and started again.
//!
//! Long by design: one test per operator story, each spawning the real binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heatbill_runtime::demo;
use heatbill_runtime::store;
use serde_json::Value;

use crate::{components, heatbill, text};

/// The tests' PostgreSQL server (`HEATBILL_TEST_POSTGRES`, default the local one).
pub(crate) fn admin_url() -> String {
    std::env::var("HEATBILL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database; its URL.
pub(crate) async fn fresh_database(name: &str) -> String {
    let admin = admin_url();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}): start it (on this machine: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)"
            )
        });
    let name = format!("{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

pub(crate) async fn drop_database(url: &str) {
    let name = url.rsplit_once('/').unwrap().1;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
        .await
        .unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}

/// Runs `heatbill` and requires success; its stdout.
pub(crate) fn ok(args: &[&str], dir: &Path) -> String {
    let out = heatbill(args, dir);
    assert!(
        out.status.success(),
        "heatbill {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Migrates `db`, applies the demo company and imports its files for `n` customers.
pub(crate) fn prepare(db: &str, n: usize, dir: &Path) {
    let plugins = components();
    let company = dir.join("company.toml");
    std::fs::write(&company, demo::COMPANY_FILE).unwrap();
    let files = demo::write_files(dir, n, "2026-01-15".parse().unwrap()).unwrap();
    ok(&["migrate", "--database", db], dir);
    ok(
        &[
            "company",
            "apply",
            company.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
            "--database",
            db,
        ],
        dir,
    );
    for (kind, path) in [
        ("customers", &files.customers),
        ("readings", &files.readings),
        ("temperatures", &files.temperatures),
        ("balances", &files.balances),
        ("payments", &files.payments),
    ] {
        let out = ok(
            &[
                "import",
                kind,
                path.to_str().unwrap(),
                "--company",
                demo::COMPANY,
                "--database",
                db,
            ],
            dir,
        );
        assert!(out.contains("imported"), "{out}");
    }
}

fn run_json(db: &str, dir: &Path) -> Value {
    let out = ok(
        &[
            "run",
            "--company",
            demo::COMPANY,
            "--date",
            "2026-01-15",
            "--json",
            "--database",
            db,
        ],
        dir,
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn import_and_run_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hb.db").display());
    prepare(&db, 200, dir.path());
    // A file with bad rows at the start, the middle and the end imports nothing and names
    // every bad row; control characters in values are escaped.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "customer_id,date,celsius\nC0000001,2026-01-15,hot\nC0000002,2026-01-15,17.5\n\
         C0000003,2026-13-15,17.5\nC0000004,2026-01-15,17.5\nC\u{1b}[31m,2026-01-15,17\n",
    )
    .unwrap();
    let args = [
        "import",
        "temperatures",
        bad.to_str().unwrap(),
        "--company",
        demo::COMPANY,
        "--database",
        &db,
    ];
    let out = heatbill(&args, dir.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("nothing imported: 3 problem(s)"), "{t}");
    assert!(t.contains("row 2, column celsius"), "{t}");
    assert!(t.contains("row 4, column date"), "{t}");
    assert!(t.contains("row 6, column customer_id"), "{t}");
    assert!(
        !t.contains('\u{1b}'),
        "an escape sequence reached the terminal: {t:?}"
    );

    let first = run_json(&db, dir.path());
    assert_eq!(first["counts"]["customers"], 200);
    assert_eq!(first["counts"]["written"], 200);
    let second = run_json(&db, dir.path());
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["counts"]["unchanged"], 200);
    assert_eq!(second["counts"]["written"], 0);

    // The largest unpaid principals after the run (the embedded default rebuilds the ranking
    // from the bills in each new process).
    let top = ok(
        &[
            "arrears",
            "--company",
            demo::COMPANY,
            "--top",
            "3",
            "--json",
            "--database",
            &db,
        ],
        dir.path(),
    );
    let top: Value = serde_json::from_str(&top).unwrap();
    let amounts: Vec<rust_decimal::Decimal> = top["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["arrears"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(amounts.len(), 3, "{top}");
    assert!(
        amounts.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {top}"
    );
    assert_eq!(top["date"], "2026-01-15");

    let out = heatbill(
        &[
            "run",
            "--company",
            "nowhere",
            "--date",
            "2026-01-15",
            "--database",
            &db,
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no company \"nowhere\""),
        "{}",
        text(&out)
    );
}

/// A cashier's day from the command line: a counter payment (the same receipt twice is one
/// payment), a refund, the account, the day's close, a payment dated before billed days that
/// makes them stale, and `run --stale` billing them again.
#[test]
fn the_counter_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hb.db").display());
    prepare(&db, 30, dir.path());
    run_json(&db, dir.path());
    let account = |args: &[&str]| -> String {
        let mut all = vec!["account"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--company", demo::COMPANY, "--database", &db]);
        ok(&all, dir.path())
    };
    let pay = [
        "pay",
        "--customer",
        "C0000001",
        "--amount",
        "120.50",
        "--txn",
        "R-1",
        "--paid-on",
        "2026-01-15",
        "--cashier",
        "li",
        "--by",
        "li",
    ];
    let out = account(&pay);
    assert!(out.contains("recorded") && out.contains("120.50"), "{out}");
    let entry: String = out
        .split_whitespace()
        .nth(2)
        .expect("the entry's id")
        .to_string();
    let again = account(&pay);
    assert!(
        again.contains("recorded before (nothing changed)"),
        "{again}"
    );
    let out = account(&[
        "refund",
        "--entry",
        &entry,
        "--amount",
        "20.50",
        "--note",
        "paid too much",
        "--on",
        "2026-01-15",
    ]);
    assert!(
        out.contains("-20.50") && out.contains(&format!("undoes {entry}")),
        "{out}"
    );
    let acc: Value = serde_json::from_str(&account(&[
        "show",
        "--customer",
        "C0000001",
        "--as-of",
        "2026-01-15",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        acc["credits"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap(),
        "100.00".parse::<rust_decimal::Decimal>().unwrap() + demo_paid(&acc),
        "{acc:#}"
    );
    let close: Value =
        serde_json::from_str(&account(&["close", "--date", "2026-01-15", "--json"])).unwrap();
    assert_eq!(close["net"], "100.00", "{close:#}");
    // Refused, with what to fix, and nothing recorded. (The demo's opening balances hold as of
    // 2026-01-08, for the customers who owed something.)
    let balances = std::fs::read_to_string(dir.path().join("balances.csv")).unwrap();
    let owed = balances
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    for (args, says) in [
        (
            vec![
                "pay",
                "--customer",
                "C0000001",
                "--amount",
                "1.001",
                "--txn",
                "R-2",
            ],
            "two decimals",
        ),
        (
            vec![
                "pay",
                "--customer",
                &owed,
                "--amount",
                "5",
                "--txn",
                "R-3",
                "--paid-on",
                "2026-01-01",
            ],
            "opening balance",
        ),
        (
            vec![
                "pay",
                "--customer",
                "C0000001",
                "--amount",
                "90.00",
                "--txn",
                "R-1",
                "--paid-on",
                "2026-01-15",
            ],
            "never changed",
        ),
    ] {
        let mut all = vec!["account"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["--company", demo::COMPANY, "--database", &db]);
        let out = heatbill(&all, dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
    // A payment received on the 14th, recorded after the 15th was billed: the 15th is stale.
    account(&[
        "pay",
        "--customer",
        "C0000002",
        "--amount",
        "50.00",
        "--channel",
        "wechat",
        "--txn",
        "4200000009",
        "--paid-on",
        "2026-01-14",
    ]);
    let rerun = ok(
        &[
            "run",
            "--company",
            demo::COMPANY,
            "--stale",
            "--json",
            "--database",
            &db,
        ],
        dir.path(),
    );
    let reports: Value = serde_json::from_str(&rerun).unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 1, "{reports:#}");
    assert_eq!(reports[0]["date"], "2026-01-15");
    assert!(
        reports[0]["counts"]["revised"].as_u64().unwrap() >= 1,
        "{reports:#}"
    );
    let none = ok(
        &[
            "run",
            "--company",
            demo::COMPANY,
            "--stale",
            "--database",
            &db,
        ],
        dir.path(),
    );
    assert!(none.contains("no stale dates"), "{none}");
    let audit = heatbill(
        &["audit", "--company", demo::COMPANY, "--database", &db],
        dir.path(),
    );
    assert!(audit.status.success(), "{}", text(&audit));
}

/// What the demo's payments file paid for a customer (its entries other than this test's).
fn demo_paid(acc: &Value) -> rust_decimal::Decimal {
    acc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["channel"] == "import")
        .map(|e| {
            e["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum()
}

/// A child process that is killed and reaped however the test ends.
pub(crate) struct Reaped(pub(crate) std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILL `heatbill run` part-way: started again, it resumes the run; every customer has
/// exactly one bill, and the bills equal those of a run that was never interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_without_losing_or_doubling_a_bill() {
    const CUSTOMERS: usize = 120_000;
    let dir = tempfile::tempdir().unwrap();
    let killed = fresh_database("heatbill_test_killed").await;
    let whole = fresh_database("heatbill_test_whole").await;
    for db in [&killed, &whole] {
        let (db, path) = (db.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || prepare(&db, CUSTOMERS, &path))
            .await
            .unwrap();
    }
    let store = store::open(&killed, 2, 30).await.unwrap();
    let company = store.company(demo::COMPANY).await.unwrap();

    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_heatbill"))
            .args(["run", "--company", demo::COMPANY, "--date", "2026-01-15"])
            .args(["--database", &killed])
            .env("HEATBILL_RUN__SHARD_SIZE", "1000")
            .env("HEATBILL_RUN__LEASE_S", "2")
            .env("HEATBILL_CACHE_DIR", dir.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until a few shards are written, then kill the process without warning.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done_at_kill = loop {
        assert!(
            Instant::now() < deadline,
            "the run wrote no 5 shards in two minutes"
        );
        let runs = store
            .runs(company.id, "2026-01-15".parse().unwrap())
            .await
            .unwrap();
        if let Some(run) = runs.first() {
            let totals = store.run_totals(run.id, 0).await.unwrap();
            if totals.shards_done >= 5 {
                child.0.kill().unwrap(); // SIGKILL
                child.0.wait().unwrap();
                break totals.shards_done;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let runs = store
        .runs(company.id, "2026-01-15".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].state, "running",
        "the run finished before it was killed"
    );
    let after_kill = store.run_totals(runs[0].id, 0).await.unwrap();
    assert!(
        after_kill.shards_done < after_kill.shard_count,
        "killed after {done_at_kill} shards, yet all {} are done",
        after_kill.shard_count
    );

    let resumed = run_json(&killed, dir.path());
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["run_id"], runs[0].id);
    assert_eq!(resumed["counts"]["customers"], CUSTOMERS);
    let uninterrupted = run_json(&whole, dir.path());
    assert_eq!(uninterrupted["resumed"], false);
    assert_eq!(resumed["totals"], uninterrupted["totals"]);
    assert_eq!(resumed["counts"], uninterrupted["counts"]);

    let other = store::open(&whole, 2, 30).await.unwrap();
    let date = "2026-01-15".parse().unwrap();
    let a = store.bills(company.id, date).await.unwrap();
    let b = other
        .bills(other.company(demo::COMPANY).await.unwrap().id, date)
        .await
        .unwrap();
    assert_eq!(
        a.len(),
        CUSTOMERS,
        "every customer has exactly one current bill"
    );
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.row == y.row && x.lines == y.lines),
        "the resumed run's bills differ from the uninterrupted run's"
    );
    drop(store);
    drop(other);
    drop_database(&killed).await;
    drop_database(&whole).await;
}

/// The tests' Redis (`HEATBILL_TEST_REDIS`, default the local server).
pub(crate) fn redis_url() -> String {
    std::env::var("HEATBILL_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `heatbill run` of the demo company in the background, as host `name`, with short leases.
pub(crate) fn spawn_run(
    db: &str,
    date: &str,
    name: &str,
    prefix: &str,
    env: &[(&str, &str)],
    dir: &Path,
) -> Reaped {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heatbill"));
    cmd.args(["run", "--company", demo::COMPANY, "--date", date, "--json"])
        .args(["--database", db])
        .env("HEATBILL_CACHE_DIR", dir.join("cache"))
        .env("HEATBILL_REDIS_URL", redis_url())
        .env("HEATBILL_REDIS__PREFIX", prefix)
        .env("HEATBILL_RUN__SHARD_SIZE", "200")
        .env("HEATBILL_RUN__LEASE_S", "2")
        .env("HEATBILL_RUN__CLAIM_POLL_MS", "100")
        .env("HOSTNAME", name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Reaped(cmd.spawn().unwrap())
}

/// Waits for a spawned run; its report.
fn report_of(mut child: Reaped) -> Value {
    let out = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The shards of the date's run done so far (0 before the run opens).
/// (0 also while this test's own connections are being terminated: the caller polls again.)
async fn shards_done(store: &std::sync::Arc<dyn store::Store>, company: i32, date: &str) -> u64 {
    let Ok(runs) = store.runs(company, date.parse().unwrap()).await else {
        return 0;
    };
    match runs.last() {
        Some(r) => store.run_totals(r.id, 0).await.map_or(0, |t| t.shards_done),
        None => 0,
    }
}

async fn wait_for_shards(
    store: &std::sync::Arc<dyn store::Store>,
    company: i32,
    date: &str,
    n: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while shards_done(store, company, date).await < n {
        assert!(
            Instant::now() < deadline,
            "{date}: fewer than {n} shards in two minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn signal(child: &Reaped, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig}");
}

/// Many `heatbill run` processes share one run over PostgreSQL and Redis, under faults; each
/// day's bills are compared with those of one undisturbed process in a database of their own:
///
/// 1. three processes started at once (three triggers of one date): one run, every shard
///    written by exactly one of them;
/// 2. one of three SIGKILLed mid-run: the others take its shards when their leases lapse;
/// 3. one of two SIGSTOPped while it holds a shard, past its lease, then SIGCONTed: the other
///    writes the shard with a newer token, and the stopped one's late write is refused;
/// 4. Redis flushed mid-run (FLUSHALL), with the shards read through the cache;
/// 5. PostgreSQL's connections terminated mid-run, again and again: the run retries;
/// 6. a `heatbill worker` serving the run `heatbill run` opened, stopped by SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_share_a_run_under_faults() {
    const CUSTOMERS: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let faults = fresh_database("heatbill_test_faults").await;
    let reference = fresh_database("heatbill_test_reference").await;
    for db in [&faults, &reference] {
        let (db, path) = (db.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || prepare(&db, CUSTOMERS, &path))
            .await
            .unwrap();
    }
    let store = store::open(&faults, 4, 30).await.unwrap();
    let other = store::open(&reference, 2, 30).await.unwrap();
    let company = store.company(demo::COMPANY).await.unwrap();
    let ref_company = other.company(demo::COMPANY).await.unwrap();
    let prefix = format!("heatbill-test-faults-{}", std::process::id());
    let path = dir.path();

    let same_bills = |date: &'static str| {
        let (store, other) = (store.clone(), other.clone());
        async move {
            let d = date.parse().unwrap();
            let a = store.bills(company.id, d).await.unwrap();
            let b = other.bills(ref_company.id, d).await.unwrap();
            assert_eq!(
                a.len(),
                CUSTOMERS,
                "{date}: every customer has one current bill"
            );
            assert_eq!(b.len(), CUSTOMERS);
            let differing: Vec<_> = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x.row != y.row || x.lines != y.lines)
                .collect();
            if let Some((x, y)) = differing.first() {
                eprintln!("first difference:\n{x:?}\n{y:?}");
            }
            let differ = differing.len();
            assert_eq!(differ, 0, "{date}: bills differ from the undisturbed run's");
        }
    };
    let reference_run = |date: &'static str| {
        let (reference, path) = (reference.clone(), path.to_path_buf());
        async move {
            tokio::task::spawn_blocking(move || {
                ok(
                    &[
                        "run",
                        "--company",
                        demo::COMPANY,
                        "--date",
                        date,
                        "--database",
                        &reference,
                    ],
                    &path,
                )
            })
            .await
            .unwrap();
        }
    };

    // 1. Three processes at once.
    let date = "2026-01-15";
    reference_run(date).await;
    let procs: Vec<Reaped> = ["a", "b", "c"]
        .iter()
        .map(|n| spawn_run(&faults, date, n, &prefix, &[], path))
        .collect();
    let reports: Vec<Value> = procs.into_iter().map(report_of).collect();
    let runs = store.runs(company.id, date.parse().unwrap()).await.unwrap();
    assert_eq!(runs.len(), 1, "three triggers, one run");
    assert!(reports.iter().all(|r| r["run_id"] == runs[0].id));
    let by_each: u64 = reports
        .iter()
        .map(|r| r["this_process"]["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(
        by_each, CUSTOMERS as u64,
        "each shard billed by exactly one process"
    );
    same_bills(date).await;

    // 2. One of three killed.
    let date = "2026-01-16";
    reference_run(date).await;
    let mut procs: Vec<Reaped> = ["a", "b", "c"]
        .iter()
        .map(|n| spawn_run(&faults, date, n, &prefix, &[], path))
        .collect();
    wait_for_shards(&store, company.id, date, 20).await;
    let killed = procs.remove(0);
    signal(&killed, "-KILL");
    drop(killed);
    let reports: Vec<Value> = procs.into_iter().map(report_of).collect();
    assert!(
        reports
            .iter()
            .all(|r| r["counts"]["customers"] == CUSTOMERS)
    );
    same_bills(date).await;

    // 3. One of two stopped while it holds a shard, past its lease.
    let date = "2026-01-17";
    reference_run(date).await;
    let a = spawn_run(&faults, date, "a", &prefix, &[], path);
    let a_name = format!("a:{}", a.0.id());
    wait_for_shards(&store, company.id, date, 5).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&faults)
        .await
        .unwrap();
    let held = loop {
        signal(&a, "-STOP");
        let held: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT s.shard_no, s.token FROM run_shards s JOIN runs r ON r.id = s.run_id
             WHERE r.bill_date = $1 AND s.state = 'pending' AND s.claimed_by = $2",
        )
        .bind(date.parse::<chrono::NaiveDate>().unwrap())
        .bind(&a_name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        if !held.is_empty() {
            break held;
        }
        signal(&a, "-CONT");
        tokio::time::sleep(Duration::from_millis(3)).await;
    };
    let b = spawn_run(&faults, date, "b", &prefix, &[], path);
    let b_report = report_of(b);
    assert_eq!(
        b_report["counts"]["customers"], CUSTOMERS,
        "b finished the run alone"
    );
    let (shard, token): (i32, i64) = held[0];
    let now: (String, i64, Option<String>) = sqlx::query_as(
        "SELECT s.state, s.token, s.claimed_by FROM run_shards s JOIN runs r ON r.id = s.run_id
         WHERE r.bill_date = $1 AND s.shard_no = $2",
    )
    .bind(date.parse::<chrono::NaiveDate>().unwrap())
    .bind(shard)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(now.0, "done");
    assert!(
        now.1 > token,
        "b claimed the stopped process's shard with a newer token"
    );
    signal(&a, "-CONT");
    let a_report = report_of(a);
    assert!(
        a_report["writes_refused"].as_u64().unwrap() >= 1,
        "the stopped process's late write was refused by the fencing token: {a_report}"
    );
    same_bills(date).await;

    // 4. Redis flushed mid-run, shards read through the cache.
    let date = "2026-01-18";
    reference_run(date).await;
    let cache = [("HEATBILL_CACHE__SHARDS", "true")];
    let procs: Vec<Reaped> = ["a", "b"]
        .iter()
        .map(|n| spawn_run(&faults, date, n, &prefix, &cache, path))
        .collect();
    wait_for_shards(&store, company.id, date, 20).await;
    let flushed = Command::new("redis-cli")
        .args(["-u", &redis_url(), "FLUSHALL"])
        .output()
        .unwrap();
    assert!(flushed.status.success(), "FLUSHALL");
    for r in procs.into_iter().map(report_of) {
        assert_eq!(r["counts"]["customers"], CUSTOMERS);
    }
    same_bills(date).await;

    // 5. PostgreSQL's connections terminated mid-run, again and again.
    let date = "2026-01-19";
    reference_run(date).await;
    let a = spawn_run(&faults, date, "a", &prefix, &[], path);
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
        .await
        .unwrap();
    let db_name = faults.rsplit_once('/').unwrap().1.to_string();
    let mut terminated = 0;
    for step in [10, 40, 80, 120] {
        wait_for_shards(&store, company.id, date, step).await;
        let n: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name <> 'psql'",
        )
        .bind(&db_name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        terminated += n.len();
    }
    assert!(terminated > 0, "no connection was terminated");
    let report = report_of(a);
    assert_eq!(report["counts"]["customers"], CUSTOMERS);
    same_bills(date).await;

    // 6. A `heatbill worker` on another host serves the run `heatbill run` opened, until
    //    stopped.
    let date = "2026-01-20";
    reference_run(date).await;
    let mut worker = Command::new(env!("CARGO_BIN_EXE_heatbill"));
    worker
        .args(["worker", "--database", &faults])
        .env("HEATBILL_CACHE_DIR", path.join("cache"))
        .env("HEATBILL_REDIS_URL", redis_url())
        .env("HEATBILL_REDIS__PREFIX", &prefix)
        .env("HEATBILL_RUN__LEASE_S", "2")
        .env("HEATBILL_RUN__CLAIM_POLL_MS", "20")
        .env("HOSTNAME", "w")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let worker = Reaped(worker.spawn().unwrap());
    // (scenario 5 terminated this test's own connection too)
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&faults)
        .await
        .unwrap();
    let a = spawn_run(&faults, date, "a", &prefix, &[], path);
    let report = report_of(a);
    assert_eq!(report["counts"]["customers"], CUSTOMERS);
    let by_worker: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_shards s JOIN runs r ON r.id = s.run_id
         WHERE r.bill_date = $1 AND s.claimed_by LIKE 'w:%'",
    )
    .bind(date.parse::<chrono::NaiveDate>().unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(by_worker > 0, "the worker took no shard");
    assert!(
        report["this_process"]["customers"].as_u64().unwrap() < CUSTOMERS as u64,
        "the worker's shards are not the run's own"
    );
    signal(&worker, "-TERM");
    let out = std::mem::replace(&mut { worker }.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "the worker stops cleanly on SIGTERM");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("run(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    same_bills(date).await;

    drop((store, other, conn, admin));
    drop_database(&faults).await;
    drop_database(&reference).await;
}

/// The charging office from the command line: the directory imported and searched (masked
/// unless revealed), the receivables report, and a WeChat Pay bill reconciled, its lost
/// notification recovered, the same file again changing nothing.
#[test]
fn the_charging_office_from_the_command_line() {
    use heatbill_statements::Channel as StChannel;
    use heatbill_statements::fixtures::{self, WechatOpts};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hb.db").display());
    prepare(&db, 30, dir.path());
    run_json(&db, dir.path());
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
    let day = fixtures::day(StChannel::Wechat, 3, date, 2, 0);
    let profiles = dir.path().join("profiles.csv");
    std::fs::write(
        &profiles,
        format!(
            "customer_id,account_no,name,phone,community,building,unit,room\n\
             C0000001,{},张三,13812345678,幸福小区,1,2,301\n\
             C0000002,{},李四,13900001111,幸福小区,1,2,302\n",
            day.payments[0].account, day.payments[1].account
        ),
    )
    .unwrap();
    let with = |args: &[&str]| -> String {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--company", demo::COMPANY, "--database", &db]);
        ok(&all, dir.path())
    };
    let out = with(&["import", "profiles", profiles.to_str().unwrap()]);
    assert!(out.contains('2'), "{out}");
    let out = with(&["customer", "find", "--phone", "5678"]);
    assert!(
        out.contains("C0000001") && out.contains("138****5678") && !out.contains("13812345678"),
        "{out}"
    );
    let out = with(&["customer", "find", "--community", "幸福小区", "--reveal"]);
    assert!(
        out.contains("13900001111") && out.contains("2 found"),
        "{out}"
    );
    let r: Value = serde_json::from_str(&with(&[
        "account",
        "receivables",
        "--as-of",
        "2026-01-15",
        "--json",
    ]))
    .unwrap();
    assert_eq!(r["total"]["customers"], 30, "{r:#}");
    assert_eq!(r["cuts"]["billed_through"], "2026-01-15", "{r:#}");

    // The first payment's notification arrived; the second's was lost.
    let p = &day.payments[0];
    with(&[
        "account",
        "pay",
        "--customer",
        "C0000001",
        "--amount",
        &p.amount.to_string(),
        "--channel",
        "wechat",
        "--txn",
        &p.txn,
        "--paid-on",
        "2026-01-15",
    ]);
    let bill = dir.path().join("wx-20260115.csv");
    std::fs::write(
        &bill,
        fixtures::wechat_bill(date, &day.payments, &[], &WechatOpts::default()),
    )
    .unwrap();
    let out = with(&[
        "statement",
        "import",
        "--channel",
        "wechat",
        bill.to_str().unwrap(),
    ]);
    assert!(out.contains("matched 1, missing in heatbill 1"), "{out}");
    let out = with(&["statement", "show", "1"]);
    assert!(
        out.contains("missing-in-heatbill") && out.contains("C0000002"),
        "{out}"
    );
    let out = with(&["statement", "recover", "1", "--item", "1"]);
    assert!(out.contains("recorded payment entry"), "{out}");
    let out = with(&[
        "statement",
        "import",
        "--channel",
        "wechat",
        bill.to_str().unwrap(),
    ]);
    assert!(out.contains("imported before"), "{out}");
    // A file cut short is refused, with what is wrong, and nothing stored.
    let bytes = std::fs::read(&bill).unwrap();
    let cut = dir.path().join("cut.csv");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let mut args = vec![
        "statement",
        "import",
        "--channel",
        "wechat",
        cut.to_str().unwrap(),
    ];
    args.extend_from_slice(&["--company", demo::COMPANY, "--database", &db]);
    let out = heatbill(&args, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not imported"), "{}", text(&out));
    let out = with(&["statement", "list"]);
    assert_eq!(out.matches("statement ").count(), 1, "{out}");

    // The government's share: the settlement list of the day adds up to the receivable, and a
    // transfer recorded twice is one transfer.
    let list: Value = serde_json::from_str(&with(&[
        "subsidy",
        "settlement",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-31",
        "--json",
    ]))
    .unwrap();
    let billed: rust_decimal::Decimal = list["amount"].as_str().unwrap().parse().unwrap();
    let lines = list["lines"].as_array().unwrap();
    assert!(
        !lines.is_empty(),
        "the demo has low-income households: {list:#}"
    );
    assert_eq!(list["customers"], lines.len(), "{list:#}");
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert!(names.iter().all(|n| n.contains('*')), "masked: {names:?}");
    let transfer = [
        "subsidy",
        "transfer",
        "--reference",
        "GOV-2026-01",
        "--amount",
        "100.00",
        "--on",
        "2026-01-15",
        "--period-from",
        "2026-01-01",
        "--period-to",
        "2026-01-31",
    ];
    assert!(with(&transfer).contains("recorded"));
    assert!(with(&transfer).contains("nothing changed"));
    let r: Value = serde_json::from_str(&with(&[
        "subsidy",
        "receivable",
        "--as-of",
        "2026-01-15",
        "--json",
    ]))
    .unwrap();
    let hundred = rust_decimal::Decimal::new(10_000, 2);
    let dec = |v: &Value| -> rust_decimal::Decimal { v.as_str().unwrap().parse().unwrap() };
    assert_eq!(dec(&r["billed"]), billed, "{r:#}");
    assert_eq!(dec(&r["received"]), hundred, "{r:#}");
    assert_eq!(
        dec(&r["outstanding"]),
        (billed - hundred).max(rust_decimal::Decimal::ZERO),
        "{r:#}"
    );
    let mut args = vec![
        "subsidy",
        "transfer",
        "--reference",
        "GOV-BACK",
        "--amount",
        "-5.00",
    ];
    args.extend_from_slice(&["--company", demo::COMPANY, "--database", &db]);
    let out = heatbill(&args, dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("undoes"), "{}", text(&out));
}
