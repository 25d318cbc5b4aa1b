//! `heatbill warm --company C`: fills the cache with the company's shards before its nightly
//! run (with `cache.shards` on, the run then reads no customer from the database).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use heatbill_runtime::run;

use super::Common;

/// `heatbill warm`
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// The company's slug.
    #[arg(long)]
    pub company: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill warm`.
pub fn run(args: WarmArgs) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let company = services.store.company(&args.company).await?;
        let t = Instant::now();
        let shards = run::warm(&services, &settings, &company).await?;
        let stats = services.cache.stats();
        println!(
            "{}: {shards} shard(s) in the {} cache in {:.2} s ({} already there, {} loaded)",
            company.slug,
            services.cache.inner().backend(),
            t.elapsed().as_secs_f64(),
            stats.hits,
            stats.misses
        );
        Ok(ExitCode::SUCCESS)
    })
}
