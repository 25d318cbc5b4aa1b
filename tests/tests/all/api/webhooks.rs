//! Signed webhooks through the real server, the real publisher and a receiver of the test's own
//! (axum on a loopback port, checking signatures as a company's receiver would): a receiver
//! down for a while gets every event once it is up, in order per customer; a receiver that
//! keeps failing leaves the delivery dead, and a replay delivers it; replays are deduped by key;
//! a tampered body, another secret, an old timestamp and no signature are refused by the
//! receiver; a rotated secret signs beside the previous one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use heatbill_runtime::settings::EventSettings;
use heatbill_runtime::webhook;

use super::events::{events_of, start_publisher};
use super::*;

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// Accepted deliveries in arrival order: key, seq, the signature header.
    accepted: Vec<(String, i64, String)>,
    /// The raw body and header of the last accepted delivery.
    last: Option<(Vec<u8>, String)>,
    keys: BTreeSet<String>,
    duplicates: usize,
    refused: Vec<String>,
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    secret: Arc<Mutex<String>>,
    /// Deliveries of this customer are answered 500.
    broken_for: Arc<Mutex<Option<String>>>,
}

/// The company's receiver: refuses what is not signed with its secret within 5 minutes,
/// dedupes by key.
async fn receive(
    axum::extract::State(r): axum::extract::State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (AxumStatus, String) {
    let header = headers
        .get(webhook::SIGNATURE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let secret = r.secret.lock().unwrap().clone();
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = webhook::verify(&header, &secret, &body, now, webhook::TOLERANCE_S) {
        r.seen.lock().unwrap().refused.push(e.clone());
        return (AxumStatus::UNAUTHORIZED, e);
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = v["key"].as_str().unwrap_or("").to_string();
    let customer = key.split(':').nth(1).unwrap_or("").to_string();
    if r.broken_for.lock().unwrap().as_deref() == Some(customer.as_str()) {
        return (
            AxumStatus::INTERNAL_SERVER_ERROR,
            format!("the ERP is down for {customer}"),
        );
    }
    let mut seen = r.seen.lock().unwrap();
    if seen.keys.insert(key.clone()) {
        seen.accepted
            .push((key, v["seq"].as_i64().unwrap_or(-1), header.clone()));
    } else {
        seen.duplicates += 1;
    }
    seen.last = Some((body.to_vec(), header));
    (AxumStatus::OK, String::new())
}

struct Receiver {
    port: u16,
    shared: Shared,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver whose port is chosen but not listening yet (it is down).
    fn down() -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Receiver {
            port,
            shared: Shared::default(),
            task: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/heat/events", self.port)
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the receiver's port is free again");
        let app = axum::Router::new()
            .route("/heat/events", axum::routing::post(receive))
            .with_state(self.shared.clone());
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.shared.seen.lock().unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Waits (at most `secs`) until `what` holds of the company's events; the events then.
async fn wait_events(
    s: &Server,
    c: &Company,
    secs: u64,
    says: &str,
    mut what: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let events = events_of(s, c, "kind=invoice_requested").await;
        if what(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "not within {secs} s: {says}; the events: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn delivery(e: &Value) -> &Value {
    let d = e["deliveries"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{e:#}");
    assert_eq!(d[0]["target"], "webhook");
    &d[0]
}

async fn pay(s: &Server, c: &Company, customer: &str, n: usize) -> i64 {
    let (st, v) = s
        .post(
            &format!("/v1/companies/{}/payments", c.slug),
            &c.staff,
            json!({"customer_id": customer, "amount": "10.00", "channel": "wechat",
                   "channel_txn": format!("wx-{customer}-{n}"), "paid_on": "2025-12-02"}),
        )
        .await;
    ok(st, &v, 201);
    v["entry"]["id"].as_i64().unwrap()
}

async fn webhooks_signed_retried_dead_and_replayed(db: TestDb) {
    let mut receiver = Receiver::down();
    let settings = EventSettings {
        poll_ms: 50,
        webhook_timeout_ms: 2_000,
        webhook_retry_ms: vec![300, 600, 1_200, 2_400],
        publisher: false,
        ..Default::default()
    };
    let s = Server::start(&db, |st| {
        st.api.require_cases = false;
        st.events = settings.clone();
    })
    .await;
    let _publisher = start_publisher(&db, settings.clone());
    let c = company(&s, "hook").await;
    let slug = &c.slug;
    let update = |events: Value| {
        json!({"name": "Harbin Heat", "time_zone": "Asia/Harbin",
               "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}],
               "policies": {"events": events, "invoicing": {
                   "seller": {"name": "哈尔滨热力有限公司", "tax_id": "91230100MA1B2C3D4E"},
                   "items": [{"class": "*", "charge": "heat", "name": "*供热*采暖费",
                              "tax_code": "1100301030000000000", "rate": "0",
                              "preference": "免税"},
                             {"class": "*", "charge": "late-fee", "name": "*供热*滞纳金",
                              "tax_code": "1100301030000000000", "rate": "0",
                              "preference": "不征税"}]}}})
    };
    let path = format!("/v1/companies/{slug}");
    // An endpoint the platform cannot use is refused with what to fix, and changes nothing.
    for (events, says) in [
        (
            json!({"targets": ["webhook"]}),
            "policies.events.webhook.url",
        ),
        (
            json!({"targets": ["webhook"], "webhook": {"url": "https://erp.example/h"}}),
            "http://",
        ),
        (
            json!({"targets": ["webhook"], "webhook": {"url": "http://a:b@erp.example/h"}}),
            "no credentials",
        ),
    ] {
        let (st, v) = s
            .call(
                reqwest::Method::PUT,
                &path,
                Some(OPERATOR),
                Some(update(events)),
            )
            .await;
        error(st, &v, 422, says);
    }
    // A company's own integrator cannot change the endpoint: only the operator updates policies.
    let good = update(json!({"targets": ["webhook"], "webhook": {"url": receiver.url()}}));
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&c.integrator),
            Some(good.clone()),
        )
        .await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s
        .call(reqwest::Method::PUT, &path, Some(OPERATOR), Some(good))
        .await;
    ok(st, &v, 200);
    // The secret: for the integrator who writes the receiver, not for every reader.
    let hook_path = format!("/v1/companies/{slug}/webhook");
    let (st, v) = s.get(&hook_path, &c.reader).await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s.get(&hook_path, &c.integrator).await;
    ok(st, &v, 200);
    assert_eq!(
        (v["url"].as_str(), v["enabled"].as_bool()),
        (Some(receiver.url().as_str()), Some(true))
    );
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() == 70, "{v:#}");
    assert!(v["previous_signs_until"].is_null(), "{v:#}");
    let (_, again) = s.get(&hook_path, &c.integrator).await;
    assert_eq!(again["secret"], secret.as_str(), "the secret is kept");
    *receiver.shared.secret.lock().unwrap() = secret.clone();

    let (st, v) = import(
        &s,
        &c,
        "customers",
        "customer_id,class,building_area,usable_area\n\
         W1,residential,75,60.00\nW2,residential,75,60.00\nW3,residential,75,60.00\n",
    )
    .await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-12-01").await;

    // The receiver is down: W1 pays three times, W2 twice. The deliveries fail and are retried.
    for n in 0..3 {
        pay(&s, &c, "W1", n).await;
    }
    for n in 0..2 {
        pay(&s, &c, "W2", n).await;
    }
    let events = wait_events(&s, &c, 20, "a delivery retried twice", |ev| {
        ev.len() == 5
            && ev
                .iter()
                .any(|e| delivery(e)["attempts"].as_i64() >= Some(2))
    })
    .await;
    for e in &events {
        let d = delivery(e);
        assert_ne!(d["state"], "delivered", "{e:#}");
        if d["attempts"].as_i64() > Some(0) {
            let err = d["last_error"].as_str().unwrap();
            assert!(err.contains("onnect"), "{err}");
        }
    }
    receiver.up().await;
    let events = wait_events(&s, &c, 20, "every delivery delivered", |ev| {
        ev.iter().all(|e| delivery(e)["state"] == "delivered")
    })
    .await;
    let keys: BTreeSet<String> = events
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(receiver.seen(|s| s.keys.clone()), keys);
    // In order per customer: each customer's seqs arrive increasing.
    let mut by_customer: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (key, seq, _) in receiver.seen(|s| s.accepted.clone()) {
        let customer = key.split(':').nth(1).unwrap().to_string();
        by_customer.entry(customer).or_default().push(seq);
    }
    assert_eq!(by_customer.len(), 2);
    for (customer, seqs) in &by_customer {
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, &sorted, "{customer}'s events out of order");
    }

    // The receiver keeps failing W3's events: retried on the schedule, then dead; W3's second
    // event is not sent while the first waits for a retry.
    *receiver.shared.broken_for.lock().unwrap() = Some("W3".into());
    pay(&s, &c, "W3", 0).await;
    pay(&s, &c, "W3", 1).await;
    let w3 = |ev: &[Value]| -> Vec<Value> {
        ev.iter()
            .filter(|e| e["customer_id"] == "W3")
            .cloned()
            .collect()
    };
    let events = wait_events(&s, &c, 30, "W3's events dead", |ev| {
        let w = w3(ev);
        if w.len() == 2 && delivery(&w[0])["state"] == "failed" {
            assert_eq!(
                delivery(&w[1])["attempts"],
                0,
                "a later event went out while an earlier one waited: {w:#?}"
            );
        }
        w.len() == 2 && w.iter().all(|e| delivery(e)["state"] == "dead")
    })
    .await;
    let dead = w3(&events);
    assert_eq!(delivery(&dead[0])["attempts"], 5, "{:#}", dead[0]);
    let err = delivery(&dead[0])["last_error"].as_str().unwrap();
    assert!(
        err.contains("500") && err.contains("the ERP is down for W3"),
        "{err}"
    );
    // The operator sees the dead ones, mends the receiver and replays them.
    let dead_listed = events_of(&s, &c, "state=dead").await;
    assert_eq!(dead_listed.len(), 2, "{dead_listed:#?}");
    *receiver.shared.broken_for.lock().unwrap() = None;
    for e in &dead {
        let (st, v) = s
            .post(
                &format!("/v1/companies/{slug}/events/{}/replay", e["id"]),
                &c.staff,
                json!({}),
            )
            .await;
        ok(st, &v, 200);
        assert_eq!(v["replayed"], 1, "{v:#}");
    }
    wait_events(&s, &c, 20, "the replayed events delivered", |ev| {
        ev.iter().all(|e| delivery(e)["state"] == "delivered")
    })
    .await;
    assert_eq!(receiver.seen(|s| s.keys.len()), 7);
    // A delivered event sent again (all=true) reaches the receiver under the same key: deduped.
    let first = &events[0];
    let (st, v) = s
        .post(
            &format!(
                "/v1/companies/{slug}/events/{}/replay?all=true",
                first["id"]
            ),
            &c.staff,
            json!({}),
        )
        .await;
    ok(st, &v, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.seen(|s| s.duplicates) == 0 {
        assert!(Instant::now() < deadline, "the replay did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.seen(|s| s.keys.len()), 7);

    // What the receiver refuses: a tampered body, another secret, an old timestamp, no
    // signature. Nothing of it is accepted.
    let (body, header) = receiver.seen(|s| s.last.clone()).unwrap();
    let http = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"10.00\"", "\"0.01\"")
        .into_bytes();
    assert_ne!(tampered, body, "the body names its amount");
    let attempts = [
        (tampered, Some(header.clone())),
        (
            body.clone(),
            Some(webhook::signature(&["whsec_other"], now, &body)),
        ),
        (
            body.clone(),
            Some(webhook::signature(&[secret.as_str()], now - 3_600, &body)),
        ),
        (body.clone(), None),
    ];
    let accepted_before = receiver.seen(|s| s.accepted.len());
    for (b, h) in attempts {
        let mut req = http.post(receiver.url()).body(b);
        if let Some(h) = h {
            req = req.header(webhook::SIGNATURE, h);
        }
        let st = req.send().await.unwrap().status();
        assert_eq!(st.as_u16(), 401);
    }
    let refused = receiver.seen(|s| s.refused.clone());
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert!(refused[2].contains("from now"), "{refused:#?}");
    assert_eq!(receiver.seen(|s| s.accepted.len()), accepted_before);

    // A rotation: the new secret signs, and the previous one beside it for a day.
    let (st, v) = s
        .post(&format!("{hook_path}/rotate"), &c.integrator, json!({}))
        .await;
    ok(st, &v, 200);
    let rotated = v["secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, secret);
    assert!(v["previous_signs_until"].is_string(), "{v:#}");
    *receiver.shared.secret.lock().unwrap() = rotated.clone();
    pay(&s, &c, "W1", 9).await;
    wait_events(
        &s,
        &c,
        20,
        "the payment after the rotation delivered",
        |ev| ev.len() == 8 && ev.iter().all(|e| delivery(e)["state"] == "delivered"),
    )
    .await;
    let (body, header) = receiver.seen(|s| s.last.clone()).unwrap();
    assert_eq!(header.matches("v1=").count(), 2, "{header}");
    let now = chrono::Utc::now().timestamp();
    assert!(webhook::verify(&header, &secret, &body, now, 300).is_ok());
    assert!(webhook::verify(&header, &rotated, &body, now, 300).is_ok());

    let (st, v) = s.get("/metrics", OPERATOR).await;
    ok(st, &v, 200);
    let text = v.as_str().unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("heatbill_events_delivered_total{target=\"webhook\"}"))
        .unwrap_or_else(|| panic!("no webhook delivery counter: {text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 8.0, "{line}");
    s.stop().await;
}
both!(webhooks_signed_retried_dead_and_replayed);
