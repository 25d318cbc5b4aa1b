//! The store's channel statements: each imported statement file reconciled against the ledger
//! and kept (its totals and its discrepancies), banks' saved column mappings, and the reading
//! of both. Parsing and matching are `heatbill_statements`' (pure); this file chooses what to
//! compare, suggests the customer of a lost notification, and stores the outcome.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use heatbill_statements::{Discrepancy, LineKind, MemoRule, Recorded, Statement};
use rust_decimal::Decimal;
use serde::Serialize;

use super::sql::{Commit, Engine, Exec, SqlRow, args, q};
use super::types::{Result, StoreError};
use crate::ledger::Channel;

/// The most discrepancies one statement may have: beyond it, the file is surely another
/// company's or another channel's, and it is refused before anything is stored.
pub const MAX_DISCREPANCIES: usize = 100_000;

/// A statement to record.
#[derive(Debug)]
pub struct NewStatement<'a> {
    /// The file's name, as uploaded.
    pub file_name: String,
    /// The bank profile it was read with (bank statements).
    pub bank_profile: Option<String>,
    /// The parsed file.
    pub statement: &'a Statement,
    /// Where a line's order number or memo holds the customer's account number.
    pub account_rule: MemoRule,
    /// Who imported it.
    pub recorded_by: String,
}

/// A stored statement: the file, its period and totals, and how it compared with the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementSummary {
    /// Its id.
    pub id: i64,
    /// `wechat`, `alipay` or `bank`.
    pub channel: String,
    /// The file's name.
    pub file_name: String,
    /// The file's SHA-256 (hex).
    pub sha256: String,
    /// The bank profile it was read with.
    pub bank_profile: Option<String>,
    /// The first day it covers.
    pub period_from: NaiveDate,
    /// The last day it covers.
    pub period_to: NaiveDate,
    /// Its transaction lines.
    pub lines: i64,
    /// Its payments' sum.
    pub payments: Decimal,
    /// Its refunds' sum (negative).
    pub refunds: Decimal,
    /// The channel's fees.
    pub fees: Decimal,
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

/// One discrepancy of a stored statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementItem {
    /// Its number in the statement.
    pub item_no: i32,
    /// `missing-in-heatbill`, `missing-in-channel` or `amount-mismatch`.
    pub discrepancy: String,
    /// The line's kind (`payment`, `refund`), for a statement line.
    pub line_kind: Option<String>,
    /// The statement's line.
    pub line_no: Option<i64>,
    /// The recorded entry.
    pub entry_id: Option<i64>,
    /// The entry's customer.
    pub customer_id: Option<String>,
    /// The channel's transaction id.
    pub channel_txn: String,
    /// The merchant's order number (商户订单号).
    pub order_no: Option<String>,
    /// The account number a bank memo held.
    pub account_hint: Option<String>,
    /// The statement's amount.
    pub channel_amount: Option<Decimal>,
    /// heatbill's amount.
    pub recorded_amount: Option<Decimal>,
    /// The line's time (the channel's local time).
    pub txn_time: Option<String>,
    /// The entry's date.
    pub on_date: Option<NaiveDate>,
    /// The line's fee.
    pub fee: Decimal,
    /// The customer whose account number the line names (a lost payment), or whose payment
    /// the line refunds (a lost refund): what a recovery records for.
    pub suggested_customer: Option<String>,
    /// For a refund line, the channel's id of the payment it refunds.
    pub original_txn: Option<String>,
    /// The ledger entry now recorded under the line's channel and transaction id (a lost
    /// notification recovered), if any.
    pub recovered_entry: Option<i64>,
}

/// Whether a statement was recorded now.
#[derive(Debug, Clone)]
pub enum StatementRecorded {
    /// Imported and reconciled now.
    New(StatementSummary),
    /// The same file was imported before: nothing changed.
    Again(StatementSummary),
}

