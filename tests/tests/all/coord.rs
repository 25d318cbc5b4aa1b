//! The coordination and cache contracts, on Redis (a real server, a key prefix of the test's
//! own) and in the process, and the store's claims with leases and fencing tokens on both
//! databases.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use heatbill_runtime::cache::memory::MemoryCache;
use heatbill_runtime::cache::redis::RedisCache;
use heatbill_runtime::cache::{Cache, Cached};
use heatbill_runtime::coord::memory::MemoryCoord;
use heatbill_runtime::coord::redis::{Redis, RedisCoord};
use heatbill_runtime::coord::{Coord, Lock};
use heatbill_runtime::model::*;
use heatbill_runtime::settings::RedisSettings;
use heatbill_runtime::store::StoreError;
use rust_decimal::Decimal;

use crate::support::db::TestDb;

/// The tests' Redis (`HEATBILL_TEST_REDIS`, default the local server).
pub fn redis_url() -> String {
    std::env::var("HEATBILL_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis connection under a key prefix no other test uses. A server that cannot be reached
/// fails the test with how to start it.
pub async fn redis() -> Redis {
    static N: AtomicU32 = AtomicU32::new(0);
    let settings = RedisSettings {
        url: Some(redis_url()),
        prefix: format!(
            "heatbill-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ),
        ..Default::default()
    };
    Redis::connect(&settings, &redis_url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn coords() -> Vec<Arc<dyn Coord>> {
    vec![
        Arc::new(MemoryCoord::new()),
        Arc::new(RedisCoord::new(redis().await)),
    ]
}

async fn caches() -> Vec<Arc<dyn Cache>> {
    vec![
        Arc::new(MemoryCache::new(64 << 20, Duration::from_secs(60))),
        Arc::new(RedisCache::new(redis().await)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_exclusive_and_released_only_by_their_holder() {
    for coord in coords().await {
        let b = coord.backend();
        let ttl = Duration::from_secs(30);
        let held = coord
            .try_lock("run:1:2026-01-15", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(
            coord
                .try_lock("run:1:2026-01-15", ttl)
                .await
                .unwrap()
                .is_none(),
            "{b}"
        );
        assert!(
            coord
                .try_lock("run:1:2026-01-16", ttl)
                .await
                .unwrap()
                .is_some(),
            "{b}"
        );
        let stranger = heatbill_runtime::coord::LockToken::random();
        assert!(
            !coord.unlock("run:1:2026-01-15", &stranger).await.unwrap(),
            "{b}"
        );
        assert!(
            !coord
                .extend("run:1:2026-01-15", &stranger, ttl)
                .await
                .unwrap(),
            "{b}"
        );
        assert!(
            coord.extend("run:1:2026-01-15", &held, ttl).await.unwrap(),
            "{b}"
        );
        assert!(
            coord.unlock("run:1:2026-01-15", &held).await.unwrap(),
            "{b}"
        );
        assert!(
            !coord.unlock("run:1:2026-01-15", &held).await.unwrap(),
            "{b}: twice"
        );
        // An expired lock is free, and its old holder cannot release the new holder's.
        let short = coord
            .try_lock("lease", Duration::from_millis(50))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        let next = coord.try_lock("lease", ttl).await.unwrap();
        assert!(next.is_some(), "{b}: an expired lock is free");
        assert!(!coord.unlock("lease", &short).await.unwrap(), "{b}");
        assert!(coord.try_lock("lease", ttl).await.unwrap().is_none(), "{b}");
        // Lock::acquire waits for a holder that releases.
        let first = Lock::acquire(&coord, "wait", ttl, Duration::ZERO)
            .await
            .unwrap();
        let c2 = coord.clone();
        let waiter = tokio::spawn(async move {
            Lock::acquire(&c2, "wait", ttl, Duration::from_secs(10))
                .await
                .is_some()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.release().await;
        assert!(waiter.await.unwrap(), "{b}: the waiter got the lock");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_counts_add_up() {
    for coord in coords().await {
        let b = coord.backend();
        assert_eq!(coord.progress(7).await.unwrap(), None, "{b}");
        let c = ShardCounts {
            customers: 10,
            written: 7,
            revised: 1,
            unchanged: 1,
            parked: 1,
        };
        coord.add_progress(7, &c).await.unwrap();
        coord.add_progress(7, &c).await.unwrap();
        let p = coord.progress(7).await.unwrap().unwrap();
        assert_eq!((p.customers, p.written, p.parked), (20, 14, 2), "{b}");
        coord.clear_progress(7).await.unwrap();
        assert_eq!(coord.progress(7).await.unwrap(), None, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_entries_rankings_and_single_flight() {
    for cache in caches().await {
        let b = cache.backend();
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.get("k").await.unwrap(), None, "{b}");
        cache.put("k", b"\x00bytes\xff", ttl).await.unwrap();
        assert_eq!(
            cache.get("k").await.unwrap().unwrap(),
            b"\x00bytes\xff",
            "{b}"
        );

        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let date = "2026-01-15".parse().unwrap();
        assert!(cache.ranking(1, 3).await.unwrap().is_none(), "{b}");
        let arrears = vec![
            ("C1".to_string(), d("12.50")),
            ("C2".to_string(), d("1149.60")),
            ("C3".to_string(), d("0")),
            ("C4".to_string(), d("300.01")),
        ];
        cache.put_ranking(1, date, &arrears).await.unwrap();
        let r = cache.ranking(1, 2).await.unwrap().unwrap();
        assert_eq!(r.date, date);
        assert_eq!(
            r.top,
            [
                ("C2".to_string(), d("1149.60")),
                ("C4".to_string(), d("300.01"))
            ],
            "{b}"
        );
        let all = cache.ranking(1, 10).await.unwrap().unwrap();
        assert_eq!(
            all.top.len(),
            3,
            "{b}: a customer owing nothing is not ranked"
        );
        assert_eq!(all.top[2].1.to_string(), "12.50", "{b}: exact to the fen");
        cache.put_ranking(1, date, &[]).await.unwrap();
        assert!(
            cache.ranking(1, 10).await.unwrap().unwrap().top.is_empty(),
            "{b}"
        );

        // Twenty tasks ask for one missing key at once: one load.
        let cached = Arc::new(Cached::new(cache.clone(), ttl));
        let loads = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cached, loads) = (cached.clone(), loads.clone());
                tokio::spawn(async move {
                    cached
                        .get_or_load("shard", move || async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, String>(b"packed".to_vec())
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().as_slice(), b"packed");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "{b}: single flight");
        let again = cached
            .get_or_load("shard", || async {
                Err::<Vec<u8>, _>("not called".to_string())
            })
            .await
            .unwrap();
        assert_eq!(again.as_slice(), b"packed");
        let s = cached.stats();
        assert_eq!((s.hits, s.errors), (1, 0), "{b}");
        assert!(s.misses >= 1, "{b}");
    }
}

/// Claims: each shard to one claimer, tokens always increasing, a lapsed lease taken over with
/// a newer token, and the older token's write refused.
async fn claims_leases_and_fencing(db: TestDb) {
    let s = db.store.as_ref();
    let c = s.put_company(&crate::store::spec("harbin")).await.unwrap();
    crate::import::import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area\nA,residential,50\nB,residential,50\nC,residential,50\n",
    )
    .await;
    let a = heatbill_runtime::model::PluginRecord {
        digest: "d1".into(),
        name: "p".into(),
        version: "1".into(),
        kind: "tariff".into(),
        contract_version: "0.1.0".into(),
        info: serde_json::json!({}),
        component: vec![1],
    };
    s.put_plugin(&a).await.unwrap();
    let v = s
        .put_chain_version(
            c.id,
            "2025-10-01".parse().unwrap(),
            &[ChainEntryDef {
                plugin: "d1".into(),
                name: "p".into(),
                version: "1".into(),
                params: serde_json::json!({}),
            }],
        )
        .await
        .unwrap();
    let date = "2025-10-20".parse().unwrap();
    s.ensure_partitions(date, date).await.unwrap();
    let run = s.open_run(c.id, date, v.id, 1, "s").await.unwrap().run;
    let long = Duration::from_secs(60);
    let first = s.claim_shard(run.id, "w1", long).await.unwrap().unwrap();
    let second = s.claim_shard(run.id, "w2", long).await.unwrap().unwrap();
    let third = s
        .claim_shard(run.id, "w1", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        [
            first.shard.shard_no,
            second.shard.shard_no,
            third.shard.shard_no
        ],
        [0, 1, 2]
    );
    assert!(first.token < second.token && second.token < third.token);
    assert!(
        s.claim_shard(run.id, "w3", long).await.unwrap().is_none(),
        "all held"
    );
    // The third claim's lease lapses: another worker takes the shard with a newer token.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let taken = s.claim_shard(run.id, "w3", long).await.unwrap().unwrap();
    assert_eq!(taken.shard.shard_no, 2);
    assert!(taken.token > third.token);
    assert!(!s.renew_lease(run.id, 2, third.token, long).await.unwrap());
    assert!(s.renew_lease(run.id, 2, taken.token, long).await.unwrap());
    let write = |token: i64| ShardWrite {
        run_id: run.id,
        shard_no: 2,
        token,
        lease: Duration::from_secs(30),
        company_id: c.id,
        date,
        chain_version_id: v.id,
        rows: vec![],
        parked: vec![],
        counts: ShardCounts::default(),
        totals: Default::default(),
        stop_in_copy: false,
    };
    // The paused holder's late write is refused by the database, whatever Redis says.
    match s.write_shard(&write(third.token)).await {
        Err(StoreError::ClaimLost {
            done_with_this_token,
            why,
            ..
        }) => {
            assert!(!done_with_this_token);
            assert!(why.contains("another worker claimed it"), "{why}");
        }
        r => panic!("a stale token wrote: {r:?}"),
    }
    s.write_shard(&write(taken.token)).await.unwrap();
    // A retried write whose COMMIT had gone through finds its own commit.
    match s.write_shard(&write(taken.token)).await {
        Err(StoreError::ClaimLost {
            done_with_this_token: true,
            ..
        }) => {}
        r => panic!("expected the writer's own commit, got {r:?}"),
    }
    assert!(
        s.renew_lease(run.id, 2, taken.token, long).await.unwrap(),
        "a shard its own token has just written is still its claim's (no warning of a lost \
         claim for it)"
    );
    assert!(
        !s.renew_lease(run.id, 2, third.token, long).await.unwrap(),
        "done by another token"
    );
    // Shard 1 (w2's) held past its lapsed lease: listed as stalled; no writer session holds it
    // (nothing to end), and SQLite, one process, has none to list.
    assert!(
        s.end_stalled_writers(run.id, long)
            .await
            .unwrap()
            .is_empty()
    );
    s.renew_lease(run.id, 1, second.token, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stalled = s
        .end_stalled_writers(run.id, Duration::from_millis(10))
        .await
        .unwrap();
    match s.backend() {
        heatbill_runtime::store::Backend::Postgres => {
            assert_eq!(stalled.len(), 1, "{stalled:?}");
            assert_eq!(stalled[0].shard_no, 1);
            assert_eq!(stalled[0].claimed_by.as_deref(), Some("w2"));
            assert!(stalled[0].session.is_none() && !stalled[0].ended);
        }
        heatbill_runtime::store::Backend::Sqlite => assert!(stalled.is_empty()),
    }
    let running = s.running_runs().await.unwrap();
    assert_eq!(running.iter().map(|r| r.id).collect::<Vec<_>>(), [run.id]);
}
both!(claims_leases_and_fencing);
