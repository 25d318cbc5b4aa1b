//! Tenancy and bad input: another company's token reaches nothing, roles hold, and bad input
//! gets a 4xx that says what to fix and changes nothing.

use super::*;

/// Another company's token, or none, reaches nothing of a company; roles hold.
async fn tenant_isolation(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let a = company(&s, "harbin").await;
    let b = company(&s, "daqing").await;
    let (st, v) = import(&s, &a, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = trigger(&s, &a, "2025-10-20", "a-1").await;
    ok(st, &v, 202);
    let run = v["id"].as_i64().unwrap();
    follow(&s, &a, run).await;
    let digest = &a.digests[0].1;
    use reqwest::Method as M;
    let endpoints: Vec<(M, String, Option<Value>)> = vec![
        (M::GET, "/v1/companies/harbin".into(), None),
        (
            M::PUT,
            "/v1/companies/harbin/schedule".into(),
            Some(json!({"daily_run_at": "02:00"})),
        ),
        (M::GET, "/v1/companies/harbin/plugins".into(), None),
        (
            M::GET,
            format!("/v1/companies/harbin/plugins/{digest}"),
            None,
        ),
        (
            M::GET,
            format!("/v1/companies/harbin/plugins/{digest}/cases"),
            None,
        ),
        (M::POST, "/v1/companies/harbin/plugins".into(), None),
        (M::GET, "/v1/companies/harbin/chains".into(), None),
        (
            M::POST,
            "/v1/companies/harbin/chains".into(),
            Some(serde_json::from_str(CHAIN).unwrap()),
        ),
        (
            M::POST,
            "/v1/companies/harbin/chains/2025-10-01/rollback".into(),
            None,
        ),
        (
            M::POST,
            "/v1/companies/harbin/imports/customers".into(),
            None,
        ),
        (
            M::POST,
            "/v1/companies/harbin/runs".into(),
            Some(json!({"date": "2025-10-21"})),
        ),
        (M::GET, "/v1/companies/harbin/runs".into(), None),
        (M::GET, format!("/v1/companies/harbin/runs/{run}"), None),
        (
            M::GET,
            format!("/v1/companies/harbin/runs/{run}/events"),
            None,
        ),
        (
            M::POST,
            format!("/v1/companies/harbin/runs/{run}/cancel"),
            None,
        ),
        (
            M::GET,
            format!("/v1/companies/harbin/runs/{run}/bills"),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/bills?date=2025-10-20".into(),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/bills/export?date=2025-10-20".into(),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/customers/W1/bills?from=2025-10-20&to=2025-10-20".into(),
            None,
        ),
        (
            M::GET,
            "/v1/companies/harbin/customers/W1/bills/2025-10-20/history".into(),
            None,
        ),
        (
            M::POST,
            "/v1/companies/harbin/dry-run".into(),
            Some(json!({"customer": "W1", "date": "2025-10-20"})),
        ),
        (M::GET, "/v1/companies/harbin/arrears".into(), None),
        (M::GET, "/v1/companies/harbin/audit".into(), None),
    ];
    for (method, path, body) in &endpoints {
        // No token: 401.
        let (st, v) = s.call(method.clone(), path, None, body.clone()).await;
        error(st, &v, 401, "token");
        // A wrong token: 401.
        let (st, v) = s
            .call(method.clone(), path, Some("hb_0000"), body.clone())
            .await;
        error(st, &v, 401, "unknown token");
        // Every token of the other company: 404, as for a company that does not exist.
        for t in [&b.integrator, &b.staff, &b.reader] {
            let mut r = s
                .req(method.clone(), path, Some(t))
                .header("idempotency-key", "b-1");
            if let Some(b) = body {
                r = r.json(b);
            }
            let resp = r.send().await.unwrap();
            let st = resp.status();
            let v: Value = resp.json().await.unwrap();
            error(st, &v, 404, "no company \"harbin\"");
        }
    }
    // The other company's list shows only itself.
    let (_, v) = s.get("/v1/companies", &b.reader).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["slug"], "daqing");
    // Roles: a reader cannot import, run or upload; staff cannot upload; integrators cannot
    // import; nobody but the operator manages tokens or companies.
    let (st, v) = import(
        &s,
        &Company {
            staff: a.reader.clone(),
            ..company_ref(&a)
        },
        "customers",
        CUSTOMERS,
    )
    .await;
    error(st, &v, 403, "staff token");
    let (st, v) = s.upload("harbin", &a.staff, component("season")).await;
    error(st, &v, 403, "integrator token");
    let (st, v) = import(
        &s,
        &Company {
            staff: a.integrator.clone(),
            ..company_ref(&a)
        },
        "customers",
        CUSTOMERS,
    )
    .await;
    error(st, &v, 403, "staff token");
    let (st, v) = s
        .post(
            "/v1/companies/harbin/tokens",
            &a.staff,
            json!({"role": "staff", "label": "x"}),
        )
        .await;
    error(st, &v, 403, "operator");
    let (st, v) = s
        .post(
            "/v1/companies",
            &a.integrator,
            json!({"slug": "x", "name": "x", "time_zone": "UTC"}),
        )
        .await;
    error(st, &v, 403, "operator");
    // A revoked token stops working at once.
    let (_, list) = s.get("/v1/companies/harbin/tokens", OPERATOR).await;
    let reader_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "read-only")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none()),
        "a listed token shows its secret"
    );
    let (st, _) = s
        .call(
            M::DELETE,
            &format!("/v1/companies/harbin/tokens/{reader_id}"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, v) = s.get("/v1/companies/harbin", &a.reader).await;
    error(st, &v, 401, "revoked");
    s.stop().await;
}
both!(tenant_isolation);

