//! The customer directory through the HTTP API: profiles imported, searched (masked for
//! everyone, revealed to staff who ask), read by date and as history, corrected as new
//! revisions with who and why; every refusal in the one error shape.

use super::*;

/// `path` with the query `params`, percent-encoded (names and addresses are Chinese).
fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let u = reqwest::Url::parse_with_params(&format!("http://h{path}"), params).unwrap();
    format!("{}?{}", u.path(), u.query().unwrap_or(""))
}

const PROFILES: &str = "customer_id,account_no,name,phone,community,building,unit,room\n\
    W1,HB-0001,张三,13812345678,幸福小区,3,2,501\n\
    W2,HB-0002,张三丰,13900005678,幸福小区,3,2,502\n\
    W3,HB-0003,李四,13700001111,幸福小区二期,1,1,101\n";

async fn the_customer_directory(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "profiles", PROFILES).await;
    ok(st, &v, 200);
    let search = format!("/v1/companies/{slug}/customers");

    // Masked for every role; the phone's last digits find both, ordered by the phone.
    let (st, v) = s
        .get(&with_query(&search, &[("phone", "5678")]), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["masked"], true);
    assert_eq!(v["more"], false);
    let found: Vec<_> = v["customers"].as_array().unwrap().iter().collect();
    assert_eq!(
        found
            .iter()
            .map(|p| p["customer_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["W2", "W1"]
    );
    assert_eq!(found[1]["name"], "张*");
    assert_eq!(found[1]["phone"], "138****5678");
    assert_eq!(found[1]["account_no"], "HB-0001");
    assert_eq!(found[1]["room"], "501");
    // Staff who ask see the data; a reader who asks is refused.
    let (st, v) = s
        .get(
            &with_query(
                &search,
                &[("name", "张三"), ("reveal", "true"), ("limit", "1")],
            ),
            &c.staff,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["masked"], false);
    assert_eq!(v["more"], true, "two match, one asked for");
    assert_eq!(v["customers"][0]["name"], "张三");
    assert_eq!(v["customers"][0]["phone"], "13812345678");
    let (st, v) = s
        .get(
            &with_query(&search, &[("name", "张"), ("reveal", "true")]),
            &c.reader,
        )
        .await;
    error(st, &v, 403, "staff only");
    // By address, narrowing from the community.
    let (st, v) = s
        .get(
            &with_query(
                &search,
                &[
                    ("community", "幸福小区"),
                    ("building", "3"),
                    ("unit", "2"),
                    ("room", "502"),
                ],
            ),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["customers"].as_array().unwrap().len(), 1);
    assert_eq!(v["customers"][0]["customer_id"], "W2");
    // The largest limit is taken (the search asks the store for one more, to say `more`).
    let (st, v) = s
        .get(
            &with_query(&search, &[("name", "张"), ("limit", "200")]),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["more"], false, "{v:#}");
    // Refusals: no criterion, a part without the parts above it, a bad limit, an unknown
    // parameter: 400 in the error shape.
    let (st, v) = s.get(&search, &c.reader).await;
    error(st, &v, 400, "at least one");
    let (st, v) = s
        .get(&with_query(&search, &[("unit", "2")]), &c.reader)
        .await;
    error(st, &v, 400, "address parts above");
    let (st, v) = s
        .get(
            &with_query(&search, &[("name", "张"), ("limit", "0")]),
            &c.reader,
        )
        .await;
    error(st, &v, 400, "limit");
    let (st, v) = s
        .get(&with_query(&search, &[("nickname", "x")]), &c.reader)
        .await;
    error(st, &v, 400, "nickname");

    // A correction: a new revision with who and why; the same again changes nothing.
    let profile = format!("/v1/companies/{slug}/customers/W1/profile");
    let body = json!({"valid_from": "2025-11-01", "account_no": "HB-0001", "name": "张三",
        "phone": "138-0000-9999", "community": "幸福小区", "building": "3", "unit": "2",
        "room": "501", "reason": "the customer's new phone"});
    let (st, v) = s.post(&profile, &c.staff, body.clone()).await;
    ok(st, &v, 201);
    assert_eq!(v["new"], true);
    assert_eq!(v["profile"]["phone"], "13800009999");
    assert!(
        v["profile"]["recorded_by"]
            .as_str()
            .unwrap()
            .starts_with("token ")
    );
    assert_eq!(v["profile"]["source"], "api");
    let (st, v) = s.post(&profile, &c.staff, body.clone()).await;
    ok(st, &v, 200);
    assert_eq!(v["new"], false);
    // Read: in force on a date, the newest, every revision.
    let (st, v) = s
        .get(
            &with_query(&profile, &[("as_of", "2025-10-31"), ("reveal", "true")]),
            &c.staff,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["revisions"][0]["phone"], "13812345678");
    let (st, v) = s.get(&profile, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["revisions"][0]["phone"], "138****9999");
    let (st, v) = s
        .get(&with_query(&profile, &[("history", "true")]), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(v["revisions"][1]["reason"], "the customer's new phone");
    // Refusals, with nothing recorded.
    let mut taken = body.clone();
    taken["account_no"] = json!("HB-0002");
    let (st, v) = s.post(&profile, &c.staff, taken).await;
    error(st, &v, 409, "belongs to customer W2");
    let mut no_community = body.clone();
    no_community["community"] = json!(null);
    let (st, v) = s.post(&profile, &c.staff, no_community).await;
    error(st, &v, 422, "community");
    let (st, v) = s.post(&profile, &c.reader, body.clone()).await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/customers/NOBODY/profile"),
            &c.staff,
            body.clone(),
        )
        .await;
    error(st, &v, 404, "NOBODY");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/NOBODY/profile"),
            &c.reader,
        )
        .await;
    error(st, &v, 404, "NOBODY");
    let (st, v) = s
        .get(&with_query(&profile, &[("history", "true")]), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(
        v["revisions"].as_array().unwrap().len(),
        2,
        "nothing recorded"
    );

    // The OpenAPI document describes the directory.
    let (st, v) = s
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    ok(st, &v, 200);
    for p in [
        "/v1/companies/{company}/customers",
        "/v1/companies/{company}/customers/{customer}/profile",
    ] {
        assert!(v["paths"][p].is_object(), "{p} is not in the document");
    }
    s.stop().await;
}

both!(the_customer_directory);
