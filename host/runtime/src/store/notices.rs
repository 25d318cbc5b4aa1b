//! The store's payment notices: notices (append-only, one per customer, period and `seq`) and
//! the periods they were issued for. What they mean is [`crate::notices`]'s.

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::ledger::LedgerStore;
use super::sql::{Commit, Engine, Exec, SqlRow, args, q};
use super::types::{Result, StoreError};
use crate::ledger::Allocation;
use crate::model::ShardRange;
use crate::notices::{NewNotice, Notice, NoticeLine, NoticeStanding, PeriodKind};

/// The most notices one listing returns.
pub const MAX_NOTICES_PAGE: usize = 10_000;

macro_rules! notice_columns {
    () => {
        "id, customer_id, kind, period_start, period_end, seq, issued_on, due_on, \
         amount::text AS amount, lines, projected, run_id"
    };
}

fn notice_of<R: SqlRow>(r: &R) -> Result<Notice> {
    let kind = r.str("kind")?;
    let lines = r.str("lines")?;
    Ok(Notice {
        id: r.big("id")?,
        customer_id: r.string("customer_id")?,
        kind: PeriodKind::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("notice kind {kind:?}")))?,
        period_start: r.date("period_start")?,
        period_end: r.date("period_end")?,
        seq: r.int("seq")?,
        issued_on: r.date("issued_on")?,
        due_on: r.date("due_on")?,
        amount: r.dec("amount")?,
        lines: serde_json::from_str::<Vec<NoticeLine>>(lines)
            .map_err(|e| StoreError::Corrupt(format!("a notice's lines: {e}")))?,
        projected: r.bool("projected")?,
        run_id: r.opt_big("run_id")?,
    })
}

/// Where a period's notices stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodState {
    /// Issued on a projection: to be settled against its bills when it is over.
    Projected,
    /// Its notices add up to its bills (until a date in it is billed again: `dirty`).
    Settled,
}

impl PeriodState {
    fn as_str(self) -> &'static str {
        match self {
            PeriodState::Projected => "projected",
            PeriodState::Settled => "settled",
        }
    }
}

/// A period notices were issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeriodRecord {
    /// Month or season.
    pub kind: PeriodKind,
    /// Its first day.
    pub start: NaiveDate,
    /// Its last day.
    pub end: NaiveDate,
    /// When its first notices were issued.
    pub issued_on: NaiveDate,
    /// Projected or settled.
    pub state: PeriodState,
    /// A date in it was billed again after it was settled: its bills are added up again by
    /// the next run after it.
    pub dirty: bool,
}

/// Which notices a listing returns.
#[derive(Debug, Clone, Default)]
pub struct NoticeFilter {
    /// One customer's.
    pub customer_id: Option<String>,
    /// Issued on this day.
    pub issued_on: Option<NaiveDate>,
    /// Due on this day.
    pub due_on: Option<NaiveDate>,
    /// Of the period starting on this day.
    pub period_start: Option<NaiveDate>,
    /// With an id above this (keyset pages).
    pub after_id: i64,
    /// At most this many (capped at [`MAX_NOTICES_PAGE`]).
    pub limit: usize,
}

