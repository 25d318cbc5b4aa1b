//! Payment notices through the HTTP API: a billing policy refused with what to fix and then
//! set, the season's notice issued by the first night, listed as JSON and CSV, read, printed
//! (staff only, every text escaped), and a customer's notices overdue after the due date.

use super::*;

async fn notices_over_http(db: TestDb) {
    let s = Server::start(&db, |st| st.api.require_cases = false).await;
    let c = company(&s, "harbin-notices").await;
    let slug = &c.slug;
    let update = |policies: Value| {
        json!({"name": "Harbin Heat", "time_zone": "Asia/Harbin", "policies": policies,
               "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}]})
    };
    let path = format!("/v1/companies/{slug}");
    let bad = update(json!({"billing": {"rules": [{"period": "season", "issue": "10-01"}]}}));
    let (st, v) = s
        .call(reqwest::Method::PUT, &path, Some(OPERATOR), Some(bad))
        .await;
    assert_eq!(st.as_u16(), 422, "{v:#}");
    assert!(v.to_string().contains("needs `issue` and `due`"), "{v:#}");
    let good = update(json!({"billing": {"rules": [
        {"period": "season", "issue": "10-01", "due": "12-31"}]}}));
    let (st, v) = s
        .call(reqwest::Method::PUT, &path, Some(OPERATOR), Some(good))
        .await;
    ok(st, &v, 200);
    let (st, v) = import(
        &s,
        &c,
        "customers",
        "customer_id,class,building_area,usable_area\nW1,residential,75,60.00\n",
    )
    .await;
    ok(st, &v, 200);
    let (st, v) = import(
        &s,
        &c,
        "profiles",
        "customer_id,account_no,name,community\nW1,HB-0001,<b>王小明</b>,松花江小区\n",
    )
    .await;
    ok(st, &v, 200);
    // The first night issues the season's notice (issued from 10-01, due 12-31).
    run_to_end(&s, &c, "2025-12-28").await;

    let list = format!("/v1/companies/{slug}/notices");
    let (st, v) = s.get(&list, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["notices"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["next"], Value::Null);
    let n = &v["notices"][0];
    assert_eq!(
        (&n["amount"], &n["due_on"], &n["kind"], &n["customer_id"]),
        (
            &json!("2299.20"),
            &json!("2025-12-31"),
            &json!("season"),
            &json!("W1")
        )
    );
    let id = n["id"].as_i64().unwrap();
    let (st, v) = s.get(&format!("{list}?format=csv"), &c.reader).await;
    ok(st, &v, 200);
    let csv = v.as_str().unwrap();
    assert!(csv.starts_with("number,customer_id,kind,"), "{csv}");
    assert!(
        csv.contains(",W1,season,2025-10-20,2026-04-20,0,2025-12-28,2025-12-31,2299.20,true,"),
        "{csv}"
    );
    let (st, v) = s.get(&format!("{list}?format=xml"), &c.reader).await;
    assert_eq!(st.as_u16(), 400, "{v:#}");
    let (st, v) = s.get(&format!("{list}?customer=W2"), &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["notices"], json!([]));

    let (st, v) = s.get(&format!("{list}/{id}"), &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(v["number"], format!("N-{id:06}"));
    let (st, v) = s.get(&format!("{list}/999999"), &c.reader).await;
    assert_eq!(st.as_u16(), 404, "{v:#}");

    let print = format!("{list}/{id}/print");
    let (st, v) = s.get(&print, &c.reader).await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s.get(&print, &c.staff).await;
    ok(st, &v, 200);
    let page = v.as_str().unwrap();
    assert!(
        page.contains("2299.20") && page.contains("2025-12-31"),
        "{page}"
    );
    assert!(
        page.contains("&lt;b&gt;王小明&lt;/b&gt;") && !page.contains("<b>王"),
        "{page}"
    );
    assert!(!page.contains("<script"), "{page}");

    let due = format!("/v1/companies/{slug}/customers/W1/notices");
    let (st, v) = s.get(&format!("{due}?as_of=2025-12-31"), &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(
        (&v["overdue"], &v["not_yet_due"]),
        (&json!("0.00"), &json!("2299.20")),
        "{v:#}"
    );
    let (st, v) = s.get(&format!("{due}?as_of=2026-01-01"), &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(
        (&v["overdue"], &v["not_yet_due"]),
        (&json!("2299.20"), &json!("0.00")),
        "{v:#}"
    );
    assert_eq!(v["notices"][0]["overdue"], true);
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/NOPE/notices"),
            &c.reader,
        )
        .await;
    assert_eq!(st.as_u16(), 404, "{v:#}");
    s.stop().await;
}
both!(notices_over_http);
