//! Accounts and payments: a customer's account (balance, dues by the company's allocation
//! order, credit, the ledger's entries), payments in one at a time (a counter receipt, a
//! channel's notification: idempotent by channel and transaction id), reversals and refunds
//! of a payment, adjustments and write-offs, and a day's close per cashier and channel.
//!
//! Writes need the staff role (cashiers and operators); reads every role. Every entry records
//! who made it (the token) and where (`api`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::NaiveDate;
use heatbill_runtime::ledger::{
    self, Account, Channel, DayClose, Dues, Entry, EntryKind, NewEntry, Recorded, Till, Undo,
};
use heatbill_runtime::model::Company;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Tenant, access};
use super::error::{ErrorBody, JsonBody, check_id};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/companies/{company}/customers/{customer}/account",
            get(account),
        )
        .route("/companies/{company}/payments", post(pay))
        .route(
            "/companies/{company}/customers/{customer}/adjustments",
            post(adjust),
        )
        .route("/companies/{company}/entries/{id}", get(entry))
        .route("/companies/{company}/entries/{id}/reversal", post(reverse))
        .route("/companies/{company}/entries/{id}/refunds", post(refund))
        .route("/companies/{company}/day-close", get(day_close))
        .route(
            "/companies/{company}/customers/{customer}/statement",
            get(statement),
        )
        .route("/companies/{company}/receivables", get(receivables))
}

/// A ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// Its id.
    pub id: i64,
    /// The customer.
    pub customer_id: String,
    /// `payment`, `reversal`, `refund`, `adjustment` or `write-off`.
    pub kind: String,
    /// The value date: the entry counts in the balances of the days after it.
    pub on_date: NaiveDate,
    /// Its effect on the account, signed from the customer's side (a payment is positive, a
    /// reversal or a refund negative).
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// `counter`, `wechat`, `alipay`, `bank`, `government` or `import`.
    pub channel: Option<String>,
    /// The transaction id in the channel (a counter receipt's number).
    pub channel_txn: Option<String>,
    /// How it was paid.
    pub method: Option<String>,
    /// A counter receipt's number.
    pub receipt_no: Option<String>,
    /// The cashier.
    pub cashier: Option<String>,
    /// An adjustment's or write-off's reason code.
    pub reason_code: Option<String>,
    /// Why.
    pub note: Option<String>,
    /// The payment a reversal or refund undoes.
    pub undoes: Option<i64>,
    /// Who recorded it.
    pub recorded_by: String,
    /// Where it came from (`api`, `cli`, `import`).
    pub source: String,
    /// When it was recorded (UTC).
    pub recorded_at: String,
}

impl From<Entry> for EntryView {
    fn from(e: Entry) -> EntryView {
        EntryView {
            id: e.id,
            customer_id: e.customer_id,
            kind: e.kind.as_str().into(),
            on_date: e.on_date,
            amount: e.amount,
            channel: e.channel.map(|c| c.as_str().into()),
            channel_txn: e.channel_txn,
            method: e.method,
            receipt_no: e.receipt_no,
            cashier: e.cashier,
            reason_code: e.reason_code,
            note: e.note,
            undoes: e.undoes,
            recorded_by: e.recorded_by,
            source: e.source,
            recorded_at: e.recorded_at,
        }
    }
}

/// A recorded entry, and whether this request recorded it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedView {
    /// False when the same payment (or refund) was recorded before: nothing changed.
    pub new: bool,
    /// The entry.
    pub entry: EntryView,
}

fn recorded(r: Recorded) -> (StatusCode, Json<RecordedView>) {
    let new = r.is_new();
    let entry = match r {
        Recorded::New(e) | Recorded::Again(e) => e,
    };
    (
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(RecordedView {
            new,
            entry: entry.into(),
        }),
    )
}

/// What is due after the credits are applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct DuesView {
    /// Unpaid principal (what late fees are charged on).
    #[schema(value_type = String)]
    pub principal: Decimal,
    /// Unpaid late fees.
    #[schema(value_type = String)]
    pub fees: Decimal,
    /// Paid beyond everything billed: kept for later charges.
    #[schema(value_type = String)]
    pub credit: Decimal,
}

impl From<Dues> for DuesView {
    fn from(d: Dues) -> DuesView {
        DuesView {
            principal: d.principal,
            fees: d.fees,
            credit: d.credit,
        }
    }
}

