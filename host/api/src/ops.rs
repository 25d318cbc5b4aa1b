//! Operations: `/healthz`, `/readyz`, `/metrics` (Prometheus text), the OpenAPI document and
//! its interactive page. (The nightly scheduler is the runtime's: `Runs::scheduler`.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{ApiDoc, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// The bearer security scheme of the document.
#[derive(Debug)]
pub struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is not.
    pub status: String,
    /// The database backend.
    pub database: String,
    /// The cache and coordination backend.
    pub coordination: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
}

/// The process is up (no dependency is checked).
#[utoipa::path(get, operation_id = "ops_healthz", path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz(State(app): State<App>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        database: format!("{:?}", app.services.store.backend()).to_lowercase(),
        coordination: app.services.coord.backend().into(),
        uptime_s: app.started.elapsed().as_secs(),
    })
}

/// The server can serve: the database answers, and Redis when configured.
#[utoipa::path(get, operation_id = "ops_readyz", path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(app): State<App>) -> (StatusCode, Json<Health>) {
    let mut problems = Vec::new();
    let db = tokio::time::timeout(Duration::from_secs(3), app.services.store.companies()).await;
    if !matches!(db, Ok(Ok(_))) {
        problems.push("the database does not answer");
    }
    let probe = tokio::time::timeout(Duration::from_secs(3), app.services.coord.progress(-1)).await;
    if !matches!(probe, Ok(Ok(_))) {
        problems.push("redis does not answer");
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if problems.is_empty() {
                "ok".into()
            } else {
                problems.join("; ")
            },
            database: format!("{:?}", app.services.store.backend()).to_lowercase(),
            coordination: app.services.coord.backend().into(),
            uptime_s: app.started.elapsed().as_secs(),
        }),
    )
}

/// The server's own counters for `/metrics` (the runs' are the run handle's,
/// [`heatbill_runtime::run::Counters`]).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered, by status class (1xx…5xx).
    pub requests: [AtomicU64; 5],
    /// Microseconds spent answering requests.
    pub request_micros: AtomicU64,
    /// Dry runs answered.
    pub dry_runs: AtomicU64,
    /// Microseconds of dry runs (a chain's plugins called once each, single-day path).
    pub dry_run_micros: AtomicU64,
}

/// Counts every answer by status class.
pub async fn count_requests(State(app): State<App>, req: Request, next: Next) -> Response {
    let t = std::time::Instant::now();
    let r = next.run(req).await;
    let class = (r.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    app.metrics.requests[class].fetch_add(1, Ordering::Relaxed);
    app.metrics
        .request_micros
        .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    r
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, operation_id = "ops_metrics", path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format")))]
pub async fn metrics(State(app): State<App>) -> Response {
    let m = &app.metrics;
    let r = app.runs.counters();
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, values: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    metric(
        "heatbill_http_requests_total",
        "counter",
        "HTTP requests answered, by status class.",
        &classes
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{{class=\"{c}\"}}"), g(&m.requests[i]) as f64))
            .collect::<Vec<_>>(),
    );
    metric(
        "heatbill_http_request_seconds_total",
        "counter",
        "Time spent answering HTTP requests.",
        &[(String::new(), g(&m.request_micros) as f64 / 1e6)],
    );
    metric(
        "heatbill_runs_total",
        "counter",
        "Runs this host started, completed and saw fail.",
        &[
            ("{state=\"started\"}".into(), g(&r.started) as f64),
            ("{state=\"completed\"}".into(), g(&r.completed) as f64),
            ("{state=\"failed\"}".into(), g(&r.failed) as f64),
            ("{state=\"scheduled\"}".into(), g(&r.scheduled) as f64),
        ],
    );
    let running = app.runs.working();
    metric(
        "heatbill_runs_running",
        "gauge",
        "Runs this host is working on.",
        &[(String::new(), running as f64)],
    );
    metric(
        "heatbill_customers_total",
        "counter",
        "Customers settled by the runs this host completed.",
        &[(String::new(), g(&r.customers) as f64)],
    );
    metric(
        "heatbill_bills_written_total",
        "counter",
        "Bills written (first versions and revisions) by the runs this host completed.",
        &[(String::new(), g(&r.bills) as f64)],
    );
    metric(
        "heatbill_customers_parked_total",
        "counter",
        "Customers parked by the runs this host completed.",
        &[(String::new(), g(&r.parked) as f64)],
    );
    metric(
        "heatbill_run_seconds_total",
        "counter",
        "Seconds of the runs this host completed.",
        &[(String::new(), g(&r.run_micros) as f64 / 1e6)],
    );
    metric(
        "heatbill_last_run_customers_per_second",
        "gauge",
        "Customers per second of the last run this host completed.",
        &[(String::new(), g(&r.last_rate_milli) as f64 / 1000.0)],
    );
    metric(
        "heatbill_coordination_seconds_total",
        "counter",
        "Seconds runs spent claiming shards and renewing leases (lock and lease waits).",
        &[(String::new(), g(&r.coordination_micros) as f64 / 1e6)],
    );
    metric(
        "heatbill_dry_runs_total",
        "counter",
        "Dry runs answered.",
        &[(String::new(), g(&m.dry_runs) as f64)],
    );
    metric(
        "heatbill_dry_run_seconds_total",
        "counter",
        "Seconds of dry runs: one customer-day through the chain's plugins (plugin call latency).",
        &[(String::new(), g(&m.dry_run_micros) as f64 / 1e6)],
    );
    let cache = app.services.cache.stats();
    metric(
        "heatbill_cache_requests_total",
        "counter",
        "Cache reads by result.",
        &[
            ("{result=\"hit\"}".into(), cache.hits as f64),
            ("{result=\"miss\"}".into(), cache.misses as f64),
            ("{result=\"error\"}".into(), cache.errors as f64),
        ],
    );
    let total = cache.hits + cache.misses;
    metric(
        "heatbill_cache_hit_ratio",
        "gauge",
        "Cache hits over reads since the server started.",
        &[(
            String::new(),
            if total == 0 {
                0.0
            } else {
                cache.hits as f64 / total as f64
            },
        )],
    );
    {
        use heatbill_runtime::publish::{DELIVERED, ESCALATED, REPORTS};
        metric(
            "heatbill_events_delivered_total",
            "counter",
            "Events this host delivered, by target (acknowledged by the broker, or a 2xx from the webhook's receiver).",
            &[
                ("{target=\"mqtt\"}".to_string(), g(&DELIVERED) as f64),
                (
                    "{target=\"webhook\"}".to_string(),
                    g(&heatbill_runtime::webhook::DELIVERED) as f64,
                ),
            ],
        );
        metric(
            "heatbill_valve_reports_total",
            "counter",
            "Valve reports this host took from MQTT.",
            &[(String::new(), g(&REPORTS) as f64)],
        );
        metric(
            "heatbill_valve_close_escalations_total",
            "counter",
            "Close requests this host escalated: not acknowledged in the policy's time.",
            &[(String::new(), g(&ESCALATED) as f64)],
        );
    }
    if let Ok(backlog) = app.services.store.delivery_counts().await {
        metric(
            "heatbill_event_deliveries",
            "gauge",
            "Deliveries waiting (pending, failed and awaiting a retry, dead), by target.",
            &backlog
                .iter()
                .map(|b| {
                    (
                        format!("{{target=\"{}\",state=\"{}\"}}", b.target, b.state),
                        b.count as f64,
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
