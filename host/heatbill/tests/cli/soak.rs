//! The soak: many nights of several companies, each night billed by three `heatbill run`
//! processes at once on PostgreSQL and Redis, with the night's readings and payments imported
//! before it, a correction imported while it runs, and a fault drawn from a seeded random
//! sequence (SIGKILL, SIGSTOP inside a write or past the lease, SIGTERM, Redis flushed or
//! restarted, every database session terminated). After each night an operator's `heatbill run`
//! settles what the faults left (it resumes a run cut off, and bills a correction that came in
//! after every process had started), `heatbill audit` must find the books in order, and every
//! bill must equal the one an undisturbed process billed in a database of its own.
//!
//! `./dev test` runs a short soak (3 nights); `./dev soak` the full one (30 nights, more
//! customers, Redis restarts), which prints the same table. Settings, from the environment:
//! `HEATBILL_SOAK_NIGHTS` (3), `HEATBILL_SOAK_CUSTOMERS` (2,000 per company),
//! `HEATBILL_SOAK_SEED` (1), `HEATBILL_SOAK_REDIS_RESTART` (0; restarting the machine's Redis
//! would disturb the other tests running beside the short soak). Every wait is bounded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use heatbill_runtime::demo;
use serde_json::Value;

use crate::runtime::{Reaped, admin_url, drop_database, fresh_database, ok, redis_url};
use crate::{components, text};

/// A small deterministic generator (xorshift): the same seed, the same nights and faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The faults a night may meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    Kill,
    StopInCopy,
    StopPastLease,
    Term,
    FlushRedis,
    RestartRedis,
    TerminateSessions,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Kill => "SIGKILL mid-run",
            Fault::StopInCopy => "SIGSTOP inside a COPY",
            Fault::StopPastLease => "SIGSTOP past the lease",
            Fault::Term => "SIGTERM mid-run",
            Fault::FlushRedis => "Redis FLUSHALL",
            Fault::RestartRedis => "Redis restart",
            Fault::TerminateSessions => "pg_terminate_backend",
        }
    }
}

/// Sets a company up in `db`: the demo company under `slug`, its files for `n` customers.
fn set_up(db: &str, slug: &str, n: usize, dir: &Path) {
    let company = dir.join(format!("{slug}.toml"));
    std::fs::write(
        &company,
        demo::COMPANY_FILE.replace("slug = \"harbin-demo\"", &format!("slug = \"{slug}\"")),
    )
    .unwrap();
    let files = demo::write_files(dir, n, "2026-01-15".parse().unwrap()).unwrap();
    ok(&["migrate", "--database", db], dir);
    let plugins = components();
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
        ("temperatures", &files.temperatures),
        ("balances", &files.balances),
        ("payments", &files.payments),
    ] {
        import(db, slug, kind, path.to_str().unwrap(), dir);
    }
}

fn import(db: &str, slug: &str, kind: &str, file: &str, dir: &Path) {
    ok(
        &["import", kind, file, "--company", slug, "--database", db],
        dir,
    );
}

/// The night's files: the metered customers' readings of `date`, and payments of `date − 1`
/// by a few customers.
fn night_files(dir: &Path, n: usize, date: &str, rng: &mut Rng) -> (String, String) {
    let d: chrono::NaiveDate = date.parse().unwrap();
    let readings = dir.join(format!("readings-{date}.csv"));
    let mut csv = String::from("customer_id,date,heat_gj\n");
    for c in demo::customers(n, d) {
        if c.state.metered {
            let heat = c.heat.unwrap_or_default();
            csv.push_str(&format!("{},{date},{heat}\n", c.state.customer_id));
        }
    }
    std::fs::write(&readings, csv).unwrap();
    let payments = dir.join(format!("payments-{date}.csv"));
    let mut csv = String::from("payment_id,customer_id,paid_on,amount\n");
    let paid_on = d.pred_opt().unwrap();
    for k in 0..(n / 50).max(1) {
        let i = rng.below(n as u64) as usize;
        let cents = 1_000 + rng.below(200_000);
        csv.push_str(&format!(
            "p-{date}-{k},{},{paid_on},{}.{:02}\n",
            demo::customer_id(i),
            cents / 100,
            cents % 100
        ));
    }
    std::fs::write(&payments, csv).unwrap();
    (
        readings.to_str().unwrap().to_string(),
        payments.to_str().unwrap().to_string(),
    )
}