/// Payment notices (see [`crate::notices`]).
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// The periods the company's notices were issued for, by kind and start.
    async fn notice_periods(&self, company_id: i32) -> Result<Vec<PeriodRecord>>;

    /// Records a period's state (inserted or replaced).
    async fn put_notice_period(&self, company_id: i32, p: &PeriodRecord) -> Result<()>;

    /// Marks the settled periods that contain `date` for adding up again (a run billed a date
    /// in them again). Returns how many.
    async fn mark_notice_periods(&self, company_id: i32, date: NaiveDate) -> Result<u64>;

    /// The notices of a period for the customers of `range`, by customer and `seq`.
    async fn period_notices(
        &self,
        company_id: i32,
        kind: PeriodKind,
        start: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<Notice>>;

    /// Records notices, in one transaction; a notice already recorded (same customer, period
    /// and `seq`) is left as it is. Returns how many were recorded.
    async fn insert_notices(
        &self,
        company_id: i32,
        run_id: Option<i64>,
        notices: &[NewNotice],
    ) -> Result<u64>;

    /// A page of the company's notices, by id.
    async fn notices(&self, company_id: i32, filter: &NoticeFilter) -> Result<Vec<Notice>>;

    /// One notice.
    async fn notice(&self, company_id: i32, id: i64) -> Result<Option<Notice>>;

    /// The highest notice id of the company (0: none): part of a run's stamp, so a date is run
    /// again when notices were issued since.
    async fn latest_notice_id(&self, company_id: i32) -> Result<i64>;

    /// A customer's notices issued up to `as_of`, by due date (at most [`MAX_NOTICES_PAGE`]).
    async fn customer_notices(
        &self,
        company_id: i32,
        customer_id: &str,
        as_of: NaiveDate,
    ) -> Result<Vec<Notice>>;

    /// What a customer owes by notice at the end of `as_of` ([`crate::notices::standing`]):
    /// its notices, its account's credits and late fees, its opening balance.
    async fn customer_standing(
        &self,
        company_id: i32,
        customer_id: &str,
        as_of: NaiveDate,
        policy: Allocation,
    ) -> Result<Vec<NoticeStanding>>;
}

