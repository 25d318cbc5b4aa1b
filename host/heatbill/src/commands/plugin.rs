//! `heatbill plugin new | build | check | test | bench`: each subcommand's clap arguments
//! beside the function that runs it. The work is the harness's ([`heatbill_harness`]), whose
//! functions take plain options, so that the benchmark and the tests call them without clap.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use heatbill_harness::{
    self as harness, BenchOptions, BuildOptions, CheckOptions, EngineOptions, NewOptions,
    TestOptions,
};

/// `heatbill plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a working plugin from the template: a Rust crate, or a Python or JavaScript
    /// plugin with its kit vendored (`--lang`).
    New(NewArgs),
    /// Build a plugin (a Rust crate or workspace, a Python or JavaScript plugin directory) into
    /// components, and check each.
    Build(BuildArgs),
    /// Check a component: world, version, imports, limits, describe().
    Check(CheckArgs),
    /// Run case files through the production engine and compare with what they expect.
    Test(TestArgs),
    /// Measure customer-days per second and time per call through a case file's chain.
    Bench(BenchArgs),
}

/// `heatbill plugin new`
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name (lowercase letters, digits and dashes), e.g. `xuchang-tariff`.
    pub name: String,
    /// Where to create it (default: ./<name>).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Depend on the guest SDK at this path (a heatbill checkout's plugins/sdk) instead of
    /// vendoring a copy of it (the default: the crate then builds on any machine, offline).
    #[arg(
        long = "sdk-path",
        alias = "sdk",
        env = "HEATBILL_SDK",
        conflicts_with = "sdk_version"
    )]
    pub sdk_path: Option<PathBuf>,
    /// Depend on this published version of the guest SDK (`heatbill-sdk` on the crates
    /// registry) instead of vendoring a copy.
    #[arg(long)]
    pub sdk_version: Option<String>,
    /// The plugin's language: Rust (the SDK crate), Python (componentize-py) or JavaScript
    /// (ComponentizeJS). Python and JavaScript plugins vendor their kit and need the
    /// `interpreted` limits profile.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: heatbill_harness::kits::Lang,
}

/// `heatbill plugin build`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin directory: a Rust crate or workspace, or a Python (pyproject.toml) or
    /// JavaScript (package.json) plugin.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// `heatbill plugin check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component (.wasm) to check.
    pub component: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `heatbill plugin test`
#[derive(Debug, Args)]
pub struct TestArgs {
    /// A component, a directory of components, or a plugin crate/workspace directory (its
    /// built components are used: run `heatbill plugin build` first).
    pub plugins: PathBuf,
    /// More components for the chains (a component, a directory, a crate). Repeatable. The
    /// reference plugins are found by default for names none of these has.
    #[arg(long = "plugins", value_name = "PATH")]
    pub more_plugins: Vec<PathBuf>,
    /// Leave the reference plugins out: only the given components make the chains.
    #[arg(long)]
    pub no_reference: bool,
    /// Case files, or directories of them (every *.toml inside). Repeatable.
    #[arg(long = "cases", required = true)]
    pub cases: Vec<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `heatbill plugin bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A component, a directory of components, or a plugin crate/workspace directory.
    pub plugins: PathBuf,
    /// More components for the chain. Repeatable. The reference plugins are found by default
    /// for names none of these has.
    #[arg(long = "plugins", value_name = "PATH")]
    pub more_plugins: Vec<PathBuf>,
    /// Leave the reference plugins out.
    #[arg(long)]
    pub no_reference: bool,
    /// The case file whose chain is measured. By default the chain bills a generated company
    /// (the demo's mix of customers) on the file's first date.
    #[arg(long)]
    pub cases: PathBuf,
    /// Bill the case file's own customers (repeated) instead of a generated company.
    #[arg(long)]
    pub case_customers: bool,
    /// How many customer-days to evaluate.
    #[arg(long, default_value_t = 200_000)]
    pub days: usize,
    /// Customer-days per plugin call.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Engine settings shared by the harness commands.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// An engine configuration file (TOML; the production settings) instead of the defaults.
    #[arg(long, env = "HEATBILL_ENGINE_CONFIG")]
    pub engine_config: Option<PathBuf>,
    /// Where compiled components are cached (default: ~/.cache/heatbill/components).
    #[arg(long, env = "HEATBILL_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Load the given components under this limits profile, as an operator's grant does in
    /// production: `interpreted` for Python and JavaScript plugins (`plugin check` says which
    /// profile a component needs). Default: the standard limits, or the profile the engine
    /// configuration grants the component.
    #[arg(long)]
    pub profile: Option<String>,
}

/// Runs a `heatbill plugin` subcommand.
pub fn run(command: PluginCommand, compiler: Option<&Path>) -> Result<ExitCode> {
    let compiler = compiler.map(Path::to_path_buf);
    match command {
        PluginCommand::New(a) => harness::new_plugin(a.into()),
        PluginCommand::Build(a) => harness::build(a.into()),
        PluginCommand::Check(a) => {
            let mut o: harness::CheckOptions = a.into();
            o.engine.compiler = compiler;
            harness::check(o)
        }
        PluginCommand::Test(a) => {
            let mut o: harness::TestOptions = a.into();
            o.engine.compiler = compiler;
            harness::test(o)
        }
        PluginCommand::Bench(a) => {
            let mut o: harness::BenchOptions = a.into();
            o.engine.compiler = compiler;
            harness::bench(o)
        }
    }
}

impl From<EngineArgs> for EngineOptions {
    fn from(a: EngineArgs) -> Self {
        EngineOptions {
            engine_config: a.engine_config,
            cache_dir: a.cache_dir,
            profile: a.profile,
            compiler: None,
        }
    }
}

impl From<NewArgs> for NewOptions {
    fn from(a: NewArgs) -> Self {
        NewOptions {
            name: a.name,
            dir: a.dir,
            sdk_path: a.sdk_path,
            sdk_version: a.sdk_version,
            lang: a.lang,
        }
    }
}

impl From<BuildArgs> for BuildOptions {
    fn from(a: BuildArgs) -> Self {
        BuildOptions { dir: a.dir }
    }
}

impl From<CheckArgs> for CheckOptions {
    fn from(a: CheckArgs) -> Self {
        CheckOptions {
            component: a.component,
            engine: a.engine.into(),
            json: a.json,
        }
    }
}

impl From<TestArgs> for TestOptions {
    fn from(a: TestArgs) -> Self {
        TestOptions {
            plugins: a.plugins,
            more_plugins: a.more_plugins,
            no_reference: a.no_reference,
            cases: a.cases,
            engine: a.engine.into(),
            json: a.json,
        }
    }
}

impl From<BenchArgs> for BenchOptions {
    fn from(a: BenchArgs) -> Self {
        BenchOptions {
            plugins: a.plugins,
            more_plugins: a.more_plugins,
            no_reference: a.no_reference,
            cases: a.cases,
            case_customers: a.case_customers,
            days: a.days,
            batch: a.batch,
            threads: a.threads,
            engine: a.engine.into(),
        }
    }
}
