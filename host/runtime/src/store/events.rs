//! The store's outbox and fee-control state ([`crate::events`]): events written in the
//! transaction of the change that causes them, their deliveries, valves' states, the outdoor
//! temperatures a "no closing below" rule reads.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

pub use super::outbox::ValveState;
use super::outbox::{
    Cause, apply, apply_page_pg, company_policies, insert_event, valve_columns, valve_in, valve_of,
};
use super::sql::{Commit, Engine, Exec, SqlRow, args, known_customer, q};
use super::types::{Backend, Result, StoreError};
use crate::events::{
    Action, Decision, EventKind, FeeControl, FeeFacts, ValvePosition, decide, key, targets_of,
};
use crate::model::{ShardRange, shown};
use heatbill_engine::ServiceStatus;

/// The most events one listing returns.
pub const MAX_EVENTS: usize = 1_000;

/// Customers a night evaluates per transaction.
const PAGE: usize = 5_000;

/// An event as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Its sequence number (increasing per database; a consumer keeps the newest per customer).
    pub id: i64,
    /// The idempotency key.
    pub key: String,
    /// The kind.
    pub kind: String,
    /// The customer it is about.
    pub customer_id: Option<String>,
    /// The event as published.
    pub body: serde_json::Value,
    /// When it was written (UTC).
    pub created_at: String,
    /// Its delivery to each target.
    pub deliveries: Vec<Delivery>,
}

/// An event's delivery to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The target (`mqtt`).
    pub target: String,
    /// `pending`, `delivered`, `acknowledged`, `failed` (will be tried again) or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was delivered (UTC).
    pub delivered_at: Option<String>,
    /// When the valve acknowledged it (UTC).
    pub acknowledged_at: Option<String>,
}

/// A company's webhook signing secrets (`whsec_` and 64 hex digits each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    /// The secret every delivery is signed with.
    pub secret: String,
    /// When it was made (epoch milliseconds).
    pub created_at_ms: i64,
    /// The secret before the last rotation, still signing until `previous_until_ms`.
    pub previous: Option<String>,
    /// Until when the previous secret signs too (epoch milliseconds).
    pub previous_until_ms: i64,
}

impl WebhookSecret {
    /// The secrets a delivery at `now_ms` is signed with: the current one, and the previous
    /// one while it is kept.
    pub fn signing(&self, now_ms: i64) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let Some(p) = &self.previous
            && now_ms < self.previous_until_ms
        {
            out.push(p);
        }
        out
    }
}

async fn webhook_secret_in<X: Exec>(x: &mut X, company_id: i32) -> Result<WebhookSecret> {
    let r = x
        .one(
            q!("SELECT secret, created_at_ms, previous, previous_until_ms
                FROM webhook_secrets WHERE company_id = $1"),
            args![company_id],
        )
        .await?;
    Ok(WebhookSecret {
        secret: r.string(0)?,
        created_at_ms: r.big(1)?,
        previous: r.opt_string(2)?,
        previous_until_ms: r.big(3)?,
    })
}

/// A delivery the publisher may try now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The event.
    pub event_id: i64,
    /// The company.
    pub company_id: i32,
    /// The company's slug (the topic's second level).
    pub company: String,
    /// The customer it is about (a publisher sends a customer's events one after another).
    pub customer_id: Option<String>,
    /// The kind (the topic's last level).
    pub kind: String,
    /// The body as kept.
    pub body: String,
    /// Attempts so far.
    pub attempts: i32,
}

/// What a night's fee control did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NightOutcome {
    /// Customers evaluated (in arrears, or with a valve state).
    pub evaluated: u64,
    /// Warnings sent.
    pub warnings: u64,
    /// Close requests.
    pub closes: u64,
    /// Open requests.
    pub opens: u64,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// One customer's.
    pub customer_id: Option<String>,
    /// One kind.
    pub kind: Option<EventKind>,
    /// Those with a delivery in this state.
    pub state: Option<String>,
    /// Events after this id (the page cursor).
    pub after: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// A close request waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacknowledged {
    /// The company.
    pub company_id: i32,
    /// The customer.
    pub customer_id: String,
    /// The request's key.
    pub request_key: String,
    /// Seconds since it was asked.
    pub age_s: i64,
}

