//! The whole story of a new company through the HTTP API, in Rust and in JavaScript.

use super::*;

/// The whole story of a new company, through the HTTP API.
async fn full_story(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;

    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    assert_eq!(
        (v["rows"].as_u64(), v["inserted"].as_u64()),
        (Some(4), Some(4)),
        "{v:#}"
    );
    // The same file again changes nothing.
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    assert_eq!(v["unchanged"], 4, "{v:#}");

    // JSON, as lines and as an array: the same columns as fields.
    let (st, v) = s
        .raw(reqwest::Method::POST, &format!("/v1/companies/{slug}/imports/temperatures"), &c.staff,
            "application/x-ndjson",
            b"{\"customer_id\": \"W1\", \"date\": \"2025-10-21\", \"celsius\": 17.5}\n\n{\"customer_id\": \"W2\", \"date\": \"2025-10-21\", \"celsius\": 19}\n".to_vec())
        .await;
    ok(st, &v, 200);
    assert_eq!(
        (v["kind"].as_str(), v["inserted"].as_u64()),
        (Some("temperatures"), Some(2)),
        "{v:#}"
    );
    let (st, v) = s
        .raw(reqwest::Method::POST, &format!("/v1/companies/{slug}/imports/customers"), &c.staff,
            "application/json",
            serde_json::to_vec(&json!([
                // From 2030: the runs below bill the four customers of the CSV.
                {"customer_id": "W9", "valid_from": "2030-01-01", "class": "residential", "building_area": 50, "usable_area": "40.00",
                 "tags": ["district:nangang", "building:12"], "attributes": {"meter": "none"}, "low_income": null},
                {"customer_id": "W8", "valid_from": "2030-01-01", "class": "residential", "building_area": "50"}
            ])).unwrap())
        .await;
    ok(st, &v, 200);
    assert_eq!(v["inserted"], 2, "{v:#}");

    // A run: 202 with its id, then its progress stream to the end.
    let (st, v) = trigger(&s, &c, "2025-10-20", "key-1").await;
    ok(st, &v, 202);
    let id = v["id"].as_i64().unwrap();
    let (names, last) = follow(&s, &c, id).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("finished"),
        "{names:?}"
    );
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(
        (last["customers"].as_u64(), last["written"].as_u64()),
        (Some(4), Some(4))
    );
    let report = &last["report"];
    assert_eq!(report["counts"]["parked"], 0, "{report:#}");
    // The same key and request: the same run.
    let (st, v) = trigger(&s, &c, "2025-10-20", "key-1").await;
    ok(st, &v, 200);
    assert_eq!(v["id"].as_i64(), Some(id));
    // The same key for another request: refused.
    let (st, v) = trigger(&s, &c, "2025-10-21", "key-1").await;
    error(st, &v, 409, "another request");

    // Bills: by date, a page at a time.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/bills?date=2025-10-20&limit=3"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let page: Vec<&str> = v["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(page, ["W1", "W2", "W3"]);
    assert_eq!(v["next_after"], "W3");
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/bills?date=2025-10-20&after=W3"),
            &c.reader,
        )
        .await;
    assert_eq!(v["bills"][0]["customer_id"], "W4");
    assert!(v["next_after"].is_null());
    // W1's worked example: 12.56 on day 1.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/bills?from=2025-10-20&to=2025-10-20"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v[0]["lines"][0]["code"], "heat");
    assert_eq!(v[0]["lines"][0]["amount"], "12.56");
    assert_eq!(v[0]["total"], "12.56");
    // A known customer with no bill in the range is an empty list; an unknown one is 404.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/bills?from=2025-09-01&to=2025-09-02"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v, json!([]));
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/NOBODY/bills?from=2025-10-20&to=2025-10-20"),
            &c.reader,
        )
        .await;
    error(st, &v, 404, "has no customer \"NOBODY\"");

    // The CSV export, streamed.
    let resp = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/companies/{slug}/bills/export?date=2025-10-20"),
            Some(&c.reader),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("customer_id,date,version,status,code"),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("W1,2025-10-20,1,billed,heat,") && r.contains(",12.56,")),
        "{csv}"
    );

    // The next day, then a correction and a re-run: W1's bill gets version 2, with history.
    run_to_end(&s, &c, "2025-10-21").await;
    let (st, v) = import(&s, &c, "customers",
        "customer_id,class,status,low_income,building_area,usable_area,valid_from\nW1,residential,active,false,75,70.00,2025-10-21\n").await;
    ok(st, &v, 200);
    let (st, v) = trigger(&s, &c, "2025-10-21", "rerun-21").await;
    ok(st, &v, 202);
    let (_, last) = follow(&s, &c, v["id"].as_i64().unwrap()).await;
    assert_eq!(last["revised"], 1, "{last:#}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/bills/2025-10-21/history"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["current"]["version"], 2);
    assert_eq!(v["superseded"][0]["version"], 1);
    // The run's bills: the one it revised.
    let rerun = last["id"].as_i64().unwrap();
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/runs/{rerun}/bills"),
            &c.reader,
        )
        .await;
    let ids: Vec<&str> = v["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["W1"]);

    // A dry run writes nothing: with the chain in force, and with a draft at another price.
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/dry-run"),
            &c.integrator,
            json!({"customer": "W2", "date": "2025-10-22"}),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["bill"]["lines"][0]["code"], "heat", "{v:#}");
    assert!(v["current"].is_null());
    let mut draft: Value = serde_json::from_str(CHAIN).unwrap();
    draft["entries"][1]["params"]["prices"]["residential"] = json!("40.00");
    let (st, v2) = s
        .post(
            &format!("/v1/companies/{slug}/dry-run"),
            &c.staff,
            json!({"customer": "W2", "date": "2025-10-22", "chain": draft["entries"]}),
        )
        .await;
    ok(st, &v2, 200);
    assert_ne!(
        v["bill"]["total"], v2["bill"]["total"],
        "the draft's price bills differently"
    );
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/bills?date=2025-10-22"),
            &c.reader,
        )
        .await;
    assert!(
        v["bills"].as_array().unwrap().is_empty(),
        "a dry run wrote a bill"
    );

    // Arrears: nobody owes before the due date.
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/arrears?top=5"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["date"], "2025-10-21");

    // The books audited: in order; a range past the cap is refused, saying so.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/audit?from=2025-10-20&to=2025-10-21"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["dates"], 2, "{v:#}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/audit?from=2025-10-01&to=2025-12-01"),
            &c.reader,
        )
        .await;
    error(st, &v, 400, "an audit covers 1 to 31 dates");

    // Runs listed, newest first; plugins and chains readable by every role.
    let (_, v) = s
        .get(&format!("/v1/companies/{slug}/runs"), &c.reader)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (_, v) = s
        .get(&format!("/v1/companies/{slug}/plugins"), &c.reader)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "late-fee")
            .unwrap()["cases"][0]["name"],
        "w6.toml"
    );
    let (_, v) = s
        .get(&format!("/v1/companies/{slug}/chains"), &c.reader)
        .await;
    assert_eq!(v[0]["effective_from"], "2025-10-01");

    // Operations.
    let (st, v) = s.call(reqwest::Method::GET, "/readyz", None, None).await;
    ok(st, &v, 200);
    let (st, doc) = s
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    ok(st, &doc, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/companies/{company}/runs"]["post"].is_object());
    let metrics = s
        .req(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("heatbill_runs_total{state=\"started\"} 3"),
        "{metrics}"
    );
    assert!(
        // (the 4xx: an unknown customer's bills, a bad request earlier in the story, and the
        // audit's range past its cap)
        metrics.contains("heatbill_http_requests_total{class=\"4xx\"} 3"),
        "{metrics}"
    );
    let (st, _) = s.call(reqwest::Method::GET, "/docs", None, None).await;
    assert_eq!(st, 200);
    let _ = c.digests;
    s.stop().await;
}
both!(full_story);

