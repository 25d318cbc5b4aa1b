//! WeChat Pay trade bills: real layouts (hand-written and generated) and hostile ones.

use chrono::NaiveDate;
use heatbill_statements::fixtures::{self, SummaryMode, WechatOpts};
use heatbill_statements::{Channel, Limits, LineKind, StatementError, csv_safe, parse_wechat};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A day's bill as WeChat Pay writes it: one payment, one refund of part of it, the summary.
const SMALL: &str = "\
交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r
`2026-12-01 08:15:32,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200001234202612010000000001,`HB2301004417202612010001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`CMB_DEBIT,`CNY,`1200.00,`0.00,`,`,`0.00,`0.00,`,`,`供暖费-户号2301004417,`,`7.20,`0.60%,`1200.00,`0.00,`\r
`2026-12-01 16:02:11,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200001234202612010000000001,`HB2301004417202612010001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`REFUND,`CMB_DEBIT,`CNY,`0.00,`0.00,`50300001234202612010000000001,`RF2301004417-1,`200.00,`0.00,`ORIGINAL,`SUCCESS,`供暖费-户号2301004417,`,`-1.20000,`0.60%,`0.00,`200.00,`\r
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r
`2,`1200.00,`200.00,`0.00,`6.00000,`1200.00,`200.00\r
";

fn rows_of(e: &StatementError) -> Vec<String> {
    e.row_errors().iter().map(|r| r.to_string()).collect()
}

