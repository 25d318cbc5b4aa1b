//! The admin API through the real HTTP server (`heatbill::api::serve` on a loopback port),
//! on real databases, with the reference plugins uploaded as an integrator would.
//!
//! Long by design: one test module per area of the suite (this one: the admin API), so a failing
//! test is found by its area; helpers at the top, one story per test below.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone};
use heatbill::api::{self, App, AppState};
use heatbill_runtime::settings::{RunSettings, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::db::{self, TestDb};
use crate::support::{component, repo_root};

pub(crate) const OPERATOR: &str = "operator-token-for-the-tests";

/// A server on a loopback port, stopped when dropped.
pub(crate) struct Server {
    base: String,
    http: reqwest::Client,
    app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Server {
    pub(crate) async fn start(db: &TestDb, tune: impl FnOnce(&mut Settings)) -> Server {
        Server::start_with(db.services(), tune).await
    }

    /// A server whose engine is `engine` (its own limits, profiles and grants).
    async fn start_with_engine(db: &TestDb, engine: heatbill_engine::Engine) -> Server {
        Server::start_on(db.services(), engine, |_| {}).await
    }

    /// A server on given services (several servers sharing a database and Redis are hosts of
    /// one deployment).
    async fn start_with(
        services: heatbill_runtime::services::Services,
        tune: impl FnOnce(&mut Settings),
    ) -> Server {
        Server::start_on(services, db::engine().clone(), tune).await
    }

    /// A server on given services and engine.
    async fn start_on(
        services: heatbill_runtime::services::Services,
        engine: heatbill_engine::Engine,
        tune: impl FnOnce(&mut Settings),
    ) -> Server {
        let mut settings = Settings {
            run: RunSettings {
                shard_size: 3,
                workers: Some(2),
                ..Default::default()
            },
            ..Default::default()
        };
        settings.api.scheduler = false;
        tune(&mut settings);
        let app = Arc::new(AppState::new(services, engine, settings, OPERATOR));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let app = app.clone();
            async move {
                api::serve(app, listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            }
        });
        Server {
            base,
            http: reqwest::Client::new(),
            app,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it (graceful shutdown).
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task.take().unwrap())
            .await
            .expect("the server stops within 30 s")
            .unwrap();
    }

    pub(crate) fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub(crate) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let resp = self
            .req(method, path, Some(token))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Uploads `bytes` as a component to `company`'s plugins.
    async fn upload(&self, company: &str, token: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        self.raw(
            reqwest::Method::POST,
            &format!("/v1/companies/{company}/plugins"),
            token,
            "application/wasm",
            bytes,
        )
        .await
    }
}

pub(crate) fn ok(status: StatusCode, v: &Value, want: u16) {
    assert_eq!(status.as_u16(), want, "{v:#}");
}

/// Every error answer says what is wrong in the one error shape.
pub(crate) fn error(status: StatusCode, v: &Value, want: u16, says: &str) {
    assert_eq!(status.as_u16(), want, "{v:#}");
    let m = v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not the error shape: {v:#}"));
    assert_eq!(v["error"]["status"], want, "{v:#}");
    assert!(m.contains(says), "{m:?} does not say {says:?}");
}

fn case_file(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("plugins/cases").join(name)).unwrap()
}

const CHAIN: &str = r#"{"effective_from": "2025-10-01", "entries": [
    {"plugin": "season", "params": {"start": "2025-10-20", "end": "2026-04-20"}},
    {"plugin": "area-tariff", "params": {"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"}}},
    {"plugin": "late-fee", "params": {"daily_rate": "0.001", "due_date": "2026-01-01"}}
]}"#;

const CUSTOMERS: &str = "customer_id,class,status,low_income,building_area,usable_area\n\
    W1,residential,active,false,75,60.00\n\
    W2,residential,active,false,80,64.00\n\
    W3,non-residential,active,false,100,90.00\n\
    W4,residential,suspended,false,75,60\n";

/// A company set up through the API as a new company would be: created, tokens issued, the
/// reference plugins uploaded with their case files, the chain activated.
struct Company {
    slug: String,
    integrator: String,
    staff: String,
    reader: String,
    digests: Vec<(String, String)>,
}

async fn company(s: &Server, slug: &str) -> Company {
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": slug, "name": "Harbin Heat", "time_zone": "Asia/Harbin",
                   "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}]}),
        )
        .await;
    ok(st, &v, 201);
    assert_eq!(v["slug"], slug);
    let mut tokens = Vec::new();
    for role in ["integrator", "staff", "read-only"] {
        let (st, v) = s
            .post(
                &format!("/v1/companies/{slug}/tokens"),
                OPERATOR,
                json!({"role": role, "label": format!("{role} of the tests")}),
            )
            .await;
        ok(st, &v, 201);
        let t = v["token"].as_str().unwrap().to_string();
        assert!(t.starts_with("hb_") && t.len() == 67, "{t}");
        tokens.push(t);
    }
    let integrator = tokens[0].clone();
    let mut digests = Vec::new();
    for name in ["season", "area-tariff", "late-fee"] {
        let (st, v) = s.upload(slug, &integrator, component(name)).await;
        ok(st, &v, 201);
        assert_eq!(v["name"], name);
        assert_eq!(v["contract_version"], "0.2.0", "{v:#}");
        // The parameter schema comes with the plugin, for forms and for integrators.
        assert_eq!(v["describe"]["params_schema"]["type"], "object", "{v:#}");
        assert_eq!(
            v["describe"]["params_schema"]["additionalProperties"],
            false
        );
        digests.push((name.to_string(), v["digest"].as_str().unwrap().to_string()));
    }
    // The same bytes again are the same plugin.
    let (st, v) = s.upload(slug, &integrator, component("season")).await;
    ok(st, &v, 200);
    for (name, file) in [
        ("season", "w1.toml"),
        ("area-tariff", "w1.toml"),
        ("late-fee", "w6.toml"),
    ] {
        let digest = &digests.iter().find(|d| d.0 == name).unwrap().1;
        let (st, v) = s
            .raw(
                reqwest::Method::PUT,
                &format!("/v1/companies/{slug}/plugins/{digest}/cases/{file}"),
                &integrator,
                "application/toml",
                case_file(file).into_bytes(),
            )
            .await;
        ok(st, &v, 200);
        assert_eq!(v["passed"], true, "{v:#}");
    }
    let chain: Value = serde_json::from_str(CHAIN).unwrap();
    let (st, v) = s
        .post(&format!("/v1/companies/{slug}/chains"), &integrator, chain)
        .await;
    ok(st, &v, 201);
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);
    Company {
        slug: slug.to_string(),
        integrator,
        staff: tokens[1].clone(),
        reader: tokens[2].clone(),
        digests,
    }
}

async fn import(s: &Server, c: &Company, kind: &str, csv: &str) -> (StatusCode, Value) {
    s.raw(
        reqwest::Method::POST,
        &format!("/v1/companies/{}/imports/{kind}", c.slug),
        &c.staff,
        "text/csv",
        csv.as_bytes().to_vec(),
    )
    .await
}

async fn trigger(s: &Server, c: &Company, date: &str, key: &str) -> (StatusCode, Value) {
    let resp = s
        .req(
            reqwest::Method::POST,
            &format!("/v1/companies/{}/runs", c.slug),
            Some(&c.staff),
        )
        .header("idempotency-key", key)
        .json(&json!({ "date": date }))
        .send()
        .await
        .unwrap();
    let st = resp.status();
    (st, resp.json().await.unwrap())
}

