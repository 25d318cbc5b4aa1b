//! Alipay statements: the ZIP, its GBK detail file, and what a hostile ZIP does.

use chrono::NaiveDate;
use heatbill_statements::fixtures::{self, AlipayOpts};
use heatbill_statements::{
    Channel, Limits, LineKind, StatementError, alipay_refund_txn, parse_alipay_csv,
    parse_alipay_zip,
};
use rust_decimal::Decimal;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A detail file as Alipay writes it (before GBK encoding): `#` lines, the header, a payment and
/// its partial refund with tab-padded ids, the trailers.
const DETAIL: &str = "#支付宝业务明细查询\r
#账号：[20880012345678900156]\r
#起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]\r
#-----------------------------------------业务明细列表----------------------------------------\r
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r
2026120122001412345678901234\t,HB2301004417202612010001\t,交易,供暖费-户号2301004417,2026-12-01 08:15:29,2026-12-01 08:15:32,,,,,138****1234,1200.00,1200.00,0.00,0.00,0.00,0.00,,,0.00,0.00,,7.20,0.00,\r
2026120122001412345678901234\t,HB2301004417202612010001\t,退款,供暖费-户号2301004417,2026-12-01 16:02:10,2026-12-01 16:02:11,,,,,138****1234,-200.00,-200.00,0.00,0.00,0.00,0.00,,,0.00,0.00,RF2301004417-1\t,-1.20,0.00,多缴退回\r
#-----------------------------------------业务明细列表结束------------------------------------\r
#交易合计：1笔，商家实收共计：1200.00元\r
#退款合计：1笔，商家实收共计：-200.00元\r
#导出时间：[2026年12月02日 09:12:45]\r
";

fn gbk(s: &str) -> Vec<u8> {
    fixtures::gbk(s)
}

fn zip_detail(detail: &[u8]) -> Vec<u8> {
    fixtures::zip_of(&[
        ("20880012345678900156_20261201_业务明细.csv", detail),
        (
            "20880012345678900156_20261201_业务明细(汇总).csv",
            b"#x\r\n",
        ),
    ])
}

#[test]
fn a_hand_written_statement_is_read() {
    let zip = zip_detail(&gbk(DETAIL));
    let s = parse_alipay_zip(&zip, &Limits::default()).unwrap();
    assert_eq!(s.channel, Channel::Alipay);
    assert_eq!(
        s.period,
        Some((date(), date())),
        "the end at 00:00:00 of the 2nd is the 1st, inclusive"
    );
    assert_eq!(s.lines.len(), 2);
    let p = &s.lines[0];
    assert_eq!(p.line_no, 6);
    assert_eq!(p.kind, LineKind::Payment);
    assert_eq!(p.channel_txn, "2026120122001412345678901234");
    assert_eq!(p.order_no.as_deref(), Some("HB2301004417202612010001"));
    assert_eq!(p.amount.to_string(), "1200.00");
    assert_eq!(p.fee.to_string(), "7.20");
    assert_eq!(p.time.to_string(), "2026-12-01 08:15:32");
    assert_eq!(p.counterparty.as_deref(), Some("138****1234"));
    let r = &s.lines[1];
    assert_eq!(r.line_no, 7);
    assert_eq!(r.kind, LineKind::Refund);
    assert_eq!(
        r.channel_txn,
        alipay_refund_txn("2026120122001412345678901234", "RF2301004417-1")
    );
    assert_eq!(r.channel_txn, "2026120122001412345678901234/RF2301004417-1");
    assert_eq!(
        r.original_txn.as_deref(),
        Some("2026120122001412345678901234")
    );
    assert_eq!(r.amount.to_string(), "-200.00");
    assert_eq!(r.memo.as_deref(), Some("供暖费-户号2301004417 多缴退回"));
    assert_eq!(s.totals.payments, dec("1200"));
    assert_eq!(s.totals.refunds, dec("-200"));
    assert_eq!(s.totals.fees, dec("6"));
    // The digest is the ZIP's; the CSV on its own parses to the same lines.
    let csv = parse_alipay_csv(&gbk(DETAIL), &Limits::default()).unwrap();
    assert_eq!(csv.lines, s.lines);
    assert_ne!(csv.digest, s.digest);
    // UTF-8 (some exports) reads the same.
    let utf8 = parse_alipay_csv(DETAIL.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(utf8.lines, s.lines);
}

#[test]
fn a_generated_day_reads_back_exactly() {
    let day = fixtures::day(Channel::Alipay, 21, date(), 3_000, 150);
    let zip = fixtures::alipay_zip(date(), &day.payments, &day.refunds, &AlipayOpts::default());
    let s = parse_alipay_zip(&zip, &Limits::default()).unwrap();
    assert_eq!(s.totals.payment_count, 3_000);
    assert_eq!(s.totals.refund_count, 150);
    let paid: Decimal = day.payments.iter().map(|p| p.amount).sum();
    assert_eq!(s.totals.payments, paid);
    let txns: std::collections::HashSet<String> =
        s.lines.iter().map(|l| l.channel_txn.clone()).collect();
    for r in &day.refunds {
        assert!(txns.contains(&r.statement_txn(Channel::Alipay)));
    }
    for p in &day.payments {
        assert!(txns.contains(&p.txn), "ids are trimmed of their tabs");
    }
    // Without trailers: nothing to check them against, still fine.
    let opts = AlipayOpts {
        no_trailer: true,
        ..AlipayOpts::default()
    };
    let zip = fixtures::alipay_zip(date(), &day.payments, &day.refunds, &opts);
    assert_eq!(
        parse_alipay_zip(&zip, &Limits::default()).unwrap().totals,
        s.totals
    );
}

#[test]
fn a_trailer_that_does_not_add_up_refuses_the_file() {
    let day = fixtures::day(Channel::Alipay, 22, date(), 100, 5);
    let opts = AlipayOpts {
        trailer_off: dec("0.01"),
        ..AlipayOpts::default()
    };
    let zip = fixtures::alipay_zip(date(), &day.payments, &day.refunds, &opts);
    match parse_alipay_zip(&zip, &Limits::default()).unwrap_err() {
        StatementError::Summary {
            line_no,
            mismatches,
        } => {
            assert_eq!(line_no, 5 + 105 + 3);
            assert_eq!(mismatches.len(), 1);
            assert_eq!(mismatches[0].field, "交易合计 商家实收共计");
        }
        other => panic!("{other:?}"),
    }
    let bad = DETAIL.replace("#退款合计：1笔", "#退款合计：2笔");
    let e = parse_alipay_csv(&gbk(&bad), &Limits::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("退款合计 笔数 states 2 but the rows add up to 1"),
        "{e}"
    );
    let bad = DETAIL.replace("#交易合计：1笔，商家实收共计：1200.00元", "#交易合计：一笔");
    let e = parse_alipay_csv(&gbk(&bad), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, StatementError::Structure { line_no: 9, .. }),
        "{e}"
    );
}

