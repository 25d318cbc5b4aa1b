//! The publisher: delivers the outbox's due events to MQTT (QoS 1), takes valve reports back
//! from MQTT, and escalates close requests that were not acknowledged in time.
//!
//! One host at a time publishes (the holder of the `events-publisher` lock, renewed every
//! round), so the MQTT client id is the deployment's, not the host's. A round takes up to
//! `events.batch` due deliveries, oldest first (and none of a customer while an older event of
//! theirs waits for a retry: per customer, events arrive in order), publishes them on one
//! connection and marks delivered exactly those the broker acknowledged (PUBACK). A host that
//! dies mid-round leaves the rest pending: the next holder publishes them again under the same
//! keys, and a consumer dedupes by key (at least once, never under two keys).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::coord::Lock;
use crate::services::Services;
use crate::settings::EventSettings;
use crate::store::events::Due;

use crate::events::{FeeControl, ValvePosition, message, now_ms};

/// Close requests escalated by this process (`/metrics`).
pub static ESCALATED: AtomicU64 = AtomicU64::new(0);
/// Events this process delivered (`/metrics`).
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);
/// Valve reports this process took from MQTT (`/metrics`).
pub static REPORTS: AtomicU64 = AtomicU64::new(0);

/// When a failed delivery is tried again: 1 s, 2 s, 4 s … at most 5 minutes.
pub fn backoff_ms(attempts: i32) -> i64 {
    1000i64
        .saturating_mul(1i64 << attempts.clamp(0, 9))
        .min(300_000)
}

/// An MQTT broker's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Broker {
    /// `mqtt://HOST:PORT` (port 1883 when left out).
    pub fn parse(url: &str) -> Result<Broker, String> {
        let rest = url.strip_prefix("mqtt://").ok_or_else(|| {
            format!("events.mqtt_url {url:?}: give mqtt://HOST:PORT (TLS is not supported yet)")
        })?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("events.mqtt_url {url:?}: the port is not a number"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(format!("events.mqtt_url {url:?}: give a host"));
        }
        Ok(Broker {
            host: host.to_string(),
            port,
        })
    }
}

/// The MQTT topic of an event.
pub fn topic(prefix: &str, company: &str, kind: &str) -> String {
    format!("{prefix}/{company}/{kind}")
}

/// Publishes `items` on one connection, QoS 1; the event ids the broker acknowledged, and the
/// error that ended the round early, if any.
pub async fn publish_mqtt(
    broker: &Broker,
    client_id: &str,
    prefix: &str,
    items: &[Due],
) -> (Vec<i64>, Option<String>) {
    let mut acked = Vec::new();
    if items.is_empty() {
        return (acked, None);
    }
    let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_clean_session(true);
    opts.set_inflight(items.len().clamp(1, 1000) as u16);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(opts, items.len() + 8);
    let deadline = Instant::now() + Duration::from_secs(15);
    // The k-th publish the event loop sends is the k-th queued: its packet id maps to it.
    for d in items {
        if let Err(e) = client.try_publish(
            topic(prefix, &d.company, &d.kind),
            QoS::AtLeastOnce,
            false,
            message(&d.body, d.event_id),
        ) {
            return (acked, Some(format!("queueing a publish: {e}")));
        }
    }
    let mut sent = 0usize;
    let mut by_pkid: HashMap<u16, i64> = HashMap::new();
    let error = loop {
        if acked.len() == items.len() {
            break None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Some(format!(
                "the broker acknowledged {} of {} events in 15 s",
                acked.len(),
                items.len()
            ));
        }
        match tokio::time::timeout(left, el.poll()).await {
            Err(_) => continue,
            Ok(Err(e)) => break Some(format!("MQTT {}:{}: {e}", broker.host, broker.port)),
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                if let Some(d) = items.get(sent) {
                    by_pkid.insert(pkid, d.event_id);
                }
                sent += 1;
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                if let Some(id) = by_pkid.remove(&a.pkid) {
                    acked.push(id);
                }
            }
            Ok(Ok(_)) => {}
        }
    };
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
    (acked, error)
}

