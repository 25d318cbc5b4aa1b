//! The rule-chain benchmark of BENCHMARKS.md.
//!
//! Evaluates the reference chain (season → area tariff → low-income subsidy → late fee, Harbin's
//! parameters from `plugins/cases/reference-chain.toml`) for generated customer-days, side by
//! side in one process:
//!
//! - **sandboxed**: the production engine (wasmtime, pooling allocator, epoch deadlines, output
//!   validation) running the components built from `plugins/`, one evaluator per thread, batches
//!   of `--batch` customer-days per call; the timing includes the host's whole path (lowering the
//!   input, lifting and checking the output, building the bills);
//! - **native**: the same plugin crates linked into this binary, run by the SDK's native chain
//!   runner on input already in the guest's types (so native is the rules' cost alone).
//!
//! - **sandboxed, fresh instance per call**: the same with `limits.fresh_instance_after = 1`,
//!   so that the cost of starting every call from a freshly configured instance (a purity
//!   measure; the default replaces an instance after 65,536 customer-days) is measured side by
//!   side.
//!
//! Each on one thread and on every core. It prints a Markdown table to paste into BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use heatbill_harness::{self as harness, Catalog, runner};

use heatbill_cases::CaseFile;
use heatbill_engine::{CustomerClass, DayInput, ServiceStatus};
use heatbill_runtime::company::params_json;
use heatbill_sdk::native::{self, NativeChain};
use heatbill_sdk::{CustomerDay, CustomerFlags, Date, SeasonDay, SeasonPhase, WitDecimal};

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Customer-days per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    days: usize,
    /// Customer-days per plugin call (the engine's default `limits.max_batch`).
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// How many times each measurement is repeated (interleaved); the table gives the median
    /// and the range. Single runs on a shared machine vary by ±30 %.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// The bill date.
    #[arg(long, default_value = "2026-01-15")]
    date: chrono::NaiveDate,
    /// The case file whose chain is measured.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/cases/reference-chain.toml"))]
    chain: PathBuf,
    /// The built components (default: this checkout's plugins workspace).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins"))]
    plugins: PathBuf,
    /// Threads for the "all cores" rows (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn wit(d: rust_decimal::Decimal) -> WitDecimal {
    WitDecimal::try_from(d).expect("generated decimals fit the contract")
}

fn wit_date(d: chrono::NaiveDate) -> Date {
    use chrono::Datelike;
    Date {
        year: d.year(),
        month: d.month() as u8,
        day: d.day() as u8,
    }
}

/// The guest's view of a customer-day, as the host would lower it.
fn guest_day(d: &DayInput) -> CustomerDay {
    let mut flags = CustomerFlags::empty();
    if d.metered {
        flags |= CustomerFlags::METERED;
    }
    if d.low_income {
        flags |= CustomerFlags::LOW_INCOME;
    }
    CustomerDay {
        date: wit_date(d.date),
        class: match d.class {
            CustomerClass::Residential => heatbill_sdk::CustomerClass::Residential,
            CustomerClass::NonResidential => heatbill_sdk::CustomerClass::NonResidential,
        },
        special_class: d.special_class.clone(),
        status: match d.status {
            ServiceStatus::Active => heatbill_sdk::ServiceStatus::Active,
            ServiceStatus::Suspended => heatbill_sdk::ServiceStatus::Suspended,
        },
        flags,
        building_area: wit(d.building_area),
        usable_area: d.usable_area.map(wit),
        ceiling_height: d.ceiling_height.map(wit),
        heat: d.heat.map(wit),
        indoor_temperature: d.indoor_temperature.map(wit),
        arrears: wit(d.arrears),
        arrears_since: d.arrears_since.map(wit_date),
        season: d.season.map(|s| SeasonDay {
            phase: match s.phase {
                heatbill_engine::SeasonPhase::Outside => SeasonPhase::Outside,
                heatbill_engine::SeasonPhase::Regular => SeasonPhase::Regular,
                heatbill_engine::SeasonPhase::Early => SeasonPhase::Early,
                heatbill_engine::SeasonPhase::Extended => SeasonPhase::Extended,
            },
            day_index: s.day_index,
            season_days: s.season_days,
            charged: s.charged,
        }),
        tags: d.tags.clone(),
        attributes: Vec::new(),
        prior_lines: Vec::new(),
    }
}

/// The chain of the case file, configured natively from the same parameters.
fn native_chain(file: &CaseFile) -> Result<NativeChain> {
    let mut chain = NativeChain::new();
    for e in &file.chain {
        let params = params_json(&e.params).to_string();
        let rule = match e.plugin.as_str() {
            "season" => native::configure::<season::Season>(&params).map(|c| c.boxed()),
            "area-tariff" => {
                native::configure::<area_tariff::AreaTariff>(&params).map(|c| c.boxed())
            }
            "low-income-subsidy" => {
                native::configure::<low_income_subsidy::LowIncomeSubsidy>(&params)
                    .map(|c| c.boxed())
            }
            "late-fee" => native::configure::<late_fee::LateFee>(&params).map(|c| c.boxed()),
            other => bail!("the native benchmark does not link plugin {other:?}"),
        }
        .map_err(|err| anyhow::anyhow!("native configure of {}: {err:?}", e.plugin))?;
        chain.push(rule);
    }
    Ok(chain)
}

/// One measurement.
struct Row {
    mode: &'static str,
    threads: usize,
    days: usize,
    secs: f64,
    errors: usize,
}

