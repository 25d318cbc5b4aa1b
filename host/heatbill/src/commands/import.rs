//! `heatbill import KIND FILE --company C`: one CSV file, all or nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::model::ImportKind;
use heatbill_runtime::store::prelude::*;

use super::Common;

/// What a file holds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// customer_id, class, building_area, … (effective-dated versions)
    Customers,
    /// customer_id, date or time (hourly), heat_gj
    Readings,
    /// customer_id, date, celsius
    Temperatures,
    /// payment_id, customer_id, paid_on, amount
    Payments,
    /// customer_id, as_of, arrears, arrears_since (opening balances)
    Balances,
    /// customer_id, valid_from, account_no, name, phone, community, building, unit, room,
    /// reason (the directory)
    Profiles,
}

impl From<Kind> for ImportKind {
    fn from(k: Kind) -> ImportKind {
        match k {
            Kind::Customers => ImportKind::Customers,
            Kind::Readings => ImportKind::Readings,
            Kind::Temperatures => ImportKind::Temperatures,
            Kind::Payments => ImportKind::Payments,
            Kind::Balances => ImportKind::Balances,
            Kind::Profiles => ImportKind::Profiles,
        }
    }
}

/// `heatbill import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the file holds (docs/import-formats.md lists each kind's columns).
    pub kind: Kind,
    /// The CSV file (UTF-8, a header row).
    pub file: PathBuf,
    /// The company's slug.
    #[arg(long)]
    pub company: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill import`.
pub fn run(args: ImportArgs) -> Result<ExitCode> {
    let settings = args.common.settings()?;
    super::runtime()?.block_on(async {
        let store = super::open_store(&settings).await?;
        import_one(store.as_ref(), &settings.import, &args).await
    })
}

async fn import_one(
    store: &dyn Store,
    settings: &heatbill_runtime::settings::ImportSettings,
    args: &ImportArgs,
) -> Result<ExitCode> {
    let company = store.company(&args.company).await?;
    let kind: ImportKind = args.kind.into();
    let t = Instant::now();
    let outcome = import::import_file(store, &company, kind, &args.file, settings).await?;
    let secs = t.elapsed().as_secs_f64();
    match outcome {
        ImportOutcome::Imported(c) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"imported": true, "kind": kind, "counts": c, "seconds": secs})
                );
            } else {
                println!(
                    "imported {} {kind} rows from {} in {secs:.2} s: {} new, {} changed, {} unchanged",
                    c.rows,
                    args.file.display(),
                    c.inserted,
                    c.updated,
                    c.unchanged
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ImportOutcome::Refused { errors, total } => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"imported": false, "kind": kind, "bad_rows": total, "errors": errors})
                );
            } else {
                println!(
                    "{}: nothing imported: {total} problem(s) in the file; fix them and import \
                     the whole file again",
                    args.file.display()
                );
                for e in &errors {
                    println!("  {e}");
                }
                if total as usize > errors.len() {
                    println!("  … {} more", total as usize - errors.len());
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}
