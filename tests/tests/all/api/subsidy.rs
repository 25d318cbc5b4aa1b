//! The government's share through the HTTP API: a low-income household billed, its share on
//! the receivable and the settlement list (names masked unless staff ask), a transfer recorded,
//! repeated and refused, and the receivable settled.

use super::*;

async fn the_government_share(db: TestDb) {
    let s = Server::start(&db, |st| st.api.require_cases = false).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;
    let (st, v) = s
        .upload(slug, &c.integrator, component("low-income-subsidy"))
        .await;
    ok(st, &v, 201);
    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-12-01");
    chain["entries"].as_array_mut().unwrap().insert(
        2,
        json!({"plugin": "low-income-subsidy",
               "params": {"share": "1.00", "area_cap": "45", "area_basis": "usable"}}),
    );
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/chains"),
            &c.integrator,
            chain,
        )
        .await;
    ok(st, &v, 201);
    let (st, v) = import(
        &s,
        &c,
        "customers",
        "customer_id,class,status,low_income,building_area,usable_area\n\
         W,residential,active,true,75,60.00\nN,residential,active,false,75,60.00\n",
    )
    .await;
    ok(st, &v, 200);
    let (st, v) = import(
        &s,
        &c,
        "profiles",
        "customer_id,account_no,name,community\nW,HB-0001,王小明,松花江小区\n",
    )
    .await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-12-05").await;

    let receivable = format!("/v1/companies/{slug}/subsidy/receivable?as_of=2025-12-05");
    let (st, v) = s.get(&receivable, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["billed"], "9.42", "{v:#}");
    assert_eq!(v["outstanding"], "9.42");
    assert_eq!(v["months"][0]["month"], "2025-12");

    let transfers = format!("/v1/companies/{slug}/subsidy/transfers");
    let body = json!({"reference": "GOV-2025-12", "amount": "9.42", "received_on": "2025-12-05",
                      "period_from": "2025-12-01", "period_to": "2025-12-31"});
    let (st, v) = s.post(&transfers, &c.reader, body.clone()).await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s.post(&transfers, &c.staff, body.clone()).await;
    ok(st, &v, 201);
    assert_eq!(v["new"], true);
    assert_eq!(v["transfer"]["amount"], "9.42");
    let id = v["transfer"]["id"].as_i64().unwrap();
    let (st, v) = s.post(&transfers, &c.staff, body).await;
    ok(st, &v, 200);
    assert_eq!(v["new"], false);
    assert_eq!(v["transfer"]["id"], id);
    let (st, v) = s
        .post(
            &transfers,
            &c.staff,
            json!({"reference": "GOV-2025-12", "amount": "1.00", "received_on": "2025-12-05"}),
        )
        .await;
    error(st, &v, 409, "recorded already");
    let (st, v) = s
        .post(
            &transfers,
            &c.staff,
            json!({"reference": "GOV-X", "amount": "-1.00"}),
        )
        .await;
    error(st, &v, 422, "undoes");
    let (st, v) = s
        .post(
            &transfers,
            &c.staff,
            json!({"reference": "GOV-Y", "amount": "1.00", "received_on": "2099-01-01"}),
        )
        .await;
    error(st, &v, 422, "after today");
    let (st, v) = s.get(&receivable, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["received"], "9.42", "{v:#}");
    assert_eq!(v["outstanding"], "0.00");
    let (st, v) = s.get(&transfers, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["transfers"].as_array().unwrap().len(), 1, "{v:#}");

    // The settlement list: the household, its name masked unless staff ask.
    let list = format!("/v1/companies/{slug}/subsidy/settlement?from=2025-12-01&to=2025-12-31");
    let (st, v) = s.get(&list, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["customers"], 1, "{v:#}");
    assert_eq!(v["days"], 1);
    assert_eq!(v["amount"], "9.42");
    assert_eq!(v["lines"][0]["customer_id"], "W");
    assert_eq!(v["lines"][0]["account_no"], "HB-0001");
    assert_eq!(v["lines"][0]["name"], "王**");
    let (st, v) = s.get(&format!("{list}&reveal=true"), &c.reader).await;
    error(st, &v, 403, "staff only");
    let (_, v) = s.get(&format!("{list}&reveal=true"), &c.staff).await;
    assert_eq!(v["lines"][0]["name"], "王小明");
    let (st, v) = s.get(&format!("{list}&format=csv"), &c.reader).await;
    ok(st, &v, 200);
    let csv = v.as_str().unwrap();
    assert_eq!(
        csv,
        "customer,account_no,name,community,building,unit,room,days,first_day,last_day,amount\n\
         W,HB-0001,王**,松花江小区,,,,1,2025-12-05,2025-12-05,9.42\n\
         total,1,,,,,,1,,,9.42\n"
    );
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/subsidy/settlement?from=2025-12-31&to=2025-12-01"),
            &c.reader,
        )
        .await;
    error(st, &v, 400, "from <= to");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/subsidy/settlement?from=2025-12-01"),
            &c.reader,
        )
        .await;
    assert_eq!(st.as_u16(), 400, "{v:#}");
    s.stop().await;
}

both!(the_government_share);
