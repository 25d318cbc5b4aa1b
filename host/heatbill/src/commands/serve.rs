//! `heatbill serve`: the admin API, a worker and the nightly scheduler on this host.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use super::Common;
use heatbill_api::{self as api, AppState};

/// `heatbill serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The address to listen on, overriding `api.listen` (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
}

/// Runs `heatbill serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs, compiler: Option<&Path>) -> Result<ExitCode> {
    let mut settings = args.common.settings()?;
    if let Some(l) = args.listen {
        settings.api.listen = l;
    }
    let engine = super::engine(&settings, compiler)?;
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        // The schema is brought up to date at start (migrations are idempotent and locked).
        services
            .store
            .migrate()
            .await
            .context("cannot migrate the database")?;
        let (token, generated) = match settings.api.operator_token.clone() {
            Some(t) if t.len() >= 16 => (t, false),
            Some(_) => anyhow::bail!(
                "api.operator_token is shorter than 16 characters; give a long random one"
            ),
            None => (
                api::auth::new_token().map_err(|e| anyhow::anyhow!(e.message))?,
                true,
            ),
        };
        let listener = tokio::net::TcpListener::bind(&settings.api.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.api.listen))?;
        let addr = listener.local_addr()?;
        let app = Arc::new(AppState::new(services, engine, settings, &token));
        println!(
            "heatbill admin API on http://{addr} (API reference: http://{addr}/docs; operator \
             console: http://{addr}/console)"
        );
        if generated {
            // The one place the token is shown; it is never logged.
            println!(
                "operator token (made for this process; set api.operator_token or \
                 HEATBILL_API__OPERATOR_TOKEN to keep one): {token}"
            );
        }
        let stop = super::stop_signal();
        api::serve(app, listener, stop).await?;
        println!("heatbill admin API stopped");
        Ok(ExitCode::SUCCESS)
    })
}
