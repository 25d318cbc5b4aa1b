//! The government's share of subsidies: the receivable (billed, received, outstanding by
//! month), the transfers the government sends, and the settlement list (政府补贴结算) of a
//! period. Names on the list are masked unless a staff token asks with `reveal=true` (logged).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::NaiveDate;
use heatbill_runtime::directory::mask_name;
use heatbill_runtime::ledger;
use heatbill_runtime::subsidy::{
    self, MonthFigure, NewTransfer, Receivable, SettlementLine, SettlementTotals, Transfer,
    TransferRecorded,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::{check_date, plausible};
use super::auth::{Tenant, access};
use super::directory::may_reveal;
use super::error::{ErrorBody, JsonBody};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/subsidy/receivable", get(receivable))
        .route(
            "/companies/{company}/subsidy/transfers",
            get(transfers).post(record_transfer),
        )
        .route("/companies/{company}/subsidy/settlement", get(settlement))
}

/// A date (its end); today in the company's time zone when absent.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReceivableQuery {
    /// The date: bills and transfers dated up to it count.
    pub as_of: Option<NaiveDate>,
}

/// One month of the government receivable.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthView {
    /// `YYYY-MM`.
    pub month: String,
    /// The government's share of the month's bills.
    #[schema(value_type = String)]
    pub billed: Decimal,
    /// What transfers have settled of it.
    #[schema(value_type = String)]
    pub settled: Decimal,
    /// Still owed.
    #[schema(value_type = String)]
    pub outstanding: Decimal,
}

impl From<MonthFigure> for MonthView {
    fn from(m: MonthFigure) -> MonthView {
        MonthView {
            month: m.month,
            billed: m.billed,
            settled: m.settled,
            outstanding: m.outstanding,
        }
    }
}

/// The government receivable at the end of a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivableView {
    /// Bills and transfers dated up to it count.
    pub as_of: NaiveDate,
    /// The government's share of every bill up to `as_of`.
    #[schema(value_type = String)]
    pub billed: Decimal,
    /// Transfers received up to `as_of`, net of what was undone.
    #[schema(value_type = String)]
    pub received: Decimal,
    /// Still owed by the government.
    #[schema(value_type = String)]
    pub outstanding: Decimal,
    /// Received beyond what was billed.
    #[schema(value_type = String)]
    pub paid_ahead: Decimal,
    /// By month, oldest first: each transfer settles the months of the period it names first,
    /// then the oldest months still open.
    pub months: Vec<MonthView>,
}

impl From<Receivable> for ReceivableView {
    fn from(r: Receivable) -> ReceivableView {
        ReceivableView {
            as_of: r.as_of,
            billed: r.billed,
            received: r.received,
            outstanding: r.outstanding,
            paid_ahead: r.paid_ahead,
            months: r.months.into_iter().map(MonthView::from).collect(),
        }
    }
}

/// The government receivable: its share of the bills (the lines it pays) by month, the
/// transfers received, and what is outstanding.
#[utoipa::path(get, operation_id = "subsidy_receivable", path = "/v1/companies/{company}/subsidy/receivable", tag = "subsidy",
    params(("company" = String, Path, description = "The company's slug"), ReceivableQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ReceivableView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn receivable(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ReceivableQuery>,
) -> Result<Json<ReceivableView>, ApiError> {
    let as_of = plausible(
        "as_of",
        q.as_of.unwrap_or_else(|| ledger::local_today(&c.time_zone)),
    )?;
    Ok(Json(
        app.services
            .store
            .government_receivable(c.id, as_of)
            .await?
            .into(),
    ))
}

/// A government transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    /// Its id.
    pub id: i64,
    /// Its reference in the bank or treasury.
    pub reference: String,
    /// The day the money arrived.
    pub received_on: NaiveDate,
    /// Yuan; negative takes back (some of) the transfer named by `undoes`.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The settlement period it pays for.
    pub period_from: Option<NaiveDate>,
    /// The period's last day.
    pub period_to: Option<NaiveDate>,
    /// The transfer a negative one undoes.
    pub undoes: Option<i64>,
    /// A note.
    pub note: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// `api`, `cli`.
    pub source: String,
    /// When (UTC).
    pub recorded_at: String,
}

