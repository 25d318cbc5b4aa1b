//! `heatbill account …`: a customer's account, and the money that moves on it from the command
//! line (a cashier's counter, an operator's corrections): payments, reversals, refunds,
//! adjustments, write-offs, and a day's close. The same store calls as the admin API's
//! `accounts` endpoints; every entry records who (`--by`, else `$USER`) and `cli`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use heatbill_runtime::ledger::{self, Channel, Entry, EntryKind, NewEntry, Recorded, Undo};
use heatbill_runtime::run::terminal_safe;
use rust_decimal::Decimal;

use super::Common;

/// `heatbill account`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// A customer's account at the end of a date: billed, paid, due, credit and the entries.
    Show(ShowArgs),
    /// Record a payment (idempotent by channel and transaction id).
    Pay(PayArgs),
    /// Reverse a payment: take back all that is left of it.
    Reverse(UndoArgs),
    /// Refund some or all of a payment.
    Refund(RefundArgs),
    /// Record an adjustment (or, with --write-off, a write-off).
    Adjust(AdjustArgs),
    /// A day's close (日结): payments, reversals and refunds per cashier and channel.
    Close(CloseArgs),
    /// A customer statement (对账单) for a period: opening balance, charges by month and line
    /// code, payments, adjustments, closing balance.
    Statement(StatementArgs),
    /// The receivables report: balances by age (current, 30, 60, 90+ days) and community.
    Receivables(ReceivablesArgs),
}

