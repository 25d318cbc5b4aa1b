//! What a change writes for the world outside, in its own transaction: events (the outbox)
//! and e-invoice requests, and the valve state fee control changes with them. Below the
//! store's concerns that write them ([`super::events`]: nights and operators' flags;
//! [`super::ledger`]: payments, refunds and reversals) and its readers
//! ([`super::invoices`]), so that none of them imports another.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::sql::{Exec, SqlRow, args, q};
use super::types::{Result, StoreError};
use crate::events::{Action, Decision, EventKind, ValveFacts, key};
use crate::invoices::Line;
use crate::ledger::Entry;

/// A customer's valve as fee control keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValveState {
    /// The customer.
    pub customer_id: String,
    /// What heatbill last asked for: `open` or `closed`.
    pub requested: String,
    /// The key of that request's event.
    pub request_key: Option<String>,
    /// When it asked (UTC).
    pub requested_at: Option<String>,
    /// A warning is outstanding.
    pub warned: bool,
    /// What the valve last reported (`open`, `closed`, `fault`).
    pub reported: Option<String>,
    /// When (UTC).
    pub reported_at: Option<String>,
    /// The valve reported the state heatbill asked for.
    pub acknowledged: bool,
    /// The close request was escalated (not acknowledged in time).
    pub escalated: bool,
    /// On hold by an operator (never closed).
    pub hold: bool,
    /// Disputed (never closed).
    pub disputed: bool,
    /// The operator's note.
    pub note: Option<String>,
}

impl ValveState {
    /// A customer fee control never asked anything of: open, no flags (what no row means).
    pub fn never_asked(customer_id: &str) -> ValveState {
        ValveState {
            customer_id: customer_id.to_string(),
            requested: "open".into(),
            request_key: None,
            requested_at: None,
            warned: false,
            reported: None,
            reported_at: None,
            acknowledged: false,
            escalated: false,
            hold: false,
            disputed: false,
            note: None,
        }
    }
}

/// An invoice request as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvoiceRecord {
    /// Its id.
    pub id: i64,
    /// Its key (the event's).
    pub request_key: String,
    /// `blue` (a payment's) or `red` (a refund's or reversal's, 红字).
    pub kind: String,
    /// The customer.
    pub customer_id: String,
    /// The ledger entry that caused it.
    pub entry_id: i64,
    /// The blue request a red one reverses.
    pub original_id: Option<i64>,
    /// The total (negative for red).
    pub amount: Decimal,
    /// The entry's date.
    pub on_date: NaiveDate,
    /// The request as published.
    pub body: serde_json::Value,
    /// `requested`, `issued` or `refused`.
    pub state: String,
    /// The invoice's number (20 digits), once issued.
    pub invoice_number: Option<String>,
    /// Its PDF.
    pub pdf_url: Option<String>,
    /// Its OFD.
    pub ofd_url: Option<String>,
    /// Why the provider refused it.
    pub reason: Option<String>,
    /// When the answer came (UTC).
    pub answered_at: Option<String>,
}

/// The columns of a valve state, as [`valve_of`] reads them.
macro_rules! valve_columns {
    () => {
        "customer_id, requested, request_key, utc_text(requested_at) AS requested_at, warned, \
         reported, utc_text(reported_at) AS reported_at, acknowledged, escalated, hold, \
         disputed, note"
    };
}
pub(crate) use valve_columns;

pub(crate) fn valve_of<R: SqlRow>(r: &R) -> Result<ValveState> {
    Ok(ValveState {
        customer_id: r.string("customer_id")?,
        requested: r.string("requested")?,
        request_key: r.opt_string("request_key")?,
        requested_at: r.opt_string("requested_at")?,
        warned: r.bool("warned")?,
        reported: r.opt_string("reported")?,
        reported_at: r.opt_string("reported_at")?,
        acknowledged: r.bool("acknowledged")?,
        escalated: r.bool("escalated")?,
        hold: r.bool("hold")?,
        disputed: r.bool("disputed")?,
        note: r.opt_string("note")?,
    })
}

impl ValveState {
    pub(crate) fn facts(&self) -> ValveFacts {
        ValveFacts {
            closed: self.requested == "closed",
            warned: self.warned,
            hold: self.hold,
            disputed: self.disputed,
        }
    }
}

