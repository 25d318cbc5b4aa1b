//! The customer directory's benchmark of BENCHMARKS.md (`./dev bench-directory`).
//!
//! One company of generated customers (a million by default) with a profile each: an account
//! number, a name from common surnames, an 11-digit mobile number and an address in one of 500
//! communities (20 buildings × 6 units × 17 rooms). On PostgreSQL and on SQLite, side by side:
//! the profiles import (what `heatbill import profiles` does), then searches a cashier makes at
//! the counter, each of a random existing customer, one at a time: by account number, by the
//! phone's last four digits, by name (a surname and the first given character), and by address
//! down to the unit. Latency p50 / p99 of the store's search (what the API and the CLI call).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;
use heatbill_runtime::directory::Search;
use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::model::{CompanySpec, ImportKind, Season};
use heatbill_runtime::settings::ImportSettings;
use heatbill_runtime::store::{self, prelude::*};

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Customers.
    #[arg(long, default_value_t = 1_000_000)]
    customers: usize,
    /// Searches of each kind.
    #[arg(long, default_value_t = 1_000)]
    searches: usize,
    /// A PostgreSQL database the benchmark may create databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
}

const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
const GIVEN: &str = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志文红梅玉兰";

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Person {
    account_no: String,
    name: String,
    phone: String,
    community: String,
    building: u32,
    unit: u32,
    room: u32,
}

fn people(n: usize) -> Vec<Person> {
    let surnames: Vec<char> = SURNAMES.chars().collect();
    let given: Vec<char> = GIVEN.chars().collect();
    let mut rng = Rng(0x005e_ed0f_d1ec_7041);
    (0..n)
        .map(|i| {
            let mut name = String::new();
            name.push(surnames[rng.below(surnames.len())]);
            for _ in 0..1 + rng.below(2) {
                name.push(given[rng.below(given.len())]);
            }
            // 500 communities × 20 buildings × 6 units × 17 rooms = 1.02 M addresses.
            let a = i % 1_020_000;
            Person {
                account_no: format!("HB-{i:08}"),
                name,
                phone: format!("1{}{:09}", 3 + rng.below(6), rng.next() % 1_000_000_000),
                community: format!("幸福{}小区", a / 2040),
                building: (a / 102 % 20) as u32 + 1,
                unit: (a / 17 % 6) as u32 + 1,
                room: (a % 17) as u32 + 101,
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    let n = args.customers;
    let dir = tempfile::tempdir()?;
    let who = people(n);
    let customers = dir.path().join("customers.csv");
    let profiles = dir.path().join("profiles.csv");
    {
        let mut c = std::io::BufWriter::new(std::fs::File::create(&customers)?);
        let mut p = std::io::BufWriter::new(std::fs::File::create(&profiles)?);
        writeln!(c, "customer_id,class,building_area")?;
        writeln!(
            p,
            "customer_id,account_no,name,phone,community,building,unit,room"
        )?;
        for (i, w) in who.iter().enumerate() {
            writeln!(c, "C{i:08},residential,75.00")?;
            writeln!(
                p,
                "C{i:08},{},{},{},{},{},{},{}",
                w.account_no, w.name, w.phone, w.community, w.building, w.unit, w.room
            )?;
        }
    }
    let mut backends = vec![(
        "PostgreSQL",
        heatbill_bench::fresh_database(&args.postgres, "heatbill_bench_directory").await?,
    )];
    if !args.no_sqlite {
        backends.push((
            "SQLite",
            format!("sqlite://{}", dir.path().join("bench.db").display()),
        ));
    }
    println!(
        "customer directory: {n} customers, {} searches of each kind, one at a time",
        args.searches
    );
    println!(
        "{:<11} {:<26} {:>10} {:>10} {:>10} {:>8}",
        "backend", "what", "p50 ms", "p99 ms", "total s", "found"
    );
    for (label, url) in backends {
        let store: Arc<dyn Store> = store::open(&url, 8, 60).await?;
        store.migrate().await?;
        let company = store
            .put_company(&CompanySpec {
                slug: "dir".into(),
                name: "Directory".into(),
                time_zone: "Asia/Harbin".into(),
                policies: serde_json::json!({}),
                seasons: vec![Season {
                    start: chrono::NaiveDate::from_ymd_opt(2025, 10, 20).expect("a date"),
                    end: chrono::NaiveDate::from_ymd_opt(2026, 4, 20).expect("a date"),
                }],
            })
            .await?;
        for (kind, path) in [
            (ImportKind::Customers, &customers),
            (ImportKind::Profiles, &profiles),
        ] {
            let t = Instant::now();
            let out = import::import_file(
                store.as_ref(),
                &company,
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
            if kind == ImportKind::Profiles {
                println!(
                    "{label:<11} {:<26} {:>10} {:>10} {:>10.1} {:>8}",
                    "import profiles",
                    "-",
                    "-",
                    t.elapsed().as_secs_f64(),
                    n
                );
            }
        }
        let mut rng = Rng(42);
        type Make = fn(&Person) -> Search;
        let kinds: [(&str, Make); 4] = [
            ("account number", |w| Search {
                account_no: Some(w.account_no.clone()),
                ..Search::default()
            }),
            ("phone, last 4 digits", |w| Search {
                phone_suffix: Some(w.phone[w.phone.len() - 4..].to_string()),
                ..Search::default()
            }),
            ("name, surname + 1", |w| Search {
                name: Some(w.name.chars().take(2).collect()),
                ..Search::default()
            }),
            ("address, to the unit", |w| Search {
                community: Some(w.community.clone()),
                building: Some(w.building.to_string()),
                unit: Some(w.unit.to_string()),
                ..Search::default()
            }),
        ];
        for (what, make) in kinds {
            let mut times = Vec::with_capacity(args.searches);
            let mut found = 0usize;
            let t0 = Instant::now();
            for _ in 0..args.searches {
                let w = &who[rng.below(n)];
                let mut s = make(w);
                s.limit = 20;
                let t = Instant::now();
                let r = store.search_customers(company.id, &s).await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                if r.is_empty() {
                    bail!("{what}: a search for an existing customer found nobody");
                }
                found += r.len();
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{label:<11} {what:<26} {:>10.3} {:>10.3} {:>10.1} {:>8.1}",
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                t0.elapsed().as_secs_f64(),
                found as f64 / args.searches as f64
            );
        }
    }
    Ok(())
}
