//! The admin API through the real HTTP server (`heatbill_api::serve` on a loopback port),
//! on real databases, with the reference plugins uploaded as an integrator would.
//!
//! One module per area of the API (a failing test is found by its area), one story per test;
//! the helpers every area shares are here: a server on a loopback port, a company set up as
//! an integrator would, imports, run requests and their event streams.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone};
use heatbill_api::{self as api, App, AppState};
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

mod accounts;
mod console;
mod directory;
mod events;
mod limits;
mod notices;
mod scheduler;
mod statements;
mod story;
mod subsidy;
mod tenancy;
mod webhooks;
