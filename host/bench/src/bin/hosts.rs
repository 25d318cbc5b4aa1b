//! The many-hosts benchmark of BENCHMARKS.md (`./dev bench-hosts`): Runtime II's measurements,
//! side by side in one invocation on PostgreSQL and Redis.
//!
//! - **cache modes**: the 1 M company's days run with each shard's customers read from
//!   PostgreSQL (no cache), through a cold Redis cache, and through a warm one (after
//!   `heatbill warm`); and `--verify` re-runs, which read every customer, in the three modes;
//! - **processes**: days run by 1, 2 and 3 `heatbill run` processes at once on this machine,
//!   with each process's time spent claiming shards and renewing leases;
//! - **contention**: Redis lock and release latency with 32 tasks on one key; shard claims per
//!   second and their latency with 8 claimers on one run of 2,000 shards.
//!
//! Every `heatbill` process is the real binary (`target/release/heatbill`, built by
//! `./dev bench-hosts`), started as a child.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use heatbill_runtime::coord::Coord;
use heatbill_runtime::coord::redis::{Redis, RedisCoord};
use heatbill_runtime::demo;
use heatbill_runtime::settings::RedisSettings;
use heatbill_runtime::store::{self, prelude::*};
use serde_json::Value;

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Customers of the company.
    #[arg(long, default_value_t = 1_000_000)]
    customers: usize,
    /// A PostgreSQL database the benchmark may create databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The Redis server.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

struct Bench {
    heatbill: PathBuf,
    db: String,
    redis: String,
    prefix: String,
    dir: tempfile::TempDir,
}

