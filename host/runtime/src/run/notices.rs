//! Issuing payment notices (see [`crate::notices`]): what a run of a date issues before it
//! bills the date.
//!
//! 1. **First notices** of every period whose issue date has come and whose due date has not
//!    passed, and that has none yet: a month's (its bills added up), or a season's (projected,
//!    when the season is not over: the chain in force on each of its days, run on the
//!    customer's data in force on that day, with no reading and no arrears).
//! 2. **Settlements** of a projected period that is over, and of a settled period a date of
//!    which was billed again since: its bills added up, and any difference from what its
//!    notices asked issued as an adjusting notice, due `adjust_due_days` later.
//!
//! Only the run of a date later than every date billed so far issues (a date billed again
//! issues nothing dated in the past).
//!
//! Every step computes what the notices of a period should add up to and issues the
//! difference from what they already ask, so doing it twice (two hosts preparing the same run,
//! a run resumed after a crash) issues nothing more; and a notice is unique per customer,
//! period and `seq` in the database.

use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::notices::{BillingPolicy, NewNotice, NoticeLine, Period, PeriodKind, difference};
use crate::store::notices::{PeriodRecord, PeriodState};

/// Customers per step of the issuing (one read of their versions, notices and bills).
const ISSUE_SHARD: usize = 10_000;

/// Customer-days per call of a projection.
const PROJECT_BATCH: usize = 256;

/// What a customer's lines of a period add up to, by code.
type Sums = BTreeMap<String, BTreeMap<String, (String, Decimal)>>;

fn add(sums: &mut Sums, customer: &str, code: &str, description: &str, amount: Decimal) {
    let e = sums
        .entry(customer.to_string())
        .or_default()
        .entry(code.to_string())
        .or_insert_with(|| (description.to_string(), Decimal::ZERO));
    e.1 += amount;
}

/// The version of `versions` (one customer's, by date) in force on `date`.
fn in_force(versions: &[CustomerState], date: NaiveDate) -> Option<&CustomerState> {
    versions.iter().rev().find(|v| v.valid_from <= date)
}

/// Issues what a run of `date` must issue first (see the module docs). Returns lines for the
/// run's report.
pub async fn issue(
    env: &Env,
    company: &Company,
    policy: &BillingPolicy,
    date: NaiveDate,
) -> Result<Vec<String>, RunError> {
    let store = &env.services.store;
    let mut report = Vec::new();
    // Only the night of a new date issues: a date billed again (a correction reaching back)
    // issues nothing dated in the past. Its corrections are added up by the next new night.
    if store
        .latest_billed_date(company.id)
        .await?
        .is_some_and(|latest| date <= latest)
    {
        return Ok(report);
    }
    let records = store.notice_periods(company.id).await?;
    let known: HashMap<(PeriodKind, NaiveDate), PeriodRecord> =
        records.iter().map(|r| ((r.kind, r.start), *r)).collect();
    for p in policy.periods_to_issue(&company.seasons, date) {
        if known.contains_key(&(p.kind, p.start)) {
            continue;
        }
        let projected = date <= p.end;
        let n = issue_period(env, company, policy, &p, date, p.due_on, projected).await?;
        store
            .put_notice_period(
                company.id,
                &PeriodRecord {
                    kind: p.kind,
                    start: p.start,
                    end: p.end,
                    issued_on: date,
                    state: if projected {
                        PeriodState::Projected
                    } else {
                        PeriodState::Settled
                    },
                    dirty: false,
                },
            )
            .await?;
        report.push(format!(
            "issued {n} {} notice(s) for {} {}..{}, due {}",
            if projected { "projected" } else { "" },
            p.kind.as_str(),
            p.start,
            p.end,
            p.due_on
        ));
    }
    for r in records {
        let over = r.end < date;
        let settle = over && (r.state == PeriodState::Projected || (r.dirty && r.issued_on < date));
        if !settle {
            continue;
        }
        let p = Period {
            kind: r.kind,
            start: r.start,
            end: r.end,
            issue_on: r.issued_on,
            due_on: date,
        };
        let due = date + chrono::Days::new(u64::from(policy.adjust_due_days));
        let n = issue_period(env, company, policy, &p, date, due, false).await?;
        store
            .put_notice_period(
                company.id,
                &PeriodRecord {
                    state: PeriodState::Settled,
                    dirty: false,
                    ..r
                },
            )
            .await?;
        report.push(format!(
            "settled {} {}..{}: {n} adjusting notice(s), due {due}",
            r.kind.as_str(),
            r.start,
            r.end
        ));
    }
    for line in &report {
        tracing::info!(company = %company.slug, %date, "{line}");
    }
    Ok(report)
}

