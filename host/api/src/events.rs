//! Events out and fee control (费控): the company's events and their delivery states, one
//! event, replaying a delivery, a customer's valve (state and timeline), valve reports from
//! adapters, an operator's hold and dispute flags, and the day's outdoor temperature. The
//! events themselves are written by the nightly run and by payments (the runtime's `events`
//! module); see docs/events.md.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use chrono::NaiveDate;
use heatbill_runtime::events::{EventKind, ValvePosition};
use heatbill_runtime::store::events::{EventFilter, EventRecord, MAX_EVENTS, ValveState};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::plausible;
use super::auth::{Tenant, access};
use super::error::{ErrorBody, JsonBody, check_id, page_limit};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/events", get(list))
        .route("/companies/{company}/events/{id}", get(read))
        .route("/companies/{company}/events/{id}/replay", post(replay))
        .route("/companies/{company}/valves/{customer}", get(valve))
        .route(
            "/companies/{company}/valves/{customer}/reports",
            post(report),
        )
        .route("/companies/{company}/valves/{customer}/flags", put(flags))
        .route("/companies/{company}/weather/{date}", put(weather))
        .route("/companies/{company}/webhook", get(webhook))
        .route("/companies/{company}/webhook/rotate", post(rotate_webhook))
}

/// An event's delivery to one target.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The target (`mqtt`).
    pub target: String,
    /// `pending`, `delivered`, `acknowledged`, `failed` (tried again with backoff) or `dead`
    /// (replay it).
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was delivered (UTC).
    pub delivered_at: Option<String>,
    /// When the valve acknowledged it (UTC).
    pub acknowledged_at: Option<String>,
}

/// An event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its sequence number (increasing; the `seq` of the published message).
    pub id: i64,
    /// The idempotency key: a consumer dedupes by it.
    pub key: String,
    /// The kind.
    pub kind: String,
    /// The customer it is about.
    pub customer_id: Option<String>,
    /// The event as published (without `seq`).
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    /// When it was written (UTC).
    pub created_at: String,
    /// Its delivery to each of the company's targets.
    pub deliveries: Vec<DeliveryView>,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> EventView {
        EventView {
            id: e.id,
            key: e.key,
            kind: e.kind,
            customer_id: e.customer_id,
            body: e.body,
            created_at: e.created_at,
            deliveries: e
                .deliveries
                .into_iter()
                .map(|d| DeliveryView {
                    target: d.target,
                    state: d.state,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    delivered_at: d.delivered_at,
                    acknowledged_at: d.acknowledged_at,
                })
                .collect(),
        }
    }
}

/// Which events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One customer's.
    pub customer: Option<String>,
    /// One kind: `balance_warning`, `valve_close_requested`, `valve_open_requested`,
    /// `valve_close_unacknowledged`, `valve_state_reported`.
    pub kind: Option<String>,
    /// Those with a delivery in this state: `pending`, `delivered`, `acknowledged`, `failed`,
    /// `dead`.
    pub state: Option<String>,
    /// After this id (the `next` of the previous page).
    pub after: Option<i64>,
    /// At most this many (default and maximum 1,000).
    pub limit: Option<usize>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, by id.
    pub events: Vec<EventView>,
    /// The `after` of the next page, when there may be one.
    pub next: Option<i64>,
}

const STATES: [&str; 5] = ["pending", "delivered", "acknowledged", "failed", "dead"];

/// The company's events, by id, a page at a time.
#[utoipa::path(get, operation_id = "events_list", path = "/v1/companies/{company}/events", tag = "events",
    params(("company" = String, Path, description = "The company's slug"), ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ListQuery>,
) -> Result<Json<EventPage>, ApiError> {
    if let Some(id) = &q.customer {
        check_id("customer", id)?;
    }
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            EventKind::parse(k).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "kind {:?}: give one of {}",
                    heatbill_engine::text::safe(k),
                    EventKind::ALL.map(EventKind::as_str).join(", ")
                ))
            })
        })
        .transpose()?;
    if let Some(s) = q.state.as_deref()
        && !STATES.contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "state {:?}: give one of {}",
            heatbill_engine::text::safe(s),
            STATES.join(", ")
        )));
    }
    let limit = page_limit(q.limit, MAX_EVENTS)?;
    let found = app
        .services
        .store
        .events(
            c.id,
            &EventFilter {
                customer_id: q.customer,
                kind,
                state: q.state,
                after: q.after,
                limit,
            },
        )
        .await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|e| e.id))
        .flatten();
    Ok(Json(EventPage {
        events: found.into_iter().map(EventView::from).collect(),
        next,
    }))
}

