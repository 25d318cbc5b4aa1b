//! Events out: fee control (费控) decides, an outbox keeps, publishers deliver.
//!
//! heatbill does not speak to valves. It decides when a customer's valve should close or open
//! and writes that decision as an **event** in the same transaction as the valve state it
//! changes ([`crate::store::EventStore`]); the publisher ([`crate::publish`]) delivers each event to the
//! company's targets (MQTT today) at least once, in order, and adapters (a concentrator's or an
//! NB-IoT platform's) act on it and report the valve's state back.
//!
//! - An event's **key** is its idempotency key: stable across retries, re-runs and resumed
//!   runs, so a consumer dedupes by it and a re-run of a night writes nothing new. Keys are
//!   `KIND:CUSTOMER:WHAT` (the night's date, or the payment's entry id).
//! - **Fee control** is the company policy [`FeeControl`] (`policies.fee_control` in its company
//!   file, versions with effective dates) applied by [`decide`] to a customer's arrears and
//!   valve state: the nightly run evaluates every customer in arrears and every closed valve
//!   after its last shard (before it is marked completed, so a resumed run evaluates again,
//!   under the same keys); a payment evaluates its customer at once.
//! - A valve is **closed at most once** between opens: the store changes the valve state from
//!   open to closed and writes the event only when that change happens (compare and set), so
//!   two nights, a re-run and a payment racing a night cannot ask twice.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The delivery targets a company may name (`policies.events.targets`).
pub const TARGETS: [&str; 2] = ["mqtt", "webhook"];

/// Now, in epoch milliseconds (what deliveries' `next_at_ms` and the webhooks' timestamps count).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The message delivered for an event (to MQTT and to webhooks alike): its body with its
/// sequence number `seq` (the event's id).
pub fn message(body: &str, seq: i64) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("seq".into(), seq.into());
            serde_json::Value::Object(m).to_string().into_bytes()
        }
        _ => body.as_bytes().to_vec(),
    }
}

/// The kinds of events heatbill writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Arrears passed the warning threshold (once until they fall under it again).
    BalanceWarning,
    /// Close the customer's valve (欠费关阀).
    ValveCloseRequested,
    /// Open the customer's valve (缴费开阀, or an exemption).
    ValveOpenRequested,
    /// A close request was not acknowledged in the policy's time.
    ValveCloseUnacknowledged,
    /// An adapter reported the valve's state (inbound: kept on the timeline, never published).
    ValveStateReported,
    /// Issue an e-invoice (数电票) for a payment ([`crate::invoices`]).
    InvoiceRequested,
    /// Issue a red-letter (红字) e-invoice for a refund or reversal of an invoiced payment.
    InvoiceRedRequested,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        EventKind::BalanceWarning,
        EventKind::ValveCloseRequested,
        EventKind::ValveOpenRequested,
        EventKind::ValveCloseUnacknowledged,
        EventKind::ValveStateReported,
        EventKind::InvoiceRequested,
        EventKind::InvoiceRedRequested,
    ];

    /// The kind's name (the MQTT topic's last level).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BalanceWarning => "balance_warning",
            EventKind::ValveCloseRequested => "valve_close_requested",
            EventKind::ValveOpenRequested => "valve_open_requested",
            EventKind::ValveCloseUnacknowledged => "valve_close_unacknowledged",
            EventKind::ValveStateReported => "valve_state_reported",
            EventKind::InvoiceRequested => "invoice_requested",
            EventKind::InvoiceRedRequested => "invoice_red_requested",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether events of this kind go out to the targets (a report came in: it does not).
    pub fn outbound(self) -> bool {
        self != EventKind::ValveStateReported
    }
}

/// A valve's state as an adapter reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValvePosition {
    /// Open: heat flows.
    Open,
    /// Closed.
    Closed,
    /// The valve or its concentrator reports a fault.
    Fault,
}

impl ValvePosition {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ValvePosition::Open => "open",
            ValvePosition::Closed => "closed",
            ValvePosition::Fault => "fault",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<ValvePosition> {
        match s {
            "open" => Some(ValvePosition::Open),
            "closed" => Some(ValvePosition::Closed),
            "fault" => Some(ValvePosition::Fault),
            _ => None,
        }
    }
}

