//! The daily-run benchmark of BENCHMARKS.md (`./dev bench-run`).
//!
//! One invocation measures, side by side on the same PostgreSQL server and the same generated
//! company (the demo's customer mix, the reference chain with Harbin's figures):
//!
//! - **import**: each company's customers file through `heatbill import`'s code path;
//! - **run**: `heatbill run` for 100 k, 300 k and 1 M customers (by default), each in a child
//!   process of its own, so its peak memory (VmHWM) is its own;
//! - **re-run**: the same run again with nothing changed (it reads no customer), and again with
//!   `--verify` (every customer's input digest compared with its bill's);
//! - **floor**: `COPY` of the 1 M run's own bill rows into the same table, nothing else;
//! - **naive**: what billing systems still do, on a sample: one query per customer per input,
//!   the engine called per customer, one `INSERT` per bill, extrapolated to the company;
//! - **SQLite**: the largest company's run and `--verify` re-run on the embedded default.
//!
//! It prints one Markdown table and the ratios the issue asks for.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Parser;
use heatbill_engine::{DayInput, Engine, EngineConfig, Evaluator};
use heatbill_runtime::company::{self, CompanyFile, Components};
use heatbill_runtime::demo;
use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::model::ImportKind;
use heatbill_runtime::run;
use heatbill_runtime::services::Services;
use heatbill_runtime::settings::{ImportSettings, Settings};
use heatbill_runtime::store::{self, prelude::*};
use serde_json::json;
use sqlx::Row;

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Company sizes to run, in customers (the largest is also used for the floor, the naive
    /// sample and SQLite).
    #[arg(long, value_delimiter = ',', default_value = "100000,300000,1000000")]
    sizes: Vec<usize>,
    /// Customers billed the naive way (one query per input, one INSERT per bill).
    #[arg(long, default_value_t = 10_000)]
    naive_sample: usize,
    /// A PostgreSQL database the benchmark may create databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Skip the SQLite run.
    #[arg(long)]
    no_sqlite: bool,
    /// Payments imported against the largest company, dated the day before the bill date,
    /// and the re-run that allocates them (0: skip).
    #[arg(long, default_value_t = 100_000)]
    payments: usize,
    /// A size of `--sizes` billed again as a company whose season fee is on a notice due the
    /// next day: that night's run (one notice per customer read with its shard) side by side
    /// with the plain company's next night (0: skip).
    #[arg(long, default_value_t = 300_000)]
    notices: usize,
    /// Customers whose season notice is projected (the chain run over the 183 days of the
    /// season), timed (0: skip).
    #[arg(long, default_value_t = 10_000)]
    project: usize,
    /// The bill date.
    #[arg(long, default_value = "2026-01-15")]
    date: NaiveDate,
    /// The built components (default: this checkout's plugins/ build output).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/target/wasm32-wasip2/release"))]
    plugins: PathBuf,
    /// Internal: run one company's day in this process and print its figures as JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: the database of `--child`.
    #[arg(long, hide = true)]
    database: Option<String>,
    /// Internal: `--child` compares every customer's inputs (`heatbill run --verify`).
    #[arg(long, hide = true)]
    verify: bool,
}

