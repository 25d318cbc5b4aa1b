//! The store's government receivable: transfers (append-only, idempotent by reference), the
//! government's share of the bills by month, and the settlement list. What they mean is
//! [`crate::subsidy`]'s.
//!
//! The government's share is summed from the bills. PostgreSQL sums its `numeric` column in the
//! query, exactly; SQLite stores decimals as text and would sum them as floats, so there the
//! bills are read one date at a time and summed in Rust (memory: one date's bills).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::sql::{Commit, Engine, Exec, SqlRow, args, q};
use super::types::{Backend, Result, StoreError};
use crate::model::shown;
use crate::subsidy::*;

/// The most transfers one read returns: far beyond any company's history.
pub const MAX_TRANSFERS: usize = 100_000;

/// The most customers a settlement list holds (its lines are held in memory).
pub const MAX_SETTLEMENT_LINES: usize = 3_000_000;

macro_rules! transfer_columns {
    () => {
        "id, reference, received_on, amount::text AS amount, period_from, period_to, undoes, \
         note, recorded_by, source, utc_text(recorded_at) AS recorded_at"
    };
}

fn transfer_of<R: SqlRow>(r: &R) -> Result<Transfer> {
    Ok(Transfer {
        id: r.big("id")?,
        reference: r.string("reference")?,
        received_on: r.date("received_on")?,
        amount: r.dec("amount")?,
        period_from: r.opt_date("period_from")?,
        period_to: r.opt_date("period_to")?,
        undoes: r.opt_big("undoes")?,
        note: r.opt_string("note")?,
        recorded_by: r.string("recorded_by")?,
        source: r.string("source")?,
        recorded_at: r.string("recorded_at")?,
    })
}

/// The government receivable (see [`crate::subsidy`]).
#[async_trait]
pub trait SubsidyStore: Send + Sync {
    /// Records a government transfer, in one transaction that holds the company's transfers: a
    /// reference recorded before is [`TransferRecorded::Again`] when it is the same transfer
    /// (date and amount) and a `Conflict` otherwise; a negative transfer must name a positive
    /// one of the company and take back at most what is left of it. Checks
    /// [`NewTransfer::check`] first.
    async fn record_transfer(&self, company_id: i32, t: &NewTransfer) -> Result<TransferRecorded>;

    /// The transfers received up to `to`, by date and then id.
    async fn transfers(&self, company_id: i32, to: NaiveDate) -> Result<Vec<Transfer>>;

    /// The government receivable at the end of `as_of`: its share of every bill dated up to
    /// it, by month, and the transfers received up to it.
    async fn government_receivable(&self, company_id: i32, as_of: NaiveDate) -> Result<Receivable>;

