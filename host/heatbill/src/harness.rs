//! The plugin test harness: `heatbill plugin new | build | check | test | bench`. The functions
//! take plain options; the command line's arguments are `commands::plugin`'s.
//!
//! Everything here runs the production engine with the production limits: the same
//! [`heatbill_engine::Engine`], the same chain validation, the same evaluator a worker uses. A
//! case that passes here passes in production, and a limit that bites in production bites here.
//!
//! Over 600 lines: one function per subcommand, and the catalog that `test` and `bench` share;
//! the languages' builds are `scaffold` (Rust) and `kits` (Python, JavaScript).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use heatbill_cases::CaseFile;
use heatbill_engine::text::safe;
use heatbill_engine::{DayInput, Engine, EngineConfig, LoadedPlugin};

use crate::runner;
use crate::scaffold;

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
    /// The case file whose chain and customers are measured.
    pub cases: PathBuf,
    /// How many customer-days to evaluate (the case file's customers, repeated).
    pub days: usize,
    /// Customer-days per plugin call.
    pub batch: usize,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// The engine's settings.
    pub engine: EngineOptions,
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

/// The reference plugins (their component files' stems), which `plugin test` and `plugin bench`
/// find by default for the chain entries no given component answers.
pub const REFERENCE_PLUGINS: [&str; 7] = [
    "season",
    "area_tariff",
    "metered_tariff",
    "suspension_fee",
    "low_income_subsidy",
    "temperature_refund",
    "late_fee",
];

/// Where the reference plugins are: `HEATBILL_REFERENCE_PLUGINS` (empty: none), or the build
/// output of the checkout this binary was built from, when it is there.
pub fn reference_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HEATBILL_REFERENCE_PLUGINS") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release");
    d.is_dir().then_some(d)
}

/// The catalog of a harness command: its components, then the reference plugins (unless
/// `--no-reference`), saying on stderr which reference plugins it added.
fn harness_catalog(
    engine: &Engine,
    profile: Option<&str>,
    first: &Path,
    more: &[PathBuf],
    no_reference: bool,
    quiet: bool,
) -> Result<Catalog> {
    let mut args = vec![first.to_path_buf()];
    args.extend(more.iter().cloned());
    let reference = if no_reference { None } else { reference_dir() };
    let (catalog, added) =
        Catalog::load_with_reference(engine, &args, reference.as_deref(), profile)?;
    if !added.is_empty() && !quiet {
        eprintln!(
            "reference plugins from {} (for the names no given component has; --no-reference \
             to leave them out): {}",
            reference
                .as_deref()
                .map_or_else(String::new, |d| d.display().to_string()),
            added.join(", ")
        );
    }
    Ok(catalog)
}

/// The components a harness argument names: one `.wasm` file, the `.wasm` files of a directory,
/// or the built components of a plugin crate or workspace directory.
pub fn component_files(arg: &Path) -> Result<Vec<PathBuf>> {
    if arg.is_file() {
        return Ok(vec![arg.to_path_buf()]);
    }
    if !arg.is_dir() {
        bail!(
            "{} does not exist: give a component (.wasm), a directory of components, or a plugin crate directory",
            arg.display()
        );
    }
    match crate::kits::Lang::of(arg) {
        Some(crate::kits::Lang::Rust) => return scaffold::built_components(arg),
        Some(lang) => return crate::kits::built_components(lang, arg),
        None => {}
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(arg)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .wasm components", arg.display());
    }
    Ok(files)
}

/// The plugins available to a chain, by described name, and the files that failed to load.
#[derive(Clone)]
pub struct Catalog {
    /// Loaded plugins by `describe().name`: each distinct component (by digest) with the file
    /// it came from, in file order.
    pub plugins: BTreeMap<String, Vec<(PathBuf, Arc<LoadedPlugin>)>>,
    /// Files that are not loadable plugins, with why.
    pub rejected: Vec<(PathBuf, String)>,
}

impl Catalog {
    /// Loads every component the argument names. A file that fails to load is kept in
    /// `rejected`; it matters only if a chain names it. The same bytes in two files are one
    /// plugin.
    pub fn load(engine: &Engine, arg: &Path) -> Result<Self> {
        Self::load_as(engine, arg, None)
    }

    /// [`load`](Self::load), under the named limits profile (`None`: as granted).
    pub fn load_as(engine: &Engine, arg: &Path, profile: Option<&str>) -> Result<Self> {
        let mut plugins: BTreeMap<String, Vec<(PathBuf, Arc<LoadedPlugin>)>> = BTreeMap::new();
        let mut rejected = Vec::new();
        for file in component_files(arg)? {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let loaded = match profile {
                Some(profile) => engine.load_as(&bytes, profile).map(|(p, _)| p),
                None => engine.load(&bytes),
            };
            match loaded {
                Ok(p) => {
                    let same = plugins.entry(p.info().name.clone()).or_default();
                    if !same.iter().any(|(_, q)| q.digest() == p.digest()) {
                        same.push((file, p));
                    }
                }
                Err(e) => rejected.push((file, format!("{e:#}"))),
            }
        }
        Ok(Self { plugins, rejected })
    }

