//! Payment notices (缴费通知单): the company's notices as JSON or CSV, one notice, a printable
//! notice, and what a customer owes by notice at a date. Notices are issued by the nightly run
//! (see the runtime's `notices` module); nothing here issues or edits one.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::NaiveDate;
use heatbill_runtime::ledger;
use heatbill_runtime::notices::{self, Addressee, Notice, NoticeLine, NoticeStanding};
use heatbill_runtime::store::notices::{MAX_NOTICES_PAGE, NoticeFilter};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::{AsOfQuery, not_found, plausible};
use super::auth::{Tenant, access};
use super::error::{ErrorBody, check_id, page_limit};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/notices", get(list))
        .route("/companies/{company}/notices/{id}", get(read))
        .route("/companies/{company}/notices/{id}/print", get(print))
        .route(
            "/companies/{company}/customers/{customer}/notices",
            get(standing),
        )
}

/// One line code's part of a notice.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeLineView {
    /// The line code.
    pub code: String,
    /// Its text on the bills.
    pub description: String,
    /// The amount (negative: a subsidy or refund).
    #[schema(value_type = String)]
    pub amount: Decimal,
}

impl From<NoticeLine> for NoticeLineView {
    fn from(l: NoticeLine) -> NoticeLineView {
        NoticeLineView {
            code: l.code,
            description: l.description,
            amount: l.amount,
        }
    }
}

/// A payment notice.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeView {
    /// Its id.
    pub id: i64,
    /// Its printed number, `N-000123`.
    pub number: String,
    /// The customer.
    pub customer_id: String,
    /// `month` or `season`.
    pub kind: String,
    /// The period's first day.
    pub period_start: NaiveDate,
    /// Its last day.
    pub period_end: NaiveDate,
    /// 0: the period's first notice; 1, 2, …: adjusting notices.
    pub seq: i32,
    /// When it was issued.
    pub issued_on: NaiveDate,
    /// When it is due (late from the next day).
    pub due_on: NaiveDate,
    /// What it asks for.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// Whether the amount is a projection (a season notice issued before the season was billed).
    pub projected: bool,
    /// By line code.
    pub lines: Vec<NoticeLineView>,
}

impl From<Notice> for NoticeView {
    fn from(n: Notice) -> NoticeView {
        NoticeView {
            number: n.number(),
            id: n.id,
            customer_id: n.customer_id,
            kind: n.kind.as_str().into(),
            period_start: n.period_start,
            period_end: n.period_end,
            seq: n.seq,
            issued_on: n.issued_on,
            due_on: n.due_on,
            amount: n.amount,
            projected: n.projected,
            lines: n.lines.into_iter().map(NoticeLineView::from).collect(),
        }
    }
}

/// Which notices, and how.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One customer's.
    pub customer: Option<String>,
    /// Issued on this day.
    pub issued_on: Option<NaiveDate>,
    /// Due on this day.
    pub due_on: Option<NaiveDate>,
    /// Of the period that starts on this day.
    pub period_start: Option<NaiveDate>,
    /// After this id (the `next` of the previous page).
    pub after: Option<i64>,
    /// At most this many (default 1,000; at most 10,000).
    pub limit: Option<usize>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// A page of notices.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticePage {
    /// The notices, by id.
    pub notices: Vec<NoticeView>,
    /// The `after` of the next page, when there may be one.
    pub next: Option<i64>,
}

/// The company's notices, by id, a page at a time; with `format=csv`, the page as CSV.
#[utoipa::path(get, operation_id = "notices_list", path = "/v1/companies/{company}/notices", tag = "notices",
    params(("company" = String, Path, description = "The company's slug"), ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = NoticePage, description = "JSON; with format=csv, text/csv"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ListQuery>,
) -> Result<axum::response::Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {:?}: give json or csv",
                heatbill_engine::text::safe(f)
            )));
        }
    };
    if let Some(id) = &q.customer {
        check_id("customer", id)?;
    }
    let limit = page_limit(Some(q.limit.unwrap_or(1000)), MAX_NOTICES_PAGE)?;
    let filter = NoticeFilter {
        customer_id: q.customer.clone(),
        issued_on: q.issued_on.map(|d| plausible("issued_on", d)).transpose()?,
        due_on: q.due_on.map(|d| plausible("due_on", d)).transpose()?,
        period_start: q
            .period_start
            .map(|d| plausible("period_start", d))
            .transpose()?,
        after_id: q.after.unwrap_or(0).max(0),
        limit,
    };
    let found = app.services.store.notices(c.id, &filter).await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|n| n.id))
        .flatten();
    if csv {
        let mut body = String::from(notices::NOTICES_CSV_HEADER);
        for n in &found {
            body.push_str(&n.csv());
        }
        return Ok((
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}-notices.csv\"", c.slug),
                ),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(NoticePage {
        notices: found.into_iter().map(NoticeView::from).collect(),
        next,
    })
    .into_response())
}