/// A correction of a few customers' usable area, valid from the night's date (one that reaches back
/// before billed dates makes them stale, which the ledger and CLI tests cover).
fn correction(dir: &Path, n: usize, date: &str, rng: &mut Rng) -> String {
    let d: chrono::NaiveDate = "2026-01-15".parse().unwrap();
    let path = dir.join(format!("correction-{date}.csv"));
    let mut csv = String::from(
        "customer_id,valid_from,class,status,metered,low_income,building_area,usable_area,ceiling_height\n",
    );
    let pick: Vec<usize> = (0..5).map(|_| rng.below(n as u64) as usize).collect();
    for (i, c) in demo::customers(n, d).enumerate() {
        if !pick.contains(&i) {
            continue;
        }
        let s = &c.state;
        let usable = s.usable_area.unwrap_or(s.building_area) + rust_decimal::Decimal::ONE;
        csv.push_str(&format!(
            "{},{date},{},{},{},{},{},{},{}\n",
            s.customer_id,
            if s.class == heatbill_engine::CustomerClass::Residential {
                "residential"
            } else {
                "non-residential"
            },
            if s.status == heatbill_engine::ServiceStatus::Suspended {
                "suspended"
            } else {
                "active"
            },
            s.metered,
            s.low_income,
            s.building_area,
            usable,
            s.ceiling_height.map(|h| h.to_string()).unwrap_or_default()
        ));
    }
    std::fs::write(&path, csv).unwrap();
    path.to_str().unwrap().to_string()
}

/// `heatbill run` of `slug` on `date` in the background, as host `name`.
fn spawn(
    db: &str,
    slug: &str,
    date: &str,
    name: &str,
    prefix: &str,
    env: &[(&str, &str)],
    dir: &Path,
) -> Reaped {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heatbill"));
    cmd.args(["run", "--company", slug, "--date", date, "--json"])
        .args(["--database", db])
        .env("HEATBILL_CACHE_DIR", dir.join("cache"))
        .env("HEATBILL_REDIS_URL", redis_url())
        .env("HEATBILL_REDIS__PREFIX", prefix)
        .env("HEATBILL_RUN__SHARD_SIZE", "200")
        .env("HEATBILL_RUN__LEASE_S", "2")
        .env("HEATBILL_RUN__CLAIM_POLL_MS", "100")
        .env("HEATBILL_RUN__WORKERS", "1")
        .env("HOSTNAME", name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Reaped(cmd.spawn().unwrap())
}

/// Reads a child's output on threads (so its pipes never fill), and waits at most `limit`.
fn collect(mut child: Reaped, limit: Duration) -> (Option<Output>, String) {
    let mut out = child.0.stdout.take();
    let mut err = child.0.stderr.take();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(x) = out.as_mut() {
            let _ = x.read_to_end(&mut v);
        }
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(x) = err.as_mut() {
            let _ = x.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return (
                Some(Output {
                    status,
                    stdout: o.join().unwrap(),
                    stderr: e.join().unwrap(),
                }),
                String::new(),
            );
        }
        if Instant::now() >= deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            let stderr = String::from_utf8_lossy(&e.join().unwrap()).into_owned();
            return (None, stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stopped(c: &Child) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", c.id()))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        == Some('T')
}

fn kill(c: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &c.id().to_string()])
        .status();
}

/// Shards done of the date's latest run of `slug` (0 before it opens).
async fn shards_done(db: &str, slug: &str, date: &str) -> i64 {
    let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(db).await else {
        return 0;
    };
    sqlx::query_scalar(
        "SELECT count(*) FROM run_shards s JOIN runs r ON r.id = s.run_id
         JOIN companies c ON c.id = r.company_id
         WHERE c.slug = $1 AND r.bill_date = $2 AND s.state = 'done'",
    )
    .bind(slug)
    .bind(date.parse::<chrono::NaiveDate>().unwrap())
    .fetch_one(&mut c)
    .await
    .unwrap_or(0)
}

/// Every current bill of a date, as (customer, total, lines, paid before, arrears, status).
async fn bills(
    db: &str,
    slug: &str,
    date: &str,
) -> Vec<(String, String, String, String, String, String)> {
    let s = heatbill_runtime::store::open(db, 2, 30).await.unwrap();
    let c = s.company(slug).await.unwrap();
    s.bills(c.id, date.parse().unwrap())
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
                b.row.status.as_str().to_string(),
            )
        })
        .collect()
}