/// Follows a run's event stream to its end; returns the events' names and the last data.
async fn follow(s: &Server, c: &Company, id: i64) -> (Vec<String>, Value) {
    let text = tokio::time::timeout(
        Duration::from_secs(120),
        s.req(
            reqwest::Method::GET,
            &format!("/v1/companies/{}/runs/{id}/events", c.slug),
            Some(&c.reader),
        )
        .send(),
    )
    .await
    .expect("the stream answers")
    .unwrap()
    .text()
    .await
    .unwrap();
    let mut names = Vec::new();
    let mut last = Value::Null;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            names.push(n.to_string());
        }
        if let Some(d) = line.strip_prefix("data: ") {
            last = serde_json::from_str(d).unwrap_or(Value::Null);
        }
    }
    (names, last)
}

async fn run_to_end(s: &Server, c: &Company, date: &str) -> Value {
    let (st, v) = trigger(s, c, date, &format!("night-of-{date}")).await;
    assert!(
        st == StatusCode::ACCEPTED || st == StatusCode::OK,
        "{st} {v:#}"
    );
    let (names, last) = follow(s, c, v["id"].as_i64().unwrap()).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("finished"),
        "{names:?}"
    );
    assert_eq!(last["state"], "completed", "{last:#}");
    last
}

/// The whole story of a new company, through the HTTP API.
async fn full_story(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;

    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    assert_eq!(
        (v["rows"].as_u64(), v["inserted"].as_u64()),
        (Some(4), Some(4)),
        "{v:#}"
    );
    // The same file again changes nothing.
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    assert_eq!(v["unchanged"], 4, "{v:#}");

    // JSON, as lines and as an array: the same columns as fields.
    let (st, v) = s
        .raw(reqwest::Method::POST, &format!("/v1/companies/{slug}/imports/temperatures"), &c.staff,
            "application/x-ndjson",
            b"{\"customer_id\": \"W1\", \"date\": \"2025-10-21\", \"celsius\": 17.5}\n\n{\"customer_id\": \"W2\", \"date\": \"2025-10-21\", \"celsius\": 19}\n".to_vec())
        .await;
    ok(st, &v, 200);
    assert_eq!(
        (v["kind"].as_str(), v["inserted"].as_u64()),
        (Some("temperatures"), Some(2)),
        "{v:#}"
    );
    let (st, v) = s
        .raw(reqwest::Method::POST, &format!("/v1/companies/{slug}/imports/customers"), &c.staff,
            "application/json",
            serde_json::to_vec(&json!([
                // From 2030: the runs below bill the four customers of the CSV.
                {"customer_id": "W9", "valid_from": "2030-01-01", "class": "residential", "building_area": 50, "usable_area": "40.00",
                 "tags": ["district:nangang", "building:12"], "attributes": {"meter": "none"}, "low_income": null},
                {"customer_id": "W8", "valid_from": "2030-01-01", "class": "residential", "building_area": "50"}
            ])).unwrap())
        .await;
    ok(st, &v, 200);
    assert_eq!(v["inserted"], 2, "{v:#}");

    // A run: 202 with its id, then its progress stream to the end.
    let (st, v) = trigger(&s, &c, "2025-10-20", "key-1").await;
    ok(st, &v, 202);
    let id = v["id"].as_i64().unwrap();
    let (names, last) = follow(&s, &c, id).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("finished"),
        "{names:?}"
    );
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(
        (last["customers"].as_u64(), last["written"].as_u64()),
        (Some(4), Some(4))
    );
    let report = &last["report"];
    assert_eq!(report["counts"]["parked"], 0, "{report:#}");
    // The same key and request: the same run.
    let (st, v) = trigger(&s, &c, "2025-10-20", "key-1").await;
    ok(st, &v, 200);
    assert_eq!(v["id"].as_i64(), Some(id));
    // The same key for another request: refused.
    let (st, v) = trigger(&s, &c, "2025-10-21", "key-1").await;
    error(st, &v, 409, "another request");

    // Bills: by date, a page at a time.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/bills?date=2025-10-20&limit=3"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let page: Vec<&str> = v["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(page, ["W1", "W2", "W3"]);
    assert_eq!(v["next_after"], "W3");
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/bills?date=2025-10-20&after=W3"),
            &c.reader,
        )
        .await;
    assert_eq!(v["bills"][0]["customer_id"], "W4");
    assert!(v["next_after"].is_null());
    // W1's worked example: 12.56 on day 1.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/bills?from=2025-10-20&to=2025-10-20"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v[0]["lines"][0]["code"], "heat");
    assert_eq!(v[0]["lines"][0]["amount"], "12.56");
    assert_eq!(v[0]["total"], "12.56");

    // The CSV export, streamed.
    let resp = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/companies/{slug}/bills/export?date=2025-10-20"),
            Some(&c.reader),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("customer_id,date,version,status,code"),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("W1,2025-10-20,1,billed,heat,") && r.contains(",12.56,")),
        "{csv}"
    );

    // The next day, then a correction and a re-run: W1's bill gets version 2, with history.
    run_to_end(&s, &c, "2025-10-21").await;
    let (st, v) = import(&s, &c, "customers",
        "customer_id,class,status,low_income,building_area,usable_area,valid_from\nW1,residential,active,false,75,70.00,2025-10-21\n").await;
    ok(st, &v, 200);
    let (st, v) = trigger(&s, &c, "2025-10-21", "rerun-21").await;
    ok(st, &v, 202);
    let (_, last) = follow(&s, &c, v["id"].as_i64().unwrap()).await;
    assert_eq!(last["revised"], 1, "{last:#}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/bills/2025-10-21/history"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["current"]["version"], 2);
    assert_eq!(v["superseded"][0]["version"], 1);
    // The run's bills: the one it revised.
    let rerun = last["id"].as_i64().unwrap();
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/runs/{rerun}/bills"),
            &c.reader,
        )
        .await;
    let ids: Vec<&str> = v["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["W1"]);

    // A dry run writes nothing: with the chain in force, and with a draft at another price.
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/dry-run"),
            &c.integrator,
            json!({"customer": "W2", "date": "2025-10-22"}),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["bill"]["lines"][0]["code"], "heat", "{v:#}");
    assert!(v["current"].is_null());
    let mut draft: Value = serde_json::from_str(CHAIN).unwrap();
    draft["entries"][1]["params"]["prices"]["residential"] = json!("40.00");
    let (st, v2) = s
        .post(
            &format!("/v1/companies/{slug}/dry-run"),
            &c.staff,
            json!({"customer": "W2", "date": "2025-10-22", "chain": draft["entries"]}),
        )
        .await;
    ok(st, &v2, 200);
    assert_ne!(
        v["bill"]["total"], v2["bill"]["total"],
        "the draft's price bills differently"
    );
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/bills?date=2025-10-22"),
            &c.reader,
        )
        .await;
    assert!(
        v["bills"].as_array().unwrap().is_empty(),
        "a dry run wrote a bill"
    );

    // Arrears: nobody owes before the due date.
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/arrears?top=5"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["date"], "2025-10-21");

    // The books audited: in order; a range past the cap is refused, saying so.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/audit?from=2025-10-20&to=2025-10-21"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["dates"], 2, "{v:#}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/audit?from=2025-10-01&to=2025-12-01"),
            &c.reader,
        )
        .await;
    error(st, &v, 400, "an audit covers 1 to 31 dates");

    // Runs listed, newest first; plugins and chains readable by every role.
    let (_, v) = s
        .get(&format!("/v1/companies/{slug}/runs"), &c.reader)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (_, v) = s
        .get(&format!("/v1/companies/{slug}/plugins"), &c.reader)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "late-fee")
            .unwrap()["cases"][0]["name"],
        "w6.toml"
    );
    let (_, v) = s
        .get(&format!("/v1/companies/{slug}/chains"), &c.reader)
        .await;
    assert_eq!(v[0]["effective_from"], "2025-10-01");

    // Operations.
    let (st, v) = s.call(reqwest::Method::GET, "/readyz", None, None).await;
    ok(st, &v, 200);
    let (st, doc) = s
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    ok(st, &doc, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/companies/{company}/runs"]["post"].is_object());
    let metrics = s
        .req(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("heatbill_runs_total{state=\"started\"} 3"),
        "{metrics}"
    );
    assert!(
        // (the 4xx: a bad request earlier in the story, and the audit's range past its cap)
        metrics.contains("heatbill_http_requests_total{class=\"4xx\"} 2"),
        "{metrics}"
    );
    let (st, _) = s.call(reqwest::Method::GET, "/docs", None, None).await;
    assert_eq!(st, 200);
    let _ = c.digests;
    s.stop().await;
}
both!(full_story);

