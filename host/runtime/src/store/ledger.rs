//! The store's account ledger: recording payments, adjustments, write-offs, reversals and
//! refunds (append-only, idempotent by channel and transaction id), and reading what an
//! account, a day's close and the audit need. What the entries mean is [`crate::ledger`]'s.

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::outbox::{
    Cause, apply, buyer, company_policies, customer_flags, insert_event, insert_request,
    invoice_columns, invoice_of, totals, valve_in,
};
use super::sql::{
    Commit, Engine, Exec, SqlRow, args, bump_data_version, known_customer, mark_stale, opening_of,
    q,
};
use super::types::{Result, StoreError};
use crate::events::{Action, EventKind, FeeControl, FeeFacts, decide, key, targets_of};
use crate::invoices::{Charge, InvoicePolicy, Line, lines, red_lines};
use crate::ledger::*;
use crate::model::{OpeningBalance, shown};
use crate::receivables::{CustomerFacts, Cuts, Receivables, Report, WINDOW_DAYS};

/// The columns of an entry, as [`entry_of`] reads them.
macro_rules! entry_columns {
    () => {
        "id, customer_id, kind, on_date, amount::text AS amount, channel, channel_txn, method, \
         receipt_no, cashier, reason_code, note, undoes, recorded_by, source, \
         utc_text(recorded_at) AS recorded_at"
    };
}

/// The most entries one read returns (a day's close, a customer's account): a bound on memory
/// that no real day or account comes near.
pub const MAX_ENTRIES: usize = 500_000;

fn entry_of<R: SqlRow>(r: &R) -> Result<Entry> {
    let kind = r.str("kind")?;
    let channel = r.opt_str("channel")?;
    Ok(Entry {
        id: r.big("id")?,
        customer_id: r.string("customer_id")?,
        kind: EntryKind::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("entry kind {kind:?}")))?,
        on_date: r.date("on_date")?,
        amount: r.dec("amount")?,
        channel: channel
            .map(|c| Channel::parse(c).ok_or_else(|| StoreError::Corrupt(format!("channel {c:?}"))))
            .transpose()?,
        channel_txn: r.opt_string("channel_txn")?,
        method: r.opt_string("method")?,
        receipt_no: r.opt_string("receipt_no")?,
        cashier: r.opt_string("cashier")?,
        reason_code: r.opt_string("reason_code")?,
        note: r.opt_string("note")?,
        undoes: r.opt_big("undoes")?,
        recorded_by: r.string("recorded_by")?,
        source: r.string("source")?,
        recorded_at: r.string("recorded_at")?,
    })
}

/// One day's collections ([`LedgerStore::collections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCollections {
    /// The day the money moved (the entries' date).
    pub date: NaiveDate,
    /// Payments' sum.
    pub paid: Decimal,
    /// Refunds' and reversals' sum (negative: money given back).
    pub given_back: Decimal,
    /// How many payments.
    pub payments: i64,
}

