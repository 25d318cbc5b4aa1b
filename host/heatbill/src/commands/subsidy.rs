//! `heatbill subsidy …`: the government's share of subsidies. Its receivable (billed, received
//! and outstanding by month), the transfers it sends, and the settlement list (政府补贴结算) of a
//! period. The same store calls as the admin API's `subsidy` endpoints.

use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use heatbill_runtime::directory::mask_name;
use heatbill_runtime::ledger;
use heatbill_runtime::run::terminal_safe;
use heatbill_runtime::subsidy::{
    NewTransfer, SETTLEMENT_CSV_HEADER, SettlementTotals, TransferRecorded,
};
use rust_decimal::Decimal;

use super::account::Who;

/// `heatbill subsidy`
#[derive(Debug, Subcommand)]
pub enum SubsidyCommand {
    /// The government receivable at the end of a date: its share billed, received and
    /// outstanding, by month.
    Receivable(ReceivableArgs),
    /// Record a government transfer (idempotent by reference; negative with --undoes).
    Transfer(TransferArgs),
    /// The transfers received up to a date.
    Transfers(ReceivableArgs),
    /// The settlement list (政府补贴结算) of a period: customers, days and amounts.
    Settlement(SettlementArgs),
}

/// `heatbill subsidy receivable` / `transfers`
#[derive(Debug, Args)]
pub struct ReceivableArgs {
    /// The date (its end); today in the company's time zone by default.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill subsidy transfer`
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The transfer's reference in the bank or treasury.
    #[arg(long)]
    pub reference: String,
    /// Yuan (negative, with --undoes, takes back some of an earlier transfer).
    #[arg(long, allow_hyphen_values = true)]
    pub amount: Decimal,
    /// The day the money arrived (default: today).
    #[arg(long)]
    pub on: Option<NaiveDate>,
    /// The first day of the settlement period it pays for (with --period-to).
    #[arg(long)]
    pub period_from: Option<NaiveDate>,
    /// The period's last day.
    #[arg(long)]
    pub period_to: Option<NaiveDate>,
    /// The transfer a negative amount takes back (some of).
    #[arg(long)]
    pub undoes: Option<i64>,
    /// A note.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill subsidy settlement`
#[derive(Debug, Args)]
pub struct SettlementArgs {
    /// The period's first day.
    #[arg(long)]
    pub from: NaiveDate,
    /// Its last day (at most 366 days after --from).
    #[arg(long)]
    pub to: NaiveDate,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (customer,account_no,name,community,building,unit,room,days,first_day,
    /// last_day,amount, then a total row).
    #[arg(long)]
    pub csv: bool,
    /// Print names unmasked (the list the government is sent).
    #[arg(long)]
    pub reveal: bool,
    #[command(flatten)]
    pub who: Who,
}

/// Runs `heatbill subsidy …`.
pub fn run(command: SubsidyCommand) -> Result<ExitCode> {
    let who = match &command {
        SubsidyCommand::Receivable(a) | SubsidyCommand::Transfers(a) => &a.who,
        SubsidyCommand::Transfer(a) => &a.who,
        SubsidyCommand::Settlement(a) => &a.who,
    };
    let settings = who.common.settings()?;
    let slug = who.company.clone();
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let store = &services.store;
        let company = store.company(&slug).await?;
        let today = ledger::local_today(&company.time_zone);
        match command {
            SubsidyCommand::Receivable(a) => {
                let r = store
                    .government_receivable(company.id, a.as_of.unwrap_or(today))
                    .await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "{}: the government's share at the end of {}",
                    company.slug, r.as_of
                );
                println!(
                    "{:<8} {:>14} {:>14} {:>14}",
                    "month", "billed", "settled", "outstanding"
                );
                for m in &r.months {
                    println!(
                        "{:<8} {:>14} {:>14} {:>14}",
                        m.month, m.billed, m.settled, m.outstanding
                    );
                }
                println!(
                    "billed {}, received {}, outstanding {}, paid ahead {}",
                    r.billed, r.received, r.outstanding, r.paid_ahead
                );
            }
            SubsidyCommand::Transfers(a) => {
                let list = store
                    .transfers(company.id, a.as_of.unwrap_or(today))
                    .await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(ExitCode::SUCCESS);
                }
                for t in &list {
                    let period = match (t.period_from, t.period_to) {
                        (Some(f), Some(to)) => format!("{f}..{to}"),
                        _ => "-".into(),
                    };
                    println!(
                        "{:>6} {} {:>14} {:<24} {:<22} {}",
                        t.id,
                        t.received_on,
                        t.amount,
                        period,
                        terminal_safe(&t.reference, 22),
                        t.undoes.map(|u| format!("undoes {u}")).unwrap_or_default()
                    );
                }
                println!("{} transfers", list.len());
            }
            SubsidyCommand::Transfer(a) => {
                let received_on = a.on.unwrap_or(today);
                if received_on > today {
                    bail!(
                        "--on {received_on} is after today ({today} in {}): money is recorded \
                         on the day it arrived",
                        company.time_zone
                    );
                }
                let t = NewTransfer {
                    reference: a.reference,
                    received_on,
                    amount: a.amount,
                    period_from: a.period_from,
                    period_to: a.period_to,
                    undoes: a.undoes,
                    note: a.note,
                    recorded_by: a.who.by(),
                    source: "cli".into(),
                };
                t.check().map_err(anyhow::Error::msg)?;
                match store.record_transfer(company.id, &t).await? {
                    TransferRecorded::New(t) => println!(
                        "transfer {} recorded: {} received on {}",
                        t.id, t.amount, t.received_on
                    ),
                    TransferRecorded::Again(t) => println!(
                        "transfer {} was recorded before ({} received on {}): nothing changed",
                        t.id, t.amount, t.received_on
                    ),
                }
            }
            SubsidyCommand::Settlement(a) => {
                if a.to < a.from || (a.to - a.from).num_days() > 366 {
                    bail!("give --from <= --to, at most 366 days apart");
                }
                let mut lines = store.settlement(company.id, a.from, a.to).await?;
                if !a.reveal {
                    for l in &mut lines {
                        l.name = l.name.as_deref().map(mask_name);
                    }
                }
                let mut totals = SettlementTotals::default();
                for l in &lines {
                    totals.add(l);
                }
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "from": a.from, "to": a.to, "customers": totals.customers,
                            "days": totals.days, "amount": ledger::fen(totals.amount),
                            "lines": lines,
                        }))?
                    );
                } else if a.csv {
                    use std::io::Write;
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    out.write_all(SETTLEMENT_CSV_HEADER.as_bytes())?;
                    for l in &lines {
                        out.write_all(l.csv().as_bytes())?;
                    }
                    out.write_all(totals.csv().as_bytes())?;
                    out.flush()?;
                } else {
                    println!(
                        "{}: the government's share from {} to {}",
                        company.slug, a.from, a.to
                    );
                    for l in &lines {
                        println!(
                            "{:<16} {:<14} {:<8} {:>4} days {:>12}",
                            terminal_safe(&l.customer_id, 16),
                            terminal_safe(l.account_no.as_deref().unwrap_or("-"), 14),
                            terminal_safe(l.name.as_deref().unwrap_or("-"), 8),
                            l.days,
                            ledger::fen(l.amount)
                        );
                    }
                    println!(
                        "{} customers, {} days, {} yuan",
                        totals.customers,
                        totals.days,
                        ledger::fen(totals.amount)
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