/// A JavaScript plugin through the API: refused without a grant (the message names its digest
/// and the grant), uploaded once the operator grants its digest the `interpreted` profile, its
/// case file run at upload, and billing in the nightly run as the Rust rule would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_is_uploaded_once_granted_and_bills_a_run() {
    use sha2::Digest as _;
    let db = TestDb::postgres().await;
    let js = crate::support::kit_component("js", "low-income-subsidy");
    let digest = hex::encode(sha2::Sha256::digest(&js));

    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "jsheat").await;
    let (st, v) = s.upload(&c.slug, &c.integrator, js.clone()).await;
    error(st, &v, 422, "over the limit of 8388608 bytes");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&digest) && message.contains("[engine.grants]"),
        "{v:#}"
    );
    s.stop().await;

    // The operator grants this component's digest the profile, and restarts the host.
    let engine = heatbill_engine::Engine::new(heatbill_engine::EngineConfig {
        grants: [(digest.clone(), heatbill_engine::INTERPRETED.to_string())].into(),
        ..crate::engine::test_config()
    })
    .unwrap();
    let s = Server::start_with_engine(&db, engine).await;
    let (st, v) = s.upload(&c.slug, &c.integrator, js.clone()).await;
    ok(st, &v, 201);
    assert_eq!(v["name"], "low-income-subsidy");
    assert_eq!(v["digest"], digest.as_str());
    let (st, v) = s
        .raw(
            reqwest::Method::PUT,
            &format!("/v1/companies/{}/plugins/{digest}/cases/w5.toml", c.slug),
            &c.integrator,
            "application/toml",
            case_file("w5.toml").into_bytes(),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["passed"], true, "{v:#}");

    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-10-02");
    chain["entries"].as_array_mut().unwrap().insert(
        2,
        json!({"plugin": "low-income-subsidy",
               "params": {"share": "1.00", "area_cap": "45", "area_basis": "usable"}}),
    );
    let (st, v) = s
        .post(
            &format!("/v1/companies/{}/chains", c.slug),
            &c.integrator,
            chain,
        )
        .await;
    ok(st, &v, 201);
    let customers = CUSTOMERS.replace(
        "W2,residential,active,false,80,64.00",
        "W2,residential,active,true,80,64.00",
    );
    let (st, v) = import(&s, &c, "customers", &customers).await;
    ok(st, &v, 200);
    let last = run_to_end(&s, &c, "2025-10-20").await;
    assert_eq!(last["written"], 4, "{last:#}");

    // W2 is low-income: 45 of its 64 m² are covered, as W5 bills it with the Rust rule.
    let (st, v) = s
        .get(
            &format!(
                "/v1/companies/{}/customers/W2/bills?from=2025-10-20&to=2025-10-20",
                c.slug
            ),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let lines = v[0]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["category"] == "subsidy"),
        "no subsidy line: {v:#}"
    );
    // Day 1 of 183: 64 m² × 38.32 = 2452.48 a season, 13.40 today; the subsidy's season is
    // 45 m² × 38.32 = 1724.40, 9.42 today, off the customer's part and onto the government's.
    assert!(
        lines
            .iter()
            .any(|l| l["amount"] == "-9.42" && l["payer"] == "customer"),
        "{v:#}"
    );
    assert_eq!(v[0]["total"], "13.40", "{v:#}");
    s.stop().await;
}

/// Another company's token, or none, reaches nothing of a company; roles hold.
async fn tenant_isolation(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let a = company(&s, "harbin").await;
    let b = company(&s, "daqing").await;
    let (st, v) = import(&s, &a, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = trigger(&s, &a, "2025-10-20", "a-1").await;
    ok(st, &v, 202);
    let run = v["id"].as_i64().unwrap();
    follow(&s, &a, run).await;
    let digest = &a.digests[0].1;
    use reqwest::Method as M;
    let endpoints: Vec<(M, String, Option<Value>)> = vec![
        (M::GET, "/v1/companies/harbin".into(), None),
        (
            M::PUT,
            "/v1/companies/harbin/schedule".into(),
            Some(json!({"daily_run_at": "02:00"})),
        ),
        (M::GET, "/v1/companies/harbin/plugins".into(), None),
        (
            M::GET,
            format!("/v1/companies/harbin/plugins/{digest}"),
            None,
        ),
        (
            M::GET,
            format!("/v1/companies/harbin/plugins/{digest}/cases"),
            None,
        ),
        (M::POST, "/v1/companies/harbin/plugins".into(), None),
        (M::GET, "/v1/companies/harbin/chains".into(), None),
        (
            M::POST,
            "/v1/companies/harbin/chains".into(),
            Some(serde_json::from_str(CHAIN).unwrap()),
        ),
        (
            M::POST,
            "/v1/companies/harbin/chains/2025-10-01/rollback".into(),
            None,
        ),
        (
            M::POST,
            "/v1/companies/harbin/imports/customers".into(),
            None,
        ),
        (
            M::POST,
            "/v1/companies/harbin/runs".into(),
            Some(json!({"date": "2025-10-21"})),
        ),
        (M::GET, "/v1/companies/harbin/runs".into(), None),
        (M::GET, format!("/v1/companies/harbin/runs/{run}"), None),
        (
            M::GET,
            format!("/v1/companies/harbin/runs/{run}/events"),
            None,
        ),
        (
            M::POST,
            format!("/v1/companies/harbin/runs/{run}/cancel"),
            None,
        ),
        (
            M::GET,
            format!("/v1/companies/harbin/runs/{run}/bills"),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/bills?date=2025-10-20".into(),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/bills/export?date=2025-10-20".into(),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/customers/W1/bills?from=2025-10-20&to=2025-10-20".into(),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/customers/W1/bills/2025-10-20/history".into(),
            None,
        ),
        (
            M::POST,
            "/v1/companies/harbin/dry-run".into(),
            Some(json!({"customer": "W1", "date": "2025-10-20"})),
        ),
        (M::GET, "/v1/companies/harbin/arrears".into(), None),
        (M::GET, "/v1/companies/harbin/audit".into(), None),
    ];
    for (method, path, body) in &endpoints {
        // No token: 401.
        let (st, v) = s.call(method.clone(), path, None, body.clone()).await;
        error(st, &v, 401, "token");
        // A wrong token: 401.
        let (st, v) = s
            .call(method.clone(), path, Some("hb_0000"), body.clone())
            .await;
        error(st, &v, 401, "unknown token");
        // Every token of the other company: 404, as for a company that does not exist.
        for t in [&b.integrator, &b.staff, &b.reader] {
            let mut r = s
                .req(method.clone(), path, Some(t))
                .header("idempotency-key", "b-1");
            if let Some(b) = body {
                r = r.json(b);
            }
            let resp = r.send().await.unwrap();
            let st = resp.status();
            let v: Value = resp.json().await.unwrap();
            error(st, &v, 404, "no company \"harbin\"");
        }
    }
    // The other company's list shows only itself.
    let (_, v) = s.get("/v1/companies", &b.reader).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["slug"], "daqing");
    // Roles: a reader cannot import, run or upload; staff cannot upload; integrators cannot
    // import; nobody but the operator manages tokens or companies.
    let (st, v) = import(
        &s,
        &Company {
            staff: a.reader.clone(),
            ..company_ref(&a)
        },
        "customers",
        CUSTOMERS,
    )
    .await;
    error(st, &v, 403, "staff token");
    let (st, v) = s.upload("harbin", &a.staff, component("season")).await;
    error(st, &v, 403, "integrator token");
    let (st, v) = import(
        &s,
        &Company {
            staff: a.integrator.clone(),
            ..company_ref(&a)
        },
        "customers",
        CUSTOMERS,
    )
    .await;
    error(st, &v, 403, "staff token");
    let (st, v) = s
        .post(
            "/v1/companies/harbin/tokens",
            &a.staff,
            json!({"role": "staff", "label": "x"}),
        )
        .await;
    error(st, &v, 403, "operator");
    let (st, v) = s
        .post(
            "/v1/companies",
            &a.integrator,
            json!({"slug": "x", "name": "x", "time_zone": "UTC"}),
        )
        .await;
    error(st, &v, 403, "operator");
    // A revoked token stops working at once.
    let (_, list) = s.get("/v1/companies/harbin/tokens", OPERATOR).await;
    let reader_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "read-only")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none()),
        "a listed token shows its secret"
    );
    let (st, _) = s
        .call(
            M::DELETE,
            &format!("/v1/companies/harbin/tokens/{reader_id}"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, v) = s.get("/v1/companies/harbin", &a.reader).await;
    error(st, &v, 401, "revoked");
    s.stop().await;
}
both!(tenant_isolation);

