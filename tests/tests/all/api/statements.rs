//! Channel statements through the HTTP API: a WeChat Pay trade bill of a day reconciled
//! against the payments the cashiers and notifications recorded, with every kind of
//! discrepancy; the same file again changing nothing; a lost notification recovered into a
//! payment with one confirmation; hostile and wrong files refused with nothing stored; banks'
//! column mappings saved.

use heatbill_statements::Channel as StChannel;
use heatbill_statements::fixtures::{self, SummaryMode, WechatOpts};

use super::*;

async fn statements_reconciled(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;
    let date = chrono::NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    let day = fixtures::day(StChannel::Wechat, 7, date, 30, 0);
    // The day's payers are customers P00..P29 with the fixture's account numbers.
    let mut customers = String::from("customer_id,class,building_area\n");
    let mut profiles = String::from("customer_id,account_no\n");
    for (i, p) in day.payments.iter().enumerate() {
        customers.push_str(&format!("P{i:02},residential,75\n"));
        profiles.push_str(&format!("P{i:02},{}\n", p.account));
    }
    let (st, v) = import(&s, &c, "customers", &customers).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "profiles", &profiles).await;
    ok(st, &v, 200);
    // The notifications that arrived: all but the last three (lost); the first recorded one
    // yuan more than paid; and one payment the channel does not know.
    let payments = format!("/v1/companies/{slug}/payments");
    for (i, p) in day.payments.iter().enumerate().take(27) {
        let amount = if i == 0 {
            p.amount + rust_decimal::Decimal::ONE
        } else {
            p.amount
        };
        let (st, v) = s
            .post(
                &payments,
                &c.staff,
                json!({"customer_id": format!("P{i:02}"), "amount": amount.to_string(),
                       "channel": "wechat", "channel_txn": p.txn, "paid_on": date}),
            )
            .await;
        ok(st, &v, 201);
    }
    let (st, v) = s
        .post(
            &payments,
            &c.staff,
            json!({"customer_id": "P00", "amount": "88.00", "channel": "wechat",
                   "channel_txn": "4200NOT-IN-THE-BILL", "paid_on": date}),
        )
        .await;
    ok(st, &v, 201);

    let bill = fixtures::wechat_bill(date, &day.payments, &[], &WechatOpts::default());
    let server = &s;
    let upload = |query: &str, token: &str, body: Vec<u8>| {
        let path = format!("/v1/companies/{slug}/statements?{query}");
        let token = token.to_string();
        async move {
            server
                .raw(
                    reqwest::Method::POST,
                    &path,
                    &token,
                    "application/octet-stream",
                    body,
                )
                .await
        }
    };
    let (st, v) = upload(
        "channel=wechat&file_name=wx-20251201.csv",
        &c.staff,
        bill.clone(),
    )
    .await;
    ok(st, &v, 201);
    assert_eq!(v["new"], true);
    let stmt = &v["statement"];
    assert_eq!(
        (
            stmt["lines"].as_i64(),
            stmt["matched"].as_i64(),
            stmt["missing_in_heatbill"].as_i64(),
            stmt["missing_in_channel"].as_i64(),
            stmt["amount_mismatch"].as_i64()
        ),
        (Some(30), Some(26), Some(3), Some(1), Some(1)),
        "{v:#}"
    );
    assert_eq!(stmt["period_from"], "2025-12-01");
    let id = stmt["id"].as_i64().unwrap();
    let fees: rust_decimal::Decimal = day.payments.iter().map(|p| p.fee).sum();
    assert_eq!(
        stmt["fees"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap(),
        fees
    );
    // The same file again: the same statement, nothing changed.
    let (st, v) = upload("channel=wechat&file_name=again.csv", &c.staff, bill.clone()).await;
    ok(st, &v, 200);
    assert_eq!(
        (v["new"].as_bool(), v["statement"]["id"].as_i64()),
        (Some(false), Some(id))
    );

    // The lost notifications, each with the customer its memo's account number names.
    let items = format!("/v1/companies/{slug}/statements/{id}/items");
    let (st, v) = s
        .get(
            &format!("{items}?discrepancy=missing-in-heatbill"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let lost = v["items"].as_array().unwrap().clone();
    assert_eq!(lost.len(), 3, "{v:#}");
    for (k, item) in lost.iter().enumerate() {
        assert_eq!(
            item["suggested_customer"],
            format!("P{:02}", 27 + k),
            "{item:#}"
        );
        assert_eq!(item["channel_txn"], day.payments[27 + k].txn);
        assert!(item["recovered_entry"].is_null());
    }
    let (st, v) = s.get(&items, &c.reader).await;
    ok(st, &v, 200);
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["discrepancy"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 5, "{v:#}");
    let mismatch = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["discrepancy"] == "amount-mismatch")
        .unwrap();
    assert_eq!(mismatch["channel_txn"], day.payments[0].txn);
    let (st, v) = s.get(&format!("{items}?discrepancy=lost"), &c.reader).await;
    error(st, &v, 400, "missing-in-heatbill");

    // Recovered with one confirmation: a payment of the suggested customer, once.
    let n = lost[0]["item_no"].as_i64().unwrap();
    let recover = format!("{items}/{n}/recover");
    let (st, v) = s.post(&recover, &c.staff, json!({})).await;
    ok(st, &v, 201);
    assert_eq!(v["entry"]["customer_id"], "P27");
    assert_eq!(v["entry"]["channel"], "wechat");
    assert_eq!(v["entry"]["source"], "statement");
    assert_eq!(v["entry"]["on_date"], "2025-12-01");
    assert_eq!(
        v["entry"]["amount"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap(),
        day.payments[27].amount
    );
    let entry = v["entry"]["id"].as_i64().unwrap();
    let (st, v) = s.post(&recover, &c.staff, json!({})).await;
    ok(st, &v, 200);
    assert_eq!(v["entry"]["id"].as_i64(), Some(entry));
    let (st, v) = s
        .get(
            &format!("{items}?discrepancy=missing-in-heatbill"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    assert_eq!(v["items"][0]["recovered_entry"].as_i64(), Some(entry));
    // Only a lost payment is recovered; readers may not.
    let other = format!(
        "/v1/companies/{slug}/statements/{id}/items/{}/recover",
        mismatch["item_no"].as_i64().unwrap()
    );
    let (st, v) = s.post(&other, &c.staff, json!({})).await;
    error(
        st,
        &v,
        409,
        "only a payment or a refund missing in heatbill",
    );
    let (st, v) = s.post(&recover, &c.reader, json!({})).await;
    assert_eq!(st.as_u16(), 403, "{v:#}");

    // A refund the channel made that heatbill never heard of (the next day's bill has it): it
    // is recovered into a refund of the payment it names, once.
    let next = date.succ_opt().unwrap();
    let paid = &day.payments[1];
    let refund = fixtures::FixtureRefund {
        refund_txn: format!("5030001{}00000000001", next.format("%Y%m%d")),
        original_txn: paid.txn.clone(),
        order_no: paid.order_no.clone(),
        account: paid.account.clone(),
        time: next.and_hms_opt(10, 0, 0).unwrap(),
        amount: rust_decimal::Decimal::new(1000, 2),
        fee: rust_decimal::Decimal::new(6, 2),
    };
    let bill2 = fixtures::wechat_bill(
        next,
        &[],
        std::slice::from_ref(&refund),
        &WechatOpts::default(),
    );
    let (st, v) = upload("channel=wechat&file_name=wx-20251202.csv", &c.staff, bill2).await;
    ok(st, &v, 201);
    assert_eq!(v["statement"]["missing_in_heatbill"], 1, "{v:#}");
    let id2 = v["statement"]["id"].as_i64().unwrap();
    let items2 = format!("/v1/companies/{slug}/statements/{id2}/items");
    let (st, v) = s.get(&items2, &c.reader).await;
    ok(st, &v, 200);
    let item = &v["items"][0];
    assert_eq!(item["line_kind"], "refund", "{v:#}");
    assert_eq!(item["original_txn"], paid.txn.as_str());
    assert_eq!(item["suggested_customer"], "P01");
    let recover2 = format!("{items2}/{}/recover", item["item_no"]);
    let (st, v) = s.post(&recover2, &c.staff, json!({})).await;
    ok(st, &v, 201);
    assert_eq!(v["entry"]["kind"], "refund", "{v:#}");
    assert_eq!(v["entry"]["customer_id"], "P01");
    assert_eq!(v["entry"]["amount"], "-10.00");
    assert_eq!(v["entry"]["on_date"], next.to_string());
    assert_eq!(v["entry"]["channel_txn"], refund.refund_txn.as_str());
    assert!(v["entry"]["undoes"].as_i64().is_some(), "{v:#}");
    let refund_entry = v["entry"]["id"].as_i64();
    let (st, v) = s.post(&recover2, &c.staff, json!({})).await;
    ok(st, &v, 200);
    assert_eq!(v["entry"]["id"].as_i64(), refund_entry);
    let (_, v) = s.get(&items2, &c.reader).await;
    assert_eq!(
        v["items"][0]["recovered_entry"].as_i64(),
        refund_entry,
        "{v:#}"
    );

    // Wrong and hostile files: a clear error, nothing stored.
    let off = WechatOpts {
        summary: SummaryMode::Off {
            count: 1,
            settled: rust_decimal::Decimal::ONE,
        },
        ..WechatOpts::default()
    };
    let bad = fixtures::wechat_bill(date, &day.payments, &[], &off);
    let (st, v) = upload("channel=wechat", &c.staff, bad).await;
    error(st, &v, 422, "not imported");
    let (st, v) = upload("channel=alipay", &c.staff, bill[..bill.len() / 2].to_vec()).await;
    error(st, &v, 422, "not imported");
    let truncated_zip = {
        let z = fixtures::zip_of(&[("业务明细.csv", b"#x\n".as_slice())]);
        z[..z.len() - 10].to_vec()
    };
    let (st, v) = upload("channel=alipay", &c.staff, truncated_zip).await;
    error(st, &v, 422, "not imported");
    let nul = String::from_utf8(bill.clone())
        .unwrap()
        .replacen("`HB", "`H\u{0}B", 1)
        .into_bytes();
    let (st, v) = upload("channel=wechat", &c.staff, nul).await;
    error(st, &v, 422, "control characters");
    let (st, v) = upload("channel=cash-box", &c.staff, bill.clone()).await;
    error(st, &v, 400, "wechat, alipay or bank");
    let (st, v) = upload("channel=bank", &c.staff, bill.clone()).await;
    error(st, &v, 400, "profile");
    let (st, v) = upload("channel=bank&profile=icbc", &c.staff, bill.clone()).await;
    error(st, &v, 404, "no bank profile");
    let (st, v) = upload("channel=wechat", &c.reader, bill.clone()).await;
    assert_eq!(st.as_u16(), 403, "{v:#}");
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/statements"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(
        v["statements"].as_array().unwrap().len(),
        2,
        "the day's statement and the next day's refund, nothing else stored: {v:#}"
    );

    // A bank's column mapping, saved and listed; a bad one refused.
    let profile = serde_json::to_value(fixtures::credit_debit_profile()).unwrap();
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/bank-profiles/icbc"),
            Some(&c.staff),
            Some(profile.clone()),
        )
        .await;
    assert_eq!(st.as_u16(), 204, "{v:#}");
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/bank-profiles"), &c.reader)
        .await;
    ok(st, &v, 200);
    assert_eq!(v[0]["name"], "icbc");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/companies/{slug}/bank-profiles/bad"),
            Some(&c.staff),
            Some(json!({"name": "bad"})),
        )
        .await;
    error(st, &v, 422, "not a bank profile");

    // The bank's XLSX export, read through the same mapping: the file is recognised by its
    // first bytes. Nobody recorded these transfers: each is a lost notification.
    let bank_day = fixtures::day(StChannel::Bank, 11, date + chrono::Days::new(2), 4, 0);
    let xlsx = fixtures::bank_xlsx(
        &fixtures::credit_debit_profile(),
        &bank_day.payments,
        &[],
        &fixtures::BankXlsxOpts {
            serial_dates: true,
            inline_strings: false,
        },
    );
    assert_eq!(&xlsx[..4], b"PK\x03\x04");
    let (st, v) = upload(
        "channel=bank&profile=icbc&file_name=icbc.xlsx",
        &c.staff,
        xlsx.clone(),
    )
    .await;
    ok(st, &v, 201);
    assert_eq!(v["statement"]["channel"], "bank", "{v:#}");
    assert_eq!(v["statement"]["lines"], 4, "{v:#}");
    assert_eq!(v["statement"]["missing_in_heatbill"], 4, "{v:#}");
    let (st, v) = upload("channel=bank&profile=icbc", &c.staff, xlsx).await;
    ok(st, &v, 200);
    s.stop().await;
}

both!(statements_reconciled);