/// A customer's account at the end of a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// The customer.
    pub customer_id: String,
    /// The date: its bill and its entries count.
    pub as_of: NaiveDate,
    /// The company's allocation order: `principal-first` or `fees-first`.
    pub allocation: String,
    /// Principal billed up to the date (the opening balance included).
    #[schema(value_type = String)]
    pub principal_billed: Decimal,
    /// Late fees billed up to the date.
    #[schema(value_type = String)]
    pub fees_billed: Decimal,
    /// The entries' sum: payments less what was taken back, adjustments, write-offs.
    #[schema(value_type = String)]
    pub credits: Decimal,
    /// What is due.
    pub dues: DuesView,
    /// What the customer owes; negative when the company owes the customer (credit).
    #[schema(value_type = String)]
    pub balance: Decimal,
    /// The last bill counted.
    pub last_bill_date: Option<NaiveDate>,
    /// The opening balance's date, when the account has one.
    pub opening_as_of: Option<NaiveDate>,
    /// The entries, oldest first.
    pub entries: Vec<EntryView>,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> AccountView {
        AccountView {
            customer_id: a.customer_id,
            as_of: a.as_of,
            allocation: a.allocation.as_str().into(),
            principal_billed: a.principal_billed,
            fees_billed: a.fees_billed,
            credits: a.credits,
            dues: a.dues.into(),
            balance: a.balance,
            last_bill_date: a.last_bill_date,
            opening_as_of: a.opening_as_of,
            entries: a.entries.into_iter().map(EntryView::from).collect(),
        }
    }
}

/// The date of an account.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    /// The date (its end); today in the company's time zone when absent.
    pub as_of: Option<NaiveDate>,
}

/// A date a request names: years 1900 to 9999 (what the databases and a heating company's
/// books can hold; a wilder date is a typo, answered 400 rather than a database's error).
pub(crate) fn plausible(what: &str, d: NaiveDate) -> Result<NaiveDate, ApiError> {
    use chrono::Datelike;
    if (1900..=9999).contains(&d.year()) {
        Ok(d)
    } else {
        Err(ApiError::bad_request(format!(
            "{what} {d}: give a date between 1900-01-01 and 9999-12-31"
        )))
    }
}

pub(crate) fn not_found(c: &Company, customer: &str) -> ApiError {
    ApiError::not_found(format!(
        "company {} has no customer {:?}",
        c.slug,
        heatbill_engine::text::safe(customer)
    ))
}

/// A customer's account at the end of a date: what was billed, what was paid, what is due by
/// the company's allocation order, any credit, and the entries.
#[utoipa::path(get, operation_id = "accounts_read", path = "/v1/companies/{company}/customers/{customer}/account", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id"), AsOfQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn account(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, customer)): Path<(String, String)>,
    Query(q): Query<AsOfQuery>,
) -> Result<Json<AccountView>, ApiError> {
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
    let facts = store.account_facts(c.id, &customer, as_of).await?;
    Ok(Json(
        ledger::account(&customer, as_of, policy, facts).into(),
    ))
}

/// A payment: a counter receipt or a channel's notification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// The customer.
    pub customer_id: String,
    /// The amount, in yuan, positive, at most two decimals (a string: `"120.50"`).
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// `counter`, `wechat`, `alipay`, `bank` or `government`.
    pub channel: String,
    /// The transaction id in the channel; for the counter, the receipt number. The same
    /// channel and id again is the same payment: answered 200 with the first entry.
    pub channel_txn: String,
    /// The day it was received (today in the company's time zone when absent; never later).
    pub paid_on: Option<NaiveDate>,
    /// How it was paid: `cash`, `card`, `cheque`, `transfer`, `qr`, ….
    pub method: Option<String>,
    /// A counter receipt's number (defaults to channel_txn for the counter).
    pub receipt_no: Option<String>,
    /// The cashier who took it.
    pub cashier: Option<String>,
    /// A note.
    pub note: Option<String>,
}

pub(crate) fn check_date(
    c: &Company,
    what: &str,
    d: Option<NaiveDate>,
) -> Result<NaiveDate, ApiError> {
    let today = ledger::local_today(&c.time_zone);
    let d = plausible(what, d.unwrap_or(today))?;
    if d > today {
        return Err(ApiError::unprocessable(format!(
            "{what} {d} is after today ({today} in {}): money is recorded on the day it moved",
            c.time_zone
        )));
    }
    Ok(d)
}

