//! The admin API (`heatbill serve`): what a heating company's operators and integrators use
//! every day, over HTTP and JSON.
//!
//! | module | owns |
//! |---|---|
//! | [`auth`] | the operator token, company tokens and their roles, tenant isolation |
//! | [`error`] | the one error shape every 4xx and 5xx answers with |
//! | [`companies`] | companies, their seasons, schedules and tokens |
//! | [`plugins`] | plugin uploads (checked by the engine as a run loads them), listed and read |
//! | [`cases`] | case files attached to a plugin version, run at upload |
//! | [`chains`] | rule chains: activated when their case files pass, listed, rolled back |
//! | [`data`] | streaming CSV imports |
//! | [`runs`] | run requests (idempotent), progress (JSON and server-sent events), cancel |
//! | [`bills`] | bills by date, customer and run, the CSV export, dry runs, the arrears ranking |
//! | [`accounts`] | customers' accounts: payments (idempotent by channel transaction), reversals, refunds, adjustments, write-offs, the day's close |
//! | [`directory`] | the customer directory: search by account number, name, phone or address; profiles and their revisions (personal data masked unless staff ask) |
//! | [`statements`] | channel statements uploaded, reconciled against the ledger and kept; lost notifications recovered; banks' column mappings |
//! | [`ops`] | health, readiness, Prometheus metrics, the OpenAPI document |
//! | [`console`] | the operator console (`/console`): HTML pages over the same handlers, and the offline API reference (`/docs`) |
//!
//! Each module declares its routes in its own `routes()`; [`router`] puts them together under
//! `/v1` with the layers every request passes (limits, request ids, tracing, counting). Runs are
//! not put together here: a run request calls the runtime's run handle
//! ([`heatbill_runtime::run::Runs`]), which also works on other hosts' runs and leads the
//! nightly scheduler; the case files an upload brings are run by the plugin developer kit's
//! case runner ([`heatbill_harness::runner`]), exactly as `heatbill plugin test` runs them.
//!
//! Every company resource lives under `/v1/companies/{company}/…`. A company token reaches its
//! own company alone: another company's resources answer 404, exactly as a company that does
//! not exist, so a token cannot even learn which companies exist. The server runs the shards of
//! every running run like `heatbill worker` (so a run triggered on one host is shared by every
//! host that serves), and one host at a time (the lease holder) runs the nightly scheduler.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod bills;
pub mod cases;
pub mod chains;
pub mod companies;
pub mod console;
pub mod data;
pub mod directory;
pub mod error;
pub mod events;
pub mod invoices;
pub mod notices;
pub mod ops;
pub mod plugins;
pub mod runs;
pub mod statements;
pub mod subsidy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use heatbill_engine::Engine;
use heatbill_runtime::run;
use heatbill_runtime::services::Services;
use heatbill_runtime::settings::Settings;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use data::KindName;
pub use error::ApiError;
use ops::Security;