/// A range of days on which no valve is closed: month-days (`"12-20"` to `"01-31"`, every
/// year, may wrap the new year) or dates (`"2026-01-10"` to `"2026-01-20"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoClose {
    /// The first day.
    pub from: String,
    /// The last day (inclusive).
    pub to: String,
}

/// One version of a company's fee-control policy, in force from its date until the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeRule {
    /// The first day this version is in force.
    pub from: NaiveDate,
    /// Arrears up to this much keep the heat on (元; `0` closes at the first fen owed).
    pub credit_limit: Decimal,
    /// Arrears over this much warn the customer (`balance_warning`), once until they fall
    /// under it again. None: no warnings.
    #[serde(default)]
    pub warning: Option<Decimal>,
    /// Days the arrears must have been owed (since `arrears_since`) before a close.
    #[serde(default)]
    pub days_in_arrears: u32,
    /// Suspended (报停) customers are never closed (default true: their valve is shut by the
    /// suspension itself, not by fee control).
    #[serde(default = "yes")]
    pub exempt_suspended: bool,
    /// Days on which nothing is closed (the coldest weeks).
    #[serde(default)]
    pub no_close: Vec<NoClose>,
    /// No closing on a day whose outdoor temperature (`PUT …/weather/{date}`) is below this,
    /// °C.
    #[serde(default)]
    pub no_close_below: Option<Decimal>,
    /// Customers with this tag are prepaid (预付费): their credit limit is zero and they close
    /// on the first night their balance has run out (no `days_in_arrears` of grace).
    #[serde(default = "prepaid")]
    pub prepaid_tag: String,
    /// Hours a close request may wait for the valve's acknowledgement before it is escalated
    /// (`valve_close_unacknowledged`).
    #[serde(default = "ack_hours")]
    pub ack_hours: u32,
}

fn yes() -> bool {
    true
}
fn prepaid() -> String {
    "prepaid".into()
}
fn ack_hours() -> u32 {
    24
}

/// A company's fee-control policy: its versions by date (`policies.fee_control`, a list).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeeControl {
    /// The versions, by `from`.
    pub rules: Vec<FeeRule>,
}

impl FeeControl {
    /// The company's policy, if it has one; a malformed one says what to fix.
    pub fn of(policies: &serde_json::Value) -> Result<Option<FeeControl>, String> {
        let Some(v) = policies.get("fee_control") else {
            return Ok(None);
        };
        let mut rules: Vec<FeeRule> = serde_json::from_value(v.clone())
            .map_err(|e| format!("policies.fee_control: {e} (give a list of versions, each with from and credit_limit)"))?;
        if rules.is_empty() {
            return Err(
                "policies.fee_control is empty: give at least one version, or leave it out".into(),
            );
        }
        if rules.len() > 100 {
            return Err(format!(
                "policies.fee_control has {} versions: give at most 100",
                rules.len()
            ));
        }
        rules.sort_by_key(|r| r.from);
        for (i, r) in rules.iter().enumerate() {
            let at = format!("policies.fee_control version from {}", r.from);
            if i > 0 && rules[i - 1].from == r.from {
                return Err(format!(
                    "{at}: two versions take effect that day; give each its own date"
                ));
            }
            if r.credit_limit < Decimal::ZERO {
                return Err(format!(
                    "{at}: credit_limit is {}; give 0 or more (元)",
                    r.credit_limit
                ));
            }
            if let Some(w) = r.warning
                && w < Decimal::ZERO
            {
                return Err(format!(
                    "{at}: warning is {w}; give 0 or more (元), or leave it out"
                ));
            }
            if r.days_in_arrears > 3660 {
                return Err(format!(
                    "{at}: days_in_arrears is {}; give at most 3660",
                    r.days_in_arrears
                ));
            }
            if r.ack_hours == 0 || r.ack_hours > 24 * 90 {
                return Err(format!(
                    "{at}: ack_hours is {}; give 1 to 2160",
                    r.ack_hours
                ));
            }
            if r.no_close.len() > 50 {
                return Err(format!(
                    "{at}: {} no_close ranges; give at most 50",
                    r.no_close.len()
                ));
            }
            for n in &r.no_close {
                day_key(&n.from)
                    .zip(day_key(&n.to))
                    .filter(|(a, b)| a.0 == b.0)
                    .ok_or_else(|| {
                        format!(
                            "{at}: no_close {{ from = {:?}, to = {:?} }}: give two month-days \
                             (\"12-20\" to \"01-31\") or two dates (\"2026-01-10\" to \
                             \"2026-01-20\")",
                            n.from, n.to
                        )
                    })?;
            }
        }
        Ok(Some(FeeControl { rules }))
    }

