//! `heatbill customer …`: the customer directory from the command line, as a cashier finds a
//! customer at the counter: by account number, name, the phone number's last digits or
//! address; a customer's profile and its revisions; a new revision (who: `--by`, else `$USER`;
//! why: `--reason`). The same store calls as the admin API's `customers` endpoints.
//!
//! Names and phone numbers print masked unless `--reveal` is given.

use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use heatbill_runtime::directory::{NewProfile, Profile, ProfileRecorded, ProfileVersion, Search};
use heatbill_runtime::ledger;
use heatbill_runtime::run::terminal_safe;

use super::Common;
use super::account::Who;

/// `heatbill customer`
#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Find customers by account number, name prefix, the phone's last digits or address.
    Find(FindArgs),
    /// A customer's profile (in force on a date, or every revision with --history).
    Show(ShowArgs),
    /// Record a new revision of a customer's profile (the whole profile from --valid-from).
    Set(SetArgs),
}

/// `heatbill customer find`
#[derive(Debug, Args)]
pub struct FindArgs {
    /// The account number, exact.
    #[arg(long)]
    pub account_no: Option<String>,
    /// The start of the name.
    #[arg(long)]
    pub name: Option<String>,
    /// The last digits of the phone number (at least 3).
    #[arg(long)]
    pub phone: Option<String>,
    /// The community (小区), exact.
    #[arg(long)]
    pub community: Option<String>,
    /// The building (楼号), exact.
    #[arg(long)]
    pub building: Option<String>,
    /// The unit (单元), exact.
    #[arg(long)]
    pub unit: Option<String>,
    /// The room (房号), exact.
    #[arg(long)]
    pub room: Option<String>,
    /// At most this many (1 to 200).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Show names and phone numbers unmasked.
    #[arg(long)]
    pub reveal: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill customer show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// The profile in force on this date (default: the newest).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Every revision, oldest first.
    #[arg(long)]
    pub history: bool,
    /// Show the name and phone number unmasked.
    #[arg(long)]
    pub reveal: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill customer set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// The first date it is in force (default: today).
    #[arg(long)]
    pub valid_from: Option<NaiveDate>,
    /// The account number (户号).
    #[arg(long)]
    pub account_no: Option<String>,
    /// The name.
    #[arg(long)]
    pub name: Option<String>,
    /// The phone number.
    #[arg(long)]
    pub phone: Option<String>,
    /// The community (小区).
    #[arg(long)]
    pub community: Option<String>,
    /// The building (楼号).
    #[arg(long)]
    pub building: Option<String>,
    /// The unit (单元).
    #[arg(long)]
    pub unit: Option<String>,
    /// The room (房号).
    #[arg(long)]
    pub room: Option<String>,
    /// Why (required).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub who: Who,
}

fn print(v: &ProfileVersion, reveal: bool) {
    let p = if reveal {
        v.profile.clone()
    } else {
        v.profile.masked()
    };
    let f = |s: &Option<String>, w: usize| terminal_safe(s.as_deref().unwrap_or("-"), w);
    println!(
        "{:<16} {:<14} {:<12} {:<16} {:<16} {:<6} {:<4} {:<6} {}",
        terminal_safe(&v.customer_id, 16),
        f(&p.account_no, 14),
        f(&p.name, 12),
        f(&p.phone, 16),
        f(&p.community, 16),
        f(&p.building, 6),
        f(&p.unit, 4),
        f(&p.room, 6),
        v.valid_from
    );
}

fn header() {
    println!(
        "{:<16} {:<14} {:<12} {:<16} {:<16} {:<6} {:<4} {:<6} valid_from",
        "customer", "account_no", "name", "phone", "community", "bldg", "unit", "room"
    );
}

fn json(v: &ProfileVersion, reveal: bool) -> ProfileVersion {
    if reveal {
        v.clone()
    } else {
        ProfileVersion {
            profile: v.profile.masked(),
            ..v.clone()
        }
    }
}

/// Runs `heatbill customer …`.
pub fn run(command: CustomerCommand) -> Result<ExitCode> {
    let who = match &command {
        CustomerCommand::Find(a) => &a.who,
        CustomerCommand::Show(a) => &a.who,
        CustomerCommand::Set(a) => &a.who,
    };
    let common: &Common = &who.common;
    let settings = common.settings()?;
    let slug = who.company.clone();
    let by = who.by();
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let store = &services.store;
        let company = store.company(&slug).await?;
        match command {
            CustomerCommand::Find(a) => {
                let s = Search {
                    account_no: a.account_no,
                    name: a.name,
                    phone_suffix: a.phone,
                    community: a.community,
                    building: a.building,
                    unit: a.unit,
                    room: a.room,
                    limit: a.limit,
                };
                if let Err(e) = s.key() {
                    bail!("{e}");
                }
                let found = store.search_customers(company.id, &s).await?;
                if a.json {
                    let out: Vec<_> = found.iter().map(|v| json(v, a.reveal)).collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    header();
                    for v in &found {
                        print(v, a.reveal);
                    }
                    println!("{} found", found.len());
                }
            }
            CustomerCommand::Show(a) => {
                if !store.has_customer(company.id, &a.customer).await? {
                    bail!(
                        "company {} has no customer {}",
                        company.slug,
                        terminal_safe(&a.customer, 60)
                    );
                }
                let revisions = if a.history {
                    store.profile_history(company.id, &a.customer).await?
                } else {
                    let on = a
                        .as_of
                        .unwrap_or(NaiveDate::from_ymd_opt(9999, 12, 31).expect("a date"));
                    store
                        .profile_on(company.id, &a.customer, on)
                        .await?
                        .into_iter()
                        .collect()
                };
                if a.json {
                    let out: Vec<_> = revisions.iter().map(|v| json(v, a.reveal)).collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else if revisions.is_empty() {
                    println!("no profile recorded");
                } else {
                    header();
                    for v in &revisions {
                        print(v, a.reveal);
                        println!(
                            "    revision {} by {} ({}) at {}: {}",
                            v.id,
                            terminal_safe(&v.recorded_by, 40),
                            v.source,
                            v.recorded_at,
                            terminal_safe(&v.reason, 80)
                        );
                    }
                }
            }
            CustomerCommand::Set(a) => {
                let profile = Profile {
                    account_no: a.account_no,
                    name: a.name,
                    phone: a.phone,
                    community: a.community,
                    building: a.building,
                    unit: a.unit,
                    room: a.room,
                };
                let p = NewProfile {
                    customer_id: a.customer,
                    valid_from: a
                        .valid_from
                        .unwrap_or_else(|| ledger::local_today(&company.time_zone)),
                    profile,
                    reason: a.reason,
                    recorded_by: by,
                    source: "cli".into(),
                };
                match store.record_profile(company.id, &p).await? {
                    ProfileRecorded::New(v) => {
                        println!(
                            "recorded revision {} of customer {} from {}",
                            v.id,
                            terminal_safe(&v.customer_id, 60),
                            v.valid_from
                        );
                    }
                    ProfileRecorded::Same(v) => {
                        println!("unchanged: revision {} already says this", v.id);
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
