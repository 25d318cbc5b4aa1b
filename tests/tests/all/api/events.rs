//! Events out and fee control (费控) through the real server, a real MQTT broker (a Mosquitto
//! of the test's own on a loopback port, so that it can be stopped and started) and the test's
//! own MQTT subscriber: a season's nights close the right customers once, on the right day,
//! with the right reason, and never the exempt ones; a payment reopens within seconds; a
//! valve's report acknowledges its request; an unacknowledged close is escalated; every event
//! reaches the subscriber under one key, through a broker restart and (PostgreSQL) a publisher
//! killed between the broker's acknowledgement and its own record of it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use heatbill_runtime::publish;
use heatbill_runtime::settings::EventSettings;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rust_decimal::Decimal;

use super::*;
use crate::support::db::Kind;

/// A Mosquitto of the test's own on a free loopback port, persistent (a graceful restart keeps
/// its sessions' queued messages), stopped when dropped.
struct OwnBroker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnBroker {
    fn start() -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        // Mosquitto started as root runs as its own user: it must be able to write its
        // persistence file here.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut b = OwnBroker {
            port,
            dir,
            child: None,
        };
        b.up();
        b
    }

    fn up(&mut self) {
        // Debian installs it in /usr/sbin, which a user's PATH may not have.
        let bin = if std::path::Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "mosquitto cannot be started ({e}): install it (apt-get install -y \
                     mosquitto); the events tests run a broker of their own on a loopback port"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} in 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A graceful stop (SIGTERM: it saves its sessions), waited for.
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The test's own subscriber: a persistent session on `PREFIX/#`, every message kept.
struct Subscriber {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start(port: u16, prefix: &str) -> Subscriber {
        let mut opts = MqttOptions::new(format!("{prefix}-test-sub"), "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(opts, 64);
        client
            .subscribe(format!("{prefix}/#"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready_tx);
        let task = tokio::spawn({
            let seen = seen.clone();
            let filter = format!("{prefix}/#");
            async move {
                loop {
                    match el.poll().await {
                        // A broker that lost the session (it should not: it is persistent).
                        Ok(Event::Incoming(Packet::ConnAck(c))) if !c.session_present => {
                            let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                            seen.lock().unwrap().push((p.topic.clone(), v));
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("the subscription is acknowledged within 10 s")
            .unwrap();
        Subscriber { seen, task }
    }

    fn messages(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most `secs`) until a message with this key arrived; the message.
    async fn wait_key(&self, key: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some((_, v)) = self.messages().into_iter().find(|(_, v)| v["key"] == key) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no message with key {key} in {secs} s; seen: {:#?}",
                self.messages()
                    .iter()
                    .map(|m| m.1["key"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn events_settings(broker: &OwnBroker, prefix: &str) -> EventSettings {
    EventSettings {
        mqtt_url: Some(broker.url()),
        topic_prefix: prefix.to_string(),
        client_id: format!("{prefix}-heatbill"),
        poll_ms: 50,
        batch: 500,
        publisher: false,
        ..Default::default()
    }
}

/// The publisher as `heatbill serve` runs it, in this process, until the sender is dropped.
pub(super) fn start_publisher(
    db: &TestDb,
    settings: EventSettings,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let services = db.services();
    tokio::spawn(async move {
        publish::run(services, settings, async {
            let _ = rx.await;
        })
        .await
    });
    tx
}

pub(super) async fn events_of(s: &Server, c: &Company, query: &str) -> Vec<Value> {
    let (st, v) = s
        .get(
            &format!("/v1/companies/{}/events?{query}", c.slug),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    v["events"].as_array().unwrap().clone()
}

/// Waits (at most `secs`) until no delivery of the company is pending or failed.
async fn all_delivered(s: &Server, c: &Company, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let waiting: Vec<Value> = events_of(s, c, "")
            .await
            .into_iter()
            .filter(|e| {
                e["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["state"] == "pending" || d["state"] == "failed")
            })
            .collect();
        if waiting.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} event(s) still waiting after {secs} s: {waiting:#?}",
            waiting.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The keys of a kind, by customer, in the outbox.
async fn keys(s: &Server, c: &Company, kind: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events_of(s, c, &format!("kind={kind}")).await {
        out.entry(e["customer_id"].as_str().unwrap().to_string())
            .or_default()
            .push(e["key"].as_str().unwrap().to_string());
    }
    out
}

const FEE_CUSTOMERS: &str = "customer_id,class,status,low_income,building_area,usable_area,tags\n\
    F1,residential,active,false,75,60.00,\n\
    F2,residential,active,false,75,60.00,\n\
    F3,residential,suspended,false,75,60.00,\n\
    F4,residential,active,false,75,60.00,prepaid\n\
    F5,residential,active,false,75,60.00,\n\
    F6,residential,active,false,75,60.00,\n";

/// What each customer owed when the company moved to heatbill.
const FEE_BALANCES: &str = "customer_id,as_of,arrears,arrears_since\n\
    F1,2025-12-20,150.00,2025-12-18\n\
    F2,2025-12-20,150.00,2025-12-01\n\
    F3,2025-12-20,150.00,2025-12-01\n\
    F4,2025-12-20,5.00,2025-12-15\n\
    F6,2025-12-20,150.00,2025-12-20\n";

async fn fee_control_over_mqtt(db: TestDb) {
    let broker = OwnBroker::start();
    let prefix = format!(
        "hbtest{}{}",
        std::process::id(),
        if db.kind == Kind::Postgres {
            "pg"
        } else {
            "lite"
        }
    );
    let sub = Subscriber::start(broker.port, &prefix).await;
    let settings = events_settings(&broker, &prefix);
    let s = Server::start(&db, |st| {
        st.api.require_cases = false;
        st.events = settings.clone();
    })
    .await;
    let mut publisher = Some(start_publisher(&db, settings.clone()));
    let c = company(&s, "fee").await;
    let slug = &c.slug;
    let update = |policies: Value| {
        json!({"name": "Harbin Heat", "time_zone": "Asia/Harbin", "policies": policies,
               "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}]})
    };
    let path = format!("/v1/companies/{slug}");
    // A policy that cannot be applied is refused with what to fix, and changes nothing.
    let bad = update(json!({"fee_control": [{"from": "2025-10-20", "credit_limit": "-5"}]}));
    let (st, v) = s
        .call(reqwest::Method::PUT, &path, Some(OPERATOR), Some(bad))
        .await;
    assert_eq!(st.as_u16(), 422, "{v:#}");
    assert!(v.to_string().contains("credit_limit is -5"), "{v:#}");
    let bad = update(json!({"events": {"targets": ["pigeon"]}}));
    let (st, v) = s
        .call(reqwest::Method::PUT, &path, Some(OPERATOR), Some(bad))
        .await;
    assert_eq!(st.as_u16(), 422, "{v:#}");
    // Credit limit 100 元, warnings over 50, closed after 3 days owed, never on 2025-12-23.
    let good = update(json!({
        "fee_control": [{"from": "2025-10-20", "credit_limit": "100", "warning": "50",
                         "days_in_arrears": 3, "ack_hours": 24,
                         "no_close": [{"from": "2025-12-23", "to": "2025-12-23"}]}],
        "events": {"targets": ["mqtt"]}}));
    let (st, v) = s
        .call(reqwest::Method::PUT, &path, Some(OPERATOR), Some(good))
        .await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "customers", FEE_CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "balances", FEE_BALANCES).await;
    ok(st, &v, 200);
    // F2 is on hold: never closed.
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/valves/F2/flags"),
            Some(&c.staff),
            Some(json!({"hold": true, "note": "hospital patient"})),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(
        (v["hold"].as_bool(), v["requested"].as_str()),
        (Some(true), Some("open"))
    );
    // A reader cannot flag; an unknown customer is 404.
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/valves/F2/flags"),
            Some(&c.reader),
            Some(json!({"hold": false})),
        )
        .await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/valves/NOBODY/flags"),
            Some(&c.staff),
            Some(json!({"hold": true})),
        )
        .await;
    error(st, &v, 404, "no customer");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/valves/F2/flags"),
            Some(&c.staff),
            Some(json!({"note": "a\u{0}b"})),
        )
        .await;
    error(st, &v, 400, "without control characters");

    // Night 12-20: F1 (owed 2 days) and the others over 50 are warned; F4 is prepaid: its 5.00
    // owed for 5 days closes it (a zero limit).
    let night = run_to_end(&s, &c, "2025-12-20").await;
    let fc = &night["report"]["fee_control"];
    assert_eq!(
        (fc["closes"].as_u64(), fc["warnings"].as_u64()),
        (Some(1), Some(4)),
        "{night:#}"
    );
    let closes = keys(&s, &c, "valve_close_requested").await;
    assert_eq!(
        closes,
        BTreeMap::from([(
            "F4".into(),
            vec!["valve_close_requested:F4:2025-12-20".to_string()]
        )])
    );
    let f4 = sub
        .wait_key("valve_close_requested:F4:2025-12-20", 15)
        .await;
    assert_eq!(f4["limit"], "0", "{f4:#}");
    assert!(
        f4["reason"]
            .as_str()
            .unwrap()
            .contains("prepaid balance ran out"),
        "{f4:#}"
    );
    assert_eq!(f4["company"], "fee");
    assert!(f4["seq"].as_i64().is_some(), "{f4:#}");
    let warned: BTreeSet<String> = keys(&s, &c, "balance_warning").await.into_keys().collect();
    assert_eq!(
        warned,
        BTreeSet::from(["F1", "F2", "F3", "F6"].map(String::from))
    );

    // Night 12-21: F1 has owed 3 days: closed, with the rule and the balance.
    run_to_end(&s, &c, "2025-12-21").await;
    let f1 = sub
        .wait_key("valve_close_requested:F1:2025-12-21", 15)
        .await;
    assert_eq!(f1["rule"], "policies.fee_control from 2025-10-20", "{f1:#}");
    assert_eq!(f1["days_in_arrears"], 3, "{f1:#}");
    assert_eq!(f1["limit"], "100");
    assert!(f1["owed"].as_str().unwrap().starts_with("16"), "{f1:#}");
    // The same night again writes nothing new (the keys are there).
    let before = events_of(&s, &c, "").await.len();
    let (st, v) = trigger(&s, &c, "2025-12-21", "again-12-21").await;
    assert!(st.is_success(), "{v:#}");
    follow(&s, &c, v["id"].as_i64().unwrap()).await;
    assert_eq!(events_of(&s, &c, "").await.len(), before);

    // The valve reports closed over MQTT (twice: recorded once): the request is acknowledged.
    {
        let mut opts = MqttOptions::new(format!("{prefix}-adapter"), "127.0.0.1", broker.port);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(opts, 16);
        let report = json!({"customer_id": "F1", "state": "closed", "report_id": "cc-881"});
        for _ in 0..2 {
            client
                .publish(
                    format!("{prefix}/fee/valve_state"),
                    QoS::AtLeastOnce,
                    false,
                    report.to_string(),
                )
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut acks = 0;
        while acks < 2 {
            assert!(
                Instant::now() < deadline,
                "the broker acknowledged {acks} of 2 reports"
            );
            if let Ok(Ok(Event::Incoming(Packet::PubAck(_)))) =
                tokio::time::timeout(Duration::from_secs(1), el.poll()).await
            {
                acks += 1;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let valve = loop {
        let (st, v) = s
            .get(&format!("/v1/companies/{slug}/valves/F1"), &c.reader)
            .await;
        ok(st, &v, 200);
        if v["acknowledged"] == true {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the report was not taken in 15 s: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (valve["requested"].as_str(), valve["reported"].as_str()),
        (Some("closed"), Some("closed"))
    );
    let reports = keys(&s, &c, "valve_state_reported").await;
    assert_eq!(
        reports["F1"],
        vec!["valve_state_reported:F1:cc-881".to_string()]
    );
    let close = events_of(&s, &c, "kind=valve_close_requested&customer=F1").await;
    assert_eq!(
        close[0]["deliveries"][0]["state"], "acknowledged",
        "{close:#?}"
    );
    // The same report over the API is the same event (200); another state under its id is 409.
    let reports_path = format!("/v1/companies/{slug}/valves/F1/reports");
    let (st, v) = s
        .post(
            &reports_path,
            &c.staff,
            json!({"state": "closed", "report_id": "cc-881"}),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["new"], false);
    let (st, v) = s
        .post(
            &reports_path,
            &c.staff,
            json!({"state": "open", "report_id": "cc-881"}),
        )
        .await;
    error(st, &v, 409, "never changed");
    let (st, v) = s
        .post(
            &reports_path,
            &c.staff,
            json!({"state": "ajar", "report_id": "cc-882"}),
        )
        .await;
    error(st, &v, 400, "give open, closed or fault");

    // Night 12-22: nothing is asked twice. Night 12-23 is a no-close day: F6 (owed since 12-20)
    // waits; on 12-24 it is closed, while the broker is down, and delivered once it is back.
    run_to_end(&s, &c, "2025-12-22").await;
    run_to_end(&s, &c, "2025-12-23").await;
    assert!(
        !keys(&s, &c, "valve_close_requested")
            .await
            .contains_key("F6")
    );
    let mut broker = broker;
    broker.down();
    run_to_end(&s, &c, "2025-12-24").await;
    let f6 = events_of(&s, &c, "kind=valve_close_requested&customer=F6").await;
    assert_eq!(f6.len(), 1, "{f6:#?}");
    assert_eq!(f6[0]["key"], "valve_close_requested:F6:2025-12-24");
    // The publisher fails against the stopped broker and says why.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = events_of(&s, &c, "kind=valve_close_requested&customer=F6").await;
        let d = &e[0]["deliveries"][0];
        if d["state"] == "failed" {
            assert!(d["last_error"].as_str().unwrap().contains("MQTT"), "{d:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt in 20 s: {d:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker.up();
    all_delivered(&s, &c, 60).await;
    sub.wait_key("valve_close_requested:F6:2025-12-24", 60)
        .await;

    // A payment that brings F1 within the limit asks the valve open within seconds.
    let paid_at = Instant::now();
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/payments"),
            &c.staff,
            json!({"customer_id": "F1", "amount": "150.00", "channel": "wechat",
                   "channel_txn": "wx-F1-1", "paid_on": "2025-12-24"}),
        )
        .await;
    ok(st, &v, 201);
    let entry = v["entry"]["id"].as_i64().unwrap();
    let open = sub
        .wait_key(&format!("valve_open_requested:F1:entry-{entry}"), 10)
        .await;
    assert!(paid_at.elapsed() < Duration::from_secs(10));
    assert_eq!(open["source"], "payment", "{open:#}");
    assert!(
        open["reason"]
            .as_str()
            .unwrap()
            .contains("within the credit limit"),
        "{open:#}"
    );
    // The same payment again (a notification sent twice) asks nothing more.
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/payments"),
            &c.staff,
            json!({"customer_id": "F1", "amount": "150.00", "channel": "wechat",
                   "channel_txn": "wx-F1-1", "paid_on": "2025-12-24"}),
        )
        .await;
    ok(st, &v, 200);
    // Taking F3's dispute flag, F2 off hold: F2 owes more than the limit, so night 12-25
    // closes it; F3 stays exempt (suspended).
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/valves/F2/flags"),
            Some(&c.staff),
            Some(json!({"hold": false})),
        )
        .await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-12-25").await;
    let closes = keys(&s, &c, "valve_close_requested").await;
    assert_eq!(
        closes,
        BTreeMap::from([
            (
                "F1".into(),
                vec!["valve_close_requested:F1:2025-12-21".to_string()]
            ),
            (
                "F2".into(),
                vec!["valve_close_requested:F2:2025-12-25".to_string()]
            ),
            (
                "F4".into(),
                vec!["valve_close_requested:F4:2025-12-20".to_string()]
            ),
            (
                "F6".into(),
                vec!["valve_close_requested:F6:2025-12-24".to_string()]
            ),
        ]),
        "F3 (suspended) and F5 (owes nothing) are never closed; F1 is not closed again after \
         its payment"
    );
    // Putting a closed customer on hold asks the valve open at once.
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/valves/F6/flags"),
            Some(&c.staff),
            Some(json!({"disputed": true, "note": "meter dispute"})),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["requested"], "open", "{v:#}");
    let last = v["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "valve_open_requested", "{v:#}");
    assert!(
        last["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("disputed"),
        "{last:#}"
    );

    // A close request unacknowledged for longer than ack_hours is escalated once.
    sqlx_backdate(&db, "F4").await;
    // Here and in the publisher's own loop (every 10 s): escalated once whoever gets there.
    publish::escalate_due(&db.services()).await.unwrap();
    publish::escalate_due(&db.services()).await.unwrap();
    let key = "valve_close_unacknowledged:F4:valve_close_requested:F4:2025-12-20";
    assert_eq!(
        keys(&s, &c, "valve_close_unacknowledged").await,
        BTreeMap::from([("F4".into(), vec![key.to_string()])]),
        "F2's close of 12-25 is younger than ack_hours; F1's was acknowledged; F6 was opened"
    );
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/valves/F4"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["escalated"], true, "{v:#}");
    sub.wait_key(key, 15).await;
    let (st, v) = s.get("/metrics", OPERATOR).await;
    ok(st, &v, 200);
    let text = v.as_str().unwrap();
    assert!(
        text.contains("heatbill_valve_close_escalations_total"),
        "{text}"
    );
    assert!(text.contains("heatbill_events_delivered_total"), "{text}");

    all_delivered(&s, &c, 30).await;
    if db.kind == Kind::Postgres {
        // The publisher killed after the broker took a round and before it recorded so: the
        // next publisher sends the round again under the same keys.
        drop(publisher.take());
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (i, customer) in ["F4", "F6", "F5"].iter().enumerate() {
            let (st, v) = s
                .post(
                    &format!("/v1/companies/{slug}/valves/{customer}/reports"),
                    &c.staff,
                    json!({"state": "open", "report_id": format!("k-{i}")}),
                )
                .await;
            ok(st, &v, 201);
        }
        let (st, v) = s
            .post(
                &format!("/v1/companies/{slug}/payments"),
                &c.staff,
                json!({"customer_id": "F4", "amount": "500.00", "channel": "wechat",
                       "channel_txn": "wx-F4-1", "paid_on": "2025-12-25"}),
            )
            .await;
        ok(st, &v, 201);
        let entry = v["entry"]["id"].as_i64().unwrap();
        let waiting = events_of(&s, &c, "state=pending").await;
        assert_eq!(waiting.len(), 1, "{waiting:#?}");
        kill_a_publisher_mid_round(&db, &settings).await;
        // Nothing was recorded as delivered by the killed one.
        assert_eq!(events_of(&s, &c, "state=pending").await.len(), 1);
        publisher = Some(start_publisher(&db, settings.clone()));
        let key = format!("valve_open_requested:F4:entry-{entry}");
        sub.wait_key(&key, 20).await;
        all_delivered(&s, &c, 30).await;
        let copies = sub
            .messages()
            .iter()
            .filter(|m| m.1["key"] == key.as_str())
            .count();
        assert_eq!(
            copies, 2,
            "sent once by the killed publisher, once by the next"
        );
    }
    // Every event with a target reached the subscriber; one key is one event (one seq).
    let outbox = events_of(&s, &c, "").await;
    let mut by_key: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (topic, m) in sub.messages() {
        assert!(topic.starts_with(&format!("{prefix}/fee/")), "{topic}");
        if topic.ends_with("/valve_state") {
            continue;
        }
        assert_eq!(
            topic,
            format!("{prefix}/fee/{}", m["kind"].as_str().unwrap())
        );
        by_key
            .entry(m["key"].as_str().unwrap().to_string())
            .or_default()
            .insert(m["seq"].as_i64().unwrap());
    }
    let published: BTreeMap<String, BTreeSet<i64>> = outbox
        .iter()
        .filter(|e| !e["deliveries"].as_array().unwrap().is_empty())
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                BTreeSet::from([e["id"].as_i64().unwrap()]),
            )
        })
        .collect();
    assert_eq!(by_key, published);
    for e in &outbox {
        for d in e["deliveries"].as_array().unwrap() {
            assert!(
                d["state"] == "delivered" || d["state"] == "acknowledged",
                "{e:#}"
            );
        }
    }
    // Unknown kinds and states are refused with the list.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/events?kind=valve_explode"),
            &c.reader,
        )
        .await;
    error(st, &v, 400, "valve_close_requested");
    drop(publisher);
    s.stop().await;
}
both!(fee_control_over_mqtt);

/// Moves a customer's close request a day into the past (the test cannot wait 24 hours).
async fn sqlx_backdate(db: &TestDb, customer: &str) {
    match db.kind {
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(
                "UPDATE valve_states SET requested_at = now() - interval '25 hours'
                 WHERE customer_id = $1",
            )
            .bind(customer)
            .execute(&pool)
            .await
            .unwrap();
        }
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(
                "UPDATE valve_states SET requested_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-25 hours')
                 WHERE customer_id = ?1",
            )
            .bind(customer)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
}

const CHILD: &str = "HEATBILL_TEST_PUBLISHER_DB";

/// Runs a publisher in a process of its own (this test binary, as the test below) that stops
/// itself after the broker acknowledged its round, then kills it (SIGKILL), as a host that
/// dies there.
async fn kill_a_publisher_mid_round(db: &TestDb, settings: &EventSettings) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = log.reopen().unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "api::events::a_publisher_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, &db.url)
        .env(
            "HEATBILL_TEST_PUBLISHER_SETTINGS",
            serde_json::to_string(settings).unwrap(),
        )
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        if text.contains("before marking them delivered") {
            break;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the publisher did not stop itself after its round in 60 s:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// In the process [`kill_a_publisher_mid_round`] starts: a publisher with the fault set, until
/// killed. Run as a test of its own (no such variable): a publisher whose broker does not
/// answer fails the round and says which broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_child() {
    if let Ok(url) = std::env::var(CHILD) {
        let store = heatbill_runtime::store::open(&url, 4, 30).await.unwrap();
        let services = heatbill_runtime::services::Services::embedded(
            store,
            &heatbill_runtime::settings::CacheSettings::default(),
        );
        let mut settings: EventSettings =
            serde_json::from_str(&std::env::var("HEATBILL_TEST_PUBLISHER_SETTINGS").unwrap())
                .unwrap();
        settings.fault_stop_after_publish = true;
        settings.client_id = format!("{}-child", settings.client_id);
        publish::run(services, settings, std::future::pending()).await;
        return;
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let due = heatbill_runtime::store::events::Due {
        event_id: 1,
        company_id: 1,
        customer_id: None,
        company: "c".into(),
        kind: "balance_warning".into(),
        body: "{}".into(),
        attempts: 0,
    };
    let broker = publish::Broker::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let (acked, error) = publish::publish_mqtt(&broker, "nobody", "p", &[due]).await;
    assert!(acked.is_empty());
    let error = error.expect("a refused connection is an error");
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

/// Payments imported from a file reopen closed valves as a counter's payment does: in the
/// import's transaction, under the entry's key (the same file again asks nothing more).
async fn imported_payments_open_valves(db: TestDb) {
    let s = Server::start(&db, |st| st.api.require_cases = false).await;
    let c = company(&s, "feeimp").await;
    let slug = &c.slug;
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}"),
            Some(OPERATOR),
            Some(json!({"name": "Harbin Heat", "time_zone": "Asia/Harbin",
                "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}],
                "policies": {"fee_control": [{"from": "2025-10-20", "credit_limit": "100",
                                              "days_in_arrears": 3}]}})),
        )
        .await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "customers", FEE_CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "balances", FEE_BALANCES).await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-12-20").await;
    let closed: BTreeSet<String> = keys(&s, &c, "valve_close_requested")
        .await
        .into_keys()
        .collect();
    assert!(closed.contains("F2"), "{closed:?}");
    // F2 pays its arrears by bank transfer; F5 (open, owing nothing) pays ahead.
    let file = "payment_id,customer_id,paid_on,amount\n\
                bank-1,F2,2025-12-21,200.00\nbank-2,F5,2025-12-21,30.00\n";
    for round in 0..2 {
        let (st, v) = import(&s, &c, "payments", file).await;
        ok(st, &v, 200);
        let opens = keys(&s, &c, "valve_open_requested").await;
        assert_eq!(opens.len(), 1, "import {round}: {opens:?}");
        let f2 = &opens["F2"];
        assert_eq!(f2.len(), 1, "import {round}: {opens:?}");
        assert!(
            f2[0].starts_with("valve_open_requested:F2:entry-"),
            "{f2:?}"
        );
    }
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/valves/F2"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["requested"], "open", "{v:#}");
    let last = v["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["body"]["source"], "payment", "{last:#}");
    s.stop().await;
}
both!(imported_payments_open_valves);

/// E-invoice requests for a month of payments: one per payment, its total the payment, its
/// lines by charge type under the company's tax treatment (residential heating exempt,
/// non-residential 9 %, late fees not taxable); a refund's red-letter request references its
/// original; the provider's answers kept; the tax bureau's template exported.
async fn invoices_over_http(db: TestDb) {
    let s = Server::start(&db, |st| st.api.require_cases = false).await;
    let c = company(&s, "inv").await;
    let slug = &c.slug;
    let invoicing = json!({
        "seller": {"name": "哈尔滨热力有限公司", "tax_id": "91230100MA1B2C3D4E"},
        "items": [
            {"class": "residential", "charge": "heat", "name": "*供热*居民采暖费",
             "tax_code": "1100301030000000000", "unit": "项", "rate": "0", "preference": "免税"},
            {"class": "non-residential", "charge": "heat", "name": "*供热*非居民采暖费",
             "tax_code": "1100301030000000000", "rate": "0.09"},
            {"class": "*", "charge": "late-fee", "name": "*供热*滞纳金",
             "tax_code": "1100301030000000000", "rate": "0", "preference": "不征税"}]});
    let update = |policies: Value| {
        json!({"name": "Harbin Heat", "time_zone": "Asia/Harbin", "policies": policies,
               "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}]})
    };
    let path = format!("/v1/companies/{slug}");
    let mut bad = invoicing.clone();
    bad["items"][1]["rate"] = json!("9");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &path,
            Some(OPERATOR),
            Some(update(json!({"invoicing": bad}))),
        )
        .await;
    assert_eq!(st.as_u16(), 422, "{v:#}");
    assert!(v.to_string().contains("0.09 for 9 %"), "{v:#}");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &path,
            Some(OPERATOR),
            Some(update(json!({"invoicing": invoicing}))),
        )
        .await;
    ok(st, &v, 200);
    let (st, v) = import(
        &s,
        &c,
        "customers",
        "customer_id,class,building_area,usable_area,attributes\n\
         R1,residential,75,60.00,\n\
         N1,non-residential,100,90.00,tax_id=91230100MA1XYZ0001\n",
    )
    .await;
    ok(st, &v, 200);
    let (st, v) = import(
        &s,
        &c,
        "profiles",
        "customer_id,account_no,name\nR1,HB-1,王小明\nN1,HB-2,松花江商贸有限公司\n",
    )
    .await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-12-01").await;
    // A month of payments: every other day each customer pays.
    let mut paid: Vec<(String, String, i64)> = Vec::new();
    for day in (1..=30).step_by(3) {
        for (customer, amount) in [("R1", "38.50"), ("N1", "120.07")] {
            let (st, v) = s
                .post(
                    &format!("/v1/companies/{slug}/payments"),
                    &c.staff,
                    json!({"customer_id": customer, "amount": amount, "channel": "alipay",
                           "channel_txn": format!("ali-{customer}-{day}"),
                           "paid_on": format!("2025-12-{day:02}")}),
                )
                .await;
            ok(st, &v, 201);
            paid.push((
                customer.into(),
                amount.into(),
                v["entry"]["id"].as_i64().unwrap(),
            ));
        }
    }
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/invoices"), &c.reader)
        .await;
    ok(st, &v, 200);
    let all = v["invoices"].as_array().unwrap().clone();
    assert_eq!(all.len(), paid.len(), "one request per payment");
    let dec = |v: &Value| -> Decimal { v.as_str().unwrap().parse().unwrap() };
    for (inv, (customer, amount, entry)) in all.iter().zip(&paid) {
        assert_eq!(
            (inv["customer_id"].as_str(), inv["entry_id"].as_i64()),
            (Some(customer.as_str()), Some(*entry))
        );
        assert_eq!(inv["kind"], "blue");
        let body = &inv["body"];
        let lines = body["lines"].as_array().unwrap();
        let gross: Decimal = lines
            .iter()
            .map(|l| dec(&l["amount"]) + dec(&l["tax"]))
            .sum();
        assert_eq!(gross, amount.parse::<Decimal>().unwrap(), "{inv:#}");
        assert_eq!(dec(&body["totals"]["total"]), gross);
        assert_eq!(body["seller"]["tax_id"], "91230100MA1B2C3D4E");
        for l in lines {
            assert_eq!(l["tax_code"], "1100301030000000000");
            match (customer.as_str(), l["charge"].as_str().unwrap()) {
                ("R1", "heat") => {
                    assert_eq!(
                        (l["rate"].as_str(), l["preference"].as_str()),
                        (Some("0"), Some("免税"))
                    );
                    assert_eq!(dec(&l["tax"]), Decimal::ZERO);
                }
                ("N1", "heat") => {
                    assert_eq!(l["rate"], "0.09");
                    let g = dec(&l["amount"]) + dec(&l["tax"]);
                    let tax = (g * Decimal::new(9, 2) / Decimal::new(109, 2))
                        .round_dp_with_strategy(
                            2,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        );
                    assert_eq!(dec(&l["tax"]), tax, "{l:#}");
                }
                (_, "late-fee") => assert_eq!(l["preference"], "不征税"),
                other => panic!("unexpected line {other:?}"),
            }
        }
        if customer == "N1" {
            assert_eq!(body["buyer"]["tax_id"], "91230100MA1XYZ0001");
            assert_eq!(body["buyer"]["name"], "松花江商贸有限公司");
        }
    }
    // The provider issues N1's first invoice; the same answer again changes nothing; another is
    // refused.
    let first_n1 = all.iter().find(|i| i["customer_id"] == "N1").unwrap();
    let id = first_n1["id"].as_i64().unwrap();
    let answer_path = format!("/v1/companies/{slug}/invoices/{id}/answer");
    let issued = json!({"status": "issued", "invoice_number": "25232000000012345678",
                        "pdf_url": "https://provider.example/i/25232000000012345678.pdf"});
    let (st, v) = s.post(&answer_path, &c.staff, issued.clone()).await;
    ok(st, &v, 201);
    assert_eq!(v["invoice"]["state"], "issued");
    let (st, v) = s.post(&answer_path, &c.staff, issued).await;
    ok(st, &v, 200);
    let (st, v) = s
        .post(
            &answer_path,
            &c.staff,
            json!({"status": "refused", "reason": "late"}),
        )
        .await;
    error(st, &v, 409, "never changed");
    let (st, v) = s
        .post(
            &answer_path,
            &c.staff,
            json!({"status": "issued", "invoice_number": "123"}),
        )
        .await;
    error(st, &v, 400, "20-digit");
    // A refund of part of that payment: a red-letter request for exactly the refund, with the
    // original's number.
    let entry = first_n1["entry_id"].as_i64().unwrap();
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/entries/{entry}/refunds"),
            &c.staff,
            json!({"amount": "20.00", "on_date": "2025-12-30", "note": "overpaid",
                   "channel_txn": "ali-refund-1"}),
        )
        .await;
    ok(st, &v, 201);
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/invoices?customer=N1&from=2025-12-30"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let red = v["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "red")
        .unwrap_or_else(|| panic!("no red-letter request: {v:#}"))
        .clone();
    assert_eq!(red["original_id"].as_i64(), Some(id));
    assert_eq!(dec(&red["amount"]), Decimal::new(-2000, 2));
    assert_eq!(
        red["body"]["original"]["invoice_number"],
        "25232000000012345678"
    );
    let red_total: Decimal = red["body"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| dec(&l["amount"]) + dec(&l["tax"]))
        .sum();
    assert_eq!(red_total, Decimal::new(-2000, 2));
    // The batch in the tax bureau's template: one row per line, every request of the month.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/invoices?format=template&from=2025-12-01&to=2025-12-31"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let csv = v.as_str().unwrap();
    assert!(csv.starts_with("请求号,购买方名称,购买方纳税人识别号,项目名称,商品和服务税收分类编码,规格型号,单位,商品数量,商品单价,金额,税率,折扣金额,优惠政策类型\n"), "{csv}");
    assert!(csv.contains(",免税,0.00,免税\n"), "{csv}");
    assert!(csv.contains(",9%,0.00,\n"), "{csv}");
    // The requests are events too (kept; no target configured, so none is published).
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/events?kind=invoice_requested"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["events"].as_array().unwrap().len(), paid.len());
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/events?kind=invoice_red_requested"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    // Payments imported from a bank's file are payments too: a request each, in the import's
    // transaction; the same file again writes nothing new.
    let file = "payment_id,customer_id,paid_on,amount\n\
                bank-0001,R1,2025-12-31,12.34\nbank-0002,N1,2025-12-31,56.78\n";
    for round in 0..2 {
        let (st, v) = import(&s, &c, "payments", file).await;
        ok(st, &v, 200);
        let (st, v) = s
            .get(
                &format!("/v1/companies/{slug}/invoices?from=2025-12-31"),
                &c.reader,
            )
            .await;
        ok(st, &v, 200);
        let imported: Vec<(String, String)> = v["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "blue")
            .map(|i| {
                (
                    i["customer_id"].as_str().unwrap().to_string(),
                    i["amount"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            imported,
            vec![
                ("R1".to_string(), "12.34".to_string()),
                ("N1".to_string(), "56.78".to_string())
            ],
            "import {round}: {v:#}"
        );
    }
    s.stop().await;
}
both!(invoices_over_http);
