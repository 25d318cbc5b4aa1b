//! Bills: by date (keyset pages), by customer and date range, one customer-day's history of
//! versions, by run, the streamed CSV export of a date, dry runs and the arrears ranking.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use heatbill_runtime::model::StoredBill;
use heatbill_runtime::run;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Tenant, access};
use super::chains::EntryBody;
use super::error::{ErrorBody, JsonBody, check_id, parse_date};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/bills", get(by_date))
        .route("/companies/{company}/bills/export", get(export))
        .route(
            "/companies/{company}/customers/{customer}/bills",
            get(by_customer),
        )
        .route(
            "/companies/{company}/customers/{customer}/bills/{date}/history",
            get(history),
        )
        .route("/companies/{company}/runs/{id}/bills", get(by_run))
        .route("/companies/{company}/dry-run", post(dry_run))
        .route("/companies/{company}/arrears", get(arrears))
}

/// A bill line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineView {
    /// Line code.
    pub code: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Unit of the quantity.
    pub unit: String,
    /// The plugin that produced it, and its version.
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// Quantity.
    #[schema(value_type = String)]
    pub quantity: Decimal,
    /// Unit price.
    #[schema(value_type = String)]
    pub unit_price: Decimal,
    /// Amount.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// Who pays it.
    pub payer: String,
}

/// A stored bill.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillView {
    /// The customer.
    pub customer_id: String,
    /// The date.
    pub date: NaiveDate,
    /// The bill's version (1, then +1 per correction).
    pub version: i32,
    /// `billed`, or `parked` (no bill: the error says why).
    pub status: String,
    /// The run that wrote it.
    pub run_id: i64,
    /// The chain version that billed it.
    pub chain_version_id: i32,
    /// Sum of the lines.
    #[schema(value_type = String)]
    pub total: Decimal,
    /// What the customer pays.
    #[schema(value_type = String)]
    pub customer_total: Decimal,
    /// What the government pays.
    #[schema(value_type = String)]
    pub government_total: Decimal,
    /// What the employer pays.
    #[schema(value_type = String)]
    pub employer_total: Decimal,
    /// Unpaid principal at the start of the day.
    #[schema(value_type = String)]
    pub arrears: Decimal,
    /// Overdue since.
    pub arrears_since: Option<NaiveDate>,
    /// Why this version replaced the one before.
    pub reason: Option<String>,
    /// Why the customer is parked.
    pub error: Option<String>,
    /// The lines.
    pub lines: Vec<LineView>,
}

impl From<StoredBill> for BillView {
    fn from(b: StoredBill) -> BillView {
        BillView {
            customer_id: b.customer_id,
            date: b.bill_date,
            version: b.row.version,
            status: b.row.status.as_str().to_string(),
            run_id: b.run_id,
            chain_version_id: b.chain_version_id,
            total: b.row.total,
            customer_total: b.row.customer_total,
            government_total: b.row.government_total,
            employer_total: b.row.employer_total,
            arrears: b.row.arrears,
            arrears_since: b.row.arrears_since,
            reason: b.row.reason,
            error: b.row.error,
            lines: b
                .lines
                .into_iter()
                .map(|l| LineView {
                    code: l.code,
                    description: l.description,
                    category: l.category,
                    unit: l.unit,
                    plugin: l.plugin,
                    plugin_version: l.plugin_version,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    amount: l.amount,
                    payer: l.payer,
                })
                .collect(),
        }
    }
}

/// A page of bills.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillPage {
    /// The bills, by customer.
    pub bills: Vec<BillView>,
    /// Pass as `after` for the next page (absent on the last page).
    pub next_after: Option<String>,
}

/// A page of a date's bills.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DateQuery {
    /// The date.
    pub date: NaiveDate,
    /// The last customer id of the previous page.
    pub after: Option<String>,
    /// Bills per page (default 100, at most 1000).
    pub limit: Option<usize>,
}

fn page(bills: Vec<StoredBill>, limit: usize) -> BillPage {
    let next_after = (bills.len() == limit)
        .then(|| bills.last().map(|b| b.customer_id.clone()))
        .flatten();
    BillPage {
        bills: bills.into_iter().map(BillView::from).collect(),
        next_after,
    }
}

/// A date's bills, a page at a time, by customer.
#[utoipa::path(get, operation_id = "bills_by_date", path = "/v1/companies/{company}/bills", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"), DateQuery),
    security(("bearer" = [])),
    responses((status = 200, body = BillPage), (status = 404, body = ErrorBody)))]
pub async fn by_date(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<DateQuery>,
) -> Result<Json<BillPage>, ApiError> {
    if let Some(a) = &q.after {
        check_id("after", a)?;
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let bills = app
        .services
        .store
        .bills_page(c.id, q.date, q.after.as_deref(), limit)
        .await?;
    Ok(Json(page(bills, limit)))
}

/// The date of an export.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// The date.
    pub date: NaiveDate,
}

