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

/// JSON imports through the real HTTP server: a record is bounded before it is parsed (the
/// server's memory measured), a record's fields are bounded by count, and an import in progress
/// does not hold a shutdown.
mod json_bounds {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use futures::StreamExt;
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use crate::api::{OPERATOR, Server, error, ok};
    use crate::support::db::TestDb;
    use crate::support::{in_own_process, memory};

    /// A company and its staff token, made through the API.
    async fn staff(s: &Server, slug: &str) -> String {
        let (st, v) = s
            .post(
                "/v1/companies",
                OPERATOR,
                json!({"slug": slug, "name": "Harbin Heat", "time_zone": "Asia/Harbin"}),
            )
            .await;
        ok(st, &v, 201);
        let (st, v) = s
            .post(
                &format!("/v1/companies/{slug}/tokens"),
                OPERATOR,
                json!({"role": "staff", "label": "staff of the tests"}),
            )
            .await;
        ok(st, &v, 201);
        v["token"].as_str().unwrap().to_string()
    }

    /// Posts `body` (generated as it is sent) as an import of customers.
    async fn import(
        s: &Server,
        token: &str,
        content_type: &str,
        body: reqwest::Body,
    ) -> (StatusCode, Value) {
        let resp = s
            .req(
                reqwest::Method::POST,
                "/v1/companies/harbin/imports/customers",
                Some(token),
            )
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    static A_MIB: [u8; 1 << 20] = [b'a'; 1 << 20];

    /// `prefix`, `mib` MiB of `a`, `suffix`: a body of one huge value, never held by the test.
    fn huge(prefix: &'static str, mib: usize, suffix: &'static str) -> reqwest::Body {
        let parts = std::iter::once(prefix.as_bytes())
            .chain(std::iter::repeat_n(&A_MIB[..], mib))
            .chain(std::iter::once(suffix.as_bytes()));
        reqwest::Body::wrap_stream(futures::stream::iter(
            parts.map(Ok::<&'static [u8], std::io::Error>),
        ))
    }

    /// The review's 300 MB record took the server from 46 MB to 1.5–2.1 GB (five times the
    /// record). A record is read no further than `import.max_row_bytes` now: a 100 MB one, as a
    /// JSON Lines line, an array's element or a string in an array, is refused with where it
    /// is, nothing is imported, and the server's peak memory does not follow the record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_huge_json_record_is_refused_before_it_is_held() {
        if in_own_process("import::json_bounds::a_huge_json_record_is_refused_before_it_is_held") {
            return;
        }
        let db = TestDb::sqlite().await;
        let s = Server::start(&db, |_| {}).await;
        let token = staff(&s, "harbin").await;
        // The import path once, so that what it allocates for good is not counted below.
        let (st, v) = s
            .raw(
                reqwest::Method::POST,
                "/v1/companies/harbin/imports/customers",
                &token,
                "application/x-ndjson",
                b"{\"customer_id\":\"W0\",\"class\":\"residential\",\"building_area\":\"60\"}\n"
                    .to_vec(),
            )
            .await;
        ok(st, &v, 200);
        let version = db.store.company("harbin").await.unwrap().data_version;
        const RECORD: &str = "{\"customer_id\":\"W1\",\"class\":\"residential\",\"building_area\":\"60\",\"tags\":\"";
        for (what, content_type, body, says) in [
            (
                "a JSON Lines record",
                "application/x-ndjson",
                huge(RECORD, 100, "\"}\n"),
                "record 1 (row 2), on line 1, is longer than 65536 bytes (import.max_row_bytes)",
            ),
            (
                "an element of a JSON array",
                "application/json",
                huge("[{\"customer_id\":\"W1\",\"tags\":\"", 100, "\"}]"),
                "record 1 (row 2) is longer than 65536 bytes (import.max_row_bytes)",
            ),
            (
                "a string in a JSON array",
                "application/json",
                huge("[\"", 100, "\"]"),
                "record 1 (row 2) is longer than 65536 bytes (import.max_row_bytes)",
            ),
        ] {
            memory::reset_peak();
            let before = memory::resident();
            let (st, v) = import(&s, &token, content_type, body).await;
            let grew = memory::peak().saturating_sub(before);
            assert!(
                grew < 40 << 20,
                "{what} of 100 MiB took the server's peak memory up {} MiB ({st}: {v})",
                memory::mib(grew)
            );
            error(st, &v, 422, says);
            eprintln!(
                "{what} of 100 MiB: refused, the peak resident set grew {} MiB",
                memory::mib(grew)
            );
        }
        assert_eq!(
            db.store.company("harbin").await.unwrap().data_version,
            version,
            "nothing was imported"
        );
        s.stop().await;
    }

    /// An object of `n` distinct fields, as JSON text.
    fn object_of(n: usize) -> String {
        let fields: Vec<String> = (0..n).map(|i| format!("\"k{i:07}\":0")).collect();
        format!("{{{}}}", fields.join(","))
    }

    /// Checking a record's fields used to cost the square of their number (1 MB: 7 s, 2 MB:
    /// 41 s, 42 MB: no answer in 600 s, and the server would not shut down). A record has at
    /// most one field per column of its kind now, and a lookup per field: one of 4,000 fields
    /// within the size bound is refused by its count, and one of 4 MB by its size, each before
    /// a single field is compared.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_of_many_fields_is_refused_by_count() {
        let db = TestDb::sqlite().await;
        let s = Server::start(&db, |_| {}).await;
        let token = staff(&s, "harbin").await;
        let version = db.store.company("harbin").await.unwrap().data_version;
        let many = object_of(4_000);
        assert!(many.len() < 65_536);
        let big = object_of(400_000);
        assert!(big.len() > 4 << 20);
        let by_count = "record 1 (row 2) has 4000 fields; a customers record has at most 12, one \
                        per column: customer_id, valid_from, class";
        for (content_type, body, says) in [
            ("application/x-ndjson", format!("{many}\n"), by_count),
            ("application/json", format!("[{many}]"), by_count),
            (
                "application/x-ndjson",
                format!("{big}\n"),
                "record 1 (row 2), on line 1, is longer than 65536 bytes",
            ),
            (
                "application/json",
                format!("[{big}]"),
                "record 1 (row 2) is longer than 65536 bytes",
            ),
            // A later record with fields the first lacks is named (a set lookup, not a scan).
            (
                "application/x-ndjson",
                "{\"customer_id\":\"W1\",\"class\":\"residential\",\"building_area\":\"60\"}\n\
                 {\"customer_id\":\"W2\",\"class\":\"residential\",\"building_area\":\"60\",\"tags\":\"a\"}\n"
                    .to_string(),
                "record 2 (row 3) has the field \"tags\", which the first record lacks",
            ),
        ] {
            let (st, v) = import(&s, &token, content_type, body.into()).await;
            error(st, &v, 422, says);
        }
        assert_eq!(
            db.store.company("harbin").await.unwrap().data_version,
            version,
            "nothing was imported"
        );
        s.stop().await;
    }

