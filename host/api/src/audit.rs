//! The audit of a company's books (`heatbill audit` over HTTP): open and stale dates, bill
//! totals against their lines, balances carried from day to day, the history of re-billed
//! customers. It only reads; a range is at most [`MAX_DAYS`] dates.

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::NaiveDate;
use heatbill_runtime::audit::{self, AuditOptions};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Tenant, access};
use super::error::ErrorBody;
use super::error::parse_date;
use super::{ApiError, App};

/// The most dates one audit request covers (a million customers take seconds per date).
pub const MAX_DAYS: i64 = 31;

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new().route("/companies/{company}/audit", get(read))
}

/// The range to audit.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The first date, `YYYY-MM-DD` (default: six days before the last billed date).
    pub from: Option<String>,
    /// The last date, `YYYY-MM-DD` (default: the last billed date).
    pub to: Option<String>,
}

/// One thing wrong with the books.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `open-run`, `stale-date`, `totals`, `principal`, `balance` or `history`.
    pub kind: String,
    /// The date.
    pub date: NaiveDate,
    /// The customer, when it is about one.
    pub customer: Option<String>,
    /// What is wrong, with the figures.
    pub detail: String,
}

/// What the audit found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditBody {
    /// Whether the books are in order (no problem found).
    pub ok: bool,
    /// The range audited.
    pub from: NaiveDate,
    /// The range audited.
    pub to: NaiveDate,
    /// Dates of the range that have a run.
    pub dates: u64,
    /// Bills read.
    pub bills: u64,
    /// Problems found, all of them.
    pub problems_found: u64,
    /// The first 100 problems, by date.
    pub problems: Vec<ProblemBody>,
    /// Dates that must be run again (stale, or their run still open).
    pub stale_dates: Vec<NaiveDate>,
}

/// Audits the company's books over a range of dates.
#[utoipa::path(get, operation_id = "audit_read", path = "/v1/companies/{company}/audit", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"), AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditBody), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditBody>, ApiError> {
    let from = q
        .from
        .as_deref()
        .map(|s| parse_date("from", s))
        .transpose()?;
    let to = q.to.as_deref().map(|s| parse_date("to", s)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && ((t - f).num_days() >= MAX_DAYS || t < f)
    {
        return Err(ApiError::bad_request(format!(
            "from {f} to {t}: an audit covers 1 to {MAX_DAYS} dates; audit a longer range in \
             parts"
        )));
    }
    let options = AuditOptions {
        from: from.or(to.map(|t| t - chrono::Days::new(6))),
        to: to.or(from.map(|f| f + chrono::Days::new(6))),
        shard_size: app.settings.run.shard_size.max(1),
        max_listed: 100,
    };
    let r = audit::audit(app.services.store.as_ref(), &c.slug, &options).await?;
    Ok(Json(AuditBody {
        ok: r.ok(),
        from: r.from,
        to: r.to,
        dates: r.dates,
        bills: r.bills,
        problems_found: r.problems_found,
        problems: r
            .problems
            .into_iter()
            .map(|p| ProblemBody {
                kind: p.kind,
                date: p.date,
                customer: p.customer,
                detail: p.detail,
            })
            .collect(),
        stale_dates: r.stale_dates,
    }))
}