/// The account ledger (see [`crate::ledger`]).
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Records a payment, an adjustment or a write-off, in one transaction: the customer must
    /// exist, the date must not be before the customer's opening balance, and a payment already
    /// recorded under its channel and transaction id is [`Recorded::Again`] when it is the same
    /// payment (customer, date, amount) and a `Conflict` otherwise. Checks
    /// [`NewEntry::check`] first.
    async fn record_entry(&self, company_id: i32, entry: &NewEntry) -> Result<Recorded>;

    /// Records a reversal or a refund of a payment, in one transaction that locks the payment:
    /// a reversal takes all that is left of it, a refund at most that; a refund with a channel
    /// transaction id recorded before is [`Recorded::Again`].
    async fn undo_payment(&self, company_id: i32, undo: &Undo) -> Result<Recorded>;

    /// One entry of the company.
    async fn entry(&self, company_id: i32, id: i64) -> Result<Option<Entry>>;

    /// The entry recorded under a channel's transaction id (a payment, or a refund under its
    /// refund id).
    async fn entry_by_channel_txn(
        &self,
        company_id: i32,
        channel: Channel,
        txn: &str,
    ) -> Result<Option<Entry>>;

    /// A customer's entries dated up to `to`, oldest first.
    async fn customer_entries(
        &self,
        company_id: i32,
        customer_id: &str,
        to: NaiveDate,
    ) -> Result<Vec<Entry>>;

    /// The entries dated `date`, by id (a day's close).
    async fn entries_on(&self, company_id: i32, date: NaiveDate) -> Result<Vec<Entry>>;

    /// Money collected on each day of `from..=to` that had any: payments, and the refunds and
    /// reversals that gave money back, summed in the database (a dashboard's chart reads 30
    /// rows, not a month of entries).
    async fn collections(
        &self,
        company_id: i32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayCollections>>;

    /// A customer's statement for `from..=to` ([`crate::ledger::statement`]): the accounts at
    /// the end of the day before and of the last day, and the period's bills with their lines.
    async fn statement(
        &self,
        company_id: i32,
        customer_id: &str,
        policy: Allocation,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Statement>;

    /// What a customer's account at the end of `as_of` is computed from: the opening balance,
    /// the last bill of a completed run dated up to it, the entries dated up to it.
    async fn account_facts(
        &self,
        company_id: i32,
        customer_id: &str,
        as_of: NaiveDate,
    ) -> Result<AccountFacts>;

    /// The receivables report at the end of `as_of` ([`crate::receivables`]), read `page`
    /// customers at a time (memory is a page's, whatever the company's size). `None` when the
    /// company has no completed run dated on or before `as_of`.
    async fn receivables(
        &self,
        company_id: i32,
        as_of: NaiveDate,
        page: usize,
    ) -> Result<Option<Receivables>>;
}

async fn entry_by_txn<X: Exec>(
    x: &mut X,
    company_id: i32,
    channel: Channel,
    txn: &str,
) -> Result<Option<Entry>> {
    x.opt(
        q!(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM account_entries WHERE company_id = $1 AND channel = $2 AND channel_txn = $3"
        )),
        args![company_id, channel.as_str(), txn],
    )
    .await?
    .as_ref()
    .map(entry_of)
    .transpose()
}

/// A customer's opening balance.
async fn opening_balance<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
) -> Result<Option<OpeningBalance>> {
    x.opt(
        q!(
            "SELECT customer_id, as_of, arrears::text, arrears_since FROM opening_balances
            WHERE company_id = $1 AND customer_id = $2"
        ),
        args![company_id, customer_id],
    )
    .await?
    .as_ref()
    .map(opening_of)
    .transpose()
}

/// Refuses a date before the customer's opening balance (which holds everything before it).
async fn check_opening<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    on_date: NaiveDate,
) -> Result<()> {
    if let Some(o) = opening_balance(x, company_id, customer_id).await?
        && on_date < o.as_of
    {
        return Err(StoreError::Conflict(format!(
            "customer {} has an opening balance as of {}, which holds everything owed and paid \
             before it: an entry dated {on_date} would never count. Date it on or after {}, or \
             correct the opening balance",
            shown(customer_id),
            o.as_of,
            o.as_of
        )));
    }
    Ok(())
}

const INSERT: &str = concat!(
    "INSERT INTO account_entries (company_id, customer_id, kind, on_date, amount, channel,
         channel_txn, method, receipt_no, cashier, reason_code, note, undoes, recorded_by,
         source)
     VALUES ($1, $2, $3, $4, $5::text::numeric, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
     ON CONFLICT (company_id, channel, channel_txn) DO NOTHING
     RETURNING ",
    entry_columns!()
);