/// Issues the notices that bring a period's notices to what its bills add up to (or, when
/// `projected`, to what the chain projects), dated `date` and due `due`. Returns how many.
async fn issue_period(
    env: &Env,
    company: &Company,
    policy: &BillingPolicy,
    p: &Period,
    date: NaiveDate,
    due: NaiveDate,
    projected: bool,
) -> Result<u64, RunError> {
    let store = &env.services.store;
    let ranges = store.cut_shards(company.id, ISSUE_SHARD).await?;
    let mut issued = 0;
    for range in &ranges {
        let versions = store.load_customer_versions(company.id, range).await?;
        let mut grouped: BTreeMap<String, Vec<CustomerState>> = BTreeMap::new();
        for v in versions {
            grouped.entry(v.customer_id.clone()).or_default().push(v);
        }
        let target = if projected {
            project(env, company, policy, p, &grouped).await?
        } else {
            actual(env, company, policy, p, date, range, &grouped).await?
        };
        let already = store
            .period_notices(company.id, p.kind, p.start, range)
            .await?;
        let mut asked: BTreeMap<&str, (i32, Vec<NoticeLine>)> = BTreeMap::new();
        for n in &already {
            let e = asked
                .entry(n.customer_id.as_str())
                .or_insert((0, Vec::new()));
            e.0 = e.0.max(n.seq + 1);
            e.1.extend(n.lines.iter().cloned());
        }
        let customers: std::collections::BTreeSet<&str> = target
            .keys()
            .map(String::as_str)
            .chain(asked.keys().copied())
            .collect();
        let mut out = Vec::new();
        for c in customers {
            let want: Vec<NoticeLine> = target.get(c).map_or_else(Vec::new, |m| {
                m.iter()
                    .map(|(code, (description, amount))| NoticeLine {
                        code: code.clone(),
                        description: description.clone(),
                        amount: *amount,
                    })
                    .collect()
            });
            let (seq, have) = asked.get(c).map_or((0, &[][..]), |(s, l)| (*s, &l[..]));
            let lines = difference(&want, have);
            if lines.is_empty() {
                continue;
            }
            let amount = crate::ledger::fen(lines.iter().map(|l| l.amount).sum());
            out.push(NewNotice {
                customer_id: c.to_string(),
                kind: p.kind,
                period_start: p.start,
                period_end: p.end,
                seq,
                issued_on: date,
                due_on: due.max(date),
                lines,
                amount,
                projected,
            });
        }
        issued += store.insert_notices(company.id, None, &out).await?;
    }
    Ok(issued)
}

/// Whether a customer's line of `code` billed on `day` goes on period `p`'s notice.
fn on_period(
    policy: &BillingPolicy,
    company: &Company,
    p: &Period,
    day: NaiveDate,
    class: heatbill_engine::CustomerClass,
    code: &str,
) -> bool {
    policy
        .period_of(&company.seasons, day, class, code)
        .is_some_and(|q| q.kind == p.kind && q.start == p.start)
}

/// What the current bills of a period (up to the day before `date`) add up to for the
/// customers of `range`, by customer and code: their customer lines but late fees that the
/// policy puts on the period's notice (by the customer's class on each bill's date).
async fn actual(
    env: &Env,
    company: &Company,
    policy: &BillingPolicy,
    p: &Period,
    date: NaiveDate,
    range: &ShardRange,
    versions: &BTreeMap<String, Vec<CustomerState>>,
) -> Result<Sums, RunError> {
    let store = &env.services.store;
    let mut sums = Sums::new();
    let last = p.end.min(date.pred_opt().unwrap_or(date));
    let mut day = p.start;
    while day <= last {
        for b in store.bills_in(company.id, day, range).await? {
            let Some(v) = versions.get(&b.customer_id).and_then(|v| in_force(v, day)) else {
                continue;
            };
            for l in &b.lines {
                if l.payer == "customer"
                    && l.category != "late-fee"
                    && on_period(policy, company, p, day, v.class, &l.code)
                {
                    add(&mut sums, &b.customer_id, &l.code, &l.description, l.amount);
                }
            }
        }
        day = day.succ_opt().expect("a date after a period's start");
    }
    Ok(sums)
}

/// What the period's bills are projected to add up to for the customers of `versions`: the
/// chain in force on each day run on the customer's data in force that day, without readings
/// or arrears (a season notice is for what does not depend on them).
async fn project(
    env: &Env,
    company: &Company,
    policy: &BillingPolicy,
    p: &Period,
    versions: &BTreeMap<String, Vec<CustomerState>>,
) -> Result<Sums, RunError> {
    let mut sums = Sums::new();
    let mut chains: HashMap<i32, Arc<Chain>> = HashMap::new();
    let mut day = p.start;
    while day <= p.end {
        let (version, chain) = chain_for(&env.services, &env.engine, company, day).await?;
        let chain = chains.entry(version.id).or_insert(chain).clone();
        let has_season_plugin = chain
            .entries()
            .iter()
            .any(|e| e.plugin().kind() == PluginKind::Season);
        let season = if has_season_plugin {
            None
        } else {
            season_preset(company, day)
        };
        let days: Vec<(DayInput, heatbill_engine::CustomerClass)> = versions
            .values()
            .filter_map(|v| in_force(v, day))
            .map(|c| {
                // No reading: a metered customer's consumption is none (it goes on the
                // month's notice, from its bills), its basic part is what is projected.
                let facts = DayFacts {
                    heat: c.metered.then_some(Decimal::ZERO),
                    ..DayFacts::default()
                };
                (c.day_input(day, &facts, season), c.class)
            })
            .collect();
        let results = blocking(&env.engine, move |engine| {
            let mut ev = Evaluator::new(engine, chain);
            let mut out = Vec::with_capacity(days.len());
            for batch in days.chunks(PROJECT_BATCH) {
                let inputs: Vec<DayInput> = batch.iter().map(|d| d.0.clone()).collect();
                for (d, r) in batch.iter().zip(ev.evaluate(&inputs)) {
                    out.push((d.0.customer.to_string(), d.1, r.ok()));
                }
            }
            out
        })
        .await;
        for (customer, class, bill) in results {
            let Some(bill) = bill else { continue };
            for l in &bill.lines {
                if l.payer == heatbill_engine::Payer::Customer
                    && l.category() != LineCategory::LateFee
                    && on_period(policy, company, p, day, class, l.code())
                {
                    add(&mut sums, &customer, l.code(), l.description(), l.amount);
                }
            }
        }
        day = day.succ_opt().expect("a date after a period's start");
    }
    Ok(sums)
}
