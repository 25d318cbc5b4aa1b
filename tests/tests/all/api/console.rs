//! The operator console through the real HTTP server: sessions, CSRF, tenancy and roles at
//! the protocol level (cookies and forms, as a browser sends them), and the whole of it in a
//! real headless Chromium (`tests/console/browser.mjs`, playwright-core on Debian's
//! `chromium`).

use super::*;

/// The parked customer of the console's company: no usable area, which the chain's tariff
/// bills by.
const CONSOLE_CUSTOMERS: &str = "customer_id,class,status,low_income,building_area,usable_area\n\
    W1,residential,active,false,75,60.00\n\
    W2,residential,active,false,80,64.00\n\
    W3,non-residential,active,false,100,90.00\n\
    W5,residential,active,false,75,\n";

const PROFILES: &str = "customer_id,account_no,name,phone,community,building,unit,room\n\
    W1,A-0001,张三,13800001234,松花江小区,3,2,501\n\
    W2,A-0002,李四,13900005678,松花江小区,3,2,502\n";

/// A browser without a cookie jar: the test sends and reads cookies itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The value a `Set-Cookie` gives `name`.
fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        c.split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

/// The first `value="…"` after `name="{field}"` in a page.
fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

/// Signs in with `token`; returns the session cookie.
async fn sign_in(s: &Server, token: &str) -> String {
    let http = browser();
    let r = http
        .get(format!("{}/console/sign-in", s.base))
        .send()
        .await
        .unwrap();
    let pre = cookie_value(&set_cookies(&r), "hb_pre").unwrap();
    let r = http
        .post(format!("{}/console/sign-in", s.base))
        .header("cookie", format!("hb_pre={pre}"))
        .form(&[("token", token), ("_csrf", pre.as_str()), ("next", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
    let cookies = set_cookies(&r);
    let session = cookie_value(&cookies, "hb_session").unwrap();
    let c = cookies
        .iter()
        .find(|c| c.starts_with("hb_session="))
        .unwrap();
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"),
        "{c}"
    );
    session
}

async fn page(s: &Server, session: &str, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = browser()
        .get(format!("{}{path}", s.base))
        .header("cookie", format!("hb_session={session}"))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let h = r.headers().clone();
    (st, r.text().await.unwrap(), h)
}

async fn post_form(
    s: &Server,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut r = browser()
        .post(format!("{}{path}", s.base))
        .header("cookie", format!("hb_session={session}"))
        .form(form);
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    r.send().await.unwrap()
}

async fn runs_of(s: &Server, c: &Company) -> usize {
    let (st, v) = s
        .get(&format!("/v1/companies/{}/runs", c.slug), &c.reader)
        .await;
    ok(st, &v, 200);
    v.as_array().unwrap().len()
}

async fn console_over_http(db: TestDb) {
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let other = company(&s, "other").await;
    let slug = &c.slug;
    let (st, v) = import(&s, &c, "customers", CONSOLE_CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &other, "customers", CONSOLE_CUSTOMERS).await;
    ok(st, &v, 200);

    // Not signed in: every page sends the browser to the sign-in page, and says where from.
    let r = browser()
        .get(format!("{}/console/companies/{slug}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers()["location"],
        "/console/sign-in?next=/console/companies/harbin"
    );
    // The sign-in page: a strict CSP (no inline script, nothing from another origin).
    let r = browser()
        .get(format!("{}/console/sign-in", s.base))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self';") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let pre = cookie_value(&set_cookies(&r), "hb_pre").unwrap();

    // A wrong token, or a sign-in form without its cookie: no session.
    for (token, cookie) in [
        ("hb_wrong", pre.clone()),
        (c.staff.as_str(), "0".repeat(32)),
    ] {
        let r = browser()
            .post(format!("{}/console/sign-in", s.base))
            .header("cookie", format!("hb_pre={cookie}"))
            .form(&[("token", token), ("_csrf", pre.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert!(cookie_value(&set_cookies(&r), "hb_session").is_none());
    }
    // Behind TLS (the proxy says so), the cookie is Secure.
    let r = browser()
        .post(format!("{}/console/sign-in", s.base))
        .header("cookie", format!("hb_pre={pre}"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", c.staff.as_str()), ("_csrf", pre.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("hb_session=") && c.contains("; Secure")),
        "{:?}",
        set_cookies(&r)
    );

    let staff = sign_in(&s, &c.staff).await;
    let (st, _, h) = page(&s, &staff, "/console").await;
    assert_eq!(
        (st, h["location"].to_str().unwrap()),
        (303, "/console/companies/harbin")
    );
    let (st, html, _) = page(&s, &staff, &format!("/console/companies/{slug}")).await;
    assert_eq!(st, 200, "{html}");
    assert!(
        html.contains("<html lang=\"zh-CN\">"),
        "a company in Harbin reads Chinese"
    );
    assert!(html.contains("id=\"run-night\""), "staff may run a night");
    let csrf = field(&html, "_csrf");
    let key = field(&html, "key");

    // Another company's pages are not found, exactly as a company that does not exist.
    for path in [
        "/console/companies/other".to_string(),
        "/console/companies/other/customers/W1".to_string(),
        "/console/companies/nowhere/customers/W1".to_string(),
    ] {
        let (st, html, _) = page(&s, &staff, &path).await;
        assert_eq!(st, 404, "{path}: {html}");
        assert!(html.contains("no company"), "{html}");
    }

    // A state change without the session's CSRF token, or from another site: refused, and
    // nothing happens.
    let runs = format!("/console/companies/{slug}/runs");
    let r = post_form(
        &s,
        &staff,
        &runs,
        &[("date", "2025-10-20"), ("key", &key)],
        None,
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = post_form(
        &s,
        &staff,
        &runs,
        &[("date", "2025-10-20"), ("key", &key), ("_csrf", &csrf)],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(runs_of(&s, &c).await, 0, "a refused form starts no run");

    // The night, from the form; the same form sent twice is one run.
    let form = [
        ("date", "2025-10-20"),
        ("key", key.as_str()),
        ("_csrf", csrf.as_str()),
    ];
    let r = post_form(&s, &staff, &runs, &form, Some(&s.base)).await;
    assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
    let at = r.headers()["location"].to_str().unwrap().to_string();
    let r = post_form(&s, &staff, &runs, &form, None).await;
    assert_eq!(r.headers()["location"].to_str().unwrap(), at);
    let id: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
    let (names, last) = follow(&s, &c, id).await;
    assert_eq!(names.last().map(String::as_str), Some("finished"));
    assert_eq!(last["parked"], 1, "{last:#}");
    let (st, html, _) = page(&s, &staff, &at).await;
    assert_eq!(st, 200);
    assert!(
        html.contains("/console/companies/harbin/customers/W5") && html.contains("missing-input"),
        "the report links the parked customer: {html}"
    );
    assert!(
        !html.contains("data-events="),
        "a finished run is not followed"
    );

    // Profiles, then the counter: find by phone suffix, pay, see the receipt and the balance.
    let (st, v) = import(&s, &c, "profiles", PROFILES).await;
    ok(st, &v, 200);
    let (st, html, _) = page(
        &s,
        &staff,
        &format!("/console/companies/{slug}/counter?by=phone&q=1234"),
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        html.contains("id=\"pay-form\""),
        "one customer found: {html}"
    );
    let balance_before = {
        let (_, v) = s
            .get(
                &format!("/v1/companies/{slug}/customers/W1/account"),
                &c.reader,
            )
            .await;
        v["balance"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let receipt_no = field(&html, "receipt_no");
    let counter = format!("/console/companies/{slug}/counter");
    let pay = [
        ("_csrf", csrf.as_str()),
        ("customer", "W1"),
        ("amount", "100.00"),
        ("method", "cash"),
        ("receipt_no", receipt_no.as_str()),
        ("cashier", "王"),
        ("note", ""),
    ];
    let r = post_form(&s, &staff, &counter, &pay, None).await;
    assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
    let receipt = r.headers()["location"].to_str().unwrap().to_string();
    // Sent twice (a double click, a reload): the same payment.
    let r = post_form(&s, &staff, &counter, &pay, None).await;
    assert_eq!(r.headers()["location"].to_str().unwrap(), receipt);
    let (st, html, _) = page(&s, &staff, &receipt).await;
    assert_eq!(st, 200);
    assert!(html.contains("壹佰元整"), "{html}");
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/W1/account"),
            &c.reader,
        )
        .await;
    let after: rust_decimal::Decimal = v["balance"].as_str().unwrap().parse().unwrap();
    assert_eq!(after, balance_before - rust_decimal::Decimal::from(100));
    let payments: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "payment")
        .collect();
    assert_eq!(payments.len(), 1, "{v:#}");
    assert_eq!(payments[0]["channel"], "counter");
    assert_eq!(payments[0]["cashier"], "王");
    // A bad amount: the API's refusal, shown as a page; nothing recorded.
    let mut bad = pay;
    bad[2] = ("amount", "12.345");
    bad[4] = ("receipt_no", "other-receipt");
    let r = post_form(&s, &staff, &counter, &bad, None).await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("two decimals"));

    // The account page: the payment and the bill on the timeline; the CSV exports.
    let (st, html, _) = page(
        &s,
        &staff,
        &format!("/console/companies/{slug}/customers/W1"),
    )
    .await;
    assert_eq!(st, 200, "{html}");
    assert!(
        html.contains("kind-payment") && html.contains("kind-bill"),
        "{html}"
    );
    let (st, csv, h) = page(&s, &staff, &format!("/console/companies/{slug}/runs.csv")).await;
    assert_eq!(st, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(
        csv.starts_with("\u{feff}run,date,attempt,state,bills,parked,seconds,billed\r\n"),
        "{csv}"
    );
    let (st, csv, _) = page(
        &s,
        &staff,
        &format!("/console/companies/{slug}/customers.csv?by=community&q=%E6%9D%BE%E8%8A%B1%E6%B1%9F%E5%B0%8F%E5%8C%BA"),
    )
    .await;
    assert_eq!(st, 200, "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // A read-only user: no run button, no payment form; posting anyway is 403.
    let reader = sign_in(&s, &c.reader).await;
    let (_, html, _) = page(&s, &reader, &format!("/console/companies/{slug}")).await;
    assert!(!html.contains("id=\"run-night\""), "{html}");
    let reader_csrf = field(&html, "_csrf");
    let (_, html, _) = page(
        &s,
        &reader,
        &format!("/console/companies/{slug}/counter?customer=W1"),
    )
    .await;
    assert!(!html.contains("id=\"pay-form\""), "{html}");
    let r = post_form(
        &s,
        &reader,
        &runs,
        &[
            ("date", "2025-10-21"),
            ("key", "k2"),
            ("_csrf", &reader_csrf),
        ],
        None,
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("read-only token may not"));
    assert_eq!(runs_of(&s, &c).await, 1);

    // A tampered session is no session; a revoked token ends its sessions at once.
    let mut forged = staff.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let (st, _, h) = page(
        &s,
        &String::from_utf8(forged).unwrap(),
        "/console/companies/harbin",
    )
    .await;
    assert_eq!(st, 303);
    assert!(
        h["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/sign-in")
    );
    let (st, v) = s
        .get(&format!("/v1/companies/{slug}/tokens"), OPERATOR)
        .await;
    ok(st, &v, 200);
    let reader_id = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "read-only")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, v) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/companies/{slug}/tokens/{reader_id}"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert!(st.is_success(), "{v:#}");
    let (st, _, _) = page(&s, &reader, "/console/companies/harbin").await;
    assert_eq!(st, 303, "the revoked token's session ended");

    // Operations: readiness, the scheduler.
    let (st, html, _) = page(&s, &staff, &format!("/console/companies/{slug}/operations")).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("id=\"ready\""), "{html}");
    // A payment dated before the billed night makes it stale: the runs page says so, and its
    // form offers that date to run again.
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/payments"),
            &c.staff,
            json!({"customer_id": "W2", "amount": "10.00", "channel": "bank",
                   "channel_txn": "B-1", "paid_on": "2025-10-19"}),
        )
        .await;
    ok(st, &v, 201);
    let (st, html, _) = page(&s, &staff, &runs).await;
    assert_eq!(st, 200);
    assert!(html.contains("id=\"stale\""), "{html}");
    assert!(
        html.contains("name=\"date\" type=\"date\" value=\"2025-10-20\""),
        "{html}"
    );

    // Sign out: the cookie is cleared.
    let r = post_form(&s, &staff, "/console/sign-out", &[("_csrf", &csrf)], None).await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("hb_session=;") && c.contains("Max-Age=0"))
    );

    // The API reference works offline: its script is served here, gzipped or not.
    let (st, html, h) = page(&s, "", "/docs").await;
    assert_eq!(st, 200);
    assert!(
        html.contains("/assets/scalar-api-reference-1.76.4.js"),
        "{html}"
    );
    assert!(!html.contains("http"), "nothing from the internet: {html}");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'")
    );
    let r = browser()
        .get(format!("{}/assets/scalar-api-reference-1.76.4.js", s.base))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    assert!(r.bytes().await.unwrap().len() > 1_000_000);
    let r = browser()
        .get(format!("{}/assets/scalar-api-reference-1.76.4.js", s.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    s.stop().await;
}
both!(console_over_http);

/// A file sent as the console's upload sends it: the body is the file, the form's other fields
/// the query, the session's CSRF token in `X-CSRF-Token`.
async fn send_file(
    s: &Server,
    session: &str,
    csrf: Option<&str>,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut r = browser()
        .post(format!("{}{path}", s.base))
        .header("cookie", format!("hb_session={session}"))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    let h = r.headers().clone();
    (st, r.text().await.unwrap(), h)
}

/// The charging office's paperwork in the console, over HTTP: a data file with bad rows refused
/// with the rows as a table (nothing imported), then imported; a WeChat Pay statement uploaded
/// and reconciled, a suggested match confirmed and another given to a different customer; a
/// component uploaded and case files attached, a failing one refused with its `plugin test`
/// table; billed against collected on the dashboard; roles and CSRF on every upload.
async fn console_office_over_http(db: TestDb) {
    use heatbill_statements::Channel as StChannel;
    use heatbill_statements::fixtures::{self, WechatOpts};
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let slug = &c.slug;
    let staff = sign_in(&s, &c.staff).await;
    let (st, html, _) = page(&s, &staff, &format!("/console/companies/{slug}/data")).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("id=\"import-form\""), "{html}");
    let csrf = field(&html, "_csrf");
    let imports = format!("/console/companies/{slug}/imports?kind=customers");

    // A file with bad rows: refused with each bad row in a table; nothing imported.
    let bad =
        "customer_id,class,building_area\nQ1,residential,75\nQ2,palace,80\nQ3,residential,-5\n";
    let (st, html, _) = send_file(&s, &staff, Some(&csrf), &imports, "text/csv", bad.into()).await;
    assert_eq!(st, 422, "{html}");
    assert!(
        html.contains("class=\"row-errors\"") && html.contains("data-result=\"refused\""),
        "{html}"
    );
    assert!(
        html.contains("palace") && html.contains("<td class=\"num\">3</td>"),
        "{html}"
    );
    let (st, _) = s
        .get(
            &format!("/v1/companies/{slug}/customers/Q1/account"),
            &c.reader,
        )
        .await;
    assert_eq!(st.as_u16(), 404, "a refused file imports nothing");
    // Without the CSRF token, or by a read-only user: refused, nothing imported.
    let good =
        "customer_id,class,building_area,usable_area\nQ1,residential,75,60\nQ2,residential,80,64\n";
    let (st, _, _) = send_file(&s, &staff, None, &imports, "text/csv", good.into()).await;
    assert_eq!(st, 403);
    let reader = sign_in(&s, &c.reader).await;
    let (_, html, _) = page(&s, &reader, &format!("/console/companies/{slug}/data")).await;
    assert!(!html.contains("id=\"import-form\""), "{html}");
    let reader_csrf = field(&html, "_csrf");
    let (st, html, _) = send_file(
        &s,
        &reader,
        Some(&reader_csrf),
        &imports,
        "text/csv",
        good.into(),
    )
    .await;
    assert_eq!(st, 403, "{html}");
    assert!(html.contains("read-only token may not"), "{html}");
    let (st, html, _) = send_file(&s, &staff, Some(&csrf), &imports, "text/csv", good.into()).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("data-result=\"ok\""), "{html}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/Q2/account"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);

    // A WeChat Pay trade bill of three payments: Q1's was recorded, the other two were lost.
    let date = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    let day = fixtures::day(StChannel::Wechat, 11, date, 3, 0);
    let profiles = format!(
        "customer_id,account_no\nQ1,{}\nQ2,{}\n",
        day.payments[0].account, day.payments[1].account
    );
    let (st, v) = import(&s, &c, "profiles", &profiles).await;
    ok(st, &v, 200);
    let p0 = &day.payments[0];
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/payments"),
            &c.staff,
            json!({"customer_id": "Q1", "amount": p0.amount.to_string(), "channel": "wechat",
                   "channel_txn": p0.txn, "paid_on": date}),
        )
        .await;
    ok(st, &v, 201);
    let bill = fixtures::wechat_bill(date, &day.payments, &[], &WechatOpts::default());
    let upload = format!("/console/companies/{slug}/statements?channel=wechat&file_name=wx.csv");
    let (st, html, _) = send_file(
        &s,
        &reader,
        Some(&reader_csrf),
        &upload,
        "application/octet-stream",
        bill.clone(),
    )
    .await;
    assert_eq!(st, 403, "{html}");
    let (st, html, h) = send_file(
        &s,
        &staff,
        Some(&csrf),
        &upload,
        "application/octet-stream",
        bill.clone(),
    )
    .await;
    assert_eq!(st, 201, "{html}");
    let at = h["x-console-go"].to_str().unwrap().to_string();
    assert!(
        at.starts_with("/console/companies/harbin/statements/"),
        "{at}"
    );
    let id: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
    // The same file again: the same statement.
    let (st, _, h) = send_file(
        &s,
        &staff,
        Some(&csrf),
        &upload,
        "application/octet-stream",
        bill,
    )
    .await;
    assert_eq!(
        (st, h["x-console-go"].to_str().unwrap()),
        (200, at.as_str())
    );
    let (st, html, _) = page(&s, &staff, &at).await;
    assert_eq!(st, 200, "{html}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/statements/{id}/items?discrepancy=missing-in-heatbill"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let lost: Vec<(i64, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["item_no"].as_i64().unwrap(),
                i["suggested_customer"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(lost.len(), 2, "{v:#}");
    // Q2's payment is suggested for Q2 (its memo's account number); the third names no one.
    let (q2_item, _) = lost.iter().find(|(_, c)| c == "Q2").unwrap().clone();
    let (other_item, _) = lost.iter().find(|(_, c)| c.is_empty()).unwrap().clone();
    let recover =
        |item: i64| format!("/console/companies/{slug}/statements/{id}/items/{item}/recover");
    assert!(
        html.contains(&format!("action=\"{}\"", recover(q2_item)))
            && html.contains("data-confirm-match"),
        "{html}"
    );
    // A recovery without the CSRF token: refused, nothing recorded.
    let r = post_form(&s, &staff, &recover(q2_item), &[], None).await;
    assert_eq!(r.status().as_u16(), 403);
    // The suggestion confirmed; the unnamed line given to Q1.
    let r = post_form(&s, &staff, &recover(q2_item), &[("_csrf", &csrf)], None).await;
    assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
    assert_eq!(
        r.headers()["location"],
        format!("/console/companies/{slug}/statements/{id}#item-{q2_item}").as_str()
    );
    let r = post_form(
        &s,
        &staff,
        &recover(other_item),
        &[("_csrf", &csrf), ("customer", "Q1")],
        None,
    )
    .await;
    assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
    let wechat_payments = |v: &Value| {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "payment" && e["channel"] == "wechat")
            .count()
    };
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/Q2/account"),
            &c.reader,
        )
        .await;
    assert_eq!(wechat_payments(&v), 1, "{v:#}");
    let (_, v) = s
        .get(
            &format!("/v1/companies/{slug}/customers/Q1/account"),
            &c.reader,
        )
        .await;
    assert_eq!(wechat_payments(&v), 2, "{v:#}");
    let (_, html, _) = page(&s, &staff, &at).await;
    assert_eq!(html.matches("class=\"tag ok\"").count(), 2, "{html}");
    let (st, html, _) = page(&s, &staff, &format!("/console/companies/{slug}/statements")).await;
    assert_eq!(st, 200);
    assert!(html.contains(&format!("/statements/{id}\"")), "{html}");

    // Billed against collected: a payment today is on the dashboard's chart.
    let (st, v) = s
        .post(
            &format!("/v1/companies/{slug}/payments"),
            &c.staff,
            json!({"customer_id": "Q1", "amount": "12.34", "channel": "counter",
                   "channel_txn": "R-today"}),
        )
        .await;
    ok(st, &v, 201);
    let (st, html, _) = page(&s, &staff, &format!("/console/companies/{slug}")).await;
    assert_eq!(st, 200);
    assert!(html.contains("实收: 12.34</title>"), "{html}");

    // Plugins: staff sees no upload; an integrator uploads, lands on the plugin, attaches cases.
    let (_, html, _) = page(&s, &staff, &format!("/console/companies/{slug}/plugins")).await;
    assert!(
        !html.contains("id=\"plugin-form\"") && html.contains("area-tariff"),
        "{html}"
    );
    let plugins = format!("/console/companies/{slug}/plugins");
    let (st, _, _) = send_file(
        &s,
        &staff,
        Some(&csrf),
        &plugins,
        "application/wasm",
        component("low-income-subsidy"),
    )
    .await;
    assert_eq!(st, 403);
    let integrator = sign_in(&s, &c.integrator).await;
    let (_, html, _) = page(&s, &integrator, &plugins).await;
    assert!(html.contains("id=\"plugin-form\""), "{html}");
    let icsrf = field(&html, "_csrf");
    let (st, html, _) = send_file(
        &s,
        &integrator,
        Some(&icsrf),
        &plugins,
        "application/wasm",
        b"not a component".to_vec(),
    )
    .await;
    assert_eq!(st, 422, "{html}");
    assert!(html.contains("not a plugin heatbill can run"), "{html}");
    let (st, html, h) = send_file(
        &s,
        &integrator,
        Some(&icsrf),
        &plugins,
        "application/wasm",
        component("low-income-subsidy"),
    )
    .await;
    assert_eq!(st, 200, "{html}");
    let plugin_page = h["x-console-go"].to_str().unwrap().to_string();
    let (st, html, _) = page(&s, &integrator, &plugin_page).await;
    assert_eq!(st, 200, "{html}");
    assert!(
        html.contains("id=\"cases-form\"") && html.contains("standard"),
        "{html}"
    );
    let season = &c.digests.iter().find(|d| d.0 == "season").unwrap().1;
    let cases = format!("/console/companies/{slug}/plugins/{season}/cases");
    let wrong = case_file("w1.toml").replace("amount = \"12.56\"", "amount = \"12.57\"");
    let (st, html, _) = send_file(
        &s,
        &integrator,
        Some(&icsrf),
        &format!("{cases}?name=wrong.toml"),
        "application/toml",
        wrong.into_bytes(),
    )
    .await;
    assert_eq!(st, 422, "{html}");
    assert!(
        html.contains("do not pass") && html.contains("<pre class=\"report\">"),
        "the plugin test table is shown: {html}"
    );
    let (st, html, _) = send_file(
        &s,
        &integrator,
        Some(&icsrf),
        &format!("{cases}?name=again.toml"),
        "application/toml",
        case_file("w1.toml").into_bytes(),
    )
    .await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("<pre class=\"report\">"), "{html}");
    let (st, v) = s
        .get(
            &format!("/v1/companies/{slug}/plugins/{season}/cases"),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"again.toml") && !names.contains(&"wrong.toml"),
        "{names:?}"
    );
    s.stop().await;
}
both!(console_office_over_http);

/// The console in headless Chromium: `tests/console/browser.mjs` signs in, runs a night and
/// watches it finish, finds the parked customer from the report, takes a counter payment and
/// sees the balance change, checks what a read-only user sees, another company's page, a
/// CSRF-less post, the pages with the network off, accessibility basics, and the English
/// pages. On the embedded default (SQLite), as `heatbill serve` runs out of the box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium() {
    let root = repo_root();
    let script = root.join("tests/console/browser.mjs");
    let modules = root.join("tests/console/node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "playwright-core is not installed: run `./dev test` (it installs it), or \
         `cd tests/console && npm ci`"
    );
    let chromium =
        std::env::var("HEATBILL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: run `./dev test` (it installs it), or \
         `apt-get install -y chromium`, or set HEATBILL_CHROMIUM"
    );
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let other = company(&s, "other").await;
    let (st, v) = import(&s, &c, "customers", CONSOLE_CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &c, "profiles", PROFILES).await;
    ok(st, &v, 200);
    let (st, v) = import(&s, &other, "customers", CONSOLE_CUSTOMERS).await;
    ok(st, &v, 200);
    // A WeChat Pay bill of one payment heatbill did not record, whose memo names W3's account.
    let date = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    let day =
        heatbill_statements::fixtures::day(heatbill_statements::Channel::Wechat, 5, date, 1, 0);
    let (st, v) = import(
        &s,
        &c,
        "profiles",
        &format!("customer_id,account_no\nW3,{}\n", day.payments[0].account),
    )
    .await;
    ok(st, &v, 200);
    let statement = std::env::temp_dir().join(format!("heatbill-wx-{}.csv", std::process::id()));
    std::fs::write(
        &statement,
        heatbill_statements::fixtures::wechat_bill(
            date,
            &day.payments,
            &[],
            &heatbill_statements::fixtures::WechatOpts::default(),
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(&script)
        .env("HB_BASE", &s.base)
        .env("HB_SLUG", &c.slug)
        .env("HB_STAFF", &c.staff)
        .env("HB_READER", &c.reader)
        .env("HB_INTEGRATOR", &c.integrator)
        .env("HB_OTHER", &other.slug)
        .env("HB_CHROMIUM", &chromium)
        .env("HB_STATEMENT", &statement)
        .env(
            "HB_COMPONENT",
            crate::support::component_path("low-income-subsidy"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("node runs (install Node.js)");
    let pid = child.id();
    let waited = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let out = match waited {
        Ok(done) => done.unwrap().unwrap(),
        Err(_) => {
            // Bounded: a hung browser fails the test with its diagnosis, not the whole CI.
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("the browser test did not finish within 300 s (killed)");
        }
    };
    let _ = std::fs::remove_file(&statement);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser: all checks passed"), "{stdout}");
    // What the browser did, seen through the API: one night, one counter payment of 100.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{}/customers/W1/account", c.slug),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let paid: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "payment")
        .collect();
    assert_eq!(paid.len(), 1, "{v:#}");
    assert_eq!(paid[0]["amount"], "100.00");
    if std::env::var_os("HB_SCREENSHOTS").is_none() {
        assert_eq!(runs_of(&s, &c).await, 1);
    }
    // The lost WeChat payment the staff recorded from the statement's page, for W3.
    let (st, v) = s
        .get(
            &format!("/v1/companies/{}/customers/W3/account", c.slug),
            &c.reader,
        )
        .await;
    ok(st, &v, 200);
    let wechat: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "payment" && e["channel"] == "wechat")
        .collect();
    assert_eq!(wechat.len(), 1, "{v:#}");
    assert_eq!(wechat[0]["channel_txn"], day.payments[0].txn.as_str());
    // The chain the integrator activated from the form: the tariff's new price from 10-21.
    let (st, v) = s
        .get(&format!("/v1/companies/{}/chains", c.slug), &c.reader)
        .await;
    ok(st, &v, 200);
    let newest = v.as_array().unwrap().last().unwrap();
    assert_eq!(newest["effective_from"], "2025-10-21", "{v:#}");
    assert_eq!(
        newest["entries"][1]["params"]["prices"]["residential"],
        "40.00"
    );
    assert_eq!(
        newest["entries"][1]["params"]["prices"]["non-residential"],
        "43.3"
    );
    assert_eq!(newest["entries"][1]["params"]["area_basis"], "usable");
    s.stop().await;
}