/// A CSV value: quoted when it holds a separator, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` in text is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(out: &mut String, s: &str, text: bool) {
    let s = if text && s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&s);
    }
}

/// The CSV export of a date's bills: one row per line (a parked customer: one row with its
/// error), streamed a page at a time, so memory does not grow with the company.
#[utoipa::path(get, operation_id = "bills_export", path = "/v1/companies/{company}/bills/export", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"), ExportQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", description = "customer_id,date,version,status,code,description,quantity,unit,unit_price,amount,payer,error"),
        (status = 404, body = ErrorBody)))]
pub async fn export(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    const PAGE: usize = 5_000;
    let header_row = "customer_id,date,version,status,code,description,quantity,unit,unit_price,amount,payer,error\n";
    let date = q.date;
    let state = (app, c.id, Some(None::<String>), true);
    let stream = futures::stream::unfold(state, move |(app, cid, after, first)| async move {
        let after = after?;
        if first {
            return Some((
                Ok::<_, std::io::Error>(header_row.to_string()),
                (app, cid, Some(after), false),
            ));
        }
        let bills = match app
            .services
            .store
            .bills_page(cid, date, after.as_deref(), PAGE)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                return Some((
                    Err(std::io::Error::other(e.to_string())),
                    (app, cid, None, false),
                ));
            }
        };
        if bills.is_empty() {
            return None;
        }
        let next = (bills.len() == PAGE)
            .then(|| bills.last().map(|b| b.customer_id.clone()))
            .flatten();
        let mut out = String::with_capacity(bills.len() * 200);
        for b in &bills {
            let head = |out: &mut String| {
                csv_field(out, &b.customer_id, true);
                out.push_str(&format!(
                    ",{},{},{},",
                    b.bill_date,
                    b.row.version,
                    b.row.status.as_str()
                ));
            };
            if b.lines.is_empty() {
                head(&mut out);
                out.push_str(",,,,,,,");
                csv_field(&mut out, b.row.error.as_deref().unwrap_or(""), true);
                out.push('\n');
            }
            for l in &b.lines {
                head(&mut out);
                csv_field(&mut out, &l.code, true);
                out.push(',');
                csv_field(&mut out, &l.description, true);
                out.push_str(&format!(",{},", l.quantity));
                csv_field(&mut out, &l.unit, true);
                out.push_str(&format!(",{},{},{},\n", l.unit_price, l.amount, l.payer));
            }
        }
        let state_next = next.map(Some);
        Some((Ok(out), (app, cid, state_next, false)))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-bills-{date}.csv\"", c.slug),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A customer's date range.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First date.
    pub from: NaiveDate,
    /// Last date (at most 366 days after `from`).
    pub to: NaiveDate,
}

/// One customer's bills of a date range (at most 366 days), by date.
#[utoipa::path(get, operation_id = "bills_by_customer", path = "/v1/companies/{company}/customers/{customer}/bills", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id"), RangeQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<BillView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn by_customer(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, customer)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Vec<BillView>>, ApiError> {
    check_id("customer", &customer)?;
    if q.to < q.from || (q.to - q.from).num_days() > 366 {
        return Err(ApiError::bad_request(
            "give from <= to, at most 366 days apart",
        ));
    }
    let bills = app
        .services
        .store
        .customer_bills(c.id, &customer, q.from, q.to)
        .await?;
    // An unknown customer is 404, not an empty list: the caller learns the id is wrong.
    if bills.is_empty() && !app.services.store.has_customer(c.id, &customer).await? {
        return Err(ApiError::not_found(format!(
            "company {} has no customer {:?}",
            c.slug,
            heatbill_engine::text::safe(&customer)
        )));
    }
    Ok(Json(bills.into_iter().map(BillView::from).collect()))
}

/// A customer-day's versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// The current version.
    pub current: Option<BillView>,
    /// The versions it replaced, oldest first (each with why it was replaced in the next).
    pub superseded: Vec<BillView>,
}

/// One customer-day's bill with every version it replaced.
#[utoipa::path(get, operation_id = "bills_history", path = "/v1/companies/{company}/customers/{customer}/bills/{date}/history", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id"),
        ("date" = String, Path, description = "The date, YYYY-MM-DD")),
    security(("bearer" = [])),
    responses((status = 200, body = History), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, customer, date)): Path<(String, String, String)>,
) -> Result<Json<History>, ApiError> {
    check_id("customer", &customer)?;
    let date = parse_date("date", &date)?;
    let current = app.services.store.bill(c.id, &customer, date).await?;
    let superseded = app
        .services
        .store
        .bill_history(c.id, &customer, date)
        .await?;
    if current.is_none() && superseded.is_empty() {
        return Err(ApiError::not_found(format!(
            "customer {:?} has no bill of {date}",
            heatbill_engine::text::safe(&customer)
        )));
    }
    Ok(Json(History {
        current: current.map(BillView::from),
        superseded: superseded.into_iter().map(BillView::from).collect(),
    }))
}