fn company_ref(c: &Company) -> Company {
    Company {
        slug: c.slug.clone(),
        integrator: c.integrator.clone(),
        staff: c.staff.clone(),
        reader: c.reader.clone(),
        digests: c.digests.clone(),
    }
}

/// Bad input gets a 4xx that says what to fix, and changes nothing.
async fn bad_input(db: TestDb) {
    let s = Server::start(&db, |st| {
        st.api.max_upload_bytes = 4 * 1024 * 1024;
        st.api.idempotency_hours = 0;
    })
    .await;
    use reqwest::Method as M;
    // Malformed and unknown JSON.
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies",
            OPERATOR,
            "application/json",
            b"{\"slug\": ".to_vec(),
        )
        .await;
    error(st, &v, 400, "not valid");
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": "a", "name": "A", "time_zone": "UTC", "colour": "red"}),
        )
        .await;
    error(st, &v, 400, "unknown field `colour`");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies",
            OPERATOR,
            "text/plain",
            b"slug=a".to_vec(),
        )
        .await;
    error(st, &v, 415, "application/json");
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": "Bad Slug", "name": "A", "time_zone": "UTC"}),
        )
        .await;
    error(st, &v, 422, "slug");
    let (st, v) = s
        .post(
            "/v1/companies",
            OPERATOR,
            json!({"slug": "a", "name": "A", "time_zone": "Mars/Olympus"}),
        )
        .await;
    error(st, &v, 422, "time-zone database");
    let big = json!({"slug": "a", "name": "x".repeat(1024 * 1024), "time_zone": "UTC"});
    let (st, v) = s.post("/v1/companies", OPERATOR, big).await;
    error(st, &v, 413, "larger");
    let (_, v) = s.get("/v1/companies", OPERATOR).await;
    assert!(
        v.as_array().unwrap().is_empty(),
        "a refused company was created: {v:#}"
    );

    let c = company(&s, "harbin").await;
    // Not a component; too large.
    let (st, v) = s
        .upload("harbin", &c.integrator, b"\0asm not really".to_vec())
        .await;
    error(st, &v, 422, "not a plugin heatbill can run");
    let (st, v) = s
        .upload("harbin", &c.integrator, vec![0u8; 4 * 1024 * 1024 + 100])
        .await;
    error(st, &v, 413, "larger than");
    // A plugin built for the frozen contract 0.1.0 is accepted and recorded as such (the host
    // serves both versions); one for 0.3.0 is refused naming the versions served.
    let (st, v) = s
        .upload("harbin", &c.integrator, component("legacy-surcharge"))
        .await;
    ok(st, &v, 201);
    assert_eq!(v["contract_version"], "0.1.0", "{v:#}");
    // Its 0.1.0 parameter list, turned into a schema of the same keys and types.
    assert_eq!(
        v["describe"]["params_schema"]["properties"]["rate"]["format"], "decimal",
        "{v:#}"
    );
    let (st, v) = s
        .upload("harbin", &c.integrator, component("future-contract"))
        .await;
    error(st, &v, 422, "versions 0.2.0, 0.1.0");
    // A case file whose cases fail: refused with its report, nothing stored.
    let season = &c.digests[0].1;
    let wrong = case_file("w1.toml").replace("amount = \"12.56\"", "amount = \"12.57\"");
    let (st, v) = s
        .raw(
            M::PUT,
            &format!("/v1/companies/harbin/plugins/{season}/cases/wrong.toml"),
            &c.integrator,
            "application/toml",
            wrong.into_bytes(),
        )
        .await;
    error(st, &v, 422, "do not pass");
    assert!(v["error"]["details"]["report"]["cases"].is_array(), "{v:#}");
    // The activation gate bills a case file as `plugin test` does, among generated customers of
    // every class: a plugin whose bill rises when a call mixes classes passes a one-class case
    // file billed alone, and is refused here, naming the batch dependence.
    let (st, v) = s
        .upload("harbin", &c.integrator, component("hostile"))
        .await;
    assert!(st.is_success(), "{v:#}");
    let hostile = v["digest"].as_str().unwrap().to_string();
    let one_class = r#"
