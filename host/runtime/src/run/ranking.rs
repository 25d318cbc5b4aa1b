//! The company's arrears ranking: rebuilt from a run's bills into the cache, and read back
//! (from the database when the cache has lost it).

use super::*;

/// Rebuilds a company's arrears ranking from the bills of `date`.
pub async fn refresh_ranking(
    services: &Services,
    company_id: i32,
    date: NaiveDate,
) -> Result<(), String> {
    let arrears = services
        .store
        .arrears(company_id, date)
        .await
        .map_err(|e| e.to_string())?;
    services
        .cache
        .inner()
        .put_ranking(company_id, date, &arrears)
        .await
        .map_err(|e| e.to_string())
}

/// The `n` customers of a company with the most unpaid principal after its latest completed
/// run, rebuilt from the database when the cache has no ranking (Redis flushed or restarted,
/// or the embedded default's fresh process).
pub async fn top_arrears(
    services: &Services,
    company: &Company,
    n: usize,
) -> Result<Option<crate::cache::Ranking>, RunError> {
    let latest = services.store.latest_billed_date(company.id).await?;
    let Some(latest) = latest else {
        return Ok(None);
    };
    match services.cache.inner().ranking(company.id, n).await {
        Ok(Some(r)) if r.date == latest => return Ok(Some(r)),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "the ranking cache failed; reading the database"),
    }
    refresh_ranking(services, company.id, latest)
        .await
        .map_err(RunError::Refused)?;
    match services.cache.inner().ranking(company.id, n).await {
        Ok(r) => Ok(r),
        Err(_) => {
            // The cache is unreachable: rank from the database directly.
            let mut all = services.store.arrears(company.id, latest).await?;
            all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
            all.truncate(n);
            Ok(Some(crate::cache::Ranking {
                date: latest,
                top: all,
            }))
        }
    }
}