    /// The settlement list of `from..=to`: each customer with a government share in the
    /// period's bills, by customer id, with their profile in force on `to` (unmasked: the
    /// caller masks).
    async fn settlement(
        &self,
        company_id: i32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SettlementLine>>;
}

async fn transfer_by_reference<X: Exec>(
    x: &mut X,
    company_id: i32,
    reference: &str,
) -> Result<Option<Transfer>> {
    x.opt(
        q!(concat!(
            "SELECT ",
            transfer_columns!(),
            " FROM government_transfers WHERE company_id = $1 AND reference = $2"
        )),
        args![company_id, reference],
    )
    .await?
    .as_ref()
    .map(transfer_of)
    .transpose()
}

/// Sums decimals read as text, exactly.
fn sum_text<R: SqlRow>(rows: &[R], col: usize) -> Result<Decimal> {
    rows.iter().map(|r| r.dec(col)).sum()
}

#[async_trait]
impl<E: Engine> SubsidyStore for E {
    async fn record_transfer(&self, company_id: i32, t: &NewTransfer) -> Result<TransferRecorded> {
        t.check().map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        // One transfer of a company at a time: what is left of a transfer being undone is read
        // and taken in one step.
        tx.opt(
            q!("SELECT id FROM companies WHERE id = $1 FOR UPDATE"),
            args![company_id],
        )
        .await?;
        if let Some(old) = transfer_by_reference(&mut tx, company_id, &t.reference).await? {
            if old.received_on == t.received_on && old.amount == t.amount {
                return Ok(TransferRecorded::Again(old));
            }
            return Err(StoreError::Conflict(format!(
                "transfer {} is recorded already (id {}, {} received on {}), and a transfer is \
                 never changed: if it is wrong, undo it with a negative transfer that names it \
                 and record the right one",
                shown(&t.reference),
                old.id,
                old.amount,
                old.received_on
            )));
        }
        if let Some(undone) = t.undoes {
            let original = tx
                .opt(
                    q!(concat!(
                        "SELECT ",
                        transfer_columns!(),
                        " FROM government_transfers WHERE company_id = $1 AND id = $2"
                    )),
                    args![company_id, undone],
                )
                .await?
                .as_ref()
                .map(transfer_of)
                .transpose()?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("no government transfer {undone} in this company"))
                })?;
            if original.amount < Decimal::ZERO {
                return Err(StoreError::Conflict(format!(
                    "transfer {undone} undoes another: undo the transfer it names instead"
                )));
            }
            let taken = sum_text(
                &tx.rows(
                    q!("SELECT amount::text FROM government_transfers
                        WHERE company_id = $1 AND undoes = $2"),
                    args![company_id, undone],
                )
                .await?,
                0,
            )?;
            let left = original.amount + taken;
            if -t.amount > left {
                return Err(StoreError::Conflict(format!(
                    "transfer {undone} has {left} left of its {}: a transfer cannot take back \
                     more than that",
                    original.amount
                )));
            }
            if t.received_on < original.received_on {
                return Err(StoreError::Conflict(format!(
                    "transfer {undone} was received on {}: what undoes it cannot be dated \
                     before ({})",
                    original.received_on, t.received_on
                )));
            }
        }
        let amount = t.amount.to_string();
        let r = tx
            .one(
                q!(concat!(
                    "INSERT INTO government_transfers (company_id, reference, received_on,
                         amount, period_from, period_to, undoes, note, recorded_by, source)
                     VALUES ($1, $2, $3, $4::text::numeric, $5, $6, $7, $8, $9, $10)
                     RETURNING ",
                    transfer_columns!()
                )),
                args![
                    company_id,
                    t.reference.as_str(),
                    t.received_on,
                    amount.as_str(),
                    t.period_from,
                    t.period_to,
                    t.undoes,
                    &t.note,
                    t.recorded_by.as_str(),
                    t.source.as_str()
                ],
            )
            .await?;
        let recorded = transfer_of(&r)?;
        tx.commit().await?;
        Ok(TransferRecorded::New(recorded))
    }

    async fn transfers(&self, company_id: i32, to: NaiveDate) -> Result<Vec<Transfer>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    transfer_columns!(),
                    " FROM government_transfers WHERE company_id = $1 AND received_on <= $2
                     ORDER BY received_on, id LIMIT $3"
                )),
                args![company_id, to, MAX_TRANSFERS as i64 + 1],
            )
            .await?;
        if rows.len() > MAX_TRANSFERS {
            return Err(StoreError::Conflict(format!(
                "the company has more than {MAX_TRANSFERS} government transfers up to {to}: ask \
                 for an earlier date"
            )));
        }
        rows.iter().map(transfer_of).collect()
    }

    async fn government_receivable(&self, company_id: i32, as_of: NaiveDate) -> Result<Receivable> {
        let mut db = self.db();
        let mut billed: BTreeMap<String, Decimal> = BTreeMap::new();
        match Engine::backend(self) {
            Backend::Postgres => {
                for r in db
                    .rows(
                        q!(
                            "SELECT to_char(bill_date, 'YYYY-MM'), sum(government_total)::text
                            FROM bills WHERE company_id = $1 AND bill_date <= $2
                            GROUP BY 1"
                        ),
                        args![company_id, as_of],
                    )
                    .await?
                {
                    billed.insert(r.string(0)?, r.dec(1)?);
                }
            }
            Backend::Sqlite => {
                let dates = db
                    .rows(
                        q!("SELECT DISTINCT bill_date FROM bills
                            WHERE company_id = $1 AND bill_date <= $2"),
                        args![company_id, as_of],
                    )
                    .await?;
                for d in dates {
                    let date = d.date(0)?;
                    let sum = sum_text(&day_shares(&mut db, company_id, date).await?, 1)?;
                    *billed.entry(month_of(date)).or_default() += sum;
                }
            }
        }
        // A month whose bills carry no government share is no month of the receivable.
        billed.retain(|_, v| !v.is_zero());
        let transfers = self.transfers(company_id, as_of).await?;
        Ok(receivable(as_of, &billed, &transfers))
    }

    async fn settlement(
        &self,
        company_id: i32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SettlementLine>> {
        let mut db = self.db();
        // Per customer: days, amount, first and last day.
        let mut by: BTreeMap<String, (u32, Decimal, NaiveDate, NaiveDate)> = BTreeMap::new();
        let too_many = || {
            StoreError::Conflict(format!(
                "more than {MAX_SETTLEMENT_LINES} customers have a government share from {from} \
                 to {to}: ask for the list by community or a shorter period"
            ))
        };
        match Engine::backend(self) {
            Backend::Postgres => {
                let rows = db
                    .rows(
                        q!("SELECT customer_id, count(*), sum(government_total)::text,
                                   min(bill_date), max(bill_date)
                            FROM bills
                            WHERE company_id = $1 AND bill_date >= $2 AND bill_date <= $3
                              AND government_total <> 0
                            GROUP BY customer_id"),
                        args![company_id, from, to],
                    )
                    .await?;
                if rows.len() > MAX_SETTLEMENT_LINES {
                    return Err(too_many());
                }
                for r in rows {
                    let days = u32::try_from(r.big(1)?)
                        .map_err(|_| StoreError::Corrupt("a day count".into()))?;
                    by.insert(r.string(0)?, (days, r.dec(2)?, r.date(3)?, r.date(4)?));
                }
            }
            Backend::Sqlite => {
                let mut date = from;
                while date <= to {
                    for r in day_shares(&mut db, company_id, date).await? {
                        let share = r.dec(1)?;
                        if share.is_zero() {
                            continue;
                        }
                        let e = by
                            .entry(r.string(0)?)
                            .or_insert((0, Decimal::ZERO, date, date));
                        e.0 += 1;
                        e.1 += share;
                        e.3 = date;
                    }
                    if by.len() > MAX_SETTLEMENT_LINES {
                        return Err(too_many());
                    }
                    let Some(next) = date.succ_opt() else { break };
                    date = next;
                }
            }
        }
        // The profiles in force on the period's last day, read a page of customers at a time.
        let mut lines = Vec::with_capacity(by.len());
        let ids: Vec<&String> = by.keys().collect();
        for page in ids.chunks(5_000) {
            let (first, last) = (page[0].as_str(), page[page.len() - 1].as_str());
            let mut profiles: BTreeMap<String, [Option<String>; 6]> = BTreeMap::new();
            for r in db
                .rows(
                    q!(
                        "SELECT p.customer_id, p.account_no, p.name, p.community, p.building,
                               p.unit, p.room
                        FROM customer_profiles p
                        WHERE p.company_id = $1 AND p.customer_id >= $2 AND p.customer_id <= $3
                          AND p.valid_from <= $4
                          AND NOT EXISTS (
                              SELECT 1 FROM customer_profiles n
                              WHERE n.company_id = p.company_id AND n.customer_id = p.customer_id
                                AND n.valid_from <= $4
                                AND (n.valid_from > p.valid_from
                                     OR (n.valid_from = p.valid_from AND n.id > p.id)))"
                    ),
                    args![company_id, first, last, to],
                )
                .await?
            {
                profiles.insert(
                    r.string(0)?,
                    [
                        r.opt_string(1)?,
                        r.opt_string(2)?,
                        r.opt_string(3)?,
                        r.opt_string(4)?,
                        r.opt_string(5)?,
                        r.opt_string(6)?,
                    ],
                );
            }
            for id in page {
                let (days, amount, first_day, last_day) = by[*id];
                let [account_no, name, community, building, unit, room] =
                    profiles.remove(id.as_str()).unwrap_or_default();
                lines.push(SettlementLine {
                    customer_id: (*id).clone(),
                    account_no,
                    name,
                    community,
                    building,
                    unit,
                    room,
                    days,
                    first_day,
                    last_day,
                    amount,
                });
            }
        }
        Ok(lines)
    }
}

/// Each customer's government share on one date (SQLite: summed by the caller, exactly).
async fn day_shares<X: Exec>(x: &mut X, company_id: i32, date: NaiveDate) -> Result<Vec<X::Row>> {
    x.rows(
        q!("SELECT customer_id, government_total::text FROM bills
            WHERE company_id = $1 AND bill_date = $2"),
        args![company_id, date],
    )
    .await
}