/// The company's rule for finding a customer's account number in a statement line's order
/// number or memo (`policies.reconciliation.account_rule`, a [`MemoRule`]); by default the run
/// of letters, digits and `-` (4 to 32 of them) after `户号`. Checked when a company's policies
/// are set, so a statement import never meets a bad rule.
pub fn account_rule(policies: &serde_json::Value) -> std::result::Result<MemoRule, String> {
    let Some(v) = policies.pointer("/reconciliation/account_rule") else {
        return Ok(MemoRule::Prefix {
            prefix: "户号".into(),
            min_len: 4,
            max_len: 32,
            extra_chars: "-".into(),
        });
    };
    let rule: MemoRule = serde_json::from_value(v.clone()).map_err(|e| {
        format!(
            "policies.reconciliation.account_rule is not a rule ({e}): give {{\"kind\": \
             \"prefix\", \"prefix\": \"户号\", \"min_len\": 8, \"max_len\": 12}} or \
             {{\"kind\": \"first-run\", \"min_len\": 8, \"max_len\": 12}}"
        )
    })?;
    rule.check()
        .map_err(|p| format!("policies.reconciliation.account_rule: {p}"))?;
    Ok(rule)
}

/// Why a statement's item is not recovered into a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRecoverable {
    /// The item is not a payment missing in heatbill.
    NotAMissingPayment(String),
    /// Neither the caller nor the line names the customer.
    NoCustomer,
    /// The stored item lacks what a payment line always has.
    Corrupt(&'static str),
}

impl std::fmt::Display for NotRecoverable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRecoverable::NotAMissingPayment(m) => f.write_str(m),
            NotRecoverable::NoCustomer => f.write_str(
                "no customer is named by the line's order number or memo: name the customer",
            ),
            NotRecoverable::Corrupt(m) => write!(f, "a stored payment line without {m}"),
        }
    }
}

/// What a lost line of `kind` is recovered with: its amount (signed as the statement has it),
/// the day it happened, and the note naming the statement and line. Refuses any other item.
fn lost_line(
    s: &StatementSummary,
    i: &StatementItem,
    kind: &str,
) -> std::result::Result<(Decimal, NaiveDate, String), NotRecoverable> {
    if i.discrepancy != "missing-in-heatbill" || i.line_kind.as_deref() != Some(kind) {
        return Err(NotRecoverable::NotAMissingPayment(format!(
            "item {} is a {} {}: only a payment or a refund missing in heatbill is recovered",
            i.item_no,
            i.discrepancy,
            i.line_kind.as_deref().unwrap_or("entry")
        )));
    }
    let amount = i
        .channel_amount
        .ok_or(NotRecoverable::Corrupt("an amount"))?;
    let time = i
        .txn_time
        .as_deref()
        .ok_or(NotRecoverable::Corrupt("a time"))?;
    let on_date = NaiveDate::parse_from_str(time.get(..10).unwrap_or(time), "%Y-%m-%d")
        .map_err(|_| NotRecoverable::Corrupt("a date"))?;
    let note = format!(
        "recovered from statement {} ({}), line {}",
        s.id,
        s.file_name,
        i.line_no.unwrap_or_default()
    );
    Ok((amount, on_date, note))
}

/// The payment a lost notification is recovered into: the statement line's channel,
/// transaction id and amount, dated the day it was paid, for `customer` (else the customer the
/// line names), with a note naming the statement and line. Recording it is idempotent by the
/// channel transaction, so an item recovered twice is one payment.
pub fn recovered_payment(
    s: &StatementSummary,
    i: StatementItem,
    customer: Option<String>,
    recorded_by: String,
) -> std::result::Result<crate::ledger::NewEntry, NotRecoverable> {
    let (amount, on_date, note) = lost_line(s, &i, "payment")?;
    let customer = customer
        .or(i.suggested_customer)
        .ok_or(NotRecoverable::NoCustomer)?;
    let channel = Channel::parse(&s.channel).ok_or(NotRecoverable::Corrupt("a channel"))?;
    Ok(crate::ledger::NewEntry {
        customer_id: customer,
        kind: crate::ledger::EntryKind::Payment,
        on_date,
        amount,
        channel: Some(channel),
        channel_txn: Some(i.channel_txn),
        method: None,
        receipt_no: None,
        cashier: None,
        reason_code: None,
        note: Some(note),
        recorded_by,
        source: "statement".into(),
    })
}