#[test]
fn a_hand_written_bill_is_read_by_header_name() {
    let s = parse_wechat(SMALL.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(s.channel, Channel::Wechat);
    assert_eq!(s.lines.len(), 2);
    let p = &s.lines[0];
    assert_eq!(p.line_no, 2);
    assert_eq!(p.kind, LineKind::Payment);
    assert_eq!(p.channel_txn, "4200001234202612010000000001");
    assert_eq!(p.order_no.as_deref(), Some("HB2301004417202612010001"));
    assert_eq!(p.original_txn, None);
    assert_eq!(p.amount.to_string(), "1200.00");
    assert_eq!(p.fee.to_string(), "7.20");
    assert_eq!(p.time.to_string(), "2026-12-01 08:15:32");
    assert_eq!(p.memo.as_deref(), Some("供暖费-户号2301004417"));
    assert_eq!(
        p.counterparty.as_deref(),
        Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    );
    assert_eq!(p.account_hint, None);
    let r = &s.lines[1];
    assert_eq!(r.line_no, 3);
    assert_eq!(r.kind, LineKind::Refund);
    assert_eq!(r.channel_txn, "50300001234202612010000000001");
    assert_eq!(
        r.original_txn.as_deref(),
        Some("4200001234202612010000000001")
    );
    assert_eq!(r.amount.to_string(), "-200.00");
    assert_eq!(r.fee, dec("-1.2"));
    assert_eq!(s.totals.count, 2);
    assert_eq!(s.totals.payments, dec("1200"));
    assert_eq!(s.totals.refunds, dec("-200"));
    assert_eq!(s.totals.fees, dec("6"));
    assert_eq!(s.period, None);
    let digest: [u8; 32] = Sha256::digest(SMALL.as_bytes()).into();
    assert_eq!(s.digest, digest);
    assert_eq!(s.digest_hex().len(), 64);
}

#[test]
fn a_bom_and_reordered_or_extra_columns_are_fine() {
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(SMALL.as_bytes());
    assert_eq!(
        parse_wechat(&bom, &Limits::default()).unwrap().lines.len(),
        2
    );

    // Swap two columns everywhere (header and rows) and add one: still the same lines.
    let swapped: String = SMALL
        .lines()
        .map(|line| {
            let mut f: Vec<&str> = line.split(',').collect();
            if f.len() == 27 {
                f.swap(0, 12);
                f.push(if f[0].starts_with('`') {
                    "`x"
                } else {
                    "新列"
                });
            }
            f.join(",") + "\n"
        })
        .collect();
    let a = parse_wechat(SMALL.as_bytes(), &Limits::default()).unwrap();
    let b = parse_wechat(swapped.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(a.lines, b.lines);
}

#[test]
fn a_success_only_bill_has_no_refund_columns_and_a_refund_row_in_it_is_refused() {
    let header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注";
    let row = "`2026-12-01 08:15:32,`wx1,`1900000109,`0,`,`4200000001,`HB1,`o1,`JSAPI,`SUCCESS,`OTHERS,`CNY,`50.00,`0.00,`供暖费,`,`0.30,`0.60%,`50.00,`";
    let summary = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`1,`50.00,`0.00,`0.00,`0.30000,`50.00,`0.00\n";
    let bill = format!("{header}\n{row}\n{summary}");
    let s = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(s.lines[0].amount, dec("50.00"));

    let refund = row.replace("`SUCCESS", "`REFUND");
    let bill = format!("{header}\n{refund}\n{summary}");
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::MissingColumn { column, .. } if column == "微信退款单号"),
        "{e}"
    );
}

#[test]
fn a_generated_day_reads_back_exactly() {
    let day = fixtures::day(Channel::Wechat, 7, date(), 5_000, 300);
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &WechatOpts::default());
    let s = parse_wechat(&bill, &Limits::default()).unwrap();
    assert_eq!(s.totals.count, 5_300);
    assert_eq!(s.totals.payment_count, 5_000);
    assert_eq!(s.totals.refund_count, 300);
    let paid: Decimal = day.payments.iter().map(|p| p.amount).sum();
    let refunded: Decimal = day.refunds.iter().map(|r| r.amount).sum();
    assert_eq!(s.totals.payments, paid);
    assert_eq!(s.totals.refunds, -refunded);
    for line in &s.lines {
        assert_eq!(line.amount.scale(), 2);
        assert_eq!(
            line.amount.is_sign_positive(),
            line.kind == LineKind::Payment
        );
    }
    // Same seed, same bytes; another seed, another file.
    let again = fixtures::day(Channel::Wechat, 7, date(), 5_000, 300);
    assert_eq!(
        fixtures::wechat_bill(
            date(),
            &again.payments,
            &again.refunds,
            &WechatOpts::default()
        ),
        bill
    );
    let other = fixtures::day(Channel::Wechat, 8, date(), 5_000, 300);
    assert_ne!(other.payments[0].txn, day.payments[0].txn);
}

#[test]
fn a_gbk_file_handed_in_as_utf8_says_so() {
    let (gbk, _, _) = encoding_rs::GBK.encode(SMALL);
    let e = parse_wechat(&gbk, &Limits::default()).unwrap_err();
    match &e {
        StatementError::Encoding {
            expected,
            line_no,
            hint,
            ..
        } => {
            assert_eq!(*expected, "UTF-8");
            assert_eq!(*line_no, 1);
            assert!(hint.contains("GBK"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().contains("upload the file as downloaded"),
        "{e}"
    );
}

#[test]
fn invalid_bytes_are_reported_with_their_line() {
    let mut bytes = SMALL.as_bytes().to_vec();
    let third_line = SMALL.match_indices('\n').nth(1).unwrap().0 + 1;
    bytes.insert(third_line + 5, 0xFF);
    let e = parse_wechat(&bytes, &Limits::default()).unwrap_err();
    match &e {
        StatementError::Encoding { line_no, bytes, .. } => {
            assert_eq!(*line_no, 3);
            assert_eq!(bytes, "FF");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_summary_that_does_not_add_up_refuses_the_file() {
    let day = fixtures::day(Channel::Wechat, 3, date(), 200, 10);
    let opts = WechatOpts {
        summary: SummaryMode::Off {
            count: 1,
            settled: dec("0.01"),
        },
        ..WechatOpts::default()
    };
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &opts);
    let e = parse_wechat(&bill, &Limits::default()).unwrap_err();
    match &e {
        StatementError::Summary {
            line_no,
            mismatches,
        } => {
            assert_eq!(*line_no, 213);
            let fields: Vec<&str> = mismatches.iter().map(|m| m.field.as_str()).collect();
            assert_eq!(fields, ["总交易单数", "应结订单总金额"]);
            assert_eq!(mismatches[0].stated, "211");
            assert_eq!(mismatches[0].computed, "210");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("download it again"));

    // A fee total that does not match, in the hand-written bill.
    let bad = SMALL.replace("`6.00000", "`6.00001");
    let e = parse_wechat(bad.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::Summary { mismatches, .. } if mismatches[0].field == "手续费总金额"),
        "{e}"
    );
}

#[test]
fn a_missing_summary_is_a_truncated_file() {
    let day = fixtures::day(Channel::Wechat, 3, date(), 20, 0);
    let opts = WechatOpts {
        summary: SummaryMode::Omitted,
        ..WechatOpts::default()
    };
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &opts);
    let e = parse_wechat(&bill, &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::Structure { problem, .. } if problem.contains("cut short")),
        "{e}"
    );
    // The summary header without its figures.
    let cut = SMALL.rsplit_once("`2,").unwrap().0;
    let e = parse_wechat(cut.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::Structure { line_no: 4, .. }),
        "{e}"
    );
    // Text after the summary.
    let appended = format!("{SMALL}{}", SMALL.lines().nth(1).unwrap());
    let e = parse_wechat(appended.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::Structure { line_no: 6, .. }),
        "{e}"
    );
}

