//! `heatbill event …`: events out and fee control (费控): the company's events and their
//! delivery states, one event, a replay, a customer's valve and timeline, an operator's hold
//! or dispute flag, and one publishing round (for a deployment that does not run `serve`). The
//! same store calls as the admin API's `events` endpoints; see docs/events.md.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use heatbill_runtime::events::EventKind;
use heatbill_runtime::run::terminal_safe;
use heatbill_runtime::store::events::{EventFilter, EventRecord, MAX_EVENTS};

use super::account::Who;

/// `heatbill event`
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// The company's events, by id (all pages), with each delivery's state.
    List(ListArgs),
    /// One event: its body and deliveries.
    Show(OneArgs),
    /// Send an event again: its failed and dead deliveries (with --all, every one) become
    /// pending.
    Replay(ReplayArgs),
    /// A customer's valve: what heatbill asked for, what the valve reported, the exemptions,
    /// and the customer's events.
    Valve(ValveArgs),
    /// Put a customer on hold or take them off it, mark an account disputed or not (a closed
    /// valve of a customer who becomes exempt is asked open).
    Flag(FlagArgs),
    /// Deliver the due events once (MQTT, `[events] mqtt_url`, and webhooks) and escalate the close requests
    /// not acknowledged in time; `heatbill serve` does this continuously.
    Publish(PublishArgs),
}

/// `heatbill event list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One customer's.
    #[arg(long)]
    pub customer: Option<String>,
    /// One kind (balance_warning, valve_close_requested, valve_open_requested,
    /// valve_close_unacknowledged, valve_state_reported).
    #[arg(long)]
    pub kind: Option<String>,
    /// Those with a delivery in this state (pending, delivered, acknowledged, failed, dead).
    #[arg(long)]
    pub state: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill event show`
#[derive(Debug, Args)]
pub struct OneArgs {
    /// The event's id.
    pub id: i64,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill event replay`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The event's id.
    pub id: i64,
    /// Every delivery, delivered ones too.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill event valve`
#[derive(Debug, Args)]
pub struct ValveArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill event flag`
#[derive(Debug, Args)]
pub struct FlagArgs {
    /// The customer.
    #[arg(long)]
    pub customer: String,
    /// On hold (true) or not (false).
    #[arg(long)]
    pub hold: Option<bool>,
    /// Disputed (true) or not (false).
    #[arg(long)]
    pub disputed: Option<bool>,
    /// Why.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub who: Who,
}

/// `heatbill event publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: super::Common,
}

fn line(e: &EventRecord) -> String {
    let states: Vec<String> = e
        .deliveries
        .iter()
        .map(|d| format!("{}:{}", d.target, d.state))
        .collect();
    format!(
        "{:>8} {:<27} {:<14} {:<20} {}",
        e.id,
        e.kind,
        terminal_safe(e.customer_id.as_deref().unwrap_or("-"), 14),
        e.created_at,
        if states.is_empty() {
            "(kept, no target)".to_string()
        } else {
            states.join(" ")
        }
    )
}