fn company_ref(c: &Company) -> Company {
    Company {
        slug: c.slug.clone(),
        integrator: c.integrator.clone(),
        staff: c.staff.clone(),
        reader: c.reader.clone(),
        digests: c.digests.clone(),
    }
}

/// Bad input gets a 4xx that says what to fix, and changes nothing.
async fn bad_input(db: TestDb) {
    let s = Server::start(&db, |st| {
        st.api.max_upload_bytes = 4 * 1024 * 1024;
        st.api.idempotency_hours = 0;
    })
    .await;
    use reqwest::Method as M;
    // Malformed and unknown JSON.
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies",
            OPERATOR,
            "application/json",
            b"{\"slug\": ".to_vec(),
        )
        .await;
    error(st, &v, 400, "not valid");
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": "a", "name": "A", "time_zone": "UTC", "colour": "red"}),
        )
        .await;
    error(st, &v, 400, "unknown field `colour`");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies",
            OPERATOR,
            "text/plain",
            b"slug=a".to_vec(),
        )
        .await;
    error(st, &v, 415, "application/json");
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": "Bad Slug", "name": "A", "time_zone": "UTC"}),
        )
        .await;
    error(st, &v, 422, "slug");
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": "a", "name": "A", "time_zone": "Mars/Olympus"}),
        )
        .await;
    error(st, &v, 422, "time-zone database");
    let big = json!({"slug": "a", "name": "x".repeat(1024 * 1024), "time_zone": "UTC"});
    let (st, v) = s.post("/v1/companies", OPERATOR, big).await;
    error(st, &v, 413, "larger");
    let (_, v) = s.get("/v1/companies", OPERATOR).await;
    assert!(
        v.as_array().unwrap().is_empty(),
        "a refused company was created: {v:#}"
    );

    let c = company(&s, "harbin").await;
    // Not a component; too large.
    let (st, v) = s
        .upload("harbin", &c.integrator, b"\0asm not really".to_vec())
        .await;
    error(st, &v, 422, "not a plugin heatbill can run");
    let (st, v) = s
        .upload("harbin", &c.integrator, vec![0u8; 4 * 1024 * 1024 + 100])
        .await;
    error(st, &v, 413, "larger than");
    // A plugin built for the frozen contract 0.1.0 is accepted and recorded as such (the host
    // serves both versions); one for 0.3.0 is refused naming the versions served.
    let (st, v) = s
        .upload("harbin", &c.integrator, component("legacy-surcharge"))
        .await;
    ok(st, &v, 201);
    assert_eq!(v["contract_version"], "0.1.0", "{v:#}");
    // Its 0.1.0 parameter list, turned into a schema of the same keys and types.
    assert_eq!(
        v["describe"]["params_schema"]["properties"]["rate"]["format"], "decimal",
        "{v:#}"
    );
    let (st, v) = s
        .upload("harbin", &c.integrator, component("future-contract"))
        .await;
    error(st, &v, 422, "versions 0.2.0, 0.1.0");
    // A case file whose cases fail: refused with its report, nothing stored.
    let season = &c.digests[0].1;
    let wrong = case_file("w1.toml").replace("amount = \"12.56\"", "amount = \"12.57\"");
    let (st, v) = s
        .raw(
            M::PUT,
            &format!("/v1/companies/harbin/plugins/{season}/cases/wrong.toml"),
            &c.integrator,
            "application/toml",
            wrong.into_bytes(),
        )
        .await;
    error(st, &v, 422, "do not pass");
    assert!(v["error"]["details"]["report"]["cases"].is_array(), "{v:#}");
    // The activation gate bills a case file as `plugin test` does, among generated customers of
    // every class: a plugin whose bill rises when a call mixes classes passes a one-class case
    // file billed alone, and is refused here, naming the batch dependence.
    let (st, v) = s
        .upload("harbin", &c.integrator, component("hostile"))
        .await;
    assert!(st.is_success(), "{v:#}");
    let hostile = v["digest"].as_str().unwrap().to_string();
    let one_class = r#"
