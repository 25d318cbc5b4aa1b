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
    #[arg(long, required_unless_present_any = ["from", "stale"], conflicts_with_all = ["from", "stale"])]
    pub date: Option<NaiveDate>,
    /// Bill a range again, in order, from this date (with --to): each date's changed bills
    /// become new versions with the reason.
    #[arg(long, requires = "to", conflicts_with = "stale")]
    pub from: Option<NaiveDate>,
    /// The range's last date (at most 400 days after --from).
    #[arg(long, requires = "from")]
    pub to: Option<NaiveDate>,
    /// Bill the company's stale dates again, in order: the billed dates a correction reached
    /// since they were run (`heatbill audit` lists them too).
    #[arg(long)]
    pub stale: bool,
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
        let dates: Vec<NaiveDate> = match (args.date, args.from, args.to) {
            (Some(d), _, _) => vec![d],
            (None, Some(from), Some(to)) => {
                if to < from || (to - from).num_days() > 400 {
                    anyhow::bail!("give --from <= --to, at most 400 days apart");
                }
                from.iter_days().take_while(|d| *d <= to).collect()
            }
            _ => {
                let company = services.store.company(&args.company).await?;
                let stale = services.store.stale_dates(company.id).await?;
                if stale.dates.is_empty() {
                    if args.json {
                        println!("[]");
                    } else {
                        println!("{}: no stale dates", company.slug);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                if !args.json {
                    println!(
                        "{}: {} stale dates, {} to {}",
                        company.slug,
                        stale.dates.len(),
                        stale.dates[0],
                        stale.dates[stale.dates.len() - 1]
                    );
                }
                stale.dates
            }
        };
        let runs = run::Runs::new(run::Env::new(services, engine, settings));
        let mut reports = Vec::with_capacity(dates.len());
        // In order: each date's balances carry from the one before.
        for date in dates {
            let report = daily_run(&runs, &args.company, date, !args.json).await?;
            if !args.json {
                print!("{report}");
            }
            reports.push(report);
        }
        if args.json {
            if args.date.is_some() {
                println!("{}", serde_json::to_string_pretty(&reports[0])?);
            } else {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
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