#[async_trait]
impl<E: Engine> NoticeStore for E {
    async fn notice_periods(&self, company_id: i32) -> Result<Vec<PeriodRecord>> {
        self.db()
            .rows(
                q!(
                    "SELECT kind, period_start, period_end, issued_on, state, dirty
                    FROM notice_periods WHERE company_id = $1 ORDER BY period_start, kind"
                ),
                args![company_id],
            )
            .await?
            .iter()
            .map(|r| {
                let kind = r.str(0)?;
                let state = r.str(4)?;
                Ok(PeriodRecord {
                    kind: PeriodKind::parse(kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("period kind {kind:?}")))?,
                    start: r.date(1)?,
                    end: r.date(2)?,
                    issued_on: r.date(3)?,
                    state: match state {
                        "projected" => PeriodState::Projected,
                        "settled" => PeriodState::Settled,
                        _ => return Err(StoreError::Corrupt(format!("period state {state:?}"))),
                    },
                    dirty: r.bool(5)?,
                })
            })
            .collect()
    }

    async fn put_notice_period(&self, company_id: i32, p: &PeriodRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            q!(
                "INSERT INTO notice_periods (company_id, kind, period_start, period_end,
                    issued_on, state, dirty)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (company_id, kind, period_start) DO UPDATE SET
                    period_end = excluded.period_end, state = excluded.state,
                    dirty = excluded.dirty"
            ),
            args![
                company_id,
                p.kind.as_str(),
                p.start,
                p.end,
                p.issued_on,
                p.state.as_str(),
                p.dirty
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mark_notice_periods(&self, company_id: i32, date: NaiveDate) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                q!("UPDATE notice_periods SET dirty = true
                    WHERE company_id = $1 AND period_start <= $2 AND period_end >= $2
                      AND state = 'settled' AND NOT dirty"),
                args![company_id, date],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn period_notices(
        &self,
        company_id: i32,
        kind: PeriodKind,
        start: NaiveDate,
        range: &ShardRange,
    ) -> Result<Vec<Notice>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    notice_columns!(),
                    " FROM notices WHERE company_id = $1 AND kind = $2 AND period_start = $3
                       AND customer_id >= $4 AND ($5::text IS NULL OR customer_id < $5)
                     ORDER BY customer_id, seq"
                )),
                args![company_id, kind.as_str(), start, &range.first, &range.end],
            )
            .await?
            .iter()
            .map(notice_of)
            .collect()
    }

    async fn insert_notices(
        &self,
        company_id: i32,
        run_id: Option<i64>,
        notices: &[NewNotice],
    ) -> Result<u64> {
        if notices.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut n = 0;
        for x in notices {
            let lines = serde_json::to_string(&x.lines).expect("notice lines serialize");
            let amount = x.amount.to_string();
            n += tx
                .exec(
                    q!(
                        "INSERT INTO notices (company_id, customer_id, kind, period_start,
                            period_end, seq, issued_on, due_on, amount, lines, projected, run_id)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric, $10, $11, $12)
                        ON CONFLICT (company_id, customer_id, kind, period_start, seq)
                        DO NOTHING"
                    ),
                    args![
                        company_id,
                        x.customer_id.as_str(),
                        x.kind.as_str(),
                        x.period_start,
                        x.period_end,
                        x.seq,
                        x.issued_on,
                        x.due_on,
                        amount.as_str(),
                        lines.as_str(),
                        x.projected,
                        run_id
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn notices(&self, company_id: i32, f: &NoticeFilter) -> Result<Vec<Notice>> {
        let limit = f.limit.clamp(1, MAX_NOTICES_PAGE) as i64;
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    notice_columns!(),
                    " FROM notices WHERE company_id = $1 AND id > $2
                       AND ($3::text IS NULL OR customer_id = $3)
                       AND ($4 IS NULL OR issued_on = $4)
                       AND ($5 IS NULL OR due_on = $5)
                       AND ($6 IS NULL OR period_start = $6)
                     ORDER BY id LIMIT $7"
                )),
                args![
                    company_id,
                    f.after_id,
                    &f.customer_id,
                    f.issued_on,
                    f.due_on,
                    f.period_start,
                    limit
                ],
            )
            .await?
            .iter()
            .map(notice_of)
            .collect()
    }

    async fn notice(&self, company_id: i32, id: i64) -> Result<Option<Notice>> {
        self.db()
            .opt(
                q!(concat!(
                    "SELECT ",
                    notice_columns!(),
                    " FROM notices WHERE company_id = $1 AND id = $2"
                )),
                args![company_id, id],
            )
            .await?
            .as_ref()
            .map(notice_of)
            .transpose()
    }

    async fn latest_notice_id(&self, company_id: i32) -> Result<i64> {
        let r = self
            .db()
            .opt(
                q!("SELECT id FROM notices WHERE company_id = $1 ORDER BY id DESC LIMIT 1"),
                args![company_id],
            )
            .await?;
        r.map_or(Ok(0), |r| r.big(0))
    }

    async fn customer_notices(
        &self,
        company_id: i32,
        customer_id: &str,
        as_of: NaiveDate,
    ) -> Result<Vec<Notice>> {
        let rows = self
            .db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    notice_columns!(),
                    " FROM notices WHERE company_id = $1 AND customer_id = $2
                       AND issued_on <= $3
                     ORDER BY due_on, id LIMIT $4"
                )),
                args![company_id, customer_id, as_of, MAX_NOTICES_PAGE as i64 + 1],
            )
            .await?;
        if rows.len() > MAX_NOTICES_PAGE {
            return Err(StoreError::Conflict(format!(
                "customer {} has more than {MAX_NOTICES_PAGE} notices up to {as_of}: ask for an \
                 earlier date",
                crate::model::shown(customer_id)
            )));
        }
        rows.iter().map(notice_of).collect()
    }

    async fn customer_standing(
        &self,
        company_id: i32,
        customer_id: &str,
        as_of: NaiveDate,
        policy: Allocation,
    ) -> Result<Vec<NoticeStanding>> {
        let facts = self.account_facts(company_id, customer_id, as_of).await?;
        let opening = facts
            .opening
            .as_ref()
            .filter(|o| o.as_of <= as_of)
            .map_or(Decimal::ZERO, |o| o.arrears);
        let account = crate::ledger::account(customer_id, as_of, policy, facts);
        let list = self
            .customer_notices(company_id, customer_id, as_of)
            .await?;
        Ok(crate::notices::standing(
            &list,
            opening,
            account.fees_billed,
            account.credits,
            policy,
            as_of,
        ))
    }
}
