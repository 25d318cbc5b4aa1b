//! The customer directory: finding a customer by account number, name, phone or address, a
//! customer's profile and its revisions, and recording a new revision (a correction says who
//! and why; nothing is edited in place).
//!
//! Names and phone numbers are personal data: answers show them masked (`张**`,
//! `138****5678`) unless a staff token (or the operator) asks with `reveal=true`; the asking is
//! logged (who, which company, how many customers), the data never is.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::NaiveDate;
use heatbill_runtime::directory::{
    self, NewProfile, Profile, ProfileRecorded, ProfileVersion, Search,
};
use heatbill_runtime::ledger;
use heatbill_runtime::model::Company;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Tenant, access};
use super::error::{ErrorBody, JsonBody, check_id};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/customers", get(search))
        .route(
            "/companies/{company}/customers/{customer}/profile",
            get(profile).post(record),
        )
}

/// A customer's profile (name and phone masked unless revealed).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// The customer.
    pub customer_id: String,
    /// The first date this revision is in force.
    pub valid_from: NaiveDate,
    /// The account number (户号).
    pub account_no: Option<String>,
    /// The name (masked unless revealed).
    pub name: Option<String>,
    /// The phone number (masked unless revealed).
    pub phone: Option<String>,
    /// The community (小区).
    pub community: Option<String>,
    /// The building (楼号).
    pub building: Option<String>,
    /// The unit (单元).
    pub unit: Option<String>,
    /// The room (房号).
    pub room: Option<String>,
    /// The revision's id.
    pub revision: i64,
    /// Why it was recorded.
    pub reason: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// Where from (`import`, `api`, `cli`).
    pub source: String,
    /// When (UTC).
    pub recorded_at: String,
}

fn view(v: ProfileVersion, reveal: bool) -> ProfileView {
    let p = if reveal {
        v.profile
    } else {
        v.profile.masked()
    };
    ProfileView {
        customer_id: v.customer_id,
        valid_from: v.valid_from,
        account_no: p.account_no,
        name: p.name,
        phone: p.phone,
        community: p.community,
        building: p.building,
        unit: p.unit,
        room: p.room,
        revision: v.id,
        reason: v.reason,
        recorded_by: v.recorded_by,
        source: v.source,
        recorded_at: v.recorded_at,
    }
}

/// Whether the caller may see personal data: staff and the operator, when they ask.
pub(crate) fn may_reveal(
    c: &Company,
    caller: &Caller,
    asked: bool,
    what: &str,
    count: usize,
) -> bool {
    let allowed = match caller {
        Caller::Operator => true,
        Caller::Company { role, .. } => role == "staff",
    };
    if asked && allowed {
        tracing::info!(company = %c.slug, by = %caller.who(), what, customers = count,
            "personal data revealed");
    }
    asked && allowed
}

/// A search of the directory: at least one criterion; customers meet all that are given.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The account number, exact.
    pub account_no: Option<String>,
    /// The start of the name.
    pub name: Option<String>,
    /// The last digits of the phone number (at least 3).
    pub phone: Option<String>,
    /// The community, exact.
    pub community: Option<String>,
    /// The building, exact (with the community).
    pub building: Option<String>,
    /// The unit, exact (with the building).
    pub unit: Option<String>,
    /// The room, exact (with the unit).
    pub room: Option<String>,
    /// At most this many (1 to 200; 50 when absent).
    pub limit: Option<usize>,
    /// Show names and phone numbers unmasked (staff only; logged).
    pub reveal: Option<bool>,
}

/// Customers found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchView {
    /// Their newest profiles, ordered by the field searched, then customer id.
    pub customers: Vec<ProfileView>,
    /// Whether names and phone numbers are masked.
    pub masked: bool,
    /// Whether there may be more than `limit` (ask again more precisely).
    pub more: bool,
}

/// Finds customers by account number, name prefix, the phone number's last digits or address
/// (community, then building, unit and room), in their newest profiles.
#[utoipa::path(get, operation_id = "customers_search", path = "/v1/companies/{company}/customers", tag = "customers",
    params(("company" = String, Path, description = "The company's slug"), SearchQuery),
    security(("bearer" = [])),
    responses((status = 200, body = SearchView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn search(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Read>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchView>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let s = Search {
        account_no: q.account_no,
        name: q.name,
        phone_suffix: q.phone,
        community: q.community,
        building: q.building,
        unit: q.unit,
        room: q.room,
        // One more than asked: whether there are more.
        limit: limit.saturating_add(1),
    };
    if limit == 0 || limit > directory::MAX_RESULTS {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: give 1 to {}",
            directory::MAX_RESULTS
        )));
    }
    s.key().map_err(ApiError::bad_request)?;
    let mut found = app.services.store.search_customers(c.id, &s).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let reveal = may_reveal(&c, &caller, q.reveal == Some(true), "search", found.len());
    if q.reveal == Some(true) && !reveal {
        return Err(ApiError::forbidden(
            "names and phone numbers are shown to staff only: ask without reveal, or with a \
             staff token",
        ));
    }
    Ok(Json(SearchView {
        customers: found.into_iter().map(|v| view(v, reveal)).collect(),
        masked: !reveal,
        more,
    }))
}

/// A profile's date and whether to reveal it.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProfileQuery {
    /// The profile in force on this date (the newest when absent).
    pub as_of: Option<NaiveDate>,
    /// Every revision, oldest first, instead of the one in force.
    pub history: Option<bool>,
    /// Show the name and phone number unmasked (staff only; logged).
    pub reveal: Option<bool>,
}