[[chain]]
plugin = "hostile"
params = { mode = "mixed-class" }
[[case]]
name = "a"
customer = { date = "2025-11-15", building_area = "61" }
expect.lines = [{ code = "hostile", amount = "1.00" }]
[[case]]
name = "b"
customer = { date = "2025-11-16", building_area = "75" }
expect.lines = [{ code = "hostile", amount = "1.00" }]
"#;
    let (st, v) = s
        .raw(
            M::PUT,
            &format!("/v1/companies/harbin/plugins/{hostile}/cases/one-class.toml"),
            &c.integrator,
            "application/toml",
            one_class.as_bytes().to_vec(),
        )
        .await;
    error(st, &v, 422, "do not pass");
    let report = v["error"]["details"].to_string();
    assert!(
        report.contains("depends on the other customer-days of its batch")
            && report.contains("billed among generated customer-days"),
        "{v:#}"
    );
    let (_, v) = s
        .get(
            &format!("/v1/companies/harbin/plugins/{season}/cases"),
            &c.reader,
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "only w1.toml: {v:#}");
    let (st, v) = s
        .raw(
            M::PUT,
            &format!("/v1/companies/harbin/plugins/{season}/cases/bad.toml"),
            &c.integrator,
            "application/toml",
            b"[[chain]\n".to_vec(),
        )
        .await;
    error(st, &v, 422, "not valid");
    // A chain naming a plugin the company does not have, or with bad parameters.
    let (st, v) = s
        .post(
            "/v1/companies/harbin/chains",
            &c.integrator,
            json!({"effective_from": "2025-10-01", "entries": [{"plugin": "nope"}]}),
        )
        .await;
    error(st, &v, 422, "no plugin \"nope\"");
    let (st, v) = s
        .post(
            "/v1/companies/harbin/chains",
            &c.integrator,
            json!({"effective_from": "2025-12-01", "entries": [
        {"plugin": "season", "params": {"start": "2025-10-20", "end": "2026-04-20"}},
        {"plugin": "area-tariff", "params": {"prices": "cheap"}}]}),
        )
        .await;
    error(st, &v, 422, "");
    let (_, v) = s.get("/v1/companies/harbin/chains", &c.reader).await;
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "a refused chain was stored: {v:#}"
    );

    // A CSV with bad rows at the start, in the middle and at the end: nothing imported.
    let mut rows =
        vec!["customer_id,class,status,low_income,building_area,usable_area".to_string()];
    for i in 0..50 {
        rows.push(format!("C{i:03},residential,active,false,75,60"));
    }
    rows[1] = "C000,residential,active,maybe,75,60".into();
    rows[25] = "C024,palace,active,false,75,60".into();
    rows[50] = "C049,residential,active,false,-75,60".into();
    let (st, v) = import(&s, &c, "customers", &(rows.join("\n") + "\n")).await;
    error(st, &v, 422, "nothing was imported");
    let errors: Vec<u64> = v["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(errors, [2, 26, 51], "{v:#}");
    assert!(
        v["error"]["details"]["errors"][0]["column"]
            .as_str()
            .unwrap()
            .contains("low_income")
    );
    let (st, v) = s
        .post(
            "/v1/companies/harbin/dry-run",
            &c.staff,
            json!({"customer": "C001", "date": "2025-10-20"}),
        )
        .await;
    error(st, &v, 404, "no data");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/xml",
            b"<a/>".to_vec(),
        )
        .await;
    error(st, &v, 415, "text/csv");
    // JSON: a field the first record lacks; a bad value (row 3: the second object); not JSON.
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/json",
            br#"[{"customer_id": "J1", "class": "residential", "building_area": 1},
             {"customer_id": "J2", "class": "residential", "building_area": 1, "colour": "red"}]"#
                .to_vec(),
        )
        .await;
    error(st, &v, 422, "the first record lacks");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/json",
            br#"[{"customer_id": "J1", "class": "residential", "building_area": 1},
             {"customer_id": "J2", "class": "palace", "building_area": 1}]"#
                .to_vec(),
        )
        .await;
    error(st, &v, 422, "nothing was imported");
    assert_eq!(v["error"]["details"]["errors"][0]["row"], 3, "{v:#}");
    let (st, v) = s.raw(M::POST, "/v1/companies/harbin/imports/customers", &c.staff, "application/x-ndjson",
        b"{\"customer_id\": \"J1\", \"class\": \"residential\", \"building_area\": 1}\n{\"customer_id\": \"J2\",\n".to_vec()).await;
    error(st, &v, 422, "line 2: not JSON");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/json",
            b"{\"a\": 1}".to_vec(),
        )
        .await;
    error(st, &v, 422, "array");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/invoices",
            &c.staff,
            "text/csv",
            b"a\n".to_vec(),
        )
        .await;
    error(st, &v, 404, "no import kind");

    // Runs: no key; a date without a chain; an expired key.
    let (st, v) = s
        .post(
            "/v1/companies/harbin/runs",
            &c.staff,
            json!({"date": "2025-10-20"}),
        )
        .await;
    error(st, &v, 400, "Idempotency-Key");
    let (st, v) = trigger(&s, &c, "2025-09-01", "k-early").await;
    error(st, &v, 422, "no rule chain is in force");
    let (st, v) = trigger(&s, &c, "2025-10-20", "k-1").await;
    ok(st, &v, 202);
    follow(&s, &c, v["id"].as_i64().unwrap()).await;
    let (st, v) = trigger(&s, &c, "2025-10-22", "k-gap").await;
    error(st, &v, 422, "has not been billed");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, v) = trigger(&s, &c, "2025-10-20", "k-1").await;
    error(st, &v, 422, "expired");
    // Cancelling a finished run.
    let (_, runs) = s.get("/v1/companies/harbin/runs", &c.reader).await;
    let id = runs[0]["id"].as_i64().unwrap();
    let (st, v) = s
        .post(
            &format!("/v1/companies/harbin/runs/{id}/cancel"),
            &c.staff,
            json!({}),
        )
        .await;
    error(st, &v, 409, "completed already");
    // Unknown things.
    let (st, v) = s.get("/v1/companies/harbin/runs/999999", &c.reader).await;
    error(st, &v, 404, "no run 999999");
    let (st, v) = s.get("/v1/nothing", &c.reader).await;
    error(st, &v, 404, "no such endpoint");
    let (st, v) = s
        .post(
            "/v1/companies/harbin/chains/2031-01-01/rollback",
            &c.integrator,
            json!({}),
        )
        .await;
    error(st, &v, 404, "no chain version");
    s.stop().await;
}
both!(bad_input);

