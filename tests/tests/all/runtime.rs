//! The whole runtime on real databases: company files applied, CSV files imported, days run,
//! bills read back. The worked examples W1–W7 of the domain go through it end to end, on
//! SQLite and on PostgreSQL.
//!
//! Long by design: one test module per area of the suite (this one: the runtime end to end).

use chrono::NaiveDate;
use heatbill_runtime::company::{self, CompanyFile};
use heatbill_runtime::model::*;
use heatbill_runtime::run::{self, RunError, RunReport};
use heatbill_runtime::settings::{RunSettings, Settings};
use rust_decimal::Decimal;

use crate::import::import_ok;
use crate::support::db::{self, Kind, TestDb};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Harbin's figures through every reference plugin but the metered tariff.
pub(crate) const HARBIN_CHAIN: &str = r#"
[[chain.entry]]
plugin = "season"
params = { start = "2025-10-20", end = "2026-04-20" }
[[chain.entry]]
plugin = "area-tariff"
params = { area_basis = "usable", prices = { residential = "38.32", non-residential = "43.3" } }
[[chain.entry]]
plugin = "suspension-fee"
params = { share = "0.30", area_basis = "usable", prices = { residential = "38.32", non-residential = "43.3" } }
[[chain.entry]]
plugin = "low-income-subsidy"
params = { share = "1.00", area_cap = "45", area_basis = "usable" }
[[chain.entry]]
plugin = "temperature-refund"
params = { bands = [{ from = "16", to = "18", share = "0.30" }] }
[[chain.entry]]
plugin = "late-fee"
params = { daily_rate = "0.001", due_date = "2026-01-01" }
"#;

fn harbin(slug: &str) -> String {
    format!(
        "slug = \"{slug}\"\nname = \"Harbin\"\ntime_zone = \"Asia/Harbin\"\n\
         [[season]]\nstart = \"2025-10-20\"\nend = \"2026-04-20\"\n\
         [[chain]]\neffective_from = \"2025-10-01\"\n{HARBIN_CHAIN}"
    )
}

const BEIJING: &str = r#"
slug = "beijing"
name = "Beijing"
time_zone = "Asia/Shanghai"
[[chain]]
effective_from = "2025-11-01"
[[chain.entry]]
plugin = "season"
params = { start = "2025-11-15", end = "2026-03-15" }
[[chain.entry]]
plugin = "area-tariff"
params = { prices = { residential = "24", non-residential = "45" } }
[[chain.entry]]
plugin = "metered-tariff"
params = { prices = { residential = "12", non-residential = "12" }, unit_prices = { residential = "44.45", non-residential = "44.45" } }
"#;

pub(crate) async fn apply(db: &TestDb, text: &str) -> Company {
    let file = CompanyFile::parse(text).unwrap();
    // Loading runs plugin code (describe): never on the async runtime's threads.
    let components = tokio::task::spawn_blocking(db::components).await.unwrap();
    company::apply(db.store.as_ref(), &file, components)
        .await
        .unwrap()
        .company
}

