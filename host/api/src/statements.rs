//! Channel statements and their reconciliation: a channel's own daily file (WeChat Pay's trade
//! bill, Alipay's statement ZIP, a bank's CSV through a saved column mapping) uploaded, parsed
//! as hostile input, compared with the ledger and kept; its discrepancies listed; a lost
//! notification recovered into a payment with one confirmation; banks' column mappings saved.
//!
//! Uploads and recoveries need the staff role; reads every role.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};
use heatbill_runtime::store::statements::{
    NewStatement, NotRecoverable, StatementItem, StatementRecorded, StatementSummary,
    recovered_payment, recovered_refund,
};
use heatbill_statements::{BankProfile, Limits, MemoRule, StatementError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::RecordedView;
use super::auth::{Tenant, access};
use super::error::{ErrorBody, JsonBody};
use super::{ApiError, App};

/// The largest statement file taken (the channels' daily files are tens of megabytes).
pub const MAX_STATEMENT_BYTES: usize = 256 << 20;

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/statements", get(list).post(upload))
        .route("/companies/{company}/statements/{id}/items", get(items))
        .route(
            "/companies/{company}/statements/{id}/items/{item}/recover",
            post(recover),
        )
        .route(
            "/companies/{company}/bank-profiles/{name}",
            put(put_profile),
        )
        .route("/companies/{company}/bank-profiles", get(profiles))
}

/// A stored statement.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementView {
    /// Its id.
    pub id: i64,
    /// `wechat`, `alipay` or `bank`.
    pub channel: String,
    /// The file's name.
    pub file_name: String,
    /// The file's SHA-256: the same file again is the same statement.
    pub sha256: String,
    /// The bank profile it was read with.
    pub bank_profile: Option<String>,
    /// The first day it covers.
    pub period_from: chrono::NaiveDate,
    /// The last day it covers.
    pub period_to: chrono::NaiveDate,
    /// Transaction lines.
    pub lines: i64,
    /// Payments' sum.
    #[schema(value_type = String)]
    pub payments: rust_decimal::Decimal,
    /// Refunds' sum (negative).
    #[schema(value_type = String)]
    pub refunds: rust_decimal::Decimal,
    /// The channel's fees.
    #[schema(value_type = String)]
    pub fees: rust_decimal::Decimal,
    /// Lines that matched a recorded entry.
    pub matched: i64,
    /// Lines heatbill did not record (lost notifications).
    pub missing_in_heatbill: i64,
    /// Recorded entries of the period the channel does not have.
    pub missing_in_channel: i64,
    /// Lines recorded with another amount.
    pub amount_mismatch: i64,
    /// Who imported it.
    pub imported_by: String,
    /// When (UTC).
    pub imported_at: String,
}

impl From<StatementSummary> for StatementView {
    fn from(s: StatementSummary) -> StatementView {
        StatementView {
            id: s.id,
            channel: s.channel,
            file_name: s.file_name,
            sha256: s.sha256,
            bank_profile: s.bank_profile,
            period_from: s.period_from,
            period_to: s.period_to,
            lines: s.lines,
            payments: s.payments,
            refunds: s.refunds,
            fees: s.fees,
            matched: s.matched,
            missing_in_heatbill: s.missing_in_heatbill,
            missing_in_channel: s.missing_in_channel,
            amount_mismatch: s.amount_mismatch,
            imported_by: s.imported_by,
            imported_at: s.imported_at,
        }
    }
}

/// A statement upload's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedView {
    /// False when the same file was imported before: nothing changed.
    pub new: bool,
    /// The statement.
    pub statement: StatementView,
}

/// A statement upload's options.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `wechat` (the trade bill, type ALL), `alipay` (the statement ZIP) or `bank` (a CSV or an
    /// XLSX export).
    pub channel: String,
    /// The file's name, for the record (default `statement`).
    pub file_name: Option<String>,
    /// A bank statement's saved column mapping (`PUT …/bank-profiles/{name}`).
    pub profile: Option<String>,
}

fn statement_error(e: StatementError) -> ApiError {
    ApiError::unprocessable(format!("the statement was not imported: {e}"))
}

/// The company's rule for finding an account number (checked when its policies were set).
fn account_rule(c: &heatbill_runtime::model::Company) -> Result<MemoRule, ApiError> {
    heatbill_runtime::store::statements::account_rule(&c.policies).map_err(ApiError::unprocessable)
}

