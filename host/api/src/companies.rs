//! Companies, their heating seasons, nightly schedules and tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use chrono::NaiveDate;
use heatbill_runtime::company::{check_slug, check_time_zone};
use heatbill_runtime::model::{Company, CompanySpec, Season, TokenRecord};
use heatbill_runtime::store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, ROLES, Tenant, access};
use super::error::{ErrorBody, JsonBody};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies", post(create).get(list))
        .route("/companies/{company}", get(read).put(update))
        .route("/companies/{company}/schedule", put(put_schedule))
        .route(
            "/companies/{company}/tokens",
            post(issue_token).get(list_tokens),
        )
        .route("/companies/{company}/tokens/{id}", delete(revoke_token))
}

/// A company as written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyBody {
    /// Short name used in URLs and by operators (`harbin`): lowercase letters, digits, `-`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// IANA time zone of the company (`Asia/Harbin`): its nightly run is at local time.
    pub time_zone: String,
    /// Company policies (JSON object, free form; read by plugins through parameters).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub policies: serde_json::Value,
    /// The regular heating season of each year.
    #[serde(default)]
    pub seasons: Vec<SeasonBody>,
}

/// A company update (the slug is the company's name in every URL and does not change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyUpdate {
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Company policies.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub policies: serde_json::Value,
    /// The heating seasons (replacing the stored ones).
    #[serde(default)]
    pub seasons: Vec<SeasonBody>,
}

/// A heating season, start and end inclusive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeasonBody {
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
}

/// A company as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyView {
    /// Short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Policies.
    #[schema(value_type = Object)]
    pub policies: serde_json::Value,
    /// Heating seasons.
    pub seasons: Vec<SeasonBody>,
    /// Bumped by every change of the company's data (imports, chains): caches key on it.
    pub data_version: i64,
    /// The nightly run's local time (`HH:MM`), if scheduled.
    pub daily_run_at: Option<String>,
}

impl CompanyView {
    fn of(c: Company, daily_run_at: Option<String>) -> CompanyView {
        CompanyView {
            slug: c.slug,
            name: c.name,
            time_zone: c.time_zone,
            policies: c.policies,
            seasons: c
                .seasons
                .into_iter()
                .map(|s| SeasonBody {
                    start: s.start,
                    end: s.end,
                })
                .collect(),
            data_version: c.data_version,
            daily_run_at,
        }
    }
}

async fn view(app: &App, c: Company) -> Result<CompanyView, ApiError> {
    let at = app
        .services
        .store
        .schedules()
        .await?
        .into_iter()
        .find(|(id, _)| *id == c.id)
        .map(|(_, at)| at);
    Ok(CompanyView::of(c, at))
}

fn spec(
    slug: String,
    name: String,
    time_zone: String,
    policies: serde_json::Value,
    seasons: Vec<SeasonBody>,
) -> Result<CompanySpec, ApiError> {
    check_slug(&slug).map_err(ApiError::unprocessable)?;
    check_time_zone(&time_zone).map_err(ApiError::unprocessable)?;
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::unprocessable(format!(
            "time zone {:?} is not in the time-zone database; give an IANA name such as \
             Asia/Harbin",
            heatbill_engine::text::safe(&time_zone)
        )));
    }
    let name = name.trim().to_string();
    if name.is_empty()
        || name.chars().count() > 200
        || name.chars().any(heatbill_engine::text::is_unsafe)
    {
        return Err(ApiError::unprocessable(
            "name: give 1 to 200 printable characters",
        ));
    }
    let policies = match policies {
        serde_json::Value::Null => serde_json::json!({}),
        p @ serde_json::Value::Object(_) => p,
        _ => return Err(ApiError::unprocessable("policies: give a JSON object")),
    };
    let mut seasons: Vec<Season> = seasons
        .into_iter()
        .map(|s| Season {
            start: s.start,
            end: s.end,
        })
        .collect();
    seasons.sort_by_key(|s| s.start);
    heatbill_runtime::company::check_policies(&policies, &seasons)
        .map_err(ApiError::unprocessable)?;
    for s in &seasons {
        if s.end < s.start {
            return Err(ApiError::unprocessable(format!(
                "season {} – {}: the end is before the start",
                s.start, s.end
            )));
        }
    }
    for w in seasons.windows(2) {
        if w[1].start <= w[0].end {
            return Err(ApiError::unprocessable(format!(
                "seasons {} – {} and {} – {} overlap",
                w[0].start, w[0].end, w[1].start, w[1].end
            )));
        }
    }
    Ok(CompanySpec {
        slug,
        name,
        time_zone,
        policies,
        seasons,
    })
}