/// The scheduler starts last night's run at the company's local time, and catches up the
/// nights missed while no host ran, one date after the other.
async fn scheduler_catches_up(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-10-20").await;
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            Some(&c.staff),
            Some(json!({"daily_run_at": "02:30"})),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["daily_run_at"], "02:30");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            Some(&c.staff),
            Some(json!({"daily_run_at": "25:00"})),
        )
        .await;
    error(st, &v, 422, "HH:MM");
    // 2025-10-23 at 02:00 in Harbin: the night of the 22nd is not due yet; 21 is missed.
    let tz: chrono_tz::Tz = "Asia/Harbin".parse().unwrap();
    let at = |h: u32, m: u32| {
        tz.with_ymd_and_hms(2025, 10, 23, h, m, 0)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    assert_eq!(
        api::ops::due_date(
            at(2, 0),
            tz,
            chrono::NaiveTime::from_hms_opt(2, 30, 0).unwrap()
        ),
        NaiveDate::from_ymd_opt(2025, 10, 21).unwrap()
    );
    let billed = |app: App| async move {
        let company = app.services.store.company("harbin").await.unwrap();
        app.services
            .store
            .latest_billed_date(company.id)
            .await
            .unwrap()
            .unwrap()
            .to_string()
    };
    for _ in 0..100 {
        api::ops::schedule_once(&s.app, at(2, 0)).await.unwrap();
        if billed(s.app.clone()).await == "2025-10-21" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(billed(s.app.clone()).await, "2025-10-21");
    // Past 02:30 the night of the 22nd is due too.
    for _ in 0..100 {
        api::ops::schedule_once(&s.app, at(3, 0)).await.unwrap();
        if billed(s.app.clone()).await == "2025-10-22" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(billed(s.app.clone()).await, "2025-10-22");
    // Nothing more is due: another pass starts nothing.
    let before = s
        .app
        .metrics
        .scheduled
        .load(std::sync::atomic::Ordering::Relaxed);
    api::ops::schedule_once(&s.app, at(3, 0)).await.unwrap();
    assert_eq!(
        s.app
            .metrics
            .scheduled
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    assert_eq!(before, 2);
    s.stop().await;
}
both!(scheduler_catches_up);

/// Two hosts of one deployment (one PostgreSQL, one Redis): a chain activated on one bills on
/// the other at once, without a restart; exactly one of them leads the scheduler, and the
/// nights it starts are billed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_share_chains_and_one_leads_the_scheduler() {
    use heatbill_runtime::cache::redis::RedisCache;
    use heatbill_runtime::coord::redis::RedisCoord;
    let db = TestDb::postgres().await;
    let redis = crate::coord::redis().await;
    let services = || {
        heatbill_runtime::services::Services::with(
            db.store.clone(),
            Arc::new(RedisCoord::new(redis.clone())),
            Arc::new(RedisCache::new(redis.clone())),
            &Default::default(),
        )
    };
    let tune = |st: &mut Settings| {
        st.api.scheduler = true;
        // Every night since the test data's first is due: the leader keeps starting them.
        st.api.catch_up_days = 100_000;
    };
    let a = Server::start_with(services(), tune).await;
    let b = Server::start_with(services(), tune).await;
    let c = company(&a, "harbin").await;
    let (st, v) = import(&a, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    run_to_end(&a, &c, "2025-10-20").await;

    // B reads the chain in force (through the shared cache), then A activates a new price
    // from the 21st: B's next dry run bills it.
    let body = json!({"customer": "W1", "date": "2025-10-21"});
    let (st, before) = b
        .post("/v1/companies/harbin/dry-run", &c.staff, body.clone())
        .await;
    ok(st, &before, 200);
    assert_eq!(
        before["bill"]["lines"][0]["unit_price"], "38.32",
        "{before:#}"
    );
    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-10-21");
    chain["entries"][1]["params"]["prices"]["residential"] = json!("40.00");
    let (st, v) = a
        .post("/v1/companies/harbin/chains", &c.integrator, chain)
        .await;
    ok(st, &v, 201);
    let (st, after) = b
        .post("/v1/companies/harbin/dry-run", &c.staff, body.clone())
        .await;
    ok(st, &after, 200);
    assert_eq!(
        after["bill"]["lines"][0]["unit_price"], "40.00",
        "{after:#}"
    );

    // The schedule: both hosts run the scheduler; one leads and starts the nights.
    let (st, v) = b
        .call(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            Some(&c.staff),
            Some(json!({"daily_run_at": "00:00"})),
        )
        .await;
    ok(st, &v, 200);
    let company = db.store.company("harbin").await.unwrap();
    let mut billed = None;
    for _ in 0..300 {
        billed = db.store.latest_billed_date(company.id).await.unwrap();
        if billed >= NaiveDate::from_ymd_opt(2025, 10, 22) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        billed >= NaiveDate::from_ymd_opt(2025, 10, 22),
        "the scheduler billed up to {billed:?}"
    );
    let scheduled = |s: &Server| {
        s.app
            .metrics
            .scheduled
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (sa, sb) = (scheduled(&a), scheduled(&b));
    assert!(
        (sa > 0) != (sb > 0),
        "exactly one host leads the scheduler: A started {sa} runs, B {sb}"
    );
    a.stop().await;
    b.stop().await;
    // One completed run per date, whichever host worked on it.
    for date in ["2025-10-21", "2025-10-22"] {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let runs = db.store.runs(company.id, d).await.unwrap();
        let completed = runs.iter().filter(|r| r.state == "completed").count();
        assert_eq!(completed, 1, "{date}: {runs:?}");
    }
}

/// SIGTERM mid-run with no grace: the server stops, the shards in flight are dropped (each
/// commits whole or not at all), and a run requested again on another server resumes the same
/// run: every customer billed once.
async fn shutdown_mid_run_hands_back(db: TestDb) {
    let tune = |st: &mut Settings| {
        st.api.shutdown_grace_s = 0;
        st.run.shard_size = 2;
        st.run.lease_s = 1;
        st.run.workers = Some(1);
    };
    let a = Server::start(&db, tune).await;
    let c = company(&a, "harbin").await;
    let mut csv = String::from("customer_id,class,building_area,usable_area\n");
    for i in 0..1500 {
        csv.push_str(&format!("C{i:05},residential,75,60.00\n"));
    }
    let (st, v) = import(&a, &c, "customers", &csv).await;
    ok(st, &v, 200);
    let (st, v) = trigger(&a, &c, "2025-10-20", "first").await;
    ok(st, &v, 202);
    let id = v["id"].as_i64().unwrap();
    // Stop as soon as some shards are written.
    for _ in 0..400 {
        let (_, v) = a
            .get(&format!("/v1/companies/harbin/runs/{id}"), &c.reader)
            .await;
        if v["shards_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.stop().await;
    let run = db.store.run(id).await.unwrap();
    let totals = db.store.run_totals(id, 0).await.unwrap();
    assert_eq!(
        run.state, "running",
        "the run finished before the stop: make it longer"
    );
    assert!(
        totals.shards_done > 0 && totals.shards_done < totals.shard_count,
        "{totals:?}"
    );

    // Another server: the same date again resumes the same run.
    let b = Server::start(&db, tune).await;
    let (st, v) = trigger(&b, &c, "2025-10-20", "second").await;
    ok(st, &v, 202);
    assert_eq!(
        v["id"].as_i64(),
        Some(id),
        "the unfinished run is resumed, not restarted"
    );
    let (_, last) = follow(&b, &c, id).await;
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(last["customers"], 1500, "{last:#}");
    assert_eq!(
        last["written"], 1500,
        "every customer billed once: {last:#}"
    );
    let company = db.store.company("harbin").await.unwrap();
    let bills = db
        .store
        .bills(company.id, NaiveDate::from_ymd_opt(2025, 10, 20).unwrap())
        .await
        .unwrap();
    assert_eq!(bills.len(), 1500);
    assert!(bills.iter().all(|b| b.row.version == 1));
    b.stop().await;
}
both!(shutdown_mid_run_hands_back);

/// Progress streams are bounded: past `api.max_event_streams`, 503 and a way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_are_bounded() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| st.api.max_event_streams = 0).await;
    let c = company(&s, "harbin").await;
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = trigger(&s, &c, "2025-10-20", "k").await;
    ok(st, &v, 202);
    let id = v["id"].as_i64().unwrap();
    let (st, v) = s
        .get(&format!("/v1/companies/harbin/runs/{id}/events"), &c.reader)
        .await;
    error(st, &v, 503, "poll GET");
    assert_eq!(
        s.app.event_streams.open_now(0).0,
        0,
        "a refused stream is not counted"
    );
    s.stop().await;
}

// ---- Hostile tenants: bounded work, bounded memory, fair slots ----

/// The id of a company, from the store.
async fn company_id(db: &TestDb, slug: &str) -> i32 {
    db.store.company(slug).await.unwrap().id
}

/// A schema pattern whose checks take seconds (`(?:a|b)*a(?:a|b){5000}c`: 11.7 s against a
/// 100 KB parameter, the API frozen meanwhile) is refused at upload, naming the limit; a long
/// parameter string is refused by its length, before any schema sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_bomb_is_refused_at_upload_and_a_long_parameter_by_its_length() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let (st, v) = s
        .upload("harbin", &c.integrator, component("regex-schema"))
        .await;
    error(st, &v, 422, "(limits.max_params_pattern_bytes)");
    let (_, v) = s.get("/v1/companies/harbin/plugins", &c.reader).await;
    assert_eq!(v.as_array().unwrap().len(), 3, "nothing was stored: {v:#}");

    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-12-01");
    chain["entries"][1]["params"]["area_basis"] = json!("u".repeat(8_000));
    let (st, v) = s
        .post("/v1/companies/harbin/chains", &c.integrator, chain.clone())
        .await;
    error(
        st,
        &v,
        422,
        "is 8000 bytes; the limit is 4096 (limits.max_params_string_bytes)",
    );
    let (st, v) = s
        .post(
            "/v1/companies/harbin/dry-run",
            &c.staff,
            json!({"customer": "W2", "date": "2025-10-22", "chain": chain["entries"]}),
        )
        .await;
    error(st, &v, 422, "(limits.max_params_string_bytes)");
    let (_, v) = s.get("/v1/companies/harbin/chains", &c.reader).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "nothing changed: {v:#}");
    s.stop().await;
}

/// The review's finding: refused uploads grew the compile cache (10 refused 5.3 MB uploads:
/// the server's RSS 640 → 812 MB, the cache directory +165 MB). Uploads compiled and then
/// refused (no rules world) leave the cache as it was, in memory and on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_leave_nothing_in_the_compile_cache() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = heatbill_engine::Engine::new(heatbill_engine::EngineConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..crate::engine::test_config()
    })
    .unwrap();
    let s = Server::start_with_engine(&db, engine.clone()).await;
    let c = company(&s, "harbin").await;
    let held = |e: &heatbill_engine::Engine| {
        let s = e.cache_stats();
        (
            s.memory_entries,
            s.memory_bytes,
            s.disk_entries,
            s.disk_bytes,
        )
    };
    let before = held(&engine);
    let compiled = engine.cache_stats().compiled;
    assert_eq!(
        (before.0, before.2),
        (3, 3),
        "the three plugins company() uploaded"
    );
    for i in 0..10 {
        let (st, v) = s
            .upload(
                "harbin",
                &c.integrator,
                heatbill_fixtures::many_functions(300 + i),
            )
            .await;
        error(st, &v, 422, "not a heatbill rules plugin");
    }
    assert_eq!(
        engine.cache_stats().compiled,
        compiled + 10,
        "each was compiled"
    );
    assert_eq!(held(&engine), before, "{:?}", engine.cache_stats());
    s.stop().await;
}