#[test]
fn a_truncated_zip_is_a_clear_error_wherever_it_is_cut() {
    let day = fixtures::day(Channel::Alipay, 23, date(), 200, 10);
    let zip = fixtures::alipay_zip(date(), &day.payments, &day.refunds, &AlipayOpts::default());
    let e = parse_alipay_zip(&zip[..zip.len() / 2], &Limits::default()).unwrap_err();
    assert!(matches!(e, StatementError::Zip { .. }), "{e}");
    assert!(
        e.to_string().contains("download the statement again"),
        "{e}"
    );
    for cut in (0..zip.len()).step_by(97) {
        assert!(parse_alipay_zip(&zip[..cut], &Limits::default()).is_err());
    }
    // A damaged byte in the compressed data: the inflater or the CRC catches it.
    let mut rng = fixtures::Rng::new(5);
    for _ in 0..300 {
        let mut damaged = zip.clone();
        let at = rng.below(damaged.len() as u64) as usize;
        damaged[at] ^= 1 + rng.below(255) as u8;
        let _ = parse_alipay_zip(&damaged, &Limits::default());
    }
    assert!(parse_alipay_zip(b"not a zip", &Limits::default()).is_err());
    assert!(parse_alipay_zip(b"", &Limits::default()).is_err());
}

fn small_bomb_limits() -> Limits {
    Limits {
        max_uncompressed_bytes: 1 << 20,
        ..Limits::default()
    }
}

#[test]
fn a_zip_bomb_is_refused_by_its_declared_size() {
    let zeros = vec![b'0'; 4 << 20];
    let zip = zip_detail(&zeros);
    assert!(zip.len() < 64 << 10, "the bomb is small: {}", zip.len());
    let e = parse_alipay_zip(&zip, &small_bomb_limits()).unwrap_err();
    assert!(
        matches!(&e, StatementError::ZipBomb { how: "declares", limit, .. } if *limit == 1 << 20),
        "{e}"
    );
}

/// Sets every uncompressed size the ZIP declares (local and central headers) to `size`.
fn lie_about_sizes(zip: &mut [u8], size: u32) {
    let mut i = 0;
    while i + 4 <= zip.len() {
        match &zip[i..i + 4] {
            [0x50, 0x4b, 0x03, 0x04] => zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes()),
            [0x50, 0x4b, 0x01, 0x02] => zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes()),
            _ => {}
        }
        i += 1;
    }
}