#[async_trait]
impl<E: Engine> LedgerStore for E {
    async fn record_entry(&self, company_id: i32, e: &NewEntry) -> Result<Recorded> {
        e.check().map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        known_customer(&mut tx, company_id, &e.customer_id).await?;
        check_opening(&mut tx, company_id, &e.customer_id, e.on_date).await?;
        let amount = e.amount.to_string();
        let inserted = tx
            .opt(
                q!(INSERT),
                args![
                    company_id,
                    &e.customer_id,
                    e.kind.as_str(),
                    e.on_date,
                    amount.as_str(),
                    e.channel.map(Channel::as_str),
                    &e.channel_txn,
                    &e.method,
                    &e.receipt_no,
                    &e.cashier,
                    &e.reason_code,
                    &e.note,
                    None::<i64>,
                    e.recorded_by.as_str(),
                    e.source.as_str()
                ],
            )
            .await?;
        if let Some(r) = inserted {
            let entry = entry_of(&r)?;
            bump_data_version(&mut tx, company_id).await?;
            stale_after(&mut tx, company_id, entry.on_date).await?;
            after_entry(&mut tx, company_id, &entry).await?;
            tx.commit().await?;
            return Ok(Recorded::New(entry));
        }
        // The channel and transaction id are recorded: the same payment again, or a conflict.
        let (Some(channel), Some(txn)) = (e.channel, e.channel_txn.as_deref()) else {
            return Err(StoreError::Corrupt(
                "an entry without a channel transaction conflicted".into(),
            ));
        };
        let Some(old) = entry_by_txn(&mut tx, company_id, channel, txn).await? else {
            return Err(StoreError::Conflict(format!(
                "{} transaction {} was being recorded at the same moment and is not visible \
                 yet: send it again",
                channel.as_str(),
                shown(txn)
            )));
        };
        if old.kind == e.kind
            && old.customer_id == e.customer_id
            && old.on_date == e.on_date
            && old.amount == e.amount
        {
            return Ok(Recorded::Again(old));
        }
        Err(StoreError::Conflict(format!(
            "{} transaction {} is recorded already as entry {} ({} of {} for customer {} on \
             {}), and an entry is never changed: if that one is wrong, reverse it and record \
             the right one",
            channel.as_str(),
            shown(txn),
            old.id,
            old.kind.as_str(),
            old.amount,
            shown(&old.customer_id),
            old.on_date
        )))
    }