fn restart_redis() {
    let _ = Command::new("redis-cli")
        .args(["-u", &redis_url(), "shutdown", "nosave"])
        .output();
    let started = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ])
        .status();
    assert!(
        started.is_ok_and(|s| s.success()),
        "Redis did not start again (redis-server --daemonize yes …)"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("redis-cli")
        .args(["-u", &redis_url(), "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
    {
        assert!(Instant::now() < deadline, "Redis did not come back in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let nights = env_or("HEATBILL_SOAK_NIGHTS", 3) as usize;
    let n = env_or("HEATBILL_SOAK_CUSTOMERS", 2_000) as usize;
    let seed = env_or("HEATBILL_SOAK_SEED", 1);
    let redis_restarts = env_or("HEATBILL_SOAK_REDIS_RESTART", 0) == 1;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let faults_db = fresh_database("heatbill_soak").await;
    let reference_db = fresh_database("heatbill_soak_ref").await;
    let companies = ["soak-a", "soak-b"];
    for db in [&faults_db, &reference_db] {
        for slug in companies {
            let (db, path) = (db.clone(), path.to_path_buf());
            tokio::task::spawn_blocking(move || set_up(&db, slug, n, &path))
                .await
                .unwrap();
        }
    }
    let prefix = format!("heatbill-soak-{}", std::process::id());
    let mut kinds: Vec<Fault> = vec![
        Fault::Kill,
        Fault::StopInCopy,
        Fault::StopPastLease,
        Fault::Term,
        Fault::FlushRedis,
        Fault::TerminateSessions,
        Fault::None,
    ];
    if redis_restarts {
        kinds.push(Fault::RestartRedis);
    }
    let mut table: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut takeovers, mut refused, mut compared, mut differences, mut corrections) =
        (0i64, 0u64, 0u64, 0u64, 0u64);
    let mut failures: Vec<String> = Vec::new();
    let first: chrono::NaiveDate = "2026-01-15".parse().unwrap();
    for night in 0..nights {
        let date = (first + chrono::Days::new(night as u64)).to_string();
        let date = date.as_str();
        let (readings, payments) = night_files(path, n, date, &mut rng);
        for db in [&faults_db, &reference_db] {
            for slug in companies {
                import(db, slug, "readings", &readings, path);
                import(db, slug, "payments", &payments, path);
            }
        }
        // The correction comes in during the night in the faulted database, before the run in
        // the reference.
        let corrected = companies[rng.below(2) as usize];
        let fix = correction(path, n, date, &mut rng);
        import(&reference_db, corrected, "customers", &fix, path);
        for slug in companies {
            ok(
                &[
                    "run",
                    "--company",
                    slug,
                    "--date",
                    date,
                    "--database",
                    &reference_db,
                ],
                path,
            );
        }
        // The night's fault, on the first company's first process (or on the servers).
        let fault = kinds[rng.below(kinds.len() as u64) as usize];
        *table.entry(fault.name()).or_default() += 1;
        let mut procs: Vec<(String, Reaped)> = Vec::new();
        for slug in companies {
            for (k, host) in ["a", "b", "c"].iter().enumerate() {
                let mut env: Vec<(&str, &str)> = Vec::new();
                if slug == companies[0] && k == 0 {
                    match fault {
                        Fault::StopInCopy => env.push(("HEATBILL_RUN__FAULT_STOP_IN_COPY", "2")),
                        Fault::StopPastLease => {
                            env.push(("HEATBILL_RUN__FAULT_STOP_AFTER_WRITE", "1"))
                        }
                        _ => {}
                    }
                }
                procs.push((
                    format!("{slug}/{host}"),
                    spawn(&faults_db, slug, date, host, &prefix, &env, path),
                ));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while shards_done(&faults_db, companies[0], date).await < 3 {
            if Instant::now() > deadline {
                failures.push(format!("{date}: no 3 shards of {} in 120 s", companies[0]));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        import(&faults_db, corrected, "customers", &fix, path);
        corrections += 1;
        let victim = &mut procs[0].1.0;
        match fault {
            Fault::Kill => kill(victim, "-KILL"),
            Fault::Term => kill(victim, "-TERM"),
            Fault::StopInCopy | Fault::StopPastLease => {
                // Stopped at its fault (or done before it came): let its lease lapse, then on.
                let until = Instant::now() + Duration::from_secs(60);
                while !stopped(victim) && Instant::now() < until {
                    if victim.try_wait().is_ok_and(|s| s.is_some()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                kill(victim, "-CONT");
            }
            Fault::FlushRedis => {
                let _ = Command::new("redis-cli")
                    .args(["-u", &redis_url(), "FLUSHALL"])
                    .output();
            }
            Fault::RestartRedis => restart_redis(),
            Fault::TerminateSessions => {
                let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
                    .await
                    .unwrap();
                let name = faults_db.rsplit_once('/').unwrap().1.to_string();
                let _: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .fetch_all(&mut admin)
                .await
                .unwrap();
            }
            Fault::None => {}
        }
        for (name, p) in procs {
            let (out, stderr) =
                tokio::task::spawn_blocking(move || collect(p, Duration::from_secs(300)))
                    .await
                    .unwrap();
            match out {
                None => failures.push(format!(
                    "{date}: {name} did not finish in 300 s (fault: {}):\n{stderr}",
                    fault.name()
                )),
                Some(o) if o.status.success() => {
                    if let Ok(r) = serde_json::from_slice::<Value>(&o.stdout) {
                        refused += r["writes_refused"].as_u64().unwrap_or(0);
                    }
                }
                // The victim of a kill or a SIGTERM dies; a run whose database sessions were
                // all terminated may stop too (it is resumed below). Anything else is a failure.
                Some(o) => {
                    let victim = name == format!("{}/a", companies[0]);
                    let expected = (victim && matches!(fault, Fault::Kill | Fault::Term))
                        || fault == Fault::TerminateSessions;
                    if !expected {
                        failures.push(format!(
                            "{date}: {name} failed (fault: {}):\n{}",
                            fault.name(),
                            text(&o)
                        ));
                    }
                }
            }
        }
        // The operator settles the night, audits, and compares with the reference.
        for slug in companies {
            let out = crate::heatbill(
                &[
                    "run",
                    "--company",
                    slug,
                    "--date",
                    date,
                    "--json",
                    "--database",
                    &faults_db,
                ],
                path,
            );
            if !out.status.success() {
                failures.push(format!(
                    "{date}: the operator's run of {slug} failed:\n{}",
                    text(&out)
                ));
            }
            let audit = crate::heatbill(
                &[
                    "audit",
                    "--company",
                    slug,
                    "--from",
                    date,
                    "--to",
                    date,
                    "--database",
                    &faults_db,
                ],
                path,
            );
            if !audit.status.success() {
                failures.push(format!(
                    "{date}: the audit of {slug} found problems:\n{}",
                    text(&audit)
                ));
            }
            let a = bills(&faults_db, slug, date).await;
            let b = bills(&reference_db, slug, date).await;
            compared += a.len() as u64;
            let differ = a.len().abs_diff(b.len()) as u64
                + a.iter().zip(&b).filter(|(x, y)| x != y).count() as u64;
            if differ > 0 {
                let first = a.iter().zip(&b).find(|(x, y)| x != y);
                failures.push(format!(
                    "{date}: {slug}: {differ} bill(s) differ from the undisturbed run's ({} \
                     against {}), e.g. {first:?}",
                    a.len(),
                    b.len()
                ));
            }
            differences += differ;
        }
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&faults_db)
            .await
            .unwrap();
        takeovers += sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM run_shards s JOIN runs r ON r.id = s.run_id
             WHERE r.bill_date = $1 AND s.claims > 1",
        )
        .bind(date.parse::<chrono::NaiveDate>().unwrap())
        .fetch_one(&mut c)
        .await
        .unwrap();
    }
    let mut lines = vec![
        format!(
            "soak: {nights} night(s) × {} companies × {n} customers, 3 processes each, seed {seed}, {:.0} s",
            companies.len(),
            started.elapsed().as_secs_f64()
        ),
        "| fault | nights |".into(),
        "|---|---:|".into(),
    ];
    for (k, v) in &table {
        lines.push(format!("| {k} | {v} |"));
    }
    lines.push(format!(
        "corrections during runs {corrections}, shards taken over {takeovers}, late writes refused {refused}, bills compared {compared}, differences {differences}"
    ));
    println!("{}", lines.join("\n"));
    assert!(
        failures.is_empty(),
        "{}\n\n{}",
        lines.join("\n"),
        failures.join("\n\n")
    );
    assert_eq!(differences, 0);
    drop_database(&faults_db).await;
    drop_database(&reference_db).await;
}