#[test]
fn a_zip_bomb_that_lies_about_its_size_is_stopped_while_reading() {
    let zeros = vec![b'0'; 4 << 20];
    let mut zip = zip_detail(&zeros);
    lie_about_sizes(&mut zip, 1000);
    let e = parse_alipay_zip(&zip, &small_bomb_limits()).unwrap_err();
    // Read through a bound, the entry stops at the limit (or the reader stops at the declared
    // size and the CRC does not match): an error either way, never 4 MiB in memory.
    match &e {
        StatementError::ZipBomb { how, .. } => assert_eq!(*how, "inflates to"),
        StatementError::Zip { detail } => assert!(detail.contains("declared"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_entries_or_no_detail_file() {
    let names: Vec<String> = (0..17).map(|i| format!("f{i}.csv")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let e = parse_alipay_zip(&fixtures::zip_of(&entries), &Limits::default()).unwrap_err();
    assert_eq!(
        e,
        StatementError::TooManyEntries {
            count: 17,
            limit: 16
        }
    );

    let zip = fixtures::zip_of(&[("20880012345678900156_20261201_业务明细(汇总).csv", b"x")]);
    let e = parse_alipay_zip(&zip, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("no detail file"), "{e}");
    assert!(e.to_string().contains("业务明细(汇总)"), "{e}");

    let zip = fixtures::zip_of(&[("a_业务明细.csv", b"x"), ("b_业务明细.csv", b"y")]);
    let e = parse_alipay_zip(&zip, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("more than one detail file"), "{e}");
}

#[test]
fn invalid_gbk_is_reported_with_its_line() {
    let mut bytes = gbk(DETAIL);
    let line6 = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(4)
        .unwrap()
        .0
        + 1;
    bytes.splice(line6 + 3..line6 + 3, [0x81, 0x7F]);
    let e = parse_alipay_zip(&zip_detail(&bytes), &Limits::default()).unwrap_err();
    match e {
        StatementError::Encoding {
            line_no, expected, ..
        } => {
            assert_eq!(line_no, 6);
            assert_eq!(expected, "UTF-8 or GBK");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rows_that_are_wrong_are_listed() {
    let cases = [
        (",交易,", ",转账,", "业务类型"),
        (",1200.00,1200.00,", ",-1200.00,1200.00,", "订单金额（元）"),
        (",-200.00,-200.00,", ",200.00,-200.00,", "订单金额（元）"),
        ("2026-12-01 08:15:32", "2026-12-32 08:15:32", "完成时间"),
        (",1200.00,1200.00,", ",1200,00,1200.00,", ""),
        ("RF2301004417-1\t", "", ""),
    ];
    for (from, to, column) in cases {
        let bad = DETAIL.replacen(from, to, 1);
        assert_ne!(bad, DETAIL);
        let e = parse_alipay_csv(&gbk(&bad), &Limits::default()).unwrap_err();
        let rows = e.row_errors();
        assert_eq!(rows.len(), 1, "{to}: {e}");
        if !column.is_empty() {
            assert_eq!(rows[0].column.as_deref(), Some(column), "{to}: {e}");
        }
    }
    // The same trade twice.
    let twice = DETAIL.replacen(
        "#-----------------------------------------业务明细列表结束",
        &format!(
            "{}\r\n#-----------------------------------------业务明细列表结束",
            DETAIL.lines().nth(5).unwrap().trim_end()
        ),
        1,
    );
    let e = parse_alipay_csv(&gbk(&twice), &Limits::default()).unwrap_err();
    assert_eq!(e.row_errors()[0].line_no, 8);
    assert!(
        e.row_errors()[0].problem.contains("already on line 6"),
        "{e}"
    );
}

#[test]
fn formula_text_is_kept() {
    let bad = DETAIL.replacen("供暖费-户号2301004417", "=HYPERLINK(\"http://x\")", 1);
    let bad = bad.replacen(
        "=HYPERLINK(\"http://x\")",
        "\"=HYPERLINK(\"\"http://x\"\")\"",
        1,
    );
    let s = parse_alipay_csv(&gbk(&bad), &Limits::default()).unwrap();
    assert_eq!(s.lines[0].memo.as_deref(), Some("=HYPERLINK(\"http://x\")"));
    assert_eq!(
        heatbill_statements::csv_safe(s.lines[0].memo.as_deref().unwrap()),
        "'=HYPERLINK(\"http://x\")"
    );
}

#[test]
fn a_missing_column_is_named() {
    let bad = DETAIL.replacen("商家实收（元）", "实收", 1);
    let e = parse_alipay_csv(&gbk(&bad), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::MissingColumn { column, line_no: 5, .. } if column == "商家实收（元）"),
        "{e}"
    );
    let e = parse_alipay_csv(
        &gbk("#支付宝业务明细查询\r\n#导出时间：[x]\r\n"),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, StatementError::Empty { .. }), "{e}");
}
