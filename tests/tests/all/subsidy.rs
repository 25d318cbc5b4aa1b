//! The government's share of subsidies on real databases (`both!`): four nights of a Harbin
//! company with two low-income households across a month's end, the settlement list and the
//! receivable checked against the stored bills, and transfers recorded, repeated, refused and
//! undone.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use heatbill_runtime::model::ImportKind;
use heatbill_runtime::store::StoreError;
use heatbill_runtime::subsidy::{NewTransfer, TransferRecorded};
use rust_decimal::Decimal;

use crate::import::import_ok;
use crate::support::db::TestDb;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn transfer(reference: &str, on: &str, amount: &str, period: Option<(&str, &str)>) -> NewTransfer {
    NewTransfer {
        reference: reference.into(),
        received_on: d(on),
        amount: dec(amount),
        period_from: period.map(|p| d(p.0)),
        period_to: period.map(|p| d(p.1)),
        undoes: None,
        note: Some("民政局 补贴拨款".into()),
        recorded_by: "tests".into(),
        source: "cli".into(),
    }
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, says: &str) {
    match r {
        Err(StoreError::Conflict(m)) => assert!(m.contains(says), "{m:?} does not say {says:?}"),
        other => panic!("expected a conflict saying {says:?}, got {other:?}"),
    }
}

