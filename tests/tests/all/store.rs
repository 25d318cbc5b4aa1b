//! The store's contract: every test here runs on SQLite and on PostgreSQL (`both!`), against a
//! fresh database of the real server, and holds both backends to the same behaviour.

use chrono::NaiveDate;
use heatbill_runtime::model::*;
use heatbill_runtime::store::StoreError;
use rust_decimal::Decimal;
use serde_json::json;

use crate::support::db::TestDb;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub fn spec(slug: &str) -> CompanySpec {
    CompanySpec {
        slug: slug.into(),
        name: "Test heating".into(),
        time_zone: "Asia/Harbin".into(),
        policies: json!({}),
        seasons: vec![Season {
            start: d("2025-10-20"),
            end: d("2026-04-20"),
        }],
    }
}

fn plugin(name: &str, version: &str, bytes: &[u8]) -> PluginRecord {
    use sha2::Digest;
    PluginRecord {
        digest: hex::encode(sha2::Sha256::digest(bytes)),
        name: name.into(),
        version: version.into(),
        kind: "tariff".into(),
        contract_version: "0.1.0".into(),
        info: json!({"name": name}),
        component: bytes.to_vec(),
    }
}

async fn companies(db: TestDb) {
    let s = db.store.as_ref();
    let c = s.put_company(&spec("harbin")).await.unwrap();
    assert_eq!(c.slug, "harbin");
    assert_eq!(c.seasons.len(), 1);
    let v0 = c.data_version;
    // The same company again changes nothing.
    let again = s.put_company(&spec("harbin")).await.unwrap();
    assert_eq!(again.data_version, v0);
    assert_eq!(again.id, c.id);
    // Another season replaces the seasons and bumps the data version.
    let mut next = spec("harbin");
    next.seasons.push(Season {
        start: d("2026-10-20"),
        end: d("2027-04-20"),
    });
    let changed = s.put_company(&next).await.unwrap();
    assert_eq!(changed.seasons.len(), 2);
    assert!(changed.data_version > v0);
    match s.company("nowhere").await {
        Err(StoreError::NotFound(m)) => assert!(m.contains("nowhere"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    s.put_company(&spec("beijing")).await.unwrap();
    let all: Vec<String> = s
        .companies()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.slug)
        .collect();
    assert_eq!(all, ["beijing", "harbin"]);
    s.delete_company("beijing").await.unwrap();
    assert!(s.company("beijing").await.is_err());
}
both!(companies);

async fn plugins_and_chains(db: TestDb) {
    let s = db.store.as_ref();
    let c = s.put_company(&spec("harbin")).await.unwrap();
    let a = plugin("area-tariff", "1.0.0", b"component a");
    s.put_plugin(&a).await.unwrap();
    s.put_plugin(&a).await.unwrap(); // the same bytes twice are one plugin
    assert_eq!(s.plugin(&a.digest).await.unwrap(), a);
    // Names and versions are unique within a company, not across companies.
    assert!(s.add_company_plugin(c.id, &a).await.unwrap());
    assert!(!s.add_company_plugin(c.id, &a).await.unwrap());
    let other = plugin("area-tariff", "1.0.0", b"other bytes");
    s.put_plugin(&other).await.unwrap();
    match s.add_company_plugin(c.id, &other).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("another version"), "{m}"),
        r => panic!("expected a conflict, got {r:?}"),
    }
    let daqing = s.put_company(&spec("daqing")).await.unwrap();
    assert!(s.add_company_plugin(daqing.id, &other).await.unwrap());
    let theirs = s.company_plugins(daqing.id).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].digest, other.digest);
    assert_eq!(s.company_plugins(c.id).await.unwrap()[0].digest, a.digest);
    assert!(matches!(s.plugin("00").await, Err(StoreError::NotFound(_))));

    let entry = |price: &str| ChainEntryDef {
        plugin: a.digest.clone(),
        name: a.name.clone(),
        version: a.version.clone(),
        params: json!({"prices": {"residential": price}}),
    };
    let v1 = s
        .put_chain_version(c.id, d("2025-10-01"), &[entry("38.32")])
        .await
        .unwrap();
    let same = s
        .put_chain_version(c.id, d("2025-10-01"), &[entry("38.32")])
        .await
        .unwrap();
    assert_eq!(v1.id, same.id, "the same definition is kept");
    let fixed = s
        .put_chain_version(c.id, d("2025-10-01"), &[entry("38.50")])
        .await
        .unwrap();
    assert_ne!(fixed.id, v1.id, "a correction is a new version");
    let later = s
        .put_chain_version(c.id, d("2026-01-01"), &[entry("40")])
        .await
        .unwrap();
    let active = s.chain_versions(c.id).await.unwrap();
    assert_eq!(
        active.iter().map(|v| v.id).collect::<Vec<_>>(),
        [fixed.id, later.id]
    );
    assert_eq!(
        active[0].entries[0].params["prices"]["residential"],
        "38.50"
    );

    let kinds = vec![LineKindRecord {
        entry: 0,
        kind: 0,
        plugin: "area-tariff".into(),
        plugin_version: "1.0.0".into(),
        code: "heat".into(),
        description: "采暖费".into(),
        unit: "m2".into(),
        category: "heating".into(),
    }];
    s.put_line_kinds(fixed.id, &kinds).await.unwrap();
    s.put_line_kinds(fixed.id, &kinds).await.unwrap();
    assert_eq!(s.line_kinds(fixed.id).await.unwrap(), kinds);
    let mut other_kinds = kinds.clone();
    other_kinds[0].description = "another text".into();
    assert!(matches!(
        s.put_line_kinds(fixed.id, &other_kinds).await,
        Err(StoreError::Conflict(_))
    ));
}
both!(plugins_and_chains);

