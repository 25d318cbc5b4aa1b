//! The Python and JavaScript plugin kits side by side with Rust (`./dev bench-kits`,
//! BENCHMARKS.md, "Python and JavaScript plugins: the kits side by side").
//!
//! For each rule the kits carry (`late-fee`, `low-income-subsidy`), in Rust, Python and
//! JavaScript, and for the late fee through both the columnar fast path (the kits' `late-fee`)
//! and the row method (the bench fixtures `plugins/{python,js}/bench/late-fee-rows`, the same
//! rule as `late-fee` `1.0.0-rows`), everything through the production engine in one process:
//!
//! - **customer-days/s on one core**: an [`Evaluator`] over a chain that exercises the rule
//!   (the late fee alone; the subsidy after Rust's season and area tariff, which give it the
//!   heating lines it covers), batches of `--batch`, on generated customer-days the rule bills
//!   (all with overdue arrears for the late fee, all low-income for the subsidy). The clock
//!   covers the whole evaluator; the rule's own time per customer-day is its chain entry's
//!   [`EntryCost`](heatbill_engine::EntryCost) (columns, the call, lifting and checking its
//!   output, applying its lines);
//! - **fixed cost per call**: `--single-calls` calls of one customer-day each; the rule entry's
//!   time per call there, minus its time per customer-day in the batches above;
//! - **instantiate + configure**: `Evaluator::new` + `configure_all` of a chain of the rule
//!   alone, timed `--instantiations` times (the median);
//! - **sizes**: the component, the precompiled artifact the engine wrote to its compile cache
//!   (the cache file less its 40-byte header), and the core instances and memories the
//!   engine's `check_structure` counts, with how many such instances the pool holds;
//! - **memory per instance**: the growth of this process's resident memory (`/proc/self/status`)
//!   per live instance, `--live` instances of the rule alone held at once, after `configure` and
//!   again after one batch each (the engine has no accessor for an instance's linear memory);
//! - **the reference chain** (`plugins/cases/reference-chain.toml`) over the demo company's
//!   customer-days, all Rust against the Python or JavaScript late fee and/or subsidy swapped
//!   in, on one thread, with each swapped rule's share of the chain's time.
//!
//! Measurements are interleaved `--repeat` times; the tables give medians, and every ratio is
//! the median of the ratios of one round's measurements, taken back to back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use heatbill_cases::CaseFile;
use heatbill_engine::{Chain, DayInput, Engine, Evaluator, LoadedPlugin};
use heatbill_harness as harness;
use heatbill_runtime::company::params_json;
use rust_decimal::Decimal;

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Customer-days per measurement of a Rust rule.
    #[arg(long, default_value_t = 200_000)]
    days: usize,
    /// Customer-days per measurement of a Python or JavaScript columnar path.
    #[arg(long, default_value_t = 50_000)]
    columns_days: usize,
    /// Customer-days per measurement of a Python or JavaScript row path.
    #[arg(long, default_value_t = 10_000)]
    rows_days: usize,
    /// Customer-days of the reference chain per measurement (the demo company's mix).
    #[arg(long, default_value_t = 200_000)]
    chain_days: usize,
    /// Customer-days per plugin call.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Calls of one customer-day each, for the fixed cost per call.
    #[arg(long, default_value_t = 1000)]
    single_calls: usize,
    /// Fresh instances instantiated and configured, for the instantiation time.
    #[arg(long, default_value_t = 40)]
    instantiations: usize,
    /// Instances held live at once, for the memory per instance.
    #[arg(long, default_value_t = 16)]
    live: usize,
    /// How many times each measurement is repeated (interleaved).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// The bill date (after the late fee's due date, inside the season).
    #[arg(long, default_value = "2026-01-15")]
    date: chrono::NaiveDate,
    /// The reference chain's case file (its parameters are every chain's here).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/cases/reference-chain.toml"))]
    chain: PathBuf,
    /// The plugins directory: Rust components in target/wasm32-wasip2/release, Python in
    /// python/target, JavaScript in js/target (bench fixtures in their bench/ subdirectories).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins"))]
    plugins: PathBuf,
    /// The compile cache (default: the user's, as `heatbill plugin` uses; the compiled sizes
    /// are read from it).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// The two rules the kits carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    LateFee,
    Subsidy,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::LateFee => "late-fee",
            Rule::Subsidy => "low-income-subsidy",
        }
    }
}

