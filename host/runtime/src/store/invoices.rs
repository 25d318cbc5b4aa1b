//! The store's e-invoice requests ([`crate::invoices`]): written in the transaction of the
//! payment (blue) or the refund or reversal (red-letter) that causes them, with their
//! `invoice_requested` event; the provider's answer kept.

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::events::insert_event;
use super::sql::{Commit, Engine, Exec, SqlRow, args, q};
use super::types::{Result, StoreError};
use crate::events::{EventKind, key, targets_of};
use crate::invoices::{Charge, InvoicePolicy, Line, lines, red_lines};
use crate::ledger::{Allocation, Entry, EntryKind, allocate};
use crate::model::shown;

/// The most requests one listing returns.
pub const MAX_INVOICES: usize = 1_000;

/// An invoice request as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvoiceRecord {
    /// Its id.
    pub id: i64,
    /// Its key (the event's).
    pub request_key: String,
    /// `blue` (a payment's) or `red` (a refund's or reversal's, 红字).
    pub kind: String,
    /// The customer.
    pub customer_id: String,
    /// The ledger entry that caused it.
    pub entry_id: i64,
    /// The blue request a red one reverses.
    pub original_id: Option<i64>,
    /// The total (negative for red).
    pub amount: Decimal,
    /// The entry's date.
    pub on_date: NaiveDate,
    /// The request as published.
    pub body: serde_json::Value,
    /// `requested`, `issued` or `refused`.
    pub state: String,
    /// The invoice's number (20 digits), once issued.
    pub invoice_number: Option<String>,
    /// Its PDF.
    pub pdf_url: Option<String>,
    /// Its OFD.
    pub ofd_url: Option<String>,
    /// Why the provider refused it.
    pub reason: Option<String>,
    /// When the answer came (UTC).
    pub answered_at: Option<String>,
}

/// Which requests.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    /// One customer's.
    pub customer_id: Option<String>,
    /// Dated from.
    pub from: Option<NaiveDate>,
    /// Dated up to.
    pub to: Option<NaiveDate>,
    /// In this state.
    pub state: Option<String>,
    /// After this id.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Issued (true) or refused.
    pub issued: bool,
    /// The invoice number (20 digits), when issued.
    pub invoice_number: Option<String>,
    /// Its PDF link.
    pub pdf_url: Option<String>,
    /// Its OFD link.
    pub ofd_url: Option<String>,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// E-invoice requests.
#[async_trait]
pub trait InvoiceStore: Send + Sync {
    /// Requests of the company, by id.
    async fn invoices(&self, company_id: i32, f: &InvoiceFilter) -> Result<Vec<InvoiceRecord>>;

    /// One request.
    async fn invoice(&self, company_id: i32, id: i64) -> Result<Option<InvoiceRecord>>;

    /// Keeps the provider's answer; the same answer again changes nothing (false), another
    /// answer to an answered request is a conflict.
    async fn answer_invoice(
        &self,
        company_id: i32,
        id: i64,
        a: &Answer,
    ) -> Result<(InvoiceRecord, bool)>;
}

macro_rules! invoice_columns {
    () => {
        "id, request_key, kind, customer_id, entry_id, original_id, amount::text AS amount, \
         on_date, body, state, invoice_number, pdf_url, ofd_url, reason, \
         utc_text(answered_at) AS answered_at"
    };
}

fn invoice_of<R: SqlRow>(r: &R) -> Result<InvoiceRecord> {
    Ok(InvoiceRecord {
        id: r.big("id")?,
        request_key: r.string("request_key")?,
        kind: r.string("kind")?,
        customer_id: r.string("customer_id")?,
        entry_id: r.big("entry_id")?,
        original_id: r.opt_big("original_id")?,
        amount: r.dec("amount")?,
        on_date: r.date("on_date")?,
        body: serde_json::from_str(r.str("body")?)
            .map_err(|e| StoreError::Corrupt(format!("invoice body: {e}")))?,
        state: r.string("state")?,
        invoice_number: r.opt_string("invoice_number")?,
        pdf_url: r.opt_string("pdf_url")?,
        ofd_url: r.opt_string("ofd_url")?,
        reason: r.opt_string("reason")?,
        answered_at: r.opt_string("answered_at")?,
    })
}

async fn invoice_in<X: Exec>(x: &mut X, company_id: i32, id: i64) -> Result<Option<InvoiceRecord>> {
    x.opt(
        q!(concat!(
            "SELECT ",
            invoice_columns!(),
            " FROM invoice_requests WHERE company_id = $1 AND id = $2"
        )),
        args![company_id, id],
    )
    .await?
    .as_ref()
    .map(invoice_of)
    .transpose()
}