    async fn undo_payment(&self, company_id: i32, u: &Undo) -> Result<Recorded> {
        u.check().map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        let payment = tx
            .opt(
                q!(concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM account_entries WHERE company_id = $1 AND id = $2 FOR UPDATE"
                )),
                args![company_id, u.payment],
            )
            .await?
            .as_ref()
            .map(entry_of)
            .transpose()?
            .ok_or_else(|| {
                StoreError::NotFound(format!("no entry {} in this company", u.payment))
            })?;
        if payment.kind != EntryKind::Payment {
            return Err(StoreError::Conflict(format!(
                "entry {} is a {}, not a payment: only a payment is reversed or refunded (an \
                 adjustment is undone by an adjustment the other way)",
                payment.id,
                payment.kind.as_str()
            )));
        }
        if let (Some(channel), Some(txn)) = (payment.channel, u.channel_txn.as_deref())
            && let Some(old) = entry_by_txn(&mut tx, company_id, channel, txn).await?
        {
            if old.undoes == Some(payment.id) && old.kind == u.kind && Some(-old.amount) == u.amount
            {
                return Ok(Recorded::Again(old));
            }
            return Err(StoreError::Conflict(format!(
                "{} transaction {} is recorded already as entry {} ({} of {}): give this {} \
                 its own transaction id",
                channel.as_str(),
                shown(txn),
                old.id,
                old.kind.as_str(),
                old.amount,
                u.kind.as_str()
            )));
        }
        if u.on_date < payment.on_date {
            return Err(StoreError::Conflict(format!(
                "payment {} is dated {}: a {} of it cannot be dated {} before it",
                payment.id,
                payment.on_date,
                u.kind.as_str(),
                u.on_date
            )));
        }
        let undone: Vec<Entry> = tx
            .rows(
                q!(concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM account_entries WHERE company_id = $1 AND undoes = $2 ORDER BY id"
                )),
                args![company_id, payment.id],
            )
            .await?
            .iter()
            .map(entry_of)
            .collect::<Result<_>>()?;
        let left = payment.amount + undone.iter().map(|e| e.amount).sum::<Decimal>();
        if left <= Decimal::ZERO {
            let by: Vec<String> = undone
                .iter()
                .map(|e| format!("{} {} on {}", e.kind.as_str(), e.id, e.on_date))
                .collect();
            return Err(StoreError::Conflict(format!(
                "payment {} of {} is undone already ({}): nothing is left to {}",
                payment.id,
                payment.amount,
                by.join(", "),
                if u.kind == EntryKind::Reversal {
                    "reverse"
                } else {
                    "refund"
                }
            )));
        }
        let amount = match u.amount {
            Some(a) if a > left => {
                return Err(StoreError::Conflict(format!(
                    "a refund of {a} is more than what is left of payment {} ({left} of {})",
                    payment.id, payment.amount
                )));
            }
            Some(a) => -a,
            None => -left,
        };
        let amount_text = amount.to_string();
        let row = tx
            .opt(
                q!(INSERT),
                args![
                    company_id,
                    &payment.customer_id,
                    u.kind.as_str(),
                    u.on_date,
                    amount_text.as_str(),
                    payment.channel.map(Channel::as_str),
                    &u.channel_txn,
                    None::<&str>,
                    None::<&str>,
                    &u.cashier,
                    None::<&str>,
                    u.note.as_str(),
                    Some(payment.id),
                    u.recorded_by.as_str(),
                    u.source.as_str()
                ],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(
                    "the refund's transaction id was recorded at the same moment: send it again"
                        .into(),
                )
            })?;
        let entry = entry_of(&row)?;
        bump_data_version(&mut tx, company_id).await?;
        stale_after(&mut tx, company_id, entry.on_date).await?;
        after_undo(&mut tx, company_id, &entry).await?;
        tx.commit().await?;
        Ok(Recorded::New(entry))
    }

    async fn entry_by_channel_txn(
        &self,
        company_id: i32,
        channel: Channel,
        txn: &str,
    ) -> Result<Option<Entry>> {
        entry_by_txn(&mut self.db(), company_id, channel, txn).await
    }

    async fn entry(&self, company_id: i32, id: i64) -> Result<Option<Entry>> {
        self.db()
            .opt(
                q!(concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM account_entries WHERE company_id = $1 AND id = $2"
                )),
                args![company_id, id],
            )
            .await?
            .as_ref()
            .map(entry_of)
            .transpose()
    }

    async fn customer_entries(
        &self,
        company_id: i32,
        customer_id: &str,
        to: NaiveDate,
    ) -> Result<Vec<Entry>> {
        entries_of(&mut self.db(), company_id, customer_id, to).await
    }

    async fn collections(
        &self,
        company_id: i32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayCollections>> {
        // Summed in fen as integers: exact in both dialects (SQLite keeps amounts as text, and
        // an amount of at most two decimals times 100, rounded, is its exact number of fen).
        let rows = self
            .db()
            .rows(
                q!(
                    "SELECT on_date, kind, CAST(sum(round(amount * 100)) AS BIGINT) AS fen,
                      count(*) AS n
                    FROM account_entries
                    WHERE company_id = $1 AND on_date >= $2 AND on_date <= $3
                      AND kind IN ('payment', 'refund', 'reversal')
                    GROUP BY on_date, kind ORDER BY on_date"
                ),
                args![company_id, from, to],
            )
            .await?;
        let mut out: Vec<DayCollections> = Vec::new();
        for r in &rows {
            let date = r.date("on_date")?;
            if out.last().is_none_or(|d| d.date != date) {
                out.push(DayCollections {
                    date,
                    paid: Decimal::ZERO,
                    given_back: Decimal::ZERO,
                    payments: 0,
                });
            }
            let day = out.last_mut().expect("pushed above");
            let amount = Decimal::new(r.big("fen")?, 2);
            if r.str("kind")? == "payment" {
                day.paid += amount;
                day.payments += r.big("n")?;
            } else {
                day.given_back += amount;
            }
        }
        Ok(out)
    }

    async fn entries_on(&self, company_id: i32, date: NaiveDate) -> Result<Vec<Entry>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM account_entries WHERE company_id = $1 AND on_date = $2
                      ORDER BY id LIMIT $3"
                )),
                args![company_id, date, MAX_ENTRIES as i64 + 1],
            )
            .await?;
        bounded(rows, "the day")
    }

    async fn statement(
        &self,
        company_id: i32,
        customer_id: &str,
        policy: Allocation,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Statement> {
        let before = from.pred_opt().unwrap_or(from);
        let opening_facts = self.account_facts(company_id, customer_id, before).await?;
        let opening = account(customer_id, before, policy, opening_facts);
        let closing_facts = self.account_facts(company_id, customer_id, to).await?;
        let opening_balance = closing_facts.opening.clone();
        let closing = account(customer_id, to, policy, closing_facts);
        let bills =
            super::BillStore::customer_bills(self, company_id, customer_id, from, to).await?;
        Ok(crate::ledger::statement(
            &opening,
            &closing,
            &bills,
            opening_balance.as_ref(),
            from,
        ))
    }

    async fn account_facts(
        &self,
        company_id: i32,
        customer_id: &str,
        as_of: NaiveDate,
    ) -> Result<AccountFacts> {
        account_facts_in(&mut self.db(), company_id, customer_id, as_of).await
    }

    async fn receivables(
        &self,
        company_id: i32,
        as_of: NaiveDate,
        page: usize,
    ) -> Result<Option<Receivables>> {
        let mut db = self.db();
        let Some(billed_through) = completed_on_or_before(&mut db, company_id, as_of).await? else {
            return Ok(None);
        };
        let mut before = [None; 3];
        for (i, cut) in before.iter_mut().enumerate() {
            let edge = as_of - chrono::Days::new((WINDOW_DAYS as u64) * (i as u64 + 1));
            *cut = completed_on_or_before(&mut db, company_id, edge).await?;
        }
        let cuts = Cuts {
            billed_through,
            before,
        };
        let mut report = Report::new(as_of, cuts);
        let mut after: Option<String> = None;
        loop {
            let facts = receivables_page(
                &mut db,
                company_id,
                as_of,
                &cuts,
                after.as_deref(),
                page.max(1),
            )
            .await?;
            let Some(last) = facts.last() else { break };
            after = Some(last.customer_id.clone());
            for f in &facts {
                report.add(f);
            }
        }
        Ok(Some(report.finish()))
    }
}

