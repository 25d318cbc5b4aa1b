//! Imports on both backends: typed rows, all or nothing per file, every bad row reported,
//! idempotent re-upload, hourly readings summed exactly, readings in kWh and MWh stored in GJ.

use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::model::*;
use heatbill_runtime::settings::ImportSettings;
use rust_decimal::Decimal;

use crate::store::spec;
use crate::support::db::TestDb;

/// Imports CSV text; the outcome.
pub async fn import_csv(
    db: &TestDb,
    company: &Company,
    kind: ImportKind,
    text: &str,
) -> ImportOutcome {
    let settings = ImportSettings {
        chunk_rows: 7, // several chunks even in small files
        ..Default::default()
    };
    import::import_reader(
        db.store.as_ref(),
        company,
        kind,
        "test.csv",
        std::io::Cursor::new(text.as_bytes().to_vec()),
        &settings,
    )
    .await
    .unwrap_or_else(|e| panic!("import of {kind} failed: {e}"))
}

/// The stored readings of a day, in GJ, by customer.
async fn readings_of(db: &TestDb, company: &Company, date: &str) -> Vec<(String, Decimal)> {
    let shard = ShardRange {
        shard_no: 0,
        first: String::new(),
        end: None,
    };
    db.store
        .load_shard(company.id, date.parse().unwrap(), &shard, true)
        .await
        .unwrap()
        .readings
}