/// A customer's profile revisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfilesView {
    /// The customer.
    pub customer_id: String,
    /// The revision in force on `as_of` (or the newest), or every revision with `history`.
    pub revisions: Vec<ProfileView>,
    /// Whether names and phone numbers are masked.
    pub masked: bool,
}

fn unknown(c: &Company, customer: &str) -> ApiError {
    ApiError::not_found(format!(
        "company {} has no customer {:?}",
        c.slug,
        heatbill_engine::text::safe(customer)
    ))
}

/// A customer's profile in force on a date (or the newest), or its every revision.
#[utoipa::path(get, operation_id = "customers_profile", path = "/v1/companies/{company}/customers/{customer}/profile", tag = "customers",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id"), ProfileQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ProfilesView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn profile(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Read>,
    Path((_company, customer)): Path<(String, String)>,
    Query(q): Query<ProfileQuery>,
) -> Result<Json<ProfilesView>, ApiError> {
    check_id("customer", &customer)?;
    let store = &app.services.store;
    if !store.has_customer(c.id, &customer).await? {
        return Err(unknown(&c, &customer));
    }
    let revisions = if q.history == Some(true) {
        store.profile_history(c.id, &customer).await?
    } else {
        // The newest: the last date a request may name.
        let on = q
            .as_of
            .unwrap_or(NaiveDate::from_ymd_opt(9999, 12, 31).expect("a date"));
        store
            .profile_on(c.id, &customer, on)
            .await?
            .into_iter()
            .collect()
    };
    let reveal = may_reveal(&c, &caller, q.reveal == Some(true), "profile", 1);
    if q.reveal == Some(true) && !reveal {
        return Err(ApiError::forbidden(
            "names and phone numbers are shown to staff only: ask without reveal, or with a \
             staff token",
        ));
    }
    Ok(Json(ProfilesView {
        customer_id: customer,
        revisions: revisions.into_iter().map(|v| view(v, reveal)).collect(),
        masked: !reveal,
    }))
}

/// A new revision of a customer's profile: the whole profile from `valid_from` (a field left
/// out is empty in this revision).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// The first date it is in force (today in the company's time zone when absent; a past
    /// date corrects the revision in force from it).
    pub valid_from: Option<NaiveDate>,
    /// The account number (户号): one customer's in the company.
    pub account_no: Option<String>,
    /// The name.
    pub name: Option<String>,
    /// The phone number (spaces and hyphens are dropped).
    pub phone: Option<String>,
    /// The community (小区).
    pub community: Option<String>,
    /// The building (楼号), with the community.
    pub building: Option<String>,
    /// The unit (单元), with the building.
    pub unit: Option<String>,
    /// The room (房号), with the unit.
    pub room: Option<String>,
    /// Why (required).
    pub reason: String,
}

/// Whether a revision was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileRecordedView {
    /// False when the revision in force for that date already said exactly this.
    pub new: bool,
    /// The revision (unmasked: the caller just sent it).
    pub profile: ProfileView,
}

/// Records a new revision of a customer's profile (staff). The same profile again for the
/// same date changes nothing (200); an account number another customer holds is a 409.
#[utoipa::path(post, operation_id = "customers_record_profile", path = "/v1/companies/{company}/customers/{customer}/profile", tag = "customers",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id")),
    request_body = ProfileBody,
    security(("bearer" = [])),
    responses((status = 201, body = ProfileRecordedView), (status = 200, body = ProfileRecordedView, description = "Recorded before: nothing changed"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, customer)): Path<(String, String)>,
    JsonBody(b): JsonBody<ProfileBody>,
) -> Result<(StatusCode, Json<ProfileRecordedView>), ApiError> {
    check_id("customer", &customer)?;
    let valid_from = b
        .valid_from
        .unwrap_or_else(|| ledger::local_today(&c.time_zone));
    {
        use chrono::Datelike;
        if !(1900..=9999).contains(&valid_from.year()) {
            return Err(ApiError::bad_request(format!(
                "valid_from {valid_from}: give a date between 1900-01-01 and 9999-12-31"
            )));
        }
    }
    let profile = Profile {
        account_no: b.account_no,
        name: b.name,
        phone: b.phone,
        community: b.community,
        building: b.building,
        unit: b.unit,
        room: b.room,
    }
    .normalized()
    .map_err(|(what, why)| ApiError::unprocessable(format!("{what}: {why}")))?;
    ledger::check_text("reason", &b.reason, 200).map_err(ApiError::unprocessable)?;
    let p = NewProfile {
        customer_id: customer,
        valid_from,
        profile,
        reason: b.reason,
        recorded_by: caller.who(),
        source: "api".into(),
    };
    let r = app.services.store.record_profile(c.id, &p).await?;
    Ok(match r {
        ProfileRecorded::New(v) => {
            tracing::info!(company = %c.slug, revision = v.id, by = %caller.who(),
                "customer profile recorded");
            (
                StatusCode::CREATED,
                Json(ProfileRecordedView {
                    new: true,
                    profile: view(v, true),
                }),
            )
        }
        ProfileRecorded::Same(v) => (
            StatusCode::OK,
            Json(ProfileRecordedView {
                new: false,
                profile: view(v, true),
            }),
        ),
    })
}
