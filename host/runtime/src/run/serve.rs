//! `heatbill worker` (and the admin server's embedded worker): every running run of every
//! company served until stopped.

use super::*;

/// What `heatbill worker` did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Served {
    /// Runs it worked on.
    pub runs: u64,
    /// Runs it finished (wrote the report of).
    pub finished: u64,
    /// What it did, over every run.
    pub joined: Joined,
}

/// Serves every running run of every company until `stop` resolves: joins each (see
/// [`join`]), and finishes those whose last shard it wrote. What `heatbill worker` runs, and
/// what the admin server embeds.
///
/// When `stop` resolves mid-run, it winds down: no new claim, and the shards in hand are
/// written (within one lease: past it they would be another worker's anyway) and counted, so a
/// stopped worker hands back only the shards it had not started.
pub async fn serve(env: &Env, stop: impl Future<Output = ()>) -> Result<Served, RunError> {
    let Env {
        services, settings, ..
    } = env;
    let mut stop = std::pin::pin!(stop);
    let poll = Duration::from_millis(settings.run.claim_poll_ms.max(10) * 4);
    let mut served = Served::default();
    let mut prepared: HashMap<i64, Arc<Prepared>> = HashMap::new();
    loop {
        let runs = tokio::select! {
            _ = &mut stop => return Ok(served),
            r = retry("listing the running runs", Duration::from_secs(settings.run.retry_s), || {
                services.store.running_runs()
            }) => r?,
        };
        prepared.retain(|id, _| runs.iter().any(|r| r.id == *id));
        for run in &runs {
            let p = match prepared.get(&run.id) {
                Some(p) => p.clone(),
                None => {
                    let companies = services.store.companies().await?;
                    let Some(company) = companies.iter().find(|c| c.id == run.company_id) else {
                        continue;
                    };
                    match prepare(env, &company.slug, run.bill_date).await {
                        Ok(p) => {
                            let p = Arc::new(p);
                            prepared.insert(run.id, p.clone());
                            p
                        }
                        Err(e) => {
                            // The error may quote a plugin (its describe, a configure error).
                            let error = terminal_safe(&format!("{e:#}"), 2000);
                            tracing::warn!(run = run.id, %error, "cannot work on this run");
                            continue;
                        }
                    }
                }
            };
            let mut quiet = |_: &Progress| {};
            let wind_down = CancellationToken::new();
            let joined = {
                let work = join(env, &p, run, 0, &mut quiet, &wind_down);
                let mut work = std::pin::pin!(work);
                tokio::select! {
                    j = &mut work => j?,
                    _ = &mut stop => {
                        wind_down.cancel();
                        let lease = Duration::from_secs(settings.run.lease_s.max(1));
                        match tokio::time::timeout(lease, work).await {
                            Ok(j) => {
                                let j = j?;
                                served.runs += u64::from(j.shards > 0 || j.writes_refused > 0);
                                served.joined.counts.add(&j.counts);
                                served.joined.shards += j.shards;
                                served.joined.writes_refused += j.writes_refused;
                            }
                            Err(_) => tracing::warn!(
                                run = run.id,
                                "stopping: the shards in hand were not written within a lease; \
                                 they are handed back"
                            ),
                        }
                        return Ok(served);
                    }
                }
            };
            served.runs += u64::from(joined.shards > 0 || joined.writes_refused > 0);
            served.joined.counts.add(&joined.counts);
            served.joined.shards += joined.shards;
            served.joined.writes_refused += joined.writes_refused;
            let report = finish(env, &p, run, true, joined, Vec::new(), Instant::now()).await;
            // Every shard is done when join returns; finishing is idempotent, so a run whose
            // finisher died before writing the report is finished here.
            match report {
                Ok(_) => served.finished += 1,
                Err(e) => tracing::debug!(run = run.id, error = %e, "run not finished yet"),
            }
        }
        tokio::select! {
            _ = &mut stop => return Ok(served),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}
