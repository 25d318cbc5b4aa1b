//! Channel statement files, parsed and reconciled against the payments heatbill recorded.
//!
//! A heating company's money arrives through channels that each publish a daily file of what
//! they moved: WeChat Pay's trade bill (交易账单), Alipay's business statement (业务明细, a ZIP of
//! GBK CSV files), and the banks' statements (one CSV or XLSX layout per bank). Comparing that
//! file with the ledger finds the payments whose notification was lost (in the channel, not in
//! heatbill), the ones heatbill recorded that the channel does not know, and the amounts that
//! differ.
//!
//! Why the crate looks the way it does:
//!
//! - **A statement file is hostile input.** It is uploaded by a person, it may have been opened
//!   and re-saved by a spreadsheet (a new encoding, a formula in a text field), cut short by a
//!   download, or built to hurt (a ZIP bomb, a billion rows). Every parser checks the size first
//!   ([`Limits`]), reads ZIP entries through a bound rather than trusting their declared size,
//!   decodes strictly (an invalid byte is an error with its line, never a replacement
//!   character), caps every field, and never panics on what it reads. Errors say what to fix:
//!   the line, the column, the offending value (escaped and cut short), and they are collected
//!   like an import report ([`StatementError::Rows`]) rather than stopping at the first.
//! - **Parse by header name, never by position.** The channels add and reorder columns (WeChat's
//!   columns differ by bill type), so each parser finds the columns it needs by name and says
//!   which one is missing.
//! - **Money is exact.** Amounts are parsed digit by digit into [`Decimal`] (no float ever
//!   touches them): no exponent, no thousands separator unless a bank profile allows it, at most
//!   two decimals (fen). A file whose own totals (WeChat's summary row, Alipay's `#交易合计`
//!   trailer) do not match its rows is refused whole.
//! - **Pure.** No database, no async, no I/O but reading the bytes handed in: the caller stores
//!   the file ([`Statement::digest`] identifies it), chooses the recorded entries to compare, and
//!   decides what to do with each [`reconcile::Item`].
//!
//! | entry point | reads |
//! |---|---|
//! | [`parse_wechat`] | WeChat Pay's trade bill, type ALL (UTF-8 CSV, backtick-prefixed fields, summary rows) |
//! | [`parse_alipay_zip`] / [`parse_alipay_csv`] | Alipay's statement ZIP / its 业务明细 CSV |
//! | [`parse_bank`] | a bank's statement through a saved [`BankProfile`]: [`parse_bank_xlsx`] for an XLSX workbook, [`parse_bank_csv`] for a CSV |
//! | [`reconcile()`] | a [`Statement`] against [`Recorded`] entries: one [`Item`] per line and per unmatched entry |
//! | [`fixtures`] | deterministic generators of real-looking files, for tests and benchmarks |

#![warn(missing_docs)]

pub mod alipay;
mod archive;
pub mod bank;
mod error;
pub mod fixtures;
mod money;
pub mod reconcile;
mod table;
mod text;
pub mod wechat;
mod xlsx;
mod xml;

use std::io::Read;

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use alipay::{alipay_refund_txn, parse_alipay_csv, parse_alipay_zip};
pub use bank::{AmountColumns, BankProfile, MemoRule, parse_bank, parse_bank_csv, parse_bank_xlsx};
pub use error::{RowError, StatementError, SummaryMismatch};
pub use reconcile::{Discrepancy, Item, Reconciliation, Recorded, reconcile};
pub use text::escape;
pub use wechat::parse_wechat;

/// Where a statement comes from. The names are the ledger's channel names (`docs/payments.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// WeChat Pay (微信支付).
    Wechat,
    /// Alipay (支付宝).
    Alipay,
    /// A bank transfer.
    Bank,
}

impl Channel {
    /// The ledger's name of the channel: `wechat`, `alipay`, `bank`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Wechat => "wechat",
            Channel::Alipay => "alipay",
            Channel::Bank => "bank",
        }
    }
}

/// What a statement line is, from the customer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// Money received (amount positive).
    Payment,
    /// Money paid back or taken back: a refund, or a bank's debit or reversal (amount negative).
    Refund,
}

/// One money movement of a statement, the same shape whatever the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// The line of the source file (1-based) the row starts on, for messages.
    pub line_no: u64,
    /// Payment or refund.
    pub kind: LineKind,
    /// The channel's id of this movement: WeChat's 微信订单号 (payments) or 微信退款单号
    /// (refunds); Alipay's 支付宝交易号 (payments) or [`alipay_refund_txn`] (refunds); a bank's
    /// 流水号. Unique within a statement.
    pub channel_txn: String,
    /// For a refund, the payment it refunds (WeChat's 微信订单号 on the refund row, Alipay's
    /// 支付宝交易号).
    pub original_txn: Option<String>,
    /// The merchant's order number (商户订单号), which usually carries the customer's account.
    pub order_no: Option<String>,
    /// The customer's account number found by a bank profile's [`MemoRule`]; none for WeChat
    /// and Alipay (the caller applies its own rule to `order_no`).
    pub account_hint: Option<String>,
    /// When the channel says the movement happened (the company's local time).
    pub time: NaiveDateTime,
    /// Signed from the customer's side: payment +, refund −; exactly two decimals.
    pub amount: Decimal,
    /// The channel's fee (手续费 / 服务费) as the channel states it: not negative on a payment;
    /// WeChat states the fee returned on a refund row as a negative figure. Zero for banks.
    pub fee: Decimal,
    /// The other side: WeChat's 用户标识, Alipay's 对方账户, a bank's counterparty name and
    /// account.
    pub counterparty: Option<String>,
    /// Free text: the product name (商品名称) or the bank's memo columns, joined.
    pub memo: Option<String>,
}