/// Delivery states, for `/metrics` and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    /// The target.
    pub target: String,
    /// The state.
    pub state: String,
    /// How many deliveries.
    pub count: i64,
}

/// The outbox and fee control (see [`crate::events`]).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Applies the company's fee control to the night of `date` (its bills' arrears): every
    /// customer in arrears and every customer with a valve state, a page at a time, each
    /// decision and its event in one transaction. Idempotent: a second call for the same date
    /// writes nothing new.
    async fn fee_night(
        &self,
        company_id: i32,
        date: NaiveDate,
        policy: &FeeControl,
    ) -> Result<NightOutcome>;

    /// Events of the company, by id.
    async fn events(&self, company_id: i32, filter: &EventFilter) -> Result<Vec<EventRecord>>;

    /// One event of the company.
    async fn event(&self, company_id: i32, id: i64) -> Result<Option<EventRecord>>;

    /// Up to `limit` deliveries to `target` that may be tried at `now_ms`, oldest event first,
    /// of every company; none of a customer while an older event of theirs waits for a retry
    /// (per customer, events go out in order).
    async fn due_deliveries(&self, target: &str, now_ms: i64, limit: usize) -> Result<Vec<Due>>;

    /// Marks deliveries delivered (a delivery acknowledged already stays so).
    async fn mark_delivered(&self, target: &str, event_ids: &[i64]) -> Result<()>;

    /// Marks a delivery failed: tried again at `next_at_ms`, or `dead` (an operator replays it).
    async fn mark_failed(
        &self,
        target: &str,
        event_id: i64,
        error: &str,
        next_at_ms: i64,
        dead: bool,
    ) -> Result<()>;

    /// Sends an event again: its failed or dead deliveries (or, with `all`, every delivery)
    /// become pending. How many.
    async fn replay(&self, company_id: i32, event_id: i64, all: bool) -> Result<u64>;

    /// A customer's valve state (none: never evaluated).
    async fn valve(&self, company_id: i32, customer_id: &str) -> Result<Option<ValveState>>;

    /// Puts a customer on hold or takes them off it, marks the account disputed or not; a
    /// closed valve of a customer who becomes exempt is asked open (key `…:exempt-{nonce}`).
    async fn set_valve_flags(
        &self,
        company_id: i32,
        customer_id: &str,
        hold: Option<bool>,
        disputed: Option<bool>,
        note: Option<&str>,
        nonce: &str,
    ) -> Result<(ValveState, Option<EventRecord>)>;

    /// Records a valve's state as an adapter reported it, once per `report_id` (a report sent
    /// again is the same event): on the customer's timeline, and, when it is the state heatbill
    /// asked for, the request is acknowledged. The event, and whether it is new.
    async fn report_valve(
        &self,
        company_id: i32,
        customer_id: &str,
        position: ValvePosition,
        report_id: &str,
        detail: Option<&str>,
    ) -> Result<(EventRecord, bool)>;

    /// Close requests not acknowledged and not escalated yet, of every company.
    async fn unacknowledged(&self) -> Result<Vec<Unacknowledged>>;

    /// Escalates a close request (`valve_close_unacknowledged`); false when it was escalated,
    /// acknowledged or superseded meanwhile.
    async fn escalate(&self, u: &Unacknowledged, age_limit_h: u32) -> Result<bool>;

    /// The backlog: deliveries pending, failed (awaiting a retry) and dead, by target and state
    /// (delivered ones are not counted: the query stays on the small part of the table).
    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>>;

    /// The company's webhook signing secrets. Without `rotate`, `candidate` becomes its secret
    /// only when it has none yet (the first delivery, or the first time it is asked for); with
    /// `rotate: Some(until)`, `candidate` becomes its secret and the current one keeps signing
    /// beside it until `until` (epoch milliseconds), so a receiver can switch without refusing
    /// a delivery.
    async fn webhook_secret(
        &self,
        company_id: i32,
        candidate: &str,
        now_ms: i64,
        rotate: Option<i64>,
    ) -> Result<WebhookSecret>;

    /// The day's outdoor temperature.
    async fn put_outdoor_temperature(
        &self,
        company_id: i32,
        day: NaiveDate,
        celsius: Decimal,
    ) -> Result<()>;

    /// The outdoor temperature of a day, if given.
    async fn outdoor_temperature(&self, company_id: i32, day: NaiveDate)
    -> Result<Option<Decimal>>;
}