impl Row {
    fn rate(&self) -> f64 {
        self.days as f64 / self.secs
    }
}

/// Splits `n` items into `threads` contiguous ranges.
fn ranges(n: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    let per = n.div_ceil(threads);
    (0..threads)
        .map(|t| (t * per).min(n)..((t + 1) * per).min(n))
        .collect()
}

fn run_sandboxed(
    engine: &heatbill_engine::Engine,
    chain: &std::sync::Arc<heatbill_engine::Chain>,
    days: &[DayInput],
    threads: usize,
    batch: usize,
    mode: &'static str,
) -> Result<Row> {
    // Evaluators are built (instantiated, configured) before the clock starts, as a worker's
    // are before its first shard.
    let mut evaluators = (0..threads)
        .map(|_| runner::evaluator(engine, chain.clone()))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let errors: usize = std::thread::scope(|s| {
        let handles: Vec<_> = evaluators
            .iter_mut()
            .zip(ranges(days.len(), threads))
            .map(|(ev, r)| {
                let part = &days[r];
                s.spawn(move || {
                    let mut errors = 0;
                    for b in part.chunks(batch) {
                        errors += ev.evaluate(b).iter().filter(|r| r.is_err()).count();
                    }
                    errors
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).sum()
    });
    Ok(Row {
        mode,
        threads,
        days: days.len(),
        secs: start.elapsed().as_secs_f64(),
        errors,
    })
}

fn run_native(chain: &NativeChain, days: &[CustomerDay], threads: usize, batch: usize) -> Row {
    let start = Instant::now();
    let errors: usize = std::thread::scope(|s| {
        let handles: Vec<_> = ranges(days.len(), threads)
            .into_iter()
            .map(|r| {
                let part = &days[r];
                s.spawn(move || {
                    let mut errors = 0;
                    for b in part.chunks(batch) {
                        errors += chain.evaluate(b).iter().filter(|r| r.is_err()).count();
                    }
                    errors
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).sum()
    });
    Row {
        mode: "native",
        threads,
        days: days.len(),
        secs: start.elapsed().as_secs_f64(),
        errors,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cores = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let file = CaseFile::load(&args.chain)?;
    let engine = harness::engine(&harness::EngineOptions::default())?;
    let catalog = Catalog::load(&engine, &args.plugins)
        .context("load the components: build them with `./dev plugins`")?;
    let chain = runner::chain(&catalog, &file)?;
    let native = native_chain(&file)?;
    // The same engine with a fresh instance for every call.
    let reused_config = std::env::temp_dir().join("heatbill-bench-reused.toml");
    std::fs::write(&reused_config, "[limits]\nfresh_instance_after = 1\n")?;
    let reused_engine = harness::engine(&harness::EngineOptions {
        engine_config: Some(reused_config),
        cache_dir: None,
        profile: None,
        compiler: None,
    })?;
    let reused_chain = runner::chain(&Catalog::load(&reused_engine, &args.plugins)?, &file)?;

    eprintln!("generating {} customer-days…", args.days);
    let days = heatbill_runtime::demo::day_inputs(args.days, args.date);
    let guest_days: Vec<CustomerDay> = days.iter().map(guest_day).collect();

    // Warm up both paths (page faults, caches, the pool) on a slice.
    let warm = days.len().min(20_000);
    run_sandboxed(&engine, &chain, &days[..warm], 1, args.batch, "sandboxed")?;
    run_sandboxed(
        &reused_engine,
        &reused_chain,
        &days[..warm],
        1,
        args.batch,
        "sandboxed, fresh instance per call",
    )?;
    run_native(&native, &guest_days[..warm], 1, args.batch);

    let thread_counts: Vec<usize> = if cores == 1 { vec![1] } else { vec![1, cores] };
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let mut round = Vec::new();
        for &threads in &thread_counts {
            round.push(run_native(&native, &guest_days, threads, args.batch));
            round.push(run_sandboxed(
                &engine,
                &chain,
                &days,
                threads,
                args.batch,
                "sandboxed",
            )?);
            round.push(run_sandboxed(
                &reused_engine,
                &reused_chain,
                &days,
                threads,
                args.batch,
                "sandboxed, fresh instance per call",
            )?);
        }
        runs.push(round);
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "chain: {} | {} customer-days | batch {} | {cores} core(s), {cpu}",
        file.chain_summary(),
        args.days,
        args.batch
    );
    println!();
    println!(
        "| mode | threads | customer-days/s (median of {}) | range | per thread | sandboxed ÷ native |",
        runs.len()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut errors = 0;
    for (k, r) in runs[0].iter().enumerate() {
        let rates: Vec<f64> = runs.iter().map(|round| round[k].rate()).collect();
        // The ratio of each round's pair, measured back to back, then the median of those.
        let ratios: Vec<f64> = runs
            .iter()
            .map(|round| {
                let native = round
                    .iter()
                    .find(|n| n.mode == "native" && n.threads == r.threads)
                    .map_or(f64::NAN, Row::rate);
                round[k].rate() / native
            })
            .collect();
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        errors += runs.iter().map(|round| round[k].errors).sum::<usize>();
        let rate = median(rates);
        println!(
            "| {} | {} | {:.0} | {:.0}–{:.0} | {:.0} | {:.2} |",
            r.mode,
            r.threads,
            rate,
            lo,
            hi,
            rate / r.threads as f64,
            median(ratios),
        );
    }
    if errors > 0 {
        bail!("{errors} customer-days failed: the benchmark's chain and customers must all bill");
    }
    Ok(())
}