    /// Loads the components of every argument, then, for each reference plugin (this
    /// checkout's, or `HEATBILL_REFERENCE_PLUGINS`) whose name none of them has, the reference
    /// one: a new plugin is tested after `season` and the tariffs without copying them. Returns
    /// the catalog and the names that came from the reference plugins.
    pub fn load_with_reference(
        engine: &Engine,
        args: &[PathBuf],
        reference: Option<&Path>,
        profile: Option<&str>,
    ) -> Result<(Self, Vec<String>)> {
        let mut catalog = Catalog {
            plugins: BTreeMap::new(),
            rejected: Vec::new(),
        };
        for arg in args {
            let more = Catalog::load_as(engine, arg, profile)?;
            for (name, list) in more.plugins {
                let same = catalog.plugins.entry(name).or_default();
                for (file, p) in list {
                    if !same.iter().any(|(_, q)| q.digest() == p.digest()) {
                        same.push((file, p));
                    }
                }
            }
            catalog.rejected.extend(more.rejected);
        }
        let mut added = Vec::new();
        if let Some(dir) = reference {
            for stem in REFERENCE_PLUGINS {
                let file = dir.join(format!("{stem}.wasm"));
                let Ok(bytes) = std::fs::read(&file) else {
                    continue;
                };
                let Ok(p) = engine.load(&bytes) else {
                    continue;
                };
                let name = p.info().name.clone();
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    catalog.plugins.entry(name.clone())
                {
                    added.push(name);
                    slot.insert(vec![(file, p)]);
                }
            }
        }
        Ok((catalog, added))
    }

    /// The plugin a chain entry names (and, when given, its version), or an error listing what
    /// is available. Two different components that answer to the same name and version are
    /// refused rather than one picked silently, and so are several versions when the entry
    /// gives none.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedPlugin>> {
        let Some(found) = self.plugins.get(name) else {
            let mut msg = format!(
                "no plugin named {:?}; available: {}",
                safe(name),
                self.plugins
                    .keys()
                    .map(|k| safe(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for (file, why) in &self.rejected {
                msg.push_str(&format!(
                    "\n  not loaded: {}: {}",
                    file.display(),
                    safe(why)
                ));
            }
            bail!(msg)
        };
        let matching: Vec<&(PathBuf, Arc<LoadedPlugin>)> = found
            .iter()
            .filter(|(_, p)| version.is_none_or(|v| p.info().version == v))
            .collect();
        let list = |of: &[&(PathBuf, Arc<LoadedPlugin>)]| {
            of.iter()
                .map(|(f, p)| format!("{} in {}", safe(&p.info().version), f.display()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (matching.as_slice(), version) {
            ([(_, p)], _) => Ok(p.clone()),
            ([], Some(v)) => bail!(
                "no component of {:?} is version {:?}; found {}",
                safe(name),
                safe(v),
                list(&found.iter().collect::<Vec<_>>())
            ),
            (several, _)
                if several
                    .iter()
                    .all(|(_, p)| p.info().version == several[0].1.info().version) =>
            {
                bail!(
                    "{} different components describe themselves as {} {}: {}; keep one",
                    several.len(),
                    safe(name),
                    safe(&several[0].1.info().version),
                    list(several)
                )
            }
            (several, _) => bail!(
                "{} components are named {:?}: {}; give the chain entry a version, or keep one",
                several.len(),
                safe(name),
                list(several)
            ),
        }
    }
}

/// Case files named by the arguments: files, or every `*.toml` of a directory (sorted).
pub fn case_files(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(a)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no .toml case files", a.display());
            }
            out.extend(files);
        } else if a.is_file() {
            out.push(a.clone());
        } else {
            bail!("case file {} does not exist", a.display());
        }
    }
    Ok(out)
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
    let days = runner::case_days(&file)?;
    if days.is_empty() {
        bail!(
            "{} has no cases: the benchmark bills the case file's customers",
            args.cases.display()
        );
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let batch = args.batch.max(1);
    let total = args.days.max(1);
    let per_thread = total.div_ceil(threads);
    println!("chain: {}", file.chain_summary());
    println!(
        "{total} customer-days from {} case customer-days, batch {batch}, {threads} thread(s)",
        days.len()
    );
    // Inputs and evaluators are made before the clock starts, as a worker's shard is loaded
    // and its instances configured before it bills.
    let mut work = Vec::with_capacity(threads);
    for t in 0..threads {
        let range = (t * per_thread).min(total)..((t + 1) * per_thread).min(total);
        let input: Vec<DayInput> = range.map(|j| days[j % days.len()].clone()).collect();
        work.push((runner::evaluator(&engine, chain.clone())?, input));
    }
    let start = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .iter_mut()
            .map(|(ev, input)| {
                s.spawn(move || {
                    let (mut done, mut errors) = (0, 0);
                    for b in input.chunks(batch) {
                        for r in ev.evaluate(b) {
                            done += 1;
                            errors += usize::from(r.is_err());
                        }
                    }
                    (done, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench worker panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    let (done, errors) = results
        .iter()
        .fold((0, 0), |(d, e), (rd, re)| (d + rd, e + re));
    let calls = done.div_ceil(batch) * file.chain.len();
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "| customer-days | threads | seconds | customer-days/s | per core | µs per plugin call | errors |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {done} | {threads} | {secs:.3} | {:.0} | {:.0} | {:.1} | {errors} |",
        done as f64 / secs,
        done as f64 / secs / threads as f64,
        secs * 1e6 * threads as f64 / calls as f64,
    );
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