impl From<Transfer> for TransferView {
    fn from(t: Transfer) -> TransferView {
        TransferView {
            id: t.id,
            reference: t.reference,
            received_on: t.received_on,
            amount: t.amount,
            period_from: t.period_from,
            period_to: t.period_to,
            undoes: t.undoes,
            note: t.note,
            recorded_by: t.recorded_by,
            source: t.source,
            recorded_at: t.recorded_at,
        }
    }
}

/// The transfers received up to a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransfersView {
    /// By date, then as recorded.
    pub transfers: Vec<TransferView>,
}

/// The government transfers received up to `as_of` (today when absent).
#[utoipa::path(get, operation_id = "subsidy_transfers", path = "/v1/companies/{company}/subsidy/transfers", tag = "subsidy",
    params(("company" = String, Path, description = "The company's slug"), ReceivableQuery),
    security(("bearer" = [])),
    responses((status = 200, body = TransfersView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn transfers(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ReceivableQuery>,
) -> Result<Json<TransfersView>, ApiError> {
    let as_of = plausible(
        "as_of",
        q.as_of.unwrap_or_else(|| ledger::local_today(&c.time_zone)),
    )?;
    let list = app.services.store.transfers(c.id, as_of).await?;
    Ok(Json(TransfersView {
        transfers: list.into_iter().map(TransferView::from).collect(),
    }))
}

/// A government transfer to record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The transfer's reference in the bank or treasury: the same reference again is the same
    /// transfer (200, nothing recorded).
    pub reference: String,
    /// Yuan, at most two decimals (a string: `"94200.00"`); negative with `undoes`.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The day the money arrived (today when absent; never later).
    pub received_on: Option<NaiveDate>,
    /// The first day of the settlement period it pays for (with `period_to`).
    pub period_from: Option<NaiveDate>,
    /// The period's last day.
    pub period_to: Option<NaiveDate>,
    /// The transfer a negative amount takes back (some of).
    pub undoes: Option<i64>,
    /// A note.
    pub note: Option<String>,
}

/// What recording a transfer did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferRecordedView {
    /// False when the same transfer was recorded before: nothing changed.
    pub new: bool,
    /// The transfer.
    pub transfer: TransferView,
}

/// Records a government transfer (staff). Idempotent by reference: the same transfer again
/// answers 200 with the one recorded first; the same reference with another date or amount is
/// a 409. A transfer is never changed: a negative transfer naming it (`undoes`) takes back what
/// was returned or recorded wrong.
#[utoipa::path(post, operation_id = "subsidy_record_transfer", path = "/v1/companies/{company}/subsidy/transfers", tag = "subsidy",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = TransferBody,
    security(("bearer" = [])),
    responses((status = 201, body = TransferRecordedView, description = "Recorded"),
        (status = 200, body = TransferRecordedView, description = "Recorded before: nothing changed"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn record_transfer(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    JsonBody(b): JsonBody<TransferBody>,
) -> Result<(StatusCode, Json<TransferRecordedView>), ApiError> {
    let received_on = check_date(&c, "received_on", b.received_on)?;
    for (what, d) in [("period_from", b.period_from), ("period_to", b.period_to)] {
        if let Some(d) = d {
            plausible(what, d)?;
        }
    }
    let t = NewTransfer {
        reference: b.reference,
        received_on,
        amount: b.amount,
        period_from: b.period_from,
        period_to: b.period_to,
        undoes: b.undoes,
        note: b.note,
        recorded_by: caller.who(),
        source: "api".into(),
    };
    t.check().map_err(ApiError::unprocessable)?;
    let r = app.services.store.record_transfer(c.id, &t).await?;
    let new = matches!(r, TransferRecorded::New(_));
    let transfer = match r {
        TransferRecorded::New(t) | TransferRecorded::Again(t) => t.into(),
    };
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(TransferRecordedView { new, transfer }),
    ))
}