/// Records a payment (staff). Idempotent by channel and transaction id: the same payment
/// again answers 200 with the entry recorded first; the same id with another customer, date
/// or amount is a 409 (an entry is never changed: reverse it and record the right one).
#[utoipa::path(post, operation_id = "accounts_pay", path = "/v1/companies/{company}/payments", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = PaymentBody,
    security(("bearer" = [])),
    responses((status = 201, body = RecordedView, description = "Recorded"),
        (status = 200, body = RecordedView, description = "Recorded before: nothing changed"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn pay(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    JsonBody(b): JsonBody<PaymentBody>,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    check_id("customer_id", &b.customer_id)?;
    let channel = match Channel::parse(&b.channel) {
        Some(Channel::Import) | None => {
            return Err(ApiError::unprocessable(format!(
                "channel {:?}: give counter, wechat, alipay, bank or government",
                heatbill_engine::text::safe(&b.channel)
            )));
        }
        Some(ch) => ch,
    };
    let on_date = check_date(&c, "paid_on", b.paid_on)?;
    let receipt_no = match (&b.receipt_no, channel) {
        (None, Channel::Counter) => Some(b.channel_txn.clone()),
        (r, _) => r.clone(),
    };
    let e = NewEntry {
        customer_id: b.customer_id,
        kind: EntryKind::Payment,
        on_date,
        amount: b.amount,
        channel: Some(channel),
        channel_txn: Some(b.channel_txn),
        method: b.method,
        receipt_no,
        cashier: b.cashier,
        reason_code: None,
        note: b.note,
        recorded_by: caller.who(),
        source: "api".into(),
    };
    record(&app, &c, &caller, e).await
}

pub(crate) async fn record(
    app: &App,
    c: &Company,
    caller: &Caller,
    e: NewEntry,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    e.check().map_err(ApiError::unprocessable)?;
    let r = app.services.store.record_entry(c.id, &e).await?;
    if r.is_new() {
        tracing::info!(company = %c.slug, entry = r.entry().id, kind = e.kind.as_str(),
            by = %caller.who(), "ledger entry recorded");
    }
    Ok(recorded(r))
}

/// An adjustment or a write-off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    /// `adjustment` (the default) or `write-off`.
    pub kind: Option<String>,
    /// Signed from the customer's side, in yuan: positive credits the customer (they owe
    /// less), negative debits; a write-off is the debt given up, positive.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// A reason code of the company's (e.g. `meter-error`, `goodwill`, `uncollectable`).
    pub reason_code: String,
    /// Why, in words.
    pub note: String,
    /// The value date (today in the company's time zone when absent; never later).
    pub on_date: Option<NaiveDate>,
}

/// Records an adjustment or a write-off on a customer's account (staff).
#[utoipa::path(post, operation_id = "accounts_adjust", path = "/v1/companies/{company}/customers/{customer}/adjustments", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id")),
    request_body = AdjustmentBody,
    security(("bearer" = [])),
    responses((status = 201, body = RecordedView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn adjust(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, customer)): Path<(String, String)>,
    JsonBody(b): JsonBody<AdjustmentBody>,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    check_id("customer", &customer)?;
    let kind = match b.kind.as_deref() {
        None | Some("adjustment") => EntryKind::Adjustment,
        Some("write-off") => EntryKind::WriteOff,
        Some(k) => {
            return Err(ApiError::unprocessable(format!(
                "kind {:?}: give adjustment or write-off (a payment is POST …/payments; a \
                 reversal or refund is recorded on its payment)",
                heatbill_engine::text::safe(k)
            )));
        }
    };
    let on_date = check_date(&c, "on_date", b.on_date)?;
    let e = NewEntry {
        customer_id: customer,
        kind,
        on_date,
        amount: b.amount,
        channel: None,
        channel_txn: None,
        method: None,
        receipt_no: None,
        cashier: None,
        reason_code: Some(b.reason_code),
        note: Some(b.note),
        recorded_by: caller.who(),
        source: "api".into(),
    };
    record(&app, &c, &caller, e).await
}

/// One entry.
#[utoipa::path(get, operation_id = "accounts_entry", path = "/v1/companies/{company}/entries/{id}", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The entry's id")),
    security(("bearer" = [])),
    responses((status = 200, body = EntryView), (status = 404, body = ErrorBody)))]
pub async fn entry(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, id)): Path<(String, i64)>,
) -> Result<Json<EntryView>, ApiError> {
    match app.services.store.entry(c.id, id).await? {
        Some(e) => Ok(Json(e.into())),
        None => Err(ApiError::not_found(format!(
            "company {} has no entry {id}",
            c.slug
        ))),
    }
}