fn event_of<R: SqlRow>(r: &R) -> Result<EventRecord> {
    Ok(EventRecord {
        id: r.big("id")?,
        key: r.string("event_key")?,
        kind: r.string("kind")?,
        customer_id: r.opt_string("customer_id")?,
        body: serde_json::from_str(r.str("body")?)
            .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?,
        created_at: r.string("created_at")?,
        deliveries: Vec::new(),
    })
}

async fn with_deliveries<X: Exec>(
    x: &mut X,
    mut events: Vec<EventRecord>,
) -> Result<Vec<EventRecord>> {
    let (Some(first), Some(last)) = (events.first().map(|e| e.id), events.last().map(|e| e.id))
    else {
        return Ok(events);
    };
    let mut by: HashMap<i64, Vec<Delivery>> = HashMap::new();
    for r in x
        .rows(
            q!("SELECT event_id, target, state, attempts, last_error,
                       utc_text(delivered_at) AS delivered_at,
                       utc_text(acknowledged_at) AS acknowledged_at
                FROM event_deliveries WHERE event_id >= $1 AND event_id <= $2
                ORDER BY event_id, target"),
            args![first, last],
        )
        .await?
    {
        by.entry(r.big("event_id")?).or_default().push(Delivery {
            target: r.string("target")?,
            state: r.string("state")?,
            attempts: r.int("attempts")?,
            last_error: r.opt_string("last_error")?,
            delivered_at: r.opt_string("delivered_at")?,
            acknowledged_at: r.opt_string("acknowledged_at")?,
        });
    }
    for e in &mut events {
        e.deliveries = by.remove(&e.id).unwrap_or_default();
    }
    Ok(events)
}

macro_rules! event_columns {
    () => {
        "e.id, e.event_key, e.kind, e.customer_id, e.body, utc_text(e.created_at) AS created_at"
    };
}

#[async_trait]
impl<E: Engine> EventStore for E {
    async fn fee_night(
        &self,
        company_id: i32,
        date: NaiveDate,
        policy: &FeeControl,
    ) -> Result<NightOutcome> {
        let mut out = NightOutcome::default();
        let Some(rule) = policy.on(date) else {
            return Ok(out);
        };
        let mut db = self.db();
        let (company, policies) = company_policies(&mut db, company_id).await?;
        let targets = targets_of(&policies).map_err(StoreError::Corrupt)?;
        let outdoor = self.outdoor_temperature(company_id, date).await?;
        let no_close = rule.no_close_on(date, outdoor);
        // Every valve heatbill keeps a state for (few: the closed, warned, held and disputed).
        let mut valves: BTreeMap<String, ValveState> = db
            .rows(
                q!(concat!(
                    "SELECT ",
                    valve_columns!(),
                    " FROM valve_states WHERE company_id = $1
                      AND (requested = 'closed' OR warned = true OR hold = true
                           OR disputed = true)"
                )),
                args![company_id],
            )
            .await?
            .iter()
            .map(|r| valve_of(r).map(|v| (v.customer_id.clone(), v)))
            .collect::<Result<_>>()?;
        // Money paid from the night's date on counts: a payment on the day of the bill keeps
        // the valve open (the bill's arrears are those at the start of the day).
        let mut paid_since: HashMap<String, Decimal> = HashMap::new();
        for r in db
            .rows(
                q!("SELECT customer_id, amount::text FROM account_entries
                    WHERE company_id = $1 AND on_date >= $2"),
                args![company_id, date],
            )
            .await?
        {
            *paid_since.entry(r.string(0)?).or_default() += r.dec(1)?;
        }
        let mut after: Option<String> = None;
        loop {
            // The customers in arrears on the night (`arrears_since` is set exactly when the
            // arrears are positive), a page at a time.
            // `customer_id > $3` with "" for the first page, never `$3 IS NULL OR …`: a
            // generic plan (sqlx's after five executions) cannot use that as an index bound,
            // and each page then read the night from its first customer (8 s for 120,583
            // customers in arrears among 1,000,000, against 0.6 s).
            let rows = db
                .rows(
                    q!("SELECT customer_id, arrears::text, arrears_since FROM bills
                        WHERE company_id = $1 AND bill_date = $2 AND arrears_since IS NOT NULL
                          AND customer_id > $3
                        ORDER BY customer_id LIMIT $4"),
                    args![
                        company_id,
                        date,
                        after.as_deref().unwrap_or(""),
                        PAGE as i64
                    ],
                )
                .await?;
            let last_page = rows.len() < PAGE;
            let mut page: Vec<(String, Decimal, Option<NaiveDate>)> = rows
                .iter()
                .map(|r| Ok((r.string(0)?, r.dec(1)?, r.opt_date(2)?)))
                .collect::<Result<_>>()?;
            let upto = if last_page {
                None
            } else {
                page.last().map(|p| p.0.clone())
            };
            // The valves of this page's range that are not in arrears (all remaining ones on
            // the last page).
            let lo = after.clone();
            let extra: Vec<String> = valves
                .keys()
                .filter(|c| lo.as_ref().is_none_or(|l| *c > l))
                .filter(|c| upto.as_ref().is_none_or(|u| *c <= u))
                .cloned()
                .collect();
            for c in extra {
                if !page.iter().any(|p| p.0 == c) {
                    page.push((c, Decimal::ZERO, None));
                }
            }
            page.sort_by(|a, b| a.0.cmp(&b.0));
            after = upto;
            // Who is suspended or prepaid, for the customers that could close.
            // (A closed valve's customer who owes more than the credit limit stays closed
            // whatever they are: a following night reads none of them.)
            let mut ids: Vec<String> = page
                .iter()
                .filter(|p| {
                    p.1 > Decimal::ZERO
                        && (p.1 <= rule.credit_limit
                            || valves.get(&p.0).is_none_or(|v| v.requested != "closed"))
                })
                .map(|p| p.0.clone())
                .collect();
            ids.sort();
            let states = if ids.is_empty() {
                Vec::new()
            } else {
                self.load_customers(
                    company_id,
                    date,
                    &ShardRange {
                        shard_no: 0,
                        first: String::new(),
                        end: None,
                    },
                    Some(&ids),
                )
                .await?
            };
            let flags: HashMap<&str, (bool, bool)> = states
                .iter()
                .map(|s| {
                    (
                        s.customer_id.as_str(),
                        (
                            s.tags.contains(&rule.prepaid_tag),
                            s.status == ServiceStatus::Suspended,
                        ),
                    )
                })
                .collect();
            let mut decisions = Vec::new();
            for (customer_id, arrears, since) in &page {
                out.evaluated += 1;
                let (prepaid, suspended) =
                    flags.get(customer_id.as_str()).copied().unwrap_or_default();
                let paid = paid_since.get(customer_id).copied().unwrap_or_default();
                let f = FeeFacts {
                    customer_id: customer_id.clone(),
                    owed: *arrears - paid.max(Decimal::ZERO),
                    since: *since,
                    prepaid,
                    suspended,
                };
                let v = valves
                    .remove(customer_id)
                    .map(|v| v.facts())
                    .unwrap_or_default();
                if let Some(d) = decide(rule, date, &f, &v, no_close.as_deref()) {
                    decisions.push(d);
                }
            }
            if !decisions.is_empty() {
                let mut tx = self.begin().await?;
                let what = date.to_string();
                let cause = Cause {
                    date,
                    what: &what,
                    source: "night",
                };
                // PostgreSQL: the page in a few set-based statements (round trips are what a
                // night with many decisions costs). SQLite is in the process: per decision.
                let applied = match Engine::backend(self) {
                    Backend::Postgres => {
                        apply_page_pg(&mut tx, company_id, &company, &decisions, &cause, &targets)
                            .await?
                    }
                    Backend::Sqlite => {
                        let mut applied = Vec::with_capacity(decisions.len());
                        for d in &decisions {
                            applied.push(
                                apply(&mut tx, company_id, &company, d, &cause, &targets).await?,
                            );
                        }
                        applied
                    }
                };
                for (d, applied) in decisions.iter().zip(applied) {
                    if applied {
                        match d.action {
                            Action::Warn => out.warnings += 1,
                            Action::Close => out.closes += 1,
                            Action::Open => out.opens += 1,
                            Action::Unwarn => {}
                        }
                    }
                }
                tx.commit().await?;
            }
            if last_page {
                break;
            }
        }
        Ok(out)
    }

    async fn events(&self, company_id: i32, f: &EventFilter) -> Result<Vec<EventRecord>> {
        let mut db = self.db();
        let limit = f.limit.clamp(1, MAX_EVENTS) as i64;
        let rows = db
            .rows(
                q!(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events e WHERE e.company_id = $1
                      AND ($2::text IS NULL OR e.customer_id = $2)
                      AND ($3::text IS NULL OR e.kind = $3)
                      AND ($4 IS NULL OR e.id > $4)
                      AND ($5::text IS NULL OR EXISTS (
                          SELECT 1 FROM event_deliveries d WHERE d.event_id = e.id
                            AND d.state = $5))
                    ORDER BY e.id LIMIT $6"
                )),
                args![
                    company_id,
                    f.customer_id.as_deref(),
                    f.kind.map(EventKind::as_str),
                    f.after,
                    f.state.as_deref(),
                    limit
                ],
            )
            .await?;
        let events = rows.iter().map(event_of).collect::<Result<Vec<_>>>()?;
        with_deliveries(&mut db, events).await
    }

    async fn event(&self, company_id: i32, id: i64) -> Result<Option<EventRecord>> {
        let mut db = self.db();
        let Some(e) = db
            .opt(
                q!(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events e WHERE e.company_id = $1 AND e.id = $2"
                )),
                args![company_id, id],
            )
            .await?
            .as_ref()
            .map(event_of)
            .transpose()?
        else {
            return Ok(None);
        };
        Ok(with_deliveries(&mut db, vec![e]).await?.pop())
    }

    async fn due_deliveries(&self, target: &str, now_ms: i64, limit: usize) -> Result<Vec<Due>> {
        // Two plain queries the planner cannot get wrong, even on tables whose statistics lag
        // behind a burst of a night's events: (1) the customers with a delivery waiting for a
        // retry (few: a target that is down fails its deliveries, and those are not due), each
        // with its oldest waiting event; (2) the queue in event order, a window at a time, with
        // the order and the limit on the deliveries alone before any join. A candidate of a
        // customer whose older event waits is skipped here (one correlated check per candidate
        // was quadratic in the queue's length without statistics: 120,000 pending events took
        // minutes a round).
        let mut db = self.db();
        let mut waiting: HashMap<(i32, String), i64> = HashMap::new();
        for r in db
            .rows(
                q!("SELECT o.company_id, o.customer_id, min(o.id)
                    FROM event_deliveries w JOIN events o ON o.id = w.event_id
                    WHERE w.target = $1 AND w.state IN ('pending', 'failed')
                      AND w.next_at_ms > $2 AND o.customer_id IS NOT NULL
                    GROUP BY o.company_id, o.customer_id"),
                args![target, now_ms],
            )
            .await?
        {
            waiting.insert((r.int(0)?, r.string(1)?), r.big(2)?);
        }
        let limit = limit.max(1);
        let window = (limit * 2).max(100);
        let mut out = Vec::with_capacity(limit);
        let mut after = 0i64;
        loop {
            let rows = db
                .rows(
                    q!(
                        "SELECT d.event_id, c.slug, e.kind, e.body, d.attempts, e.company_id,
                            e.customer_id
                        FROM (SELECT event_id, attempts FROM event_deliveries
                              WHERE target = $1 AND state IN ('pending', 'failed')
                                AND next_at_ms <= $2 AND event_id > $3
                              ORDER BY event_id LIMIT $4) d
                        JOIN events e ON e.id = d.event_id
                        JOIN companies c ON c.id = e.company_id
                        ORDER BY d.event_id"
                    ),
                    args![target, now_ms, after, window as i64],
                )
                .await?;
            for r in &rows {
                let d = Due {
                    event_id: r.big(0)?,
                    company_id: r.int(5)?,
                    customer_id: r.opt_string(6)?,
                    company: r.string(1)?,
                    kind: r.string(2)?,
                    body: r.string(3)?,
                    attempts: r.int(4)?,
                };
                after = d.event_id;
                let blocked = d.customer_id.as_ref().is_some_and(|c| {
                    waiting
                        .get(&(d.company_id, c.clone()))
                        .is_some_and(|first| *first < d.event_id)
                });
                if !blocked {
                    out.push(d);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if rows.len() < window {
                return Ok(out);
            }
        }
    }

    async fn mark_delivered(&self, target: &str, event_ids: &[i64]) -> Result<()> {
        if event_ids.is_empty() {
            return Ok(());
        }
        // One statement for the round, the ids as a JSON array.
        let ids = serde_json::json!(event_ids).to_string();
        let q = match Engine::backend(self) {
            // By the primary key, an array's lookups: written so that the partial index of
            // the queue (whose statistics lag behind a night's burst) cannot be chosen to scan
            // the whole queue once per id (22 s a round of 1,000 on 120,000 pending).
            Backend::Postgres => q!("UPDATE event_deliveries SET state = 'delivered',
                    attempts = attempts + 1, delivered_at = now(), last_error = NULL
                WHERE event_id = ANY(ARRAY(SELECT json_array_elements_text($1::json)::bigint))
                  AND target = $2 AND state NOT IN ('delivered', 'acknowledged', 'dead')"),
            Backend::Sqlite => q!("UPDATE event_deliveries SET state = 'delivered',
                    attempts = attempts + 1, delivered_at = now(), last_error = NULL
                WHERE event_id IN (SELECT value FROM json_each($1))
                  AND target = $2 AND state IN ('pending', 'failed')"),
        };
        self.db().exec(q, args![ids.as_str(), target]).await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        target: &str,
        event_id: i64,
        error: &str,
        next_at_ms: i64,
        dead: bool,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        self.db()
            .exec(
                q!(
                    "UPDATE event_deliveries SET attempts = attempts + 1, last_error = $3,
                        next_at_ms = $4, state = CASE WHEN $5 THEN 'dead' ELSE 'failed' END
                    WHERE event_id = $1 AND target = $2 AND state IN ('pending', 'failed')"
                ),
                args![event_id, target, error.as_str(), next_at_ms, dead],
            )
            .await?;
        Ok(())
    }

    async fn replay(&self, company_id: i32, event_id: i64, all: bool) -> Result<u64> {
        self.db()
            .exec(
                q!(
                    "UPDATE event_deliveries SET state = 'pending', next_at_ms = 0, attempts = 0,
                        last_error = NULL
                    WHERE event_id = $1 AND company_id = $2
                      AND ($3 OR state IN ('failed', 'dead'))"
                ),
                args![event_id, company_id, all],
            )
            .await
    }

    async fn valve(&self, company_id: i32, customer_id: &str) -> Result<Option<ValveState>> {
        valve_in(&mut self.db(), company_id, customer_id).await
    }

    async fn set_valve_flags(
        &self,
        company_id: i32,
        customer_id: &str,
        hold: Option<bool>,
        disputed: Option<bool>,
        note: Option<&str>,
        nonce: &str,
    ) -> Result<(ValveState, Option<EventRecord>)> {
        let mut tx = self.begin().await?;
        known_customer(&mut tx, company_id, customer_id).await?;
        tx.exec(
            q!(
                "INSERT INTO valve_states (company_id, customer_id) VALUES ($1, $2)
                ON CONFLICT (company_id, customer_id) DO NOTHING"
            ),
            args![company_id, customer_id],
        )
        .await?;
        tx.exec(
            q!("UPDATE valve_states SET hold = COALESCE($3, hold),
                    disputed = COALESCE($4, disputed), note = COALESCE($5, note)
                WHERE company_id = $1 AND customer_id = $2"),
            args![company_id, customer_id, hold, disputed, note],
        )
        .await?;
        let v = valve_in(&mut tx, company_id, customer_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the valve state just written".into()))?;
        let mut event = None;
        if v.requested == "closed" && (v.hold || v.disputed) {
            let (company, policies) = company_policies(&mut tx, company_id).await?;
            let targets = targets_of(&policies).map_err(StoreError::Corrupt)?;
            let today = chrono::Utc::now().date_naive();
            let d = Decision {
                customer_id: customer_id.to_string(),
                action: Action::Open,
                reason: format!(
                    "exempt: {}",
                    if v.hold {
                        "on hold by an operator"
                    } else {
                        "the account is disputed"
                    }
                ),
                owed: Decimal::ZERO,
                limit: Decimal::ZERO,
                days_in_arrears: 0,
                rule_from: today,
            };
            let what = format!("exempt-{nonce}");
            let cause = Cause {
                date: today,
                what: &what,
                source: "operator",
            };
            if apply(&mut tx, company_id, &company, &d, &cause, &targets).await? {
                let k = key(EventKind::ValveOpenRequested, customer_id, &what);
                let id = tx
                    .one(
                        q!("SELECT id FROM events WHERE company_id = $1 AND event_key = $2"),
                        args![company_id, k.as_str()],
                    )
                    .await?
                    .big(0)?;
                event = Some(id);
            }
        }
        let v = valve_in(&mut tx, company_id, customer_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the valve state just written".into()))?;
        tx.commit().await?;
        let event = match event {
            Some(id) => self.event(company_id, id).await?,
            None => None,
        };
        Ok((v, event))
    }

    async fn report_valve(
        &self,
        company_id: i32,
        customer_id: &str,
        position: ValvePosition,
        report_id: &str,
        detail: Option<&str>,
    ) -> Result<(EventRecord, bool)> {
        let mut tx = self.begin().await?;
        known_customer(&mut tx, company_id, customer_id).await?;
        let (company, _) = company_policies(&mut tx, company_id).await?;
        let k = key(EventKind::ValveStateReported, customer_id, report_id);
        let existing = tx
            .opt(
                q!("SELECT id, body FROM events WHERE company_id = $1 AND event_key = $2"),
                args![company_id, k.as_str()],
            )
            .await?;
        if let Some(r) = existing {
            let id = r.big(0)?;
            let same = serde_json::from_str::<serde_json::Value>(r.str(1)?)
                .ok()
                .and_then(|b| b.get("state").and_then(|s| s.as_str()).map(str::to_string));
            drop(tx);
            if same.as_deref() != Some(position.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "report {} of customer {} was recorded as {}: a report is never changed; \
                     send a new report with its own id",
                    shown(report_id),
                    shown(customer_id),
                    same.unwrap_or_default()
                )));
            }
            let e = self
                .event(company_id, id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("a report just read".into()))?;
            return Ok((e, false));
        }
        let valve = valve_in(&mut tx, company_id, customer_id).await?;
        let requested = valve.as_ref().map_or("open", |v| v.requested.as_str());
        let request_key = valve.as_ref().and_then(|v| v.request_key.clone());
        let acknowledges = position.as_str() == requested && request_key.is_some();
        let body = serde_json::json!({
            "key": k,
            "kind": EventKind::ValveStateReported.as_str(),
            "company": company,
            "customer_id": customer_id,
            "state": position.as_str(),
            "report_id": report_id,
            "detail": detail,
            "acknowledges": if acknowledges { request_key.clone() } else { None },
        });
        let id = insert_event(
            &mut tx,
            company_id,
            &k,
            EventKind::ValveStateReported,
            Some(customer_id),
            &body,
            &[],
        )
        .await?
        .ok_or_else(|| {
            StoreError::Conflict("the report was recorded at the same moment: send it again".into())
        })?;
        tx.exec(
            q!(
                "INSERT INTO valve_states (company_id, customer_id) VALUES ($1, $2)
                ON CONFLICT (company_id, customer_id) DO NOTHING"
            ),
            args![company_id, customer_id],
        )
        .await?;
        tx.exec(
            q!("UPDATE valve_states SET reported = $3, reported_at = now(),
                    acknowledged = CASE WHEN $4 THEN true ELSE acknowledged END
                WHERE company_id = $1 AND customer_id = $2"),
            args![company_id, customer_id, position.as_str(), acknowledges],
        )
        .await?;
        if acknowledges && let Some(rk) = request_key.as_deref() {
            tx.exec(
                q!(
                    "UPDATE event_deliveries SET state = 'acknowledged', acknowledged_at = now()
                    WHERE company_id = $1 AND state IN ('pending', 'delivered', 'failed')
                      AND event_id = (SELECT id FROM events WHERE company_id = $1
                                      AND event_key = $2)"
                ),
                args![company_id, rk],
            )
            .await?;
        }
        tx.commit().await?;
        let e = self
            .event(company_id, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a report just written".into()))?;
        Ok((e, true))
    }

    async fn unacknowledged(&self) -> Result<Vec<Unacknowledged>> {
        self.db()
            .rows(
                q!(
                    "SELECT company_id, customer_id, request_key, age_s(requested_at) AS age
                    FROM valve_states
                    WHERE requested = 'closed' AND acknowledged = false AND escalated = false
                      AND request_key IS NOT NULL
                    ORDER BY company_id, customer_id LIMIT 10000"
                ),
                args![],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Unacknowledged {
                    company_id: r.int(0)?,
                    customer_id: r.string(1)?,
                    request_key: r.string(2)?,
                    age_s: r.big(3)?,
                })
            })
            .collect()
    }

    async fn escalate(&self, u: &Unacknowledged, age_limit_h: u32) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                q!("UPDATE valve_states SET escalated = true
                    WHERE company_id = $1 AND customer_id = $2 AND request_key = $3
                      AND requested = 'closed' AND acknowledged = false AND escalated = false"),
                args![u.company_id, u.customer_id.as_str(), u.request_key.as_str()],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        let (company, policies) = company_policies(&mut tx, u.company_id).await?;
        let targets = targets_of(&policies).map_err(StoreError::Corrupt)?;
        let k = key(
            EventKind::ValveCloseUnacknowledged,
            &u.customer_id,
            &u.request_key,
        );
        let body = serde_json::json!({
            "key": k,
            "kind": EventKind::ValveCloseUnacknowledged.as_str(),
            "company": company,
            "customer_id": u.customer_id,
            "request_key": u.request_key,
            "waited_s": u.age_s,
            "rule": format!("policies.fee_control ack_hours = {age_limit_h}"),
            "reason": format!("the close request was not acknowledged within {age_limit_h} hour(s)"),
        });
        insert_event(
            &mut tx,
            u.company_id,
            &k,
            EventKind::ValveCloseUnacknowledged,
            Some(&u.customer_id),
            &body,
            &targets,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>> {
        self.db()
            .rows(
                q!("SELECT target, state, count(*) FROM event_deliveries
                    WHERE state IN ('pending', 'failed', 'dead')
                    GROUP BY target, state ORDER BY target, state"),
                args![],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(DeliveryCount {
                    target: r.string(0)?,
                    state: r.string(1)?,
                    count: r.big(2)?,
                })
            })
            .collect()
    }

    async fn webhook_secret(
        &self,
        company_id: i32,
        candidate: &str,
        now_ms: i64,
        rotate: Option<i64>,
    ) -> Result<WebhookSecret> {
        let mut tx = self.begin().await?;
        match rotate {
            None => {
                tx.exec(
                    q!(
                        "INSERT INTO webhook_secrets (company_id, secret, created_at_ms)
                        VALUES ($1, $2, $3) ON CONFLICT (company_id) DO NOTHING"
                    ),
                    args![company_id, candidate, now_ms],
                )
                .await?
            }
            Some(until) => {
                tx.exec(
                    q!(
                        "INSERT INTO webhook_secrets (company_id, secret, created_at_ms)
                        VALUES ($1, $2, $3)
                        ON CONFLICT (company_id) DO UPDATE SET previous = webhook_secrets.secret,
                            previous_until_ms = $4, secret = excluded.secret,
                            created_at_ms = excluded.created_at_ms"
                    ),
                    args![company_id, candidate, now_ms, until],
                )
                .await?
            }
        };
        let s = webhook_secret_in(&mut tx, company_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    async fn put_outdoor_temperature(
        &self,
        company_id: i32,
        day: NaiveDate,
        celsius: Decimal,
    ) -> Result<()> {
        let c = celsius.to_string();
        let mut tx = self.begin().await?;
        tx.exec(
            q!("INSERT INTO outdoor_temperatures (company_id, day, celsius)
                VALUES ($1, $2, $3::text::numeric)
                ON CONFLICT (company_id, day) DO UPDATE SET celsius = $3::text::numeric"),
            args![company_id, day, c.as_str()],
        )
        .await?;
        tx.commit().await
    }

    async fn outdoor_temperature(
        &self,
        company_id: i32,
        day: NaiveDate,
    ) -> Result<Option<Decimal>> {
        self.db()
            .opt(
                q!("SELECT celsius::text FROM outdoor_temperatures
                    WHERE company_id = $1 AND day = $2"),
                args![company_id, day],
            )
            .await?
            .map(|r| r.dec(0))
            .transpose()
    }
}
