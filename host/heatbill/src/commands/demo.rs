//! `heatbill demo`: the nightly job from end to end on a generated company, on the embedded
//! default (a SQLite file, nothing to install) or on PostgreSQL with `--database`.
//!
//! It migrates a fresh database, creates the Harbin demo company with every reference plugin,
//! writes the company's CSV files and imports them through the import path, runs the day,
//! prints the report, and runs the same day again to show that nothing is written twice: once
//! as the night would (nothing changed, nothing read), once comparing every customer's inputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Args;
use heatbill_runtime::company::{self, CompanyFile, Components};
use heatbill_runtime::demo;
use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::model::ImportKind;
use heatbill_runtime::settings::redact_url;

use super::Common;

/// `heatbill demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many customers the company has.
    #[arg(long, default_value_t = 100_000)]
    pub customers: usize,
    /// The bill date.
    #[arg(long, default_value = "2026-01-15")]
    pub date: NaiveDate,
    /// Where the built reference plugins are: a directory of components, or the plugins
    /// workspace (default: this checkout's plugins/, built by `./dev plugins`).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// The database (default: a fresh SQLite file heatbill-demo.db in the working directory;
    /// with postgres://… the demo company is replaced).
    #[arg(long)]
    pub database: Option<String>,
    /// A settings file.
    #[arg(long, env = "HEATBILL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// One line about a re-run.
fn summary(r: &heatbill_runtime::run::RunReport, what: &str) -> String {
    let c = &r.this_process;
    format!(
        "run {} (attempt {}): {} {what}, {} unchanged, {} written, in {:.2} s",
        r.run_id,
        r.attempt,
        c.customers,
        c.unchanged,
        c.written + c.revised,
        r.seconds
    )
}

/// Runs the demo.
pub fn run(args: DemoArgs, compiler: Option<&Path>) -> Result<ExitCode> {
    if args.customers == 0 {
        bail!("--customers must be at least 1");
    }
    let fresh_file = args.database.is_none();
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| "sqlite://heatbill-demo.db".to_string());
    if fresh_file {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("heatbill-demo.db{suffix}"));
        }
    }
    let common = Common {
        config: args.config.clone(),
        database: Some(url.clone()),
        redis: None,
    };
    let settings = common.settings()?;
    let engine = super::engine(&settings, compiler)?;
    let plugins = args.plugins.clone().unwrap_or_else(super::default_plugins);
    let files = heatbill_harness::component_files(&plugins).with_context(|| {
        format!(
            "cannot find the reference plugins in {}: build them with `./dev plugins`",
            plugins.display()
        )
    })?;
    let components = Components::load(&engine, &files)?;
    let company_file = CompanyFile::parse(demo::COMPANY_FILE)
        .map_err(|e| anyhow::anyhow!("the built-in demo company: {e}"))?;

    super::runtime()?.block_on(async {
        println!(
            "heatbill demo: {} customers of {}, bill date {}, database {}",
            args.customers,
            demo::COMPANY,
            args.date,
            redact_url(&url)
        );
        let services = super::open_services(&settings).await?;
        let store = services.store.clone();
        store.migrate().await?;
        if store.company(demo::COMPANY).await.is_ok() {
            println!("replacing the demo company left by an earlier demo");
            store.delete_company(demo::COMPANY).await?;
        }
        let applied = company::apply(store.as_ref(), &company_file, &components).await?;
        let chain = &applied.chains[0];
        println!(
            "chain from {}: {}",
            chain.effective_from,
            chain
                .entries
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        );

        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        let csv = demo::write_files(dir.path(), args.customers, args.date)?;
        println!(
            "\n== import (the company's CSV files, generated in {:.2} s)",
            t.elapsed().as_secs_f64()
        );
        for (kind, path) in [
            (ImportKind::Customers, &csv.customers),
            (ImportKind::Readings, &csv.readings),
            (ImportKind::Temperatures, &csv.temperatures),
            (ImportKind::Balances, &csv.balances),
            (ImportKind::Payments, &csv.payments),
        ] {
            let t = Instant::now();
            match import::import_file(
                store.as_ref(),
                &applied.company,
                kind,
                path,
                &settings.import,
            )
            .await?
            {
                ImportOutcome::Imported(c) => println!(
                    "{kind:<13} {:>9} rows in {:>6.2} s",
                    c.rows,
                    t.elapsed().as_secs_f64()
                ),
                ImportOutcome::Refused { errors, total } => {
                    bail!(
                        "the generated {kind} file was refused ({total} problems), e.g. {}",
                        errors.first().map(|e| e.to_string()).unwrap_or_default()
                    )
                }
            }
        }

        let run = |settings: heatbill_runtime::settings::Settings| {
            use heatbill_runtime::run::{Env, Runs};
            let runs = Runs::new(Env::new(services.clone(), engine.clone(), settings));
            async move { super::run::daily_run(&runs, demo::COMPANY, args.date, true).await }
        };
        println!("\n== the daily run");
        let first = run(settings.clone()).await?;
        print!("{first}");
        println!("\n== the same day again (nothing changed, so nothing is read or written)");
        let second = run(settings.clone()).await?;
        println!("{}", summary(&second, "customers"));
        println!("\n== once more, comparing every customer's inputs with its bill (run --verify)");
        let mut verify = settings.clone();
        verify.run.always_compare = true;
        let third = run(verify).await?;
        println!("{}", summary(&third, "customers compared"));
        if let Some(bytes) = store.bill_bytes(applied.company.id, args.date).await?
            && first.counts.written > 0
        {
            println!(
                "\nstored: {bytes} bytes for the bills' table, about {} bytes per bill",
                bytes / first.counts.written
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
