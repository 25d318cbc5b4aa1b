//! `heatbill migrate`: applies the schema migrations to the configured database.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use heatbill_runtime::settings::redact_url;

use super::Common;

/// `heatbill migrate`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill migrate`.
pub fn run(args: MigrateArgs) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        store.migrate().await?;
        println!("{} is up to date", redact_url(&settings.database.url));
        Ok(ExitCode::SUCCESS)
    })
}