/// A reversal of a payment: all that is left of it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalBody {
    /// Why (a bounced transfer, a cashier's mistake, …).
    pub note: String,
    /// The value date (today when absent; not before the payment's).
    pub on_date: Option<NaiveDate>,
    /// The cashier, for a counter payment.
    pub cashier: Option<String>,
}

/// Reverses a payment (staff): a new entry that takes back all that is left of it. A payment
/// undone already is a 409.
#[utoipa::path(post, operation_id = "accounts_reverse", path = "/v1/companies/{company}/entries/{id}/reversal", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The payment's entry id")),
    request_body = ReversalBody,
    security(("bearer" = [])),
    responses((status = 201, body = RecordedView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reverse(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, id)): Path<(String, i64)>,
    JsonBody(b): JsonBody<ReversalBody>,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    let u = Undo {
        payment: id,
        kind: EntryKind::Reversal,
        amount: None,
        on_date: check_date(&c, "on_date", b.on_date)?,
        channel_txn: None,
        cashier: b.cashier,
        note: b.note,
        recorded_by: caller.who(),
        source: "api".into(),
    };
    undo(&app, &c, &caller, u).await
}

/// A refund out of a payment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// What is paid back, in yuan, positive: at most what is left of the payment.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// Why.
    pub note: String,
    /// The refund's id in the payment's channel (a WeChat refund number): the same id again
    /// is the same refund.
    pub channel_txn: Option<String>,
    /// The value date (today when absent; not before the payment's).
    pub on_date: Option<NaiveDate>,
    /// The cashier, for a counter refund.
    pub cashier: Option<String>,
}

/// Refunds some or all of a payment (staff).
#[utoipa::path(post, operation_id = "accounts_refund", path = "/v1/companies/{company}/entries/{id}/refunds", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"),
        ("id" = i64, Path, description = "The payment's entry id")),
    request_body = RefundBody,
    security(("bearer" = [])),
    responses((status = 201, body = RecordedView), (status = 200, body = RecordedView, description = "Recorded before"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn refund(
    State(app): State<App>,
    Tenant(c, caller, _): Tenant<access::Data>,
    Path((_company, id)): Path<(String, i64)>,
    JsonBody(b): JsonBody<RefundBody>,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    let u = Undo {
        payment: id,
        kind: EntryKind::Refund,
        amount: Some(b.amount),
        on_date: check_date(&c, "on_date", b.on_date)?,
        channel_txn: b.channel_txn,
        cashier: b.cashier,
        note: b.note,
        recorded_by: caller.who(),
        source: "api".into(),
    };
    undo(&app, &c, &caller, u).await
}

pub(crate) async fn undo(
    app: &App,
    c: &Company,
    caller: &Caller,
    u: Undo,
) -> Result<(StatusCode, Json<RecordedView>), ApiError> {
    u.check().map_err(ApiError::unprocessable)?;
    let r = app.services.store.undo_payment(c.id, &u).await?;
    if r.is_new() {
        tracing::info!(company = %c.slug, entry = r.entry().id, payment = u.payment,
            kind = u.kind.as_str(), by = %caller.who(), "payment undone");
    }
    Ok(recorded(r))
}

/// One cashier's takings in one channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct TillView {
    /// The cashier (none for channel payments).
    pub cashier: Option<String>,
    /// The channel.
    pub channel: Option<String>,
    /// Payments taken.
    pub payments: u64,
    /// Their sum.
    #[schema(value_type = String)]
    pub paid: Decimal,
    /// Reversals and refunds.
    pub undone: u64,
    /// Their sum (negative).
    #[schema(value_type = String)]
    pub undone_amount: Decimal,
    /// Paid plus undone.
    #[schema(value_type = String)]
    pub net: Decimal,
    /// The entries behind it.
    pub entries: Vec<i64>,
}

impl From<Till> for TillView {
    fn from(t: Till) -> TillView {
        TillView {
            cashier: t.cashier,
            channel: t.channel.map(|c| c.as_str().into()),
            payments: t.payments,
            paid: t.paid,
            undone: t.undone,
            undone_amount: t.undone_amount,
            net: t.net,
            entries: t.entries,
        }
    }
}

/// A day's close (日结).
#[derive(Debug, Serialize, ToSchema)]
pub struct DayCloseView {
    /// The day.
    pub date: NaiveDate,
    /// Per cashier and channel.
    pub tills: Vec<TillView>,
    /// Everything taken that day.
    #[schema(value_type = String)]
    pub net: Decimal,
}

impl From<DayClose> for DayCloseView {
    fn from(d: DayClose) -> DayCloseView {
        DayCloseView {
            date: d.date,
            tills: d.tills.into_iter().map(TillView::from).collect(),
            net: d.net,
        }
    }
}

/// The day of a close.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// The day.
    pub date: NaiveDate,
}