    /// An import still streaming when the server is told to stop used to hold the shutdown for
    /// as long as the client kept sending (a 42 MB record held it past SIGTERM). It stops at
    /// once now: its transaction is rolled back (nothing imported), the client is told 503 when
    /// it can still hear it, and the server stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_stops_an_import_in_progress() {
        let db = TestDb::sqlite().await;
        let s = Server::start(&db, |_| {}).await;
        let token = staff(&s, "harbin").await;
        let version = db.store.company("harbin").await.unwrap().data_version;
        // A JSON array of good records that never ends, counted as the server pulls it.
        const RECORD: &str =
            "{\"customer_id\":\"W1\",\"class\":\"residential\",\"building_area\":\"60\"},";
        let chunk: &'static str = Box::leak(RECORD.repeat(1_000).into_boxed_str());
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let body = futures::stream::iter(std::iter::once("[").chain(std::iter::repeat(chunk))).map(
            move |c| {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
                Ok::<&'static str, std::io::Error>(c)
            },
        );
        let request = s
            .req(
                reqwest::Method::POST,
                "/v1/companies/harbin/imports/customers",
                Some(&token),
            )
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(body))
            .send();
        let client = tokio::spawn(request);
        // Past what the sockets can buffer: the server is parsing and staging the import.
        let waited = tokio::time::timeout(Duration::from_secs(120), async {
            while sent.load(Ordering::Relaxed) < 32 << 20 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the server read {} bytes of the import in 120 s",
            sent.load(Ordering::Relaxed)
        );
        // Fails with "the server stops within 30 s" if the import holds the shutdown.
        s.stop().await;
        let answer = tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .expect("the client hears back within 30 s of the shutdown")
            .unwrap();
        // The server answers 503 as it stops; a client still sending may instead see the
        // connection close under it (the server does not wait for the rest of the body).
        if let Ok(resp) = answer {
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            let v: Value = resp.json().await.unwrap();
            let m = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                m.contains("the server is shutting down") && m.contains("nothing was imported"),
                "{v:#}"
            );
        }
        assert_eq!(
            db.store.company("harbin").await.unwrap().data_version,
            version,
            "nothing was imported"
        );
    }
}
