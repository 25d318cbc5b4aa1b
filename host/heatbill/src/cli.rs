//! The `heatbill` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands::{self, company::CompanyCommand};
use crate::harness;

/// heatbill: daily bills for district-heating companies, with pricing rules as sandboxed
/// WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "heatbill", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The nightly job end to end on a generated company: a fresh SQLite file (or --database),
    /// the company's files imported, the day billed and stored, and billed again unchanged.
    Demo(commands::demo::DemoArgs),
    /// Apply the schema migrations to the database.
    Migrate(commands::migrate::MigrateArgs),
    /// Create or update a company (seasons, plugins, rule chain versions) from a company file.
    #[command(subcommand)]
    Company(CompanyCommand),
    /// Import a CSV file of customers, readings, temperatures, payments or opening balances:
    /// all rows or none, every bad row reported.
    Import(commands::import::ImportArgs),
    /// Bill a company's customers for one date and store the bills (joins the run if another
    /// host is on it, resumes an unfinished one; a re-run writes only what changed).
    Run(commands::run::RunArgs),
    /// Serve the shards of every running run until stopped (one per host of a deployment).
    Worker(commands::worker::WorkerArgs),
    /// Serve the admin API (companies, plugins, data, runs, bills) with a worker and the
    /// nightly scheduler, until SIGINT or SIGTERM.
    Serve(commands::serve::ServeArgs),
    /// The customers with the most unpaid principal after the company's latest run.
    Arrears(commands::arrears::ArrearsArgs),
    /// Fill the cache with a company's shards before its nightly run.
    Warm(commands::warm::WarmArgs),
    /// Write, build, check, test and benchmark plugins exactly as production runs them.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// `heatbill plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a working plugin crate from the template.
    New(NewArgs),
    /// Build a plugin crate (or a workspace of them) into components, and check each.
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
}

/// `heatbill plugin build`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate or workspace directory.
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
    /// The case file whose chain and customers are measured.
    #[arg(long)]
    pub cases: PathBuf,
    /// How many customer-days to evaluate (the case file's customers, repeated).
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
}

/// Parses the arguments and runs the command; the process exit code.
pub fn main() -> ExitCode {
    // The engine's compiler child is this same executable: see `heatbill_engine::CompileConfig`.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(heatbill_engine::COMPILE_COMMAND))
    {
        return heatbill_engine::compile_child_main();
    }
    if let Ok(exe) = std::env::current_exe() {
        let _ = COMPILER.set(exe);
    }
    // Logs go to stderr, at `warn` unless HEATBILL_LOG says otherwise (e.g. `info`,
    // `heatbill_runtime=debug`); the commands' own output is stdout.
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEATBILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // HEATBILL_LOG_FORMAT=json: one JSON object per line, for a log collector.
    let json = std::env::var("HEATBILL_LOG_FORMAT").is_ok_and(|f| f == "json");
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The error may quote a plugin, a file or a database (escaped, line by line).
            let text = format!("{e:#}");
            let lines: Vec<String> = text.split('\n').map(heatbill_engine::text::safe).collect();
            eprintln!("error: {}", lines.join("\n"));
            ExitCode::from(2)
        }
    }
}

/// This executable, when it runs as the `heatbill` command (set by [`main`]).
static COMPILER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// The program that compiles plugins in a child process: the `heatbill` executable itself, when
/// this process is the `heatbill` command; none (compile in process) when the library is used
/// by another program, such as a test harness that would not understand the child's argument.
pub fn compiler_program() -> Option<std::path::PathBuf> {
    COMPILER.get().cloned()
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::Company(c) => commands::company::run(c),
        Command::Import(args) => commands::import::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Arrears(args) => commands::arrears::run(args),
        Command::Warm(args) => commands::warm::run(args),
        Command::Plugin(p) => match p {
            PluginCommand::New(a) => harness::new_plugin(a),
            PluginCommand::Build(a) => harness::build(a),
            PluginCommand::Check(a) => harness::check(a),
            PluginCommand::Test(a) => harness::test(a),
            PluginCommand::Bench(a) => harness::bench(a),
        },
    }
}
