//! E-invoices (数电票): the requests each payment (and each refund or reversal of one) wrote,
//! the batch export in the tax bureau's item-import template, and the provider's answer. The
//! requests themselves are written with the payments (the runtime's `invoices` module); see
//! docs/events.md.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::NaiveDate;
use heatbill_runtime::invoices::{Line, TEMPLATE_HEADER};
use heatbill_runtime::store::invoices::{Answer, InvoiceFilter, InvoiceRecord, MAX_INVOICES};
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
        .route("/companies/{company}/invoices", get(list))
        .route("/companies/{company}/invoices/{id}", get(read))
        .route("/companies/{company}/invoices/{id}/answer", post(answer))
}

/// An invoice request.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceView {
    /// Its id.
    pub id: i64,
    /// Its key (the `invoice_requested` event's).
    pub request_key: String,
    /// `blue` (a payment's) or `red` (a refund's or reversal's, 红字).
    pub kind: String,
    /// The customer.
    pub customer_id: String,
    /// The ledger entry that caused it.
    pub entry_id: i64,
    /// The blue request a red one reverses.
    pub original_id: Option<i64>,
    /// Its total (negative for red).
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The entry's date.
    pub on_date: NaiveDate,
    /// The request as published: seller, buyer, lines (charge, name, tax_code, unit, quantity,
    /// unit_price, amount, rate, tax, preference), totals.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    /// `requested`, `issued` or `refused`.
    pub state: String,
    /// The invoice number (20 digits), once issued.
    pub invoice_number: Option<String>,
    /// Its PDF link.
    pub pdf_url: Option<String>,
    /// Its OFD link.
    pub ofd_url: Option<String>,
    /// Why the provider refused it.
    pub reason: Option<String>,
    /// When the answer came (UTC).
    pub answered_at: Option<String>,
}

impl From<InvoiceRecord> for InvoiceView {
    fn from(r: InvoiceRecord) -> InvoiceView {
        InvoiceView {
            id: r.id,
            request_key: r.request_key,
            kind: r.kind,
            customer_id: r.customer_id,
            entry_id: r.entry_id,
            original_id: r.original_id,
            amount: r.amount,
            on_date: r.on_date,
            body: r.body,
            state: r.state,
            invoice_number: r.invoice_number,
            pdf_url: r.pdf_url,
            ofd_url: r.ofd_url,
            reason: r.reason,
            answered_at: r.answered_at,
        }
    }
}

/// Which requests, and how.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One customer's.
    pub customer: Option<String>,
    /// Dated on or after.
    pub from: Option<NaiveDate>,
    /// Dated on or before.
    pub to: Option<NaiveDate>,
    /// `requested`, `issued` or `refused`.
    pub state: Option<String>,
    /// After this id (the `next` of the previous page).
    pub after: Option<i64>,
    /// At most this many (default and maximum 1,000).
    pub limit: Option<usize>,
    /// `json` (the default), or `template`: the page as the tax bureau's item-import template
    /// (CSV, one row per line).
    pub format: Option<String>,
}

/// A page of requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoicePage {
    /// The requests, by id.
    pub invoices: Vec<InvoiceView>,
    /// The `after` of the next page, when there may be one.
    pub next: Option<i64>,
}

fn cell(s: &str) -> String {
    heatbill_runtime::ledger::csv_cell(s)
}

/// The template's rows of one request.
fn template_rows(r: &InvoiceRecord) -> String {
    let lines: Vec<Line> = serde_json::from_value(r.body["lines"].clone()).unwrap_or_default();
    let buyer = &r.body["buyer"];
    let mut out = String::new();
    for l in lines {
        let rate = if l.preference.as_deref() == Some("免税") {
            "免税".to_string()
        } else if l.preference.as_deref() == Some("不征税") {
            "不征税".to_string()
        } else {
            format!("{}%", (l.rate * Decimal::from(100)).normalize())
        };
        out.push_str(&format!(
            "{},{},{},{},{},,{},{},{},{},{},0.00,{}\n",
            cell(&r.request_key),
            cell(buyer["name"].as_str().unwrap_or("")),
            cell(buyer["tax_id"].as_str().unwrap_or("")),
            cell(&l.name),
            cell(&l.tax_code),
            cell(&l.unit),
            l.quantity,
            l.unit_price,
            l.amount,
            rate,
            cell(l.preference.as_deref().unwrap_or(""))
        ));
    }
    out
}