#[test]
fn the_same_transaction_twice_is_refused() {
    let mut day = fixtures::day(Channel::Wechat, 5, date(), 50, 0);
    let twin = day.payments[10].clone();
    day.payments.push(twin);
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &WechatOpts::default());
    let e = parse_wechat(&bill, &Limits::default()).unwrap_err();
    let rows = e.row_errors();
    assert_eq!(rows.len(), 1, "{e}");
    assert_eq!(rows[0].column.as_deref(), Some("微信订单号"));
    assert_eq!(
        rows[0].value.as_deref(),
        Some(day.payments[10].txn.as_str())
    );
    assert!(rows[0].problem.contains("already on line"), "{e}");
}

#[test]
fn formula_text_is_kept_and_made_safe_for_exports() {
    let mut day = fixtures::day(Channel::Wechat, 9, date(), 4, 0);
    day.payments[0].memo = "=cmd|' /C calc'!A0".into();
    day.payments[1].memo = "+1+1".into();
    day.payments[2].memo = "-2+3".into();
    day.payments[3].payer = "@SUM(A1:A9)".into();
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &WechatOpts::default());
    let s = parse_wechat(&bill, &Limits::default()).unwrap();
    let memos: Vec<&str> = s.lines.iter().filter_map(|l| l.memo.as_deref()).collect();
    assert!(memos.contains(&"=cmd|' /C calc'!A0"));
    let payer = s
        .lines
        .iter()
        .find_map(|l| l.counterparty.as_deref().filter(|c| c.starts_with('@')));
    assert_eq!(payer, Some("@SUM(A1:A9)"));
    assert_eq!(csv_safe("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
    assert_eq!(csv_safe("+1+1"), "'+1+1");
    assert_eq!(csv_safe("-2+3"), "'-2+3");
    assert_eq!(csv_safe("@SUM(A1:A9)"), "'@SUM(A1:A9)");
    assert_eq!(csv_safe("\t=1"), "'\t=1");
    assert_eq!(csv_safe("供暖费"), "供暖费");
    assert_eq!(csv_safe(""), "");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_reading() {
    let limits = Limits {
        max_bytes: 1_000,
        ..Limits::default()
    };
    let day = fixtures::day(Channel::Wechat, 1, date(), 20, 0);
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &WechatOpts::default());
    let e = parse_wechat(&bill, &limits).unwrap_err();
    assert!(
        matches!(e, StatementError::TooLarge { limit: 1_000, .. }),
        "{e}"
    );
    // From a reader: stops one byte past the limit.
    let e = heatbill_statements::read_limited(std::io::repeat(b'x'), &limits).unwrap_err();
    assert_eq!(
        e,
        StatementError::TooLarge {
            size: 1_001,
            limit: 1_000
        }
    );
    let read = heatbill_statements::read_limited(SMALL.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(read, SMALL.as_bytes());
}

#[test]
fn too_many_rows_stop_the_parse() {
    let limits = Limits {
        max_rows: 10,
        ..Limits::default()
    };
    let day = fixtures::day(Channel::Wechat, 1, date(), 20, 0);
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &WechatOpts::default());
    let e = parse_wechat(&bill, &limits).unwrap_err();
    assert_eq!(
        e,
        StatementError::TooManyRows {
            line_no: 12,
            limit: 10
        }
    );
}

#[test]
fn a_missing_column_is_named() {
    let bill = SMALL.replacen("手续费,", "服务费,", 1);
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    match &e {
        StatementError::MissingColumn {
            column, line_no, ..
        } => {
            assert_eq!(column, "手续费");
            assert_eq!(*line_no, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("\"交易时间\""), "{e}");
    // Not a bill at all.
    let e = parse_wechat(b"name,amount\nx,1\n", &Limits::default()).unwrap_err();
    assert!(matches!(&e, StatementError::MissingColumn { column, .. } if column == "交易时间"));
    let e = parse_wechat(b"\n\n", &Limits::default()).unwrap_err();
    assert!(matches!(e, StatementError::Empty { .. }));
    // The same column twice.
    let twice = SMALL.replacen("费率备注", "手续费", 1);
    let e = parse_wechat(twice.as_bytes(), &Limits::default()).unwrap_err();
    assert!(matches!(&e, StatementError::DuplicateColumn { column, .. } if column == "手续费"));
}

#[test]
fn rows_with_a_missing_or_extra_field_are_listed_together() {
    let mut lines: Vec<String> = SMALL.lines().map(String::from).collect();
    lines[1] = lines[1].replacen(",`0.00,", ",", 1); // a field fewer
    lines[2].push_str(",`extra"); // a field more
    let bill = lines.join("\n");
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    let rows = rows_of(&e);
    assert_eq!(rows.len(), 2, "{e}");
    assert!(
        rows[0].starts_with("line 2: the row has 26 fields but the header has 27"),
        "{e}"
    );
    assert!(rows[1].starts_with("line 3: the row has 28 fields"), "{e}");
    assert!(e.to_string().starts_with("2 rows cannot be taken"), "{e}");
}

#[test]
fn bad_dates_amounts_states_and_currencies_say_what_to_fix() {
    let cases = [
        (
            "`2026-12-01 08:15:32",
            "`2026-13-01 08:15:32",
            "交易时间",
            "not a time",
        ),
        (
            "`2026-12-01 08:15:32",
            "`2026/12/01 08:15:32",
            "交易时间",
            "YYYY-MM-DD",
        ),
        (
            "`1200.00,`0.00,`,`",
            "`-1200.00,`0.00,`,`",
            "应结订单金额",
            "must be positive",
        ),
        (
            "`1200.00,`0.00,`,`",
            "`1.2e3,`0.00,`,`",
            "应结订单金额",
            "no exponent",
        ),
        (
            "`1200.00,`0.00,`,`",
            "`1200.001,`0.00,`,`",
            "应结订单金额",
            "3 decimals",
        ),
        ("`1200.00,`0.00,`,`", "`1,200.00,`0.00,`,`", "", "fields"),
        ("`CNY,`1200", "`USD,`1200", "货币种类", "only CNY"),
        ("`SUCCESS", "`REVOKED", "交易状态", "REVOKED"),
        ("`7.20", "`-7.20", "手续费", "fee cannot be negative"),
    ];
    for (from, to, column, words) in cases {
        let bill = SMALL.replacen(from, to, 1);
        assert_ne!(bill, SMALL, "{from} not found");
        let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
        let rows = e.row_errors();
        assert_eq!(rows.len(), 1, "{to}: {e}");
        assert_eq!(rows[0].line_no, 2);
        if !column.is_empty() {
            assert_eq!(rows[0].column.as_deref(), Some(column), "{to}: {e}");
        }
        assert!(e.to_string().contains(words), "{to}: {e}");
    }
}

#[test]
fn every_row_in_another_currency_is_counted_and_the_list_is_capped() {
    let day = fixtures::day(Channel::Wechat, 2, date(), 300, 0);
    let opts = WechatOpts {
        currency: "USD".into(),
        ..WechatOpts::default()
    };
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &opts);
    let limits = Limits {
        max_errors: 25,
        ..Limits::default()
    };
    match parse_wechat(&bill, &limits).unwrap_err() {
        StatementError::Rows { errors, total } => {
            assert_eq!(total, 300);
            assert_eq!(errors.len(), 25);
            assert_eq!(errors[0].line_no, 2);
            assert_eq!(errors[0].value.as_deref(), Some("USD"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn offending_values_are_escaped_and_cut() {
    let bill = SMALL.replacen("`1200.00,`0.00,`,`", "`12\u{0}00\u{1b}[31m.00,`0.00,`,`", 1);
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    let value = e.row_errors()[0].value.clone().unwrap();
    // Refused for its control characters before it is read as an amount: the field as found.
    assert_eq!(value, "`12\\u{0}00\\u{1b}[31m.00");
    let long = format!("`{}", "9".repeat(100));
    let bill = SMALL.replacen("`1200.00,`0.00,`,`", &format!("{long},`0.00,`,`"), 1);
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    let value = e.row_errors()[0].value.clone().unwrap();
    assert_eq!(value.chars().count(), 41, "{value}");
}

#[test]
fn an_oversized_field_or_an_unclosed_quote_is_a_row_error() {
    let bill = SMALL.replacen(
        "`供暖费-户号2301004417",
        &format!("`{}", "暖".repeat(2000)),
        1,
    );
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        e.row_errors()[0].problem.contains("over the limit of 4096"),
        "{e}"
    );

    let bill = SMALL.replacen(",`供暖费-户号2301004417", ",\"`供暖费", 1);
    let e = parse_wechat(bill.as_bytes(), &Limits::default()).unwrap_err();
    assert!(!e.to_string().is_empty());
}

#[test]
fn damaged_bills_are_errors_never_panics() {
    let day = fixtures::day(Channel::Wechat, 11, date(), 30, 5);
    let bill = fixtures::wechat_bill(date(), &day.payments, &day.refunds, &WechatOpts::default());
    let limits = Limits::default();
    // Cut anywhere before the summary's figures: the file is refused. (A cut inside the
    // figures can leave a number that still adds up, 1234.50 cut to 1234.5, or a figure that is
    // not checked.)
    let figures = bill[..bill.len() - 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap();
    for cut in (0..figures).step_by(7) {
        assert!(parse_wechat(&bill[..cut], &limits).is_err(), "cut at {cut}");
    }
    for cut in figures..bill.len() {
        let _ = parse_wechat(&bill[..cut], &limits);
    }
    // Bytes flipped anywhere: an error or, when the flip lands in text nobody checks (a
    // product name), a statement; never a panic.
    let mut rng = fixtures::Rng::new(42);
    for _ in 0..2_000 {
        let mut damaged = bill.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(damaged.len() as u64) as usize;
            damaged[at] = rng.below(256) as u8;
        }
        let _ = parse_wechat(&damaged, &limits);
    }
}
