//! Daily runs: trigger (with an idempotency key), progress as JSON and as server-sent events,
//! cancel, report.
//!
//! A request is checked before it is answered (the company has a chain in force on the date,
//! the day before is billed), the run is opened, and its id comes back at once (202); this
//! process then works on it, and every other host that serves joins it. Progress is read from
//! the database (shards done, and their counts), so it is the same on every host.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use chrono::NaiveDate;
use futures::Stream;
use heatbill_runtime::model::{Company, RunRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Tenant, access};
use super::error::{ErrorBody, JsonBody};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/runs", post(trigger).get(list))
        .route("/companies/{company}/runs/{id}", get(read))
        .route("/companies/{company}/runs/{id}/events", get(events))
        .route("/companies/{company}/runs/{id}/cancel", post(cancel))
        .route("/companies/{company}/stale-dates", get(stale_dates))
}

/// A company's stale dates.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaleView {
    /// The first billed date a correction recorded since reaches (none: nothing is stale).
    pub stale_from: Option<NaiveDate>,
    /// Every billed date from it on, in the order to run them again (at most 1,000).
    pub dates: Vec<NaiveDate>,
}

/// The billed dates a correction reached since they were run (a ledger entry, an import or a
/// chain version dated before them): request their runs again in this order, each after the
/// one before has finished (a date waits for the day before it).
#[utoipa::path(get, operation_id = "runs_stale_dates", path = "/v1/companies/{company}/stale-dates", tag = "runs",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = StaleView), (status = 404, body = ErrorBody)))]
pub async fn stale_dates(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
) -> Result<Json<StaleView>, ApiError> {
    let s = app.services.store.stale_dates(c.id).await?;
    Ok(Json(StaleView {
        stale_from: s.from,
        dates: s.dates,
    }))
}

/// A run request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// The date to bill.
    pub date: NaiveDate,
}

/// A run and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// Its id.
    pub id: i64,
    /// The date it bills.
    pub date: NaiveDate,
    /// 1 for the date's first run, then +1 per re-run.
    pub attempt: i32,
    /// `running`, `completed` or `failed` (a cancelled run is failed, with `cancelled` in its
    /// report).
    pub state: String,
    /// Shards of the run.
    pub shards: i64,
    /// Shards done (on every host).
    pub shards_done: u64,
    /// Customers settled so far.
    pub customers: u64,
    /// Bills written (first versions).
    pub written: u64,
    /// Bills revised (new versions).
    pub revised: u64,
    /// Customers whose bills were unchanged.
    pub unchanged: u64,
    /// Customers parked (a plugin refused or failed).
    pub parked: u64,
    /// Seconds since this host started working on it (running runs this host works on).
    pub seconds: Option<f64>,
    /// Customers settled per second so far (same).
    pub customers_per_second: Option<f64>,
    /// The report, once it finished.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
}

pub(super) async fn view(app: &App, r: RunRecord) -> Result<RunView, ApiError> {
    let totals = app.services.store.run_totals(r.id, 0).await?;
    let live = app
        .runs
        .working_for(r.id)
        .filter(|_| r.state == "running")
        .map(|t| t.as_secs_f64());
    let settled = totals.counts.customers;
    Ok(RunView {
        id: r.id,
        date: r.bill_date,
        attempt: r.attempt,
        state: r.state,
        shards: r.shard_count as i64,
        shards_done: totals.shards_done,
        customers: settled,
        written: totals.counts.written,
        revised: totals.counts.revised,
        unchanged: totals.counts.unchanged,
        parked: totals.counts.parked,
        seconds: live,
        customers_per_second: live.filter(|s| *s > 0.0).map(|s| settled as f64 / s),
        report: r.report,
    })
}

