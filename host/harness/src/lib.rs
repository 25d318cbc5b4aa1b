//! The plugin developer kit: `heatbill plugin new | build | check | test | bench`, and the case
//! runner the admin API runs uploaded case files with. The functions take plain options; the
//! command line's arguments are the `heatbill` binary's (`commands::plugin`).
//!
//! Everything here runs the production engine with the production limits: the same
//! [`heatbill_engine::Engine`], the same chain validation, the same evaluator a worker uses, and
//! the run's own translation of a customer into a plugin's input. A case that passes here passes
//! in production, and a limit that bites in production bites here.
//!
//! | module | what it does |
//! |---|---|
//! | this file | one function per subcommand, their options, and the engine they share |
//! | [`catalog`] | the components and case files a command's arguments name, loaded into a [`Catalog`] |
//! | [`runner`] | runs a case file through the engine and compares the bills with the cases |
//! | [`scaffold`] | the Rust plugin template and its build |
//! | [`kits`] | the Python and JavaScript kits (embedded by `build.rs`), their templates and builds |
//!
//! Below the admin API (which runs uploaded case files with [`runner`]) and the binary; above
//! the engine, the runtime's model and the case-file crate.

pub mod catalog;
pub mod kits;
pub mod runner;
pub mod scaffold;

use catalog::harness_catalog;
pub use catalog::{Catalog, REFERENCE_PLUGINS, case_files, component_files, reference_dir};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use heatbill_cases::CaseFile;
use heatbill_engine::{DayInput, Engine, EngineConfig};

/// Engine settings of the harness commands.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// An engine configuration file (TOML; the production settings) instead of the defaults.
    pub engine_config: Option<PathBuf>,
    /// Where compiled components are cached (default: [`default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// Load the given components under this limits profile (e.g. `interpreted` for Python and
    /// JavaScript plugins), as an operator's grant would in production. The reference plugins
    /// always load under their own (standard).
    pub profile: Option<String>,
    /// The program that compiles components in a child process: the `heatbill` executable,
    /// which its `main` passes down (it knows the child's argument). None compiles in this
    /// process (a library user, a test harness).
    pub compiler: Option<PathBuf>,
}

/// What [`new_plugin`] creates.
#[derive(Debug, Clone)]
pub struct NewOptions {
    /// The plugin's name (lowercase letters, digits and dashes).
    pub name: String,
    /// Where to create it (default: ./<name>).
    pub dir: Option<PathBuf>,
    /// Depend on the guest SDK at this path instead of vendoring a copy.
    pub sdk_path: Option<PathBuf>,
    /// Depend on this published version of the guest SDK instead of vendoring a copy.
    pub sdk_version: Option<String>,
    /// The plugin's language.
    pub lang: crate::kits::Lang,
}

/// What [`build`] builds.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The plugin crate or workspace directory.
    pub dir: PathBuf,
}

/// What [`check`] checks.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The component (.wasm) to check.
    pub component: PathBuf,
    /// The engine's settings.
    pub engine: EngineOptions,
    /// Print the report as JSON.
    pub json: bool,
}

/// What [`test`] runs.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// A component, a directory of components, or a plugin crate/workspace directory.
    pub plugins: PathBuf,
    /// More components for the chains.
    pub more_plugins: Vec<PathBuf>,
    /// Leave the reference plugins out.
    pub no_reference: bool,
    /// Case files, or directories of them.
    pub cases: Vec<PathBuf>,
    /// The engine's settings.
    pub engine: EngineOptions,
    /// Print the results as JSON.
    pub json: bool,
}

/// What [`bench`] measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A component, a directory of components, or a plugin crate/workspace directory.
    pub plugins: PathBuf,
    /// More components for the chain.
    pub more_plugins: Vec<PathBuf>,
    /// Leave the reference plugins out.
    pub no_reference: bool,
    /// The case file whose chain is measured (and whose first date is billed).
    pub cases: PathBuf,
    /// Bill the case file's customers (repeated) instead of a generated company.
    pub case_customers: bool,
    /// How many customer-days to evaluate.
    pub days: usize,
    /// Customer-days per plugin call.
    pub batch: usize,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// The engine's settings.
    pub engine: EngineOptions,
}

/// The most customers a benchmark generates (more customer-days repeat them).
const GENERATED_CUSTOMERS: usize = 200_000;

