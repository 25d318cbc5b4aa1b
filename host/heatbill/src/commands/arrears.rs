//! `heatbill arrears --company C --top N`: the customers with the most unpaid principal after
//! the company's latest run (from the cache's ranking, rebuilt from the bills when missing).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use heatbill_runtime::run::{self, terminal_safe};

use super::Common;

/// `heatbill arrears`
#[derive(Debug, Args)]
pub struct ArrearsArgs {
    /// The company's slug.
    #[arg(long)]
    pub company: String,
    /// How many customers.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill arrears`.
pub fn run(args: ArrearsArgs) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let company = services.store.company(&args.company).await?;
        let Some(ranking) = run::top_arrears(&services, &company, args.top).await? else {
            println!("{}: no completed run yet", company.slug);
            return Ok(ExitCode::SUCCESS);
        };
        if args.json {
            let top: Vec<_> = ranking
                .top
                .iter()
                .map(|(c, a)| serde_json::json!({"customer": c, "arrears": a.to_string()}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"company": company.slug, "date": ranking.date, "top": top})
            );
        } else {
            println!(
                "{}: unpaid principal at the start of {}, largest first",
                company.slug, ranking.date
            );
            for (i, (c, a)) in ranking.top.iter().enumerate() {
                println!("{:>4}  {:<24} {:>14}", i + 1, terminal_safe(c, 24), a);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
