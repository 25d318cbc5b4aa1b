//! `heatbill audit --company C [--from D] [--to D]`: the company's books checked, date by date
//! (see `heatbill_runtime::audit`): open and stale dates, bill totals against their lines,
//! balances carried from day to day, the history of every re-billed customer. Exits 1 when
//! something is wrong, listing it with the customer and date.

use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use heatbill_runtime::audit::{self, AuditOptions};

use super::Common;

/// `heatbill audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The company's slug.
    #[arg(long)]
    pub company: String,
    /// The first date (default: six days before the last billed date).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// The last date (default: the last billed date).
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Problems listed in full (all are counted).
    #[arg(long, default_value_t = 100)]
    pub max_listed: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill audit`: exit 0 when the books are in order, 1 when not.
pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let options = AuditOptions {
            from: args.from,
            to: args.to,
            shard_size: settings.run.shard_size.max(1),
            max_listed: args.max_listed,
        };
        let report = audit::audit(services.store.as_ref(), &args.company, &options).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        Ok(if report.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