/// What a benchmark's customer-days came to: billed, refused by a rule (by kind), or failed.
#[derive(Debug, Default)]
struct Tally {
    done: usize,
    rules: std::collections::BTreeMap<&'static str, usize>,
    failed: usize,
}

impl Tally {
    fn count(&mut self, kind: &heatbill_engine::BillErrorKind) {
        match kind {
            heatbill_engine::BillErrorKind::Rule { .. } => {
                *self.rules.entry(kind.name()).or_default() += 1
            }
            _ => self.failed += 1,
        }
    }

    fn add(&mut self, other: Tally) {
        self.done += other.done;
        self.failed += other.failed;
        for (k, n) in other.rules {
            *self.rules.entry(k).or_default() += n;
        }
    }

    fn refused(&self) -> usize {
        self.rules.values().sum()
    }
}

/// Builds the engine the harness runs: the configuration file's settings (or the defaults),
/// with the component cache in the user's cache directory unless told otherwise.
pub fn engine(args: &EngineOptions) -> Result<Engine> {
    let config = match &args.engine_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read engine config {}", path.display()))?;
            toml::from_str::<EngineConfig>(&text)
                .with_context(|| format!("engine config {} is not valid", path.display()))?
        }
        None => EngineConfig::default(),
    };
    build_engine(config, args.cache_dir.clone(), args.compiler.clone())
}

/// The one way heatbill's commands start an engine from a configuration: the compile cache in
/// `cache_dir`, else where the configuration says, else the user's cache directory; the
/// compiler child `compiler`, unless the configuration names one.
pub fn build_engine(
    mut config: EngineConfig,
    cache_dir: Option<PathBuf>,
    compiler: Option<PathBuf>,
) -> Result<Engine> {
    if let Some(dir) = cache_dir {
        config.cache_dir = Some(dir);
    } else if config.cache_dir.is_none() {
        config.cache_dir = default_cache_dir();
    }
    if config.compile.program.is_none() {
        config.compile.program = compiler;
    }
    Engine::new(config).context("cannot start the rules engine")
}

/// The compile cache of a user: `$XDG_CACHE_HOME/heatbill/components` or
/// `~/.cache/heatbill/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("heatbill").join("components"))
}