async fn event(
    app: &App,
    c: &heatbill_runtime::model::Company,
    id: i64,
) -> Result<EventRecord, ApiError> {
    app.services.store.event(c.id, id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "company {} has no event {id}: list them with GET /v1/companies/{}/events",
            c.slug, c.slug
        ))
    })
}

/// One event and its deliveries.
#[utoipa::path(get, operation_id = "events_read", path = "/v1/companies/{company}/events/{id}", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The event's id")),
    security(("bearer" = [])),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(event(&app, &c, id).await?.into()))
}

/// How to replay.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReplayQuery {
    /// Every delivery, delivered ones too (default: the failed and dead ones).
    pub all: Option<bool>,
}

/// What a replay did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// Deliveries made pending again.
    pub replayed: u64,
    /// The event now.
    pub event: EventView,
}

/// Sends an event again: its failed or dead deliveries (with `all=true`, every delivery) are
/// made pending; the publisher delivers them under the same key.
#[utoipa::path(post, operation_id = "events_replay", path = "/v1/companies/{company}/events/{id}/replay", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The event's id"), ReplayQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ReplayView), (status = 404, body = ErrorBody)))]
pub async fn replay(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    Path((_company, id)): Path<(String, i64)>,
    Query(q): Query<ReplayQuery>,
) -> Result<Json<ReplayView>, ApiError> {
    event(&app, &c, id).await?;
    let replayed = app
        .services
        .store
        .replay(c.id, id, q.all.unwrap_or(false))
        .await?;
    Ok(Json(ReplayView {
        replayed,
        event: event(&app, &c, id).await?.into(),
    }))
}

/// Checks a free text field: at most 500 characters, no control character but a line break or
/// tab (a NUL cannot even be stored).
pub(crate) fn free_text(what: &str, s: Option<&str>) -> Result<(), ApiError> {
    if let Some(s) = s
        && (s.chars().count() > 500 || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
    {
        return Err(ApiError::bad_request(format!(
            "{what}: give at most 500 characters, without control characters"
        )));
    }
    Ok(())
}

/// A customer's valve as fee control keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValveView {
    /// The customer.
    pub customer_id: String,
    /// What heatbill last asked for: `open` or `closed` (`open` when never asked).
    pub requested: String,
    /// The key of that request's event.
    pub request_key: Option<String>,
    /// When it asked (UTC).
    pub requested_at: Option<String>,
    /// A balance warning is outstanding.
    pub warned: bool,
    /// What the valve last reported: `open`, `closed`, `fault`.
    pub reported: Option<String>,
    /// When (UTC).
    pub reported_at: Option<String>,
    /// The valve reported the state heatbill asked for.
    pub acknowledged: bool,
    /// The close request was escalated (not acknowledged in the policy's time).
    pub escalated: bool,
    /// On hold by an operator: never closed.
    pub hold: bool,
    /// Disputed: never closed.
    pub disputed: bool,
    /// The operator's note.
    pub note: Option<String>,
    /// The customer's events, newest last (the latest 1,000): the valve's timeline.
    pub timeline: Vec<EventView>,
}

fn valve_view(customer: &str, v: Option<ValveState>, timeline: Vec<EventRecord>) -> ValveView {
    let v = v.unwrap_or_else(|| ValveState::never_asked(customer));
    ValveView {
        customer_id: v.customer_id,
        requested: v.requested,
        request_key: v.request_key,
        requested_at: v.requested_at,
        warned: v.warned,
        reported: v.reported,
        reported_at: v.reported_at,
        acknowledged: v.acknowledged,
        escalated: v.escalated,
        hold: v.hold,
        disputed: v.disputed,
        note: v.note,
        timeline: timeline.into_iter().map(EventView::from).collect(),
    }
}

async fn valve_of(
    app: &App,
    c: &heatbill_runtime::model::Company,
    customer: &str,
) -> Result<ValveView, ApiError> {
    let store = &app.services.store;
    if !store.has_customer(c.id, customer).await? {
        return Err(ApiError::not_found(format!(
            "company {} has no customer {}",
            c.slug,
            heatbill_engine::text::safe(customer)
        )));
    }
    let v = store.valve(c.id, customer).await?;
    // The newest 1,000 events: page from the customer's first until the last page.
    let mut timeline: Vec<EventRecord> = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .events(
                c.id,
                &EventFilter {
                    customer_id: Some(customer.to_string()),
                    after,
                    limit: MAX_EVENTS,
                    ..Default::default()
                },
            )
            .await?;
        let full = page.len() == MAX_EVENTS;
        after = page.last().map(|e| e.id);
        timeline.extend(page);
        if timeline.len() > MAX_EVENTS {
            timeline.drain(..timeline.len() - MAX_EVENTS);
        }
        if !full {
            break;
        }
    }
    Ok(valve_view(customer, v, timeline))
}