/// Creates a company (operator).
#[utoipa::path(post, operation_id = "companies_create", path = "/v1/companies", tag = "companies", request_body = CompanyBody,
    security(("bearer" = [])),
    responses((status = 201, body = CompanyView), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    JsonBody(b): JsonBody<CompanyBody>,
) -> Result<(StatusCode, Json<CompanyView>), ApiError> {
    caller.operator()?;
    let spec = spec(b.slug, b.name, b.time_zone, b.policies, b.seasons)?;
    match app.services.store.company(&spec.slug).await {
        Ok(_) => {
            return Err(ApiError::conflict(format!(
                "company {:?} exists; update it with PUT /v1/companies/{}",
                spec.slug, spec.slug
            )));
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let c = app.services.store.put_company(&spec).await?;
    tracing::info!(company = %c.slug, "company created");
    Ok((StatusCode::CREATED, Json(view(&app, c).await?)))
}

/// Lists the companies the caller reaches (the operator: all; a company token: its own).
#[utoipa::path(get, operation_id = "companies_list", path = "/v1/companies", tag = "companies", security(("bearer" = [])),
    responses((status = 200, body = Vec<CompanyView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Vec<CompanyView>>, ApiError> {
    let all = app.services.store.companies().await?;
    let schedules = app.services.store.schedules().await?;
    let mut out = Vec::new();
    for c in all {
        let mine = match &caller {
            Caller::Operator => true,
            Caller::Company { company_id, .. } => *company_id == c.id,
        };
        if mine {
            let at = schedules
                .iter()
                .find(|(id, _)| *id == c.id)
                .map(|(_, at)| at.clone());
            out.push(CompanyView::of(c, at));
        }
    }
    Ok(Json(out))
}

/// Reads a company.
#[utoipa::path(get, operation_id = "companies_read", path = "/v1/companies/{company}", tag = "companies",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = CompanyView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
) -> Result<Json<CompanyView>, ApiError> {
    Ok(Json(view(&app, c).await?))
}

/// Updates a company's name, time zone, policies and seasons (operator).
#[utoipa::path(put, operation_id = "companies_update", path = "/v1/companies/{company}", tag = "companies",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = CompanyUpdate, security(("bearer" = [])),
    responses((status = 200, body = CompanyView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Operator>,
    JsonBody(b): JsonBody<CompanyUpdate>,
) -> Result<Json<CompanyView>, ApiError> {
    let spec = spec(c.slug, b.name, b.time_zone, b.policies, b.seasons)?;
    let c = app.services.store.put_company(&spec).await?;
    Ok(Json(view(&app, c).await?))
}

/// A nightly schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// Local time of the nightly run (`HH:MM`, in the company's time zone), which bills the
    /// day before; `null` removes the schedule.
    pub daily_run_at: Option<String>,
}

/// Checks `HH:MM`.
pub fn parse_run_at(s: &str) -> Result<chrono::NaiveTime, ApiError> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M")
        .ok()
        .filter(|_| s.len() == 5)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "daily_run_at {:?}: give a local time as HH:MM, e.g. \"02:30\"",
                heatbill_engine::text::safe(s)
            ))
        })
}

/// Sets or removes the company's nightly run (operator or staff).
#[utoipa::path(put, operation_id = "companies_put_schedule", path = "/v1/companies/{company}/schedule", tag = "companies",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = ScheduleBody, security(("bearer" = [])),
    responses((status = 200, body = CompanyView), (status = 422, body = ErrorBody)))]
pub async fn put_schedule(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    JsonBody(b): JsonBody<ScheduleBody>,
) -> Result<Json<CompanyView>, ApiError> {
    if let Some(at) = &b.daily_run_at {
        parse_run_at(at)?;
    }
    app.services
        .store
        .put_schedule(c.id, b.daily_run_at.as_deref())
        .await?;
    Ok(Json(view(&app, c).await?))
}

/// A token to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// `integrator`, `staff` or `read-only`.
    pub role: String,
    /// What the token is for (a person, a system).
    pub label: String,
}

/// A token as listed (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id (to revoke it).
    pub id: i64,
    /// Its role.
    pub role: String,
    /// What it is for.
    pub label: String,
    /// When it was issued (UTC).
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> TokenView {
        TokenView {
            id: t.id,
            role: t.role,
            label: t.label,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A newly issued token: the only time the token is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The token: keep it; it cannot be shown again.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub record: TokenView,
}

/// Issues a company token (operator).
#[utoipa::path(post, operation_id = "companies_issue_token", path = "/v1/companies/{company}/tokens", tag = "companies",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = TokenBody, security(("bearer" = [])),
    responses((status = 201, body = IssuedToken), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn issue_token(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Operator>,
    JsonBody(b): JsonBody<TokenBody>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    if !ROLES.contains(&b.role.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "role {:?}: give one of integrator, staff, read-only",
            heatbill_engine::text::safe(&b.role)
        )));
    }
    let label = b.label.trim();
    if label.is_empty()
        || label.chars().count() > 100
        || label.chars().any(heatbill_engine::text::is_unsafe)
    {
        return Err(ApiError::unprocessable(
            "label: give 1 to 100 printable characters saying what the token is for",
        ));
    }
    let token = super::auth::new_token()?;
    let record = app
        .services
        .store
        .put_token(
            c.id,
            &b.role,
            label,
            &hex::encode(super::auth::hash(&token)),
        )
        .await?;
    tracing::info!(company = %c.slug, token_id = record.id, role = %record.role, "token issued");
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            token,
            record: record.into(),
        }),
    ))
}

/// Lists a company's tokens (operator).
#[utoipa::path(get, operation_id = "companies_list_tokens", path = "/v1/companies/{company}/tokens", tag = "companies",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Operator>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let list = app.services.store.tokens(c.id).await?;
    Ok(Json(list.into_iter().map(TokenView::from).collect()))
}

/// Revokes a company token (operator): it stops working at once.
#[utoipa::path(delete, operation_id = "companies_revoke_token", path = "/v1/companies/{company}/tokens/{id}", tag = "companies",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The token's id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Operator>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    if app.services.store.revoke_token(c.id, id).await? {
        tracing::info!(company = %c.slug, token_id = id, "token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "company {} has no live token {id}",
            c.slug
        )))
    }
}