    /// The version in force on `date` (none before the first).
    pub fn on(&self, date: NaiveDate) -> Option<&FeeRule> {
        self.rules.iter().rev().find(|r| r.from <= date)
    }
}

/// A day as (is a full date, sortable key): `MM-DD` → (false, month*100+day);
/// `YYYY-MM-DD` → (true, days from CE).
fn day_key(s: &str) -> Option<(bool, i64)> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some((true, d.num_days_from_ce() as i64));
    }
    let (m, d) = s.split_once('-')?;
    let (m, d): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    NaiveDate::from_ymd_opt(2024, m, d)?;
    Some((false, (m * 100 + d) as i64))
}

impl FeeRule {
    /// Whether `date` is a day on which nothing is closed: in a `no_close` range, or colder
    /// than `no_close_below` (the day's outdoor temperature, when the company gave one).
    pub fn no_close_on(&self, date: NaiveDate, outdoor: Option<Decimal>) -> Option<String> {
        let md = (date.month() * 100 + date.day()) as i64;
        let full = date.num_days_from_ce() as i64;
        for n in &self.no_close {
            let (Some((dated, a)), Some((_, b))) = (day_key(&n.from), day_key(&n.to)) else {
                continue;
            };
            let x = if dated { full } else { md };
            let inside = if a <= b {
                a <= x && x <= b
            } else {
                x >= a || x <= b
            };
            if inside {
                return Some(format!("no closing from {} to {}", n.from, n.to));
            }
        }
        if let (Some(limit), Some(t)) = (self.no_close_below, outdoor)
            && t < limit
        {
            return Some(format!("no closing below {limit} °C (outdoor {t} °C)"));
        }
        None
    }
}

/// What fee control knows of a customer on a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeFacts {
    /// The customer.
    pub customer_id: String,
    /// What the customer owes (元): at night, the bill's arrears at the start of the date; at
    /// a payment, the account's balance after it.
    pub owed: Decimal,
    /// Since when it has been owed.
    pub since: Option<NaiveDate>,
    /// Prepaid (the rule's tag).
    pub prepaid: bool,
    /// Suspended (报停) on the date.
    pub suspended: bool,
}

/// A customer's valve as fee control left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValveFacts {
    /// heatbill asked for it closed (and has not asked for it open since).
    pub closed: bool,
    /// A warning was sent and the arrears have not fallen under the threshold since.
    pub warned: bool,
    /// An operator put the customer on hold (never closed).
    pub hold: bool,
    /// The account is disputed (never closed).
    pub disputed: bool,
}

/// What fee control does for a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `balance_warning`.
    Warn,
    /// Arrears fell under the warning threshold: a later rise warns again (no event).
    Unwarn,
    /// Send `valve_close_requested`.
    Close,
    /// Send `valve_open_requested`.
    Open,
}

/// A decision with its reason and the rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The customer.
    pub customer_id: String,
    /// What to do.
    pub action: Action,
    /// Why, in words.
    pub reason: String,
    /// What the customer owed.
    pub owed: Decimal,
    /// The limit that applied.
    pub limit: Decimal,
    /// Days owed.
    pub days_in_arrears: i64,
    /// The policy version (`from`).
    pub rule_from: NaiveDate,
}