/// Runs `heatbill event …`.
pub fn run(command: EventCommand) -> Result<ExitCode> {
    if let EventCommand::Publish(a) = &command {
        let settings = a.common.settings()?;
        return super::runtime()?.block_on(async {
            let services = super::open_services(&settings).await?;
            let mut n = heatbill_runtime::publish::round_mqtt(&services, &settings.events)
                .await
                .map_err(anyhow::Error::msg)?;
            let http =
                heatbill_runtime::webhook::client(&settings.events).map_err(anyhow::Error::msg)?;
            n += heatbill_runtime::webhook::round(&services, &settings.events, &http)
                .await
                .map_err(anyhow::Error::msg)?;
            let e = heatbill_runtime::publish::escalate_due(&services)
                .await
                .map_err(anyhow::Error::msg)?;
            println!("delivered {n} event(s); escalated {e} close request(s)");
            Ok(ExitCode::SUCCESS)
        });
    }
    let who = match &command {
        EventCommand::List(a) => &a.who,
        EventCommand::Show(a) => &a.who,
        EventCommand::Replay(a) => &a.who,
        EventCommand::Valve(a) => &a.who,
        EventCommand::Flag(a) => &a.who,
        EventCommand::Publish(_) => unreachable!("handled above"),
    };
    let settings = who.common.settings()?;
    let slug = who.company.clone();
    super::runtime()?.block_on(async {
        let services = super::open_services(&settings).await?;
        let store = &services.store;
        let company = store.company(&slug).await?;
        match command {
            EventCommand::List(a) => {
                let kind = match a.kind.as_deref() {
                    None => None,
                    Some(k) => Some(EventKind::parse(k).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--kind {:?}: give one of {}",
                            terminal_safe(k, 40),
                            EventKind::ALL.map(EventKind::as_str).join(", ")
                        )
                    })?),
                };
                let mut filter = EventFilter {
                    customer_id: a.customer.clone(),
                    kind,
                    state: a.state.clone(),
                    after: None,
                    limit: MAX_EVENTS,
                };
                let mut all = Vec::new();
                if !a.json {
                    println!(
                        "{:>8} {:<27} {:<14} {:<20} deliveries",
                        "id", "kind", "customer", "written (UTC)"
                    );
                }
                loop {
                    let page = store.events(company.id, &filter).await?;
                    let full = page.len() == MAX_EVENTS;
                    filter.after = page.last().map(|e| e.id).or(filter.after);
                    for e in page {
                        if a.json {
                            all.push(e);
                        } else {
                            println!("{}", line(&e));
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
            EventCommand::Show(a) => {
                let Some(e) = store.event(company.id, a.id).await? else {
                    bail!(
                        "company {slug} has no event {}: list them with `heatbill event list`",
                        a.id
                    );
                };
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            EventCommand::Replay(a) => {
                if store.event(company.id, a.id).await?.is_none() {
                    bail!(
                        "company {slug} has no event {}: list them with `heatbill event list`",
                        a.id
                    );
                }
                let n = store.replay(company.id, a.id, a.all).await?;
                println!("event {}: {n} deliver(ies) made pending again", a.id);
            }
            EventCommand::Valve(a) => {
                if !store.has_customer(company.id, &a.customer).await? {
                    bail!(
                        "company {slug} has no customer {}",
                        terminal_safe(&a.customer, 60)
                    );
                }
                let v = store.valve(company.id, &a.customer).await?;
                let events = store
                    .events(
                        company.id,
                        &EventFilter {
                            customer_id: Some(a.customer.clone()),
                            limit: MAX_EVENTS,
                            ..Default::default()
                        },
                    )
                    .await?;
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "valve": v, "timeline": events }))?
                    );
                } else {
                    match &v {
                        None => println!("valve: open (never asked otherwise)"),
                        Some(v) => println!(
                            "valve: asked {}{}; reported {}{}{}{}",
                            v.requested,
                            v.requested_at
                                .as_deref()
                                .map(|t| format!(" at {t}"))
                                .unwrap_or_default(),
                            v.reported.as_deref().unwrap_or("nothing"),
                            if v.acknowledged {
                                " (acknowledged)"
                            } else {
                                ""
                            },
                            if v.hold { "; on hold" } else { "" },
                            if v.disputed { "; disputed" } else { "" },
                        ),
                    }
                    for e in &events {
                        println!("{}", line(e));
                    }
                }
            }
            EventCommand::Flag(a) => {
                if a.hold.is_none() && a.disputed.is_none() && a.note.is_none() {
                    bail!("give --hold, --disputed or --note");
                }
                let nonce = chrono::Utc::now().timestamp_millis().to_string();
                let (v, e) = store
                    .set_valve_flags(
                        company.id,
                        &a.customer,
                        a.hold,
                        a.disputed,
                        a.note.as_deref(),
                        &nonce,
                    )
                    .await?;
                println!(
                    "customer {}: hold {}, disputed {}; valve asked {}",
                    terminal_safe(&v.customer_id, 60),
                    v.hold,
                    v.disputed,
                    v.requested
                );
                if let Some(e) = e {
                    println!("{}", line(&e));
                }
            }
            EventCommand::Publish(_) => unreachable!("handled above"),
        }
        Ok(ExitCode::SUCCESS)
    })
}