/// The company's invoice requests, by id, a page at a time; with `format=template`, the page
/// in the tax bureau's item-import template (项目名称, 商品和服务税收分类编码, 规格型号, 单位,
/// 商品数量, 商品单价, 金额, 税率, 折扣金额, 优惠政策类型), for companies that issue by hand.
#[utoipa::path(get, operation_id = "invoices_list", path = "/v1/companies/{company}/invoices", tag = "events",
    params(("company" = String, Path, description = "The company's slug"), ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = InvoicePage, description = "JSON; with format=template, text/csv"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ListQuery>,
) -> Result<axum::response::Response, ApiError> {
    let template = match q.format.as_deref() {
        None | Some("json") => false,
        Some("template") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {:?}: give json or template",
                heatbill_engine::text::safe(f)
            )));
        }
    };
    if let Some(id) = &q.customer {
        check_id("customer", id)?;
    }
    if let Some(s) = q.state.as_deref()
        && !["requested", "issued", "refused"].contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "state {:?}: give requested, issued or refused",
            heatbill_engine::text::safe(s)
        )));
    }
    let limit = page_limit(q.limit, MAX_INVOICES)?;
    let found = app
        .services
        .store
        .invoices(
            c.id,
            &InvoiceFilter {
                customer_id: q.customer,
                from: q.from.map(|d| plausible("from", d)).transpose()?,
                to: q.to.map(|d| plausible("to", d)).transpose()?,
                state: q.state,
                after: q.after,
                limit,
            },
        )
        .await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|e| e.id))
        .flatten();
    if template {
        let mut body = String::from(TEMPLATE_HEADER);
        for r in &found {
            body.push_str(&template_rows(r));
        }
        return Ok((
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}-invoices.csv\"", c.slug),
                ),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(InvoicePage {
        invoices: found.into_iter().map(InvoiceView::from).collect(),
        next,
    })
    .into_response())
}

async fn invoice(
    app: &App,
    c: &heatbill_runtime::model::Company,
    id: i64,
) -> Result<InvoiceRecord, ApiError> {
    app.services.store.invoice(c.id, id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "company {} has no invoice request {id}: list them with GET /v1/companies/{}/invoices",
            c.slug, c.slug
        ))
    })
}

/// One invoice request.
#[utoipa::path(get, operation_id = "invoices_read", path = "/v1/companies/{company}/invoices/{id}", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses((status = 200, body = InvoiceView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Json<InvoiceView>, ApiError> {
    Ok(Json(invoice(&app, &c, id).await?.into()))
}

/// The invoicing service provider's answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// `issued` or `refused`.
    pub status: String,
    /// The invoice number: 20 digits (issued).
    pub invoice_number: Option<String>,
    /// A link to its PDF.
    pub pdf_url: Option<String>,
    /// A link to its OFD.
    pub ofd_url: Option<String>,
    /// Why it was refused (refused).
    pub reason: Option<String>,
}

/// An answer kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnsweredView {
    /// False when the same answer came before (nothing changed).
    pub new: bool,
    /// The request now.
    pub invoice: InvoiceView,
}

fn link(what: &str, s: &Option<String>) -> Result<(), ApiError> {
    if let Some(u) = s
        && (u.len() > 2000
            || !(u.starts_with("https://") || u.starts_with("http://"))
            || u.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(ApiError::bad_request(format!(
            "{what}: give an http(s) link of at most 2,000 characters"
        )));
    }
    Ok(())
}

/// Keeps the provider's answer to a request: the invoice number (20 digits) and its PDF or OFD
/// link, or the refusal's reason. The same answer again is 200 with nothing changed; another
/// answer to an answered request is 409 (an issued invoice is reversed by a red-letter one).
#[utoipa::path(post, operation_id = "invoices_answer", path = "/v1/companies/{company}/invoices/{id}/answer", tag = "events",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The request's id")),
    request_body = AnswerBody,
    security(("bearer" = [])),
    responses((status = 201, body = AnsweredView, description = "Kept"),
        (status = 200, body = AnsweredView, description = "Kept before: nothing changed"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn answer(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Data>,
    Path((_company, id)): Path<(String, i64)>,
    JsonBody(b): JsonBody<AnswerBody>,
) -> Result<(StatusCode, Json<AnsweredView>), ApiError> {
    let issued = match b.status.as_str() {
        "issued" => true,
        "refused" => false,
        s => {
            return Err(ApiError::bad_request(format!(
                "status {:?}: give issued or refused",
                heatbill_engine::text::safe(s)
            )));
        }
    };
    if issued {
        match &b.invoice_number {
            Some(n) if n.len() == 20 && n.chars().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(ApiError::bad_request(
                    "invoice_number: an issued invoice has its 20-digit number",
                ));
            }
        }
        if b.reason.is_some() {
            return Err(ApiError::bad_request("reason: only a refusal has a reason"));
        }
    } else if b
        .reason
        .as_deref()
        .is_none_or(|r| r.trim().is_empty() || r.chars().count() > 500)
        || b.invoice_number.is_some()
    {
        return Err(ApiError::bad_request(
            "a refusal has a reason (1 to 500 characters) and no invoice_number",
        ));
    }
    super::events::free_text("reason", b.reason.as_deref())?;
    link("pdf_url", &b.pdf_url)?;
    link("ofd_url", &b.ofd_url)?;
    invoice(&app, &c, id).await?;
    let (r, new) = app
        .services
        .store
        .answer_invoice(
            c.id,
            id,
            &Answer {
                issued,
                invoice_number: b.invoice_number,
                pdf_url: b.pdf_url,
                ofd_url: b.ofd_url,
                reason: b.reason,
            },
        )
        .await?;
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(AnsweredView {
            new,
            invoice: r.into(),
        }),
    ))
}