/// A customer's entries dated up to `to`, oldest first.
async fn entries_of<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    to: NaiveDate,
) -> Result<Vec<Entry>> {
    let rows = x
        .rows(
            q!(concat!(
                "SELECT ",
                entry_columns!(),
                " FROM account_entries WHERE company_id = $1 AND customer_id = $2
                  AND on_date <= $3 ORDER BY on_date, id LIMIT $4"
            )),
            args![company_id, customer_id, to, MAX_ENTRIES as i64 + 1],
        )
        .await?;
    bounded(rows, "the customer's account")
}

/// [`LedgerStore::account_facts`] on a connection or inside a transaction (a payment's fee
/// control reads the account it has just changed).
pub(crate) async fn account_facts_in<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    as_of: NaiveDate,
) -> Result<AccountFacts> {
    let opening = opening_balance(x, company_id, customer_id).await?;
    // The customer's bill of the latest completed dates, found by primary key one date at a
    // time (bills are keyed by date first; the runs table is small).
    let last_bill = x
        .opt(
            q!(
                "SELECT b.bill_date, b.charged_before::text, b.principal::text,
                       b.fees_before::text, b.customer_total::text, b.arrears::text,
                       b.arrears_since
                FROM (SELECT DISTINCT bill_date FROM runs
                      WHERE company_id = $1 AND state = 'completed' AND bill_date <= $3
                      ORDER BY bill_date DESC LIMIT 800) r
                JOIN bills b ON b.company_id = $1 AND b.bill_date = r.bill_date
                            AND b.customer_id = $2
                ORDER BY b.bill_date DESC LIMIT 1"
            ),
            args![company_id, customer_id, as_of],
        )
        .await?
        .map(|r| -> Result<LastBill> {
            let principal = r.dec(2)?;
            Ok(LastBill {
                date: r.date(0)?,
                principal_through: r.dec(1)? + principal,
                fees_through: r.dec(3)? + r.dec(4)? - principal,
                arrears: r.dec(5)?,
                arrears_since: r.opt_date(6)?,
            })
        })
        .transpose()?;
    let entries = entries_of(x, company_id, customer_id, as_of).await?;
    Ok(AccountFacts {
        opening,
        last_bill,
        entries,
    })
}

