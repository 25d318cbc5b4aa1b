//! The customer directory on real databases (`both!`): profiles imported and recorded as
//! append-only, effective-dated revisions with who and why; account numbers that name one
//! customer; searches by account number, name, phone suffix and address over each customer's
//! newest profile; personal data kept out of row errors; and nothing of it touching the data
//! version or the stale dates the bills depend on.

use chrono::NaiveDate;
use heatbill_runtime::directory::{NewProfile, Profile, ProfileRecorded, Search};
use heatbill_runtime::import::ImportOutcome;
use heatbill_runtime::model::*;
use heatbill_runtime::store::StoreError;

use crate::import::{import_csv, import_ok};
use crate::support::db::TestDb;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn search(f: impl FnOnce(&mut Search)) -> Search {
    let mut s = Search {
        limit: 50,
        ..Search::default()
    };
    f(&mut s);
    s
}

fn ids(v: &[heatbill_runtime::directory::ProfileVersion]) -> Vec<&str> {
    v.iter().map(|p| p.customer_id.as_str()).collect()
}

async fn directory_contract(db: TestDb) {
    let s = db.store.as_ref();
    let c = s.put_company(&crate::store::spec("dir")).await.unwrap();
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area\nA,residential,50\nB,residential,60\nC,residential,70\n\
         D,residential,80\n",
    )
    .await;
    let before = s.company("dir").await.unwrap();
    let stale_before = s.stale_dates(c.id).await.unwrap().from;

    // An import: every field optional but the customer; phones normalized.
    let file = "customer_id,valid_from,account_no,name,phone,community,building,unit,room,reason\n\
        A,,HB-0001,张三,138 1234 5678,幸福小区,3,2,501,\n\
        B,,HB-0002,张三丰,139-0000-5678,幸福小区,3,2,502,moved in\n\
        C,,HB-0003,李四,13700001111,幸福小区二期,1,1,101,\n\
        D,,,王五,,,,,,\n";
    let counts = import_ok(&db, &c, ImportKind::Profiles, file).await;
    assert_eq!(
        (counts.inserted, counts.updated, counts.unchanged),
        (4, 0, 0)
    );
    let again = import_ok(&db, &c, ImportKind::Profiles, file).await;
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 4),
        "a re-upload records nothing"
    );
    let after = s.company("dir").await.unwrap();
    assert_eq!(
        (after.data_version, s.stale_dates(c.id).await.unwrap().from),
        (before.data_version, stale_before),
        "bills do not depend on the directory"
    );
    let a = s.profile_history(c.id, "A").await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].profile.phone.as_deref(), Some("13812345678"));
    assert_eq!(a[0].reason, "imported from test.csv");
    assert_eq!(
        (a[0].recorded_by.as_str(), a[0].source.as_str()),
        ("import", "import")
    );
    assert_eq!(
        s.profile_history(c.id, "B").await.unwrap()[0].reason,
        "moved in"
    );

    // Searches, each over an index, each customer's newest profile.
    let cid = c.id;
    let found = |f: fn(&mut Search)| {
        let q = search(f);
        async move { s.search_customers(cid, &q).await.unwrap() }
    };
    assert_eq!(
        ids(&found(|q| q.account_no = Some("HB-0002".into())).await),
        ["B"]
    );
    assert_eq!(
        ids(&found(|q| q.name = Some("张".into())).await),
        ["A", "B"]
    );
    assert_eq!(ids(&found(|q| q.name = Some("张三丰".into())).await), ["B"]);
    assert_eq!(
        ids(&found(|q| q.phone_suffix = Some("5678".into())).await),
        ["B", "A"]
    );
    assert_eq!(
        ids(&found(|q| q.phone_suffix = Some("0000 5678".into())).await),
        ["B"]
    );
    assert_eq!(
        ids(&found(|q| q.community = Some("幸福小区".into())).await),
        ["A", "B"],
        "a community is matched whole (not 幸福小区二期)"
    );
    assert_eq!(
        ids(&found(|q| {
            q.community = Some("幸福小区".into());
            q.building = Some("3".into());
            q.unit = Some("2".into());
            q.room = Some("502".into());
        })
        .await),
        ["B"]
    );
    assert_eq!(
        ids(&found(|q| {
            q.name = Some("张".into());
            q.community = Some("幸福小区".into());
            q.room = None;
            q.phone_suffix = Some("5678".into());
        })
        .await),
        ["B", "A"]
    );
    assert!(found(|q| q.name = Some("赵".into())).await.is_empty());
    let mut limited = search(|q| q.name = Some("张".into()));
    limited.limit = 1;
    assert_eq!(
        ids(&s.search_customers(c.id, &limited).await.unwrap()),
        ["A"]
    );
    assert!(matches!(
        s.search_customers(c.id, &search(|_| ())).await,
        Err(StoreError::Conflict(_))
    ));

    // A correction over the API or the CLI: a new revision with who and why; the old stays.
    let set = |customer: &str, from: &str, p: Profile, reason: &str| NewProfile {
        customer_id: customer.into(),
        valid_from: d(from),
        profile: p,
        reason: reason.into(),
        recorded_by: "token 7".into(),
        source: "api".into(),
    };
    let a0 = a[0].profile.clone();
    let moved = Profile {
        phone: Some("13800009999".into()),
        ..a0.clone()
    };
    let r = s
        .record_profile(c.id, &set("A", "2026-01-10", moved.clone(), "new phone"))
        .await
        .unwrap();
    let ProfileRecorded::New(v) = r else {
        panic!("a new revision: {r:?}")
    };
    assert_eq!(
        (v.recorded_by.as_str(), v.source.as_str(), v.reason.as_str()),
        ("token 7", "api", "new phone")
    );
    let same = s
        .record_profile(c.id, &set("A", "2026-01-10", moved.clone(), "again"))
        .await
        .unwrap();
    assert!(
        matches!(same, ProfileRecorded::Same(ref x) if x.id == v.id),
        "{same:?}"
    );
    assert_eq!(s.profile_history(c.id, "A").await.unwrap().len(), 2);
    // In force by date: the import's before 2026-01-10, the new one from it.
    let on = |date: &str| {
        let date = d(date);
        async move {
            s.profile_on(cid, "A", date)
                .await
                .unwrap()
                .unwrap()
                .profile
                .phone
                .unwrap()
        }
    };
    assert_eq!(on("2026-01-09").await, "13812345678");
    assert_eq!(on("2026-01-10").await, "13800009999");
    // Searches see the newest only: the old number no longer finds A.
    assert_eq!(
        ids(&found(|q| q.phone_suffix = Some("5678".into())).await),
        ["B"]
    );
    assert_eq!(
        ids(&found(|q| q.phone_suffix = Some("9999".into())).await),
        ["A"]
    );
    // A correction of the same date: a later revision of it wins, the first is kept.
    let fixed = Profile {
        phone: Some("13800009998".into()),
        ..a0.clone()
    };
    s.record_profile(c.id, &set("A", "2026-01-10", fixed, "typo in the phone"))
        .await
        .unwrap();
    assert_eq!(on("2026-01-10").await, "13800009998");
    assert_eq!(s.profile_history(c.id, "A").await.unwrap().len(), 3);

    // An account number names one customer.
    let taken = s
        .record_profile(
            c.id,
            &set(
                "D",
                "2026-01-10",
                Profile {
                    account_no: Some("HB-0001".into()),
                    ..Profile::default()
                },
                "wrong",
            ),
        )
        .await;
    match taken {
        Err(StoreError::Conflict(m)) => assert!(m.contains("belongs to customer A"), "{m}"),
        other => panic!("an account number held by A: {other:?}"),
    }
    let unknown = s
        .record_profile(c.id, &set("Z", "2026-01-10", a0.clone(), "who?"))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let bad = s
        .record_profile(
            c.id,
            &set(
                "D",
                "2026-01-10",
                Profile {
                    room: Some("1".into()),
                    ..Profile::default()
                },
                "x",
            ),
        )
        .await;
    assert!(
        matches!(bad, Err(StoreError::Conflict(ref m)) if m.starts_with("room")),
        "{bad:?}"
    );

    // A bad file: every bad row named, personal data never quoted, nothing imported.
    let bad_file = "customer_id,account_no,name,phone,community,room\n\
        A,HB-0009,赵\u{7}六,,,\n\
        B,HB-0010,,12ab,,\n\
        C,HB-0002,,,,\n\
        Z,HB-0011,,,,\n\
        D,,,,,301\n\
        C,HB-0013,,,,\n";
    match import_csv(&db, &c, ImportKind::Profiles, bad_file).await {
        ImportOutcome::Refused { errors, total } => {
            let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
            assert_eq!(
                got,
                [
                    (2, "name"),
                    (3, "phone"),
                    (4, "account_no"),
                    (5, "customer_id"),
                    (6, "room"),
                    (7, ""),
                ],
                "{errors:?}"
            );
            assert_eq!(total, 6);
            for e in &errors[..2] {
                assert!(
                    e.value.is_empty() && !e.problem.contains('赵') && !e.problem.contains("12ab"),
                    "personal data quoted: {e:?}"
                );
            }
            assert!(
                errors[2].problem.contains("belongs to customer B"),
                "{:?}",
                errors[2]
            );
        }
        other => panic!("a bad profiles file imported: {other:?}"),
    }
    assert_eq!(
        s.profile_history(c.id, "D").await.unwrap().len(),
        1,
        "nothing imported"
    );
    // Two customers with one account number in one file.
    match import_csv(
        &db,
        &c,
        ImportKind::Profiles,
        "customer_id,account_no\nA,HB-0100\nB,HB-0100\n",
    )
    .await
    {
        ImportOutcome::Refused { errors, .. } => {
            assert_eq!(errors.len(), 1);
            assert!(errors[0].problem.contains("as row 2"), "{errors:?}");
        }
        other => panic!("one number for two customers imported: {other:?}"),
    }
}

both!(directory_contract);
