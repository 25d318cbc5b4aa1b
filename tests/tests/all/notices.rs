//! What is due when, through the real run on both backends: season and month notices, arrears
//! that are what is overdue, the late fee on them, the day boundary, and adjusting notices that
//! keep a period's notices equal to its bills. The figures are the worked examples of
//! docs/domain.md ("What is due when"), computed by hand.

use chrono::NaiveDate;
use heatbill_runtime::ledger::Channel;
use heatbill_runtime::model::*;
use heatbill_runtime::notices::{Notice, PeriodKind};
use heatbill_runtime::store::notices::NoticeFilter;
use rust_decimal::Decimal;

use crate::import::import_ok;
use crate::ledger::payment;
use crate::support::db::TestDb;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn days(from: &str, to: &str) -> Vec<NaiveDate> {
    d(from).iter_days().take_while(|x| *x <= d(to)).collect()
}

async fn notices(db: &TestDb, c: &Company, customer: &str) -> Vec<Notice> {
    db.store
        .notices(
            c.id,
            &NoticeFilter {
                customer_id: Some(customer.into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// (late fee, arrears, arrears since) of a customer's bill of a date.
async fn fee(
    db: &TestDb,
    c: &Company,
    customer: &str,
    day: NaiveDate,
) -> (Decimal, Decimal, Option<NaiveDate>) {
    let b = db.store.bill(c.id, customer, day).await.unwrap().unwrap();
    assert_eq!(
        b.row.status,
        BillStatus::Billed,
        "{customer} {day}: {:?}",
        b.row.error
    );
    let fee = b
        .lines
        .iter()
        .filter(|l| l.code == "late-fee")
        .map(|l| l.amount)
        .sum();
    (fee, b.row.arrears, b.row.arrears_since)
}

/// Harbin: a season notice of 2,299.20 due 2025-12-31, a late fee of 1‰ a day from 2026-01-01
/// on the unpaid amount of overdue notices. N pays nothing, P 1,000.00 on 12-15, F all on
/// 12-20; B1 pays all on the due date and B2 the day after (the day boundary, one each way).
async fn harbin_season_notice(db: TestDb) {
    let text = format!(
        "slug = \"harbin-notices\"\nname = \"Harbin\"\ntime_zone = \"Asia/Harbin\"\n\
         [policies.billing]\n\
         [[policies.billing.rules]]\nperiod = \"season\"\nissue = \"10-01\"\ndue = \"12-31\"\n\
         [[season]]\nstart = \"2025-10-20\"\nend = \"2026-04-20\"\n\
         [[chain]]\neffective_from = \"2025-10-01\"\n{}",
        crate::runtime::HARBIN_CHAIN
    );
    let c = crate::runtime::apply(&db, &text).await;
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area,usable_area\n\
         N,residential,75,60.00\nP,residential,75,60.00\nF,residential,75,60.00\n\
         B1,residential,75,60.00\nB2,residential,75,60.00\n",
    )
    .await;
    let s = db.store.as_ref();
    for (who, amount, on, txn) in [
        ("P", "1000.00", "2025-12-15", "W-P"),
        ("F", "2299.20", "2025-12-20", "W-F"),
        ("B1", "2299.20", "2025-12-31", "W-B1"),
        ("B2", "2299.20", "2026-01-01", "W-B2"),
    ] {
        s.record_entry(c.id, &payment(who, amount, Channel::Wechat, txn, on))
            .await
            .unwrap();
    }
    // heatbill starts billing the company on 2025-12-28: the season's notice (issued from
    // 10-01, due 12-31) is issued by that night's run.
    let nights = days("2025-12-28", "2026-01-03");
    for (i, day) in nights.iter().enumerate() {
        let r = crate::runtime::run(&db, &c.slug, &day.to_string()).await;
        if i == 0 {
            assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
            assert!(
                r.notices[0].contains("issued 5 projected"),
                "{:?}",
                r.notices
            );
        } else {
            assert!(r.notices.is_empty(), "{day}: {:?}", r.notices);
        }
    }
    for who in ["N", "P", "F", "B1", "B2"] {
        let ns = notices(&db, &c, who).await;
        assert_eq!(ns.len(), 1, "{who}: {ns:?}");
        let n = &ns[0];
        assert_eq!(
            (
                n.kind,
                n.period_start,
                n.period_end,
                n.issued_on,
                n.due_on,
                n.seq
            ),
            (
                PeriodKind::Season,
                d("2025-10-20"),
                d("2026-04-20"),
                d("2025-12-28"),
                d("2025-12-31"),
                0
            )
        );
        assert_eq!(n.amount, dec("2299.20"), "{who}: 60 m² × 38.32");
        assert!(n.projected);
        assert_eq!(n.lines.len(), 1, "{who}: {:?}", n.lines);
    }
    // Before the due date nothing is overdue, whatever was paid.
    for day in days("2025-12-28", "2025-12-31") {
        for who in ["N", "P", "F", "B1", "B2"] {
            assert_eq!(
                fee(&db, &c, who, day).await,
                (Decimal::ZERO, Decimal::ZERO, None),
                "{who} {day}"
            );
        }
    }
    for day in days("2026-01-01", "2026-01-03") {
        let jan1 = Some(d("2026-01-01"));
        // Nothing paid: 2,299.20 × 0.001 = 2.2992 → 2.30 a day.
        assert_eq!(
            fee(&db, &c, "N", day).await,
            (dec("2.30"), dec("2299.20"), jan1)
        );
        // 1,000.00 paid: 1,299.20 × 0.001 = 1.2992 → 1.30 a day.
        assert_eq!(
            fee(&db, &c, "P", day).await,
            (dec("1.30"), dec("1299.20"), jan1)
        );
        // Paid in full before the due date (F), or on it (B1: a payment dated D counts from
        // D + 1's bill, and the notice is late only from January 1st): never a late fee, though
        // the daily bills keep accruing.
        for who in ["F", "B1"] {
            assert_eq!(fee(&db, &c, who, day).await.0, Decimal::ZERO, "{who} {day}");
        }
        // Paid on January 1st: that day's bill is computed on the balance at its start.
        let b2 = fee(&db, &c, "B2", day).await;
        if day == d("2026-01-01") {
            assert_eq!(b2, (dec("2.30"), dec("2299.20"), jan1));
        } else {
            assert_eq!(b2, (Decimal::ZERO, Decimal::ZERO, None), "B2 {day}");
        }
    }
    // F's account: the daily bills accrue against what was paid ahead.
    let f = s.bill(c.id, "F", d("2026-01-03")).await.unwrap().unwrap();
    assert!(f.row.principal > Decimal::ZERO);
    assert_eq!(f.row.due_through, Some(dec("2299.20")));
}
both!(harbin_season_notice);

/// Beijing two-part: the basic part (80 m² × 12 = 960.00) on the season notice, the metered
/// part on monthly notices. November's 36.000 GJ × 44.45 = 1,600.20, issued 2025-12-01, due
/// 2025-12-15, paid 2025-12-10: no late fee on any day.
async fn beijing_two_part(db: TestDb) {
    let text = r#"
slug = "beijing-notices"
name = "Beijing"
time_zone = "Asia/Shanghai"
[policies.billing]
[[policies.billing.rules]]
codes = ["basic"]
period = "season"
issue = "11-01"
due = "03-15"
[[policies.billing.rules]]
codes = ["metered"]
period = "month"
issue_day = 1
due_days = 14
[[season]]
start = "2025-11-15"
end = "2026-03-15"
[[chain]]
effective_from = "2025-11-01"
[[chain.entry]]
plugin = "season"
params = { start = "2025-11-15", end = "2026-03-15" }
[[chain.entry]]
plugin = "metered-tariff"
params = { prices = { residential = "12", non-residential = "12" }, unit_prices = { residential = "44.45", non-residential = "44.45" } }
[[chain.entry]]
plugin = "late-fee"
params = { daily_rate = "0.001", due_date = "2025-11-01" }
"#;
    let c = crate::runtime::apply(&db, text).await;
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,metered,building_area\nM,residential,true,80\n",
    )
    .await;
    let mut readings = String::from("customer_id,date,heat_gj\n");
    for day in days("2025-11-25", "2025-11-30") {
        readings.push_str(&format!("M,{day},6.000\n"));
    }
    for day in days("2025-12-01", "2025-12-20") {
        readings.push_str(&format!("M,{day},1.000\n"));
    }
    import_ok(&db, &c, ImportKind::Readings, &readings).await;
    db.store
        .record_entry(
            c.id,
            &payment("M", "1600.20", Channel::Bank, "B-1", "2025-12-10"),
        )
        .await
        .unwrap();
    for day in days("2025-11-25", "2025-12-20") {
        crate::runtime::run(&db, &c.slug, &day.to_string()).await;
    }
    let ns = notices(&db, &c, "M").await;
    assert_eq!(ns.len(), 2, "{ns:?}");
    let season = ns.iter().find(|n| n.kind == PeriodKind::Season).unwrap();
    assert_eq!(
        (season.amount, season.due_on, season.lines[0].code.as_str()),
        (dec("960.00"), d("2026-03-15"), "basic")
    );
    let nov = ns.iter().find(|n| n.kind == PeriodKind::Month).unwrap();
    assert_eq!(
        (
            nov.amount,
            nov.issued_on,
            nov.due_on,
            nov.period_start,
            nov.projected
        ),
        (
            dec("1600.20"),
            d("2025-12-01"),
            d("2025-12-15"),
            d("2025-11-01"),
            false
        )
    );
    assert_eq!(nov.lines.len(), 1);
    assert_eq!(nov.lines[0].code, "metered");
    // November's metered lines add up to the notice.
    let mut metered = Decimal::ZERO;
    for day in days("2025-11-25", "2025-11-30") {
        let b = db.store.bill(c.id, "M", day).await.unwrap().unwrap();
        metered += b
            .lines
            .iter()
            .filter(|l| l.code == "metered")
            .map(|l| l.amount)
            .sum::<Decimal>();
    }
    assert_eq!(metered, dec("1600.20"));
    for day in days("2025-11-25", "2025-12-20") {
        let (fee, arrears, _) = fee(&db, &c, "M", day).await;
        assert_eq!((fee, arrears), (Decimal::ZERO, Decimal::ZERO), "{day}");
    }
    // What fell due by the end of 12-15: November's notice; the basic part is due in March.
    let b = db
        .store
        .bill(c.id, "M", d("2025-12-15"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.row.due_through, Some(dec("1600.20")));
}
both!(beijing_two_part);

/// A ten-day season whose notice is projected before it starts; a customer's area changes in
/// the season, and after the season ends its bills are added up: an adjusting notice for the
/// difference. A date billed again after that (a correction) is added up once more by the next
/// night. Every customer's notices add up exactly to their daily bills.
async fn adjusting_notices_keep_the_sums(db: TestDb) {
    let text = r#"
slug = "short-season"
name = "Short season"
time_zone = "Asia/Harbin"
[policies.billing]
adjust_due_days = 10
[[policies.billing.rules]]
period = "season"
issue = "10-25"
due = "11-05"
[[season]]
start = "2025-11-01"
end = "2025-11-10"
[[chain]]
effective_from = "2025-10-01"
[[chain.entry]]
plugin = "season"
params = { start = "2025-11-01", end = "2025-11-10" }
[[chain.entry]]
plugin = "area-tariff"
params = { area_basis = "usable", prices = { residential = "38.32", non-residential = "43.3" } }
"#;
    let c = crate::runtime::apply(&db, text).await;
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area,usable_area\nX,residential,75,60.00\nY,residential,90,80.00\n",
    )
    .await;
    let sum_bills = |customer: &'static str| {
        let db = &db;
        let c = &c;
        async move {
            let mut total = Decimal::ZERO;
            for day in days("2025-11-01", "2025-11-10") {
                let b = db.store.bill(c.id, customer, day).await.unwrap().unwrap();
                total += b
                    .lines
                    .iter()
                    .filter(|l| l.payer == "customer" && l.code != "late-fee")
                    .map(|l| l.amount)
                    .sum::<Decimal>();
            }
            total
        }
    };
    let asked = |customer: &'static str| {
        let db = &db;
        let c = &c;
        async move {
            notices(db, c, customer)
                .await
                .iter()
                .map(|n| n.amount)
                .sum::<Decimal>()
        }
    };
    for day in days("2025-10-25", "2025-11-05") {
        crate::runtime::run(&db, &c.slug, &day.to_string()).await;
    }
    assert_eq!(asked("X").await, dec("2299.20"));
    assert_eq!(asked("Y").await, dec("3065.60"), "80 × 38.32");
    // X's usable area is corrected from November 6th on.
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,valid_from,class,building_area,usable_area\nX,2025-11-06,residential,75,70.00\n",
    )
    .await;
    for day in days("2025-11-06", "2025-11-11") {
        let r = crate::runtime::run(&db, &c.slug, &day.to_string()).await;
        if day == d("2025-11-11") {
            assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
            assert!(r.notices[0].contains("1 adjusting"), "{:?}", r.notices);
        }
    }
    let x = notices(&db, &c, "X").await;
    assert_eq!(x.len(), 2, "{x:?}");
    assert_eq!(
        (x[1].seq, x[1].issued_on, x[1].due_on, x[1].projected),
        (1, d("2025-11-11"), d("2025-11-21"), false)
    );
    assert!(x[1].amount > Decimal::ZERO, "more area, more heat: {x:?}");
    assert_eq!(asked("X").await, sum_bills("X").await);
    assert_eq!(asked("Y").await, sum_bills("Y").await);
    assert_eq!(notices(&db, &c, "Y").await.len(), 1);
    // A correction after the settlement: Y's area was wrong from November 3rd. The dates are
    // billed again; the next night adds the season up again.
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,valid_from,class,building_area,usable_area\nY,2025-11-03,residential,90,75.00\n",
    )
    .await;
    for day in days("2025-11-03", "2025-11-12") {
        crate::runtime::run(&db, &c.slug, &day.to_string()).await;
    }
    let y = notices(&db, &c, "Y").await;
    assert_eq!(y.len(), 2, "{y:?}");
    assert!(y[1].amount < Decimal::ZERO, "less area: {y:?}");
    // Issued by the next new night, not by a date billed again.
    assert_eq!((y[1].seq, y[1].issued_on), (1, d("2025-11-12")));
    assert_eq!(asked("Y").await, sum_bills("Y").await);
    assert_eq!(asked("X").await, sum_bills("X").await);
    // Nothing more to issue: the next night issues nothing.
    let r = crate::runtime::run(&db, &c.slug, "2025-11-13").await;
    assert!(r.notices.is_empty(), "{:?}", r.notices);
}
both!(adjusting_notices_keep_the_sums);