/// A statement's figures, computed from its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Lines.
    pub count: u64,
    /// Payment lines.
    pub payment_count: u64,
    /// The payments' amounts (positive).
    pub payments: Decimal,
    /// Refund lines.
    pub refund_count: u64,
    /// The refunds' amounts (negative).
    pub refunds: Decimal,
    /// The fees, as stated.
    pub fees: Decimal,
}

/// A parsed statement file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Where it comes from.
    pub channel: Channel,
    /// Its money movements, in file order.
    pub lines: Vec<StatementLine>,
    /// SHA-256 of the raw bytes handed in (for a ZIP, of the ZIP): the same file uploaded twice
    /// has the same digest.
    pub digest: [u8; 32],
    /// The lines' figures.
    pub totals: Totals,
    /// The dates the file says it covers, both inclusive (Alipay's 起始日期/终止日期; none for
    /// WeChat and banks, whose files do not state it).
    pub period: Option<(NaiveDate, NaiveDate)>,
}

impl Statement {
    /// [`Statement::digest`] in lowercase hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    pub(crate) fn build(
        channel: Channel,
        bytes: &[u8],
        lines: Vec<StatementLine>,
        period: Option<(NaiveDate, NaiveDate)>,
    ) -> Statement {
        let mut totals = Totals::default();
        for line in &lines {
            totals.count += 1;
            totals.fees += line.fee;
            match line.kind {
                LineKind::Payment => {
                    totals.payment_count += 1;
                    totals.payments += line.amount;
                }
                LineKind::Refund => {
                    totals.refund_count += 1;
                    totals.refunds += line.amount;
                }
            }
        }
        Statement {
            channel,
            lines,
            digest: Sha256::digest(bytes).into(),
            totals,
            period,
        }
    }
}

/// Bounds on what a parser accepts; each is checked before the work it bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// The file handed in (for Alipay, the ZIP). Default 256 MiB.
    pub max_bytes: u64,
    /// Detail rows. Default 2,000,000.
    pub max_rows: u64,
    /// One field, in bytes after decoding. Default 4096.
    pub max_field_bytes: usize,
    /// Entries in an Alipay statement's ZIP. Default 16.
    pub max_zip_entries: usize,
    /// Entries in an XLSX workbook (a ZIP of XML parts: a bank's export has about ten, one
    /// re-saved by Excel with a few sheets, printer settings and custom XML twenty or thirty).
    /// Default 64.
    pub max_xlsx_entries: usize,
    /// A ZIP entry once inflated, counted as it is read (the declared size is checked too but
    /// never trusted); for an XLSX workbook, the parts read (the workbook, its relationships,
    /// the shared strings and the sheet) together. Default 512 MiB.
    pub max_uncompressed_bytes: u64,
    /// Row errors listed in [`StatementError::Rows`] (the rest are counted). Default 100.
    pub max_errors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 << 20,
            max_rows: 2_000_000,
            max_field_bytes: 4096,
            max_zip_entries: 16,
            max_xlsx_entries: 64,
            max_uncompressed_bytes: 512 << 20,
            max_errors: 100,
        }
    }
}

impl Limits {
    pub(crate) fn check_size(&self, len: usize) -> Result<(), StatementError> {
        let size = len as u64;
        if size > self.max_bytes {
            return Err(StatementError::TooLarge {
                size,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// Reads a statement file from `reader`, at most [`Limits::max_bytes`]: a larger file is
/// [`StatementError::TooLarge`] after reading one byte past the limit, never all of it.
pub fn read_limited<R: Read>(reader: R, limits: &Limits) -> Result<Vec<u8>, StatementError> {
    let mut bytes = Vec::new();
    reader
        .take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| StatementError::Read {
            detail: e.to_string(),
        })?;
    limits.check_size(bytes.len())?;
    Ok(bytes)
}

/// A text value made safe for a CSV export opened in a spreadsheet: a value that starts with
/// `=`, `+`, `-` or `@` (the formula starters, as heatbill's other exports treat them), or with a
/// tab or carriage return, gets a leading `'` so the spreadsheet shows it instead of running it.
/// The parsers keep values as the channel wrote them; this is for writing them out again.
pub fn csv_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}