/// Requests the run of a date (staff). The `Idempotency-Key` header is required: the same key
/// with the same request answers with the same run (for 24 hours, `api.idempotency_hours`);
/// the same key with another request is refused. The run opens before the answer (202), and
/// goes on in the background; follow it at `…/runs/{id}` or `…/runs/{id}/events`.
#[utoipa::path(post, operation_id = "runs_trigger", path = "/v1/companies/{company}/runs", tag = "runs",
    params(("company" = String, Path, description = "The company's slug"),
        ("Idempotency-Key" = String, Header, description = "A key unique to this request (1 to 200 printable ASCII characters)")),
    request_body = RunBody, security(("bearer" = [])),
    responses((status = 202, body = RunView, description = "Opened (or joined)"),
        (status = 200, body = RunView, description = "The key was used for this request: its run"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The run cannot start (no chain, the day before not billed) or the key expired")))]
pub async fn trigger(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<RunBody>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "send an Idempotency-Key header (1 to 200 printable ASCII characters, e.g. a \
                 UUID): retrying with the same key never starts a second run",
            )
        })?
        .to_string();
    let request = format!("run {}", b.date);
    if let Some(prior) = app.services.store.run_request(c.id, &key).await? {
        if prior.request != request {
            return Err(ApiError::conflict(format!(
                "the Idempotency-Key was used for another request ({}); use a new key",
                prior.request
            )));
        }
        if prior.age_s > app.settings.api.idempotency_hours as i64 * 3600 {
            return Err(ApiError::unprocessable(format!(
                "the Idempotency-Key expired (it is older than {} hours); send the request with \
                 a new key",
                app.settings.api.idempotency_hours
            )));
        }
        let r = app.services.store.run(prior.run_id).await?;
        return Ok((StatusCode::OK, Json(view(&app, r).await?)));
    }
    let record = app.runs.start(&c, b.date).await?;
    match app
        .services
        .store
        .put_run_request(c.id, &key, &request, record.id)
        .await
    {
        Ok(()) => {}
        // Two requests with one key at once: both got the same run (one run per date).
        Err(heatbill_runtime::store::StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let r = app.services.store.run(record.id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&app, r).await?)))
}

/// Which runs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// The runs of this date (default: the latest runs of every date).
    pub date: Option<NaiveDate>,
    /// At most this many (default 20, at most 500).
    pub limit: Option<usize>,
}

/// Lists runs, newest first.
#[utoipa::path(get, operation_id = "runs_list", path = "/v1/companies/{company}/runs", tag = "runs",
    params(("company" = String, Path, description = "The company's slug"), RunsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<RunView>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 500);
    let mut runs = match q.date {
        Some(d) => {
            let mut r = app.services.store.runs(c.id, d).await?;
            r.reverse();
            r
        }
        None => app.services.store.recent_runs(c.id, limit).await?,
    };
    runs.truncate(limit);
    let mut out = Vec::new();
    for r in runs {
        out.push(view(&app, r).await?);
    }
    Ok(Json(out))
}