/// Imports CSV text that must be accepted; its counts.
pub async fn import_ok(
    db: &TestDb,
    company: &Company,
    kind: ImportKind,
    text: &str,
) -> ImportCounts {
    match import_csv(db, company, kind, text).await {
        ImportOutcome::Imported(c) => c,
        ImportOutcome::Refused { errors, .. } => {
            panic!(
                "{kind} refused: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    }
}

async fn bad_rows_anywhere_import_nothing(db: TestDb) {
    let c = db.store.put_company(&spec("harbin")).await.unwrap();
    let mut text = String::from("customer_id,class,building_area,usable_area,status\n");
    text.push_str("C0,residential,60,abc,active\n"); // row 2: bad usable_area
    for i in 1..=20 {
        text.push_str(&format!("C{i},residential,60,48,active\n"));
    }
    text.push_str("C21,house,60,48,active\n"); // row 23: bad class
    for i in 22..=40 {
        text.push_str(&format!("C{i},residential,60,48,active\n"));
    }
    text.push_str("C41,residential,60,48,paused\n"); // row 43: bad status
    match import_csv(&db, &c, ImportKind::Customers, &text).await {
        ImportOutcome::Refused { errors, total } => {
            assert_eq!(total, 3);
            let found: Vec<(u64, &str)> =
                errors.iter().map(|e| (e.row, e.column.as_str())).collect();
            assert_eq!(found, [(2, "usable_area"), (23, "class"), (43, "status")]);
            assert!(errors[1].problem.contains("residential or non-residential"));
            assert_eq!(errors[1].value, "house");
        }
        ImportOutcome::Imported(c) => panic!("a file with bad rows was imported: {c:?}"),
    }
    assert_eq!(
        db.store.company("harbin").await.unwrap().data_version,
        c.data_version,
        "nothing changed"
    );
    // Unknown customers and duplicate keys are found as a set, and refuse the file too.
    let good = "customer_id,class,building_area\nC1,residential,60\nC2,residential,70\n";
    import_ok(&db, &c, ImportKind::Customers, good).await;
    let readings =
        "customer_id,date,heat_gj\nC1,2026-01-15,1.2\nC9,2026-01-15,1.0\nC1,2026-01-15,1.3\n";
    match import_csv(&db, &c, ImportKind::Readings, readings).await {
        ImportOutcome::Refused { errors, .. } => {
            let found: Vec<(u64, &str)> =
                errors.iter().map(|e| (e.row, e.column.as_str())).collect();
            assert_eq!(found, [(3, "customer_id"), (4, "")]);
            assert!(
                errors[1].problem.contains("as row 2"),
                "{}",
                errors[1].problem
            );
        }
        ImportOutcome::Imported(c) => panic!("imported {c:?}"),
    }
}
both!(bad_rows_anywhere_import_nothing);

async fn reupload_is_idempotent(db: TestDb) {
    let c = db.store.put_company(&spec("harbin")).await.unwrap();
    let text = "customer_id,class,building_area,usable_area,tags,attributes\n\
                C1,residential,60.00,48.00,north;old,floor=3\n\
                C2,non-residential,100,,,\n";
    let first = import_ok(&db, &c, ImportKind::Customers, text).await;
    assert_eq!(
        (first.rows, first.inserted, first.updated, first.unchanged),
        (2, 2, 0, 0)
    );
    let v1 = db.store.company("harbin").await.unwrap().data_version;
    let again = import_ok(&db, &c, ImportKind::Customers, text).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!(db.store.company("harbin").await.unwrap().data_version, v1);
    // A correction changes one record, and bumps the data version.
    let fixed = text.replace("60.00,48.00", "60.00,50.00");
    let third = import_ok(&db, &c, ImportKind::Customers, &fixed).await;
    assert_eq!((third.inserted, third.updated, third.unchanged), (0, 1, 1));
    assert!(db.store.company("harbin").await.unwrap().data_version > v1);
}
both!(reupload_is_idempotent);

async fn hourly_readings_are_summed_exactly(db: TestDb) {
    let c = db.store.put_company(&spec("harbin")).await.unwrap();
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area\nC1,residential,60\nC2,residential,60\n",
    )
    .await;
    let mut text = String::from("customer_id,time,heat_gj\n");
    for h in 0..24 {
        text.push_str(&format!("C1,2026-01-15T{h:02}:00,0.05\n"));
    }
    text.push_str("C2,2026-01-15 00:00,0.1\nC2,2026-01-15 01:00,0.2\n");
    let counts = import_ok(&db, &c, ImportKind::Readings, &text).await;
    assert_eq!((counts.rows, counts.inserted), (26, 2));
    let readings = readings_of(&db, &c, "2026-01-15").await;
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    // 0.1 + 0.2 is 0.3 exactly (a float would give 0.30000000000000004).
    assert_eq!(
        readings,
        [
            ("C1".to_string(), dec("1.20")),
            ("C2".to_string(), dec("0.3"))
        ]
    );
    let again = import_ok(&db, &c, ImportKind::Readings, &text).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
}
both!(hourly_readings_are_summed_exactly);

/// Meters read GJ, kWh or MWh: each reading is stored in GJ, converted exactly, hourly kWh
/// readings summed exactly, and a re-upload of the same file changes nothing.
async fn readings_in_kwh_and_mwh_are_stored_in_gj_exactly(db: TestDb) {
    let c = db.store.put_company(&spec("xuchang")).await.unwrap();
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area\nK1,residential,60\nM1,residential,60\nG1,residential,60\nH1,residential,60\n",
    )
    .await;
    let daily = "customer_id,date,heat_gj,heat_kwh,heat_mwh\nK1,2026-01-15,,120,\nM1,2026-01-15,,,0.12\nG1,2026-01-15,0.432,,\n";
    let counts = import_ok(&db, &c, ImportKind::Readings, daily).await;
    assert_eq!((counts.rows, counts.inserted), (3, 3));
    let mut hourly = String::from("customer_id,time,heat_kwh\n");
    for h in 0..24 {
        hourly.push_str(&format!("H1,2026-01-15T{h:02}:00,5.001\n"));
    }
    import_ok(&db, &c, ImportKind::Readings, &hourly).await;
    let readings = readings_of(&db, &c, "2026-01-15").await;
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    // 24 × 5.001 kWh = 120.024 kWh = 0.4320864 GJ.
    assert_eq!(
        readings,
        [
            ("G1".to_string(), dec("0.432")),
            ("H1".to_string(), dec("0.4320864")),
            ("K1".to_string(), dec("0.432")),
            ("M1".to_string(), dec("0.432")),
        ]
    );
    let again = import_ok(&db, &c, ImportKind::Readings, daily).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3));
    // One unit per reading; a file without a heat column is refused whole.
    match import_csv(
        &db,
        &c,
        ImportKind::Readings,
        "customer_id,date,heat_gj,heat_kwh\nK1,2026-01-16,1,120\n",
    )
    .await
    {
        ImportOutcome::Refused { errors, .. } => {
            assert_eq!(errors[0].column, "heat_kwh");
            assert!(errors[0].problem.contains("one unit only"), "{errors:?}");
        }
        other => panic!("accepted: {other:?}"),
    }
}
both!(readings_in_kwh_and_mwh_are_stored_in_gj_exactly);