/// A settlement list's period and format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SettlementQuery {
    /// The period's first day.
    pub from: NaiveDate,
    /// Its last day (at most 366 days after `from`).
    pub to: NaiveDate,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
    /// Show names unmasked (staff only; logged).
    pub reveal: Option<bool>,
}

/// One customer of a settlement list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementLineView {
    /// The customer.
    pub customer_id: String,
    /// The account number (户号), from the profile in force on the period's last day.
    pub account_no: Option<String>,
    /// The name (masked unless revealed).
    pub name: Option<String>,
    /// The community (小区).
    pub community: Option<String>,
    /// The building (楼号).
    pub building: Option<String>,
    /// The unit (单元).
    pub unit: Option<String>,
    /// The room (房号).
    pub room: Option<String>,
    /// The days of the period billed with a government share.
    pub days: u32,
    /// The first of them.
    pub first_day: NaiveDate,
    /// The last of them.
    pub last_day: NaiveDate,
    /// The government's share of those days.
    #[schema(value_type = String)]
    pub amount: Decimal,
}

impl From<SettlementLine> for SettlementLineView {
    fn from(l: SettlementLine) -> SettlementLineView {
        SettlementLineView {
            customer_id: l.customer_id,
            account_no: l.account_no,
            name: l.name,
            community: l.community,
            building: l.building,
            unit: l.unit,
            room: l.room,
            days: l.days,
            first_day: l.first_day,
            last_day: l.last_day,
            amount: ledger::fen(l.amount),
        }
    }
}

/// A settlement list (政府补贴结算).
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementView {
    /// The period's first day.
    pub from: NaiveDate,
    /// Its last day.
    pub to: NaiveDate,
    /// Customers with a government share.
    pub customers: u64,
    /// Their days with a government share.
    pub days: u64,
    /// What the list asks the government to pay.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// By customer id.
    pub lines: Vec<SettlementLineView>,
}

/// The settlement list of a period (政府补贴结算): each customer whose bills carry a
/// government share, with account number, name and address, days and amount, and the totals;
/// JSON, or CSV (`customer,account_no,name,community,building,unit,room,days,first_day,last_day,amount`,
/// closed by a `total` row).
#[utoipa::path(get, operation_id = "subsidy_settlement", path = "/v1/companies/{company}/subsidy/settlement", tag = "subsidy",
    params(("company" = String, Path, description = "The company's slug"), SettlementQuery),
    security(("bearer" = [])),
    responses((status = 200, body = SettlementView, description = "JSON; with format=csv, text/csv"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn settlement(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Read>,
    Query(q): Query<SettlementQuery>,
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
    let (from, to) = (plausible("from", q.from)?, plausible("to", q.to)?);
    if to < from || (to - from).num_days() > 366 {
        return Err(ApiError::bad_request(
            "give from <= to, at most 366 days apart",
        ));
    }
    let mut lines = app.services.store.settlement(c.id, from, to).await?;
    let reveal = may_reveal(
        &c,
        &caller,
        q.reveal == Some(true),
        "subsidy settlement",
        lines.len(),
    );
    if q.reveal == Some(true) && !reveal {
        return Err(ApiError::forbidden(
            "names are shown to staff only: ask without reveal, or with a staff token",
        ));
    }
    if !reveal {
        for l in &mut lines {
            l.name = l.name.as_deref().map(mask_name);
        }
    }
    let mut totals = SettlementTotals::default();
    for l in &lines {
        totals.add(l);
    }
    if csv {
        let mut body = String::from(subsidy::SETTLEMENT_CSV_HEADER);
        for l in &lines {
            body.push_str(&l.csv());
        }
        body.push_str(&totals.csv());
        return Ok((
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}-subsidy-settlement-{from}-{to}.csv\"",
                        c.slug
                    ),
                ),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(SettlementView {
        from,
        to,
        customers: totals.customers,
        days: totals.days,
        amount: ledger::fen(totals.amount),
        lines: lines.into_iter().map(SettlementLineView::from).collect(),
    })
    .into_response())
}