impl Bench {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.heatbill);
        c.args(args)
            .args(["--database", &self.db])
            .env("HEATBILL_REDIS_URL", &self.redis)
            .env("HEATBILL_REDIS__PREFIX", &self.prefix)
            .env("HEATBILL_CACHE_DIR", self.dir.path().join("cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output()?;
        if !out.status.success() {
            bail!(
                "heatbill {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `heatbill run --json` of a date by `n` processes at once; their reports and the wall
    /// time until the last one ended.
    fn run(&self, date: &str, n: usize, env: &[(&str, &str)]) -> Result<(Vec<Value>, f64)> {
        let t = Instant::now();
        let children: Vec<_> = (0..n)
            .map(|i| {
                let mut c =
                    self.cmd(&["run", "--company", demo::COMPANY, "--date", date, "--json"]);
                c.env("HOSTNAME", format!("bench-{i}"));
                for (k, v) in env {
                    c.env(k, v);
                }
                c.spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut reports = Vec::new();
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "a run of {date} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            reports.push(serde_json::from_slice(&out.stdout)?);
        }
        Ok((reports, t.elapsed().as_secs_f64()))
    }

    fn flush_redis(&self) -> Result<()> {
        let out = Command::new("redis-cli")
            .args([
                "-u",
                &self.redis,
                "--scan",
                "--pattern",
                &format!("{}:*", self.prefix),
            ])
            .output()?;
        for key in String::from_utf8_lossy(&out.stdout).lines() {
            Command::new("redis-cli")
                .args(["-u", &self.redis, "DEL", key])
                .output()?;
        }
        Ok(())
    }
}

fn secs(r: &Value) -> f64 {
    r["seconds"].as_f64().unwrap_or(f64::NAN)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let heatbill = std::env::current_exe()?.with_file_name("heatbill");
    if !heatbill.exists() {
        bail!(
            "{} is missing: build it with cargo build --release -p heatbill",
            heatbill.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&args.postgres)
            .await
            .context("PostgreSQL")?;
        for sql in [
            "DROP DATABASE IF EXISTS heatbill_bench_hosts WITH (FORCE)",
            "CREATE DATABASE heatbill_bench_hosts",
        ] {
            sqlx::query(sql).execute(&mut admin).await?;
        }
        let base = args.postgres.rsplit_once('/').map_or(args.postgres.as_str(), |(b, _)| b);
        let bench = Bench {
            heatbill,
            db: format!("{base}/heatbill_bench_hosts"),
            redis: args.redis.clone(),
            prefix: format!("heatbill-bench-{}", std::process::id()),
            dir: tempfile::tempdir()?,
        };
        let n = args.customers;

        // The company, through the import path.
        let company_file = bench.dir.path().join("company.toml");
        std::fs::write(&company_file, demo::reference_company(demo::COMPANY))?;
        let files = demo::write_files(bench.dir.path(), n, "2026-01-15".parse()?)?;
        let plugins = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins");
        bench.ok(&["migrate"], &[])?;
        bench.ok(
            &["company", "apply", company_file.to_str().unwrap(), "--plugins", plugins],
            &[],
        )?;
        for (kind, path) in [
            ("customers", &files.customers),
            ("readings", &files.readings),
            ("temperatures", &files.temperatures),
            ("balances", &files.balances),
            ("payments", &files.payments),
        ] {
            bench.ok(
                &["import", kind, path.to_str().unwrap(), "--company", demo::COMPANY],
                &[],
            )?;
        }
        let mut table = Vec::new();
        let row = |what: &str, r: &Value, wall: f64| {
            format!(
                "| {what} | {:.2} | {:.0} | {} / {} / {} | {} / {} | {:.3} s, {} claims |",
                wall,
                n as f64 / wall,
                r["counts"]["written"],
                r["counts"]["unchanged"],
                r["counts"]["parked"],
                r["cache"]["hits"],
                r["cache"]["misses"],
                r["coordination_seconds"].as_f64().unwrap_or(0.0),
                r["claims"]
            )
        };

        // Cache modes: first runs of following days, then --verify re-runs of the last.
        let cache = [("HEATBILL_CACHE__SHARDS", "true")];
        let (r, w) = bench.run("2026-01-15", 1, &[])?;
        table.push(row("day 1, no cache (reads the database)", &r[0], w));
        bench.flush_redis()?;
        let (r, w) = bench.run("2026-01-16", 1, &cache)?;
        table.push(row("day 2, cold cache (loads and fills it)", &r[0], w));
        let t = Instant::now();
        bench.ok(&["warm", "--company", demo::COMPANY], &cache)?;
        let warm_secs = t.elapsed().as_secs_f64();
        let (r, w) = bench.run("2026-01-17", 1, &cache)?;
        table.push(row("day 3, warm cache (after `heatbill warm`)", &r[0], w));
        let (r, w) = bench.run("2026-01-18", 1, &[])?;
        table.push(row("day 4, no cache", &r[0], w));
        let verify = [("HEATBILL_RUN__ALWAYS_COMPARE", "true")];
        let verify_cache = [
            ("HEATBILL_RUN__ALWAYS_COMPARE", "true"),
            ("HEATBILL_CACHE__SHARDS", "true"),
        ];
        let (r, w) = bench.run("2026-01-18", 1, &verify)?;
        table.push(row("day 4 again, --verify, no cache", &r[0], w));
        bench.flush_redis()?;
        let (r, w) = bench.run("2026-01-18", 1, &verify_cache)?;
        table.push(row("day 4 again, --verify, cold cache", &r[0], w));
        let (r, w) = bench.run("2026-01-18", 1, &verify_cache)?;
        table.push(row("day 4 again, --verify, warm cache", &r[0], w));

        // Processes sharing one run.
        let mut procs = Vec::new();
        for (k, date) in [(1, "2026-01-19"), (2, "2026-01-20"), (3, "2026-01-21")] {
            let (reports, wall) = bench.run(date, k, &[])?;
            let busy: f64 = reports.iter().map(secs).sum();
            let coord: f64 = reports
                .iter()
                .map(|r| r["coordination_seconds"].as_f64().unwrap_or(0.0))
                .sum();
            let claims: u64 = reports.iter().map(|r| r["claims"].as_u64().unwrap_or(0)).sum();
            let split: Vec<String> = reports
                .iter()
                .map(|r| r["this_process"]["customers"].to_string())
                .collect();
            procs.push(format!(
                "| {k} | {wall:.2} | {:.0} | {} | {claims} | {coord:.3} | {:.2} % |",
                n as f64 / wall,
                split.join(" + "),
                100.0 * coord / busy
            ));
        }

        // Contention: Redis locks, PostgreSQL claims.
        let redis = Redis::connect(
            &RedisSettings {
                url: Some(args.redis.clone()),
                prefix: bench.prefix.clone(),
                ..Default::default()
            },
            &args.redis,
        )
        .await?;
        let coord: Arc<dyn Coord> = Arc::new(RedisCoord::new(redis));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let coord = coord.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut got = 0;
                    for _ in 0..200 {
                        let t = Instant::now();
                        if let Some(tok) = coord
                            .try_lock("contended", Duration::from_secs(5))
                            .await
                            .unwrap()
                        {
                            got += 1;
                            coord.unlock("contended", &tok).await.unwrap();
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    (lat, got)
                })
            })
            .collect();
        let t = Instant::now();
        let mut lat = Vec::new();
        let mut got = 0;
        for task in tasks {
            let (l, g) = task.await?;
            lat.extend(l);
            got += g;
        }
        let lock_wall = t.elapsed().as_secs_f64();
        let lock_row = format!(
            "| Redis lock (SET NX PX) and release (Lua), 32 tasks, one key | {} | {:.0}/s | {:.0} µs | {:.0} µs | {got} of {} attempts got the lock |",
            lat.len(),
            lat.len() as f64 / lock_wall,
            percentile(lat.clone(), 0.5),
            percentile(lat.clone(), 0.99),
            lat.len()
        );

        let store = store::open(&bench.db, 10, 60).await?;
        let company = store.company(demo::COMPANY).await?;
        let version = store.chain_versions(company.id).await?.pop().context("a chain")?;
        let date: chrono::NaiveDate = "2026-03-01".parse()?;
        let run = store
            .open_run(company.id, date, version.id, n / 2000, "contention")
            .await?
            .run;
        // One claimer alone on another run: the cost of a claim itself.
        let solo_run = store
            .open_run(company.id, "2026-03-02".parse()?, version.id, n / 2000, "solo")
            .await?
            .run;
        let mut solo = Vec::new();
        let t = Instant::now();
        while {
            let t = Instant::now();
            let c = store
                .claim_shard(solo_run.id, "solo", Duration::from_secs(60))
                .await?;
            solo.push(t.elapsed().as_secs_f64() * 1e6);
            c.is_some()
        } {}
        let solo_wall = t.elapsed().as_secs_f64();
        let solo_row = format!(
            "| shard claim, 1 claimer alone, one run of {} shards | {} | {:.0}/s | {:.0} µs | {:.0} µs | |",
            solo_run.shard_count,
            solo.len(),
            solo.len() as f64 / solo_wall,
            percentile(solo.clone(), 0.5),
            percentile(solo.clone(), 0.99)
        );
        let claimers: Vec<_> = (0..8)
            .map(|i| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let t = Instant::now();
                        let c = store
                            .claim_shard(run.id, &format!("claimer-{i}"), Duration::from_secs(60))
                            .await
                            .unwrap();
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                        if c.is_none() {
                            return lat;
                        }
                    }
                })
            })
            .collect();
        let t = Instant::now();
        let mut lat = Vec::new();
        for c in claimers {
            lat.extend(c.await?);
        }
        let claim_wall = t.elapsed().as_secs_f64();
        let claim_row = format!(
            "| shard claim (UPDATE … FOR UPDATE SKIP LOCKED), 8 claimers, one run of {} shards | {} | {:.0}/s | {:.0} µs | {:.0} µs | every shard claimed once |",
            run.shard_count,
            lat.len(),
            lat.len() as f64 / claim_wall,
            percentile(lat.clone(), 0.5),
            percentile(lat.clone(), 0.99)
        );
        let (claimed, distinct): (i64, i64) = sqlx::query_as(
            "SELECT sum(claims), count(*) FROM run_shards WHERE run_id = $1",
        )
        .bind(run.id)
        .fetch_one(store::postgres::PgStore::connect(&bench.db, 1, Duration::from_secs(30)).await?.pool())
        .await?;
        assert_eq!(claimed, distinct, "a shard was claimed twice");
        bench.flush_redis()?;

        println!("Cache modes ({n} customers, one process; `heatbill warm` took {warm_secs:.2} s):\n");
        println!("| run | seconds | customers/s | written / unchanged / parked | cache hits / misses | claiming and leases |");
        println!("|---|---:|---:|---:|---:|---:|");
        for r in &table {
            println!("{r}");
        }
        println!("\nProcesses sharing one run (a following day each, no cache, 2 cores):\n");
        println!("| processes | seconds | customers/s | customers by process | claims | claiming and leases, s | of the processes' time |");
        println!("|---:|---:|---:|---|---:|---:|---:|");
        for r in &procs {
            println!("{r}");
        }
        println!("\nContention:\n");
        println!("| operation | operations | throughput | p50 | p99 | |");
        println!("|---|---:|---:|---:|---:|---|");
        println!("{lock_row}");
        println!("{solo_row}");
        println!("{claim_row}");
        drop(store);
        sqlx::query("DROP DATABASE IF EXISTS heatbill_bench_hosts WITH (FORCE)")
            .execute(&mut admin)
            .await?;
        Ok(())
    })
}