fn engine() -> Result<Engine> {
    let config = EngineConfig {
        cache_dir: std::env::var_os("HEATBILL_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| Some(std::env::temp_dir().join("heatbill-bench-cache"))),
        ..EngineConfig::default()
    };
    Ok(Engine::new(config)?)
}

/// The peak resident memory of this process so far, in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `--child`: one run in this process.
async fn child(company: &str, database: &str, date: NaiveDate, verify: bool) -> Result<()> {
    let engine = engine()?;
    let mut settings = Settings::load(None)?;
    settings.database.url = database.to_string();
    settings.run.always_compare = verify;
    let services = Services::connect(&settings).await?;
    let env = run::Env::new(services, engine, settings);
    let r = run::run(&env, company, date, |_| {}).await?;
    println!(
        "{}",
        json!({
            "seconds": r.seconds,
            "customers": r.this_process.customers,
            "written": r.this_process.written + r.this_process.revised,
            "unchanged": r.this_process.unchanged,
            "parked": r.this_process.parked,
            "peak_rss_kb": peak_rss_kb(),
        })
    );
    Ok(())
}

/// Runs one company's day in a child process; its figures.
fn measure(
    company: &str,
    database: &str,
    date: NaiveDate,
    verify: bool,
) -> Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", company, "--database", database])
        .args(["--date", &date.to_string()]);
    if verify {
        cmd.arg("--verify");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "the run of {company} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Creates a company of `n` customers in `store` through the import path; the seconds the
/// customers file took.
async fn populate(
    store: &dyn Store,
    components: &Components,
    slug: &str,
    n: usize,
    date: NaiveDate,
) -> Result<f64> {
    populate_with(store, components, slug, n, date, "").await
}

/// A season notice issued on October 1st, due on `due` (MM-DD): the billing policy of the
/// notice measurements.
fn season_policy(due: &str) -> String {
    format!(
        "[policies.billing]\n[[policies.billing.rules]]\nperiod = \"season\"\nissue = \"10-01\"\n\
         due = \"{due}\"\n"
    )
}

/// [`populate`], with `policies` (TOML tables) added to the company file.
async fn populate_with(
    store: &dyn Store,
    components: &Components,
    slug: &str,
    n: usize,
    date: NaiveDate,
    policies: &str,
) -> Result<f64> {
    let text =
        demo::reference_company(slug).replacen("[[season]]", &format!("{policies}[[season]]"), 1);
    let file = CompanyFile::parse(&text).map_err(anyhow::Error::msg)?;
    let applied = company::apply(store, &file, components).await?;
    let dir = tempfile::tempdir()?;
    let files = demo::write_files(dir.path(), n, date)?;
    let mut customers_secs = 0.0;
    for (kind, path) in [
        (ImportKind::Customers, &files.customers),
        (ImportKind::Readings, &files.readings),
        (ImportKind::Temperatures, &files.temperatures),
        (ImportKind::Balances, &files.balances),
        (ImportKind::Payments, &files.payments),
    ] {
        let t = Instant::now();
        let out = import::import_file(
            store,
            &applied.company,
            kind,
            path,
            &ImportSettings::default(),
        )
        .await?;
        if let ImportOutcome::Refused { errors, .. } = out {
            bail!(
                "the generated {kind} file was refused: {:?}",
                errors.first()
            );
        }
        if kind == ImportKind::Customers {
            customers_secs = t.elapsed().as_secs_f64();
        }
    }
    Ok(customers_secs)
}

/// COPY of a company's bill rows for `date` into the same table under another company id,
/// with nothing else done: the floor of persisting bills. Rows, and seconds by a direct COPY and
/// through a staging table.
async fn floor(url: &str, company_id: i32, date: NaiveDate) -> Result<(u64, f64, f64)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    const COLS: &str = "bill_date, customer_id, version, status, run_id, chain_version_id, \
        inputs, total, customer_total, government_total, employer_total, principal, \
        charged_before, paid_before, arrears, arrears_since, lines, reason, error";
    let mut rows = Vec::new();
    {
        use futures::StreamExt;
        let mut out = conn
            .copy_out_raw(&format!(
                "COPY (SELECT 999999, {COLS} FROM bills WHERE company_id = {company_id} \
                 AND bill_date = '{date}') TO STDOUT"
            ))
            .await?;
        while let Some(chunk) = out.next().await {
            rows.extend_from_slice(&chunk?);
        }
    }
    let n = rows.iter().filter(|b| **b == b'\n').count() as u64;
    // Alternated, twice each, the best of each kept: the direct COPY, and the way the run
    // writes (COPY into a private staging table, then INSERT … SELECT, so that a writer paused
    // mid-COPY holds no lock; docs/scaling.md).
    let (mut direct, mut staged) = (f64::MAX, f64::MAX);
    for round in 0..4 {
        let t = Instant::now();
        let mut tx = conn.begin().await?;
        if round % 2 == 0 {
            let mut copy = tx
                .copy_in_raw(&format!("COPY bills (company_id, {COLS}) FROM STDIN"))
                .await?;
            copy.send(rows.clone()).await?;
            copy.finish().await?;
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TEMPORARY TABLE bills_stage ON COMMIT DROP AS
                 SELECT company_id, {COLS} FROM bills WITH NO DATA"
            )))
            .execute(&mut *tx)
            .await?;
            let mut copy = tx
                .copy_in_raw(&format!("COPY bills_stage (company_id, {COLS}) FROM STDIN"))
                .await?;
            copy.send(rows.clone()).await?;
            copy.finish().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO bills (company_id, {COLS}) SELECT company_id, {COLS} FROM bills_stage"
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let secs = t.elapsed().as_secs_f64();
        if round % 2 == 0 {
            direct = direct.min(secs);
        } else {
            staged = staged.min(secs);
        }
        sqlx::query("DELETE FROM bills WHERE company_id = 999999")
            .execute(&mut conn)
            .await?;
        sqlx::query("VACUUM bills").execute(&mut conn).await?;
    }
    Ok((n, direct, staged))
}

