//! `heatbill statement …`: a channel's statement file reconciled against the ledger from the
//! command line (what the admin API's `statements` endpoints do): import a WeChat Pay trade
//! bill, an Alipay statement ZIP or a bank CSV (through a saved column mapping), list the
//! statements, show one's discrepancies, recover a lost notification into a payment, and save
//! a bank's column mapping.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use heatbill_runtime::ledger::Recorded;
use heatbill_runtime::run::terminal_safe;
use heatbill_runtime::store::statements::{
    NewStatement, NotRecoverable, StatementRecorded, StatementSummary, account_rule,
    recovered_payment, recovered_refund,
};
use heatbill_statements::{BankProfile, Limits};

use super::account::Who;

/// `heatbill statement`
#[derive(Debug, Subcommand)]
pub enum StatementCommand {
    /// Import a statement file and reconcile it (the same file again changes nothing).
    Import(ImportArgs),
    /// The company's statements, newest first.
    List(ListArgs),
    /// One statement's discrepancies.
    Show(ShowArgs),
    /// Record a lost notification (a payment missing in heatbill) as a payment.
    Recover(RecoverArgs),
    /// Save a bank's column mapping (a JSON file; docs/payments.md).
    Profile(ProfileArgs),
}

/// `heatbill statement import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// wechat, alipay or bank.
    #[arg(long)]
    pub channel: String,
    /// A bank statement's saved column mapping.
    #[arg(long)]
    pub profile: Option<String>,
    /// The file.
    pub file: PathBuf,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill statement list`
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill statement show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The statement's id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill statement recover`
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The statement's id.
    pub id: i64,
    /// The item's number.
    #[arg(long)]
    pub item: i32,
    /// The customer (default: the one the line's account number names).
    #[arg(long)]
    pub customer: Option<String>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill statement profile`
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The profile's name (e.g. the bank).
    #[arg(long)]
    pub name: String,
    /// The JSON file of the mapping.
    pub file: PathBuf,
    #[command(flatten)]
    pub who: Who,
}

fn print_summary(s: &StatementSummary) {
    println!(
        "statement {} ({}, {}), {} to {}: {} lines, payments {}, refunds {}, fees {}",
        s.id,
        s.channel,
        terminal_safe(&s.file_name, 60),
        s.period_from,
        s.period_to,
        s.lines,
        s.payments,
        s.refunds,
        s.fees
    );
    println!(
        "  matched {}, missing in heatbill {}, missing in the channel {}, amount mismatches {}",
        s.matched, s.missing_in_heatbill, s.missing_in_channel, s.amount_mismatch
    );
}

/// Runs `heatbill statement …`.
pub fn run(command: StatementCommand) -> Result<ExitCode> {
    let who = match &command {
        StatementCommand::Import(a) => &a.who,
        StatementCommand::List(a) => &a.who,
        StatementCommand::Show(a) => &a.who,
        StatementCommand::Recover(a) => &a.who,
        StatementCommand::Profile(a) => &a.who,
    };
    let settings = who.common.settings()?;
    let slug = who.company.clone();
    let by = who.by();
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let store = &services.store;
        let company = store.company(&slug).await?;
        match command {
            StatementCommand::Import(a) => {
                let limits = Limits::default();
                let file = std::fs::File::open(&a.file)
                    .with_context(|| format!("{}", a.file.display()))?;
                let bytes = heatbill_statements::read_limited(file, &limits)?;
                let profile = match (a.channel.as_str(), &a.profile) {
                    ("bank", Some(name)) => {
                        let Some(json) = store.bank_profile(company.id, name).await? else {
                            bail!(
                                "company {} has no bank profile {}: save it with `heatbill \
                                 statement profile`",
                                company.slug,
                                terminal_safe(name, 40)
                            );
                        };
                        Some((name.clone(), serde_json::from_str::<BankProfile>(&json)?))
                    }
                    ("bank", None) => bail!("a bank statement needs --profile"),
                    ("wechat" | "alipay", _) => None,
                    (other, _) => bail!(
                        "--channel {}: give wechat, alipay or bank",
                        terminal_safe(other, 20)
                    ),
                };
                let parsed = match a.channel.as_str() {
                    "wechat" => heatbill_statements::parse_wechat(&bytes, &limits),
                    "alipay" => heatbill_statements::parse_alipay_zip(&bytes, &limits),
                    _ => heatbill_statements::parse_bank(
                        &bytes,
                        &profile.as_ref().expect("a bank profile").1,
                        &limits,
                    ),
                };
                let parsed = match parsed {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("the statement was not imported: {e}");
                        return Ok(ExitCode::from(1));
                    }
                };
                let rule = account_rule(&company.policies).map_err(anyhow::Error::msg)?;
                let n = NewStatement {
                    file_name: a
                        .file
                        .file_name()
                        .map_or_else(|| "statement".into(), |f| f.to_string_lossy().into()),
                    bank_profile: profile.map(|(name, _)| name),
                    statement: &parsed,
                    account_rule: rule,
                    recorded_by: by,
                };
                match store.record_statement(company.id, &n).await? {
                    StatementRecorded::New(s) => print_summary(&s),
                    StatementRecorded::Again(s) => {
                        println!("imported before: nothing changed");
                        print_summary(&s);
                    }
                }
            }
            StatementCommand::List(_) => {
                for s in store.statements(company.id, 200).await? {
                    print_summary(&s);
                }
            }
            StatementCommand::Show(a) => {
                let Some((s, items)) = store.statement_items(company.id, a.id, None).await? else {
                    bail!("company {} has no statement {}", company.slug, a.id);
                };
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "statement": s, "items": items
                        }))?
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                print_summary(&s);
                println!(
                    "{:>5} {:<20} {:<34} {:>12} {:>12} {:<12} recovered",
                    "item", "discrepancy", "channel_txn", "channel", "recorded", "customer"
                );
                for i in &items {
                    println!(
                        "{:>5} {:<20} {:<34} {:>12} {:>12} {:<12} {}",
                        i.item_no,
                        i.discrepancy,
                        terminal_safe(&i.channel_txn, 34),
                        i.channel_amount.map_or("-".into(), |d| d.to_string()),
                        i.recorded_amount.map_or("-".into(), |d| d.to_string()),
                        terminal_safe(
                            i.customer_id
                                .as_deref()
                                .or(i.suggested_customer.as_deref())
                                .unwrap_or("-"),
                            12
                        ),
                        i.recovered_entry
                            .map_or("-".into(), |e| format!("entry {e}"))
                    );
                }
            }
            StatementCommand::Recover(a) => {
                let Some((s, items)) = store.statement_items(company.id, a.id, None).await? else {
                    bail!("company {} has no statement {}", company.slug, a.id);
                };
                let Some(i) = items.into_iter().find(|i| i.item_no == a.item) else {
                    bail!("statement {} has no item {}", a.id, a.item);
                };
                if i.discrepancy == "missing-in-heatbill"
                    && i.line_kind.as_deref() == Some("refund")
                {
                    let channel = heatbill_runtime::ledger::Channel::parse(&s.channel)
                        .context("the statement's channel")?;
                    let original = i.original_txn.as_deref().unwrap_or_default();
                    let Some(payment) = store
                        .entry_by_channel_txn(company.id, channel, original)
                        .await?
                    else {
                        bail!(
                            "the payment this refund names ({} transaction {}) is not recorded: \
                             recover or record that payment first",
                            s.channel,
                            terminal_safe(original, 40)
                        );
                    };
                    let u = recovered_refund(&s, &i, payment.id, by)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    u.check().map_err(anyhow::Error::msg)?;
                    match store.undo_payment(company.id, &u).await? {
                        Recorded::New(e) => println!("recorded refund entry {}", e.id),
                        Recorded::Again(e) => println!("recovered before: entry {}", e.id),
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                let e = recovered_payment(&s, i, a.customer, by).map_err(|e| match e {
                    NotRecoverable::NoCustomer => {
                        anyhow::anyhow!("no customer is named by the line: give --customer")
                    }
                    e => anyhow::anyhow!("{e}"),
                })?;
                match store.record_entry(company.id, &e).await? {
                    Recorded::New(e) => println!("recorded payment entry {}", e.id),
                    Recorded::Again(e) => println!("recovered before: entry {}", e.id),
                }
            }
            StatementCommand::Profile(a) => {
                let text = std::fs::read_to_string(&a.file)
                    .with_context(|| format!("{}", a.file.display()))?;
                let p: BankProfile = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a bank profile", a.file.display()))?;
                p.check()?;
                store
                    .put_bank_profile(company.id, &a.name, &serde_json::to_string(&p)?, &by)
                    .await?;
                println!("saved bank profile {}", terminal_safe(&a.name, 40));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