/// One company cannot hold every engine slot: its requests queue for its own share
/// (`api.engine_slots_per_company`, half the slots by default), and another company's dry run
/// is served from the slots it cannot take. The review's 8 uploads of a compile-time bomb took
/// all 4 slots and delayed another company's dry run by 29.1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_company_cannot_take_every_engine_slot() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.engine_slots = 4;
        st.api.queue_wait_ms = 120_000;
    })
    .await;
    let a = company(&s, "harbin").await;
    let b = company(&s, "qiqihar").await;
    for c in [&a, &b] {
        let (st, v) = import(&s, c, "customers", CUSTOMERS).await;
        ok(st, &v, 200);
    }
    assert_eq!(s.app.settings.api.company_engine_slots(), 2);
    let a_id = company_id(&db, "harbin").await;
    // Company A's requests hold its whole share, as its slow uploads did.
    let held = vec![
        s.app.engine_slot(a_id).await.unwrap(),
        s.app.engine_slot(a_id).await.unwrap(),
    ];
    assert_eq!(s.app.engine_slots.available_permits(), 2);
    // A's next request queues for A's share...
    let dry_run = |c: &Company| {
        s.req(
            reqwest::Method::POST,
            &format!("/v1/companies/{}/dry-run", c.slug),
            Some(&c.staff),
        )
        .json(&json!({"customer": "W2", "date": "2025-10-22"}))
        .send()
    };
    let queued = tokio::spawn(dry_run(&a));
    let queue = &s.app.engine_queue;
    for _ in 0..6_000 {
        if queue.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        queue.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "company A's third request never reached the engine-slot queue"
    );
    // ...while B's is served at once, from the slots A's requests cannot take.
    let resp = tokio::time::timeout(Duration::from_secs(60), dry_run(&b))
        .await
        .expect("B's dry run was not answered while A held its share")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !queued.is_finished(),
        "A's request did not wait for A's share"
    );
    assert_eq!(queue.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        s.app.engine_slots.available_permits(),
        2,
        "A's waiting request holds no slot of the server's"
    );
    // Once A's share is free, A's request is served.
    drop(held);
    let resp = tokio::time::timeout(Duration::from_secs(60), queued)
        .await
        .expect("A's request was not served once its share was free")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.app.engine_slots.available_permits(), 4);
    s.stop().await;
}

/// A request that waits past `api.queue_wait_ms` for its company's share is answered 503 with
/// `Retry-After` and a message naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_over_its_share_is_told_to_retry() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.engine_slots = 2;
        st.api.queue_wait_ms = 200;
    })
    .await;
    let c = company(&s, "harbin").await;
    let id = company_id(&db, "harbin").await;
    let _held = s.app.engine_slot(id).await.unwrap();
    let resp = s
        .req(
            reqwest::Method::POST,
            "/v1/companies/harbin/dry-run",
            Some(&c.staff),
        )
        .json(&json!({"customer": "W2", "date": "2025-10-22"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let st = resp.status();
    let v: Value = resp.json().await.unwrap();
    error(st, &v, 503, "(api.engine_slots_per_company)");
    assert_eq!(v["error"]["code"], "unavailable");
    s.stop().await;
}

/// Writes the head of a plugin upload of `length` bytes and `sent` bytes of its body on a raw
/// connection, and leaves the rest unsent: an upload in flight.
async fn start_upload(
    s: &Server,
    token: &str,
    length: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = s.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/companies/harbin/plugins HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer \
         {token}\r\ncontent-type: application/wasm\r\ncontent-length: {length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![0u8; sent]).await.unwrap();
    conn
}

/// Upload bodies are admitted before they are read: an upload that does not fit among the
/// bytes in flight (`api.max_upload_bytes_in_flight`) waits with its body unread, then gets
/// 503 with `Retry-After`; the one in flight is answered as usual, and the room is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_waits_for_room_among_the_bytes_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.max_upload_bytes_in_flight = 1 << 20;
        st.api.queue_wait_ms = 300;
    })
    .await;
    let c = company(&s, "harbin").await;
    // An upload of 1 MiB, half sent: it holds the whole budget.
    let mut first = start_upload(&s, &c.integrator, 1 << 20, 1 << 19).await;
    for _ in 0..6_000 {
        if s.app.upload_bytes.available_permits() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.app.upload_bytes.available_permits(),
        0,
        "the first upload was never admitted"
    );
    // Another upload waits, then is told to come back.
    let resp = s
        .req(
            reqwest::Method::POST,
            "/v1/companies/harbin/plugins",
            Some(&c.integrator),
        )
        .header("content-type", "application/wasm")
        .body(component("season"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let st = resp.status();
    let v: Value = resp.json().await.unwrap();
    error(st, &v, 503, "(api.max_upload_bytes_in_flight)");
    // The first upload completes and is answered (it is not a component).
    first.write_all(&vec![0u8; 1 << 19]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("not a plugin heatbill can run") {
            let n = first.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the first upload was not answered");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 422"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(first);
    for _ in 0..6_000 {
        if s.app.upload_bytes.available_permits() == 1 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.app.upload_bytes.available_permits(), 1 << 20);
    // With the room back, the second upload goes through.
    let (st, v) = s.upload("harbin", &c.integrator, component("season")).await;
    ok(st, &v, 200);
    // A declared length over the cap is refused before anything is read.
    let (st, v) = s
        .upload("harbin", &c.integrator, vec![0u8; (32 << 20) + (128 << 10)])
        .await;
    error(st, &v, 413, "(api.max_upload_bytes)");
    s.stop().await;
}

/// Progress streams are capped per company as well as in all: one company holding its share
/// of streams gets 503 for the next, another company still gets its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_are_bounded_per_company() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.max_event_streams = 10;
        st.api.max_event_streams_per_company = 2;
    })
    .await;
    let a = company(&s, "harbin").await;
    let b = company(&s, "qiqihar").await;
    let mut ids = Vec::new();
    for c in [&a, &b] {
        let (st, v) = import(&s, c, "customers", CUSTOMERS).await;
        ok(st, &v, 200);
        let (st, v) = trigger(&s, c, "2025-10-20", "k").await;
        ok(st, &v, 202);
        ids.push(v["id"].as_i64().unwrap());
    }
    let a_id = company_id(&db, "harbin").await;
    // Company A's read-only token holds its two streams.
    let held: Vec<_> = (0..2)
        .map(|_| s.app.event_streams.open(a_id, 10, 2).unwrap())
        .collect();
    let (st, v) = s
        .get(
            &format!("/v1/companies/harbin/runs/{}/events", ids[0]),
            &a.reader,
        )
        .await;
    error(st, &v, 503, "(api.max_event_streams_per_company)");
    let resp = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/companies/qiqihar/runs/{}/events", ids[1]),
            Some(&b.reader),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "another company's stream");
    drop(resp);
    assert_eq!(s.app.event_streams.open_now(a_id).1, 2);
    drop(held);
    assert_eq!(s.app.event_streams.open_now(a_id).1, 0);
    s.stop().await;
}

