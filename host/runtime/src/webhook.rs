//! Signed webhooks: the outbox's events POSTed to a company's endpoint, each signed with the
//! company's secret, retried on a schedule, and `dead` (for an operator to replay) when the
//! schedule runs out.
//!
//! The signature is the one webhook receivers already know how to check: the header
//! `heatbill-signature: t=UNIX_SECONDS,v1=HEX` where `HEX` is HMAC-SHA256 with the company's
//! secret over `UNIX_SECONDS.BODY`. The timestamp is inside the signed text, so a receiver that
//! refuses timestamps older than a few minutes refuses a captured request replayed later. After
//! a rotation the header carries one `v1=` per secret still signing (the previous secret is
//! kept for a day), so a receiver switches secrets without refusing a delivery.
//!
//! Deliveries go out as the publisher's ([`crate::publish`]) other target does: at least once,
//! marked delivered only on a 2xx answer, one customer's events one after another and in order
//! (a customer's later event waits while an earlier one waits for a retry), different customers
//! concurrently. A receiver dedupes by the body's `key`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::events::{WebhookEndpoint, message, now_ms};
use crate::services::Services;
use crate::settings::EventSettings;
use crate::store::events::Due;

/// Events this process delivered to webhooks (`/metrics`).
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);

/// The signature's header.
pub const SIGNATURE: &str = "heatbill-signature";

/// How long after its timestamp a receiver should accept a delivery, in seconds (what
/// [`verify`] is given in the documentation's examples).
pub const TOLERANCE_S: i64 = 300;

/// How long one round may take before the deliveries not answered yet are left for the next
/// (the publisher's lock must be renewed meanwhile).
const ROUND: Duration = Duration::from_secs(10);

/// A new signing secret: `whsec_` and 64 hex digits from the operating system's generator.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("the random generator: {e}"))?;
    Ok(format!("whsec_{}", hex::encode(bytes)))
}

/// HMAC-SHA256 with `secret` over `T.BODY`, in hex.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = mac(secret, t);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

fn mac(secret: &str, t: i64) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m
}

/// The signature header's value: `t=T` and one `v1=` per secret.
pub fn signature(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&sign(s, t, body));
    }
    out
}

/// What a receiver does with a delivery: checks that one `v1=` of `header` is `secret`'s
/// signature of `body` (compared in constant time) and that its timestamp is within
/// `tolerance_s` of `now_s`. The timestamp, or why the delivery must be refused.
pub fn verify(
    header: &str,
    secret: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<i64, String> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.trim().parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.trim()),
            _ => {}
        }
    }
    let t = t.ok_or("the signature has no timestamp (t=)")?;
    if (now_s - t).abs() > tolerance_s {
        return Err(format!(
            "the signature's timestamp is {} s from now (at most {tolerance_s} s)",
            now_s - t
        ));
    }
    let matches = sigs.iter().any(|s| {
        hex::decode(s).is_ok_and(|raw| {
            let mut m = mac(secret, t);
            m.update(body);
            m.verify_slice(&raw).is_ok()
        })
    });
    if matches {
        Ok(t)
    } else {
        Err("no signature of the header matches the body".into())
    }
}

/// When a failed delivery is tried again (epoch milliseconds), or `None` when it was the last
/// attempt the schedule allows (the delivery is dead).
pub fn retry_at(schedule: &[u64], attempts_before: i32, now_ms: i64) -> Option<i64> {
    let wait = schedule.get(usize::try_from(attempts_before).unwrap_or(0))?;
    Some(now_ms.saturating_add(i64::try_from(*wait).unwrap_or(i64::MAX)))
}