pub(crate) async fn valve_in<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
) -> Result<Option<ValveState>> {
    x.opt(
        q!(concat!(
            "SELECT ",
            valve_columns!(),
            " FROM valve_states WHERE company_id = $1 AND customer_id = $2"
        )),
        args![company_id, customer_id],
    )
    .await?
    .as_ref()
    .map(valve_of)
    .transpose()
}

/// The company's slug and policies.
pub(crate) async fn company_policies<X: Exec>(
    x: &mut X,
    company_id: i32,
) -> Result<(String, serde_json::Value)> {
    let r = x
        .one(
            q!("SELECT slug, policies::text AS policies FROM companies WHERE id = $1"),
            args![company_id],
        )
        .await?;
    let policies = serde_json::from_str(r.str("policies")?)
        .map_err(|e| StoreError::Corrupt(format!("company policies: {e}")))?;
    Ok((r.string("slug")?, policies))
}

/// Whether the customer is prepaid (has `tag`) and suspended, by the data in force on `date`.
pub(crate) async fn customer_flags<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    date: NaiveDate,
    tag: &str,
) -> Result<(bool, bool)> {
    let r = x
        .opt(
            q!("SELECT status, tags FROM customer_versions
                WHERE company_id = $1 AND customer_id = $2 AND valid_from <= $3
                ORDER BY valid_from DESC LIMIT 1"),
            args![company_id, customer_id, date],
        )
        .await?;
    Ok(match r {
        Some(r) => (
            crate::model::parse_tags(r.str("tags")?)
                .iter()
                .any(|t| t == tag),
            r.str("status")? == "suspended",
        ),
        None => (false, false),
    })
}

/// Writes an event (once per key) and its pending deliveries to the company's targets. The
/// event's id when it is new.
pub(crate) async fn insert_event<X: Exec>(
    x: &mut X,
    company_id: i32,
    key: &str,
    kind: EventKind,
    customer_id: Option<&str>,
    body: &serde_json::Value,
    targets: &[String],
) -> Result<Option<i64>> {
    let text = body.to_string();
    let id = x
        .opt(
            q!(
                "INSERT INTO events (company_id, event_key, kind, customer_id, body)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (company_id, event_key) DO NOTHING RETURNING id"
            ),
            args![company_id, key, kind.as_str(), customer_id, text.as_str()],
        )
        .await?
        .map(|r| r.big(0))
        .transpose()?;
    if let Some(id) = id {
        insert_deliveries(x, company_id, id, kind, targets).await?;
    }
    Ok(id)
}

/// An event's pending deliveries to the company's targets (none for an inbound kind).
async fn insert_deliveries<X: Exec>(
    x: &mut X,
    company_id: i32,
    id: i64,
    kind: EventKind,
    targets: &[String],
) -> Result<()> {
    if !kind.outbound() {
        return Ok(());
    }
    for t in targets {
        x.exec(
            q!(
                "INSERT INTO event_deliveries (event_id, company_id, target, state)
                VALUES ($1, $2, $3, 'pending')"
            ),
            args![id, company_id, t.as_str()],
        )
        .await?;
    }
    Ok(())
}

/// The body of a fee-control event.
pub(crate) fn decision_body(
    company: &str,
    key: &str,
    kind: EventKind,
    date: NaiveDate,
    d: &Decision,
    source: &str,
) -> serde_json::Value {
    serde_json::json!({
        "key": key,
        "kind": kind.as_str(),
        "company": company,
        "customer_id": d.customer_id,
        "date": date,
        "owed": d.owed.to_string(),
        "limit": d.limit.to_string(),
        "days_in_arrears": d.days_in_arrears,
        "rule": format!("policies.fee_control from {}", d.rule_from),
        "reason": d.reason,
        "source": source,
    })
}

/// What caused a decision: the day, the key's last part (the night's date, the payment's
/// entry, an operator's nonce) and the source (`night`, `payment`, `operator`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cause<'a> {
    pub(crate) date: NaiveDate,
    pub(crate) what: &'a str,
    pub(crate) source: &'a str,
}

