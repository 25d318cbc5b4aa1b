//! Accounts and payments through the HTTP API: a cashier's payments (idempotent, also when
//! two cashiers send the same transaction at once), refunds, a reversal, adjustments, the
//! account and the day's close; who may do what; every refusal in the one error shape.

use super::*;

async fn accounts_and_payments(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    run_to_end(&s, &c, "2025-10-20").await;
    run_to_end(&s, &c, "2025-10-21").await;
    let pay = |txn: &str, amount: &str, channel: &str| {
        json!({"customer_id": "W1", "amount": amount, "channel": channel, "channel_txn": txn,
               "paid_on": "2025-10-21", "method": "cash", "cashier": "li"})
    };
    let payments = format!("/v1/companies/{slug}/payments");

    // A counter payment; the same again is the same entry (200, new: false).
    let (st, v) = s
        .post(&payments, &c.staff, pay("R-1", "100.00", "counter"))
        .await;
    ok(st, &v, 201);
    assert_eq!(v["new"], true);
    let p1 = v["entry"]["id"].as_i64().unwrap();
    assert_eq!(
        v["entry"]["receipt_no"], "R-1",
        "the counter's receipt number"
    );
    assert_eq!(v["entry"]["source"], "api");
    assert!(
        v["entry"]["recorded_by"]
            .as_str()
            .unwrap()
            .starts_with("token ")
    );
    let (st, v) = s
        .post(&payments, &c.staff, pay("R-1", "100.00", "counter"))
        .await;
    ok(st, &v, 200);
    assert_eq!(
        (v["new"].as_bool(), v["entry"]["id"].as_i64()),
        (Some(false), Some(p1))
    );
    let (st, v) = s
        .post(&payments, &c.staff, pay("R-1", "90.00", "counter"))
        .await;
    error(st, &v, 409, "never changed");

    // Two cashiers (eight requests) record the same WeChat transaction at once: one payment.
    let answers = futures::future::join_all(
        (0..8).map(|_| s.post(&payments, &c.staff, pay("4200000001", "50.00", "wechat"))),
    )
    .await;
    let created = answers.iter().filter(|(st, _)| st.as_u16() == 201).count();
    let again = answers.iter().filter(|(st, _)| st.as_u16() == 200).count();
    assert_eq!((created, again), (1, 7), "{answers:?}");
    let ids: std::collections::BTreeSet<i64> = answers
        .iter()
        .map(|(_, v)| v["entry"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");

    // Who may: staff records, the read-only and the integrator's tokens may not; no token 401.
    for token in [&c.reader, &c.integrator] {
        let (st, v) = s
            .post(&payments, token, pay("R-2", "1.00", "counter"))
            .await;
        assert_eq!(st.as_u16(), 403, "{v:#}");
    }
    let (st, _) = s
        .call(
            reqwest::Method::POST,
            &payments,
            None,
            Some(pay("R-2", "1.00", "counter")),
        )
        .await;
    assert_eq!(st.as_u16(), 401);
    // Refused, in the error shape, with nothing recorded.
    let mut unknown = pay("R-3", "1.00", "counter");
    unknown["customer_id"] = json!("NOBODY");
    let (st, v) = s.post(&payments, &c.staff, unknown).await;
    error(st, &v, 404, "NOBODY");
    let mut future = pay("R-4", "1.00", "counter");
    future["paid_on"] = json!("2999-01-01");
    let (st, v) = s.post(&payments, &c.staff, future).await;
    error(st, &v, 422, "after today");
    let (st, v) = s
        .post(&payments, &c.staff, pay("R-5", "1.00", "cash-box"))
        .await;
    error(st, &v, 422, "counter, wechat");
    let (st, v) = s
        .post(&payments, &c.staff, pay("R-6", "1.005", "counter"))
        .await;
    error(st, &v, 422, "two decimals");
    let (st, v) = s
        .post(&payments, &c.staff, pay("R-7", "-5.00", "counter"))
        .await;
    error(st, &v, 422, "negative");
    let mut extra = pay("R-8", "1.00", "counter");
    extra["discount"] = json!("1");
    let (st, v) = s.post(&payments, &c.staff, extra).await;
    assert!(st.is_client_error(), "{v:#}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("discount"),
        "{v:#}"
    );

    // A refund out of the counter payment, then the rest reversed; a second reversal is 409.
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/entries/{p1}/refunds"),
            &c.staff,
            json!({"amount": "30.00", "note": "paid twice at the counter", "on_date": "2025-10-21"}),
        )
        .await;
    ok(st, &v, 201);
    assert_eq!(
        (v["entry"]["amount"].as_str(), v["entry"]["undoes"].as_i64()),
        (Some("-30.00"), Some(p1))
    );
    let reversal = format!("/v1/companies/{slug}/entries/{p1}/reversal");
    let (st, v) = s
        .post(
            &reversal,
            &c.staff,
            json!({"note": "a cashier's mistake", "on_date": "2025-10-21"}),
        )
        .await;
    ok(st, &v, 201);
    assert_eq!(v["entry"]["amount"], "-70.00");
    let (st, v) = s
        .post(
            &reversal,
            &c.staff,
            json!({"note": "again", "on_date": "2025-10-21"}),
        )
        .await;
    error(st, &v, 409, "undone already");
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/entries/999999/reversal"),
            &c.staff,
            json!({"note": "x"}),
        )
        .await;
    error(st, &v, 404, "no entry 999999");

    // An adjustment (a debit) and a write-off.
    let adjust = format!("/v1/companies/{slug}/customers/W1/adjustments");
    let (st, v) = s
        .post(
            &adjust,
            &c.staff,
            json!({"amount": "-5.00", "reason_code": "meter-error",
            "note": "a reading was missed", "on_date": "2025-10-21"}),
        )
        .await;
    ok(st, &v, 201);
    assert_eq!(v["entry"]["kind"], "adjustment");
    let (st, v) = s
        .post(
            &adjust,
            &c.staff,
            json!({"kind": "write-off", "amount": "2.00",
            "reason_code": "goodwill", "note": "a late start", "on_date": "2025-10-21"}),
        )
        .await;
    ok(st, &v, 201);
    assert_eq!(v["entry"]["kind"], "write-off");
    let (st, v) = s
        .post(
            &adjust,
            &c.staff,
            json!({"kind": "payment", "amount": "2.00",
            "reason_code": "x", "note": "x"}),
        )
        .await;
    error(st, &v, 422, "adjustment or write-off");

    // The account: two days billed (12.56 + 12.57), 50 paid by WeChat (the counter payment
    // undone), a debit of 5 and a write-off of 2: credit 50 - 5 + 2 - 25.13 = 21.87.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/account?as_of=2025-10-21"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["principal_billed"], "25.13", "{v:#}");
    assert_eq!(v["credits"], "47.00", "{v:#}");
    assert_eq!(v["dues"]["credit"], "21.87", "{v:#}");
    assert_eq!(v["balance"], "-21.87", "{v:#}");
    assert_eq!(v["last_bill_date"], "2025-10-21");
    assert_eq!(v["allocation"], "principal-first");
    assert_eq!(v["entries"].as_array().unwrap().len(), 6, "{v:#}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/account?as_of=2025-10-20"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(
        (v["balance"].as_str(), v["entries"].as_array().map(Vec::len)),
        (Some("12.56"), Some(0))
    );
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/NOBODY/account"),
            &c.reader,
        )
        .await;
    error(st, &v, 404, "NOBODY");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/account?as_of=yesterday"),
            &c.reader,
        )
        .await;
    assert_eq!(st.as_u16(), 400, "{v:#}");
    assert!(v["error"]["message"].is_string(), "{v:#}");

    // The statement of the two days, as JSON and as CSV; it adds up.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/statement?from=2025-10-20&to=2025-10-21"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(
        (
            v["opening_balance"].as_str(),
            v["charges_total"].as_str(),
            v["payments_total"].as_str(),
            v["adjustments_total"].as_str(),
            v["closing_balance"].as_str()
        ),
        (
            Some("0.00"),
            Some("25.13"),
            Some("50.00"),
            Some("-3.00"),
            Some("-21.87")
        ),
        "{v:#}"
    );
    let resp = s
        .req(reqwest::Method::GET,
            &format!("/v1/companies/{slug}/customers/W1/statement?from=2025-10-20&to=2025-10-21&format=csv"),
            Some(&c.reader))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    assert!(
        csv.starts_with("section,month,code,description,date,entry,kind,amount\n"),
        "{csv}"
    );
    assert!(csv.contains("\nclosing,,,,2025-10-21,,,-21.87\n"), "{csv}");
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/customers/W1/statement?from=2025-10-20&to=2025-10-21&format=pdf"), &c.reader)
        .await;
    error(st, &v, 400, "json or csv");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/statement?from=2025-10-20&to=2027-10-21"),
            &c.reader,
        )
        .await;
    error(st, &v, 400, "366 days");

    // Dates no book holds are a 400, never a database's error.
    for q in [
        "customers/W1/account?as_of=0001-01-01",
        "day-close?date=1000-01-01",
        "customers/W1/statement?from=0001-01-01&to=0001-12-31",
    ] {
        let (st, v) = s.get(&format!("/v1/companies/{slug}/{q}"), &c.reader).await;
        error(st, &v, 400, "between 1900-01-01 and 9999-12-31");
    }

    // One entry; the day's close per cashier and channel.
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/entries/{p1}"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v["channel_txn"], "R-1");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/day-close?date=2025-10-21"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["net"], "50.00", "{v:#}");
    // By who took or gave back the money: li's counter and WeChat takings; the refund and the
    // reversal named no cashier, so they are a till of their own.
    let tills: Vec<(Option<&str>, &str, &str, &str)> = v["tills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["cashier"].as_str(),
                t["channel"].as_str().unwrap(),
                t["paid"].as_str().unwrap(),
                t["undone_amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tills,
        [
            (None, "counter", "0.00", "-100.00"),
            (Some("li"), "counter", "100.00", "0.00"),
            (Some("li"), "wechat", "50.00", "0.00"),
        ],
        "{v:#}"
    );

    // Nothing billed after 10-21: nothing is stale.
    let stale = format!("/v1/companies/{slug}/stale-dates");
    let (st, v) = s.get(&stale, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(
        (
            v["stale_from"].is_null(),
            v["dates"].as_array().map(Vec::len)
        ),
        (true, Some(0)),
        "{v:#}"
    );
    // The payment changes the next night's balance: the bill of 10-22 starts from it.
    run_to_end(&s, &c, "2025-10-22").await;
    let bill = db
        .store
        .bill(
            s_company_id(&db, slug).await,
            "W1",
            chrono::NaiveDate::from_ymd_opt(2025, 10, 22).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bill.row.paid_before, "47.00".parse().unwrap());
    assert_eq!(bill.row.arrears, rust_decimal::Decimal::ZERO);
    // A correction dated 10-21, recorded after 10-22 was billed: 10-22 is stale until run again.
    let (st, v) = s
        .post(
            &adjust,
            &c.staff,
            json!({"amount": "-1.00", "reason_code": "meter-error",
            "note": "late", "on_date": "2025-10-21"}),
        )
        .await;
    ok(st, &v, 201);
    let (st, v) = s.get(&stale, &c.reader).await;
    ok(st, &v, 200);
    assert_eq!(
        (v["stale_from"].as_str(), v["dates"].clone()),
        (Some("2025-10-22"), json!(["2025-10-22"])),
        "{v:#}"
    );
    let (st, v) = trigger(&s, &c, "2025-10-22", "again-2025-10-22").await;
    assert_eq!(st.as_u16(), 202, "{v:#}");
    follow(&s, &c, v["id"].as_i64().unwrap()).await;
    let (st, v) = s.get(&stale, &c.reader).await;
    ok(st, &v, 200);
    assert!(v["stale_from"].is_null(), "{v:#}");

    // The OpenAPI document has every endpoint.
    let (st, v) = s
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    ok(st, &v, 200);
    for path in [
        "/v1/companies/{company}/payments",
        "/v1/companies/{company}/customers/{customer}/account",
        "/v1/companies/{company}/customers/{customer}/adjustments",
        "/v1/companies/{company}/entries/{id}",
        "/v1/companies/{company}/entries/{id}/reversal",
        "/v1/companies/{company}/entries/{id}/refunds",
        "/v1/companies/{company}/day-close",
        "/v1/companies/{company}/stale-dates",
        "/v1/companies/{company}/customers/{customer}/statement",
    ] {
        assert!(v["paths"][path].is_object(), "{path} is not documented");
    }
    s.stop().await;
}
both!(accounts_and_payments);

async fn s_company_id(db: &TestDb, slug: &str) -> i32 {
    db.store.company(slug).await.unwrap().id
}
