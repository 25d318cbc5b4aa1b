//! `heatbill company apply | show`: a company, its heating seasons and its rule chain versions
//! from a company file (until the admin API manages them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use heatbill_runtime::company::{self, CompanyFile, Components};

use super::Common;

/// `heatbill company …`
#[derive(Debug, Subcommand)]
pub enum CompanyCommand {
    /// Create or update a company from a company file: seasons, plugins, chain versions.
    Apply(ApplyArgs),
    /// Show a company: seasons, chain versions, data version.
    Show(ShowArgs),
}

/// `heatbill company apply`
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The company file (TOML).
    pub file: PathBuf,
    /// Where the chain's plugins are: a component, a directory of components, or a plugin
    /// workspace (default: this checkout's plugins/, built by `./dev plugins`). Each component
    /// must be a regular file (a link is followed) no larger than the engine's largest
    /// `max_component_bytes`; a link to a device, a FIFO or a larger file is refused unread.
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// `heatbill company show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The company's slug.
    pub company: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs a `heatbill company` command.
pub fn run(cmd: CompanyCommand, compiler: Option<&Path>) -> Result<ExitCode> {
    match cmd {
        CompanyCommand::Apply(a) => apply(a, compiler),
        CompanyCommand::Show(a) => show(a),
    }
}

fn apply(args: ApplyArgs, compiler: Option<&Path>) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    let file = CompanyFile::load(&args.file)?;
    let engine = super::engine(&settings, compiler)?;
    let plugins = args.plugins.unwrap_or_else(super::default_plugins);
    let components = Components::load(&engine, &heatbill_harness::component_files(&plugins)?)?;
    super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        let applied = company::apply(store.as_ref(), &file, &components).await?;
        println!(
            "company {} ({}), data version {}",
            applied.company.slug, applied.company.name, applied.company.data_version
        );
        for v in &applied.chains {
            println!(
                "  chain version {} from {}: {}",
                v.id,
                v.effective_from,
                v.entries
                    .iter()
                    .map(|e| format!("{} {}", e.name, e.version))
                    .collect::<Vec<_>>()
                    .join(" → ")
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn show(args: ShowArgs) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        let c = store.company(&args.company).await?;
        println!("company {} ({})", c.slug, c.name);
        println!(
            "  time zone {}, data version {}",
            c.time_zone, c.data_version
        );
        for s in &c.seasons {
            println!("  season {} → {}", s.start, s.end);
        }
        for v in store.chain_versions(c.id).await? {
            println!(
                "  chain version {} from {} (sha256 {})",
                v.id, v.effective_from, v.digest
            );
            for e in &v.entries {
                println!("    {} {} {}", e.name, e.version, e.params);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
