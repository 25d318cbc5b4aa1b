//! The nightly scheduler: which date each company with a schedule bills next, started on the
//! host that leads.

use chrono::Utc;

use super::*;
use crate::coord::LockToken;

/// The date a schedule bills now: the day before the company's local date, once its local
/// time has passed `run_at`; the day before that otherwise.
pub fn due_date(
    now: chrono::DateTime<Utc>,
    tz: chrono_tz::Tz,
    run_at: chrono::NaiveTime,
) -> NaiveDate {
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    let yesterday = today.pred_opt().unwrap_or(today);
    if local.time() >= run_at {
        yesterday
    } else {
        yesterday.pred_opt().unwrap_or(yesterday)
    }
}

impl Runs {
    /// The nightly scheduler: every few seconds, the host that holds the scheduler's lease (one
    /// at a time, through the coordination backend) starts, for each company with a schedule,
    /// the earliest date that is due and not billed: last night's, or the nights missed while
    /// no host ran (up to `api.catch_up_days`; a longer gap is left to an operator, since each
    /// day's balances carry from the day before). One date per company at a time.
    pub async fn scheduler(&self, stop: impl Future<Output = ()>) {
        const LEASE: Duration = Duration::from_secs(60);
        let tick = Duration::from_secs(5);
        let coord = &self.env().services.coord;
        let mut stop = std::pin::pin!(stop);
        let mut held: Option<LockToken> = None;
        loop {
            let leader = match &held {
                Some(t) => coord.extend("scheduler", t, LEASE).await.unwrap_or(false),
                None => match coord.try_lock("scheduler", LEASE).await {
                    Ok(Some(t)) => {
                        tracing::info!(worker = %self.env().services.worker, "this host leads the scheduler");
                        held = Some(t);
                        true
                    }
                    _ => false,
                },
            };
            if !leader {
                held = None;
            } else if let Err(e) = self.schedule_once(Utc::now()).await {
                tracing::warn!(error = %e, "the scheduler could not start a run");
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(tick) => {}
            }
        }
        if let Some(t) = held {
            let _ = coord.unlock("scheduler", &t).await;
        }
    }

    /// One pass of the scheduler at `now`: starts each scheduled company's next due date
    /// (see [`Runs::scheduler`]).
    pub async fn schedule_once(&self, now: chrono::DateTime<Utc>) -> Result<(), RunError> {
        let Env {
            services, settings, ..
        } = self.env();
        let schedules = services.store.schedules().await?;
        if schedules.is_empty() {
            return Ok(());
        }
        let companies = services.store.companies().await?;
        for (company_id, run_at) in schedules {
            let Some(c) = companies.iter().find(|c| c.id == company_id) else {
                continue;
            };
            let (Ok(tz), Ok(at)) = (
                c.time_zone.parse::<chrono_tz::Tz>(),
                chrono::NaiveTime::parse_from_str(&run_at, "%H:%M"),
            ) else {
                tracing::warn!(company = %c.slug, "the schedule's time zone or time is not valid");
                continue;
            };
            let due = due_date(now, tz, at);
            let latest = services.store.latest_billed_date(c.id).await?;
            let next = match latest {
                Some(d) if d >= due => continue,
                Some(d) => d.succ_opt().unwrap_or(d),
                None => due,
            };
            let gap = (due - next).num_days() + 1;
            if gap > i64::from(settings.api.catch_up_days.max(1)) {
                tracing::warn!(company = %c.slug, %next, %due, "the scheduler will not catch up this many nights on its own (api.catch_up_days): run them from {next}");
                continue;
            }
            // One run of a company at a time: the next date waits for this one's balances.
            let running = services.store.runs(c.id, next).await?;
            if self.busy(c.id) || running.iter().any(|r| r.state == "running") {
                continue;
            }
            let r = self.start(c, next).await?;
            self.counters().scheduled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(company = %c.slug, date = %next, run = r.id, "scheduled run started");
        }
        Ok(())
    }
}