/// The refund a lost refund line is recovered into: a refund of `payment` (the entry the line's
/// `original_txn` names) of the line's amount, under the line's refund id, dated the day it was
/// refunded. Recording it is idempotent by the refund id.
pub fn recovered_refund(
    s: &StatementSummary,
    i: &StatementItem,
    payment: i64,
    recorded_by: String,
) -> std::result::Result<crate::ledger::Undo, NotRecoverable> {
    let (amount, on_date, note) = lost_line(s, i, "refund")?;
    Ok(crate::ledger::Undo {
        payment,
        kind: crate::ledger::EntryKind::Refund,
        amount: Some(-amount),
        on_date,
        channel_txn: Some(i.channel_txn.clone()),
        cashier: None,
        note,
        recorded_by,
        source: "statement".into(),
    })
}

/// Channel statements (see the module docs).
#[async_trait]
pub trait StatementStore: Send + Sync {
    /// Reconciles a parsed statement against the ledger's entries of its channel dated in its
    /// period (payments and refunds recorded with the channel's transaction id), and stores it
    /// with its discrepancies, in one transaction. The same file again (by SHA-256) is
    /// [`StatementRecorded::Again`] and changes nothing; more than [`MAX_DISCREPANCIES`] is a
    /// `Conflict` and stores nothing.
    async fn record_statement(
        &self,
        company_id: i32,
        s: &NewStatement<'_>,
    ) -> Result<StatementRecorded>;

    /// The company's statements, newest first (at most `limit`).
    async fn statements(&self, company_id: i32, limit: i64) -> Result<Vec<StatementSummary>>;

    /// One statement and its discrepancies (in item order; `discrepancy` filters).
    async fn statement_items(
        &self,
        company_id: i32,
        id: i64,
        discrepancy: Option<&str>,
    ) -> Result<Option<(StatementSummary, Vec<StatementItem>)>>;

    /// Saves a bank's column mapping (JSON), replacing one of the same name.
    async fn put_bank_profile(
        &self,
        company_id: i32,
        name: &str,
        profile_json: &str,
        by: &str,
    ) -> Result<()>;

    /// A bank's saved column mapping (JSON).
    async fn bank_profile(&self, company_id: i32, name: &str) -> Result<Option<String>>;

    /// Every saved bank profile: (name, JSON, saved by, saved at).
    async fn bank_profiles(&self, company_id: i32)
    -> Result<Vec<(String, String, String, String)>>;
}

macro_rules! summary_columns {
    () => {
        "id, channel, file_name, sha256, bank_profile, period_from, period_to, lines,
         payments::text AS payments, refunds::text AS refunds, fees::text AS fees, matched,
         missing_in_heatbill, missing_in_channel, amount_mismatch, imported_by,
         utc_text(imported_at) AS imported_at"
    };
}

fn summary_of<R: SqlRow>(r: &R) -> Result<StatementSummary> {
    Ok(StatementSummary {
        id: r.big("id")?,
        channel: r.string("channel")?,
        file_name: r.string("file_name")?,
        sha256: r.string("sha256")?,
        bank_profile: r.opt_string("bank_profile")?,
        period_from: r.date("period_from")?,
        period_to: r.date("period_to")?,
        lines: r.big("lines")?,
        payments: r.dec("payments")?,
        refunds: r.dec("refunds")?,
        fees: r.dec("fees")?,
        matched: r.big("matched")?,
        missing_in_heatbill: r.big("missing_in_heatbill")?,
        missing_in_channel: r.big("missing_in_channel")?,
        amount_mismatch: r.big("amount_mismatch")?,
        imported_by: r.string("imported_by")?,
        imported_at: r.string("imported_at")?,
    })
}

async fn summary_by<X: Exec>(
    x: &mut X,
    company_id: i32,
    id: i64,
) -> Result<Option<StatementSummary>> {
    x.opt(
        q!(concat!(
            "SELECT ",
            summary_columns!(),
            " FROM statements WHERE company_id = $1 AND id = $2"
        )),
        args![company_id, id],
    )
    .await?
    .as_ref()
    .map(summary_of)
    .transpose()
}

fn channel_of(s: &Statement) -> Channel {
    match s.channel {
        heatbill_statements::Channel::Wechat => Channel::Wechat,
        heatbill_statements::Channel::Alipay => Channel::Alipay,
        heatbill_statements::Channel::Bank => Channel::Bank,
    }
}

