//! `heatbill run --company C --date D`: the daily run, or its resumption.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use heatbill_runtime::run::{self, Progress, RunReport};
use indicatif::{ProgressBar, ProgressStyle};

use super::Common;

/// `heatbill run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The company's slug.
    #[arg(long)]
    pub company: String,
    /// The bill date (the company's local date).
    #[arg(long)]
    pub date: NaiveDate,
    /// Print the report as JSON (and no progress).
    #[arg(long)]
    pub json: bool,
    /// Compare every customer's inputs with its bill even if nothing changed since the date's
    /// last run (after changing the database by other means than heatbill).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `heatbill run`.
pub fn run(args: RunArgs, compiler: Option<&Path>) -> Result<ExitCode> {
    let mut settings = args.common.settings()?;
    settings.run.always_compare |= args.verify;
    let engine = super::engine(&settings, compiler)?;
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let runs = run::Runs::new(run::Env::new(services, engine, settings));
        let report = daily_run(&runs, &args.company, args.date, !args.json).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One run with its progress shown: a bar on a terminal, a line per tenth of the shards
/// otherwise (`show` false: nothing).
pub async fn daily_run(
    runs: &run::Runs,
    company: &str,
    date: NaiveDate,
    show: bool,
) -> Result<RunReport> {
    let mut shown = Shown::new(show);
    let report = runs.run(company, date, |p| shown.update(p)).await;
    shown.finish();
    Ok(report?)
}

/// How progress is shown.
enum Shown {
    Nothing,
    Bar(Option<ProgressBar>),
    Lines { next: u64 },
}

impl Shown {
    fn new(show: bool) -> Shown {
        if !show {
            Shown::Nothing
        } else if std::io::stderr().is_terminal() {
            Shown::Bar(None)
        } else {
            Shown::Lines { next: 0 }
        }
    }

    fn update(&mut self, p: &Progress) {
        let c = &p.counts;
        let rate = c.customers as f64 / p.elapsed.as_secs_f64().max(1e-9);
        match self {
            Shown::Nothing => {}
            Shown::Bar(bar) => {
                let bar = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(p.shards);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{bar:40} {pos}/{len} shards {elapsed_precise} {msg}",
                        )
                        .expect("a valid template"),
                    );
                    b
                });
                bar.set_position(p.shards_done);
                bar.set_message(format!(
                    "{} billed, {} unchanged, {} parked, {rate:.0}/s",
                    c.written + c.revised,
                    c.unchanged,
                    c.parked
                ));
            }
            Shown::Lines { next } => {
                if p.shards_done >= *next || p.shards_done == p.shards {
                    eprintln!(
                        "shards {}/{}: {} billed, {} unchanged, {} parked, {rate:.0} customers/s",
                        p.shards_done,
                        p.shards,
                        c.written + c.revised,
                        c.unchanged,
                        c.parked
                    );
                    *next = p.shards_done + (p.shards / 10).max(1);
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Shown::Bar(Some(bar)) = self {
            bar.finish_and_clear();
        }
    }
}
