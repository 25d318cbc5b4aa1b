//! The `heatbill` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    self, account::AccountCommand, company::CompanyCommand, customer::CustomerCommand,
    plugin::PluginCommand,
};

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
    /// A customer's account, and the money that moves on it: payments, reversals, refunds,
    /// adjustments, write-offs; a day's close per cashier and channel.
    #[command(subcommand)]
    Account(AccountCommand),
    /// The customer directory: find a customer by account number, name, phone or address;
    /// a customer's profile and its revisions; a new revision.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Channel statements (WeChat Pay, Alipay, banks) reconciled against the ledger: import,
    /// list, show the discrepancies, recover a lost notification, save a bank's mapping.
    #[command(subcommand)]
    Statement(commands::statement::StatementCommand),
    /// The government's share of subsidies: its receivable by month, its transfers, and the
    /// settlement list (政府补贴结算) of a period.
    #[command(subcommand)]
    Subsidy(commands::subsidy::SubsidyCommand),
    /// Payment notices (缴费通知单) the nightly run issued by the company's billing policy:
    /// list (text, JSON, CSV), show, print as HTML, and what a customer owes by notice.
    #[command(subcommand)]
    Notice(commands::notice::NoticeCommand),
    /// Events out and fee control (费控): events and their deliveries, replays, a customer's
    /// valve and timeline, hold and dispute flags, one publishing round.
    #[command(subcommand)]
    Event(commands::event::EventCommand),
    /// The customers with the most unpaid principal after the company's latest run.
    Arrears(commands::arrears::ArrearsArgs),
    /// Check a company's books: open and stale dates, totals against lines, balances carried
    /// from day to day, the history of re-billed customers (exit 1 when something is wrong).
    Audit(commands::audit::AuditArgs),
    /// Fill the cache with a company's shards before its nightly run.
    Warm(commands::warm::WarmArgs),
    /// Write, build, check, test and benchmark plugins exactly as production runs them.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// Parses the arguments and runs the command; the process exit code.
pub fn main() -> ExitCode {
    // The engine's compiler child is this same executable: see `heatbill_engine::CompileConfig`.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(heatbill_engine::COMPILE_COMMAND))
    {
        return heatbill_engine::compile_child_main();
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
    // This executable compiles plugins in its child processes (it knows the child's argument,
    // above): engine configuration that only `main` can give, passed down to the commands.
    let compiler = std::env::current_exe().ok();
    match run(cli, compiler.as_deref()) {
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

/// Runs a parsed command line; `compiler` is the program that compiles plugins in a child
/// process (this executable), or none to compile in process.
pub fn run(cli: Cli, compiler: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => commands::demo::run(args, compiler),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::Company(c) => commands::company::run(c, compiler),
        Command::Import(args) => commands::import::run(args),
        Command::Run(args) => commands::run::run(args, compiler),
        Command::Worker(args) => commands::worker::run(args, compiler),
        Command::Serve(args) => commands::serve::run(args, compiler),
        Command::Account(c) => commands::account::run(c),
        Command::Customer(c) => commands::customer::run(c),
        Command::Statement(c) => commands::statement::run(c),
        Command::Subsidy(c) => commands::subsidy::run(c),
        Command::Notice(c) => commands::notice::run(c),
        Command::Event(c) => commands::event::run(c),
        Command::Arrears(args) => commands::arrears::run(args),
        Command::Audit(args) => commands::audit::run(args),
        Command::Warm(args) => commands::warm::run(args),
        Command::Plugin(p) => commands::plugin::run(p, compiler),
    }
}