/// The HTTP client the publisher keeps: no redirects (a receiver answers, it does not send the
/// platform elsewhere), the settings' timeout per delivery.
pub fn client(settings: &EventSettings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(
            settings.webhook_timeout_ms.clamp(100, 120_000),
        ))
        .pool_max_idle_per_host(settings.webhook_concurrency.clamp(1, 256))
        .user_agent(concat!("heatbill-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("the webhook client: {e}"))
}

/// An error with its causes (reqwest's own text is only "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// One delivery: the event POSTed, signed. `Ok` on a 2xx answer; the error says what the
/// receiver answered (its status and the start of its body) or why it could not be reached.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    secrets: &[&str],
    d: &Due,
) -> Result<(), String> {
    let body = message(&d.body, d.event_id);
    let t = now_ms() / 1000;
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header(SIGNATURE, signature(secrets, t, &body))
        .header("heatbill-event-id", d.event_id.to_string())
        .header("heatbill-event-kind", &d.kind)
        .header("heatbill-company", &d.company)
        .body(body)
        .send()
        .await
        .map_err(|e| chain(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    // The start of the answer is the receiver's reason; never more than that is read.
    let mut resp = resp;
    let start = match tokio::time::timeout(Duration::from_secs(1), resp.chunk()).await {
        Ok(Ok(Some(b))) => String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned(),
        _ => String::new(),
    };
    Err(format!(
        "HTTP {status}{}{}",
        if start.is_empty() { "" } else { ": " },
        heatbill_engine::text::terminal_safe(start.trim(), 200)
    ))
}

/// A customer's due events, delivered one after another until one fails: the ids delivered,
/// and the first that failed with its error (the rest wait: a later event never overtakes).
/// Owns what it uses, so that rounds can run it concurrently on the runtime.
async fn deliver_in_order(
    http: reqwest::Client,
    hook: Result<(String, Vec<String>), String>,
    items: Vec<Due>,
) -> (Vec<i64>, Option<(Due, String)>) {
    let (url, secrets) = match hook {
        Ok(h) => h,
        Err(e) => return (Vec::new(), items.into_iter().next().map(|d| (d, e))),
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut done = Vec::new();
    for d in items {
        match post(&http, &url, &secrets, &d).await {
            Ok(()) => done.push(d.event_id),
            Err(e) => return (done, Some((d, e))),
        }
    }
    (done, None)
}

/// One round for webhooks: the due deliveries POSTed, marked delivered, failed (tried again
/// on the schedule) or dead. How many were delivered.
pub async fn round(
    services: &Services,
    settings: &EventSettings,
    http: &reqwest::Client,
) -> Result<usize, String> {
    let store = &services.store;
    let due = store
        .due_deliveries("webhook", now_ms(), settings.batch.max(1))
        .await
        .map_err(|e| e.to_string())?;
    if due.is_empty() {
        return Ok(0);
    }
    // The endpoint and the signing secrets of each company in the round.
    let companies = store.companies().await.map_err(|e| e.to_string())?;
    let mut hooks: HashMap<i32, Result<(String, Vec<String>), String>> = HashMap::new();
    for d in &due {
        if hooks.contains_key(&d.company_id) {
            continue;
        }
        let hook = match companies.iter().find(|c| c.id == d.company_id) {
            None => Err("the company is gone".to_string()),
            Some(c) => match WebhookEndpoint::of(&c.policies) {
                Ok(Some(e)) => {
                    let s = store
                        .webhook_secret(c.id, &new_secret()?, now_ms(), None)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok((
                        e.url,
                        s.signing(now_ms()).into_iter().map(String::from).collect(),
                    ))
                }
                Ok(None) => Err("the company has no webhook endpoint: set \
                                 policies.events.webhook.url, then replay the event"
                    .to_string()),
                Err(e) => Err(e),
            },
        };
        hooks.insert(d.company_id, hook);
    }
    // One group per customer, in event order; a group without a customer is the event alone.
    let mut groups: Vec<Vec<Due>> = Vec::new();
    let mut index: HashMap<(i32, String), usize> = HashMap::new();
    for d in due {
        match d.customer_id.clone() {
            Some(c) => {
                let i = *index.entry((d.company_id, c)).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[i].push(d);
            }
            None => groups.push(vec![d]),
        }
    }
    let mut delivered: Vec<i64> = Vec::new();
    let mut failed: Vec<(Due, String)> = Vec::new();
    let mut work = futures::stream::iter(groups.into_iter().map(|g| {
        let hook = hooks[&g[0].company_id].clone();
        deliver_in_order(http.clone(), hook, g)
    }))
    .buffer_unordered(settings.webhook_concurrency.clamp(1, 256));
    let deadline = tokio::time::Instant::now() + ROUND;
    // What is still in flight at the deadline is left pending, as if not tried: the next round
    // sends it again under the same key.
    while let Ok(Some((done, fail))) = tokio::time::timeout_at(deadline, work.next()).await {
        delivered.extend(done);
        failed.extend(fail);
    }
    drop(work);
    store
        .mark_delivered("webhook", &delivered)
        .await
        .map_err(|e| e.to_string())?;
    DELIVERED.fetch_add(delivered.len() as u64, Ordering::Relaxed);
    for (d, error) in &failed {
        let now = now_ms();
        let next = retry_at(&settings.webhook_retry_ms, d.attempts, now);
        store
            .mark_failed(
                "webhook",
                d.event_id,
                error,
                next.unwrap_or(now),
                next.is_none(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    if let Some((_, e)) = failed.first() {
        tracing::warn!(
            failed = failed.len(),
            error = %heatbill_engine::text::terminal_safe(e, 300),
            "events: webhook deliveries failed; retrying on the schedule"
        );
    }
    Ok(delivered.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse() {
        let body = br#"{"key":"valve_close_requested:F1:2025-12-21","seq":7}"#;
        let h = signature(&["whsec_a", "whsec_old"], 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.matches("v1=").count(), 2);
        // Either secret verifies; so does a receiver a little behind or ahead.
        assert_eq!(
            verify(&h, "whsec_a", body, 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
        assert!(verify(&h, "whsec_old", body, 1_699_999_900, 300).is_ok());
        // Another secret, another body, an old timestamp, a mangled header: refused.
        assert!(verify(&h, "whsec_b", body, 1_700_000_000, 300).is_err());
        assert!(verify(&h, "whsec_a", b"{}", 1_700_000_000, 300).is_err());
        assert!(
            verify(&h, "whsec_a", body, 1_700_000_301, 300)
                .unwrap_err()
                .contains("301 s")
        );
        assert!(verify("v1=00", "whsec_a", body, 0, 300).is_err());
        // The reference value (Python's `hmac.new(b"whsec_test", b"1.{}", hashlib.sha256)`).
        assert_eq!(
            sign("whsec_test", 1, b"{}"),
            "7500d5d4be4b3ef07af1fe56f7d522d135cdaa7530de557e67cc1049c52de094"
        );
        let s = new_secret().unwrap();
        assert!(s.starts_with("whsec_") && s.len() == 6 + 64, "{s}");
    }

    #[test]
    fn the_retry_schedule_ends_in_dead() {
        let s = [5_000, 300_000];
        assert_eq!(retry_at(&s, 0, 1_000), Some(6_000));
        assert_eq!(retry_at(&s, 1, 1_000), Some(301_000));
        assert_eq!(retry_at(&s, 2, 1_000), None);
    }
}