/// The date of the company's latest completed run on or before `date`.
async fn completed_on_or_before<X: Exec>(
    x: &mut X,
    company_id: i32,
    date: NaiveDate,
) -> Result<Option<NaiveDate>> {
    x.one(
        q!("SELECT max(bill_date) FROM runs
            WHERE company_id = $1 AND state = 'completed' AND bill_date <= $2"),
        args![company_id, date],
    )
    .await?
    .opt_date(0)
}

/// What each customer of `first..=last` was billed through `date` (principal and fees, the
/// opening balance included): principal and fees billed before their bill, and its customer
/// total (the day's principal and late fee).
async fn billed_at<X: Exec>(
    x: &mut X,
    company_id: i32,
    date: NaiveDate,
    first: &str,
    last: &str,
) -> Result<std::collections::HashMap<String, Decimal>> {
    let rows = x
        .rows(
            q!(
                "SELECT customer_id, charged_before::text, fees_before::text, customer_total::text
                FROM bills
                WHERE company_id = $1 AND bill_date = $2 AND customer_id >= $3
                  AND customer_id <= $4"
            ),
            args![company_id, date, first, last],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.string(0)?, r.dec(1)? + r.dec(2)? + r.dec(3)?)))
        .collect()
}

async fn receivables_page<X: Exec>(
    x: &mut X,
    company_id: i32,
    as_of: NaiveDate,
    cuts: &Cuts,
    after: Option<&str>,
    page: usize,
) -> Result<Vec<CustomerFacts>> {
    use std::collections::HashMap;
    let rows = x
        .rows(
            q!(
                "SELECT customer_id, charged_before::text, fees_before::text, customer_total::text
                FROM bills
                WHERE company_id = $1 AND bill_date = $2
                  AND ($3::text IS NULL OR customer_id > $3)
                ORDER BY customer_id LIMIT $4"
            ),
            args![company_id, cuts.billed_through, after, page as i64],
        )
        .await?;
    let billed: Vec<(String, Decimal)> = rows
        .iter()
        .map(|r| Ok((r.string(0)?, r.dec(1)? + r.dec(2)? + r.dec(3)?)))
        .collect::<Result<_>>()?;
    let (Some(first), Some(last)) = (billed.first(), billed.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (first.0.clone(), last.0.clone());
    let mut before: Vec<HashMap<String, Decimal>> = Vec::new();
    for cut in cuts.before {
        before.push(match cut {
            Some(d) => billed_at(x, company_id, d, &first, &last).await?,
            None => HashMap::new(),
        });
    }
    let openings: HashMap<String, OpeningBalance> = x
        .rows(
            q!(
                "SELECT customer_id, as_of, arrears::text, arrears_since FROM opening_balances
                WHERE company_id = $1 AND customer_id >= $2 AND customer_id <= $3"
            ),
            args![company_id, first.as_str(), last.as_str()],
        )
        .await?
        .iter()
        .map(|r| {
            let o = super::sql::opening_of(r)?;
            Ok((o.customer_id.clone(), o))
        })
        .collect::<Result<_>>()?;
    // Summed here, exactly: SQLite would sum its TEXT decimals as floats. What pays (a positive
    // entry) is a credit; what takes back (a reversal, a refund, a debit adjustment) is a debit,
    // aged like a charge of its date.
    let edges: [NaiveDate; 3] =
        std::array::from_fn(|i| as_of - chrono::Days::new((WINDOW_DAYS as u64) * (i as u64 + 1)));
    let mut credits: HashMap<String, Decimal> = HashMap::new();
    let mut debits: HashMap<String, (Decimal, [Decimal; 3])> = HashMap::new();
    for r in x
        .rows(
            q!(
                "SELECT customer_id, on_date, amount::text FROM account_entries
                WHERE company_id = $1 AND customer_id >= $2 AND customer_id <= $3
                  AND on_date <= $4"
            ),
            args![company_id, first.as_str(), last.as_str(), as_of],
        )
        .await?
    {
        let customer = r.string(0)?;
        let on = r.date(1)?;
        // An entry before the opening balance never counts (the balance holds it).
        if openings.get(&customer).is_some_and(|o| on < o.as_of) {
            continue;
        }
        let amount = r.dec(2)?;
        if amount > Decimal::ZERO {
            *credits.entry(customer).or_default() += amount;
        } else {
            let d = debits.entry(customer).or_default();
            d.0 -= amount;
            for (i, edge) in edges.iter().enumerate() {
                if on <= *edge {
                    d.1[i] -= amount;
                }
            }
        }
    }
    let mut communities: HashMap<String, Option<String>> = x
        .rows(
            q!("SELECT p.customer_id, p.community FROM customer_profiles p
                WHERE p.company_id = $1 AND p.customer_id >= $2 AND p.customer_id <= $3
                  AND NOT EXISTS (SELECT 1 FROM customer_profiles n
                                  WHERE n.company_id = p.company_id
                                    AND n.customer_id = p.customer_id
                                    AND (n.valid_from > p.valid_from
                                         OR (n.valid_from = p.valid_from AND n.id > p.id)))"),
            args![company_id, first.as_str(), last.as_str()],
        )
        .await?
        .iter()
        .map(|r| Ok((r.string(0)?, r.opt_string(1)?)))
        .collect::<Result<_>>()?;
    Ok(billed
        .into_iter()
        .map(|(customer_id, billed)| {
            let opening = openings.get(&customer_id);
            let (debited, debited_before) = debits.remove(&customer_id).unwrap_or_default();
            let billed_before = std::array::from_fn(|i| {
                let bills = match before[i].get(&customer_id) {
                    Some(b) => *b,
                    // No bill there: the opening balance, if it was owed by then.
                    None => opening
                        .filter(|o| o.arrears_since.unwrap_or(o.as_of) <= edges[i])
                        .map_or(Decimal::ZERO, |o| o.arrears),
                };
                bills + debited_before[i]
            });
            CustomerFacts {
                credits: credits.remove(&customer_id).unwrap_or_default(),
                community: communities.remove(&customer_id).flatten(),
                billed: billed + debited,
                billed_before,
                customer_id,
            }
        })
        .collect())
}

/// An entry counts from the bill of the day after its date: those days, if billed, are stale.
async fn stale_after<X: Exec>(x: &mut X, company_id: i32, on_date: NaiveDate) -> Result<()> {
    match on_date.succ_opt() {
        Some(next) => mark_stale(x, company_id, next).await,
        None => Ok(()),
    }
}

fn bounded<R: SqlRow>(rows: Vec<R>, what: &str) -> Result<Vec<Entry>> {
    if rows.len() > MAX_ENTRIES {
        return Err(StoreError::Conflict(format!(
            "{what} has more than {MAX_ENTRIES} entries: ask for a shorter range"
        )));
    }
    rows.iter().map(entry_of).collect()
}

// What a payment, a refund or a reversal writes for the world outside, in its transaction.

/// Fee control after a ledger entry that pays (a payment, a credit adjustment), in the entry's
/// transaction: a customer whose valve heatbill asked closed, and whose account is now within
/// the limit, is asked open at once (key `valve_open_requested:CUSTOMER:entry-ID`).
pub(crate) async fn after_entry<X: Exec>(x: &mut X, company_id: i32, e: &Entry) -> Result<()> {
    if e.amount <= Decimal::ZERO || e.kind == EntryKind::Reversal || e.kind == EntryKind::Refund {
        return Ok(());
    }
    let (company, policies) = company_policies(x, company_id).await?;
    after_payment(x, company_id, &company, &policies, e).await?;
    let Some(valve) = valve_in(x, company_id, &e.customer_id).await? else {
        return Ok(());
    };
    if valve.requested != "closed" {
        return Ok(());
    }
    let Ok(Some(policy)) = FeeControl::of(&policies) else {
        return Ok(());
    };
    // The version in force on the payment's date, or the first (a valve closed under a policy
    // is opened under it).
    let Some(rule) = policy.on(e.on_date).or(policy.rules.first()) else {
        return Ok(());
    };
    let allocation = Allocation::of(&policies).map_err(StoreError::Corrupt)?;
    let facts = account_facts_in(x, company_id, &e.customer_id, e.on_date).await?;
    let account = crate::ledger::account(&e.customer_id, e.on_date, allocation, facts);
    let (prepaid, suspended) =
        customer_flags(x, company_id, &e.customer_id, e.on_date, &rule.prepaid_tag).await?;
    let f = FeeFacts {
        customer_id: e.customer_id.clone(),
        owed: account.balance,
        since: None,
        prepaid,
        suspended,
    };
    if let Some(d) = decide(rule, e.on_date, &f, &valve.facts(), None)
        && d.action == Action::Open
    {
        let targets = targets_of(&policies).map_err(StoreError::Corrupt)?;
        let what = format!("entry-{}", e.id);
        let cause = Cause {
            date: e.on_date,
            what: &what,
            source: "payment",
        };
        apply(x, company_id, &company, &d, &cause, &targets).await?;
    }
    Ok(())
}

/// The newest ledger entry's id (0 when there is none): what an import of payments reads
/// before it merges, so that [`after_import`] finds the entries the file recorded.
pub(crate) async fn last_entry_id<X: Exec>(x: &mut X) -> Result<i64> {
    x.one(
        q!("SELECT coalesce(max(id), 0) AS id FROM account_entries"),
        args![],
    )
    .await?
    .big(0)
}

/// What a payment at the counter writes for the world outside, for each payment an import
/// recorded (entries of the `import` channel after `after_id`), in the import's transaction:
/// its invoice request (policy `invoicing`), and fee control's immediate open when the
/// customer's valve is closed and the account is within the limit again. Nothing is read when
/// the company has neither policy; with fee control alone, only the payments of customers
/// whose valve is closed. Keys are the entries', so a file imported again writes nothing new.
///
/// The file's payments are all recorded before the first is looked at: two payments of one
/// customer on one day split their invoice lines between heating and late fees as if paid
/// together (each request's total is still its payment).
pub(crate) async fn after_import<X: Exec>(x: &mut X, company_id: i32, after_id: i64) -> Result<()> {
    let (_, policies) = company_policies(x, company_id).await?;
    let invoicing = InvoicePolicy::of(&policies)
        .map_err(StoreError::Corrupt)?
        .is_some();
    let fee = FeeControl::of(&policies)
        .map_err(StoreError::Corrupt)?
        .is_some();
    if !invoicing && !fee {
        return Ok(());
    }
    let mut after = after_id;
    loop {
        let rows = x
            .rows(
                q!(concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM account_entries e WHERE company_id = $1 AND id > $2
                      AND channel = 'import'
                      AND ($3 OR EXISTS (SELECT 1 FROM valve_states v
                          WHERE v.company_id = e.company_id AND v.customer_id = e.customer_id
                            AND v.requested = 'closed'))
                    ORDER BY id LIMIT 5000"
                )),
                args![company_id, after, invoicing],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.big("id")?;
        for r in &rows {
            after_entry(x, company_id, &entry_of(r)?).await?;
        }
    }
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
    let facts = account_facts_in(x, company_id, &e.customer_id, e.on_date).await?;
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
    if insert_request(x, company_id, &k, "blue", e, None, &body).await? {
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
    let (company, policies) = company_policies(x, company_id).await?;
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
    if insert_request(x, company_id, &k, "red", e, Some(original.id), &body).await? {
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