/// Imports a channel's statement file (staff): `wechat` (the trade bill, type ALL), `alipay`
/// (the statement ZIP) or `bank` (a CSV or XLSX, with `profile`); the body is the file as
/// downloaded. The file is checked whole first (its encoding, its columns by name, every row, its own
/// totals; a bad file is a 422 that lists what is wrong and stores nothing), then compared
/// with the ledger's payments and refunds of its channel and period, and kept with its
/// discrepancies. The same file again answers 200 with the statement imported first.
#[utoipa::path(post, operation_id = "statements_upload", path = "/v1/companies/{company}/statements", tag = "statements",
    params(("company" = String, Path, description = "The company's slug"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The statement file"),
    security(("bearer" = [])),
    responses((status = 201, body = UploadedView), (status = 200, body = UploadedView, description = "Imported before: nothing changed"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(app): State<App>,
    tenant: Result<Tenant<access::Data>, ApiError>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadedView>), ApiError> {
    let cap = MAX_STATEMENT_BYTES;
    let (c, caller) = match tenant {
        Ok(Tenant(c, caller, _)) => (c, caller),
        Err(e) => {
            super::error::drain(body, 1 << 20).await;
            return Err(e);
        }
    };
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = length
        && n > cap as u64
    {
        super::error::drain(body, 1 << 20).await;
        return Err(ApiError::too_large(format!(
            "the statement is {n} bytes, larger than {cap} bytes, the most this server takes"
        )));
    }
    let channel = q.channel.clone();
    let profile = match (channel.as_str(), &q.profile) {
        ("bank", Some(name)) => {
            let Some(json) = app.services.store.bank_profile(c.id, name).await? else {
                return Err(ApiError::not_found(format!(
                    "company {} has no bank profile {:?}: save it with PUT …/bank-profiles/{{name}}",
                    c.slug,
                    heatbill_engine::text::safe(name)
                )));
            };
            Some((
                name.clone(),
                serde_json::from_str::<BankProfile>(&json).map_err(ApiError::internal)?,
            ))
        }
        ("bank", None) => {
            return Err(ApiError::bad_request(
                "a bank statement is read through a saved column mapping: give profile=NAME",
            ));
        }
        ("wechat" | "alipay", None) => None,
        ("wechat" | "alipay", Some(_)) => {
            return Err(ApiError::bad_request("profile is for bank statements only"));
        }
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "channel {:?}: give wechat, alipay or bank",
                heatbill_engine::text::safe(other)
            )));
        }
    };
    let rule = account_rule(&c)?;
    let _room = app.upload_room(length).await?;
    let bytes = super::error::read_capped(body, cap, "the statement", length).await?;
    let limits = Limits {
        max_bytes: cap as u64,
        ..Limits::default()
    };
    let ch = channel.clone();
    let profile_for_parse = profile.as_ref().map(|(_, p)| p.clone());
    let parsed = tokio::task::spawn_blocking(move || match ch.as_str() {
        "wechat" => heatbill_statements::parse_wechat(&bytes, &limits),
        "alipay" => heatbill_statements::parse_alipay_zip(&bytes, &limits),
        _ => heatbill_statements::parse_bank(
            &bytes,
            profile_for_parse.as_ref().expect("a bank profile"),
            &limits,
        ),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(statement_error)?;
    let file_name = q.file_name.unwrap_or_else(|| "statement".into());
    heatbill_runtime::ledger::check_text("file_name", &file_name, 200)
        .map_err(ApiError::bad_request)?;
    let n = NewStatement {
        file_name,
        bank_profile: profile.map(|(name, _)| name),
        statement: &parsed,
        account_rule: rule,
        recorded_by: caller.who(),
    };
    Ok(match app.services.store.record_statement(c.id, &n).await? {
        StatementRecorded::New(s) => {
            tracing::info!(company = %c.slug, statement = s.id, channel = %s.channel,
                lines = s.lines, missing_in_heatbill = s.missing_in_heatbill,
                missing_in_channel = s.missing_in_channel, amount_mismatch = s.amount_mismatch,
                by = %caller.who(), "statement reconciled");
            (
                StatusCode::CREATED,
                Json(UploadedView {
                    new: true,
                    statement: s.into(),
                }),
            )
        }
        StatementRecorded::Again(s) => (
            StatusCode::OK,
            Json(UploadedView {
                new: false,
                statement: s.into(),
            }),
        ),
    })
}

/// The company's statements.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementsView {
    /// Newest first (at most 200).
    pub statements: Vec<StatementView>,
}