/// The customer whose newest profile has `account_no`.
async fn customer_by_account<X: Exec>(
    x: &mut X,
    company_id: i32,
    account_no: &str,
) -> Result<Option<String>> {
    Ok(
        match x
            .opt(
                q!("SELECT p.customer_id FROM customer_profiles p
                WHERE p.company_id = $1 AND p.account_no = $2
                  AND NOT EXISTS (SELECT 1 FROM customer_profiles n
                                  WHERE n.company_id = p.company_id
                                    AND n.customer_id = p.customer_id
                                    AND (n.valid_from > p.valid_from
                                         OR (n.valid_from = p.valid_from AND n.id > p.id)))
                LIMIT 1"),
                args![company_id, account_no],
            )
            .await?
        {
            Some(r) => Some(r.string(0)?),
            None => None,
        },
    )
}

#[async_trait]
impl<E: Engine> StatementStore for E {
    async fn record_statement(
        &self,
        company_id: i32,
        n: &NewStatement<'_>,
    ) -> Result<StatementRecorded> {
        let st = n.statement;
        let sha = st.digest_hex();
        let channel = channel_of(st);
        let times = || st.lines.iter().map(|l| l.time.date());
        let Some((from, to)) = st.period.or_else(|| Some((times().min()?, times().max()?))) else {
            return Err(StoreError::Conflict(
                "the statement has no transactions and states no period: there is nothing to \
                 reconcile"
                    .into(),
            ));
        };
        let mut tx = self.begin().await?;
        // One statement import of a company at a time: the same file sent twice at once is
        // one statement.
        tx.opt(
            q!("SELECT id FROM companies WHERE id = $1 FOR UPDATE"),
            args![company_id],
        )
        .await?;
        if let Some(r) = tx
            .opt(
                q!("SELECT id FROM statements WHERE company_id = $1 AND sha256 = $2"),
                args![company_id, sha.as_str()],
            )
            .await?
        {
            let id = r.big(0)?;
            let s = summary_by(&mut tx, company_id, id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("statement {id} vanished")))?;
            return Ok(StatementRecorded::Again(s));
        }
        let recorded: Vec<Recorded> = tx
            .rows(
                q!("SELECT id, customer_id, channel_txn, amount::text, on_date
                    FROM account_entries
                    WHERE company_id = $1 AND channel = $2 AND channel_txn IS NOT NULL
                      AND kind IN ('payment', 'refund') AND on_date >= $3 AND on_date <= $4
                    ORDER BY id"),
                args![company_id, channel.as_str(), from, to],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Recorded {
                    entry_id: r.big(0)?,
                    customer_id: r.string(1)?,
                    channel_txn: r.string(2)?,
                    amount: r.dec(3)?,
                    on_date: r.date(4)?,
                })
            })
            .collect::<Result<_>>()?;
        let rec = heatbill_statements::reconcile(st, &recorded);
        let found = rec.discrepancies().count();
        if found > MAX_DISCREPANCIES {
            return Err(StoreError::Conflict(format!(
                "the statement differs from the ledger in {found} transactions (more than \
                 {MAX_DISCREPANCIES}): check that it is this company's {} statement; nothing \
                 was stored",
                channel.as_str()
            )));
        }
        let id = tx
            .one(
                q!(
                    "INSERT INTO statements (company_id, channel, file_name, sha256,
                        bank_profile, period_from, period_to, lines, payments, refunds, fees,
                        matched, missing_in_heatbill, missing_in_channel, amount_mismatch,
                        imported_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric,
                        $10::text::numeric, $11::text::numeric, $12, $13, $14, $15, $16)
                    RETURNING id"
                ),
                args![
                    company_id,
                    channel.as_str(),
                    n.file_name.as_str(),
                    sha.as_str(),
                    &n.bank_profile,
                    from,
                    to,
                    st.totals.count as i64,
                    st.totals.payments.to_string().as_str(),
                    st.totals.refunds.to_string().as_str(),
                    st.totals.fees.to_string().as_str(),
                    rec.matched.count as i64,
                    rec.missing_in_heatbill.count as i64,
                    rec.missing_in_channel.count as i64,
                    rec.amount_mismatch.count as i64,
                    n.recorded_by.as_str()
                ],
            )
            .await?
            .big(0)?;
        let lines: HashMap<u64, &heatbill_statements::StatementLine> =
            st.lines.iter().map(|l| (l.line_no, l)).collect();
        let mut by_account: HashMap<String, Option<String>> = HashMap::new();
        for (no, item) in rec.discrepancies().enumerate() {
            let discrepancy = match item.discrepancy {
                Discrepancy::Matched => continue,
                Discrepancy::MissingInHeatbill => "missing-in-heatbill",
                Discrepancy::MissingInChannel => "missing-in-channel",
                Discrepancy::AmountMismatch { .. } => "amount-mismatch",
            };
            // A lost payment: whose is it? The account number in the bank memo, or the one the
            // company's rule finds in the order number or the memo, names the customer.
            let mut suggested = None;
            if item.discrepancy == Discrepancy::MissingInHeatbill
                && item.kind == Some(LineKind::Payment)
            {
                let line = item.line_no.and_then(|l| lines.get(&l));
                let account = item
                    .account_hint
                    .clone()
                    .or_else(|| {
                        item.order_no
                            .as_deref()
                            .and_then(|o| n.account_rule.find(o))
                    })
                    .or_else(|| {
                        line.and_then(|l| l.memo.as_deref())
                            .and_then(|m| n.account_rule.find(m))
                    });
                if let Some(a) = account {
                    if !by_account.contains_key(&a) {
                        let c = customer_by_account(&mut tx, company_id, &a).await?;
                        by_account.insert(a.clone(), c);
                    }
                    suggested = by_account.get(&a).cloned().flatten();
                }
            }
            // A lost refund names the payment it refunds: its customer is the one suggested.
            let original = (item.kind == Some(LineKind::Refund))
                .then(|| item.line_no.and_then(|l| lines.get(&l)))
                .flatten()
                .and_then(|l| l.original_txn.clone());
            if item.discrepancy == Discrepancy::MissingInHeatbill
                && let Some(o) = &original
            {
                suggested = tx
                    .opt(
                        q!("SELECT customer_id FROM account_entries
                            WHERE company_id = $1 AND channel = $2 AND channel_txn = $3
                              AND kind = 'payment'"),
                        args![company_id, channel.as_str(), o.as_str()],
                    )
                    .await?
                    .map(|r| r.string(0))
                    .transpose()?;
            }
            let kind = item.kind.map(|k| match k {
                LineKind::Payment => "payment",
                LineKind::Refund => "refund",
            });
            let time = item.time.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string());
            let channel_amount = item.channel_amount.map(|d| d.to_string());
            let recorded_amount = item.recorded_amount.map(|d| d.to_string());
            tx.exec(
                q!(
                    "INSERT INTO statement_items (statement_id, item_no, discrepancy, line_kind,
                        line_no, entry_id, customer_id, channel_txn, order_no, account_hint,
                        channel_amount, recorded_amount, txn_time, on_date, fee,
                        suggested_customer, original_txn)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::numeric,
                        $12::text::numeric, $13, $14, $15::text::numeric, $16, $17)"
                ),
                args![
                    id,
                    no as i32 + 1,
                    discrepancy,
                    kind,
                    item.line_no.map(|l| l as i64),
                    item.entry_id,
                    &item.customer_id,
                    item.channel_txn.as_str(),
                    &item.order_no,
                    &item.account_hint,
                    channel_amount.as_deref(),
                    recorded_amount.as_deref(),
                    time.as_deref(),
                    item.on_date,
                    item.fee.to_string().as_str(),
                    &suggested,
                    &original
                ],
            )
            .await?;
        }
        let s = summary_by(&mut tx, company_id, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("statement {id} vanished")))?;
        tx.commit().await?;
        Ok(StatementRecorded::New(s))
    }

    async fn statements(&self, company_id: i32, limit: i64) -> Result<Vec<StatementSummary>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    summary_columns!(),
                    " FROM statements WHERE company_id = $1 ORDER BY id DESC LIMIT $2"
                )),
                args![company_id, limit],
            )
            .await?
            .iter()
            .map(summary_of)
            .collect()
    }

    async fn statement_items(
        &self,
        company_id: i32,
        id: i64,
        discrepancy: Option<&str>,
    ) -> Result<Option<(StatementSummary, Vec<StatementItem>)>> {
        let mut db = self.db();
        let Some(s) = summary_by(&mut db, company_id, id).await? else {
            return Ok(None);
        };
        let items = db
            .rows(
                q!(
                    "SELECT i.item_no, i.discrepancy, i.line_kind, i.line_no, i.entry_id,
                        i.customer_id, i.channel_txn, i.order_no, i.account_hint,
                        i.channel_amount::text, i.recorded_amount::text, i.txn_time, i.on_date,
                        i.fee::text, i.suggested_customer, e.id, i.original_txn
                    FROM statement_items i
                    JOIN statements s ON s.id = i.statement_id
                    LEFT JOIN account_entries e ON e.company_id = s.company_id
                         AND e.channel = s.channel AND e.channel_txn = i.channel_txn
                    WHERE i.statement_id = $1 AND ($2::text IS NULL OR i.discrepancy = $2)
                    ORDER BY i.item_no"
                ),
                args![id, discrepancy],
            )
            .await?
            .iter()
            .map(|r| {
                let dec = |i: usize| -> Result<Option<Decimal>> {
                    r.opt_str(i)?
                        .map(|s| {
                            s.parse::<Decimal>()
                                .map_err(|e| StoreError::Corrupt(format!("amount {s:?}: {e}")))
                        })
                        .transpose()
                };
                Ok(StatementItem {
                    item_no: r.big(0)? as i32,
                    discrepancy: r.string(1)?,
                    line_kind: r.opt_string(2)?,
                    line_no: r.opt_big(3)?,
                    entry_id: r.opt_big(4)?,
                    customer_id: r.opt_string(5)?,
                    channel_txn: r.string(6)?,
                    order_no: r.opt_string(7)?,
                    account_hint: r.opt_string(8)?,
                    channel_amount: dec(9)?,
                    recorded_amount: dec(10)?,
                    txn_time: r.opt_string(11)?,
                    on_date: r.opt_date(12)?,
                    fee: r.dec(13)?,
                    suggested_customer: r.opt_string(14)?,
                    original_txn: r.opt_string(16)?,
                    // A missing-in-channel or mismatched item's entry is the one compared.
                    recovered_entry: if r.str(1)? == "missing-in-heatbill" {
                        r.opt_big(15)?
                    } else {
                        None
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((s, items)))
    }

    async fn put_bank_profile(
        &self,
        company_id: i32,
        name: &str,
        profile_json: &str,
        by: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            q!(
                "INSERT INTO bank_profiles (company_id, name, profile, saved_by)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (company_id, name) DO UPDATE SET profile = EXCLUDED.profile,
                    saved_by = EXCLUDED.saved_by, saved_at = now()"
            ),
            args![company_id, name, profile_json, by],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn bank_profile(&self, company_id: i32, name: &str) -> Result<Option<String>> {
        Ok(
            match self
                .db()
                .opt(
                    q!("SELECT profile FROM bank_profiles WHERE company_id = $1 AND name = $2"),
                    args![company_id, name],
                )
                .await?
            {
                Some(r) => Some(r.string(0)?),
                None => None,
            },
        )
    }

    async fn bank_profiles(
        &self,
        company_id: i32,
    ) -> Result<Vec<(String, String, String, String)>> {
        self.db()
            .rows(
                q!(
                    "SELECT name, profile, saved_by, utc_text(saved_at) FROM bank_profiles
                    WHERE company_id = $1 ORDER BY name"
                ),
                args![company_id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.string(0)?, r.string(1)?, r.string(2)?, r.string(3)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_rule_is_checked_where_the_policies_are_set() {
        let default = account_rule(&serde_json::json!({})).unwrap();
        assert!(matches!(default, MemoRule::Prefix { ref prefix, .. } if prefix == "户号"));
        let first = serde_json::json!({"reconciliation": {"account_rule":
            {"kind": "first-run", "min_len": 8, "max_len": 12}}});
        assert!(matches!(
            account_rule(&first).unwrap(),
            MemoRule::FirstRun {
                min_len: 8,
                max_len: 12,
                ..
            }
        ));
        let backwards = serde_json::json!({"reconciliation": {"account_rule":
            {"kind": "first-run", "min_len": 12, "max_len": 8}}});
        assert!(
            account_rule(&backwards)
                .unwrap_err()
                .contains("min_len ≤ max_len")
        );
        let garbage = serde_json::json!({"reconciliation": {"account_rule": "户号"}});
        assert!(
            account_rule(&garbage)
                .unwrap_err()
                .contains("is not a rule")
        );
    }
}