/// Path and query errors, methods an endpoint does not take, and bodies over the cap answer
/// the one JSON error shape (axum's own answers are plain text or empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_query_and_method_errors_answer_the_json_error_shape() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let (st, v) = s
        .call(
            reqwest::Method::DELETE,
            "/v1/companies/harbin/tokens/21833925505062113280",
            Some(OPERATOR),
            None,
        )
        .await;
    error(st, &v, 400, "21833925505062113280");
    assert_eq!(v["error"]["code"], "invalid-request");
    let (st, v) = s
        .get("/v1/companies/harbin/bills?date=yesterday", &c.reader)
        .await;
    error(st, &v, 400, "query");
    let (st, v) = s
        .get("/v1/companies/harbin/runs?limit=-1&colour=red", &c.reader)
        .await;
    error(st, &v, 400, "query");
    let (st, v) = s
        .get("/v1/companies/harbin/runs/1%1b[31mx", &c.reader)
        .await;
    error(st, &v, 400, "");
    assert!(
        !v["error"]["message"].as_str().unwrap().contains('\x1b'),
        "{v:#}"
    );
    let resp = s
        .req(reqwest::Method::PATCH, "/v1/companies", Some(OPERATOR))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("allow"), "{:?}", resp.headers());
    let st = resp.status();
    let v: Value = resp.json().await.unwrap();
    error(st, &v, 405, "does not take PATCH");
    assert_eq!(v["error"]["code"], "method-not-allowed");
    let (st, v) = s
        .raw(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            OPERATOR,
            "application/json",
            vec![b' '; 2 << 20],
        )
        .await;
    error(st, &v, 413, "");
    s.stop().await;
}

/// The environment variable that makes [`server_in_a_child_process`] serve: the `api`
/// settings, as JSON.
const CHILD_SERVER: &str = "HEATBILL_TEST_CHILD_SERVER";

/// Not a test of its own: with `HEATBILL_TEST_CHILD_SERVER` set, this test binary, started by
/// [`concurrent_uploads_hold_bounded_memory`], serves the API on a loopback port in a process
/// of its own (so that its memory is the server's alone), prints `listening <url>`, and serves
/// until its stdin closes. Without the variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_in_a_child_process() {
    let Ok(api) = std::env::var(CHILD_SERVER) else {
        return;
    };
    let api: heatbill_runtime::settings::ApiSettings = serde_json::from_str(&api).unwrap();
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| st.api = api).await;
    println!("listening {}", s.base);
    let _ = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    })
    .await;
    s.stop().await;
}

/// Reads a figure (kB) of `/proc/<pid>/status`, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse().ok())
        .unwrap();
    kb * 1024
}

/// The review's finding: upload bodies were read whole before waiting for an engine slot, so
/// 50 concurrent 33 MB uploads took the server to 1,730 MB. Now an upload is admitted (its
/// `Content-Length` among `api.max_upload_bytes_in_flight`) before its body is read: 16
/// concurrent 30 MB uploads against a 64 MiB budget raise the server's peak memory by about the
/// budget, not by the 480 MB sent. The server runs in a child process, whose peak resident
/// memory (VmHWM, reset through /proc/<pid>/clear_refs) is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_hold_bounded_memory() {
    use std::io::BufRead;
    const UPLOADS: usize = 16;
    const SIZE: usize = 30_000_000;
    const BUDGET: usize = 64 << 20;
    let api = heatbill_runtime::settings::ApiSettings {
        max_upload_bytes_in_flight: BUDGET,
        queue_wait_ms: 300_000,
        scheduler: false,
        ..Default::default()
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "api::server_in_a_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SERVER, serde_json::to_string(&api).unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // The test harness's "test … ... " may begin the line.
            if let Some((_, url)) = line.split_once("listening ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let base = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            panic!("the child server did not start within 120 s");
        }
    };
    let http = reqwest::Client::new();
    let (st, v): (StatusCode, Value) = {
        let r = http
            .post(format!("{base}/v1/companies"))
            .bearer_auth(OPERATOR)
            .json(&json!({"slug": "harbin", "name": "Harbin Heat", "time_zone": "Asia/Harbin"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    };
    ok(st, &v, 201);
    let r = http
        .post(format!("{base}/v1/companies/harbin/tokens"))
        .bearer_auth(OPERATOR)
        .json(&json!({"role": "integrator", "label": "uploads"}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Settle, then reset the peak to the resident memory now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = proc_status(pid, "VmRSS:");
    let body: &'static [u8] = Box::leak(vec![7u8; SIZE].into_boxed_slice());
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let r = http
                .post(format!("{base}/v1/companies/harbin/plugins"))
                .bearer_auth(&token)
                .header("content-type", "application/wasm")
                .body(body)
                .send();
            tokio::spawn(async move {
                let r = r.await.unwrap();
                (r.status(), r.text().await.unwrap())
            })
        })
        .collect();
    for u in uploads {
        let (st, text) = tokio::time::timeout(Duration::from_secs(300), u)
            .await
            .expect("an upload was not answered within 300 s")
            .unwrap();
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        assert!(text.contains("not a plugin heatbill can run"), "{text}");
    }
    let peak = proc_status(pid, "VmHWM:");
    drop(child.stdin.take());
    let stopped = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    let grew = peak.saturating_sub(before);
    eprintln!(
        "{UPLOADS} concurrent uploads of {SIZE} bytes, {BUDGET} bytes in flight: resident \
         {} MB before, peak {} MB (+{} MB)",
        before / 1_000_000,
        peak / 1_000_000,
        grew / 1_000_000
    );
    // The budget, and room for the allocator and the server's own buffers; without admission
    // the bodies alone are 480 MB.
    assert!(
        grew < (BUDGET as u64) * 2 + (40 << 20),
        "the server's peak grew by {grew} bytes for {UPLOADS} uploads of {SIZE} bytes"
    );
}