[[chain]]
plugin = "hostile"
params = { mode = "mixed-class" }
[[case]]
name = "a"
customer = { date = "2025-11-15", building_area = "61" }
expect.lines = [{ code = "hostile", amount = "1.00" }]
[[case]]
name = "b"
customer = { date = "2025-11-16", building_area = "75" }
expect.lines = [{ code = "hostile", amount = "1.00" }]
"#;
    let (st, v) = s
        .raw(
            M::PUT,
            &format!("/v1/companies/harbin/plugins/{hostile}/cases/one-class.toml"),
            &c.integrator,
            "application/toml",
            one_class.as_bytes().to_vec(),
        )
        .await;
    error(st, &v, 422, "do not pass");
    let report = v["error"]["details"].to_string();
    assert!(
        report.contains("depends on the other customer-days of its batch")
            && report.contains("billed among generated customer-days"),
        "{v:#}"
    );
    let (_, v) = s
        .get(
            &format!("/v1/companies/harbin/plugins/{season}/cases"),
            &c.reader,
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "only w1.toml: {v:#}");
    let (st, v) = s
        .raw(
            M::PUT,
            &format!("/v1/companies/harbin/plugins/{season}/cases/bad.toml"),
            &c.integrator,
            "application/toml",
            b"[[chain]\n".to_vec(),
        )
        .await;
    error(st, &v, 422, "not valid");
    // A chain naming a plugin the company does not have, or with bad parameters.
    let (st, v) = s
        .post(
            "/v1/companies/harbin/chains",
            &c.integrator,
            json!({"effective_from": "2025-10-01", "entries": [{"plugin": "nope"}]}),
        )
        .await;
    error(st, &v, 422, "no plugin \"nope\"");
    let (st, v) = s
        .post(
            "/v1/companies/harbin/chains",
            &c.integrator,
            json!({"effective_from": "2025-12-01", "entries": [
        {"plugin": "season", "params": {"start": "2025-10-20", "end": "2026-04-20"}},
        {"plugin": "area-tariff", "params": {"prices": "cheap"}}]}),
        )
        .await;
    error(st, &v, 422, "");
    let (_, v) = s.get("/v1/companies/harbin/chains", &c.reader).await;
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "a refused chain was stored: {v:#}"
    );

    // A CSV with bad rows at the start, in the middle and at the end: nothing imported.
    let mut rows =
        vec!["customer_id,class,status,low_income,building_area,usable_area".to_string()];
    for i in 0..50 {
        rows.push(format!("C{i:03},residential,active,false,75,60"));
    }
    rows[1] = "C000,residential,active,maybe,75,60".into();
    rows[25] = "C024,palace,active,false,75,60".into();
    rows[50] = "C049,residential,active,false,-75,60".into();
    let (st, v) = import(&s, &c, "customers", &(rows.join("\n") + "\n")).await;
    error(st, &v, 422, "nothing was imported");
    let errors: Vec<u64> = v["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(errors, [2, 26, 51], "{v:#}");
    assert!(
        v["error"]["details"]["errors"][0]["column"]
            .as_str()
            .unwrap()
            .contains("low_income")
    );
    let (st, v) = s
        .post(
            "/v1/companies/harbin/dry-run",
            &c.staff,
            json!({"customer": "C001", "date": "2025-10-20"}),
        )
        .await;
    error(st, &v, 404, "no data");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/xml",
            b"<a/>".to_vec(),
        )
        .await;
    error(st, &v, 415, "text/csv");
    // JSON: a field the first record lacks; a bad value (row 3: the second object); not JSON.
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/json",
            br#"[{"customer_id": "J1", "class": "residential", "building_area": 1},
             {"customer_id": "J2", "class": "residential", "building_area": 1, "colour": "red"}]"#
                .to_vec(),
        )
        .await;
    error(st, &v, 422, "the first record lacks");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/json",
            br#"[{"customer_id": "J1", "class": "residential", "building_area": 1},
             {"customer_id": "J2", "class": "palace", "building_area": 1}]"#
                .to_vec(),
        )
        .await;
    error(st, &v, 422, "nothing was imported");
    assert_eq!(v["error"]["details"]["errors"][0]["row"], 3, "{v:#}");
    let (st, v) = s.raw(M::POST, "/v1/companies/harbin/imports/customers", &c.staff, "application/x-ndjson",
        b"{\"customer_id\": \"J1\", \"class\": \"residential\", \"building_area\": 1}\n{\"customer_id\": \"J2\",\n".to_vec()).await;
    error(st, &v, 422, "line 2: not JSON");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/customers",
            &c.staff,
            "application/json",
            b"{\"a\": 1}".to_vec(),
        )
        .await;
    error(st, &v, 422, "array");
    let (st, v) = s
        .raw(
            M::POST,
            "/v1/companies/harbin/imports/invoices",
            &c.staff,
            "text/csv",
            b"a\n".to_vec(),
        )
        .await;
    error(st, &v, 404, "no import kind");

    // Runs: no key; a date without a chain; an expired key.
    let (st, v) = s
        .post(
            "/v1/companies/harbin/runs",
            &c.staff,
            json!({"date": "2025-10-20"}),
        )
        .await;
    error(st, &v, 400, "Idempotency-Key");
    let (st, v) = trigger(&s, &c, "2025-09-01", "k-early").await;
    error(st, &v, 422, "no rule chain is in force");
    let (st, v) = trigger(&s, &c, "2025-10-20", "k-1").await;
    ok(st, &v, 202);
    follow(&s, &c, v["id"].as_i64().unwrap()).await;
    let (st, v) = trigger(&s, &c, "2025-10-22", "k-gap").await;
    error(st, &v, 422, "has not been billed");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, v) = trigger(&s, &c, "2025-10-20", "k-1").await;
    error(st, &v, 422, "expired");
    // Cancelling a finished run.
    let (_, runs) = s.get("/v1/companies/harbin/runs", &c.reader).await;
    let id = runs[0]["id"].as_i64().unwrap();
    let (st, v) = s
        .post(
            &format!("/v1/companies/harbin/runs/{id}/cancel"),
            &c.staff,
            json!({}),
        )
        .await;
    error(st, &v, 409, "completed already");
    // Unknown things.
    let (st, v) = s.get("/v1/companies/harbin/runs/999999", &c.reader).await;
    error(st, &v, 404, "no run 999999");
    let (st, v) = s.get("/v1/nothing", &c.reader).await;
    error(st, &v, 404, "no such endpoint");
    let (st, v) = s
        .post(
            "/v1/companies/harbin/chains/2031-01-01/rollback",
            &c.integrator,
            json!({}),
        )
        .await;
    error(st, &v, 404, "no chain version");
    s.stop().await;
}
both!(bad_input);