/// A day's close: payments, reversals and refunds dated that day, per cashier and channel,
/// with the entries behind each total.
#[utoipa::path(get, operation_id = "accounts_day_close", path = "/v1/companies/{company}/day-close", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"), DayQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DayCloseView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn day_close(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<DayQuery>,
) -> Result<Json<DayCloseView>, ApiError> {
    plausible("date", q.date)?;
    let entries = app.services.store.entries_on(c.id, q.date).await?;
    Ok(Json(ledger::day_close(q.date, &entries).into()))
}

/// One month's charges of one line code.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthChargeView {
    /// `YYYY-MM`.
    pub month: String,
    /// The line code (`opening-balance` for an opening balance dated in the period).
    pub code: String,
    /// The line's description.
    pub description: String,
    /// The customer's charges.
    #[schema(value_type = String)]
    pub amount: Decimal,
}

/// A customer statement (对账单).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementView {
    /// The customer.
    pub customer_id: String,
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
    /// The balance at the end of the day before `from` (negative: credit).
    #[schema(value_type = String)]
    pub opening_balance: Decimal,
    /// The charges by month and line code.
    pub charges: Vec<MonthChargeView>,
    /// Their sum.
    #[schema(value_type = String)]
    pub charges_total: Decimal,
    /// Payments, reversals and refunds in the period.
    pub payments: Vec<EntryView>,
    /// Their sum.
    #[schema(value_type = String)]
    pub payments_total: Decimal,
    /// Adjustments and write-offs in the period.
    pub adjustments: Vec<EntryView>,
    /// Their sum.
    #[schema(value_type = String)]
    pub adjustments_total: Decimal,
    /// The balance at the end of `to` (negative: credit).
    #[schema(value_type = String)]
    pub closing_balance: Decimal,
    /// What is due at the end of `to`.
    pub closing: DuesView,
}

impl From<ledger::Statement> for StatementView {
    fn from(s: ledger::Statement) -> StatementView {
        StatementView {
            customer_id: s.customer_id,
            from: s.from,
            to: s.to,
            opening_balance: s.opening_balance,
            charges: s
                .charges
                .into_iter()
                .map(|c| MonthChargeView {
                    month: c.month,
                    code: c.code,
                    description: c.description,
                    amount: c.amount,
                })
                .collect(),
            charges_total: s.charges_total,
            payments: s.payments.into_iter().map(EntryView::from).collect(),
            payments_total: s.payments_total,
            adjustments: s.adjustments.into_iter().map(EntryView::from).collect(),
            adjustments_total: s.adjustments_total,
            closing_balance: s.closing_balance,
            closing: s.closing.into(),
        }
    }
}

/// A statement's period and form.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// The first day.
    pub from: NaiveDate,
    /// The last day (at most 366 days after `from`).
    pub to: NaiveDate,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// A customer statement (对账单) for a period (at most 366 days): the opening balance, the
/// charges by month and line code, payments, adjustments and the closing balance, as JSON or
/// CSV (`section,month,code,description,date,entry,kind,amount`).
#[utoipa::path(get, operation_id = "accounts_statement", path = "/v1/companies/{company}/customers/{customer}/statement", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"),
        ("customer" = String, Path, description = "The customer's id"), StatementQuery),
    security(("bearer" = [])),
    responses((status = 200, body = StatementView, description = "JSON; with format=csv, text/csv"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn statement(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, customer)): Path<(String, String)>,
    Query(q): Query<StatementQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    check_id("customer", &customer)?;
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
    let s = customer_statement(&app.services.store, &c, &customer, q.from, q.to).await?;
    if csv {
        return Ok((
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}-statement-{}-{}.csv\"",
                        c.slug, q.from, q.to
                    ),
                ),
            ],
            s.csv(),
        )
            .into_response());
    }
    Ok(Json(StatementView::from(s)).into_response())
}