/// Fee control's decision for one customer on `date` (none: nothing changes).
///
/// - A closed valve opens when what is owed is within the limit again, or an operator put the
///   customer on hold or marked the account disputed (a suspension does not open it: heat is
///   off anyway).
/// - An open valve closes when what is owed is over the limit (zero for prepaid), has been owed
///   `days_in_arrears` days (none for prepaid), the customer is not exempt and the day is not a no-close day.
/// - Otherwise a warning when over the warning threshold and not warned yet; an "unwarn" when
///   under it and warned.
pub fn decide(
    rule: &FeeRule,
    date: NaiveDate,
    f: &FeeFacts,
    v: &ValveFacts,
    no_close: Option<&str>,
) -> Option<Decision> {
    let limit = if f.prepaid {
        Decimal::ZERO
    } else {
        rule.credit_limit
    };
    let days = f.since.map_or(0, |s| (date - s).num_days().max(0));
    let exempt = if v.hold {
        Some("on hold by an operator")
    } else if v.disputed {
        Some("the account is disputed")
    } else if f.suspended && rule.exempt_suspended {
        Some("suspended (报停)")
    } else {
        None
    };
    let make = |action, reason: String| Decision {
        customer_id: f.customer_id.clone(),
        action,
        reason,
        owed: f.owed,
        limit,
        days_in_arrears: days,
        rule_from: rule.from,
    };
    if v.closed {
        if f.owed <= limit {
            return Some(make(
                Action::Open,
                format!("owed {} is within the credit limit {limit}", f.owed),
            ));
        }
        // An operator's exemption opens it; a suspension (报停) does not: heat is off anyway.
        if v.hold || v.disputed {
            return Some(make(
                Action::Open,
                format!("exempt: {}", exempt.unwrap_or_default()),
            ));
        }
        return None;
    }
    // Prepaid means paid before use: no days of grace once the balance runs out.
    let grace = if f.prepaid { 0 } else { rule.days_in_arrears };
    if f.owed > limit && days >= i64::from(grace) && exempt.is_none() && no_close.is_none() {
        let what = if f.prepaid {
            "prepaid balance ran out".to_string()
        } else {
            format!("owed {} over the credit limit {limit}", f.owed)
        };
        return Some(make(
            Action::Close,
            format!("{what} for {days} day(s) (rule: {grace} day(s))"),
        ));
    }
    match rule.warning {
        Some(w) if f.owed > w && !v.warned => Some(make(
            Action::Warn,
            format!("owed {} over the warning threshold {w}", f.owed),
        )),
        Some(w) if f.owed <= w && v.warned => Some(make(Action::Unwarn, String::new())),
        None if v.warned => Some(make(Action::Unwarn, String::new())),
        _ => None,
    }
}

/// The event's key: `KIND:CUSTOMER:WHAT`.
pub fn key(kind: EventKind, customer_id: &str, what: &str) -> String {
    format!("{}:{customer_id}:{what}", kind.as_str())
}

/// A company's event targets (`policies.events.targets`: `"mqtt"`, `"webhook"`). None means
/// events are kept and queryable but not published. A company that names `"webhook"` gives its
/// endpoint ([`WebhookEndpoint`]).
pub fn targets_of(policies: &serde_json::Value) -> Result<Vec<String>, String> {
    let Some(t) = policies.get("events").and_then(|e| e.get("targets")) else {
        WebhookEndpoint::of(policies)?;
        return Ok(Vec::new());
    };
    let list: Vec<String> = serde_json::from_value(t.clone())
        .map_err(|e| format!("policies.events.targets: {e} (give a list such as [\"mqtt\"])"))?;
    for t in &list {
        if !TARGETS.contains(&t.as_str()) {
            return Err(format!(
                "policies.events.targets names {t:?}: give any of {}",
                TARGETS.join(", ")
            ));
        }
    }
    let endpoint = WebhookEndpoint::of(policies)?;
    if list.iter().any(|t| t == "webhook") && endpoint.is_none() {
        return Err(
            "policies.events.targets names \"webhook\": give its endpoint as \
                    policies.events.webhook.url (http://HOST:PORT/PATH)"
                .into(),
        );
    }
    let mut list = list;
    list.sort();
    list.dedup();
    Ok(list)
}

/// Where a company's signed webhooks go (`policies.events.webhook`). Set by the platform
/// operator with the company's other policies (a company's own tokens cannot aim the
/// platform's requests at an address of their choosing).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// `http://HOST[:PORT]/PATH`: every event is POSTed here, signed.
    pub url: String,
}

