//! `heatbill worker`: serves the shards of every running run, on this host, until stopped.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use heatbill_runtime::run;

use super::Common;

/// `heatbill worker`
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill worker` until SIGINT or SIGTERM; the shards in hand are written first.
pub fn run(args: WorkerArgs, compiler: Option<&Path>) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    let engine = super::engine(&settings, compiler)?;
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        eprintln!(
            "worker {} serving every running run (stop with Ctrl-C)",
            services.worker
        );
        let stop = super::stop_signal();
        let worker = services.worker.clone();
        let runs = run::Runs::new(run::Env::new(services, engine, settings));
        let served = runs.serve(stop).await?;
        println!(
            "worker {}: {} run(s), {} shard(s), {} customers, {} write(s) refused by fencing",
            worker,
            served.runs,
            served.joined.shards,
            served.joined.counts.customers,
            served.joined.writes_refused
        );
        Ok(ExitCode::SUCCESS)
    })
}