/// What every handler shares.
pub struct AppState {
    /// The store, cache and coordination.
    pub services: Services,
    /// The rules engine (plugins are loaded and case files run in it).
    pub engine: Engine,
    /// The configuration.
    pub settings: Settings,
    /// SHA-256 of the operator token.
    pub operator_hash: [u8; 32],
    /// The runtime's run handle: runs this process starts (for a request or the scheduler),
    /// works on, cancels and winds down.
    pub runs: run::Runs,
    /// Counters for `/metrics`.
    pub metrics: ops::Metrics,
    /// When the server started.
    pub started: Instant,
    /// Permits to use the rules engine in a request (`api.engine_slots`).
    pub engine_slots: Arc<tokio::sync::Semaphore>,
    /// Each company's share of the engine slots (`api.engine_slots_per_company`), by company
    /// id: a request takes its company's permit first, then one of `engine_slots`.
    pub company_slots: Mutex<HashMap<i32, Arc<tokio::sync::Semaphore>>>,
    /// Requests waiting now for an engine slot (their company's share or the server's).
    pub engine_queue: Arc<std::sync::atomic::AtomicUsize>,
    /// Permits of one byte each for the upload bodies held now
    /// (`api.max_upload_bytes_in_flight`), taken before a body is read.
    pub upload_bytes: Arc<tokio::sync::Semaphore>,
    /// Progress streams open now, all companies together and by company id.
    pub event_streams: Arc<runs::StreamCounts>,
    /// Set when the server begins to shut down: an import in progress stops at once (503,
    /// nothing imported) instead of holding the shutdown.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// A request's permit to use the rules engine: one of the company's share and one of the
/// server's slots, both given back when it is dropped.
#[derive(Debug)]
pub struct EngineSlot {
    _company: tokio::sync::OwnedSemaphorePermit,
    _server: tokio::sync::OwnedSemaphorePermit,
}

/// Counts a request as waiting until it is dropped (served, refused, or gone with its client).
struct Waiting(Arc<std::sync::atomic::AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Waiting {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// 503 with `Retry-After`: the server is busy with other requests of the kind.
fn busy(message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        message,
    )
    .with_retry_after(RETRY_AFTER_S)
}

/// The `Retry-After` of a 503 for a busy engine or upload queue, in seconds.
const RETRY_AFTER_S: u64 = 5;

impl AppState {
    /// A permit to use the rules engine for one request of `company`: first one of the
    /// company's share (`api.engine_slots_per_company`), then one of `api.engine_slots`,
    /// waiting up to `api.queue_wait_ms` for both together, then 503. Compiles, case runs and
    /// dry runs are CPU and memory an integrator can ask for; this bounds how much of either
    /// requests take at once, and the company's share keeps one company's requests from
    /// holding every slot: while it waits for its own share, the other slots stay free for
    /// other companies. Both queues are first come, first served.
    pub async fn engine_slot(&self, company: i32) -> Result<EngineSlot, ApiError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.settings.api.queue_wait_ms);
        let share = {
            let mut slots = self.company_slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry(company)
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Semaphore::new(
                        self.settings.api.company_engine_slots(),
                    ))
                })
                .clone()
        };
        let _waiting = Waiting::new(&self.engine_queue);
        let own = match tokio::time::timeout_at(deadline, share.acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(busy(format!(
                    "this company's requests already use its {} engine slot(s) \
                     (api.engine_slots_per_company); try again once they finish",
                    self.settings.api.company_engine_slots()
                )));
            }
        };
        match tokio::time::timeout_at(deadline, self.engine_slots.clone().acquire_owned()).await {
            Ok(Ok(server)) => Ok(EngineSlot {
                _company: own,
                _server: server,
            }),
            _ => Err(busy(
                "the server is busy with other plugin work (api.engine_slots); try again shortly",
            )),
        }
    }

    /// Room for an upload body of `length` bytes (its `Content-Length`; `None`: the whole
    /// `api.max_upload_bytes`) among `api.max_upload_bytes_in_flight`, taken before the body
    /// is read and held until the upload is answered; waits up to `api.queue_wait_ms`, then
    /// 503. An upload larger than the whole budget takes all of it.
    pub async fn upload_room(
        &self,
        length: Option<u64>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let api = &self.settings.api;
        let total = api.max_upload_bytes_in_flight.max(1);
        let want = length
            .unwrap_or(api.max_upload_bytes as u64)
            .min(api.max_upload_bytes as u64)
            .min(total as u64)
            .min(u64::from(u32::MAX))
            .max(1) as u32;
        let wait = Duration::from_millis(api.queue_wait_ms);
        match tokio::time::timeout(wait, self.upload_bytes.clone().acquire_many_owned(want)).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy(
                "the server is receiving as many plugin uploads as it holds at once \
                 (api.max_upload_bytes_in_flight); try again shortly",
            )),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("worker", &self.services.worker)
            .finish_non_exhaustive()
    }
}

/// The shared state handlers get.
pub type App = Arc<AppState>;

impl AppState {
    /// The state of a server: `operator_token` is the platform operator's token.
    pub fn new(
        services: Services,
        engine: Engine,
        settings: Settings,
        operator_token: &str,
    ) -> AppState {
        AppState {
            runs: run::Runs::new(run::Env::new(
                services.clone(),
                engine.clone(),
                settings.clone(),
            )),
            services,
            engine,
            operator_hash: auth::hash(operator_token),
            metrics: ops::Metrics::default(),
            started: Instant::now(),
            engine_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.api.engine_slots.max(1),
            )),
            company_slots: Mutex::new(HashMap::new()),
            engine_queue: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            upload_bytes: Arc::new(tokio::sync::Semaphore::new(
                settings
                    .api
                    .max_upload_bytes_in_flight
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            event_streams: Arc::new(runs::StreamCounts::default()),
            stopping: tokio::sync::watch::Sender::new(false),
            settings,
        }
    }
}