/// Applies one decision in the caller's transaction: the valve state changes only when it is
/// what the decision found (compare and set), and the event is written with the change. `what`
/// is the key's last part (the night's date, the payment's entry). Whether an event was written.
pub(crate) async fn apply<X: Exec>(
    x: &mut X,
    company_id: i32,
    company: &str,
    d: &Decision,
    cause: &Cause<'_>,
    targets: &[String],
) -> Result<bool> {
    let Cause { date, what, source } = *cause;
    let kind = match d.action {
        Action::Warn => EventKind::BalanceWarning,
        Action::Close => EventKind::ValveCloseRequested,
        Action::Open => EventKind::ValveOpenRequested,
        Action::Unwarn => {
            x.exec(
                q!("UPDATE valve_states SET warned = false
                    WHERE company_id = $1 AND customer_id = $2 AND warned = true"),
                args![company_id, d.customer_id.as_str()],
            )
            .await?;
            return Ok(false);
        }
    };
    let k = key(kind, &d.customer_id, what);
    // Decided once: a re-run of the night (or a payment sent again) finds its key. The event
    // first (one statement when it is there), then the state; a state that moved meanwhile
    // takes the event back.
    let body = decision_body(company, &k, kind, date, d, source);
    let Some(id) = insert_event(x, company_id, &k, kind, Some(&d.customer_id), &body, &[]).await?
    else {
        return Ok(false);
    };
    let changed = match d.action {
        Action::Close => {
            x.exec(
                q!(
                    "INSERT INTO valve_states (company_id, customer_id, requested, request_key,
                        requested_at, acknowledged, escalated)
                    VALUES ($1, $2, 'closed', $3, now(), false, false)
                    ON CONFLICT (company_id, customer_id) DO UPDATE SET requested = 'closed',
                        request_key = $3, requested_at = now(), acknowledged = false,
                        escalated = false
                    WHERE valve_states.requested = 'open'"
                ),
                args![company_id, d.customer_id.as_str(), k.as_str()],
            )
            .await?
        }
        Action::Open => {
            x.exec(
                q!(
                    "UPDATE valve_states SET requested = 'open', request_key = $3,
                        requested_at = now(), acknowledged = false, escalated = false
                    WHERE company_id = $1 AND customer_id = $2 AND requested = 'closed'"
                ),
                args![company_id, d.customer_id.as_str(), k.as_str()],
            )
            .await?
        }
        _ => {
            x.exec(
                q!("INSERT INTO valve_states (company_id, customer_id, warned)
                    VALUES ($1, $2, true)
                    ON CONFLICT (company_id, customer_id) DO UPDATE SET warned = true
                    WHERE valve_states.warned = false"),
                args![company_id, d.customer_id.as_str()],
            )
            .await?
        }
    };
    if changed == 0 {
        x.exec(q!("DELETE FROM events WHERE id = $1"), args![id])
            .await?;
        return Ok(false);
    }
    insert_deliveries(x, company_id, id, kind, targets).await?;
    Ok(true)
}

/// Applies a page of a night's decisions at once, on PostgreSQL: what [`apply`] does for each
/// (the event first, once per key; the valve state by compare and set; the event taken back
/// where the state had moved; the deliveries of the rest), in seven statements whatever the
/// page's size instead of three per decision. A night that asks many customers' valves closed
/// (a season's first under a new policy) writes them at the speed of the database, not of its
/// round trips. At most one decision per customer (what a night's [`crate::events::decide`]
/// gives). Which decisions wrote an event.
pub(crate) async fn apply_page_pg<X: Exec>(
    x: &mut X,
    company_id: i32,
    company: &str,
    decisions: &[Decision],
    cause: &Cause<'_>,
    targets: &[String],
) -> Result<Vec<bool>> {
    let Cause { date, what, source } = *cause;
    let mut applied = vec![false; decisions.len()];
    let mut unwarn = Vec::new();
    let mut items = Vec::new();
    let mut keys: HashMap<String, usize> = HashMap::new();
    for (i, d) in decisions.iter().enumerate() {
        let kind = match d.action {
            Action::Warn => EventKind::BalanceWarning,
            Action::Close => EventKind::ValveCloseRequested,
            Action::Open => EventKind::ValveOpenRequested,
            Action::Unwarn => {
                unwarn.push(d.customer_id.as_str());
                continue;
            }
        };
        let k = key(kind, &d.customer_id, what);
        let body = decision_body(company, &k, kind, date, d, source).to_string();
        items.push(
            serde_json::json!({"k": k, "kind": kind.as_str(), "c": d.customer_id, "b": body}),
        );
        keys.insert(k, i);
    }
    if !unwarn.is_empty() {
        x.exec(
            q!("UPDATE valve_states SET warned = false
                WHERE company_id = $1 AND warned = true
                  AND customer_id = ANY(ARRAY(SELECT json_array_elements_text($2::json)))"),
            args![company_id, serde_json::json!(unwarn).to_string().as_str()],
        )
        .await?;
    }
    if items.is_empty() {
        return Ok(applied);
    }
    // The events first: a key already there (a re-run of the night) is no new decision.
    let mut new: HashMap<String, i64> = HashMap::new();
    for r in x
        .rows(
            q!(
                "INSERT INTO events (company_id, event_key, kind, customer_id, body)
                SELECT $1, d->>'k', d->>'kind', d->>'c', d->>'b'
                FROM json_array_elements($2::json) d
                ON CONFLICT (company_id, event_key) DO NOTHING
                RETURNING id, event_key"
            ),
            args![
                company_id,
                serde_json::Value::Array(items).to_string().as_str()
            ],
        )
        .await?
    {
        let k = r.string(1)?;
        if let Some(&i) = keys.get(&k) {
            new.insert(decisions[i].customer_id.clone(), r.big(0)?);
        }
    }
    // Then each action's compare and set, over the decisions whose event is new.
    let of = |a: Action| -> String {
        let list: Vec<serde_json::Value> = decisions
            .iter()
            .filter(|d| d.action == a && new.contains_key(&d.customer_id))
            .map(|d| {
                let kind = match a {
                    Action::Close => EventKind::ValveCloseRequested,
                    Action::Open => EventKind::ValveOpenRequested,
                    _ => EventKind::BalanceWarning,
                };
                serde_json::json!({"c": d.customer_id, "k": key(kind, &d.customer_id, what)})
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    };
    let mut changed: HashSet<String> = HashSet::new();
    let closes = of(Action::Close);
    let opens = of(Action::Open);
    let warns = of(Action::Warn);
    for (list, q) in [
        (
            &closes,
            q!(
                "INSERT INTO valve_states (company_id, customer_id, requested, request_key,
                    requested_at, acknowledged, escalated)
                SELECT $1, d->>'c', 'closed', d->>'k', now(), false, false
                FROM json_array_elements($2::json) d
                ON CONFLICT (company_id, customer_id) DO UPDATE SET requested = 'closed',
                    request_key = excluded.request_key, requested_at = now(),
                    acknowledged = false, escalated = false
                WHERE valve_states.requested = 'open'
                RETURNING customer_id"
            ),
        ),
        (
            &opens,
            q!(
                "UPDATE valve_states v SET requested = 'open', request_key = d->>'k',
                    requested_at = now(), acknowledged = false, escalated = false
                FROM json_array_elements($2::json) d
                WHERE v.company_id = $1 AND v.customer_id = d->>'c' AND v.requested = 'closed'
                RETURNING v.customer_id"
            ),
        ),
        (
            &warns,
            q!("INSERT INTO valve_states (company_id, customer_id, warned)
                SELECT $1, d->>'c', true FROM json_array_elements($2::json) d
                ON CONFLICT (company_id, customer_id) DO UPDATE SET warned = true
                WHERE valve_states.warned = false
                RETURNING customer_id"),
        ),
    ] {
        if list.len() > 2 {
            for r in x.rows(q, args![company_id, list.as_str()]).await? {
                changed.insert(r.string(0)?);
            }
        }
    }
    // A state that had moved meanwhile takes its event back; the rest get their deliveries.
    let mut back = Vec::new();
    let mut keep = Vec::new();
    for (customer, id) in &new {
        if changed.contains(customer) {
            keep.push(*id);
        } else {
            back.push(*id);
        }
    }
    if !back.is_empty() {
        x.exec(
            q!("DELETE FROM events
                WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)::bigint))"),
            args![serde_json::json!(back).to_string().as_str()],
        )
        .await?;
    }
    if !keep.is_empty() && !targets.is_empty() {
        x.exec(
            q!(
                "INSERT INTO event_deliveries (event_id, company_id, target, state)
                SELECT i::bigint, $1, t, 'pending'
                FROM json_array_elements_text($2::json) i,
                     json_array_elements_text($3::json) t"
            ),
            args![
                company_id,
                serde_json::json!(keep).to_string().as_str(),
                serde_json::json!(targets).to_string().as_str()
            ],
        )
        .await?;
    }
    for (i, d) in decisions.iter().enumerate() {
        applied[i] = changed.contains(&d.customer_id) && new.contains_key(&d.customer_id);
    }
    Ok(applied)
}

/// The columns of an invoice request, as [`invoice_of`] reads them.
macro_rules! invoice_columns {
    () => {
        "id, request_key, kind, customer_id, entry_id, original_id, amount::text AS amount, \
         on_date, body, state, invoice_number, pdf_url, ofd_url, reason, \
         utc_text(answered_at) AS answered_at"
    };
}
pub(crate) use invoice_columns;

pub(crate) fn invoice_of<R: SqlRow>(r: &R) -> Result<InvoiceRecord> {
    Ok(InvoiceRecord {
        id: r.big("id")?,
        request_key: r.string("request_key")?,
        kind: r.string("kind")?,
        customer_id: r.string("customer_id")?,
        entry_id: r.big("entry_id")?,
        original_id: r.opt_big("original_id")?,
        amount: r.dec("amount")?,
        on_date: r.date("on_date")?,
        body: serde_json::from_str(r.str("body")?)
            .map_err(|e| StoreError::Corrupt(format!("invoice body: {e}")))?,
        state: r.string("state")?,
        invoice_number: r.opt_string("invoice_number")?,
        pdf_url: r.opt_string("pdf_url")?,
        ofd_url: r.opt_string("ofd_url")?,
        reason: r.opt_string("reason")?,
        answered_at: r.opt_string("answered_at")?,
    })
}

pub(crate) async fn invoice_in<X: Exec>(
    x: &mut X,
    company_id: i32,
    id: i64,
) -> Result<Option<InvoiceRecord>> {
    x.opt(
        q!(concat!(
            "SELECT ",
            invoice_columns!(),
            " FROM invoice_requests WHERE company_id = $1 AND id = $2"
        )),
        args![company_id, id],
    )
    .await?
    .as_ref()
    .map(invoice_of)
    .transpose()
}

/// The buyer as of `date`: the newest profile's name, the data's `tax_id` attribute (companies),
/// and the customer's class.
pub(crate) async fn buyer<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    date: NaiveDate,
) -> Result<(serde_json::Value, String)> {
    let data = x
        .opt(
            q!("SELECT class, attributes FROM customer_versions
                WHERE company_id = $1 AND customer_id = $2 AND valid_from <= $3
                ORDER BY valid_from DESC LIMIT 1"),
            args![company_id, customer_id, date],
        )
        .await?;
    let (class, tax_id) = match data {
        Some(r) => (
            r.string("class")?,
            crate::model::parse_attributes(r.str("attributes")?)
                .into_iter()
                .find(|(k, _)| k == "tax_id")
                .map(|(_, v)| v),
        ),
        None => ("residential".to_string(), None),
    };
    let name = x
        .opt(
            q!("SELECT name FROM customer_profiles
                WHERE company_id = $1 AND customer_id = $2 AND valid_from <= $3
                ORDER BY valid_from DESC, id DESC LIMIT 1"),
            args![company_id, customer_id, date],
        )
        .await?
        .map(|r| r.opt_string(0))
        .transpose()?
        .flatten();
    Ok((
        serde_json::json!({"customer_id": customer_id, "name": name, "tax_id": tax_id}),
        class,
    ))
}

pub(crate) fn totals(lines: &[Line]) -> serde_json::Value {
    let amount: Decimal = lines.iter().map(|l| l.amount).sum();
    let tax: Decimal = lines.iter().map(|l| l.tax).sum();
    serde_json::json!({"amount": amount.to_string(), "tax": tax.to_string(),
                       "total": (amount + tax).to_string()})
}

pub(crate) async fn insert_request<X: Exec>(
    x: &mut X,
    company_id: i32,
    k: &str,
    kind: &str,
    e: &Entry,
    original_id: Option<i64>,
    body: &serde_json::Value,
) -> Result<bool> {
    let amount = e.amount.to_string();
    let text = body.to_string();
    Ok(x.opt(
        q!(
            "INSERT INTO invoice_requests (company_id, request_key, kind, customer_id,
                    entry_id, original_id, amount, on_date, body)
                VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8, $9)
                ON CONFLICT (company_id, request_key) DO NOTHING RETURNING id"
        ),
        args![
            company_id,
            k,
            kind,
            e.customer_id.as_str(),
            e.id,
            original_id,
            amount.as_str(),
            e.on_date,
            text.as_str()
        ],
    )
    .await?
    .is_some())
}
