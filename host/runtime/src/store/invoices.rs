//! The store's e-invoice requests ([`crate::invoices`]): written in the transaction of the
//! payment (blue) or the refund or reversal (red-letter) that causes them, with their
//! `invoice_requested` event; the provider's answer kept.

use async_trait::async_trait;
use chrono::NaiveDate;

pub use super::outbox::InvoiceRecord;
use super::outbox::{invoice_columns, invoice_in, invoice_of};
use super::sql::{Commit, Engine, Exec, args, q};
use super::types::{Result, StoreError};
use crate::model::shown;

/// The most requests one listing returns.
pub const MAX_INVOICES: usize = 1_000;

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
