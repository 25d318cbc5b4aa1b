//! The store's customer directory: profile revisions (append-only, effective-dated), the
//! profile in force on a date, and searches over customers' newest profiles. What a profile
//! means is [`crate::directory`]'s.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::sql::{Commit, Engine, Exec, SqlRow, args, known_customer, q};
use super::types::{Result, StoreError};
use crate::directory::*;
use crate::model::shown;

/// The columns of a revision, as [`version_of`] reads them.
macro_rules! profile_columns {
    () => {
        "p.id, p.customer_id, p.valid_from, p.account_no, p.name, p.phone, p.community, \
         p.building, p.unit, p.room, p.reason, p.recorded_by, p.source, \
         utc_text(p.recorded_at) AS recorded_at"
    };
}

/// The condition that `p` is its customer's newest revision (no revision of a later
/// `valid_from`, or of the same one recorded later).
macro_rules! newest {
    () => {
        "NOT EXISTS (SELECT 1 FROM customer_profiles n
                     WHERE n.company_id = p.company_id AND n.customer_id = p.customer_id
                       AND (n.valid_from > p.valid_from
                            OR (n.valid_from = p.valid_from AND n.id > p.id)))"
    };
}

/// A search's query: the range over one index, and the rest of the criteria as filters (each
/// `$n IS NULL OR …`, so one text serves every combination).
macro_rules! search_sql {
    ($range:literal, $order:literal) => {
        concat!(
            "SELECT ",
            profile_columns!(),
            " FROM customer_profiles p WHERE p.company_id = $1 AND ",
            $range,
            " AND ($4::text IS NULL OR p.account_no = $4)
              AND ($5::text IS NULL OR (p.name >= $5 AND ($6::text IS NULL OR p.name < $6)))
              AND ($7::text IS NULL OR p.community = $7)
              AND ($8::text IS NULL OR p.building = $8)
              AND ($9::text IS NULL OR p.unit = $9)
              AND ($10::text IS NULL OR p.room = $10)
              AND ",
            newest!(),
            " ORDER BY ",
            $order,
            // An expression, not the column: SQLite (without statistics) would otherwise walk
            // the customer index to avoid a sort of the few rows found, reading them all.
            ", p.customer_id || '' LIMIT $11"
        )
    };
}

pub(crate) fn version_of<R: SqlRow>(r: &R) -> Result<ProfileVersion> {
    Ok(ProfileVersion {
        id: r.big("id")?,
        customer_id: r.string("customer_id")?,
        valid_from: r.date("valid_from")?,
        profile: Profile {
            account_no: r.opt_string("account_no")?,
            name: r.opt_string("name")?,
            phone: r.opt_string("phone")?,
            community: r.opt_string("community")?,
            building: r.opt_string("building")?,
            unit: r.opt_string("unit")?,
            room: r.opt_string("room")?,
        },
        reason: r.string("reason")?,
        recorded_by: r.string("recorded_by")?,
        source: r.string("source")?,
        recorded_at: r.string("recorded_at")?,
    })
}

/// The customer directory (see [`crate::directory`]).
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Records a customer's profile from `valid_from`, in one transaction that holds the
    /// company's directory: the customer must exist, the profile is normalized and checked, its
    /// account number must not be another customer's (in their newest profile), and when the
    /// revision in force for that `valid_from` already says exactly this, nothing is recorded
    /// ([`ProfileRecorded::Same`]).
    async fn record_profile(&self, company_id: i32, p: &NewProfile) -> Result<ProfileRecorded>;

    /// Every revision of a customer's profile, by `valid_from` and then as recorded.
    async fn profile_history(
        &self,
        company_id: i32,
        customer_id: &str,
    ) -> Result<Vec<ProfileVersion>>;

    /// The profile in force on `date` (the latest revision of the greatest `valid_from` on or
    /// before it).
    async fn profile_on(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<ProfileVersion>>;

    /// The customers whose newest profile meets every criterion of `search`, ordered by the
    /// searched field and then the customer id; at most `search.limit`.
    async fn search_customers(
        &self,
        company_id: i32,
        search: &Search,
    ) -> Result<Vec<ProfileVersion>>;
}

/// The customer (other than `customer_id`) whose newest profile has `account_no`.
async fn account_holder<X: Exec>(
    x: &mut X,
    company_id: i32,
    customer_id: &str,
    account_no: &str,
) -> Result<Option<String>> {
    Ok(
        match x
            .opt(
                q!(concat!(
                    "SELECT p.customer_id FROM customer_profiles p
                 WHERE p.company_id = $1 AND p.account_no = $2 AND p.customer_id <> $3 AND ",
                    newest!(),
                    " LIMIT 1"
                )),
                args![company_id, account_no, customer_id],
            )
            .await?
        {
            Some(r) => Some(r.string(0)?),
            None => None,
        },
    )
}