/// `heatbill plugin new`
pub fn new_plugin(args: NewOptions) -> Result<ExitCode> {
    scaffold::check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if args.lang != crate::kits::Lang::Rust {
        if args.sdk_path.is_some() || args.sdk_version.is_some() {
            bail!(
                "--sdk-path and --sdk-version are for Rust plugins; a Python or JavaScript plugin vendors its kit"
            );
        }
        let files = crate::kits::render(args.lang, &args.name, &dir)?;
        println!("created plugin {} in {}:", args.name, dir.display());
        for f in files.iter().filter(|f| !f.starts_with(dir.join("vendor"))) {
            println!("  {}", f.display());
        }
        println!(
            "kit: vendored in {}",
            dir.join("vendor/heatbill-kit").display()
        );
        println!("next:");
        println!("  heatbill plugin build {}", dir.display());
        println!(
            "  heatbill plugin test {} --profile interpreted --cases {}",
            dir.display(),
            dir.join("cases").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let sdk = match (&args.sdk_path, &args.sdk_version) {
        (Some(p), _) => scaffold::SdkSource::Path(scaffold::sdk_path(p)?),
        (None, Some(v)) => scaffold::SdkSource::Version(v.clone()),
        (None, None) => scaffold::SdkSource::Vendored,
    };
    let files = scaffold::render(&args.name, &dir, &sdk)?;
    println!("created plugin {} in {}:", args.name, dir.display());
    for f in files.iter().filter(|f| !f.starts_with(dir.join("vendor"))) {
        println!("  {}", f.display());
    }
    println!("SDK: {}", sdk.describe());
    println!("next:");
    println!("  heatbill plugin build {}", dir.display());
    println!(
        "  heatbill plugin test {} --cases {}",
        dir.display(),
        dir.join("cases.toml").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `heatbill plugin build`: cargo for the guest target, then `check` on every component.
pub fn build(args: BuildOptions) -> Result<ExitCode> {
    let lang = crate::kits::Lang::of(&args.dir).with_context(|| {
        format!(
            "{} has no Cargo.toml, pyproject.toml or package.json: give the directory of a \
             plugin (`heatbill plugin new` makes one)",
            args.dir.display()
        )
    })?;
    if lang != crate::kits::Lang::Rust {
        let components = crate::kits::build(lang, &args.dir)?;
        return check_built(&components, Some(heatbill_engine::INTERPRETED));
    }
    let components = scaffold::build(&args.dir)?;
    if components.is_empty() {
        bail!(
            "cargo built no component: a plugin crate needs `crate-type = [\"cdylib\", \"rlib\"]` in [lib]"
        );
    }
    check_built(&components, None)
}

/// `check` on every component a build made; Python and JavaScript ones under `profile`, the
/// profile their interpreter needs (the report says what an operator grants).
fn check_built(components: &[PathBuf], profile: Option<&str>) -> Result<ExitCode> {
    let engine = engine(&EngineOptions::default())?;
    let mut ok = true;
    for c in components {
        let bytes = std::fs::read(c)?;
        let report = match profile {
            Some(p) => engine.check_as(&bytes, p),
            None => engine.check(&bytes),
        };
        println!("{}", c.display());
        print!("{}", indent(&report.to_string()));
        ok &= report.ok();
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// `heatbill plugin check`
pub fn check(args: CheckOptions) -> Result<ExitCode> {
    let engine = engine(&args.engine)?;
    let bytes = heatbill_runtime::company::read_regular_file(
        &args.component,
        heatbill_runtime::company::max_component_bytes(&engine),
        "a component",
    )
    .map_err(anyhow::Error::msg)?;
    let profile = match &args.engine.profile {
        Some(p) => p.clone(),
        None => engine.profile_of(&bytes),
    };
    // A larger profile compiles under its own, larger compile limits: say which one is being
    // tried and why, before the wait (stderr, so that --json stays one document).
    let config = engine.config().clone();
    let report = engine.check_needs_with(&bytes, &profile, |next, refusal| {
        let limits = config.effective(next).map_or_else(String::new, |c| {
            format!(
                " (components up to {} bytes; compiling takes at most {} s and {} MiB)",
                c.limits.max_component_bytes,
                c.compile.timeout_ms / 1000,
                c.compile.max_memory_bytes >> 20
            )
        });
        eprintln!(
            "{}: refused under the profile `{profile}` ({}); trying the profile `{next}`{limits}…",
            args.component.display(),
            heatbill_engine::text::terminal_safe(&refusal.to_string(), 200)
        );
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", args.component.display());
        print!("{}", indent(&report.to_string()));
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `heatbill plugin test`
pub fn test(args: TestOptions) -> Result<ExitCode> {
    let engine = engine(&args.engine)?;
    let catalog = harness_catalog(
        &engine,
        args.engine.profile.as_deref(),
        &args.plugins,
        &args.more_plugins,
        args.no_reference,
        args.json,
    )?;
    let files = case_files(&args.cases)?;
    let mut reports = Vec::new();
    for f in &files {
        let file = CaseFile::load(f)?;
        reports.push(runner::run_file(&engine, &catalog, &file));
    }
    let (passed, failed) = reports.iter().fold((0, 0), |(p, f), r| {
        let fp = r.outcomes.iter().filter(|o| o.passed()).count();
        let ff = r.outcomes.len() - fp + usize::from(r.setup_error.is_some());
        (p + fp, f + ff)
    });
    if args.json {
        let json = serde_json::json!({
            "passed": passed,
            "failed": failed,
            "files": reports.iter().map(runner::FileReport::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        for r in &reports {
            print!("{r}");
        }
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `heatbill plugin bench`: the case file's chain over its customers, repeated to `--days`,
/// on `--threads` workers with one evaluator each, as a worker of a nightly run would.
pub fn bench(args: BenchOptions) -> Result<ExitCode> {
    let engine = engine(&args.engine)?;
    let catalog = harness_catalog(
        &engine,
        args.engine.profile.as_deref(),
        &args.plugins,
        &args.more_plugins,
        args.no_reference,
        false,
    )?;
    let file = CaseFile::load(&args.cases)?;
    let chain = runner::chain(&catalog, &file)?;
    let Some(date) = file.cases.iter().flat_map(|c| c.dates()).min() else {
        bail!(
            "{} has no cases: the benchmark bills the chain on the case file's first date (a \
             file that expects its chain refused bills nothing)",
            args.cases.display()
        );
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let batch = args.batch.max(1);
    let total = args.days.max(1);
    let per_thread = total.div_ceil(threads);
    // A representative company by default: the demo's mix of classes, areas, meters,
    // suspensions, low incomes and arrears (as `heatbill demo` and the run benchmarks bill),
    // on the case file's first date. A case file's customers are few and chosen to test edges
    // (one bench was 99.5 % metered): they are an option.
    let days = if args.case_customers {
        runner::case_days(&file)?
    } else {
        heatbill_runtime::demo::day_inputs(total.min(GENERATED_CUSTOMERS), date)
    };
    println!("chain: {}", file.chain_summary());
    if args.case_customers {
        println!(
            "{total} customer-days from {} case customer-days, batch {batch}, {threads} thread(s)",
            days.len()
        );
    } else {
        println!(
            "{total} customer-days of a generated company ({} customers, the demo's mix) on \
             {date}, batch {batch}, {threads} thread(s)",
            days.len()
        );
    }
    // Inputs and evaluators are made before the clock starts, as a worker's shard is loaded
    // and its instances configured before it bills.
    let mut work = Vec::with_capacity(threads);
    for t in 0..threads {
        let range = (t * per_thread).min(total)..((t + 1) * per_thread).min(total);
        let input: Vec<DayInput> = range.map(|j| days[j % days.len()].clone()).collect();
        work.push((runner::evaluator(&engine, chain.clone())?, input));
    }
    let start = Instant::now();
    let results: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .iter_mut()
            .map(|(ev, input)| {
                s.spawn(move || {
                    let mut tally = Tally::default();
                    for b in input.chunks(batch) {
                        for r in ev.evaluate(b) {
                            tally.done += 1;
                            if let Err(e) = r {
                                tally.count(&e.kind);
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench worker panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut tally = Tally::default();
    for t in results {
        tally.add(t);
    }
    let (done, refused, failed) = (tally.done, tally.refused(), tally.failed);
    let calls = done.div_ceil(batch) * file.chain.len();
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "| customer-days | threads | seconds | customer-days/s | per core | µs per plugin call | refused by the rules | failed |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {done} | {threads} | {secs:.3} | {:.0} | {:.0} | {:.1} | {refused} | {failed} |",
        done as f64 / secs,
        done as f64 / secs / threads as f64,
        secs * 1e6 * threads as f64 / calls as f64,
    );
    if refused > 0 {
        // A rule's own refusals (a metered customer without a reading is `missing-input`) are
        // what it should do with such customers: production parks them. Failures (a trap, an
        // output that breaks the contract, a skipped call) are the plugin's faults.
        let kinds: Vec<String> = tally
            .rules
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("refused by the rules: {}", kinds.join(", "));
    }
    // What each plugin cost: every thread's evaluator, summed.
    let mut costs: Vec<heatbill_engine::EntryCost> = Vec::new();
    for (ev, _) in &work {
        for (i, c) in ev.costs().into_iter().enumerate() {
            match costs.get_mut(i) {
                Some(t) => {
                    t.calls += c.calls;
                    t.days += c.days;
                    t.time += c.time;
                }
                None => costs.push(c),
            }
        }
    }
    let busy = secs * threads as f64;
    let in_plugins: f64 = costs.iter().map(|c| c.time.as_secs_f64()).sum();
    println!();
    println!(
        "| plugin | calls | customer-days called for | µs per call | ns per customer-day | share of the chain |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for c in &costs {
        let t = c.time.as_secs_f64();
        println!(
            "| {} {} | {} | {} | {:.1} | {:.0} | {:.1} % |",
            heatbill_engine::text::safe(&c.name),
            heatbill_engine::text::safe(&c.version),
            c.calls,
            c.days,
            if c.calls == 0 {
                0.0
            } else {
                t * 1e6 / c.calls as f64
            },
            if c.days == 0 {
                0.0
            } else {
                t * 1e9 / c.days as f64
            },
            100.0 * t / busy,
        );
    }
    println!(
        "| the host (inputs, filters, totals) | | | | | {:.1} % |",
        100.0 * (busy - in_plugins).max(0.0) / busy
    );
    Ok(ExitCode::SUCCESS)
}
