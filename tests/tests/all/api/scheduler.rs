//! The nightly scheduler, two hosts of one deployment, and a shutdown mid-run.

use super::*;

/// The scheduler starts last night's run at the company's local time, and catches up the
/// nights missed while no host ran, one date after the other.
async fn scheduler_catches_up(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-10-20").await;
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            Some(&c.staff),
            Some(json!({"daily_run_at": "02:30"})),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["daily_run_at"], "02:30");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            Some(&c.staff),
            Some(json!({"daily_run_at": "25:00"})),
        )
        .await;
    error(st, &v, 422, "HH:MM");
    // 2025-10-23 at 02:00 in Harbin: the night of the 22nd is not due yet; 21 is missed.
    let tz: chrono_tz::Tz = "Asia/Harbin".parse().unwrap();
    let at = |h: u32, m: u32| {
        tz.with_ymd_and_hms(2025, 10, 23, h, m, 0)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    assert_eq!(
        heatbill_runtime::run::due_date(
            at(2, 0),
            tz,
            chrono::NaiveTime::from_hms_opt(2, 30, 0).unwrap()
        ),
        NaiveDate::from_ymd_opt(2025, 10, 21).unwrap()
    );
    let billed = |app: App| async move {
        let company = app.services.store.company("harbin").await.unwrap();
        app.services
            .store
            .latest_billed_date(company.id)
            .await
            .unwrap()
            .unwrap()
            .to_string()
    };
    for _ in 0..100 {
        s.app.runs.schedule_once(at(2, 0)).await.unwrap();
        if billed(s.app.clone()).await == "2025-10-21" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(billed(s.app.clone()).await, "2025-10-21");
    // Past 02:30 the night of the 22nd is due too.
    for _ in 0..100 {
        s.app.runs.schedule_once(at(3, 0)).await.unwrap();
        if billed(s.app.clone()).await == "2025-10-22" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(billed(s.app.clone()).await, "2025-10-22");
    // Nothing more is due: another pass starts nothing.
    let before = s
        .app
        .runs
        .counters()
        .scheduled
        .load(std::sync::atomic::Ordering::Relaxed);
    s.app.runs.schedule_once(at(3, 0)).await.unwrap();
    assert_eq!(
        s.app
            .runs
            .counters()
            .scheduled
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    assert_eq!(before, 2);
    s.stop().await;
}
both!(scheduler_catches_up);

/// Two hosts of one deployment (one PostgreSQL, one Redis): a chain activated on one bills on
/// the other at once, without a restart; exactly one of them leads the scheduler, and the
/// nights it starts are billed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_share_chains_and_one_leads_the_scheduler() {
    use heatbill_runtime::cache::redis::RedisCache;
    use heatbill_runtime::coord::redis::RedisCoord;
    let db = TestDb::postgres().await;
    let redis = crate::coord::redis().await;
    let services = || {
        heatbill_runtime::services::Services::with(
            db.store.clone(),
            Arc::new(RedisCoord::new(redis.clone())),
            Arc::new(RedisCache::new(redis.clone())),
            &Default::default(),
        )
    };
    let tune = |st: &mut Settings| {
        st.api.scheduler = true;
        // Every night since the test data's first is due: the leader keeps starting them.
        st.api.catch_up_days = 100_000;
    };
    let a = Server::start_with(services(), tune).await;
    let b = Server::start_with(services(), tune).await;
    let c = company(&a, "harbin").await;
    let (st, v) = import(&a, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    run_to_end(&a, &c, "2025-10-20").await;

    // B reads the chain in force (through the shared cache), then A activates a new price
    // from the 21st: B's next dry run bills it.
    let body = json!({"customer": "W1", "date": "2025-10-21"});
    let (st, before) = b
        .post("/v1/companies/harbin/dry-run", &c.staff, body.clone())
        .await;
    ok(st, &before, 200);
    assert_eq!(
        before["bill"]["lines"][0]["unit_price"], "38.32",
        "{before:#}"
    );
    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-10-21");
    chain["entries"][1]["params"]["prices"]["residential"] = json!("40.00");
    let (st, v) = a
        .post("/v1/companies/harbin/chains", &c.integrator, chain)
        .await;
    ok(st, &v, 201);
    let (st, after) = b
        .post("/v1/companies/harbin/dry-run", &c.staff, body.clone())
        .await;
    ok(st, &after, 200);
    assert_eq!(
        after["bill"]["lines"][0]["unit_price"], "40.00",
        "{after:#}"
    );

    // The schedule: both hosts run the scheduler; one leads and starts the nights.
    let (st, v) = b
        .call(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            Some(&c.staff),
            Some(json!({"daily_run_at": "00:00"})),
        )
        .await;
    ok(st, &v, 200);
    let company = db.store.company("harbin").await.unwrap();
    let mut billed = None;
    for _ in 0..300 {
        billed = db.store.latest_billed_date(company.id).await.unwrap();
        if billed >= NaiveDate::from_ymd_opt(2025, 10, 22) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        billed >= NaiveDate::from_ymd_opt(2025, 10, 22),
        "the scheduler billed up to {billed:?}"
    );
    let scheduled = |s: &Server| {
        s.app
            .runs
            .counters()
            .scheduled
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (sa, sb) = (scheduled(&a), scheduled(&b));
    assert!(
        (sa > 0) != (sb > 0),
        "exactly one host leads the scheduler: A started {sa} runs, B {sb}"
    );
    a.stop().await;
    b.stop().await;
    // One completed run per date, whichever host worked on it.
    for date in ["2025-10-21", "2025-10-22"] {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let runs = db.store.runs(company.id, d).await.unwrap();
        let completed = runs.iter().filter(|r| r.state == "completed").count();
        assert_eq!(completed, 1, "{date}: {runs:?}");
    }
}

/// SIGTERM mid-run with no grace: the server stops, the shards in flight are dropped (each
/// commits whole or not at all), and a run requested again on another server resumes the same
/// run: every customer billed once.
async fn shutdown_mid_run_hands_back(db: TestDb) {
    let tune = |st: &mut Settings| {
        st.api.shutdown_grace_s = 0;
        st.run.shard_size = 2;
        st.run.lease_s = 1;
        st.run.workers = Some(1);
    };
    let a = Server::start(&db, tune).await;
    let c = company(&a, "harbin").await;
    let mut csv = String::from("customer_id,class,building_area,usable_area\n");
    for i in 0..1500 {
        csv.push_str(&format!("C{i:05},residential,75,60.00\n"));
    }
    let (st, v) = import(&a, &c, "customers", &csv).await;
    ok(st, &v, 200);
    let (st, v) = trigger(&a, &c, "2025-10-20", "first").await;
    ok(st, &v, 202);
    let id = v["id"].as_i64().unwrap();
    // Stop as soon as some shards are written.
    for _ in 0..400 {
        let (_, v) = a
            .get(&format!("/v1/companies/harbin/runs/{id}"), &c.reader)
            .await;
        if v["shards_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.stop().await;
    let run = db.store.run(id).await.unwrap();
    let totals = db.store.run_totals(id, 0).await.unwrap();
    assert_eq!(
        run.state, "running",
        "the run finished before the stop: make it longer"
    );
    assert!(
        totals.shards_done > 0 && totals.shards_done < totals.shard_count,
        "{totals:?}"
    );

    // Another server: the same date again resumes the same run.
    let b = Server::start(&db, tune).await;
    let (st, v) = trigger(&b, &c, "2025-10-20", "second").await;
    ok(st, &v, 202);
    assert_eq!(
        v["id"].as_i64(),
        Some(id),
        "the unfinished run is resumed, not restarted"
    );
    let (_, last) = follow(&b, &c, id).await;
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(last["customers"], 1500, "{last:#}");
    assert_eq!(
        last["written"], 1500,
        "every customer billed once: {last:#}"
    );
    let company = db.store.company("harbin").await.unwrap();
    let bills = db
        .store
        .bills(company.id, NaiveDate::from_ymd_opt(2025, 10, 20).unwrap())
        .await
        .unwrap();
    assert_eq!(bills.len(), 1500);
    assert!(bills.iter().all(|b| b.row.version == 1));
    b.stop().await;
}
both!(shutdown_mid_run_hands_back);