/// A customer's statement, after the checks of the request.
async fn customer_statement(
    store: &std::sync::Arc<dyn heatbill_runtime::store::Store>,
    c: &Company,
    customer: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ledger::Statement, ApiError> {
    plausible("from", from)?;
    plausible("to", to)?;
    if to < from || (to - from).num_days() > 366 {
        return Err(ApiError::bad_request(
            "give from <= to, at most 366 days apart",
        ));
    }
    if !store.has_customer(c.id, customer).await? {
        return Err(not_found(c, customer));
    }
    let policy = ledger::Allocation::of(&c.policies).map_err(ApiError::unprocessable)?;
    Ok(store.statement(c.id, customer, policy, from, to).await?)
}

/// The receivables report's date and format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReceivablesQuery {
    /// The date (its end); today in the company's time zone when absent.
    pub as_of: Option<NaiveDate>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// Balances by age: what is owed on charges of the last 30 days, 30–59, 60–89 and 90+ days, and
/// credit held.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketsView {
    /// Customers counted.
    pub customers: u64,
    /// Customers who owe.
    pub owing: u64,
    /// Owed in all.
    #[schema(value_type = String)]
    pub owed: Decimal,
    /// Owed on charges of the last 30 days.
    #[schema(value_type = String)]
    pub current: Decimal,
    /// Owed on charges 30–59 days old.
    #[schema(value_type = String)]
    pub days_30: Decimal,
    /// Owed on charges 60–89 days old.
    #[schema(value_type = String)]
    pub days_60: Decimal,
    /// Owed on charges 90 days old or older.
    #[schema(value_type = String)]
    pub days_90: Decimal,
    /// Credit held for customers who paid ahead.
    #[schema(value_type = String)]
    pub credit: Decimal,
}

impl From<heatbill_runtime::receivables::Buckets> for BucketsView {
    fn from(b: heatbill_runtime::receivables::Buckets) -> BucketsView {
        BucketsView {
            customers: b.customers,
            owing: b.owing,
            owed: b.owed,
            current: b.current,
            days_30: b.days_30,
            days_60: b.days_60,
            days_90: b.days_90,
            credit: b.credit,
        }
    }
}

/// One community's receivables.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommunityView {
    /// The community (小区) of the customers' newest profiles; none for customers without one.
    pub community: Option<String>,
    /// Their balances by age.
    #[serde(flatten)]
    pub buckets: BucketsView,
}

/// A company's receivables at a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivablesView {
    /// The date: entries dated up to it count.
    pub as_of: NaiveDate,
    /// The latest completed run on or before it: what the balances are billed through.
    pub billed_through: NaiveDate,
    /// The latest completed runs on or before 30, 60 and 90 days before `as_of`, where the
    /// age windows are cut.
    pub cuts: Vec<Option<NaiveDate>>,
    /// The whole company.
    pub total: BucketsView,
    /// By community.
    pub communities: Vec<CommunityView>,
}

/// A company's receivables report: customers' balances at a date by age (current, 30, 60, 90+
/// days; the newest charges are what is still owed) and by community, with the credit held;
/// JSON or CSV (`community,customers,owing,owed,current,days_30,days_60,days_90,credit`).
#[utoipa::path(get, operation_id = "accounts_receivables", path = "/v1/companies/{company}/receivables", tag = "accounts",
    params(("company" = String, Path, description = "The company's slug"), ReceivablesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ReceivablesView, description = "JSON; with format=csv, text/csv"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn receivables(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Query(q): Query<ReceivablesQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
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
    let as_of = plausible(
        "as_of",
        q.as_of.unwrap_or_else(|| ledger::local_today(&c.time_zone)),
    )?;
    let Some(r) = app
        .services
        .store
        .receivables(c.id, as_of, RECEIVABLES_PAGE)
        .await?
    else {
        return Err(ApiError::conflict(format!(
            "company {} has no completed run dated on or before {as_of}: run a date first",
            c.slug
        )));
    };
    if csv {
        return Ok((
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}-receivables-{as_of}.csv\"",
                        c.slug
                    ),
                ),
            ],
            r.csv(),
        )
            .into_response());
    }
    Ok(Json(ReceivablesView {
        as_of: r.as_of,
        billed_through: r.cuts.billed_through,
        cuts: r.cuts.before.to_vec(),
        total: r.total.into(),
        communities: r
            .communities
            .into_iter()
            .map(|(community, b)| CommunityView {
                community,
                buckets: b.into(),
            })
            .collect(),
    })
    .into_response())
}

/// Customers read per page by the receivables report.
const RECEIVABLES_PAGE: usize = 20_000;