async fn government_share(db: TestDb) {
    let s = db.store.as_ref();
    let text = format!(
        "slug = \"gov\"\nname = \"Harbin\"\ntime_zone = \"Asia/Harbin\"\n\
         [[season]]\nstart = \"2025-10-20\"\nend = \"2026-04-20\"\n\
         [[chain]]\neffective_from = \"2025-10-01\"\n{}",
        crate::runtime::HARBIN_CHAIN
    );
    let c = crate::runtime::apply(&db, &text).await;
    // W: 60 m², the government covers 45 of them (W5: 9.42 of 12.56 a day); X: 40 m², all of
    // it; N pays its own.
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,status,low_income,building_area,usable_area\n\
         W,residential,active,true,75,60.00\n\
         X,residential,active,true,50,40.00\n\
         N,residential,active,false,75,60.00\n",
    )
    .await;
    import_ok(
        &db,
        &c,
        ImportKind::Profiles,
        "customer_id,valid_from,account_no,name,community,building,unit,room\n\
         W,2025-10-01,HB-0001,王小明,松花江小区,3,2,301\n\
         X,2025-10-01,HB-0002,李娟,松花江小区,3,1,102\n",
    )
    .await;
    let days = ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"];
    for day in days {
        crate::runtime::run(&db, "gov", day).await;
    }
    // The government's share of each stored bill, read back one by one.
    let mut share: BTreeMap<(&str, &str), Decimal> = BTreeMap::new();
    for customer in ["W", "X", "N"] {
        for day in days {
            let b = s.bill(c.id, customer, d(day)).await.unwrap().unwrap();
            share.insert((customer, day), b.row.government_total);
        }
    }
    assert_eq!(share[&("W", "2026-01-30")], dec("9.42"), "W5 of the domain");
    assert!(
        share
            .iter()
            .filter(|(k, _)| k.0 == "N")
            .all(|(_, v)| v.is_zero())
    );
    let sum = |customer: &str, month: &str| -> Decimal {
        share
            .iter()
            .filter(|(k, _)| (customer.is_empty() || k.0 == customer) && k.1.starts_with(month))
            .map(|(_, v)| *v)
            .sum()
    };

    // The settlement list of the four days: W and X, not N, with their profiles.
    let list = s.settlement(c.id, d(days[0]), d(days[3])).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|l| l.customer_id.as_str())
            .collect::<Vec<_>>(),
        ["W", "X"]
    );
    for l in &list {
        assert_eq!(l.days, 4);
        assert_eq!(l.first_day, d(days[0]));
        assert_eq!(l.last_day, d(days[3]));
        assert_eq!(l.amount, sum(&l.customer_id, "2026"));
        assert_eq!(l.community.as_deref(), Some("松花江小区"));
    }
    assert_eq!(list[0].account_no.as_deref(), Some("HB-0001"));
    assert_eq!(list[0].name.as_deref(), Some("王小明"));
    assert_eq!(list[0].room.as_deref(), Some("301"));
    // February alone: two days each.
    let feb = s
        .settlement(c.id, d("2026-02-01"), d("2026-02-28"))
        .await
        .unwrap();
    assert_eq!(feb.iter().map(|l| l.days).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(
        feb.iter().map(|l| l.amount).sum::<Decimal>(),
        sum("", "2026-02")
    );
    // A period without bills has an empty list.
    assert!(
        s.settlement(c.id, d("2026-03-01"), d("2026-03-31"))
            .await
            .unwrap()
            .is_empty()
    );

    // Nothing received yet: everything billed is outstanding, by month.
    let (jan, feb) = (sum("", "2026-01"), sum("", "2026-02"));
    let r = s
        .government_receivable(c.id, d("2026-02-02"))
        .await
        .unwrap();
    assert_eq!(r.billed, jan + feb);
    assert_eq!(r.received, Decimal::ZERO);
    assert_eq!(r.outstanding, jan + feb);
    let months: Vec<(&str, Decimal, Decimal)> = r
        .months
        .iter()
        .map(|m| (m.month.as_str(), m.billed, m.outstanding))
        .collect();
    assert_eq!(months, [("2026-01", jan, jan), ("2026-02", feb, feb)]);
    // As of January's last day, February is not billed yet.
    let r = s
        .government_receivable(c.id, d("2026-01-31"))
        .await
        .unwrap();
    assert_eq!(r.billed, jan);

    // January's transfer, ten yuan more than January's list: the rest settles February.
    let over = jan + dec("10.00");
    let t1 = s
        .record_transfer(
            c.id,
            &transfer(
                "GOV-2026-01",
                "2026-02-02",
                &over.to_string(),
                Some(("2026-01-01", "2026-01-31")),
            ),
        )
        .await
        .unwrap();
    let TransferRecorded::New(t1) = t1 else {
        panic!("new: {t1:?}")
    };
    let r = s
        .government_receivable(c.id, d("2026-02-02"))
        .await
        .unwrap();
    assert_eq!(r.received, over);
    assert_eq!(r.outstanding, feb - dec("10.00"));
    assert_eq!(r.months[0].outstanding, Decimal::ZERO);
    assert_eq!(r.months[1].outstanding, feb - dec("10.00"));
    // Before the transfer's date, it does not count.
    let r = s
        .government_receivable(c.id, d("2026-02-01"))
        .await
        .unwrap();
    assert_eq!(r.received, Decimal::ZERO);

    // The same transfer again is one transfer; the same reference otherwise is refused.
    let again = s
        .record_transfer(
            c.id,
            &transfer(
                "GOV-2026-01",
                "2026-02-02",
                &over.to_string(),
                Some(("2026-01-01", "2026-01-31")),
            ),
        )
        .await
        .unwrap();
    assert_eq!(again, TransferRecorded::Again(t1.clone()));
    conflict(
        s.record_transfer(c.id, &transfer("GOV-2026-01", "2026-02-02", "1.00", None))
            .await,
        "recorded already",
    );
    // A negative transfer must name the one it undoes, and take back at most what is left.
    conflict(
        s.record_transfer(c.id, &transfer("GOV-BACK", "2026-02-02", "-10.00", None))
            .await,
        "undoes",
    );
    let mut back = transfer("GOV-BACK", "2026-02-02", "-10.00", None);
    back.undoes = Some(t1.id + 1000);
    assert!(matches!(
        s.record_transfer(c.id, &back).await,
        Err(StoreError::NotFound(_))
    ));
    back.undoes = Some(t1.id);
    back.amount = -over - dec("0.01");
    conflict(s.record_transfer(c.id, &back).await, "left");
    back.amount = dec("-10.00");
    let TransferRecorded::New(b) = s.record_transfer(c.id, &back).await.unwrap() else {
        panic!("new")
    };
    assert_eq!(b.undoes, Some(t1.id));
    let r = s
        .government_receivable(c.id, d("2026-02-02"))
        .await
        .unwrap();
    assert_eq!(r.received, jan);
    assert_eq!(r.outstanding, feb);
    assert_eq!(r.paid_ahead, Decimal::ZERO);
    // What is left of the transfer is what may still be taken back.
    let mut more = transfer("GOV-BACK-2", "2026-02-02", "-0.01", None);
    more.amount = -jan - dec("0.01");
    more.undoes = Some(t1.id);
    conflict(s.record_transfer(c.id, &more).await, "left");

    // A transfer for more than everything billed is paid ahead.
    s.record_transfer(
        c.id,
        &transfer(
            "GOV-2026-02",
            "2026-02-02",
            &(feb + dec("5.00")).to_string(),
            None,
        ),
    )
    .await
    .unwrap();
    let r = s
        .government_receivable(c.id, d("2026-02-02"))
        .await
        .unwrap();
    assert_eq!(r.outstanding, Decimal::ZERO);
    assert_eq!(r.paid_ahead, dec("5.00"));
    let list = s.transfers(c.id, d("2026-02-02")).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|t| t.reference.as_str())
            .collect::<Vec<_>>(),
        ["GOV-2026-01", "GOV-BACK", "GOV-2026-02"]
    );
    assert_eq!(list[0].note.as_deref(), Some("民政局 补贴拨款"));
    assert!(s.transfers(c.id, d("2026-02-01")).await.unwrap().is_empty());
    // Another company sees none of it.
    let other = crate::runtime::apply(&db, &text.replace("\"gov\"", "\"gov2\"")).await;
    assert!(
        s.transfers(other.id, d("2026-02-02"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.government_receivable(other.id, d("2026-02-02"))
            .await
            .unwrap()
            .billed,
        Decimal::ZERO
    );
}
both!(government_share);