/// A customer's valve: what heatbill asked for, what the valve reported, the exemptions, and
/// the customer's events.
#[utoipa::path(get, operation_id = "valves_read", path = "/v1/companies/{company}/valves/{customer}", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id")),
    security(("bearer" = [])),
    responses((status = 200, body = ValveView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn valve(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, customer)): Path<(String, String)>,
) -> Result<Json<ValveView>, ApiError> {
    check_id("customer", &customer)?;
    Ok(Json(valve_of(&app, &c, &customer).await?))
}

/// A valve's state, as an adapter reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// `open`, `closed` or `fault`.
    pub state: String,
    /// The adapter's id for this report: a report sent again under it is recorded once.
    pub report_id: String,
    /// Free text (the concentrator's code, say), at most 500 characters.
    pub detail: Option<String>,
}

/// A report recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportedView {
    /// False when the report was recorded before (nothing changed).
    pub new: bool,
    /// The report as an event on the customer's timeline.
    pub event: EventView,
}

/// Records a valve's state as an adapter reports it (the same as a message on MQTT
/// `PREFIX/COMPANY/valve_state`): kept on the customer's timeline; when it is the state heatbill
/// asked for, the request is acknowledged.
#[utoipa::path(post, operation_id = "valves_report", path = "/v1/companies/{company}/valves/{customer}/reports", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id")),
    request_body = ReportBody,
    security(("bearer" = [])),
    responses((status = 201, body = ReportedView, description = "Recorded"),
        (status = 200, body = ReportedView, description = "Recorded before: nothing changed"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn report(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    Path((_company, customer)): Path<(String, String)>,
    JsonBody(b): JsonBody<ReportBody>,
) -> Result<(StatusCode, Json<ReportedView>), ApiError> {
    check_id("customer", &customer)?;
    check_id("report_id", &b.report_id)?;
    let position = ValvePosition::parse(&b.state).ok_or_else(|| {
        ApiError::bad_request(format!(
            "state {:?}: give open, closed or fault",
            heatbill_engine::text::safe(&b.state)
        ))
    })?;
    free_text("detail", b.detail.as_deref())?;
    let (e, new) = app
        .services
        .store
        .report_valve(c.id, &customer, position, &b.report_id, b.detail.as_deref())
        .await?;
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(ReportedView {
            new,
            event: e.into(),
        }),
    ))
}

/// An operator's exemptions for a customer (a field left out is unchanged).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagsBody {
    /// On hold: fee control never closes the valve.
    pub hold: Option<bool>,
    /// The account is disputed: never closed.
    pub disputed: Option<bool>,
    /// Why (kept with the flags), at most 500 characters.
    pub note: Option<String>,
}

/// Puts a customer on hold or takes them off it, marks the account disputed or not. A closed
/// valve of a customer who becomes exempt is asked open at once.
#[utoipa::path(put, operation_id = "valves_flags", path = "/v1/companies/{company}/valves/{customer}/flags", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id")),
    request_body = FlagsBody,
    security(("bearer" = [])),
    responses((status = 200, body = ValveView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn flags(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    Path((_company, customer)): Path<(String, String)>,
    JsonBody(b): JsonBody<FlagsBody>,
) -> Result<Json<ValveView>, ApiError> {
    check_id("customer", &customer)?;
    free_text("note", b.note.as_deref())?;
    let nonce = chrono::Utc::now().timestamp_millis().to_string();
    app.services
        .store
        .set_valve_flags(
            c.id,
            &customer,
            b.hold,
            b.disputed,
            b.note.as_deref(),
            &nonce,
        )
        .await?;
    Ok(Json(valve_of(&app, &c, &customer).await?))
}

/// The day's outdoor temperature.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeatherBody {
    /// °C (the day's mean, or whatever the company's rule means by it).
    #[schema(value_type = String)]
    pub celsius: Decimal,
}

/// The day's outdoor temperature, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct WeatherView {
    /// The day.
    pub date: NaiveDate,
    /// °C.
    #[schema(value_type = String)]
    pub celsius: Decimal,
}