/// One round for MQTT: the due deliveries published, marked delivered or failed. How many were
/// delivered.
pub async fn round_mqtt(services: &Services, settings: &EventSettings) -> Result<usize, String> {
    let store = &services.store;
    let due = store
        .due_deliveries("mqtt", now_ms(), settings.batch.max(1))
        .await
        .map_err(|e| e.to_string())?;
    if due.is_empty() {
        return Ok(0);
    }
    let Some(url) = settings.mqtt_url.as_deref() else {
        return Ok(0);
    };
    let broker = Broker::parse(url)?;
    let (acked, error) = publish_mqtt(
        &broker,
        &format!("{}-pub", settings.client_id),
        &settings.topic_prefix,
        &due,
    )
    .await;
    if settings.fault_stop_after_publish && !acked.is_empty() {
        crate::fault::stop_this_process_once(&format!(
            "after the broker acknowledged {} event(s), before marking them delivered",
            acked.len()
        ));
    }
    store
        .mark_delivered("mqtt", &acked)
        .await
        .map_err(|e| e.to_string())?;
    DELIVERED.fetch_add(acked.len() as u64, Ordering::Relaxed);
    if let Some(err) = error {
        let done: std::collections::HashSet<i64> = acked.iter().copied().collect();
        for d in due.iter().filter(|d| !done.contains(&d.event_id)) {
            store
                .mark_failed(
                    "mqtt",
                    d.event_id,
                    &err,
                    now_ms() + backoff_ms(d.attempts),
                    false,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        tracing::warn!(error = %heatbill_engine::text::terminal_safe(&err, 300), "events: publishing failed; retrying with backoff");
    }
    Ok(acked.len())
}

/// Escalates the close requests that waited longer than their company's `ack_hours`. How many.
pub async fn escalate_due(services: &Services) -> Result<u64, String> {
    let store = &services.store;
    let waiting = store.unacknowledged().await.map_err(|e| e.to_string())?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let policies: HashMap<i32, FeeControl> = store
        .companies()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|c| Some((c.id, FeeControl::of(&c.policies).ok().flatten()?)))
        .collect();
    let mut n = 0;
    for u in waiting {
        let hours = policies
            .get(&u.company_id)
            .and_then(|p| p.rules.last())
            .map_or(24, |r| r.ack_hours);
        if u.age_s >= i64::from(hours) * 3600
            && store.escalate(&u, hours).await.map_err(|e| e.to_string())?
        {
            n += 1;
            ESCALATED.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(n)
}

/// A valve report as an adapter publishes it on `PREFIX/COMPANY/valve_state`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The customer.
    pub customer_id: String,
    /// `open`, `closed` or `fault`.
    pub state: String,
    /// The adapter's id for this report (a report sent twice is recorded once).
    pub report_id: String,
    /// Free text (the concentrator's code, say).
    #[serde(default)]
    pub detail: Option<String>,
}

/// Records one report from MQTT; an error says what was wrong with it.
pub async fn take_report(services: &Services, topic: &str, payload: &[u8]) -> Result<bool, String> {
    let mut levels = topic.split('/');
    let company = levels.nth(1).ok_or("the topic has no company level")?;
    let c = services.store.company(company).await.map_err(|e| {
        format!(
            "company {}: {e}",
            heatbill_engine::text::terminal_safe(company, 100)
        )
    })?;
    if payload.len() > 64 * 1024 {
        return Err("a report is at most 64 KiB".into());
    }
    let r: Report = serde_json::from_slice(payload).map_err(|e| format!("the report: {e}"))?;
    let position = ValvePosition::parse(&r.state).ok_or_else(|| {
        format!(
            "state {:?}: give open, closed or fault",
            heatbill_engine::text::terminal_safe(&r.state, 40)
        )
    })?;
    for (what, v) in [("report_id", &r.report_id), ("customer_id", &r.customer_id)] {
        if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
            return Err(format!("{what}: give 1 to 200 printable characters"));
        }
    }
    if r.detail.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err("detail: give at most 500 characters".into());
    }
    let (_, new) = services
        .store
        .report_valve(
            c.id,
            &r.customer_id,
            position,
            &r.report_id,
            r.detail.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    REPORTS.fetch_add(1, Ordering::Relaxed);
    Ok(new)
}

/// Takes valve reports from MQTT until `stop`: a persistent session (the broker keeps the
/// reports sent while this host was away), each report acknowledged after it is recorded.
async fn subscriber(services: Services, settings: EventSettings, broker: Broker) {
    let mut opts = MqttOptions::new(
        format!("{}-sub", settings.client_id),
        broker.host.clone(),
        broker.port,
    );
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_clean_session(false);
    opts.set_manual_acks(true);
    let (client, mut el) = AsyncClient::new(opts, 64);
    let filter = format!("{}/+/valve_state", settings.topic_prefix);
    let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                match take_report(&services, &p.topic, &p.payload).await {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        topic = %heatbill_engine::text::terminal_safe(&p.topic, 200),
                        error = %heatbill_engine::text::terminal_safe(&e, 300),
                        "events: a valve report was refused"
                    ),
                }
                let _ = client.ack(&p).await;
            }
            Ok(Event::Incoming(Packet::ConnAck(c))) if !c.session_present => {
                let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "events: the report subscription reconnects");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The publisher's loop (`heatbill serve`): while this host holds the publisher's lock, rounds