/// One component of a rule.
struct Variant {
    rule: Rule,
    lang: &'static str,
    path: &'static str,
    file: PathBuf,
    plugin: Arc<LoadedPlugin>,
    bytes: usize,
    /// The chain that exercises it, and its index there.
    chain: Arc<Chain>,
    entry: usize,
    /// The chain of the rule alone (instantiation, memory).
    alone: Arc<Chain>,
    days: usize,
}

/// One round's measurement of a variant.
#[derive(Clone, Copy, Default)]
struct Throughput {
    /// Customer-days per second of the whole evaluator.
    rate: f64,
    /// The rule entry's time per customer-day it was called for, ns.
    rule_ns: f64,
    /// The rule entry's time per single-day call, µs.
    single_us: f64,
    /// `Evaluator::new` + `configure_all` of the rule alone, µs (median).
    instantiate_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// `1234567.8` as `1,234,568`.
fn grouped(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn load(engine: &Engine, file: &Path, profile: Option<&str>) -> Result<(Arc<LoadedPlugin>, usize)> {
    let bytes = std::fs::read(file).with_context(|| {
        format!(
            "cannot read {}: build the plugins with `./dev plugins` and the bench fixtures with \
             `./dev bench-kits`",
            file.display()
        )
    })?;
    let plugin = match profile {
        Some(p) => engine.load_as(&bytes, p).map(|(p, _)| p),
        None => engine.load(&bytes),
    }
    .with_context(|| format!("cannot load {}", file.display()))?;
    Ok((plugin, bytes.len()))
}

/// The reference chain's parameters for each plugin name.
fn reference_params(file: &CaseFile) -> BTreeMap<String, serde_json::Value> {
    file.chain
        .iter()
        .map(|e| (e.plugin.clone(), params_json(&e.params)))
        .collect()
}

/// A chain of `plugins`, each with the reference chain's parameters for its name.
fn chain_of(
    company: &str,
    params: &BTreeMap<String, serde_json::Value>,
    plugins: &[&Arc<LoadedPlugin>],
) -> Result<Arc<Chain>> {
    let entries = plugins
        .iter()
        .map(|p| {
            let params = params
                .get(p.name())
                .cloned()
                .with_context(|| format!("the reference chain has no {}", p.name()))?;
            Ok(((*p).clone(), params))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Chain::new(company, entries)?))
}

fn evaluator(engine: &Engine, chain: &Arc<Chain>) -> Result<Evaluator> {
    let mut ev = Evaluator::new(engine, chain.clone());
    ev.configure_all()?;
    Ok(ev)
}

/// Runs `days` through `ev` in batches; (seconds, failed customer-days).
fn run(ev: &mut Evaluator, days: &[DayInput], batch: usize) -> (f64, usize) {
    let start = Instant::now();
    let mut errors = 0;
    for b in days.chunks(batch) {
        errors += ev.evaluate(b).iter().filter(|r| r.is_err()).count();
    }
    (start.elapsed().as_secs_f64(), errors)
}

/// What entry `e` cost between two `costs()` readings: (calls, customer-days, time).
fn entry_delta(
    ev: &Evaluator,
    before: &[heatbill_engine::EntryCost],
    e: usize,
) -> (u64, u64, Duration) {
    let after = &ev.costs()[e];
    (
        after.calls - before[e].calls,
        after.days - before[e].days,
        after.time - before[e].time,
    )
}

/// One round of a variant: throughput, single-day calls, instantiation.
fn measure(
    engine: &Engine,
    v: &Variant,
    days: &[DayInput],
    args: &Args,
) -> Result<(Throughput, usize)> {
    let days = &days[..v.days.min(days.len())];
    // Instances are made and warmed (page faults, the pool's slots) before the clock starts.
    let mut ev = evaluator(engine, &v.chain)?;
    let (_, mut errors) = run(&mut ev, &days[..days.len().min(2 * args.batch)], args.batch);
    let before = ev.costs();
    let (secs, e) = run(&mut ev, days, args.batch);
    errors += e;
    let (_, rule_days, rule_time) = entry_delta(&ev, &before, v.entry);
    let before = ev.costs();
    for d in days.iter().cycle().take(args.single_calls.max(1)) {
        errors += ev
            .evaluate(std::slice::from_ref(d))
            .iter()
            .filter(|r| r.is_err())
            .count();
    }
    let (calls, _, single_time) = entry_delta(&ev, &before, v.entry);
    drop(ev);
    let mut inst = Vec::new();
    for _ in 0..args.instantiations.max(1) {
        let start = Instant::now();
        let ev = evaluator(engine, &v.alone)?;
        inst.push(start.elapsed().as_secs_f64() * 1e6);
        drop(ev);
    }
    Ok((
        Throughput {
            rate: days.len() as f64 / secs,
            rule_ns: rule_time.as_secs_f64() * 1e9 / rule_days.max(1) as f64,
            single_us: single_time.as_secs_f64() * 1e6 / calls.max(1) as f64,
            instantiate_us: median(inst),
        },
        errors,
    ))
}

/// This process's resident memory: (total, private anonymous), bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Resident memory per live instance of the rule alone: after `configure`, after one batch.
fn memory(engine: &Engine, v: &Variant, days: &[DayInput], args: &Args) -> Result<[(f64, f64); 2]> {
    let n = args.live.max(1);
    let base = rss();
    let mut live = (0..n)
        .map(|_| evaluator(engine, &v.alone))
        .collect::<Result<Vec<_>>>()?;
    let configured = rss();
    let batch = &days[..days.len().min(args.batch)];
    for ev in &mut live {
        ev.evaluate(batch);
    }
    let used = rss();
    drop(live);
    let per = |a: (u64, u64)| {
        (
            a.0.saturating_sub(base.0) as f64 / n as f64,
            a.1.saturating_sub(base.1) as f64 / n as f64,
        )
    };
    Ok([per(configured), per(used)])
}

/// The precompiled artifact of a component in the engine's compile cache
/// (`<digest>-<compat>.cwasm`, the newest if several engines wrote one), less the cache file's
/// header (8 bytes of magic, a 32-byte tag).
fn compiled_size(engine: &Engine, plugin: &LoadedPlugin) -> Option<u64> {
    let dir = engine.config().cache_dir.as_ref()?;
    let prefix = format!("{}-", plugin.digest());
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".cwasm")
        })
        .filter_map(|e| e.metadata().ok())
        .max_by_key(|m| m.modified().ok())
        .map(|m| m.len().saturating_sub(40))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let file = CaseFile::load(&args.chain)?;
    let params = reference_params(&file);
    let company = file.company();
    let engine = harness::engine(&harness::EngineOptions {
        engine_config: None,
        cache_dir: args.cache_dir.clone(),
        profile: None,
        compiler: None,
    })?;
    let interp = Some(heatbill_engine::INTERPRETED);
    let rust_dir = args.plugins.join("target/wasm32-wasip2/release");
    let py_dir = args.plugins.join("python/target");
    let js_dir = args.plugins.join("js/target");

    eprintln!("loading the components (compiled once, then from the cache)…");
    let (season, _) = load(&engine, &rust_dir.join("season.wasm"), None)?;
    let (tariff, _) = load(&engine, &rust_dir.join("area_tariff.wasm"), None)?;
    // (rule, language, path, component, profile, customer-days per measurement)
    type Spec<'a> = (Rule, &'a str, &'a str, PathBuf, Option<&'a str>, usize);
    let specs: [Spec; 8] = [
        (
            Rule::LateFee,
            "Rust",
            "compiled",
            rust_dir.join("late_fee.wasm"),
            None,
            args.days,
        ),
        (
            Rule::LateFee,
            "Python",
            "columns",
            py_dir.join("late-fee.wasm"),
            interp,
            args.columns_days,
        ),
        (
            Rule::LateFee,
            "Python",
            "rows",
            py_dir.join("bench/late-fee-rows.wasm"),
            interp,
            args.rows_days,
        ),
        (
            Rule::LateFee,
            "JavaScript",
            "columns",
            js_dir.join("late-fee.wasm"),
            interp,
            args.columns_days,
        ),
        (
            Rule::LateFee,
            "JavaScript",
            "rows",
            js_dir.join("bench/late-fee-rows.wasm"),
            interp,
            args.rows_days,
        ),
        (
            Rule::Subsidy,
            "Rust",
            "compiled",
            rust_dir.join("low_income_subsidy.wasm"),
            None,
            args.days,
        ),
        (
            Rule::Subsidy,
            "Python",
            "columns",
            py_dir.join("low-income-subsidy.wasm"),
            interp,
            args.rows_days,
        ),
        (
            Rule::Subsidy,
            "JavaScript",
            "columns",
            js_dir.join("low-income-subsidy.wasm"),
            interp,
            args.rows_days,
        ),
    ];
    let mut variants = Vec::new();
    for (rule, lang, path, f, profile, days) in specs {
        let (plugin, bytes) = load(&engine, &f, profile)?;
        if plugin.name() != rule.name() {
            bail!("{} is {}, not {}", f.display(), plugin.name(), rule.name());
        }
        let (chain, entry) = match rule {
            Rule::LateFee => (chain_of(&company, &params, &[&plugin])?, 0),
            Rule::Subsidy => (
                chain_of(&company, &params, &[&season, &tariff, &plugin])?,
                2,
            ),
        };
        let alone = chain_of(&company, &params, &[&plugin])?;
        variants.push(Variant {
            rule,
            lang,
            path,
            file: f,
            plugin,
            bytes,
            chain,
            entry,
            alone,
            days,
        });
    }

    // The customer-days each rule bills: the demo company's, all with overdue arrears for the
    // late fee (principal 100.00–4,999.99, since 30 days before the date), all low-income for
    // the subsidy.
    let most = variants.iter().map(|v| v.days).max().unwrap_or(0);
    eprintln!("generating customer-days…");
    let base = heatbill_runtime::demo::day_inputs(most.max(args.chain_days), args.date);
    let since = args.date - chrono::Days::new(30);
    let overdue: Vec<DayInput> = base[..most]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut d = d.clone();
            if d.arrears_since.is_none() || d.arrears <= Decimal::ZERO {
                d.arrears = Decimal::new(10_000 + (i as i64 * 7_919) % 490_000, 2);
                d.arrears_since = Some(since);
            }
            d
        })
        .collect();
    let low_income: Vec<DayInput> = base[..most]
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.low_income = true;
            d
        })
        .collect();
    let chain_days = &base[..args.chain_days];

    // The reference chain, all Rust and with the kits' rules swapped in.
    let find = |rule: Rule, lang: &str, path: &str| {
        variants
            .iter()
            .find(|v| v.rule == rule && v.lang == lang && v.path == path)
            .map(|v| &v.plugin)
            .expect("a variant of the table")
    };
    let rust_fee = find(Rule::LateFee, "Rust", "compiled");
    let rust_sub = find(Rule::Subsidy, "Rust", "compiled");
    let mut chains: Vec<(String, Arc<Chain>)> = Vec::new();
    for lang in ["Python", "JavaScript"] {
        let fee = find(Rule::LateFee, lang, "columns");
        let sub = find(Rule::Subsidy, lang, "columns");
        for (label, f, s) in [
            (format!("{lang} late-fee (columns)"), fee, rust_sub),
            (
                format!("{lang} low-income-subsidy (columns)"),
                rust_fee,
                sub,
            ),
            (format!("{lang} late-fee and subsidy"), fee, sub),
        ] {
            chains.push((
                label,
                chain_of(&company, &params, &[&season, &tariff, s, f])?,
            ));
        }
    }
    chains.insert(
        0,
        (
            "all Rust".into(),
            chain_of(&company, &params, &[&season, &tariff, rust_sub, rust_fee])?,
        ),
    );

    // Interleaved rounds.
    let mut rule_runs: Vec<Vec<Throughput>> = vec![Vec::new(); variants.len()];
    // Per chain and round: (rate, share of the subsidy, share of the late fee, subsidy days).
    let mut chain_runs: Vec<Vec<(f64, f64, f64, u64)>> = vec![Vec::new(); chains.len()];
    let mut errors = 0;
    for round in 0..args.repeat.max(1) {
        eprintln!("round {} of {}…", round + 1, args.repeat.max(1));
        for (k, v) in variants.iter().enumerate() {
            let days = match v.rule {
                Rule::LateFee => &overdue,
                Rule::Subsidy => &low_income,
            };
            let (t, e) = measure(&engine, v, days, &args)?;
            errors += e;
            rule_runs[k].push(t);
        }
        for (k, (_, chain)) in chains.iter().enumerate() {
            let mut ev = evaluator(&engine, chain)?;
            let (_, e) = run(
                &mut ev,
                &chain_days[..chain_days.len().min(4 * args.batch)],
                args.batch,
            );
            errors += e;
            let before = ev.costs();
            let (secs, e) = run(&mut ev, chain_days, args.batch);
            errors += e;
            let (_, sub_days, sub_time) = entry_delta(&ev, &before, 2);
            let (_, _, fee_time) = entry_delta(&ev, &before, 3);
            chain_runs[k].push((
                chain_days.len() as f64 / secs,
                sub_time.as_secs_f64() / secs,
                fee_time.as_secs_f64() / secs,
                sub_days,
            ));
        }
    }
    if errors > 0 {
        bail!("{errors} customer-days failed: every measured customer-day must bill");
    }
    eprintln!("memory per instance ({} live instances each)…", args.live);
    let mut mem = Vec::new();
    for v in &variants {
        let days = match v.rule {
            Rule::LateFee => &overdue,
            Rule::Subsidy => &low_income,
        };
        mem.push(memory(&engine, v, days, &args)?);
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds = args.repeat.max(1);
    println!(
        "one thread | batch {} | bill date {} | {rounds} interleaved round(s) | {cores} core(s), {cpu}",
        args.batch, args.date
    );
    println!();
    println!(
        "Each rule through the engine (late-fee alone; the subsidy after Rust's season and area tariff):"
    );
    println!();
    println!(
        "| rule | plugin | path | customer-days | customer-days/s, one core (median of {rounds}) | range | the rule, ns per customer-day | rule ÷ Rust's | fixed µs per call | instantiate + configure, µs |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    // Per variant: the median over rounds of (its rule ns ÷ Rust's rule ns in that round).
    let rust_of = |rule: Rule| {
        variants
            .iter()
            .position(|v| v.rule == rule && v.lang == "Rust")
            .expect("a Rust variant")
    };
    let slowdown = |k: usize| {
        let r = rust_of(variants[k].rule);
        median(
            (0..rounds)
                .map(|i| rule_runs[k][i].rule_ns / rule_runs[r][i].rule_ns)
                .collect(),
        )
    };
    let stat = |k: usize, f: fn(&Throughput) -> f64| median(rule_runs[k].iter().map(f).collect());
    for (k, v) in variants.iter().enumerate() {
        let rates: Vec<f64> = rule_runs[k].iter().map(|t| t.rate).collect();
        let (lo, hi) = range(&rates);
        let rule_ns = stat(k, |t| t.rule_ns);
        // The fixed cost: a one-day call's time less one customer-day's share of a batch's.
        let fixed = stat(k, |t| t.single_us) - rule_ns / 1e3;
        println!(
            "| {} | {} | {} | {} | {} | {}–{} | {} | {:.0}× | {:.0} | {} |",
            v.rule.name(),
            v.lang,
            v.path,
            grouped(v.days as f64),
            grouped(median(rates)),
            grouped(lo),
            grouped(hi),
            grouped(rule_ns),
            slowdown(k),
            fixed,
            grouped(stat(k, |t| t.instantiate_us)),
        );
    }
    println!();
    let pool = &engine.config().pool;
    println!(
        "Sizes, and what one pool holds (total_core_instances {}, total_memories {}, total_component_instances {}):",
        grouped(pool.total_core_instances as f64),
        grouped(pool.total_memories as f64),
        grouped(pool.total_component_instances as f64)
    );
    println!();
    println!(
        "| plugin | profile | component | compiled (cache artifact) | core instances | memories | instances the pool holds | RSS per live instance after configure (private) | after a batch (private) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (k, v) in variants.iter().enumerate() {
        let config = engine
            .config()
            .effective(v.plugin.profile())
            .context("the plugin's profile")?;
        let bytes = std::fs::read(&v.file)?;
        let s = heatbill_engine::check_structure(&bytes, &config.limits, &config.pool)?;
        let holds = [
            u64::from(pool.total_core_instances) / s.core_instances.max(1),
            u64::from(pool.total_memories) / s.memories.max(1),
            u64::from(pool.total_component_instances),
        ]
        .into_iter()
        .min()
        .unwrap_or(0);
        let [(conf, conf_anon), (used, used_anon)] = mem[k];
        println!(
            "| {} {} ({}) {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) |",
            v.rule.name(),
            v.plugin.version(),
            v.lang,
            v.path,
            v.plugin.profile(),
            mb(v.bytes as u64),
            compiled_size(&engine, &v.plugin).map_or_else(|| "n/a".into(), mb),
            s.core_instances,
            s.memories,
            grouped(holds as f64),
            mb(conf as u64),
            mb(conf_anon as u64),
            mb(used as u64),
            mb(used_anon as u64),
        );
    }
    println!();
    println!(
        "The reference chain ({}), {} customer-days of the demo company (5 % low-income, 12 % with arrears), one thread:",
        file.chain_summary(),
        grouped(args.chain_days as f64)
    );
    println!();
    println!(
        "| chain | customer-days/s (median of {rounds}) | range | ÷ all Rust | subsidy's share of the chain's time | late fee's share | customer-days the subsidy is called for |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let chain_ratio = |k: usize| {
        median(
            (0..rounds)
                .map(|i| chain_runs[k][i].0 / chain_runs[0][i].0)
                .collect(),
        )
    };
    for (k, (label, _)) in chains.iter().enumerate() {
        let rates: Vec<f64> = chain_runs[k].iter().map(|r| r.0).collect();
        let (lo, hi) = range(&rates);
        println!(
            "| {label} | {} | {}–{} | {:.2} | {:.1} % | {:.1} % | {} |",
            grouped(median(rates)),
            grouped(lo),
            grouped(hi),
            chain_ratio(k),
            100.0 * median(chain_runs[k].iter().map(|r| r.1).collect()),
            100.0 * median(chain_runs[k].iter().map(|r| r.2).collect()),
            grouped(chain_runs[k][0].3 as f64),
        );
    }
    println!();
    // The ratio lines.
    let find_k = |rule: Rule, lang: &str, path: &str| {
        variants
            .iter()
            .position(|v| v.rule == rule && v.lang == lang && v.path == path)
            .expect("a variant")
    };
    let rate_ratio = |a: usize, b: usize| {
        median(
            (0..rounds)
                .map(|i| rule_runs[a][i].rate / rule_runs[b][i].rate)
                .collect(),
        )
    };
    let rust_fee_k = find_k(Rule::LateFee, "Rust", "compiled");
    for lang in ["Python", "JavaScript"] {
        let cols = find_k(Rule::LateFee, lang, "columns");
        let rows = find_k(Rule::LateFee, lang, "rows");
        let rate = stat(cols, |t| t.rate);
        println!(
            "- {lang} late-fee, columns: {} customer-days/s on one core ({}; goal ≥ 200,000); {:.1}× the rows path's rate; Rust's rate is {:.0}× its.",
            grouped(rate),
            if rate >= 200_000.0 { "met" } else { "not met" },
            rate_ratio(cols, rows),
            rate_ratio(rust_fee_k, cols),
        );
    }
    for (k, (label, _)) in chains.iter().enumerate().skip(1) {
        let sub = 100.0 * median(chain_runs[k].iter().map(|r| r.1).collect());
        println!(
            "- reference chain with the {label}: {:.2} of all-Rust's rate; the subsidy takes {:.1} % of the chain's time{}.",
            chain_ratio(k),
            sub,
            if label.contains("subsidy") {
                if sub < 30.0 {
                    " (goal < 30 %: met)"
                } else {
                    " (goal < 30 %: not met)"
                }
            } else {
                ""
            },
        );
    }
    Ok(())
}