/// Records a day's outdoor temperature, for a fee-control `no_close_below` rule (a later call
/// for the same day replaces it).
#[utoipa::path(put, operation_id = "weather_put", path = "/v1/companies/{company}/weather/{date}", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("date" = String, Path, description = "The day, YYYY-MM-DD")),
    request_body = WeatherBody,
    security(("bearer" = [])),
    responses((status = 200, body = WeatherView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn weather(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    Path((_company, date)): Path<(String, NaiveDate)>,
    JsonBody(b): JsonBody<WeatherBody>,
) -> Result<Json<WeatherView>, ApiError> {
    plausible("date", date)?;
    if b.celsius < Decimal::from(-90) || b.celsius > Decimal::from(60) {
        return Err(ApiError::bad_request(format!(
            "celsius {}: give an outdoor temperature from -90 to 60",
            b.celsius
        )));
    }
    app.services
        .store
        .put_outdoor_temperature(c.id, date, b.celsius)
        .await?;
    Ok(Json(WeatherView {
        date,
        celsius: b.celsius,
    }))
}

/// The company's signed webhooks: where they go and the secret a receiver checks them with.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// The endpoint (`policies.events.webhook.url`, set by the platform operator), if any.
    pub url: Option<String>,
    /// Whether `policies.events.targets` names `webhook` (events are delivered to it).
    pub enabled: bool,
    /// The signing secret: HMAC-SHA256 with it over `T.BODY` is the header's `v1=`.
    pub secret: String,
    /// When the secret was made (UTC).
    pub created_at: String,
    /// After a rotation, until when the previous secret signs too (UTC): a second `v1=`.
    pub previous_signs_until: Option<String>,
    /// The signature's header (`t=UNIX_SECONDS,v1=HEX[,v1=HEX]`).
    pub header: String,
    /// How old a delivery's timestamp a receiver should accept, in seconds.
    pub tolerance_s: i64,
}

fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn webhook_view(
    c: &heatbill_runtime::model::Company,
    s: &heatbill_runtime::store::events::WebhookSecret,
) -> Result<WebhookView, ApiError> {
    use heatbill_runtime::events::{WebhookEndpoint, now_ms, targets_of};
    Ok(WebhookView {
        url: WebhookEndpoint::of(&c.policies)
            .map_err(ApiError::unprocessable)?
            .map(|e| e.url),
        enabled: targets_of(&c.policies)
            .map_err(ApiError::unprocessable)?
            .iter()
            .any(|t| t == "webhook"),
        secret: s.secret.clone(),
        created_at: ms_text(s.created_at_ms),
        previous_signs_until: (s.previous.is_some() && s.previous_until_ms > now_ms())
            .then(|| ms_text(s.previous_until_ms)),
        header: heatbill_runtime::webhook::SIGNATURE.to_string(),
        tolerance_s: heatbill_runtime::webhook::TOLERANCE_S,
    })
}

/// The company's webhook endpoint and signing secret (made on first read). For the company's
/// integrators, who write the receiver, and the platform operator.
#[utoipa::path(get, operation_id = "webhook_read", path = "/v1/companies/{company}/webhook", tag = "events",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn webhook(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Rules>,
) -> Result<Json<WebhookView>, ApiError> {
    let fresh = heatbill_runtime::webhook::new_secret().map_err(ApiError::internal)?;
    let s = app
        .services
        .store
        .webhook_secret(c.id, &fresh, heatbill_runtime::events::now_ms(), None)
        .await?;
    Ok(Json(webhook_view(&c, &s)?))
}

/// A new signing secret. The previous one signs beside it (a second `v1=`) for 24 hours, so
/// the receiver can switch without refusing a delivery.
#[utoipa::path(post, operation_id = "webhook_rotate", path = "/v1/companies/{company}/webhook/rotate", tag = "events",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn rotate_webhook(
    State(app): State<App>,
    Tenant(c, caller, ..): Tenant<access::Rules>,
) -> Result<Json<WebhookView>, ApiError> {
    let fresh = heatbill_runtime::webhook::new_secret().map_err(ApiError::internal)?;
    let now = heatbill_runtime::events::now_ms();
    let s = app
        .services
        .store
        .webhook_secret(c.id, &fresh, now, Some(now + 24 * 3_600_000))
        .await?;
    tracing::info!(company = %c.slug, by = %caller.who(), "webhook secret rotated");
    Ok(Json(webhook_view(&c, &s)?))
}