/// of MQTT and webhook delivery every `poll_ms` (at once while there is more), the report
/// subscription, and the escalation check every 10 s.
///
/// The lock lives 30 s and is renewed when a round starts 5 s after the last renewal: an MQTT
/// round ends within 15 s and a webhook round within 10 s, so a live publisher never loses it,
/// and a dead one's is taken over within 30 s.
pub async fn run(
    services: Services,
    settings: EventSettings,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let ttl = Duration::from_secs(30);
    let http = match crate::webhook::client(&settings) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "events: not delivering webhooks");
            None
        }
    };
    let poll = Duration::from_millis(settings.poll_ms.clamp(10, 60_000));
    let broker = settings.mqtt_url.as_deref().map(Broker::parse);
    if let Some(Err(e)) = &broker {
        tracing::error!(error = %e, "events: not publishing to MQTT");
    }
    let broker = broker.and_then(Result::ok);
    let mut lock: Option<(Lock, Instant)> = None;
    let mut sub: Option<tokio::task::JoinHandle<()>> = None;
    let mut escalated_at = Instant::now() - Duration::from_secs(60);
    loop {
        // Hold the lock, renewing it well before it lapses.
        let held = match lock.take() {
            Some((l, at)) if at.elapsed() < Duration::from_secs(5) => Some((l, at)),
            Some((l, _)) => {
                if l.extend(ttl).await {
                    Some((l, Instant::now()))
                } else {
                    None
                }
            }
            None => Lock::acquire(&services.coord, "events-publisher", ttl, Duration::ZERO)
                .await
                .map(|l| (l, Instant::now())),
        };
        lock = held;
        let mut more = false;
        if lock.is_some() {
            if sub.is_none()
                && let Some(b) = &broker
            {
                sub = Some(tokio::spawn(subscriber(
                    services.clone(),
                    settings.clone(),
                    b.clone(),
                )));
            }
            match round_mqtt(&services, &settings).await {
                Ok(n) => more = n >= settings.batch.max(1),
                Err(e) => {
                    tracing::warn!(error = %heatbill_engine::text::terminal_safe(&e, 300), "events: a round failed")
                }
            }
            if let Some(http) = &http {
                match crate::webhook::round(&services, &settings, http).await {
                    Ok(n) => more |= n >= settings.batch.max(1),
                    Err(e) => {
                        tracing::warn!(error = %heatbill_engine::text::terminal_safe(&e, 300), "events: a webhook round failed")
                    }
                }
            }
            if escalated_at.elapsed() >= Duration::from_secs(10) {
                escalated_at = Instant::now();
                if let Err(e) = escalate_due(&services).await {
                    tracing::warn!(error = %heatbill_engine::text::terminal_safe(&e, 300), "events: escalation failed");
                }
            }
        } else if let Some(s) = sub.take() {
            s.abort();
        }
        let pause = if more { Duration::ZERO } else { poll };
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if let Some(s) = sub.take() {
        s.abort();
    }
    if let Some((l, _)) = lock.take() {
        l.release().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_and_backoff() {
        assert_eq!(
            Broker::parse("mqtt://127.0.0.1:1883").unwrap(),
            Broker {
                host: "127.0.0.1".into(),
                port: 1883
            }
        );
        assert_eq!(Broker::parse("mqtt://broker").unwrap().port, 1883);
        assert!(Broker::parse("mqtts://x").unwrap_err().contains("mqtt://"));
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(40), 300_000);
        let d = Due {
            event_id: 7,
            company_id: 1,
            customer_id: None,
            company: "c".into(),
            kind: "k".into(),
            body: r#"{"key":"a"}"#.into(),
            attempts: 0,
        };
        assert_eq!(
            message(&d.body, d.event_id),
            br#"{"key":"a","seq":7}"#.to_vec()
        );
    }
}