/// The run `id` of the company (another company's run is not found).
pub(super) async fn company_run(
    app: &App,
    company: &Company,
    id: i64,
) -> Result<RunRecord, ApiError> {
    match app.services.store.run(id).await {
        Ok(r) if r.company_id == company.id => Ok(r),
        Ok(_) | Err(heatbill_runtime::store::StoreError::NotFound(_)) => Err(ApiError::not_found(
            format!("company {} has no run {id}", company.slug),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A run's progress, and its report once it finished.
#[utoipa::path(get, operation_id = "runs_read", path = "/v1/companies/{company}/runs/{id}", tag = "runs",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The run's id")),
    security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Json<RunView>, ApiError> {
    let r = company_run(&app, &c, id).await?;
    Ok(Json(view(&app, r).await?))
}

/// A run's progress as server-sent events: a `progress` event (a run view) every half
/// second while it runs, then one `finished` event with the report, and the stream ends.
#[utoipa::path(get, operation_id = "runs_events", path = "/v1/companies/{company}/runs/{id}/events", tag = "runs",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The run's id")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "`progress` events, then `finished`"),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Too many progress streams open (`api.max_event_streams`, or this company's `api.max_event_streams_per_company`); poll the run instead")))]
pub async fn events(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    company_run(&app, &c, id).await?;
    let api = &app.settings.api;
    let guard = app
        .event_streams
        .open(
            c.id,
            api.max_event_streams,
            api.max_event_streams_per_company,
        )
        .map_err(|cap| {
            let whose = if cap == "api.max_event_streams" {
                "on this server"
            } else {
                "for this company"
            };
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "too many progress streams are open {whose} ({cap}); poll GET \
                     …/runs/{{id}} instead, or try again shortly"
                ),
            )
            .with_retry_after(5)
        })?;
    let stream = futures::stream::unfold(Some((app, guard)), move |state| async move {
        let (app, guard) = state?;
        let r = match app.services.store.run(id).await {
            Ok(r) => r,
            Err(e) => {
                let ev = Event::default()
                    .event("error")
                    .data(format!("reading the run failed: {e}"));
                return Some((Ok(ev), None));
            }
        };
        let finished = r.state != "running";
        let v = match view(&app, r).await {
            Ok(v) => v,
            Err(e) => {
                let ev = Event::default().event("error").data(e.message);
                return Some((Ok(ev), None));
            }
        };
        let data = serde_json::to_string(&v).expect("a view serializes");
        if finished {
            Some((Ok(Event::default().event("finished").data(data)), None))
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some((
                Ok(Event::default().event("progress").data(data)),
                Some((app, guard)),
            ))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Cancels a running run (staff). Shards written stay (each is a day's correct bills); the
/// others are not claimed again on any host. Request the date again to bill the rest: a new
/// attempt finds the written bills unchanged.
#[utoipa::path(post, operation_id = "runs_cancel", path = "/v1/companies/{company}/runs/{id}/cancel", tag = "runs",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The run's id")),
    security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The run had finished")))]
pub async fn cancel(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Json<RunView>, ApiError> {
    let r = company_run(&app, &c, id).await?;
    let who = caller.who();
    let report = serde_json::json!({
        "cancelled": true,
        "cancelled_by": who,
        "run_id": id,
    });
    if !app.runs.cancel(r.id, &report).await? {
        return Err(ApiError::conflict(format!(
            "run {id} is {} already",
            r.state
        )));
    }
    tracing::info!(run = id, company = %c.slug, by = %who, "run cancelled");
    let r = app.services.store.run(id).await?;
    Ok(Json(view(&app, r).await?))
}

/// The progress streams open now: all companies together, and by company id (a company
/// without an open stream has no entry).
#[derive(Debug, Default)]
pub struct StreamCounts {
    counts: std::sync::Mutex<(usize, std::collections::HashMap<i32, usize>)>,
}

impl StreamCounts {
    /// Counts a new stream of `company`, unless `all` streams are open already, or
    /// `per_company` of this company's: then says which cap it met. The stream counts until
    /// the guard is dropped.
    pub fn open(
        self: &Arc<Self>,
        company: i32,
        all: usize,
        per_company: usize,
    ) -> Result<StreamGuard, &'static str> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.1.get(&company).copied().unwrap_or(0);
        if mine >= per_company {
            return Err("api.max_event_streams_per_company");
        }
        if c.0 >= all {
            return Err("api.max_event_streams");
        }
        c.0 += 1;
        *c.1.entry(company).or_insert(0) += 1;
        Ok(StreamGuard {
            counts: self.clone(),
            company,
        })
    }

    /// Streams open now: all of them, and `company`'s.
    pub fn open_now(&self, company: i32) -> (usize, usize) {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        (c.0, c.1.get(&company).copied().unwrap_or(0))
    }
}

/// Counts an open progress stream until it is dropped (ended, or the client went away).
#[derive(Debug)]
pub struct StreamGuard {
    counts: Arc<StreamCounts>,
    company: i32,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut c = self.counts.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.0 = c.0.saturating_sub(1);
        if let Some(n) = c.1.get_mut(&self.company) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&self.company);
            }
        }
    }
}