/// The naive way, on the first `sample` customers of a company, for the day after `date`:
/// every input read with a query of its own, the engine called for one customer at a time,
/// each bill written with one INSERT. Bills written and seconds.
async fn naive(
    url: &str,
    engine: &Engine,
    services: &Services,
    slug: &str,
    date: NaiveDate,
    sample: usize,
) -> Result<(u64, f64)> {
    use sqlx::Connection;
    let company = services.store.company(slug).await?;
    let (_, chain) = run::chain_for(services, engine, &company, date).await?;
    let day = date.succ_opt().expect("a next day");
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let ids: Vec<String> = (0..sample).map(demo::customer_id).collect();
    let engine2 = engine.clone();
    // The evaluator lives on a thread of its own (plugin code never runs on async threads);
    // customers go to it one at a time.
    let (tx, rx) = std::sync::mpsc::channel::<(DayInput, tokio::sync::oneshot::Sender<_>)>();
    let worker = std::thread::spawn(move || {
        let mut ev = Evaluator::new(&engine2, chain);
        for (input, reply) in rx {
            let _ = reply.send(ev.evaluate(&[input]).pop().expect("one result"));
        }
    });
    let t = Instant::now();
    let mut written = 0;
    for id in &ids {
        let c = sqlx::query(
            "SELECT class, status, metered, low_income, building_area::text, usable_area::text,
                    ceiling_height::text
             FROM customer_versions WHERE company_id = $1 AND customer_id = $2
               AND valid_from <= $3 ORDER BY valid_from DESC LIMIT 1",
        )
        .bind(company.id)
        .bind(id)
        .bind(day)
        .fetch_one(&mut conn)
        .await?;
        let heat: Option<String> = sqlx::query_scalar(
            "SELECT heat_gj::text FROM readings WHERE company_id = $1 AND customer_id = $2 AND day = $3",
        )
        .bind(company.id)
        .bind(id)
        .bind(day)
        .fetch_optional(&mut conn)
        .await?;
        let temp: Option<String> = sqlx::query_scalar(
            "SELECT celsius::text FROM temperatures WHERE company_id = $1 AND customer_id = $2 AND day = $3",
        )
        .bind(company.id)
        .bind(id)
        .bind(day)
        .fetch_optional(&mut conn)
        .await?;
        let prev: Option<(String, String)> = sqlx::query_as(
            "SELECT charged_before::text, principal::text FROM bills
             WHERE company_id = $1 AND customer_id = $2 AND bill_date = $3",
        )
        .bind(company.id)
        .bind(id)
        .bind(date)
        .fetch_optional(&mut conn)
        .await?;
        let paid: Option<String> = sqlx::query_scalar(
            "SELECT sum(amount)::text FROM account_entries WHERE company_id = $1 AND customer_id = $2 AND on_date < $3",
        )
        .bind(company.id)
        .bind(id)
        .bind(day)
        .fetch_one(&mut conn)
        .await?;
        let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap_or_default();
        let mut input = DayInput::new(id.as_str(), day);
        input.class =
            heatbill_runtime::model::parse_class(c.try_get::<&str, _>(0)?).unwrap_or_default();
        input.status =
            heatbill_runtime::model::parse_status(c.try_get::<&str, _>(1)?).unwrap_or_default();
        input.metered = c.try_get(2)?;
        input.low_income = c.try_get(3)?;
        input.building_area = dec(c.try_get::<&str, _>(4)?);
        input.usable_area = c.try_get::<Option<&str>, _>(5)?.map(dec);
        input.ceiling_height = c.try_get::<Option<&str>, _>(6)?.map(dec);
        input.heat = heat.as_deref().map(dec);
        input.indoor_temperature = temp.as_deref().map(dec);
        let charged = prev
            .as_ref()
            .map(|(c, p)| dec(c) + dec(p))
            .unwrap_or_default();
        input.arrears = (charged - paid.as_deref().map(dec).unwrap_or_default())
            .max(rust_decimal::Decimal::ZERO);
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send((input, reply))?;
        let Ok(bill) = answer.await? else { continue };
        let lines = serde_json::to_string(
            &bill
                .lines
                .iter()
                .map(|l| {
                    (
                        l.code(),
                        l.quantity,
                        l.unit_price,
                        l.amount,
                        l.payer.as_str(),
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        sqlx::query(
            "INSERT INTO bills (company_id, bill_date, customer_id, version, status, run_id,
                 chain_version_id, inputs, total, customer_total, government_total,
                 employer_total, principal, charged_before, paid_before, arrears, lines)
             VALUES ($1, $2, $3, 1, 'billed', 0, 0, '\\x00', $4, $5, $6, $7, $8, 0, 0, 0, $9)",
        )
        .bind(company.id)
        .bind(day)
        .bind(id)
        .bind(bill.total)
        .bind(bill.by_payer.customer)
        .bind(bill.by_payer.government)
        .bind(bill.by_payer.employer)
        .bind(bill.by_payer.customer)
        .bind(&lines)
        .execute(&mut conn)
        .await?;
        written += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(tx);
    let _ = worker.join();
    sqlx::query("DELETE FROM bills WHERE company_id = $1 AND bill_date = $2")
        .bind(company.id)
        .bind(day)
        .execute(&mut conn)
        .await?;
    Ok((written, secs))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(company) = &args.child {
        let db = args
            .database
            .as_deref()
            .context("--child needs --database")?;
        return rt.block_on(child(company, db, args.date, args.verify));
    }
    let engine = engine()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.plugins)
        .with_context(|| {
            format!(
                "no built plugins in {}: run ./dev plugins",
                args.plugins.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    let components = Components::load(&engine, &files)?;
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    let largest = *sizes.last().context("--sizes is empty")?;
    rt.block_on(async {
        let url = heatbill_bench::fresh_database(&args.postgres, "heatbill_bench").await?;
        let store: Arc<dyn Store> = store::open(&url, 8, 60).await?;
        store.migrate().await?;
        let mut table = Vec::new();
        let mut run_secs = std::collections::BTreeMap::new();
        for &n in &sizes {
            let slug = format!("bench-{n}");
            let import = populate(store.as_ref(), &components, &slug, n, args.date).await?;
            table.push(format!(
                "| import customers (PostgreSQL) | {n} | {import:.2} | {:.0} | | |",
                n as f64 / import
            ));
            let first = measure(&slug, &url, args.date, false)?;
            let again = measure(&slug, &url, args.date, false)?;
            let compared = measure(&slug, &url, args.date, true)?;
            let secs = |v: &serde_json::Value| v["seconds"].as_f64().unwrap_or(f64::NAN);
            let (s1, s2, s3) = (secs(&first), secs(&again), secs(&compared));
            run_secs.insert(n, (s1, s2, s3));
            table.push(format!(
                "| run (PostgreSQL) | {n} | {s1:.2} | {:.0} | {} MiB | {} bills written |",
                n as f64 / s1,
                first["peak_rss_kb"].as_u64().unwrap_or(0) / 1024,
                first["written"]
            ));
            table.push(format!(
                "| re-run, nothing changed (PostgreSQL) | {n} | {s2:.3} | | {} MiB | {} written, {} unchanged: no customer read |",
                again["peak_rss_kb"].as_u64().unwrap_or(0) / 1024,
                again["written"],
                again["unchanged"]
            ));
            table.push(format!(
                "| re-run --verify: every digest compared (PostgreSQL) | {n} | {s3:.2} | {:.0} | {} MiB | {} written, {} unchanged |",
                n as f64 / s3,
                compared["peak_rss_kb"].as_u64().unwrap_or(0) / 1024,
                compared["written"],
                compared["unchanged"]
            ));
        }
        // Measured before the floor and the naive sample, whose deleted rows would count.
        let part = format!("bills_{}", args.date.format("%Y_%m"));
        let pg = store::postgres::PgStore::connect(&url, 2, std::time::Duration::from_secs(60)).await?;
        let (bytes, count): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT pg_total_relation_size('{part}'), (SELECT count(*) FROM {part})"
        )))
        .fetch_one(pg.pool())
        .await?;

        let company = store.company(&format!("bench-{largest}")).await?;
        let (rows, floor_secs, staged_secs) = floor(&url, company.id, args.date).await?;
        table.push(format!(
            "| floor: COPY of the same bill rows, nothing else (PostgreSQL) | {rows} | {floor_secs:.2} | {:.0} | | |",
            rows as f64 / floor_secs
        ));
        table.push(format!(
            "| floor through a staging table: COPY into it, INSERT … SELECT (the run's write) | {rows} | {staged_secs:.2} | {:.0} | | {:.2}× the direct COPY |",
            rows as f64 / staged_secs,
            staged_secs / floor_secs
        ));
        let services = Services::embedded(store.clone(), &Default::default());
        let (naive_n, naive_secs) = naive(
            &url,
            &engine,
            &services,
            &format!("bench-{largest}"),
            args.date,
            args.naive_sample.min(largest),
        )
        .await?;
        let naive_rate = naive_n as f64 / naive_secs;
        table.push(format!(
            "| naive: a query per input, an INSERT per bill (PostgreSQL) | {naive_n} | {naive_secs:.2} | {naive_rate:.0} | | extrapolated to {largest}: {:.0} s |",
            largest as f64 / naive_rate
        ));
        // (After the naive sample, which bills the day after the date and deletes it again.)
        // What is due when: the plain company's next night against the same company billed by
        // notice on the night its season notice falls due (every customer's notice read with
        // its shard, `due_through` carried, arrears from what fell due).
        let mut notice_ratio = None;
        if args.notices > 0 {
            let m = args.notices;
            if !sizes.contains(&m) {
                bail!("--notices {m} is not one of --sizes");
            }
            let next = args.date.succ_opt().context("a date after the bill date")?;
            let slug = format!("bench-notices-{m}");
            let due = next.format("%m-%d").to_string();
            populate_with(store.as_ref(), &components, &slug, m, args.date, &season_policy(&due))
                .await?;
            let c = store.company(&slug).await?;
            let pg = store::postgres::PgStore::connect(&url, 2, std::time::Duration::from_secs(60)).await?;
            // The season's notices, as the night of October 1st would have issued them.
            sqlx::query(
                "INSERT INTO notice_periods (company_id, kind, period_start, period_end, issued_on, state)
                 VALUES ($1, 'season', '2025-10-20', '2026-04-20', '2025-10-01', 'projected')",
            )
            .bind(c.id)
            .execute(pg.pool())
            .await?;
            sqlx::query(
                "INSERT INTO notices (company_id, customer_id, kind, period_start, period_end, seq,
                     issued_on, due_on, amount, lines, projected)
                 SELECT DISTINCT $1, customer_id, 'season', date '2025-10-20', date '2026-04-20',
                     0, date '2025-10-01', $2, 2299.20,
                     '[{\"code\":\"heat\",\"description\":\"采暖费\",\"amount\":\"2299.20\"}]', true
                 FROM customer_versions WHERE company_id = $1",
            )
            .bind(c.id)
            .bind(next)
            .execute(pg.pool())
            .await?;
            measure(&slug, &url, args.date, false)?;
            let plain = measure(&format!("bench-{m}"), &url, next, false)?;
            let noticed = measure(&slug, &url, next, false)?;
            let secs = |v: &serde_json::Value| v["seconds"].as_f64().unwrap_or(f64::NAN);
            let (p, q) = (secs(&plain), secs(&noticed));
            table.push(format!(
                "| next night, every charge due on its day (PostgreSQL) | {m} | {p:.2} | {:.0} | {} MiB | |",
                m as f64 / p,
                plain["peak_rss_kb"].as_u64().unwrap_or(0) / 1024
            ));
            table.push(format!(
                "| next night, by notice: the season's notices fall due (PostgreSQL) | {m} | {q:.2} | {:.0} | {} MiB | {m} notices read |",
                m as f64 / q,
                noticed["peak_rss_kb"].as_u64().unwrap_or(0) / 1024
            ));
            notice_ratio = Some((m, q / p));
        }
        // A season notice projected: the chain over every day of the season for each customer.
        if args.project > 0 {
            let k = args.project;
            let slug = format!("bench-project-{k}");
            populate_with(store.as_ref(), &components, &slug, k, args.date, &season_policy("12-31"))
                .await?;
            let mut settings = Settings::load(None)?;
            settings.database.url = url.clone();
            let services = Services::connect(&settings).await?;
            let env = run::Env::new(services, engine.clone(), settings);
            let c = store.company(&slug).await?;
            let policy = heatbill_runtime::notices::BillingPolicy::of(&c.policies)
                .map_err(anyhow::Error::msg)?
                .context("the policy")?;
            let t = Instant::now();
            let issued = run::notices::issue(&env, &c, &policy, "2025-10-01".parse()?).await?;
            let secs = t.elapsed().as_secs_f64();
            table.push(format!(
                "| season notices projected (183 days each) | {k} | {secs:.2} | {:.0} customer-days | | {} |",
                k as f64 * 183.0 / secs,
                issued.join("; ")
            ));
        }
        // The government's share of the largest company's day: its settlement list and the
        // receivable, as the API and CLI read them.
        {
            let t = Instant::now();
            let list = store.settlement(company.id, args.date, args.date).await?;
            let list_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let r = store.government_receivable(company.id, args.date).await?;
            let receivable_secs = t.elapsed().as_secs_f64();
            table.push(format!(
                "| settlement list of the day (PostgreSQL) | {largest} | {list_secs:.2} | {:.0} | | {} customers with a government share, {} yuan |",
                largest as f64 / list_secs,
                list.len(),
                r.billed
            ));
            table.push(format!(
                "| government receivable (PostgreSQL) | {largest} | {receivable_secs:.2} | | | billed {}, outstanding {} |",
                r.billed, r.outstanding
            ));
        }
        // The allocation of a day's payments: N payments imported into the ledger, dated the
        // day before the bill date (which makes the date stale), and the re-run of the date
        // that applies them: every customer's balance read from the ledger and allocated, the
        // changed bills written as new versions.
        if args.payments > 0 {
            let slug = format!("bench-{largest}");
            let n = args.payments.min(largest);
            let step = largest / n;
            let paid_on = args.date.pred_opt().context("a day before")?;
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("payments.csv");
            let mut text = String::from("payment_id,customer_id,paid_on,amount\n");
            for i in 0..n {
                text.push_str(&format!(
                    "A{i:07},{},{paid_on},{}.{:02}\n",
                    demo::customer_id(i * step),
                    20 + i % 180,
                    i % 100
                ));
            }
            std::fs::write(&path, text)?;
            let t = Instant::now();
            let out = import::import_file(
                store.as_ref(),
                &company,
                ImportKind::Payments,
                &path,
                &ImportSettings::default(),
            )
            .await?;
            let import_secs = t.elapsed().as_secs_f64();
            if let ImportOutcome::Refused { errors, .. } = out {
                bail!("the generated payments were refused: {:?}", errors.first());
            }
            let applied = measure(&slug, &url, args.date, false)?;
            let applied_secs = applied["seconds"].as_f64().unwrap_or(f64::NAN);
            table.push(format!(
                "| import {n} payments into the ledger (PostgreSQL) | {n} | {import_secs:.2} | {:.0} | | one entry each, idempotent by transaction id |",
                n as f64 / import_secs
            ));
            table.push(format!(
                "| re-run allocating them (PostgreSQL) | {largest} | {applied_secs:.2} | {:.0} | {} MiB | {} bills revised, {} unchanged |",
                largest as f64 / applied_secs,
                applied["peak_rss_kb"].as_u64().unwrap_or(0) / 1024,
                applied["written"],
                applied["unchanged"]
            ));
        }
        let mut sqlite = None;
        if !args.no_sqlite {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let lite = store::open(&url, 8, 60).await?;
            lite.migrate().await?;
            let slug = format!("bench-{largest}");
            let import = populate(lite.as_ref(), &components, &slug, largest, args.date).await?;
            let first = measure(&slug, &url, args.date, false)?;
            let again = measure(&slug, &url, args.date, true)?;
            let (s1, s2) = (first["seconds"].as_f64().unwrap(), again["seconds"].as_f64().unwrap());
            table.push(format!(
                "| import customers (SQLite) | {largest} | {import:.2} | {:.0} | | |",
                largest as f64 / import
            ));
            table.push(format!(
                "| run (SQLite) | {largest} | {s1:.2} | {:.0} | {} MiB | {} bills written |",
                largest as f64 / s1,
                first["peak_rss_kb"].as_u64().unwrap_or(0) / 1024,
                first["written"]
            ));
            table.push(format!(
                "| re-run --verify (SQLite) | {largest} | {s2:.2} | {:.0} | {} MiB | {} unchanged |",
                largest as f64 / s2,
                again["peak_rss_kb"].as_u64().unwrap_or(0) / 1024,
                again["unchanged"]
            ));
            sqlite = Some(s1);
        }

        println!("| measurement | customers | seconds | per second | peak RSS | notes |");
        println!("|---|---:|---:|---:|---:|---|");
        for row in &table {
            println!("{row}");
        }
        let (run1, rerun, compared) = run_secs[&largest];
        println!();
        println!(
            "- run of {largest} ÷ floor: {:.2} (goal ≤ 2); run: {run1:.2} s (goal ≤ 20 s)",
            run1 / floor_secs
        );
        println!(
            "- naive, extrapolated ÷ run: {:.0}× (goal ≥ 100×)",
            (largest as f64 / naive_rate) / run1
        );
        println!(
            "- re-run ÷ run: {:.4} (goal ≤ 0.33); re-run --verify ÷ run: {:.2}",
            rerun / run1,
            compared / run1
        );
        if let Some(s) = sqlite {
            println!("- SQLite run ÷ PostgreSQL run: {:.2}", s / run1);
        }
        if let Some((m, r)) = notice_ratio {
            println!(
                "- {m} customers, the night notices fall due ÷ the plain next night: {r:.3} (goal ≤ 1.10)"
            );
        }
        let per = |n: usize| run_secs[&n].0 / n as f64 * 1e6;
        println!(
            "- µs per customer by size: {}",
            sizes
                .iter()
                .map(|&n| format!("{n}: {:.2}", per(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "- bills partition {part}: {bytes} bytes for {count} rows (table, indexes, TOAST): {} bytes per bill",
            bytes / count.max(1)
        );
        Ok(())
    })
}