/// `heatbill account receivables`
#[derive(Debug, Args)]
pub struct ReceivablesArgs {
    /// The date (its end); today in the company's time zone by default.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (community,customers,owing,owed,current,days_30,days_60,days_90,credit).
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill account statement`
#[derive(Debug, Args)]
pub struct StatementArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// The first day.
    #[arg(long)]
    pub from: NaiveDate,
    /// The last day (at most 366 days after --from).
    #[arg(long)]
    pub to: NaiveDate,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (section,month,code,description,date,entry,kind,amount).
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub who: Who,
}

/// Who and which company.
#[derive(Debug, Args)]
pub struct Who {
    /// The company's slug.
    #[arg(long)]
    pub company: String,
    /// Who records it (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

impl Who {
    /// Who records: `--by`, else `$USER`, else `cli`.
    pub fn by(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "cli".into())
    }
}

/// `heatbill account show`
#[derive(Debug, Args)]
pub struct ShowArgs {
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

/// `heatbill account pay`
#[derive(Debug, Args)]
pub struct PayArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// The amount in yuan (e.g. 120.50).
    #[arg(long)]
    pub amount: Decimal,
    /// counter, wechat, alipay, bank or government.
    #[arg(long, default_value = "counter")]
    pub channel: String,
    /// The transaction id in the channel (the counter: the receipt number).
    #[arg(long)]
    pub txn: String,
    /// The day it was received (default: today).
    #[arg(long)]
    pub paid_on: Option<NaiveDate>,
    /// cash, card, cheque, transfer, …
    #[arg(long)]
    pub method: Option<String>,
    /// The cashier.
    #[arg(long)]
    pub cashier: Option<String>,
    /// A note.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill account reverse`
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The payment's entry id.
    #[arg(long)]
    pub entry: i64,
    /// Why.
    #[arg(long)]
    pub note: String,
    /// The value date (default: today).
    #[arg(long)]
    pub on: Option<NaiveDate>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill account refund`
#[derive(Debug, Args)]
pub struct RefundArgs {
    /// The payment's entry id.
    #[arg(long)]
    pub entry: i64,
    /// What is paid back.
    #[arg(long)]
    pub amount: Decimal,
    /// Why.
    #[arg(long)]
    pub note: String,
    /// The refund's id in the payment's channel.
    #[arg(long)]
    pub txn: Option<String>,
    /// The value date (default: today).
    #[arg(long)]
    pub on: Option<NaiveDate>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill account adjust`
#[derive(Debug, Args)]
pub struct AdjustArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// Signed: positive credits the customer, negative debits.
    #[arg(long, allow_hyphen_values = true)]
    pub amount: Decimal,
    /// The company's reason code.
    #[arg(long)]
    pub reason: String,
    /// Why, in words.
    #[arg(long)]
    pub note: String,
    /// A write-off (the debt given up) instead of an adjustment.
    #[arg(long)]
    pub write_off: bool,
    /// The value date (default: today).
    #[arg(long)]
    pub on: Option<NaiveDate>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill account close`
#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The day.
    #[arg(long)]
    pub date: NaiveDate,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// Runs `heatbill account …`.
pub fn run(command: AccountCommand) -> Result<ExitCode> {
    let who = match &command {
        AccountCommand::Show(a) => &a.who,
        AccountCommand::Pay(a) => &a.who,
        AccountCommand::Reverse(a) => &a.who,
        AccountCommand::Refund(a) => &a.who,
        AccountCommand::Adjust(a) => &a.who,
        AccountCommand::Close(a) => &a.who,
        AccountCommand::Statement(a) => &a.who,
        AccountCommand::Receivables(a) => &a.who,
    };
    let settings = who.common.settings()?;
    let slug = who.company.clone();
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let store = &services.store;
        let company = store.company(&slug).await?;
        let today = ledger::local_today(&company.time_zone);
        let not_after_today = |what: &str, d: Option<NaiveDate>| -> Result<NaiveDate> {
            let d = d.unwrap_or(today);
            if d > today {
                bail!(
                    "{what} {d} is after today ({today} in {})",
                    company.time_zone
                );
            }
            Ok(d)
        };
        let recorded = match command {
            AccountCommand::Show(a) => {
                if !store.has_customer(company.id, &a.customer).await? {
                    bail!(
                        "company {} has no customer {}",
                        company.slug,
                        terminal_safe(&a.customer, 60)
                    );
                }
                let as_of = a.as_of.unwrap_or(today);
                let policy =
                    ledger::Allocation::of(&company.policies).map_err(anyhow::Error::msg)?;
                let facts = store.account_facts(company.id, &a.customer, as_of).await?;
                let acc = ledger::account(&a.customer, as_of, policy, facts);
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&acc)?);
                } else {
                    print_account(&acc);
                }
                return Ok(ExitCode::SUCCESS);
            }
            AccountCommand::Statement(a) => {
                if a.to < a.from || (a.to - a.from).num_days() > 366 {
                    bail!("give --from <= --to, at most 366 days apart");
                }
                if !store.has_customer(company.id, &a.customer).await? {
                    bail!(
                        "company {} has no customer {}",
                        company.slug,
                        terminal_safe(&a.customer, 60)
                    );
                }
                let policy =
                    ledger::Allocation::of(&company.policies).map_err(anyhow::Error::msg)?;
                let s = store
                    .statement(company.id, &a.customer, policy, a.from, a.to)
                    .await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&s)?);
                } else if a.csv {
                    print!("{}", s.csv());
                } else {
                    print_statement(&s);
                }
                return Ok(ExitCode::SUCCESS);
            }
            AccountCommand::Receivables(a) => {
                let as_of = a.as_of.unwrap_or(today);
                let Some(r) = store.receivables(company.id, as_of, 20_000).await? else {
                    bail!(
                        "company {} has no completed run dated on or before {as_of}: run a date \
                         first",
                        company.slug
                    );
                };
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else if a.csv {
                    print!("{}", r.csv());
                } else {
                    println!(
                        "{}: receivables at the end of {} (billed through {})",
                        company.slug, r.as_of, r.cuts.billed_through
                    );
                    println!(
                        "{:<24} {:>9} {:>7} {:>14} {:>13} {:>13} {:>13} {:>13} {:>12}",
                        "community",
                        "customers",
                        "owing",
                        "owed",
                        "current",
                        "30-59",
                        "60-89",
                        "90+",
                        "credit"
                    );
                    let rows = r
                        .communities
                        .iter()
                        .map(|(c, b)| (terminal_safe(c.as_deref().unwrap_or("(none)"), 24), b))
                        .chain([("(total)".to_string(), &r.total)]);
                    for (name, b) in rows {
                        println!(
                            "{:<24} {:>9} {:>7} {:>14} {:>13} {:>13} {:>13} {:>13} {:>12}",
                            name,
                            b.customers,
                            b.owing,
                            b.owed,
                            b.current,
                            b.days_30,
                            b.days_60,
                            b.days_90,
                            b.credit
                        );
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            AccountCommand::Close(a) => {
                let entries = store.entries_on(company.id, a.date).await?;
                let close = ledger::day_close(a.date, &entries);
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&close)?);
                } else {
                    println!("{}: close of {}", company.slug, close.date);
                    println!(
                        "{:<20} {:<11} {:>8} {:>14} {:>7} {:>14} {:>14}",
                        "cashier", "channel", "payments", "paid", "undone", "undone", "net"
                    );
                    for t in &close.tills {
                        println!(
                            "{:<20} {:<11} {:>8} {:>14} {:>7} {:>14} {:>14}",
                            terminal_safe(t.cashier.as_deref().unwrap_or("-"), 20),
                            t.channel.map_or("-", Channel::as_str),
                            t.payments,
                            t.paid,
                            t.undone,
                            t.undone_amount,
                            t.net
                        );
                    }
                    println!("{:<20} {:<11} {:>61}", "total", "", close.net);
                }
                return Ok(ExitCode::SUCCESS);
            }
            AccountCommand::Pay(a) => {
                let channel = match Channel::parse(&a.channel) {
                    Some(Channel::Import) | None => bail!(
                        "--channel {}: give counter, wechat, alipay, bank or government",
                        terminal_safe(&a.channel, 40)
                    ),
                    Some(c) => c,
                };
                let e = NewEntry {
                    customer_id: a.customer,
                    kind: EntryKind::Payment,
                    on_date: not_after_today("--paid-on", a.paid_on)?,
                    amount: a.amount,
                    channel: Some(channel),
                    receipt_no: (channel == Channel::Counter).then(|| a.txn.clone()),
                    channel_txn: Some(a.txn),
                    method: a.method,
                    cashier: a.cashier,
                    reason_code: None,
                    note: a.note,
                    recorded_by: a.who.by(),
                    source: "cli".into(),
                };
                e.check().map_err(anyhow::Error::msg)?;
                store.record_entry(company.id, &e).await?
            }
            AccountCommand::Adjust(a) => {
                let e = NewEntry {
                    customer_id: a.customer,
                    kind: if a.write_off {
                        EntryKind::WriteOff
                    } else {
                        EntryKind::Adjustment
                    },
                    on_date: not_after_today("--on", a.on)?,
                    amount: a.amount,
                    channel: None,
                    channel_txn: None,
                    method: None,
                    receipt_no: None,
                    cashier: None,
                    reason_code: Some(a.reason),
                    note: Some(a.note),
                    recorded_by: a.who.by(),
                    source: "cli".into(),
                };
                e.check().map_err(anyhow::Error::msg)?;
                store.record_entry(company.id, &e).await?
            }
            AccountCommand::Reverse(a) => {
                let u = Undo {
                    payment: a.entry,
                    kind: EntryKind::Reversal,
                    amount: None,
                    on_date: not_after_today("--on", a.on)?,
                    channel_txn: None,
                    cashier: None,
                    note: a.note,
                    recorded_by: a.who.by(),
                    source: "cli".into(),
                };
                u.check().map_err(anyhow::Error::msg)?;
                store.undo_payment(company.id, &u).await?
            }
            AccountCommand::Refund(a) => {
                let u = Undo {
                    payment: a.entry,
                    kind: EntryKind::Refund,
                    amount: Some(a.amount),
                    on_date: not_after_today("--on", a.on)?,
                    channel_txn: a.txn,
                    cashier: None,
                    note: a.note,
                    recorded_by: a.who.by(),
                    source: "cli".into(),
                };
                u.check().map_err(anyhow::Error::msg)?;
                store.undo_payment(company.id, &u).await?
            }
        };
        let (word, e) = match &recorded {
            Recorded::New(e) => ("recorded", e),
            Recorded::Again(e) => ("recorded before (nothing changed)", e),
        };
        println!("{}: entry {} {word}", company.slug, e.id);
        print_entry(e);
        Ok(ExitCode::SUCCESS)
    })
}

fn print_entry(e: &Entry) {
    let mut parts = vec![
        e.on_date.to_string(),
        e.kind.as_str().to_string(),
        format!("{:>12}", e.amount),
        terminal_safe(&e.customer_id, 24),
    ];
    if let Some(c) = e.channel {
        parts.push(c.as_str().into());
    }
    if let Some(t) = &e.channel_txn {
        parts.push(format!("txn {}", terminal_safe(t, 40)));
    }
    if let Some(u) = e.undoes {
        parts.push(format!("undoes {u}"));
    }
    if let Some(r) = &e.reason_code {
        parts.push(format!("reason {}", terminal_safe(r, 32)));
    }
    if let Some(n) = &e.note {
        parts.push(format!("\u{201c}{}\u{201d}", terminal_safe(n, 60)));
    }
    parts.push(format!("by {}", terminal_safe(&e.recorded_by, 40)));
    println!("  {:>8}  {}", e.id, parts.join("  "));
}

fn print_statement(s: &ledger::Statement) {
    println!(
        "statement of customer {}, {} to {}",
        terminal_safe(&s.customer_id, 40),
        s.from,
        s.to
    );
    println!("  {:<48} {:>14}", "opening balance", s.opening_balance);
    for c in &s.charges {
        println!(
            "  {} {:<16} {:<22} {:>14}",
            c.month,
            terminal_safe(&c.code, 16),
            terminal_safe(&c.description, 22),
            c.amount
        );
    }
    println!("  {:<48} {:>14}", "charges", s.charges_total);
    for e in s.payments.iter().chain(&s.adjustments) {
        print_entry(e);
    }
    println!("  {:<48} {:>14}", "payments", s.payments_total);
    println!("  {:<48} {:>14}", "adjustments", s.adjustments_total);
    println!("  {:<48} {:>14}", "closing balance", s.closing_balance);
}

fn print_account(a: &ledger::Account) {
    println!(
        "customer {} at the end of {} ({})",
        terminal_safe(&a.customer_id, 40),
        a.as_of,
        a.allocation.as_str()
    );
    let row = |k: &str, v: Decimal| println!("  {k:<22} {v:>14}");
    row("principal billed", a.principal_billed);
    row("late fees billed", a.fees_billed);
    row("credits", a.credits);
    row("principal due", a.dues.principal);
    row("late fees due", a.dues.fees);
    row("credit", a.dues.credit);
    row("balance", a.balance);
    match a.last_bill_date {
        Some(d) => println!("  last bill              {d:>14}"),
        None => println!("  last bill                        none"),
    }
    if a.entries.is_empty() {
        println!("  no entries");
    } else {
        println!("  entries:");
        for e in &a.entries {
            print_entry(e);
        }
    }
}
