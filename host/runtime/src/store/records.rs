//! The store's records of the admin API: tokens, run requests under idempotency keys, schedules.

use async_trait::async_trait;

use super::sql::{Engine, Exec, SqlRow, args, q, token_columns, token_of};
use super::types::{Result, StoreError};
use crate::model::*;

/// The admin API's records: tokens, run requests (idempotency keys) and schedules.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Stores a company token by its hash.
    async fn put_token(
        &self,
        company_id: i32,
        role: &str,
        label: &str,
        token_hash: &str,
    ) -> Result<TokenRecord>;

    /// The token with this hash (revoked or not).
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>>;

    /// A company's tokens, oldest first.
    async fn tokens(&self, company_id: i32) -> Result<Vec<TokenRecord>>;

    /// Revokes a company's token; false when it has no such live token.
    async fn revoke_token(&self, company_id: i32, id: i64) -> Result<bool>;

    /// The run request recorded under a company's idempotency key.
    async fn run_request(&self, company_id: i32, key: &str) -> Result<Option<RunRequest>>;

    /// Records a run request under its idempotency key; a key already used is a `Conflict`.
    async fn put_run_request(
        &self,
        company_id: i32,
        key: &str,
        request: &str,
        run_id: i64,
    ) -> Result<()>;

    /// Sets (or with `None` removes) a company's nightly run time, `HH:MM` local.
    async fn put_schedule(&self, company_id: i32, run_at: Option<&str>) -> Result<()>;

    /// Every company's nightly run time, by company id.
    async fn schedules(&self) -> Result<Vec<(i32, String)>>;
}

#[async_trait]
impl<E: Engine> RecordStore for E {
    async fn put_token(
        &self,
        company_id: i32,
        role: &str,
        label: &str,
        token_hash: &str,
    ) -> Result<TokenRecord> {
        let r = self
            .db()
            .one(
                q!(concat!(
                    "INSERT INTO api_tokens (company_id, role, label, token_hash)
                     VALUES ($1, $2, $3, $4) RETURNING ",
                    token_columns!()
                )),
                args![company_id, role, label, token_hash],
            )
            .await?;
        token_of(&r)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.db()
            .opt(
                q!(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens WHERE token_hash = $1"
                )),
                args![token_hash],
            )
            .await?
            .as_ref()
            .map(token_of)
            .transpose()
    }

    async fn tokens(&self, company_id: i32) -> Result<Vec<TokenRecord>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens WHERE company_id = $1 ORDER BY id"
                )),
                args![company_id],
            )
            .await?
            .iter()
            .map(token_of)
            .collect()
    }

    async fn revoke_token(&self, company_id: i32, id: i64) -> Result<bool> {
        let n = self
            .db()
            .exec(
                q!("UPDATE api_tokens SET revoked_at = now()
                    WHERE company_id = $1 AND id = $2 AND revoked_at IS NULL"),
                args![company_id, id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn run_request(&self, company_id: i32, key: &str) -> Result<Option<RunRequest>> {
        self.db()
            .opt(
                q!("SELECT request, run_id, age_s(created_at) AS age_s
                    FROM run_requests WHERE company_id = $1 AND idempotency_key = $2"),
                args![company_id, key],
            )
            .await?
            .map(|r| {
                Ok(RunRequest {
                    request: r.string("request")?,
                    run_id: r.big("run_id")?,
                    age_s: r.big("age_s")?,
                })
            })
            .transpose()
    }

    async fn put_run_request(
        &self,
        company_id: i32,
        key: &str,
        request: &str,
        run_id: i64,
    ) -> Result<()> {
        let n = self
            .db()
            .exec(
                q!(
                    "INSERT INTO run_requests (company_id, idempotency_key, request, run_id)
                    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                ),
                args![company_id, key, request, run_id],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "the idempotency key {key:?} is already used"
            )));
        }
        Ok(())
    }

    async fn put_schedule(&self, company_id: i32, run_at: Option<&str>) -> Result<()> {
        let mut db = self.db();
        match run_at {
            Some(at) => {
                db.exec(
                    q!("INSERT INTO schedules (company_id, run_at) VALUES ($1, $2)
                        ON CONFLICT (company_id) DO UPDATE SET run_at = EXCLUDED.run_at,
                            updated_at = now()"),
                    args![company_id, at],
                )
                .await?;
            }
            None => {
                db.exec(
                    q!("DELETE FROM schedules WHERE company_id = $1"),
                    args![company_id],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn schedules(&self) -> Result<Vec<(i32, String)>> {
        self.db()
            .rows(
                q!("SELECT company_id, run_at FROM schedules ORDER BY company_id"),
                args![],
            )
            .await?
            .iter()
            .map(|r| Ok((r.int(0)?, r.string(1)?)))
            .collect()
    }
}