/// A JavaScript plugin through the API: refused without a grant (the message names its digest
/// and the grant), uploaded once the operator grants its digest the `interpreted` profile, its
/// case file run at upload, and billing in the nightly run as the Rust rule would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_is_uploaded_once_granted_and_bills_a_run() {
    use sha2::Digest as _;
    let db = TestDb::postgres().await;
    let js = crate::support::kit_component("js", "low-income-subsidy");
    let digest = hex::encode(sha2::Sha256::digest(&js));

    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "jsheat").await;
    let (st, v) = s.upload(&c.slug, &c.integrator, js.clone()).await;
    error(st, &v, 422, "over the limit of 8388608 bytes");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&digest) && message.contains("[engine.grants]"),
        "{v:#}"
    );
    s.stop().await;

    // The operator grants this component's digest the profile, and restarts the host.
    let engine = heatbill_engine::Engine::new(heatbill_engine::EngineConfig {
        grants: [(digest.clone(), heatbill_engine::INTERPRETED.to_string())].into(),
        ..crate::engine::test_config()
    })
    .unwrap();
    let s = Server::start_with_engine(&db, engine).await;
    let (st, v) = s.upload(&c.slug, &c.integrator, js.clone()).await;
    ok(st, &v, 201);
    assert_eq!(v["name"], "low-income-subsidy");
    assert_eq!(v["digest"], digest.as_str());
    let (st, v) = s
        .raw(
            reqwest::Method::PUT,
            &format!("/v1/companies/{}/plugins/{digest}/cases/w5.toml", c.slug),
            &c.integrator,
            "application/toml",
            case_file("w5.toml").into_bytes(),
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["passed"], true, "{v:#}");

    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-10-02");
    chain["entries"].as_array_mut().unwrap().insert(
        2,
        json!({"plugin": "low-income-subsidy",
               "params": {"share": "1.00", "area_cap": "45", "area_basis": "usable"}}),
    );
    let (st, v) = s
        .post(
            &format!("/v1/companies/{}/chains", c.slug),
            &c.integrator,
            chain,
        )
        .await;
    ok(st, &v, 201);
    let customers = CUSTOMERS.replace(
        "W2,residential,active,false,80,64.00",
        "W2,residential,active,true,80,64.00",
    );
    let (st, v) = import(&s, &c, "customers", &customers).await;
    ok(st, &v, 200);
    let last = run_to_end(&s, &c, "2025-10-20").await;
    assert_eq!(last["written"], 4, "{last:#}");

    // W2 is low-income: 45 of its 64 m² are covered, as W5 bills it with the Rust rule.
    let (st, v) = s
        .get(
            &format!(
                "/v1/companies/{}/customers/W2/bills?from=2025-10-20&to=2025-10-20",
                c.slug
            ),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let lines = v[0]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["category"] == "subsidy"),
        "no subsidy line: {v:#}"
    );
    // Day 1 of 183: 64 m² × 38.32 = 2452.48 a season, 13.40 today; the subsidy's season is
    // 45 m² × 38.32 = 1724.40, 9.42 today, off the customer's part and onto the government's.
    assert!(
        lines
            .iter()
            .any(|l| l["amount"] == "-9.42" && l["payer"] == "customer"),
        "{v:#}"
    );
    assert_eq!(v[0]["total"], "13.40", "{v:#}");
    s.stop().await;
}