/// The buyer as of `date`: the newest profile's name, the data's `tax_id` attribute (companies),
/// and the customer's class.
async fn buyer<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    date: NaiveDate,
) -> Result<(serde_json::Value, String)> {
    let data = x
        .opt(
            q!("SELECT class, attributes FROM customer_versions
                WHERE company_id = $1 AND customer_id = $2 AND valid_from <= $3
                ORDER BY valid_from DESC LIMIT 1"),
            args![company_id, customer_id, date],
        )
        .await?;
    let (class, tax_id) = match data {
        Some(r) => (
            r.string("class")?,
            crate::model::parse_attributes(r.str("attributes")?)
                .into_iter()
                .find(|(k, _)| k == "tax_id")
                .map(|(_, v)| v),
        ),
        None => ("residential".to_string(), None),
    };
    let name = x
        .opt(
            q!("SELECT name FROM customer_profiles
                WHERE company_id = $1 AND customer_id = $2 AND valid_from <= $3
                ORDER BY valid_from DESC, id DESC LIMIT 1"),
            args![company_id, customer_id, date],
        )
        .await?
        .map(|r| r.opt_string(0))
        .transpose()?
        .flatten();
    Ok((
        serde_json::json!({"customer_id": customer_id, "name": name, "tax_id": tax_id}),
        class,
    ))
}

fn totals(lines: &[Line]) -> serde_json::Value {
    let amount: Decimal = lines.iter().map(|l| l.amount).sum();
    let tax: Decimal = lines.iter().map(|l| l.tax).sum();
    serde_json::json!({"amount": amount.to_string(), "tax": tax.to_string(),
                       "total": (amount + tax).to_string()})
}

async fn insert_request<X: Exec>(
    x: &mut X,
    company_id: i32,
    k: &str,
    kind: &str,
    e: &Entry,
    original_id: Option<i64>,
    amount: Decimal,
    body: &serde_json::Value,
) -> Result<bool> {
    let amount = amount.to_string();
    let text = body.to_string();
    Ok(x.opt(
        q!(
            "INSERT INTO invoice_requests (company_id, request_key, kind, customer_id,
                    entry_id, original_id, amount, on_date, body)
                VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8, $9)
                ON CONFLICT (company_id, request_key) DO NOTHING RETURNING id"
        ),
        args![
            company_id,
            k,
            kind,
            e.customer_id.as_str(),
            e.id,
            original_id,
            amount.as_str(),
            e.on_date,
            text.as_str()
        ],
    )
    .await?
    .is_some())
}

/// The invoice request of a payment, in its transaction (company policy `invoicing`): lines by
/// charge type from the account before and after it.
pub(crate) async fn after_payment<X: Exec>(
    x: &mut X,
    company_id: i32,
    company: &str,
    policies: &serde_json::Value,
    e: &Entry,
) -> Result<()> {
    if e.kind != EntryKind::Payment {
        return Ok(());
    }
    let Some(policy) = InvoicePolicy::of(policies).map_err(StoreError::Corrupt)? else {
        return Ok(());
    };
    let allocation = Allocation::of(policies).map_err(StoreError::Corrupt)?;
    let facts = super::ledger::account_facts_in(x, company_id, &e.customer_id, e.on_date).await?;
    let after = crate::ledger::account(&e.customer_id, e.on_date, allocation, facts);
    let before = allocate(
        allocation,
        after.principal_billed,
        after.fees_billed,
        after.credits - e.amount,
    );
    let fees = (before.fees - after.dues.fees)
        .max(Decimal::ZERO)
        .min(e.amount);
    let parts = [(Charge::Heat, e.amount - fees), (Charge::LateFee, fees)];
    let (buyer, class) = buyer(x, company_id, &e.customer_id, e.on_date).await?;
    let lines = lines(&policy, &class, &parts).map_err(StoreError::Corrupt)?;
    let k = key(
        EventKind::InvoiceRequested,
        &e.customer_id,
        &format!("entry-{}", e.id),
    );
    let body = serde_json::json!({
        "key": k,
        "kind": EventKind::InvoiceRequested.as_str(),
        "company": company,
        "customer_id": e.customer_id,
        "invoice": "blue",
        "entry_id": e.id,
        "paid_on": e.on_date,
        "channel": e.channel.map(crate::ledger::Channel::as_str),
        "channel_txn": e.channel_txn,
        "seller": policy.seller,
        "buyer": buyer,
        "lines": lines,
        "totals": totals(&lines),
    });
    if insert_request(x, company_id, &k, "blue", e, None, e.amount, &body).await? {
        let targets = targets_of(policies).map_err(StoreError::Corrupt)?;
        insert_event(
            x,
            company_id,
            &k,
            EventKind::InvoiceRequested,
            Some(&e.customer_id),
            &body,
            &targets,
        )
        .await?;
    }
    Ok(())
}