/// The company's statements, newest first.
#[utoipa::path(get, operation_id = "statements_list", path = "/v1/companies/{company}/statements", tag = "statements",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = StatementsView), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
) -> Result<Json<StatementsView>, ApiError> {
    Ok(Json(StatementsView {
        statements: app
            .services
            .store
            .statements(c.id, 200)
            .await?
            .into_iter()
            .map(StatementView::from)
            .collect(),
    }))
}

/// A discrepancy.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// Its number in the statement.
    pub item_no: i32,
    /// `missing-in-heatbill`, `missing-in-channel` or `amount-mismatch`.
    pub discrepancy: String,
    /// The line's kind (`payment`, `refund`).
    pub line_kind: Option<String>,
    /// The statement's line.
    pub line_no: Option<i64>,
    /// The recorded entry compared.
    pub entry_id: Option<i64>,
    /// The entry's customer.
    pub customer_id: Option<String>,
    /// The channel's transaction id.
    pub channel_txn: String,
    /// The merchant's order number.
    pub order_no: Option<String>,
    /// The account number a bank memo held.
    pub account_hint: Option<String>,
    /// The statement's amount.
    #[schema(value_type = Option<String>)]
    pub channel_amount: Option<rust_decimal::Decimal>,
    /// heatbill's amount.
    #[schema(value_type = Option<String>)]
    pub recorded_amount: Option<rust_decimal::Decimal>,
    /// The line's time (the channel's local time).
    pub txn_time: Option<String>,
    /// The entry's date.
    pub on_date: Option<chrono::NaiveDate>,
    /// The line's fee.
    #[schema(value_type = String)]
    pub fee: rust_decimal::Decimal,
    /// The customer whose account number the line names (a lost payment), or whose payment
    /// the line refunds (a lost refund).
    pub suggested_customer: Option<String>,
    /// For a refund line, the channel's id of the payment it refunds.
    pub original_txn: Option<String>,
    /// The entry recorded since under the line's transaction id (recovered).
    pub recovered_entry: Option<i64>,
}

impl From<StatementItem> for ItemView {
    fn from(i: StatementItem) -> ItemView {
        ItemView {
            item_no: i.item_no,
            discrepancy: i.discrepancy,
            line_kind: i.line_kind,
            line_no: i.line_no,
            entry_id: i.entry_id,
            customer_id: i.customer_id,
            channel_txn: i.channel_txn,
            order_no: i.order_no,
            account_hint: i.account_hint,
            channel_amount: i.channel_amount,
            recorded_amount: i.recorded_amount,
            txn_time: i.txn_time,
            on_date: i.on_date,
            fee: i.fee,
            suggested_customer: i.suggested_customer,
            original_txn: i.original_txn,
            recovered_entry: i.recovered_entry,
        }
    }
}

/// A statement and its discrepancies.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsView {
    /// The statement.
    pub statement: StatementView,
    /// Its discrepancies, in order.
    pub items: Vec<ItemView>,
}

/// Which discrepancies.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// `missing-in-heatbill`, `missing-in-channel` or `amount-mismatch` (all when absent).
    pub discrepancy: Option<String>,
}

/// A statement and its discrepancies.
#[utoipa::path(get, operation_id = "statements_items", path = "/v1/companies/{company}/statements/{id}/items", tag = "statements",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The statement's id"), ItemsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ItemsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn items(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
    Query(q): Query<ItemsQuery>,
) -> Result<Json<ItemsView>, ApiError> {
    if let Some(d) = &q.discrepancy
        && !matches!(
            d.as_str(),
            "missing-in-heatbill" | "missing-in-channel" | "amount-mismatch"
        )
    {
        return Err(ApiError::bad_request(format!(
            "discrepancy {:?}: give missing-in-heatbill, missing-in-channel or amount-mismatch",
            heatbill_engine::text::safe(d)
        )));
    }
    let Some((s, items)) = app
        .services
        .store
        .statement_items(c.id, id, q.discrepancy.as_deref())
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "company {} has no statement {id}",
            c.slug
        )));
    };
    Ok(Json(ItemsView {
        statement: s.into(),
        items: items.into_iter().map(ItemView::from).collect(),
    }))
}

/// A recovery: whose payment it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// The customer (the item's suggested customer when absent).
    pub customer_id: Option<String>,
}