/// Company `harbin` with a one-plugin chain from 2025-10-01.
async fn company_with_chain(s: &dyn heatbill_runtime::store::Store) -> (Company, ChainVersion) {
    let c = s.put_company(&spec("harbin")).await.unwrap();
    let a = plugin("area-tariff", "1.0.0", b"component a");
    s.put_plugin(&a).await.unwrap();
    let v = s
        .put_chain_version(
            c.id,
            d("2025-10-01"),
            &[ChainEntryDef {
                plugin: a.digest.clone(),
                name: a.name.clone(),
                version: a.version.clone(),
                params: json!({}),
            }],
        )
        .await
        .unwrap();
    (c, v)
}

/// A run's shards: cut once, picked up again by a second opener, each written once.
async fn shards_are_written_once(db: TestDb) {
    let s = db.store.as_ref();
    let (c, v) = company_with_chain(s).await;
    let text = (0..25)
        .map(|i| format!("C{i:03},residential,50\n"))
        .collect::<String>();
    crate::import::import_ok(
        &db,
        &c,
        ImportKind::Customers,
        &format!("customer_id,class,building_area\n{text}"),
    )
    .await;
    assert!(s.has_customer(c.id, "C024").await.unwrap());
    assert!(!s.has_customer(c.id, "C025").await.unwrap());
    assert!(
        !s.has_customer(c.id + 1, "C000").await.unwrap(),
        "another company's"
    );
    let date = d("2025-10-20");
    s.ensure_partitions(date, date).await.unwrap();
    let opened = s.open_run(c.id, date, v.id, 10, "s").await.unwrap();
    assert!(!opened.resumed);
    assert_eq!(opened.run.attempt, 1);
    let firsts: Vec<&str> = opened.pending.iter().map(|r| r.first.as_str()).collect();
    assert_eq!(firsts, ["C000", "C010", "C020"]);
    assert_eq!(opened.pending[2].end, None);
    assert_eq!(opened.pending[0].end.as_deref(), Some("C010"));

    let again = s.open_run(c.id, date, v.id, 10, "s").await.unwrap();
    assert!(
        again.resumed,
        "a running run is picked up, not started twice"
    );
    assert_eq!(again.run.id, opened.run.id);
    assert_eq!(again.pending, opened.pending);

    let data = s
        .load_shard(c.id, date, &opened.pending[0], true)
        .await
        .unwrap();
    assert_eq!(data.customers.len(), 10);
    let customers = s
        .load_customers(c.id, date, &opened.pending[0], Some(&["C003".to_string()]))
        .await
        .unwrap();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].building_area, dec("50"));
    assert_eq!(customers[0].digest(), data.customers[3].digest);

    let row = |id: &str, version: i32, total: &str| BillRow {
        customer_id: id.into(),
        version,
        status: BillStatus::Billed,
        inputs: vec![version as u8; 32],
        total: dec(total),
        customer_total: dec(total),
        government_total: dec("0"),
        employer_total: dec("0"),
        principal: dec(total),
        charged_before: dec("0"),
        paid_before: dec("0"),
        fees_before: dec("0"),
        arrears: dec("0"),
        arrears_since: None,
        due_through: None,
        lines: "[]".into(),
        reason: (version > 1).then(|| "changed: customer data".into()),
        error: None,
    };
    let write = |shard_no: i32, run_id: i64, rows: Vec<BillRow>| ShardWrite {
        run_id,
        shard_no,
        token: 0,
        lease: std::time::Duration::from_secs(30),
        company_id: c.id,
        date,
        chain_version_id: v.id,
        counts: ShardCounts {
            customers: rows.len() as u64,
            written: rows.len() as u64,
            ..Default::default()
        },
        rows,
        parked: vec![],
        totals: [("heat".to_string(), dec("12.56"))].into(),
        stop_in_copy: false,
    };
    let first = write(
        0,
        opened.run.id,
        vec![row("C000", 1, "12.56"), row("C001", 1, "12.57")],
    );
    s.write_shard(&first).await.unwrap();
    match s.write_shard(&first).await {
        Err(StoreError::ClaimLost { why, .. }) => assert!(why.contains("already done"), "{why}"),
        r => panic!("a shard written twice must be refused, got {r:?}"),
    }
    assert_eq!(
        s.bills(c.id, date).await.unwrap().len(),
        2,
        "nothing doubled"
    );
    let totals = s.run_totals(opened.run.id, 10).await.unwrap();
    assert_eq!((totals.shards_done, totals.shard_count), (1, 3));
    assert_eq!(totals.totals["heat"], dec("12.56"));
    let resumed = s.open_run(c.id, date, v.id, 10, "s").await.unwrap();
    assert_eq!(resumed.done, 1);
    assert_eq!(resumed.pending.len(), 2);

    // A second run of the date revises a bill: the old version moves to the history.
    s.finish_run(opened.run.id, "completed", &json!({}))
        .await
        .unwrap();
    let rerun = s.open_run(c.id, date, v.id, 10, "s").await.unwrap();
    assert_eq!(rerun.run.attempt, 2);
    s.write_shard(&write(0, rerun.run.id, vec![row("C001", 2, "13.00")]))
        .await
        .unwrap();
    let current = s.bill(c.id, "C001", date).await.unwrap().unwrap();
    assert_eq!((current.row.version, current.row.total), (2, dec("13.00")));
    assert_eq!(current.run_id, rerun.run.id);
    let history = s.bill_history(c.id, "C001", date).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].row.version, history[0].row.total),
        (1, dec("12.57"))
    );
    // A revision of a version that is no longer current is refused, and changes nothing.
    match s
        .write_shard(&write(1, rerun.run.id, vec![row("C011", 3, "1.00")]))
        .await
    {
        Err(StoreError::Conflict(m)) => assert!(m.contains("changed since"), "{m}"),
        r => panic!("expected a conflict, got {r:?}"),
    }
    assert!(s.bill(c.id, "C011", date).await.unwrap().is_none());
    let shard1 = s.run_totals(rerun.run.id, 10).await.unwrap();
    assert_eq!(shard1.shards_done, 1, "the refused shard is still pending");
}
both!(shards_are_written_once);

