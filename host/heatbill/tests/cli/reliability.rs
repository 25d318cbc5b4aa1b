//! The run's reliability at the points where a fault used to stall, stale or lose work, each met
//! on purpose every time (the binary's `run.fault_*` settings stop a process at an exact point)
//! rather than by chance:
//!
//! - a writer stopped inside the COPY of its shard's bills does not stall the run, and yields
//!   when it resumes;
//! - a shard whose row stays locked past its lease is freed by ending the writer's session, and
//!   a lock that cannot be ended stops the run with an error naming the shard, never a hang;
//! - a date cannot be run while a re-run of the previous day is still going, and runs again once
//!   that finished;
//! - a run joined after a correction bills the correction;
//! - a worker stopped by SIGTERM writes the shards in hand and counts them.
//!
//! Every wait is bounded: a hang fails with the state of the run's shards and sessions.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use heatbill_runtime::demo;
use heatbill_runtime::store;
use serde_json::Value;

use crate::runtime::{Reaped, drop_database, fresh_database, ok, prepare, signal, spawn_run};
use crate::{heatbill, text};

/// Whether a process is stopped (SIGSTOP): its state in /proc is `T`.
fn stopped(child: &Reaped) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", child.0.id()))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        == Some('T')
}

/// Waits (at most `limit`) until `child` has stopped itself at its fault.
fn wait_stopped(child: &mut Reaped, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while !stopped(child) {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            if let Some(e) = child.0.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what} exited ({status}) before it stopped at its fault:\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not stop at its fault within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` (at most `limit`), reading its output as it goes; on a timeout kills it
/// and fails with `diagnose()` (the run's shards and sessions).
async fn finish_within<F, Fut>(child: Reaped, limit: Duration, what: &str, diagnose: F) -> Output
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut child = child;
    let mut out = child.0.stdout.take();
    let mut err = child.0.stderr.take();
    let readers = (
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut v);
            }
            v
        }),
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut v);
            }
            v
        }),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            let diagnosis = diagnose().await;
            let stderr = String::from_utf8_lossy(&readers.1.join().unwrap()).into_owned();
            panic!(
                "{what} did not finish within {limit:?}; the run's state:\n{diagnosis}\n\
                 its stderr:\n{stderr}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Output {
        status,
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
    }
}

/// A run's report from a finished `heatbill run --json`, which must have succeeded.
fn report(out: &Output, what: &str) -> Value {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{what}: {e}: {stdout}"))
}

/// The shards of the database's runs, and its sessions: what a hang looks like.
async fn diagnosis(db: &str) -> String {
    let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(db).await else {
        return "(the database is not reachable)".into();
    };
    let shards: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', 'run', run_id, 'shard', shard_no, state, 'token', token,
                          'claimed by', claimed_by, 'until', lease_until)
         FROM run_shards WHERE state <> 'done' ORDER BY run_id, shard_no",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let sessions: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', pid, application_name, state, wait_event) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    format!("pending shards: {shards:?}\nsessions: {sessions:?}")
}

/// A bill as compared: (customer, total, lines as stored, paid before, arrears).
type Compared = (String, String, String, String, String);

/// The current bills of a date, by customer (what two databases billed alike agree on,
/// whatever their runs' ids and versions).
async fn bills_of(db: &str, date: &str) -> Vec<Compared> {
    let s = store::open(db, 2, 30).await.unwrap();
    let company = s.company(demo::COMPANY).await.unwrap();
    s.bills(company.id, date.parse().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|b| {
            (
                b.customer_id,
                b.row.total.to_string(),
                b.row.lines,
                b.row.paid_before.to_string(),
                b.row.arrears.to_string(),
            )
        })
        .collect()
}

/// SIGSTOP a process inside the COPY of its third shard: the other process takes the shard
/// over when its lease lapses (nothing of the stopped writer's transaction holds a lock) and
/// finishes the run; resumed, the stopped one finds its claim lost, drops the shard and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stopped_inside_its_copy_does_not_stall_the_run() {
    const CUSTOMERS: usize = 4_000;
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database("heatbill_test_copystop").await;
    let reference = fresh_database("heatbill_test_copyref").await;
    for d in [&db, &reference] {
        let (d, path) = (d.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || prepare(&d, CUSTOMERS, &path))
            .await
            .unwrap();
    }
    let date = "2026-01-15";
    let path = dir.path();
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
        path,
    );
    let prefix = format!("heatbill-test-copystop-{}", std::process::id());
    let mut a = spawn_run(
        &db,
        date,
        "a",
        &prefix,
        &[("HEATBILL_RUN__FAULT_STOP_IN_COPY", "3")],
        path,
    );
    wait_stopped(&mut a, Duration::from_secs(120), "process a");
    // a's writer sits in its COPY, the backend waiting for the rest of the data.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let writing: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT application_name, wait_event FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'heatbill write %'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // The process has `run.writers` writers (2): the other one may be inside a COPY of its own
    // when the process stops, so one or more sessions, every one waiting for its client.
    assert!(
        !writing.is_empty() && writing.len() <= 2,
        "the stopped process's writer sessions (one or two): {writing:?}"
    );
    assert!(
        writing
            .iter()
            .all(|(_, wait)| wait.as_deref() == Some("ClientRead")),
        "the stopped writers' backends wait for their COPY data: {writing:?}"
    );

    let b = spawn_run(&db, date, "b", &prefix, &[], path);
    let out = finish_within(b, Duration::from_secs(180), "process b", || diagnosis(&db)).await;
    let b_report = report(&out, "process b");
    assert_eq!(b_report["counts"]["customers"], CUSTOMERS, "{b_report}");

    signal(&a, "-CONT");
    let out = finish_within(a, Duration::from_secs(120), "process a, resumed", || {
        diagnosis(&db)
    })
    .await;
    let a_report = report(&out, "process a, resumed");
    assert!(
        a_report["writes_refused"].as_u64().unwrap() >= 1,
        "the resumed writer's late write was refused, and it went on: {a_report}"
    );
    assert_eq!(bills_of(&db, date).await, bills_of(&reference, date).await);
    drop(conn);
    drop_database(&db).await;
    drop_database(&reference).await;
}

/// A shard whose row another session holds locked past its lease: a run that cannot end the
/// session (it is not a heatbill writer) stops after `run.stall_s` with an error naming the
/// shard; once the session carries the shard writer's name, the next run ends it and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_locked_past_its_lease_is_freed_or_named_never_waited_on() {
    const CUSTOMERS: usize = 4_000;
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database("heatbill_test_stall").await;
    {
        let (d, path) = (db.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || prepare(&d, CUSTOMERS, &path))
            .await
            .unwrap();
    }
    let date = "2026-01-15";
    let path = dir.path();
    let prefix = format!("heatbill-test-stall-{}", std::process::id());
    // a opens the run, claims shards and stops in its first write.
    let mut a = spawn_run(
        &db,
        date,
        "a",
        &prefix,
        &[("HEATBILL_RUN__FAULT_STOP_IN_COPY", "1")],
        path,
    );
    wait_stopped(&mut a, Duration::from_secs(120), "process a");
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (run_id, shard, token): (i64, i32, i64) = sqlx::query_as(
        "SELECT run_id, shard_no, token FROM run_shards
         WHERE state = 'pending' AND claimed_by LIKE 'a:%' ORDER BY shard_no DESC LIMIT 1",
    )
    .fetch_one(&mut holder)
    .await
    .unwrap();
    // A session that is no heatbill writer locks the shard's row and keeps it.
    for sql in [
        "BEGIN".to_string(),
        "SET LOCAL application_name = 'someone else'".to_string(),
        format!(
            "SELECT 1 FROM run_shards WHERE run_id = {run_id} AND shard_no = {shard} FOR UPDATE"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut holder)
            .await
            .unwrap();
    }
    let b = spawn_run(
        &db,
        date,
        "b",
        &prefix,
        &[("HEATBILL_RUN__STALL_S", "8")],
        path,
    );
    let out = finish_within(b, Duration::from_secs(180), "process b", || diagnosis(&db)).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!("shard {shard} (claimed by a:")) && t.contains("stay(s) locked"),
        "the error names the locked shard: {t}"
    );

    // The same session, now named as the shard's writer: it is ended, and the run finishes.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL application_name = 'heatbill write {run_id} {shard} {token}'"
    )))
    .execute(&mut holder)
    .await
    .unwrap();
    let c = spawn_run(&db, date, "c", &prefix, &[], path);
    let out = finish_within(c, Duration::from_secs(180), "process c", || diagnosis(&db)).await;
    let c_report = report(&out, "process c");
    assert_eq!(c_report["counts"]["customers"], CUSTOMERS, "{c_report}");
    assert!(
        sqlx::query("SELECT 1").execute(&mut holder).await.is_err(),
        "the stalled writer's session was ended"
    );
    assert_eq!(bills_of(&db, date).await.len(), CUSTOMERS);
    signal(&a, "-KILL");
    drop(a);
    drop_database(&db).await;
}

/// Writes a payments file: 100.00 paid on 2026-01-14 by the first `n` demo customers.
fn payments(dir: &Path, n: usize, tag: &str) -> String {
    let path = dir.join(format!("payments-{tag}.csv"));
    let mut csv = String::from("payment_id,customer_id,paid_on,amount\n");
    for i in 1..=n {
        csv.push_str(&format!("{tag}-{i},C{i:07},2026-01-14,100.00\n"));
    }
    std::fs::write(&path, csv).unwrap();
    path.to_str().unwrap().to_string()
}

fn import_payments(db: &str, file: &str, dir: &Path) {
    ok(
        &[
            "import",
            "payments",
            file,
            "--company",
            demo::COMPANY,
            "--database",
            db,
        ],
        dir,
    );
}

fn run_date(db: &str, date: &str, dir: &Path) -> Output {
    heatbill(
        &[
            "run",
            "--company",
            demo::COMPANY,
            "--date",
            date,
            "--json",
            "--database",
            db,
        ],
        dir,
    )
}

/// A re-run of 01-15 cut off (its run left open) after a correction: 01-16 is refused while it
/// is open; once 01-15 finished, 01-16 bills again from 01-15's new balances, instead of
/// answering "nothing changed".
#[test]
fn a_date_waits_for_a_rerun_of_the_previous_day() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let db = format!("sqlite://{}", path.join("hb.db").display());
    prepare(&db, 300, path);
    for date in ["2026-01-15", "2026-01-16"] {
        report(&run_date(&db, date, path), date);
    }
    import_payments(&db, &payments(path, 50, "late"), path);
    // The re-run of 01-15, opened and cut off before it wrote anything.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open_id = rt.block_on(async {
        let s = store::open(&db, 2, 30).await.unwrap();
        let company = s.company(demo::COMPANY).await.unwrap();
        let version = s.chain_versions(company.id).await.unwrap().remove(0);
        let opened = s
            .open_run(
                company.id,
                "2026-01-15".parse().unwrap(),
                version.id,
                100,
                "cut off",
            )
            .await
            .unwrap();
        opened.run.id
    });

    let out = run_date(&db, "2026-01-16", path);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!("run {open_id}")) && t.contains("still going"),
        "the refusal names the open run of the previous day: {t}"
    );

    let r15 = report(&run_date(&db, "2026-01-15", path), "2026-01-15");
    assert_eq!(r15["counts"]["customers"], 300, "{r15}");
    // 01-16 was billed from 01-15's earlier run: the audit lists it to be run again.
    let audit = |path: &Path| {
        heatbill(
            &[
                "audit",
                "--company",
                demo::COMPANY,
                "--from",
                "2026-01-15",
                "--to",
                "2026-01-16",
                "--json",
                "--database",
                &db,
            ],
            path,
        )
    };
    let stale = audit(path);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    let found: Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert_eq!(
        found["stale_dates"],
        serde_json::json!(["2026-01-16"]),
        "{found}"
    );
    assert_eq!(found["problems"][0]["kind"], "stale-date", "{found}");
    let r16 = report(&run_date(&db, "2026-01-16", path), "2026-01-16");
    assert!(r16["unchanged_since"].is_null(), "{r16}");
    assert!(
        r16["counts"]["revised"].as_u64().unwrap() > 0,
        "the customers whose 01-15 balance changed get new 01-16 bills: {r16}"
    );
    let clean = audit(path);
    assert!(clean.status.success(), "{}", text(&clean));
    // Each 01-16 bill starts from its 01-15 bill.
    rt.block_on(async {
        let s = store::open(&db, 2, 30).await.unwrap();
        let company = s.company(demo::COMPANY).await.unwrap();
        let b15 = s
            .bills(company.id, "2026-01-15".parse().unwrap())
            .await
            .unwrap();
        let b16 = s
            .bills(company.id, "2026-01-16".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(b15.len(), b16.len());
        for (x, y) in b15.iter().zip(&b16) {
            assert_eq!(
                y.row.charged_before,
                x.row.charged_before + x.row.principal,
                "{}: 01-16's balance carries from 01-15's bill",
                x.customer_id
            );
        }
    });
}

/// A run stopped after three shards, a correction imported, then `heatbill run` again: it joins
/// the open run, and the report it prints is current (the corrected customers whose shards were
/// written before the correction are billed again), equal to a run on the corrected data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_joined_after_a_correction_bills_the_correction() {
    const CUSTOMERS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let db = format!("sqlite://{}", path.join("joined.db").display());
    let reference = format!("sqlite://{}", path.join("reference.db").display());
    for d in [&db, &reference] {
        let (d, path) = (d.clone(), path.clone());
        tokio::task::spawn_blocking(move || prepare(&d, CUSTOMERS, &path))
            .await
            .unwrap();
    }
    let date = "2026-01-15";
    let file = payments(&path, 100, "fix");
    import_payments(&reference, &file, &path);
    report(&run_date(&reference, date, &path), "the reference run");

    let mut a = Reaped(
        Command::new(env!("CARGO_BIN_EXE_heatbill"))
            .args(["run", "--company", demo::COMPANY, "--date", date])
            .args(["--database", &db])
            .env("HEATBILL_CACHE_DIR", path.join("cache"))
            .env("HEATBILL_RUN__SHARD_SIZE", "100")
            .env("HEATBILL_RUN__LEASE_S", "2")
            .env("HEATBILL_RUN__FAULT_STOP_AFTER_WRITE", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_stopped(&mut a, Duration::from_secs(120), "the first run");
    signal(&a, "-KILL");
    drop(a);
    // The correction touches customers of the shards already written.
    import_payments(&db, &file, &path);
    let again = report(
        &run_date(&db, date, &path),
        "the run joined after the correction",
    );
    assert_eq!(again["counts"]["customers"], CUSTOMERS, "{again}");
    assert!(
        again["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("opened on other inputs")),
        "the report says it joined a run opened on older inputs: {again}"
    );
    assert_eq!(bills_of(&db, date).await, bills_of(&reference, date).await);
}

/// A worker stopped by SIGTERM while it holds shards: it claims nothing more, writes the shards
/// in hand, says how many, and leaves none of its claims pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_by_sigterm_writes_the_shards_in_hand() {
    const CUSTOMERS: usize = 4_000;
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database("heatbill_test_winddown").await;
    {
        let (d, path) = (db.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || prepare(&d, CUSTOMERS, &path))
            .await
            .unwrap();
    }
    let date = "2026-01-15";
    let path = dir.path();
    let prefix = format!("heatbill-test-winddown-{}", std::process::id());
    // A run opened and left: its opener stops after one shard and is killed.
    let mut opener = spawn_run(
        &db,
        date,
        "opener",
        &prefix,
        &[("HEATBILL_RUN__FAULT_STOP_AFTER_WRITE", "1")],
        path,
    );
    wait_stopped(&mut opener, Duration::from_secs(120), "the opener");
    signal(&opener, "-KILL");
    drop(opener);

    let mut worker = Reaped(
        Command::new(env!("CARGO_BIN_EXE_heatbill"))
            .args(["worker", "--database", &db])
            .env("HEATBILL_CACHE_DIR", path.join("cache"))
            .env("HEATBILL_REDIS_URL", crate::runtime::redis_url())
            .env("HEATBILL_REDIS__PREFIX", &prefix)
            .env("HEATBILL_RUN__LEASE_S", "2")
            .env("HEATBILL_RUN__CLAIM_POLL_MS", "50")
            .env("HEATBILL_RUN__FAULT_STOP_AFTER_WRITE", "2")
            .env("HOSTNAME", "w")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_stopped(&mut worker, Duration::from_secs(120), "the worker");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_shards WHERE state = 'pending' AND claimed_by LIKE 'w:%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(held > 0, "the worker holds shards when it is stopped");
    signal(&worker, "-TERM");
    signal(&worker, "-CONT");
    let out = finish_within(worker, Duration::from_secs(120), "the worker", || {
        diagnosis(&db)
    })
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_shards WHERE state = 'pending' AND claimed_by LIKE 'w:%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(pending, 0, "the shards in hand were written: {t}");
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_shards WHERE state = 'done' AND claimed_by LIKE 'w:%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(done >= 2, "{t}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("1 run(s), {done} shard(s)")),
        "the worker counts the shards it wrote ({done}): {t}"
    );
    assert!(
        !t.contains("lost the claim"),
        "no claim of a shard the worker wrote itself is reported lost: {t}"
    );
    let rest = run_date(&db, date, path);
    assert_eq!(
        report(&rest, "the rest of the run")["counts"]["customers"],
        CUSTOMERS
    );
    drop(conn);
    drop_database(&db).await;
}