fn settings() -> Settings {
    Settings {
        run: RunSettings {
            shard_size: 3, // several shards even for a handful of customers
            workers: Some(2),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The run environment of a test's services and settings, on the shared engine.
fn env(services: &heatbill_runtime::services::Services, settings: &Settings) -> run::Env {
    run::Env::new(services.clone(), db::engine().clone(), settings.clone())
}

async fn try_run(db: &TestDb, slug: &str, date: &str) -> Result<RunReport, RunError> {
    run::run(&env(&db.services(), &settings()), slug, d(date), |_| {}).await
}

pub(crate) async fn run(db: &TestDb, slug: &str, date: &str) -> RunReport {
    try_run(db, slug, date)
        .await
        .unwrap_or_else(|e| panic!("run of {slug} {date}: {e}"))
}

/// A stored bill's lines as (code, payer, amount).
async fn lines(
    db: &TestDb,
    c: &Company,
    customer: &str,
    date: &str,
) -> Vec<(String, String, String)> {
    let b = db
        .store
        .bill(c.id, customer, d(date))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no bill for {customer} on {date}"));
    assert_eq!(
        b.row.status,
        BillStatus::Billed,
        "{customer} {date}: {:?}",
        b.row.error
    );
    b.lines
        .iter()
        .map(|l| (l.code.clone(), l.payer.clone(), l.amount.to_string()))
        .collect()
}

fn l(code: &str, payer: &str, amount: &str) -> (String, String, String) {
    (code.into(), payer.into(), amount.into())
}

/// W1, W4, W5, W7 (Harbin), W2 and W3 (Beijing) and W6 (arrears) through import → run → bills.
async fn worked_examples(db: TestDb) {
    let h = apply(&db, &harbin("harbin")).await;
    import_ok(
        &db,
        &h,
        ImportKind::Customers,
        "customer_id,class,status,low_income,building_area,usable_area\n\
         W1,residential,active,false,75,60.00\n\
         W4,residential,suspended,false,75,60\n\
         W5,residential,active,true,75,60.00\n\
         W7,residential,active,false,75,60.00\n",
    )
    .await;
    import_ok(
        &db,
        &h,
        ImportKind::Temperatures,
        "customer_id,date,celsius\nW7,2025-10-20,17.0\n",
    )
    .await;
    for date in ["2025-10-20", "2025-10-21", "2025-10-22"] {
        let r = run(&db, "harbin", date).await;
        assert_eq!(
            (r.counts.customers, r.counts.written, r.counts.parked),
            (4, 4, 0)
        );
    }
    // W1: 12.56, 12.57, 12.56 (cumulative rounding of 2299.20 over 183 days).
    for (date, amount) in [
        ("2025-10-20", "12.56"),
        ("2025-10-21", "12.57"),
        ("2025-10-22", "12.56"),
    ] {
        assert_eq!(
            lines(&db, &h, "W1", date).await,
            [l("heat", "customer", amount)]
        );
    }
    // W4: a suspended customer's base fee, 30 % of the season fee: 3.77 on day 1.
    assert_eq!(
        lines(&db, &h, "W4", "2025-10-20").await,
        [l("base-fee", "customer", "3.77")]
    );
    // W5: the government covers 45 of 60 m²: 9.42 of 12.56.
    assert_eq!(
        lines(&db, &h, "W5", "2025-10-20").await,
        [
            l("heat", "customer", "12.56"),
            l("subsidy", "customer", "-9.42"),
            l("subsidy", "government", "9.42")
        ]
    );
    let w5 = db
        .store
        .bill(h.id, "W5", d("2025-10-20"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (w5.row.customer_total, w5.row.government_total),
        (dec("3.14"), dec("9.42"))
    );
    // W7: 17.0 °C indoors, 30 % refunded: 8.79 to pay.
    assert_eq!(
        lines(&db, &h, "W7", "2025-10-20").await,
        [
            l("heat", "customer", "12.56"),
            l("refund", "customer", "-3.77")
        ]
    );
    let w7 = db
        .store
        .bill(h.id, "W7", d("2025-10-20"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w7.row.total, dec("8.79"));
    // The balance carries from day to day: W1 owes its first two days at the start of day 3.
    let w1 = db
        .store
        .bill(h.id, "W1", d("2025-10-22"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w1.row.arrears, dec("25.13"));
    assert_eq!(w1.row.arrears_since, Some(d("2025-10-21")));

    // W2 and W3: Beijing, by building area; a metered customer's two-part tariff.
    let b = apply(&db, BEIJING).await;
    import_ok(
        &db,
        &b,
        ImportKind::Customers,
        "customer_id,class,metered,building_area\nW2,residential,false,80\nW3,residential,true,80\n",
    )
    .await;
    import_ok(
        &db,
        &b,
        ImportKind::Readings,
        "customer_id,date,heat_gj\nW3,2025-11-15,1.20\n",
    )
    .await;
    run(&db, "beijing", "2025-11-15").await;
    assert_eq!(
        lines(&db, &b, "W2", "2025-11-15").await,
        [l("heat", "customer", "15.87")]
    );
    assert_eq!(
        lines(&db, &b, "W3", "2025-11-15").await,
        [
            l("basic", "customer", "7.93"),
            l("metered", "customer", "53.34")
        ]
    );
    // W3 without a reading on day 2 is parked with the plugin's error; W2 is billed.
    let r = run(&db, "beijing", "2025-11-16").await;
    assert_eq!((r.counts.written, r.counts.parked), (1, 1));
    assert_eq!(r.parked[0].customer_id, "W3");
    assert!(
        r.parked[0].message.contains("metered-tariff"),
        "{}",
        r.parked[0].message
    );
    assert_eq!(
        lines(&db, &b, "W2", "2025-11-16").await,
        [l("heat", "customer", "15.87")]
    );
    run(&db, "beijing", "2025-11-17").await;
    assert_eq!(
        lines(&db, &b, "W2", "2025-11-17").await,
        [l("heat", "customer", "15.86")]
    );

    // W6: arrears of 1149.60 at the start of 2026-01-01, 1‰ a day from January 1st: 1.15. The
    // next day the principal has grown by the day's heat (not by the late fee): 1162.16 → 1.16.
    let w6 = apply(&db, &harbin("harbin-w6")).await;
    import_ok(
        &db,
        &w6,
        ImportKind::Customers,
        "customer_id,class,building_area,usable_area\nW6,residential,75,60.00\n",
    )
    .await;
    import_ok(
        &db,
        &w6,
        ImportKind::Balances,
        "customer_id,as_of,arrears,arrears_since\nW6,2026-01-01,1149.60,2026-01-01\n",
    )
    .await;
    run(&db, "harbin-w6", "2026-01-01").await;
    assert_eq!(
        lines(&db, &w6, "W6", "2026-01-01").await,
        [
            l("heat", "customer", "12.56"),
            l("late-fee", "customer", "1.15")
        ]
    );
    run(&db, "harbin-w6", "2026-01-02").await;
    let day2 = db
        .store
        .bill(w6.id, "W6", d("2026-01-02"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day2.row.arrears, dec("1162.16"));
    assert_eq!(day2.row.arrears_since, Some(d("2026-01-01")));
    assert_eq!(day2.lines[1].amount, dec("1.16"));
    // A payment before the date lowers the arrears; the re-run revises the bill with the reason.
    import_ok(
        &db,
        &w6,
        ImportKind::Payments,
        "payment_id,customer_id,paid_on,amount\nP1,W6,2026-01-01,1000.00\n",
    )
    .await;
    let r = run(&db, "harbin-w6", "2026-01-02").await;
    assert_eq!((r.counts.revised, r.counts.unchanged), (1, 0));
    let day2 = db
        .store
        .bill(w6.id, "W6", d("2026-01-02"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day2.row.arrears, dec("162.16"));
    assert_eq!(day2.lines[1].amount, dec("0.16"));
    assert_eq!(
        day2.row.reason.as_deref(),
        Some("changed: balance (earlier bills or payments)")
    );
}
both!(worked_examples);

/// A customer's class changes on a date; a chain version takes effect mid-season.
async fn versions_by_effective_date(db: TestDb) {
    let text = format!(
        "{}\n[[chain]]\neffective_from = \"2025-10-22\"\n{}",
        harbin("harbin"),
        HARBIN_CHAIN.replace("\"38.32\"", "\"40.00\"")
    );
    let h = apply(&db, &text).await;
    import_ok(
        &db,
        &h,
        ImportKind::Customers,
        "customer_id,valid_from,class,building_area,usable_area\n\
         A,,residential,75,60.00\n\
         A,2025-10-21,non-residential,75,60.00\n\
         B,,residential,75,60.00\n",
    )
    .await;
    for date in ["2025-10-20", "2025-10-21", "2025-10-22"] {
        run(&db, "harbin", date).await;
    }
    let bill = |c: &'static str, date: &'static str| {
        let db = &db;
        let h = &h;
        async move { db.store.bill(h.id, c, d(date)).await.unwrap().unwrap() }
    };
    // A: residential on the 20th (38.32 × 60 = 2299.20 a season), non-residential from the
    // 21st (43.3 × 60 = 2598.00).
    let a20 = bill("A", "2025-10-20").await;
    assert_eq!(
        (a20.lines[0].unit_price, a20.lines[0].amount),
        (dec("38.32"), dec("12.56"))
    );
    let a21 = bill("A", "2025-10-21").await;
    assert_eq!(a21.lines[0].unit_price, dec("43.3"));
    assert_eq!(a21.lines[0].amount, dec("14.19")); // round(2598·2/183) − round(2598/183)
    // B: the residential price changes with the chain version of the 22nd (40.00 × 60 = 2400).
    let b21 = bill("B", "2025-10-21").await;
    let b22 = bill("B", "2025-10-22").await;
    assert_eq!(b21.lines[0].unit_price, dec("38.32"));
    assert_eq!(b22.lines[0].unit_price, dec("40.00"));
    assert_ne!(b21.chain_version_id, b22.chain_version_id);
    assert_eq!(b22.lines[0].amount, dec("13.11")); // round(2400·3/183) − round(2400·2/183)
}
both!(versions_by_effective_date);

/// A re-run with unchanged inputs writes nothing; after one customer's area is corrected, that
/// customer's bill alone gets version 2, and version 1 is kept with the reason.
async fn reruns_write_only_what_changed(db: TestDb) {
    let h = apply(&db, &harbin("harbin")).await;
    let customers: String = (0..10)
        .map(|i| format!("K{i},residential,75,60.00\n"))
        .collect();
    let header = "customer_id,class,building_area,usable_area\n";
    import_ok(
        &db,
        &h,
        ImportKind::Customers,
        &format!("{header}{customers}"),
    )
    .await;
    let first = run(&db, "harbin", "2025-10-20").await;
    assert_eq!(first.counts.written, 10);
    // Nothing changed since the first run: the second computes nothing at all.
    let again = run(&db, "harbin", "2025-10-20").await;
    assert_eq!(again.attempt, 2);
    assert_eq!(again.unchanged_since, Some(first.run_id));
    assert_eq!(
        (
            again.counts.written,
            again.counts.revised,
            again.counts.unchanged
        ),
        (0, 0, 10)
    );
    assert!(
        again.totals.is_empty(),
        "nothing written: {:?}",
        again.totals
    );
    // Compared customer by customer, the inputs are the same too.
    let mut verify = settings();
    verify.run.always_compare = true;
    let compared = run::run(
        &env(&db.services(), &verify),
        "harbin",
        d("2025-10-20"),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(compared.unchanged_since, None);
    assert_eq!(
        (
            compared.counts.written,
            compared.counts.revised,
            compared.counts.unchanged
        ),
        (0, 0, 10)
    );
    let fixed = customers.replace("K7,residential,75,60.00", "K7,residential,75,62.50");
    import_ok(&db, &h, ImportKind::Customers, &format!("{header}{fixed}")).await;
    let third = run(&db, "harbin", "2025-10-20").await;
    assert_eq!((third.counts.revised, third.counts.unchanged), (1, 9));
    let k7 = db
        .store
        .bill(h.id, "K7", d("2025-10-20"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k7.row.version, 2);
    assert_eq!(k7.row.reason.as_deref(), Some("changed: customer data"));
    assert_eq!(k7.lines[0].quantity, dec("62.50"));
    assert_eq!(k7.run_id, third.run_id);
    let old = db
        .store
        .bill_history(h.id, "K7", d("2025-10-20"))
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        (old[0].row.version, old[0].lines[0].quantity),
        (1, dec("60.00"))
    );
    assert_eq!(old[0].run_id, first.run_id);
    for other in ["K0", "K6", "K8"] {
        let b = db
            .store
            .bill(h.id, other, d("2025-10-20"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.row.version, b.run_id), (1, first.run_id), "{other}");
        assert!(
            db.store
                .bill_history(h.id, other, d("2025-10-20"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
both!(reruns_write_only_what_changed);

/// A plugin that panics for some customers parks them; the others are billed and the run
/// completes with the parked list. A day is not run before the previous day is billed.
async fn hostile_plugin_parks_its_customers(db: TestDb) {
    let text = "slug = \"h\"\nname = \"H\"\ntime_zone = \"Asia/Harbin\"\n\
                [[chain]]\neffective_from = \"2025-10-01\"\n\
                [[chain.entry]]\nplugin = \"season\"\nparams = { start = \"2025-10-20\", end = \"2026-04-20\" }\n\
                [[chain.entry]]\nplugin = \"hostile\"\nparams = { mode = \"panic\" }\n";
    let h = apply(&db, text).await;
    let mut csv = String::from("customer_id,class,building_area,tags\n");
    for i in 0..12 {
        let tags = if i % 4 == 1 { "hostile" } else { "" };
        csv.push_str(&format!("H{i:02},residential,60,{tags}\n"));
    }
    import_ok(&db, &h, ImportKind::Customers, &csv).await;
    let r = run(&db, "h", "2025-10-20").await;
    assert_eq!((r.counts.written, r.counts.parked), (9, 3));
    let parked: Vec<&str> = r.parked.iter().map(|p| p.customer_id.as_str()).collect();
    assert_eq!(parked, ["H01", "H05", "H09"]);
    assert!(
        r.parked
            .iter()
            .all(|p| p.kind == "trap" && p.plugin == "hostile")
    );
    assert!(
        r.parked[0].message.contains("customer `H01`"),
        "{}",
        r.parked[0].message
    );
    // The report counts them by plugin and says what a re-run does.
    assert_eq!(r.parked_by.len(), 1);
    assert_eq!(
        (
            r.parked_by[0].plugin.as_str(),
            r.parked_by[0].kind.as_str(),
            r.parked_by[0].count
        ),
        ("hostile", "trap", 3)
    );
    assert!(
        r.to_string()
            .contains("parked by hostile 1.0.0: 3 customer(s), trap; a re-run of the date"),
        "{r}"
    );
    let stored = db.store.run(r.run_id).await.unwrap();
    assert_eq!(stored.state, "completed");
    assert_eq!(stored.report.unwrap()["counts"]["parked"], 3);
    // The parked customers hold a placeholder that carries their balance, not a bill.
    let p = db
        .store
        .bill(h.id, "H05", d("2025-10-20"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.row.status, BillStatus::Parked);
    assert!(p.lines.is_empty());
    // A gap is refused with what to do: balances carry from one day to the next.
    match try_run(&db, "h", "2025-10-22").await {
        Err(RunError::Refused(m)) => assert!(m.contains("run 2025-10-21 first"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
both!(hostile_plugin_parks_its_customers);

/// Plugins whose bills depend on the other customer-days of their call never change a stored
/// bill: `mixed-class` bills 1.10 instead of 1.00 whenever a call mixes customer classes (the
/// review's plugin passed the case-file gate and stored 2,038 of 2,040 lines at 1.10), `skim`
/// adds 0.01 per earlier customer-day of the call. The run's purity sample catches the first
/// call, which is billed again alone; the plugin is quarantined for the company, and the date
/// is billed again with every customer-day alone. Every stored bill is the bill alone: 1.00.
async fn batch_dependent_plugins_never_change_a_stored_bill(db: TestDb) {
    for (slug, mode) in [("mixed", "mixed-class"), ("skim", "skim")] {
        let text = format!(
            "slug = \"{slug}\"\nname = \"P\"\ntime_zone = \"Asia/Harbin\"\n\
             [[chain]]\neffective_from = \"2025-10-01\"\n\
             [[chain.entry]]\nplugin = \"hostile\"\nparams = {{ mode = \"{mode}\" }}\n"
        );
        let p = apply(&db, &text).await;
        let mut csv = String::from("customer_id,class,building_area\n");
        for i in 0..2_040 {
            let class = if i % 2 == 0 {
                "residential"
            } else {
                "non-residential"
            };
            csv.push_str(&format!("P{i:04},{class},60\n"));
        }
        import_ok(&db, &p, ImportKind::Customers, &csv).await;
        let settings = Settings {
            run: RunSettings {
                shard_size: 1_000,
                workers: Some(2),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = run::run(
            &env(&db.services(), &settings),
            slug,
            d("2025-10-20"),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{slug}: {e}"));
        assert_eq!(r.counts.customers, 2_040, "{slug}: {r:?}");
        assert_eq!(r.counts.parked, 0, "{slug}: {r:?}");
        assert_eq!(
            r.quarantined
                .iter()
                .map(|q| (q.plugin.as_str(), q.plugin_version.as_str()))
                .collect::<Vec<_>>(),
            [("hostile", "1.0.0")],
            "{slug}: {r:?}"
        );
        assert!(
            r.warnings.iter().any(|w| w.contains("quarantined")),
            "{slug}: {:?}",
            r.warnings
        );
        let bills = db.store.bills(p.id, d("2025-10-20")).await.unwrap();
        assert_eq!(bills.len(), 2_040);
        let wrong: Vec<_> = bills
            .iter()
            .filter(|b| b.row.status != BillStatus::Billed || b.row.total != dec("1.00"))
            .map(|b| (b.customer_id.clone(), b.row.total))
            .collect();
        assert!(
            wrong.is_empty(),
            "{slug}: {} stored bills are not the bill alone, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        // The quarantine stays: the next run of the date has nothing to do, and is alone too.
        let q = db.store.quarantined_plugins(p.id).await.unwrap();
        assert_eq!(q.len(), 1, "{q:?}");
        assert!(q[0].reason.contains("billed alone, total 1.00"), "{q:?}");
        let again = run::run(
            &env(&db.services(), &settings),
            slug,
            d("2025-10-20"),
            |_| {},
        )
        .await
        .unwrap();
        assert!(again.unchanged_since.is_some(), "{slug}: {again:?}");
    }
}
both!(batch_dependent_plugins_never_change_a_stored_bill);

/// The same company and day give byte-identical bills on SQLite and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_store_identical_bills() {
    let dir = tempfile::tempdir().unwrap();
    let files = heatbill_runtime::demo::write_files(dir.path(), 600, d("2026-01-15")).unwrap();
    let mut out = Vec::new();
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::new(kind).await;
        let c = apply(&db, heatbill_runtime::demo::COMPANY_FILE).await;
        for (k, path) in [
            (ImportKind::Customers, &files.customers),
            (ImportKind::Readings, &files.readings),
            (ImportKind::Temperatures, &files.temperatures),
            (ImportKind::Balances, &files.balances),
            (ImportKind::Payments, &files.payments),
        ] {
            import_ok(&db, &c, k, &std::fs::read_to_string(path).unwrap()).await;
        }
        let r = run(&db, heatbill_runtime::demo::COMPANY, "2026-01-15").await;
        assert_eq!(r.counts.written + r.counts.parked, 600);
        let bills = db.store.bills(c.id, d("2026-01-15")).await.unwrap();
        let rows: Vec<(BillRow, Vec<StoredLine>)> =
            bills.into_iter().map(|b| (b.row, b.lines)).collect();
        out.push((serde_json::to_string(&rows).unwrap(), r.totals));
    }
    assert_eq!(out[0].1, out[1].1, "totals by line code");
    if out[0].0 != out[1].0 {
        let at = out[0]
            .0
            .bytes()
            .zip(out[1].0.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let around = |s: &str| s[at.saturating_sub(200)..(at + 200).min(s.len())].to_string();
        panic!(
            "the stored bills differ between SQLite and PostgreSQL at byte {at}:\nSQLite:     {}\nPostgreSQL: {}",
            around(&out[0].0),
            around(&out[1].0)
        );
    }
}

/// Through Redis, with each shard's customers read from the cache, a run bills exactly as it
/// does from the database; a warm-up fills the cache ahead of the next day's run; the arrears
/// ranking is kept after each run and rebuilt from the bills when Redis has lost it.
async fn redis_cache_warm_up_and_ranking(db: TestDb) {
    use heatbill_runtime::cache::redis::RedisCache;
    use heatbill_runtime::coord::redis::RedisCoord;
    use heatbill_runtime::services::Services;
    let dir = tempfile::tempdir().unwrap();
    let files = heatbill_runtime::demo::write_files(dir.path(), 300, d("2026-01-15")).unwrap();
    let c = apply(&db, heatbill_runtime::demo::COMPANY_FILE).await;
    for (k, path) in [
        (ImportKind::Customers, &files.customers),
        (ImportKind::Readings, &files.readings),
        (ImportKind::Balances, &files.balances),
        (ImportKind::Payments, &files.payments),
    ] {
        import_ok(&db, &c, k, &std::fs::read_to_string(path).unwrap()).await;
    }
    let mut cached = settings();
    cached.cache.shards = true;
    cached.run.shard_size = 50;
    let redis = crate::coord::redis().await;
    let services = Services::with(
        db.store.clone(),
        std::sync::Arc::new(RedisCoord::new(redis.clone())),
        std::sync::Arc::new(RedisCache::new(redis)),
        &cached.cache,
    );
    let slug = heatbill_runtime::demo::COMPANY;
    let first = run::run(&env(&services, &cached), slug, d("2026-01-15"), |_| {})
        .await
        .unwrap();
    assert_eq!(first.counts.written + first.counts.parked, 300);
    assert_eq!((first.cache.misses > 0, first.cache.errors), (true, 0));
    // The same inputs read from the database instead give the same digests: nothing changes.
    let mut plain = settings();
    plain.run.always_compare = true;
    plain.run.shard_size = 50;
    let compared = run::run(&env(&db.services(), &plain), slug, d("2026-01-15"), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (compared.counts.unchanged, compared.counts.written),
        (300, 0)
    );

    // The ranking of the day's unpaid principal, largest first, exact to the fen.
    let company = db.store.company(slug).await.unwrap();
    let top = run::top_arrears(&services, &company, 5)
        .await
        .unwrap()
        .unwrap();
    let mut expected = db.store.arrears(company.id, d("2026-01-15")).await.unwrap();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    expected.truncate(5);
    assert_eq!(top.date, d("2026-01-15"));
    assert_eq!(top.top, expected);
    assert_eq!(top.top.len(), 5);
    // Redis lost everything (a fresh namespace): the ranking is rebuilt from the bills.
    let empty = crate::coord::redis().await;
    let fresh = Services::with(
        db.store.clone(),
        std::sync::Arc::new(RedisCoord::new(empty.clone())),
        std::sync::Arc::new(RedisCache::new(empty)),
        &cached.cache,
    );
    assert_eq!(
        run::top_arrears(&fresh, &company, 5)
            .await
            .unwrap()
            .unwrap(),
        top
    );

    // The warm-up loads every shard; the next day's run then reads no customer from the
    // database.
    let shards = run::warm(&fresh, &cached, &company).await.unwrap();
    assert_eq!(shards, 6);
    let next = run::run(&env(&fresh, &cached), slug, d("2026-01-16"), |_| {})
        .await
        .unwrap();
    assert_eq!(next.counts.customers, 300);
    // Cumulative for the process: the warm-up's six loads, then the run's six shard hits and
    // its misses of the chain and the seven components (a new Redis namespace).
    assert_eq!(
        (next.cache.hits, next.cache.misses),
        (6, 6 + 1 + 7),
        "{:?}",
        next.cache
    );
}
both!(redis_cache_warm_up_and_ranking);

/// The README's settings are the real ones (every key parses, with its documented default),
/// and a misspelt key is refused by name.
#[test]
fn the_readme_settings_are_the_real_ones() {
    let readme = std::fs::read_to_string(crate::support::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("```toml\n[database]")
        .expect("the README shows the settings")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    let text = readme[start..end].replace("[engine]", "[engine.limits]");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heatbill.toml");
    std::fs::write(&file, &text).unwrap();
    let s = Settings::load_from(Some(&file), []).unwrap();
    let d = Settings::default();
    assert_eq!(s.run.shard_size, d.run.shard_size);
    assert_eq!(s.run.lease_s, d.run.lease_s);
    assert_eq!(s.cache.ttl_s, d.cache.ttl_s);
    assert_eq!(s.redis.prefix, d.redis.prefix);
    assert_eq!(s.import.max_row_bytes, d.import.max_row_bytes);
    std::fs::write(&file, text.replace("lease_s", "leases")).unwrap();
    let e = Settings::load_from(Some(&file), [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("leases"), "{e}");
}

/// `heatbill audit`'s checks on both databases: books billed, re-billed after a correction and
/// billed again are in order; then four rows changed by hand (a total, a carried balance, a
/// superseded version deleted, a version's reason erased) are each found, with the customer and
/// the date, and nothing else is.
async fn the_audit_finds_what_was_changed_by_hand(db: TestDb) {
    use heatbill_runtime::audit::{AuditOptions, audit};
    let h = apply(&db, &harbin("harbin")).await;
    let header = "customer_id,class,building_area,usable_area\n";
    let customers: String = (0..10)
        .map(|i| format!("K{i},residential,75,60.00\n"))
        .collect();
    import_ok(
        &db,
        &h,
        ImportKind::Customers,
        &format!("{header}{customers}"),
    )
    .await;
    import_ok(
        &db,
        &h,
        ImportKind::Balances,
        "customer_id,as_of,arrears\nK1,2025-10-20,500.00\nK2,2025-10-20,80.00\n",
    )
    .await;
    import_ok(
        &db,
        &h,
        ImportKind::Payments,
        "payment_id,customer_id,paid_on,amount\np1,K2,2025-10-20,30.00\np2,K3,2025-10-21,5.00\n",
    )
    .await;
    let dates = ["2025-10-20", "2025-10-21", "2025-10-22"];
    for date in dates {
        run(&db, "harbin", date).await;
    }
    let fixed = customers.replace("K7,residential,75,60.00", "K7,residential,75,62.50");
    import_ok(&db, &h, ImportKind::Customers, &format!("{header}{fixed}")).await;
    for date in dates {
        run(&db, "harbin", date).await;
    }
    let options = AuditOptions {
        from: Some(d(dates[0])),
        to: Some(d(dates[2])),
        shard_size: 3,
        max_listed: 100,
    };
    let clean = audit(db.store.as_ref(), "harbin", &options).await.unwrap();
    assert!(clean.ok(), "{clean}");
    assert_eq!((clean.dates, clean.bills), (3, 30), "{clean}");

    let changes = [
        "UPDATE bills SET total = '999.99' WHERE customer_id = 'K1' AND bill_date = '2025-10-21'",
        "UPDATE bills SET charged_before = '123.45' WHERE customer_id = 'K2' AND bill_date = '2025-10-22'",
        "DELETE FROM bill_history WHERE customer_id = 'K7' AND bill_date = '2025-10-21'",
        "UPDATE bills SET reason = NULL WHERE customer_id = 'K7' AND bill_date = '2025-10-22'",
    ];
    for sql in changes {
        let n = match db.kind {
            Kind::Postgres => {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            Kind::Sqlite => {
                let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected()
            }
        };
        assert_eq!(n, 1, "{sql}");
    }
    let found = audit(db.store.as_ref(), "harbin", &options).await.unwrap();
    assert!(!found.ok());
    let got: std::collections::BTreeSet<(String, String, String)> = found
        .problems
        .iter()
        .map(|p| {
            (
                p.kind.clone(),
                p.date.to_string(),
                p.customer.clone().unwrap_or_default(),
            )
        })
        .collect();
    let want: std::collections::BTreeSet<(String, String, String)> = [
        ("totals", "2025-10-21", "K1"),
        ("balance", "2025-10-22", "K2"),
        ("history", "2025-10-21", "K7"),
        ("history", "2025-10-22", "K7"),
    ]
    .iter()
    .map(|(k, d, c)| (k.to_string(), d.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want, "{found}");
    assert_eq!(found.problems_found, 4, "{found}");
}
both!(the_audit_finds_what_was_changed_by_hand);

/// A request for a date whose inputs did not change costs nothing, even when the last run
/// parked a customer whose rule refused it (a metered customer without a reading: the same
/// inputs would park it again); a customer parked by a trap is billed again, since that may go
/// otherwise.
async fn an_unchanged_date_with_refused_customers_is_not_billed_again(db: TestDb) {
    let b = apply(&db, BEIJING).await;
    import_ok(
        &db,
        &b,
        ImportKind::Customers,
        "customer_id,class,metered,building_area\nM1,residential,true,80\nA1,residential,false,80\n\
         A2,residential,false,90\n",
    )
    .await;
    let first = run(&db, "beijing", "2025-11-15").await;
    assert_eq!(
        (first.counts.written, first.counts.parked),
        (2, 1),
        "{first:?}"
    );
    assert_eq!(first.parked_by[0].kind, "missing-input");
    let again = run(&db, "beijing", "2025-11-15").await;
    assert_eq!(again.unchanged_since, Some(first.run_id), "{again:?}");
    assert_eq!(
        (again.counts.unchanged, again.counts.parked),
        (2, 1),
        "{again:?}"
    );
    assert_eq!(again.parked[0].customer_id, "M1");

    let text = "slug = \"t\"\nname = \"T\"\ntime_zone = \"Asia/Harbin\"\n\
                [[chain]]\neffective_from = \"2025-10-01\"\n\
                [[chain.entry]]\nplugin = \"hostile\"\nparams = { mode = \"panic\" }\n";
    let t = apply(&db, text).await;
    import_ok(
        &db,
        &t,
        ImportKind::Customers,
        "customer_id,class,building_area,tags\nT1,residential,60,hostile\nT2,residential,60,\n",
    )
    .await;
    let first = run(&db, "t", "2025-10-20").await;
    assert_eq!(first.counts.parked, 1);
    let again = run(&db, "t", "2025-10-20").await;
    assert_eq!(
        again.unchanged_since, None,
        "a trap is tried again: {again:?}"
    );
    assert_eq!(again.counts.parked, 1);
}
both!(an_unchanged_date_with_refused_customers_is_not_billed_again);