#[async_trait]
impl<E: Engine> ProfileStore for E {
    async fn record_profile(&self, company_id: i32, p: &NewProfile) -> Result<ProfileRecorded> {
        let profile = p
            .profile
            .clone()
            .normalized()
            .map_err(|(what, why)| StoreError::Conflict(format!("{what}: {why}")))?;
        crate::ledger::check_text("the reason", &p.reason, 200).map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        // One writer of a company's directory at a time: the same profile sent twice at once is
        // one revision, and an account number cannot be given to two customers at once.
        tx.opt(
            q!("SELECT id FROM companies WHERE id = $1 FOR UPDATE"),
            args![company_id],
        )
        .await?;
        known_customer(&mut tx, company_id, &p.customer_id).await?;
        let current = tx
            .opt(
                q!(concat!(
                    "SELECT ",
                    profile_columns!(),
                    " FROM customer_profiles p
                     WHERE p.company_id = $1 AND p.customer_id = $2 AND p.valid_from = $3
                     ORDER BY p.id DESC LIMIT 1"
                )),
                args![company_id, &p.customer_id, p.valid_from],
            )
            .await?
            .as_ref()
            .map(version_of)
            .transpose()?;
        if let Some(c) = current
            && c.profile == profile
        {
            return Ok(ProfileRecorded::Same(c));
        }
        if let Some(a) = &profile.account_no
            && let Some(other) = account_holder(&mut tx, company_id, &p.customer_id, a).await?
        {
            return Err(StoreError::Conflict(format!(
                "account number {} belongs to customer {}: an account number names one \
                 customer; give that customer another number first, or check the number",
                shown(a),
                shown(&other)
            )));
        }
        let phone_rev = profile.phone_rev();
        let address_key = profile.address_key();
        let id = tx
            .one(
                q!(
                    "INSERT INTO customer_profiles (company_id, customer_id, valid_from,
                         account_no, name, phone, community, building, unit, room, phone_rev,
                         address_key, reason, recorded_by, source)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                     RETURNING id"
                ),
                args![
                    company_id,
                    &p.customer_id,
                    p.valid_from,
                    &profile.account_no,
                    &profile.name,
                    &profile.phone,
                    &profile.community,
                    &profile.building,
                    &profile.unit,
                    &profile.room,
                    &phone_rev,
                    &address_key,
                    p.reason.as_str(),
                    p.recorded_by.as_str(),
                    p.source.as_str()
                ],
            )
            .await?
            .big(0)?;
        let row = tx
            .one(
                q!(concat!(
                    "SELECT ",
                    profile_columns!(),
                    " FROM customer_profiles p WHERE p.id = $1"
                )),
                args![id],
            )
            .await?;
        let v = version_of(&row)?;
        tx.commit().await?;
        Ok(ProfileRecorded::New(v))
    }

    async fn profile_history(
        &self,
        company_id: i32,
        customer_id: &str,
    ) -> Result<Vec<ProfileVersion>> {
        self.db()
            .rows(
                q!(concat!(
                    "SELECT ",
                    profile_columns!(),
                    " FROM customer_profiles p WHERE p.company_id = $1 AND p.customer_id = $2
                     ORDER BY p.valid_from, p.id"
                )),
                args![company_id, customer_id],
            )
            .await?
            .iter()
            .map(version_of)
            .collect()
    }

    async fn profile_on(
        &self,
        company_id: i32,
        customer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<ProfileVersion>> {
        self.db()
            .opt(
                q!(concat!(
                    "SELECT ",
                    profile_columns!(),
                    " FROM customer_profiles p
                     WHERE p.company_id = $1 AND p.customer_id = $2 AND p.valid_from <= $3
                     ORDER BY p.valid_from DESC, p.id DESC LIMIT 1"
                )),
                args![company_id, customer_id, date],
            )
            .await?
            .as_ref()
            .map(version_of)
            .transpose()
    }

    async fn search_customers(
        &self,
        company_id: i32,
        search: &Search,
    ) -> Result<Vec<ProfileVersion>> {
        let key = search.key().map_err(StoreError::Conflict)?;
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let name = given(&search.name);
        let name_end = name.as_deref().and_then(prefix_end);
        let (sql, from, to) = match &key {
            Key::Account(a) => (
                q!(search_sql!(
                    "p.account_no = $2 AND $3::text IS NULL",
                    "p.account_no"
                )),
                a.clone(),
                None,
            ),
            Key::Phone(f, t) => (
                q!(search_sql!(
                    "p.phone_rev >= $2 AND p.phone_rev < $3",
                    "p.phone_rev"
                )),
                f.clone(),
                Some(t.clone()),
            ),
            Key::Name(f, t) => (
                q!(search_sql!("p.name >= $2 AND p.name < $3", "p.name")),
                f.clone(),
                Some(t.clone()),
            ),
            Key::Address(f, t) => (
                q!(search_sql!(
                    "p.address_key >= $2 AND p.address_key < $3",
                    "p.address_key"
                )),
                f.clone(),
                Some(t.clone()),
            ),
        };
        let rows = self
            .db()
            .rows(
                sql,
                args![
                    company_id,
                    from.as_str(),
                    to.as_deref(),
                    &given(&search.account_no),
                    &name,
                    name_end.as_deref(),
                    &given(&search.community),
                    &given(&search.building),
                    &given(&search.unit),
                    &given(&search.room),
                    search.limit as i64
                ],
            )
            .await?;
        // The phone suffix is checked here (the query ranges over it only when it is the key).
        let found = rows.iter().map(version_of).collect::<Result<Vec<_>>>()?;
        Ok(found
            .into_iter()
            .filter(|v| search.matches(&v.profile))
            .collect())
    }
}
