//! `heatbill notice …`: the payment notices (缴费通知单) the nightly run issued by the company's
//! billing policy: list them (text, JSON or CSV), show one, print one as an HTML page, and show
//! what a customer owes by notice. The same store calls as the admin API's `notices` endpoints.

use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use heatbill_runtime::ledger;
use heatbill_runtime::notices::{self, Addressee};
use heatbill_runtime::run::terminal_safe;
use heatbill_runtime::store::notices::{MAX_NOTICES_PAGE, NoticeFilter};

use super::account::Who;

/// `heatbill notice`
#[derive(Debug, Subcommand)]
pub enum NoticeCommand {
    /// The company's notices, by id (all pages).
    List(ListArgs),
    /// One notice.
    Show(OneArgs),
    /// One notice as a printable HTML page (with the customer's name and address).
    Print(OneArgs),
    /// What a customer owes by notice at the end of a date.
    Due(DueArgs),
}

/// `heatbill notice list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One customer's.
    #[arg(long)]
    pub customer: Option<String>,
    /// Issued on this day.
    #[arg(long)]
    pub issued_on: Option<NaiveDate>,
    /// Due on this day.
    #[arg(long)]
    pub due_on: Option<NaiveDate>,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (number,customer_id,kind,period_start,period_end,seq,issued_on,due_on,amount,
    /// projected,lines).
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill notice show` / `print`
#[derive(Debug, Args)]
pub struct OneArgs {
    /// The notice's id (the number without `N-` and its zeros).
    pub id: i64,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill notice due`
#[derive(Debug, Args)]
pub struct DueArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// The date (its end); today in the company's time zone by default.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// Runs `heatbill notice …`.
pub fn run(command: NoticeCommand) -> Result<ExitCode> {
    let who = match &command {
        NoticeCommand::List(a) => &a.who,
        NoticeCommand::Show(a) | NoticeCommand::Print(a) => &a.who,
        NoticeCommand::Due(a) => &a.who,
    };
    let settings = who.common.settings()?;
    let slug = who.company.clone();
    let print = matches!(command, NoticeCommand::Print(_));
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let store = &services.store;
        let company = store.company(&slug).await?;
        match command {
            NoticeCommand::List(a) => {
                let mut filter = NoticeFilter {
                    customer_id: a.customer.clone(),
                    issued_on: a.issued_on,
                    due_on: a.due_on,
                    limit: MAX_NOTICES_PAGE,
                    ..Default::default()
                };
                if a.csv {
                    print!("{}", notices::NOTICES_CSV_HEADER);
                } else if !a.json {
                    println!(
                        "{:<9} {:<14} {:<6} {:<23} {:>3} {:<10} {:<10} {:>12}",
                        "number", "customer", "kind", "period", "seq", "issued", "due", "amount"
                    );
                }
                let mut all = Vec::new();
                loop {
                    let page = store.notices(company.id, &filter).await?;
                    let full = page.len() == MAX_NOTICES_PAGE;
                    filter.after_id = page.last().map_or(filter.after_id, |n| n.id);
                    for n in page {
                        if a.csv {
                            print!("{}", n.csv());
                        } else if a.json {
                            all.push(n);
                        } else {
                            println!(
                                "{:<9} {:<14} {:<6} {:<23} {:>3} {:<10} {:<10} {:>12}",
                                n.number(),
                                terminal_safe(&n.customer_id, 14),
                                n.kind.as_str(),
                                format!("{}..{}", n.period_start, n.period_end),
                                n.seq,
                                n.issued_on,
                                n.due_on,
                                n.amount
                            );
                        }
                    }
                    if !full {
                        break;
                    }
                }
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                }
            }
            NoticeCommand::Show(a) | NoticeCommand::Print(a) => {
                let Some(n) = store.notice(company.id, a.id).await? else {
                    bail!(
                        "company {} has no notice {}: list them with heatbill notice list --company {}",
                        company.slug,
                        a.id,
                        company.slug
                    );
                };
                if print {
                    let p = store
                        .profile_on(company.id, &n.customer_id, n.issued_on)
                        .await?;
                    print!(
                        "{}",
                        notices::printable(&company.name, &n, &Addressee::of(p.map(|p| p.profile)))
                    );
                } else {
                    println!("{}", serde_json::to_string_pretty(&n)?);
                }
            }
            NoticeCommand::Due(a) => {
                let as_of = a
                    .as_of
                    .unwrap_or_else(|| ledger::local_today(&company.time_zone));
                let policy =
                    ledger::Allocation::of(&company.policies).map_err(anyhow::Error::msg)?;
                let rows = store
                    .customer_standing(company.id, &a.customer, as_of, policy)
                    .await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "{} at the end of {as_of}",
                    terminal_safe(&a.customer, 64)
                );
                for r in &rows {
                    println!(
                        "{:<9} due {} {:>12} paid {:>12} left {:>12}{}",
                        r.notice.number(),
                        r.notice.due_on,
                        r.notice.amount,
                        r.paid,
                        r.outstanding,
                        if r.overdue { "  OVERDUE" } else { "" }
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