/// Recovers a lost notification (staff): the statement's payment line that heatbill did not
/// record becomes a payment of the customer (the one its account number names, or the one
/// given), under the line's channel and transaction id, dated the day it was paid. Recorded
/// once: the same item again answers 200 with that payment.
#[utoipa::path(post, operation_id = "statements_recover", path = "/v1/companies/{company}/statements/{id}/items/{item}/recover", tag = "statements",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The statement's id"),
        ("item" = i32, Path, description = "The item's number")),
    request_body = RecoverBody,
    security(("bearer" = [])),
    responses((status = 201, body = RecordedView), (status = 200, body = RecordedView, description = "Recovered before"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn recover(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, id, item)): Path<(String, i64, i32)>,
    JsonBody(b): JsonBody<RecoverBody>,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    let store = &app.services.store;
    let Some((s, items)) = store.statement_items(c.id, id, None).await? else {
        return Err(ApiError::not_found(format!(
            "company {} has no statement {id}",
            c.slug
        )));
    };
    let Some(i) = items.into_iter().find(|i| i.item_no == item) else {
        return Err(ApiError::not_found(format!(
            "statement {id} has no item {item}"
        )));
    };
    if let Some(customer) = &b.customer_id {
        super::error::check_id("customer_id", customer)?;
    }
    let refused = |e: NotRecoverable| match e {
        NotRecoverable::NotAMissingPayment(m) => ApiError::conflict(m),
        NotRecoverable::NoCustomer => ApiError::unprocessable(
            "no customer is named by the line's order number or memo: give customer_id",
        ),
        NotRecoverable::Corrupt(m) => ApiError::internal(format!("a statement line without {m}")),
    };
    // A lost refund is a refund of the payment it names, whoever's that payment is.
    if i.discrepancy == "missing-in-heatbill" && i.line_kind.as_deref() == Some("refund") {
        let channel = heatbill_runtime::ledger::Channel::parse(&s.channel)
            .ok_or_else(|| ApiError::internal("a statement without a ledger channel"))?;
        let original = i.original_txn.as_deref().unwrap_or_default();
        let Some(payment) = store.entry_by_channel_txn(c.id, channel, original).await? else {
            return Err(ApiError::conflict(format!(
                "the payment this refund names ({} transaction {:?}) is not recorded: recover or \
                 record that payment first",
                s.channel,
                heatbill_engine::text::safe(original)
            )));
        };
        let u = recovered_refund(&s, &i, payment.id, caller.who()).map_err(refused)?;
        return super::accounts::undo(&app, &c, &caller, u).await;
    }
    let e = recovered_payment(&s, i, b.customer_id, caller.who()).map_err(refused)?;
    super::accounts::record(&app, &c, &caller, e).await
}

/// Saves a bank's column mapping (staff): the headers of its CSV statement's date, credit and
/// debit (or one signed amount), transaction id, counterparty and memo columns, and the rule
/// that finds a customer's account number in the memo.
#[utoipa::path(put, operation_id = "statements_put_profile", path = "/v1/companies/{company}/bank-profiles/{name}", tag = "statements",
    params(("company" = String, Path, description = "The company's slug"),
        ("name" = String, Path, description = "The profile's name (e.g. the bank)")),
    request_body(content = Object, description = "The column mapping (docs/payments.md)"),
    security(("bearer" = [])),
    responses((status = 204, description = "Saved"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_profile(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, name)): Path<(String, String)>,
    JsonBody(v): JsonBody<serde_json::Value>,
) -> Result<StatusCode, ApiError> {
    super::error::check_id("name", &name)?;
    let p: BankProfile = serde_json::from_value(v).map_err(|e| {
        ApiError::unprocessable(format!(
            "not a bank profile: {e} (docs/payments.md lists its fields)"
        ))
    })?;
    p.check()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let json = serde_json::to_string(&p).map_err(ApiError::internal)?;
    app.services
        .store
        .put_bank_profile(c.id, &name, &json, &caller.who())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A saved bank profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// Its name.
    pub name: String,
    /// The mapping.
    #[schema(value_type = Object)]
    pub profile: serde_json::Value,
    /// Who saved it.
    pub saved_by: String,
    /// When (UTC).
    pub saved_at: String,
}

/// The company's saved bank profiles.
#[utoipa::path(get, operation_id = "statements_profiles", path = "/v1/companies/{company}/bank-profiles", tag = "statements",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ProfileView>), (status = 404, body = ErrorBody)))]
pub async fn profiles(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
) -> Result<Json<Vec<ProfileView>>, ApiError> {
    let rows = app.services.store.bank_profiles(c.id).await?;
    rows.into_iter()
        .map(|(name, json, saved_by, saved_at)| {
            Ok(ProfileView {
                name,
                profile: serde_json::from_str(&json).map_err(ApiError::internal)?,
                saved_by,
                saved_at,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()
        .map(Json)
}