async fn notice(
    app: &App,
    c: &heatbill_runtime::model::Company,
    id: i64,
) -> Result<Notice, ApiError> {
    app.services.store.notice(c.id, id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "company {} has no notice {id}: list them with GET /v1/companies/{}/notices",
            c.slug, c.slug
        ))
    })
}

/// One notice.
#[utoipa::path(get, operation_id = "notices_read", path = "/v1/companies/{company}/notices/{id}", tag = "notices",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The notice's id")),
    security(("bearer" = [])),
    responses((status = 200, body = NoticeView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Json<NoticeView>, ApiError> {
    Ok(Json(notice(&app, &c, id).await?.into()))
}

/// A printable notice: one HTML page (no script, nothing loaded from elsewhere), addressed with
/// the customer's profile in force on the issue date. Staff only: it shows the name.
#[utoipa::path(get, operation_id = "notices_print", path = "/v1/companies/{company}/notices/{id}/print", tag = "notices",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The notice's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "text/html", content_type = "text/html"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn print(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<axum::response::Response, ApiError> {
    let n = notice(&app, &c, id).await?;
    let to = addressee(&app, &c, &n).await?;
    tracing::info!(company = %c.slug, notice = id, caller = ?caller, "notice printed");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        notices::printable(&c.name, &n, &to),
    )
        .into_response())
}

/// Who a notice is addressed to: the customer's profile in force on its issue date.
pub(crate) async fn addressee(
    app: &App,
    c: &heatbill_runtime::model::Company,
    n: &Notice,
) -> Result<Addressee, ApiError> {
    let p = app
        .services
        .store
        .profile_on(c.id, &n.customer_id, n.issued_on)
        .await?;
    Ok(Addressee::of(p.map(|p| p.profile)))
}

/// A notice and what the customer's credits paid of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StandingView {
    /// The notice.
    pub notice: NoticeView,
    /// What the credits paid of it.
    #[schema(value_type = String)]
    pub paid: Decimal,
    /// What is left.
    #[schema(value_type = String)]
    pub outstanding: Decimal,
    /// Past its due date with something left.
    pub overdue: bool,
}

impl From<NoticeStanding> for StandingView {
    fn from(s: NoticeStanding) -> StandingView {
        StandingView {
            notice: s.notice.into(),
            paid: s.paid,
            outstanding: s.outstanding,
            overdue: s.overdue,
        }
    }
}

/// What a customer owes by notice at the end of a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerNotices {
    /// The customer.
    pub customer_id: String,
    /// The date (its end).
    pub as_of: NaiveDate,
    /// Left of notices past their due date.
    #[schema(value_type = String)]
    pub overdue: Decimal,
    /// Left of notices not yet due.
    #[schema(value_type = String)]
    pub not_yet_due: Decimal,
    /// The notices issued up to the date, by due date: the ledger's credits (after the
    /// opening balance, and after late fees for a fees-first company) settle the oldest due
    /// first.
    pub notices: Vec<StandingView>,
}

/// What a customer owes by notice at the end of a date: each notice issued up to it, what
/// the ledger's credits paid of it, what is left, and whether it is overdue.
#[utoipa::path(get, operation_id = "notices_customer", path = "/v1/companies/{company}/customers/{customer}/notices", tag = "notices",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id"), AsOfQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CustomerNotices), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn standing(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, customer)): Path<(String, String)>,
    Query(q): Query<AsOfQuery>,
) -> Result<Json<CustomerNotices>, ApiError> {
    check_id("customer", &customer)?;
    let store = &app.services.store;
    if !store.has_customer(c.id, &customer).await? {
        return Err(not_found(&c, &customer));
    }
    let as_of = plausible(
        "as_of",
        q.as_of.unwrap_or_else(|| ledger::local_today(&c.time_zone)),
    )?;
    let policy = ledger::Allocation::of(&c.policies).map_err(ApiError::unprocessable)?;
    let rows = store
        .customer_standing(c.id, &customer, as_of, policy)
        .await?;
    let sum = |overdue: bool| {
        ledger::fen(
            rows.iter()
                .filter(|r| r.overdue == overdue)
                .map(|r| r.outstanding)
                .sum(),
        )
    };
    Ok(Json(CustomerNotices {
        customer_id: customer,
        as_of,
        overdue: sum(true),
        not_yet_due: sum(false),
        notices: rows.into_iter().map(StandingView::from).collect(),
    }))
}