impl WebhookEndpoint {
    /// The company's endpoint, if it has one; an error says what to fix.
    pub fn of(policies: &serde_json::Value) -> Result<Option<WebhookEndpoint>, String> {
        let Some(v) = policies.get("events").and_then(|e| e.get("webhook")) else {
            return Ok(None);
        };
        let e: WebhookEndpoint = serde_json::from_value(v.clone()).map_err(|e| {
            format!("policies.events.webhook: {e} (give {{\"url\": \"http://HOST:PORT/PATH\"}})")
        })?;
        let shown = heatbill_engine::text::safe(&e.url);
        if e.url.len() > 2000 || e.url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "policies.events.webhook.url {shown}: give at most 2000 characters, no spaces"
            ));
        }
        if e.url.starts_with("https://") {
            return Err(format!(
                "policies.events.webhook.url {shown}: this build sends webhooks over http:// \
                 only; terminate TLS in a forward proxy on the hosts' network, or receive on it"
            ));
        }
        let parsed = reqwest::Url::parse(&e.url)
            .map_err(|err| format!("policies.events.webhook.url {shown}: {err}"))?;
        if parsed.scheme() != "http" || parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!(
                "policies.events.webhook.url {shown}: give http://HOST[:PORT]/PATH"
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "policies.events.webhook.url {shown}: no credentials in the address; \
                 the receiver checks the signature instead"
            ));
        }
        Ok(Some(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn rule() -> FeeRule {
        serde_json::from_value(serde_json::json!({
            "from": "2025-11-15", "credit_limit": "200", "warning": "100", "days_in_arrears": 30,
            "no_close": [{"from": "12-25", "to": "01-05"}], "no_close_below": "-20"
        }))
        .unwrap()
    }

    fn facts(owed: Decimal, since: &str) -> FeeFacts {
        FeeFacts {
            customer_id: "c1".into(),
            owed,
            since: Some(d(since)),
            prepaid: false,
            suspended: false,
        }
    }

    #[test]
    fn closes_after_the_days_and_opens_within_the_limit() {
        let r = rule();
        let open = ValveFacts {
            warned: true,
            ..Default::default()
        };
        // Over the limit for 29 days: not yet.
        assert_eq!(
            decide(
                &r,
                d("2026-02-01"),
                &facts(dec("250"), "2026-01-03"),
                &open,
                None
            ),
            None
        );
        let c = decide(
            &r,
            d("2026-02-02"),
            &facts(dec("250"), "2026-01-03"),
            &open,
            None,
        )
        .unwrap();
        assert_eq!(c.action, Action::Close);
        assert_eq!(c.days_in_arrears, 30);
        let closed = ValveFacts {
            closed: true,
            ..open.clone()
        };
        assert_eq!(
            decide(
                &r,
                d("2026-02-03"),
                &facts(dec("250"), "2026-01-03"),
                &closed,
                None
            ),
            None
        );
        let o = decide(
            &r,
            d("2026-02-03"),
            &facts(dec("200"), "2026-01-03"),
            &closed,
            None,
        )
        .unwrap();
        assert_eq!(o.action, Action::Open);
    }

    #[test]
    fn exemptions_and_no_close_days() {
        let r = rule();
        let f = facts(dec("900"), "2025-11-15");
        for v in [
            ValveFacts {
                hold: true,
                warned: true,
                ..Default::default()
            },
            ValveFacts {
                disputed: true,
                warned: true,
                ..Default::default()
            },
        ] {
            assert_eq!(decide(&r, d("2026-02-02"), &f, &v, None), None);
        }
        let suspended = FeeFacts {
            suspended: true,
            ..f.clone()
        };
        let warned = ValveFacts {
            warned: true,
            ..Default::default()
        };
        assert_eq!(decide(&r, d("2026-02-02"), &suspended, &warned, None), None);
        assert!(r.no_close_on(d("2025-12-31"), None).is_some());
        assert!(r.no_close_on(d("2026-01-05"), None).is_some());
        assert!(r.no_close_on(d("2026-01-06"), None).is_none());
        assert!(r.no_close_on(d("2026-01-06"), Some(dec("-21"))).is_some());
        assert!(r.no_close_on(d("2026-01-06"), Some(dec("-20"))).is_none());
        let why = r.no_close_on(d("2025-12-31"), None);
        assert_eq!(
            decide(&r, d("2025-12-31"), &f, &warned, why.as_deref()),
            None
        );
        // An exempt customer whose valve is closed is opened.
        let held = ValveFacts {
            closed: true,
            hold: true,
            ..Default::default()
        };
        assert_eq!(
            decide(&r, d("2026-02-02"), &f, &held, None).unwrap().action,
            Action::Open
        );
    }

    #[test]
    fn prepaid_closes_at_zero_and_warnings_come_once() {
        let r = rule();
        let p = FeeFacts {
            prepaid: true,
            ..facts(dec("0.01"), "2026-02-02")
        };
        let c = decide(&r, d("2026-02-02"), &p, &ValveFacts::default(), None).unwrap();
        assert_eq!((c.action, c.limit), (Action::Close, dec("0")));
        let w = decide(
            &r,
            d("2026-02-02"),
            &facts(dec("150"), "2026-02-01"),
            &ValveFacts::default(),
            None,
        );
        assert_eq!(w.unwrap().action, Action::Warn);
        let warned = ValveFacts {
            warned: true,
            ..Default::default()
        };
        assert_eq!(
            decide(
                &r,
                d("2026-02-02"),
                &facts(dec("150"), "2026-02-01"),
                &warned,
                None
            ),
            None
        );
        let u = decide(
            &r,
            d("2026-02-02"),
            &facts(dec("50"), "2026-02-01"),
            &warned,
            None,
        );
        assert_eq!(u.unwrap().action, Action::Unwarn);
    }

    #[test]
    fn bad_policies_say_what_to_fix() {
        let bad = |v: serde_json::Value| {
            FeeControl::of(&serde_json::json!({"fee_control": v})).unwrap_err()
        };
        assert!(bad(serde_json::json!([])).contains("at least one"));
        assert!(
            bad(serde_json::json!([{"from": "2025-11-15", "credit_limit": "-1"}]))
                .contains("credit_limit")
        );
        assert!(bad(serde_json::json!([{"from": "2025-11-15", "credit_limit": "1", "no_close": [{"from": "12-20", "to": "2026-01-01"}]}])).contains("no_close"));
        assert!(
            bad(serde_json::json!([{"from": "2025-11-15", "credit_limit": "1", "limit": 3}]))
                .contains("unknown field")
        );
        let ok = FeeControl::of(&serde_json::json!({"fee_control": [
            {"from": "2026-01-01", "credit_limit": "0"}, {"from": "2025-11-15", "credit_limit": "200"}]}))
            .unwrap()
            .unwrap();
        assert_eq!(ok.on(d("2025-12-01")).unwrap().credit_limit, dec("200"));
        assert_eq!(ok.on(d("2026-01-01")).unwrap().credit_limit, dec("0"));
        assert!(ok.on(d("2025-11-14")).is_none());
        assert!(
            targets_of(&serde_json::json!({"events": {"targets": ["pigeon"]}}))
                .unwrap_err()
                .contains("mqtt")
        );
    }

    #[test]
    fn webhook_endpoints() {
        let with = |v: serde_json::Value| serde_json::json!({"events": v});
        let err = |v: serde_json::Value| targets_of(&with(v)).unwrap_err();
        assert!(err(serde_json::json!({"targets": ["webhook"]})).contains("webhook.url"));
        assert!(
            err(serde_json::json!({"webhook": {"url": "https://x.example/h"}})).contains("http://")
        );
        assert!(
            err(serde_json::json!({"webhook": {"url": "http://u:p@x.example/h"}}))
                .contains("credentials")
        );
        assert!(err(serde_json::json!({"webhook": {"url": "ftp://x/"}})).contains("http://"));
        assert!(err(serde_json::json!({"webhook": {"uri": "http://x/"}})).contains("unknown"));
        assert_eq!(
            targets_of(&with(
                serde_json::json!({"targets": ["webhook", "mqtt", "webhook"],
                "webhook": {"url": "http://127.0.0.1:9000/heat"}})
            ))
            .unwrap(),
            vec!["mqtt".to_string(), "webhook".to_string()]
        );
    }
}