/// The red-letter request of a refund or reversal of an invoiced payment, in its transaction:
/// the original's lines in proportion, referencing it (and its number, once issued).
pub(crate) async fn after_undo<X: Exec>(x: &mut X, company_id: i32, e: &Entry) -> Result<()> {
    let Some(paid) = e.undoes else {
        return Ok(());
    };
    let Some(original) = x
        .opt(
            q!(concat!(
                "SELECT ",
                invoice_columns!(),
                " FROM invoice_requests WHERE company_id = $1 AND entry_id = $2 AND kind = 'blue'"
            )),
            args![company_id, paid],
        )
        .await?
        .as_ref()
        .map(invoice_of)
        .transpose()?
    else {
        return Ok(());
    };
    let (company, policies) = super::events::company_policies(x, company_id).await?;
    let blue: Vec<Line> = serde_json::from_value(original.body["lines"].clone())
        .map_err(|err| StoreError::Corrupt(format!("invoice lines: {err}")))?;
    let red = red_lines(&blue, -e.amount);
    let k = key(
        EventKind::InvoiceRedRequested,
        &e.customer_id,
        &format!("entry-{}", e.id),
    );
    let body = serde_json::json!({
        "key": k,
        "kind": EventKind::InvoiceRedRequested.as_str(),
        "company": company,
        "customer_id": e.customer_id,
        "invoice": "red",
        "entry_id": e.id,
        "reason": e.kind.as_str(),
        "on_date": e.on_date,
        "original": {"request_key": original.request_key, "invoice_number": original.invoice_number},
        "seller": original.body["seller"],
        "buyer": original.body["buyer"],
        "lines": red,
        "totals": totals(&red),
    });
    if insert_request(
        x,
        company_id,
        &k,
        "red",
        e,
        Some(original.id),
        e.amount,
        &body,
    )
    .await?
    {
        let targets = targets_of(&policies).map_err(StoreError::Corrupt)?;
        insert_event(
            x,
            company_id,
            &k,
            EventKind::InvoiceRedRequested,
            Some(&e.customer_id),
            &body,
            &targets,
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<E: Engine> InvoiceStore for E {
    async fn invoices(&self, company_id: i32, f: &InvoiceFilter) -> Result<Vec<InvoiceRecord>> {
        let limit = f.limit.clamp(1, MAX_INVOICES) as i64;
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    invoice_columns!(),
                    " FROM invoice_requests WHERE company_id = $1
                      AND ($2::text IS NULL OR customer_id = $2)
                      AND ($3 IS NULL OR on_date >= $3)
                      AND ($4 IS NULL OR on_date <= $4)
                      AND ($5::text IS NULL OR state = $5)
                      AND ($6 IS NULL OR id > $6)
                    ORDER BY id LIMIT $7"
                )),
                args![
                    company_id,
                    f.customer_id.as_deref(),
                    f.from,
                    f.to,
                    f.state.as_deref(),
                    f.after,
                    limit
                ],
            )
            .await?
            .iter()
            .map(invoice_of)
            .collect()
    }

    async fn invoice(&self, company_id: i32, id: i64) -> Result<Option<InvoiceRecord>> {
        invoice_in(&mut self.db(), company_id, id).await
    }

    async fn answer_invoice(
        &self,
        company_id: i32,
        id: i64,
        a: &Answer,
    ) -> Result<(InvoiceRecord, bool)> {
        let mut tx = self.begin().await?;
        let Some(old) = invoice_in(&mut tx, company_id, id).await? else {
            return Err(StoreError::NotFound(format!(
                "no invoice request {id} in this company"
            )));
        };
        let state = if a.issued { "issued" } else { "refused" };
        if old.state != "requested" {
            let same = old.state == state
                && old.invoice_number == a.invoice_number
                && old.pdf_url == a.pdf_url
                && old.ofd_url == a.ofd_url
                && old.reason == a.reason;
            if same {
                return Ok((old, false));
            }
            return Err(StoreError::Conflict(format!(
                "invoice request {id} was answered already ({}{}): an answer is never changed; \
                 a wrong invoice is reversed by a red-letter invoice",
                old.state,
                old.invoice_number
                    .as_deref()
                    .map(|n| format!(", number {}", shown(n)))
                    .unwrap_or_default()
            )));
        }
        tx.exec(
            q!(
                "UPDATE invoice_requests SET state = $3, invoice_number = $4, pdf_url = $5,
                    ofd_url = $6, reason = $7, answered_at = now()
                WHERE company_id = $1 AND id = $2 AND state = 'requested'"
            ),
            args![
                company_id,
                id,
                state,
                a.invoice_number.as_deref(),
                a.pdf_url.as_deref(),
                a.ofd_url.as_deref(),
                a.reason.as_deref()
            ],
        )
        .await?;
        let new = invoice_in(&mut tx, company_id, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the invoice just answered".into()))?;
        tx.commit().await?;
        Ok((new, true))
    }
}