/// A page of a run's bills.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunBillsQuery {
    /// The last customer id of the previous page.
    pub after: Option<String>,
    /// Bills per page (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The bills a run wrote (current versions), a page at a time.
#[utoipa::path(get, operation_id = "bills_by_run", path = "/v1/companies/{company}/runs/{id}/bills", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The run's id"), RunBillsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = BillPage), (status = 404, body = ErrorBody)))]
pub async fn by_run(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
    Query(q): Query<RunBillsQuery>,
) -> Result<Json<BillPage>, ApiError> {
    let r = super::runs::company_run(&app, &c, id).await?;
    if let Some(a) = &q.after {
        check_id("after", a)?;
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // Pages of the date, kept to the run's rows; reads on until a page is full or the date
    // ends.
    let mut out = Vec::new();
    let mut after = q.after.clone();
    loop {
        let bills = app
            .services
            .store
            .bills_page(c.id, r.bill_date, after.as_deref(), 1000)
            .await?;
        let n = bills.len();
        after = bills.last().map(|b| b.customer_id.clone());
        out.extend(bills.into_iter().filter(|b| b.run_id == id));
        if out.len() >= limit || n < 1000 {
            break;
        }
    }
    out.truncate(limit);
    Ok(Json(page(out, limit)))
}

/// A dry run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    /// The customer.
    pub customer: String,
    /// The date.
    pub date: NaiveDate,
    /// A draft chain to bill with instead of the one in force (entries as in a chain
    /// activation; nothing is stored).
    #[serde(default)]
    pub chain: Option<Vec<EntryBody>>,
}

/// Bills one customer-day as the nightly run would (or with a draft chain) and writes nothing
/// (integrator or staff): what an integrator checks a change with.
#[utoipa::path(post, operation_id = "bills_dry_run", path = "/v1/companies/{company}/dry-run", tag = "bills",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = DryRunBody, security(("bearer" = [])),
    responses((status = 200, body = Object, description = "`input`, `bill` or `error`, `log`, and the `current` stored bill"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Busy: the company's share of the engine slots, or the server's, stayed taken for `api.queue_wait_ms`; `Retry-After` says when to try again")))]
pub async fn dry_run(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::DryRun>,
    JsonBody(b): JsonBody<DryRunBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_id("customer", &b.customer)?;
    let draft = match &b.chain {
        Some(entries) => Some(super::chains::resolve(&app, c.id, entries).await?),
        None => None,
    };
    let _slot = app.engine_slot(c.id).await?;
    let started = std::time::Instant::now();
    let r = run::dry_run(
        &app.services,
        &app.engine,
        &app.settings,
        &c,
        &b.customer,
        b.date,
        draft.as_deref(),
    )
    .await?;
    app.metrics
        .dry_runs
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    app.metrics.dry_run_micros.fetch_add(
        started.elapsed().as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut v = serde_json::to_value(&r).map_err(ApiError::internal)?;
    // Lines as stored bills show them: the kind's fields beside the amounts.
    if let Some(lines) = v["bill"]["lines"].as_array_mut() {
        for line in lines {
            if let Some(serde_json::Value::Object(kind)) =
                line.as_object_mut().and_then(|l| l.remove("kind"))
            {
                for (k, val) in kind {
                    line[k] = val;
                }
            }
        }
    }
    if let Some(cur) = r.current {
        v["current"] = serde_json::to_value(BillView::from(cur)).map_err(ApiError::internal)?;
    }
    Ok(Json(v))
}

/// How many of the ranking.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    /// At most this many (default 20, at most 1000).
    pub top: Option<usize>,
}

/// The arrears ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ranking {
    /// The date of the bills it ranks (the latest completed run).
    pub date: Option<NaiveDate>,
    /// Customers with the most unpaid principal, most first.
    pub top: Vec<Arrear>,
}

/// A customer's unpaid principal.
#[derive(Debug, Serialize, ToSchema)]
pub struct Arrear {
    /// The customer.
    pub customer_id: String,
    /// Unpaid principal.
    #[schema(value_type = String)]
    pub arrears: Decimal,
}

/// The customers with the most unpaid principal after the latest completed run.
#[utoipa::path(get, operation_id = "bills_arrears", path = "/v1/companies/{company}/arrears", tag = "bills",
    params(("company" = String, Path, description = "The company's slug"), TopQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Ranking), (status = 404, body = ErrorBody)))]
pub async fn arrears(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<TopQuery>,
) -> Result<Json<Ranking>, ApiError> {
    let n = q.top.unwrap_or(20).clamp(1, 1000);
    let r = run::top_arrears(&app.services, &c, n).await?;
    Ok(Json(match r {
        Some(r) => Ranking {
            date: Some(r.date),
            top: r
                .top
                .into_iter()
                .map(|(customer_id, arrears)| Arrear {
                    customer_id,
                    arrears,
                })
                .collect(),
        },
        None => Ranking {
            date: None,
            top: Vec::new(),
        },
    }))
}