/// The previous day's state, which decides whether a run may start.
async fn previous_day(db: TestDb) {
    let s = db.store.as_ref();
    let (c, v) = company_with_chain(s).await;
    assert_eq!(
        s.previous_day(c.id, d("2025-10-20")).await.unwrap(),
        PreviousDay::FirstRun
    );
    let r = s
        .open_run(c.id, d("2025-10-20"), v.id, 10, "s")
        .await
        .unwrap();
    assert_eq!(
        s.previous_day(c.id, d("2025-10-21")).await.unwrap(),
        PreviousDay::FirstRun,
        "a run that has not completed carries nothing"
    );
    s.finish_run(r.run.id, "completed", &json!({}))
        .await
        .unwrap();
    assert_eq!(
        s.previous_day(c.id, d("2025-10-21")).await.unwrap(),
        PreviousDay::Completed
    );
    assert_eq!(
        s.previous_day(c.id, d("2025-10-23")).await.unwrap(),
        PreviousDay::Missing
    );
}
both!(previous_day);

/// What the admin API keeps: tokens (by hash, revocable), case files, run requests by
/// idempotency key, schedules, and chain rollback.
async fn api_records(db: TestDb) {
    let s = db.store.as_ref();
    let c = s.put_company(&spec("harbin")).await.unwrap();
    let d = s.put_company(&spec("daqing")).await.unwrap();

    let t = s
        .put_token(c.id, "staff", "night shift", "h1")
        .await
        .unwrap();
    assert_eq!(
        (t.company_id, t.role.as_str(), t.revoked_at.as_deref()),
        (c.id, "staff", None)
    );
    assert_eq!(s.token_by_hash("h1").await.unwrap().unwrap().id, t.id);
    assert!(s.token_by_hash("h2").await.unwrap().is_none());
    assert!(s.put_token(c.id, "staff", "again", "h1").await.is_err());
    assert!(s.put_token(c.id, "root", "bad role", "h3").await.is_err());
    assert!(
        !s.revoke_token(d.id, t.id).await.unwrap(),
        "another company's token"
    );
    assert!(s.revoke_token(c.id, t.id).await.unwrap());
    assert!(!s.revoke_token(c.id, t.id).await.unwrap(), "revoked once");
    assert!(
        s.token_by_hash("h1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(s.tokens(c.id).await.unwrap().len(), 1);
    assert!(s.tokens(d.id).await.unwrap().is_empty());

    let a = plugin("area-tariff", "1.0.0", b"component a");
    s.put_plugin(&a).await.unwrap();
    s.add_company_plugin(c.id, &a).await.unwrap();
    let cases = PluginCases {
        digest: a.digest.clone(),
        name: "w1.toml".into(),
        body: "x = 1".into(),
        passed: false,
        report: serde_json::json!({"passed": 0}),
    };
    s.put_plugin_cases(c.id, &cases).await.unwrap();
    let again = PluginCases {
        passed: true,
        ..cases.clone()
    };
    s.put_plugin_cases(c.id, &again).await.unwrap();
    assert_eq!(s.plugin_cases(c.id, &a.digest).await.unwrap(), vec![again]);
    assert!(s.plugin_cases(d.id, &a.digest).await.unwrap().is_empty());
    assert!(
        s.put_plugin_cases(d.id, &cases).await.is_err(),
        "not daqing's plugin"
    );

    let entry = |price: &str| ChainEntryDef {
        plugin: a.digest.clone(),
        name: a.name.clone(),
        version: a.version.clone(),
        params: serde_json::json!({ "price": price }),
    };
    let from = NaiveDate::from_ymd_opt(2025, 11, 1).unwrap();
    let v1 = s
        .put_chain_version(c.id, from, &[entry("1")])
        .await
        .unwrap();
    let v2 = s
        .put_chain_version(c.id, from, &[entry("2")])
        .await
        .unwrap();
    assert_ne!(v1.id, v2.id);
    let back = s.rollback_chain(c.id, from).await.unwrap().unwrap();
    assert_eq!(back.id, v1.id);
    assert_eq!(s.chain_versions(c.id).await.unwrap()[0].id, v1.id);
    assert!(
        s.rollback_chain(c.id, from).await.unwrap().is_none(),
        "nothing before v1"
    );
    assert!(s.chain_versions(c.id).await.unwrap().is_empty());
    assert!(matches!(
        s.rollback_chain(c.id, from).await,
        Err(StoreError::NotFound(_))
    ));

    assert!(s.run_request(c.id, "k1").await.unwrap().is_none());
    s.put_schedule(c.id, Some("02:30")).await.unwrap();
    s.put_schedule(c.id, Some("03:00")).await.unwrap();
    s.put_schedule(d.id, Some("01:00")).await.unwrap();
    s.put_schedule(d.id, None).await.unwrap();
    assert_eq!(
        s.schedules().await.unwrap(),
        vec![(c.id, "03:00".to_string())]
    );
}
both!(api_records);
