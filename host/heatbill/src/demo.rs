//! `heatbill demo`: one daily run for a generated company, through the reference rule chain, on
//! every core, with a summary of what was billed.
//!
//! Until the runtime lands (storage, cache, locks), the demo is the whole nightly path minus
//! persistence: generate the customers a database would hold, cut them into batches, evaluate
//! the company's chain in the sandbox on a worker per core, and add up the bills.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Args;
use heatbill_engine::{Bill, BillError, CustomerClass, DayInput, PayerTotals, ServiceStatus};
use rust_decimal::Decimal;

use crate::cases::CaseFile;
use crate::cli::EngineArgs;
use crate::harness::{self, Catalog};
use crate::runner;

/// The demo company's rule chain: Harbin's figures from `domain.md`, in case-file format.
const DEMO_CHAIN: &str = include_str!("../demo/harbin.toml");

/// `heatbill demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many customers the company has.
    #[arg(long, default_value_t = 100_000)]
    pub customers: usize,
    /// The bill date.
    #[arg(long, default_value = "2026-01-15")]
    pub date: NaiveDate,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Customer-days per plugin call.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Where the built reference plugins are: a directory of components, or the plugins
    /// workspace (default: this checkout's `plugins/`, built by `./dev plugins`).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Another company's chain, in case-file format (default: the built-in Harbin chain).
    #[arg(long)]
    pub chain: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A small deterministic generator (SplitMix64): the same customers on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// A decimal in `[lo, hi)` with `scale` digits after the point.
    fn decimal(&mut self, lo: i64, hi: i64, scale: u32) -> Decimal {
        let span = (hi - lo) as u64 * 10u64.pow(scale);
        let units = lo * 10i64.pow(scale) + (self.next() % span) as i64;
        Decimal::new(units, scale)
    }
}

/// The customers of the generated company on `date`: mostly residential homes of 40–140 m²,
/// with the mix a northern city has (non-residential, metered, suspended, low-income, arrears,
/// indoor temperature complaints).
pub fn generate(customers: usize, date: NaiveDate) -> Vec<DayInput> {
    let mut rng = Rng(0x4845_4154_4249_4c4c);
    (0..customers)
        .map(|i| {
            let mut d = DayInput::new(format!("C{i:07}"), date);
            let residential = rng.chance(88);
            d.class = if residential {
                CustomerClass::Residential
            } else {
                CustomerClass::NonResidential
            };
            let building = if residential {
                rng.decimal(40, 140, 2)
            } else {
                rng.decimal(60, 2000, 2)
            };
            d.building_area = building;
            d.usable_area = Some((building * Decimal::new(80, 2)).round_dp(2));
            d.ceiling_height = Some(if residential {
                Decimal::new(28, 1)
            } else {
                rng.decimal(3, 5, 1)
            });
            d.metered = rng.chance(15);
            if d.metered {
                // About 0.3–1.2 MJ per m² per day in January.
                d.heat =
                    Some((building * rng.decimal(3, 12, 1) / Decimal::new(10_000, 0)).round_dp(3));
            }
            if rng.chance(4) {
                d.status = ServiceStatus::Suspended;
            }
            d.low_income = residential && rng.chance(5);
            if rng.chance(12) {
                d.arrears = rng.decimal(100, 5000, 2);
                d.arrears_since = Some(date - chrono::Days::new(30));
            }
            if rng.chance(3) {
                d.indoor_temperature = Some(rng.decimal(14, 18, 1));
            }
            d
        })
        .collect()
}

/// What a run added up to.
#[derive(Debug, Default)]
struct Summary {
    bills: usize,
    by_code: BTreeMap<String, Decimal>,
    totals: PayerTotals,
    errors: BTreeMap<String, usize>,
    first_errors: Vec<String>,
}