/// The OpenAPI document of the API, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "heatbill admin API",
        description = "Companies, plugins and rule chains, data imports, daily runs and bills of \
                       a district-heating billing platform. Every endpoint but the health \
                       checks, the metrics and this document takes `Authorization: Bearer \
                       <token>`: the platform operator's token, or a company token (roles \
                       integrator, staff, read-only) that reaches its own company alone."
    ),
    modifiers(&Security),
    components(schemas(KindName)),
    paths(
        ops::healthz, ops::readyz, ops::metrics,
        companies::create, companies::list, companies::read, companies::update,
        companies::put_schedule, companies::issue_token, companies::list_tokens,
        companies::revoke_token,
        plugins::upload, plugins::list, plugins::read, cases::put_cases, cases::list_cases,
        chains::activate, chains::list_chains, chains::rollback,
        data::import,
        runs::trigger, runs::list, runs::read, runs::events, runs::cancel, runs::stale_dates,
        bills::by_date, bills::export, bills::by_customer, bills::history, bills::by_run,
        bills::dry_run, bills::arrears, audit::read,
        accounts::account, accounts::pay, accounts::adjust, accounts::entry,
        accounts::reverse, accounts::refund, accounts::day_close, accounts::statement,
        accounts::receivables,
        directory::search, directory::profile, directory::record,
        statements::upload, statements::list, statements::items, statements::recover,
        statements::put_profile, statements::profiles,
        subsidy::receivable, subsidy::transfers, subsidy::record_transfer, subsidy::settlement,
        notices::list, notices::read, notices::print, notices::standing,
        events::list, events::read, events::replay, events::valve, events::report,
        events::flags, events::weather, events::webhook, events::rotate_webhook,
        invoices::list, invoices::read, invoices::answer,
    ),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "companies", description = "Companies, schedules and tokens (operator)"),
        (name = "plugins", description = "Plugin uploads, case files and rule chains (integrator)"),
        (name = "data", description = "Streaming CSV imports (staff)"),
        (name = "runs", description = "Daily runs (staff)"),
        (name = "bills", description = "Bills, exports, dry runs and arrears"),
        (name = "accounts", description = "Customers' accounts: payments, reversals, refunds, adjustments and the day's close (staff)"),
        (name = "statements", description = "Channel statements (WeChat Pay, Alipay, banks) reconciled against the ledger; lost notifications recovered; banks' column mappings (staff)"),
        (name = "subsidy", description = "The government's share of subsidies: its receivable by month, its transfers, and the settlement list (政府补贴结算) of a period (staff)"),
        (name = "notices", description = "Payment notices (缴费通知单) the nightly run issues by the company's billing policy: listed, read, printed, and what a customer owes by notice"),
        (name = "events", description = "Events out: fee control (费控) and e-invoices (数电票): the outbox's events and their delivery, replays, customers' valves (state, timeline, exemptions), valve reports from adapters, outdoor temperatures, invoice requests, the tax bureau's template and the provider's answers"),
        (name = "customers", description = "The customer directory: search, profiles and their revisions (personal data masked unless staff ask)"),
    )
)]
pub struct ApiDoc;

/// The router of the whole API over `app`.
pub fn router(app: App) -> Router {
    let json_limit = app.settings.api.max_body_bytes;
    let request_id = HeaderName::from_static("x-request-id");
    let v1 = Router::new()
        .merge(companies::routes())
        .merge(plugins::routes())
        .merge(cases::routes())
        .merge(chains::routes())
        .merge(data::routes())
        .merge(runs::routes())
        .merge(bills::routes())
        .merge(audit::routes())
        .merge(accounts::routes())
        .merge(directory::routes())
        .merge(statements::routes())
        .merge(subsidy::routes())
        .merge(notices::routes())
        .merge(events::routes())
        .merge(invoices::routes());
    Router::new()
        .merge(ops::routes())
        .nest("/v1", v1)
        .fallback(|| async {
            ApiError::not_found("no such endpoint; the API's endpoints are listed at /openapi.json")
        })
        // Bodies are read by each handler with its own cap (uploads, imports); this is the
        // cap of everything else.
        .layer(DefaultBodyLimit::max(json_limit))
        // Every error answer in the one error shape, also axum's own rejections.
        .layer(axum::middleware::from_fn(error::json_errors))
        // The console answers in HTML (its errors too), so it is merged outside the JSON
        // error layer; the layers below serve both.
        .merge(console::routes())
        .layer(
            TraceLayer::new_for_http()
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                )
                .make_span_with(|req: &Request<_>| {
                    // The path only: query strings may carry customer ids, never a token (tokens
                    // travel in the Authorization header, which is not logged).
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %heatbill_engine::text::terminal_safe(req.uri().path(), 200),
                        request_id = %heatbill_engine::text::terminal_safe(&id, 64),
                    )
                }),
        )
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            ops::count_requests,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(app)
}

/// Serves the API on `settings.api.listen` with the workers and the scheduler until `stop`
/// resolves, then shuts down gracefully: no new requests, the runs in hand get
/// `api.shutdown_grace_s` to finish, and their unfinished shards are handed back (their
/// leases lapse; any host resumes them).
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = {
        let runs = app.runs.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = runs.serve(stop).await {
                tracing::error!(error = %e, "the worker stopped");
            }
        })
    };
    let scheduler = if app.settings.api.scheduler {
        let runs = app.runs.clone();
        let stop = stopped(stop_rx.clone());
        Some(tokio::spawn(async move { runs.scheduler(stop).await }))
    } else {
        None
    };
    // Events out: delivered by the holder of the publisher's lock (one host at a time).
    let publisher = if app.settings.events.publisher {
        let services = app.services.clone();
        let settings = app.settings.events.clone();
        let stop = stopped(stop_rx.clone());
        Some(tokio::spawn(async move {
            heatbill_runtime::publish::run(services, settings, stop).await
        }))
    } else {
        None
    };
    let stopping = app.stopping.clone();
    let server = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(async move {
            stop.await;
            stopping.send_replace(true);
            let _ = stop_tx.send(true);
        })
        .await
        .context("the HTTP server failed");
    // The server has stopped taking requests; runs in hand get their grace.
    let grace = Duration::from_secs(app.settings.api.shutdown_grace_s);
    app.runs.wind_down(grace).await;
    let _ = worker.await;
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    if let Some(p) = publisher {
        let _ = p.await;
    }
    server
}

/// Resolves once the server is told to stop.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