impl Summary {
    fn add(&mut self, r: Result<Bill, BillError>) {
        match r {
            Ok(b) => {
                self.bills += 1;
                for l in &b.lines {
                    // By code and payer: a subsidy is −x for the customer and +x for the
                    // government, which would sum to 0.00 under one code.
                    let key = match l.payer {
                        heatbill_engine::Payer::Customer => l.code().to_string(),
                        p => format!("{} ({})", l.code(), p.as_str()),
                    };
                    *self.by_code.entry(key).or_default() += l.amount;
                }
                self.totals.customer += b.by_payer.customer;
                self.totals.government += b.by_payer.government;
                self.totals.employer += b.by_payer.employer;
            }
            Err(e) => {
                *self.errors.entry(e.kind.name().to_string()).or_default() += 1;
                if self.first_errors.len() < 5 {
                    self.first_errors.push(e.to_string());
                }
            }
        }
    }

    fn merge(&mut self, o: Summary) {
        self.bills += o.bills;
        for (k, v) in o.by_code {
            *self.by_code.entry(k).or_default() += v;
        }
        self.totals.customer += o.totals.customer;
        self.totals.government += o.totals.government;
        self.totals.employer += o.totals.employer;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for e in o.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e);
            }
        }
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let engine = harness::engine(&args.engine)?;
    let plugins = args
        .plugins
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins"));
    let catalog = Catalog::load(&engine, &plugins).with_context(|| {
        format!(
            "cannot load the reference plugins from {}: build them with `./dev plugins`",
            plugins.display()
        )
    })?;
    let file: CaseFile = match &args.chain {
        Some(p) => CaseFile::load(p)?,
        None => {
            let mut f: CaseFile = toml::from_str(DEMO_CHAIN).context("built-in demo chain")?;
            f.path = PathBuf::from("harbin.toml");
            f
        }
    };
    let chain = runner::chain(&catalog, &file)?;
    if args.customers == 0 {
        bail!("--customers must be at least 1");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let batch = args.batch.max(1);

    let t0 = Instant::now();
    let days = generate(args.customers, args.date);
    let generated = t0.elapsed();

    let chunk = days.len().div_ceil(threads);
    let t1 = Instant::now();
    let parts: Vec<Result<Summary>> = std::thread::scope(|s| {
        let handles: Vec<_> = days
            .chunks(chunk)
            .map(|part| {
                let chain = chain.clone();
                let engine = &engine;
                s.spawn(move || -> Result<Summary> {
                    let mut ev = runner::evaluator(engine, chain)?;
                    let mut sum = Summary::default();
                    for b in part.chunks(batch) {
                        for r in ev.evaluate(b) {
                            sum.add(r);
                        }
                    }
                    Ok(sum)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("demo worker panicked"))
            .collect()
    });
    let elapsed = t1.elapsed();
    let mut sum = Summary::default();
    for p in parts {
        sum.merge(p?);
    }

    let company = file.company();
    println!(
        "heatbill demo: company {company}, {} customers, bill date {}",
        args.customers, args.date
    );
    println!("chain: {}", file.chain_summary());
    println!(
        "generated the customers in {:.2} s; billed them in {:.3} s on {threads} thread(s): {:.0} customer-days/s",
        generated.as_secs_f64(),
        elapsed.as_secs_f64(),
        args.customers as f64 / elapsed.as_secs_f64()
    );
    println!();
    println!(
        "bills: {}   parked with an error: {}",
        sum.bills,
        sum.errors.values().sum::<usize>()
    );
    println!("{:<24} {:>16}", "line code (payer)", "amount (CNY)");
    for (code, amount) in &sum.by_code {
        println!("{code:<24} {amount:>16}");
    }
    println!("{:<24} {:>16}", "customers pay", sum.totals.customer);
    println!("{:<24} {:>16}", "government pays", sum.totals.government);
    if !sum.totals.employer.is_zero() {
        println!("{:<24} {:>16}", "employers pay", sum.totals.employer);
    }
    for (kind, n) in &sum.errors {
        println!("errors {kind}: {n}");
    }
    for e in &sum.first_errors {
        println!("  e.g. {e}");
    }
    Ok(ExitCode::SUCCESS)
}
