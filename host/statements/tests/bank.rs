//! Bank statements through saved profiles.

use chrono::NaiveDate;
use heatbill_statements::fixtures::{self, BankOpts};
use heatbill_statements::{
    AmountColumns, BankProfile, Channel, Limits, LineKind, MemoRule, StatementError, parse_bank_csv,
};
use rust_decimal::Decimal;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A profile as an operator saves it, JSON.
const PROFILE_JSON: &str = r#"{
  "name": "city-bank",
  "skip_rows": 1,
  "date_column": "日期",
  "date_format": "%Y/%m/%d",
  "amounts": {"kind": "credit-debit", "credit": "收入金额", "debit": "支出金额"},
  "txn_column": "流水号",
  "counterparty_name_column": "对方户名",
  "counterparty_account_column": "对方账号",
  "memo_columns": ["摘要", "用途", "附言"],
  "memo_rule": {"kind": "prefix", "prefix": "户号", "min_len": 6, "max_len": 12},
  "footer_markers": ["合计"]
}"#;

/// A statement as the bank exports it: a title line, the header, two credits and a debit
/// (the memo split over three columns), a totals line.
const SMALL: &str = "\
城市商业银行 对公账户交易明细 账号 1902000109000012345\r
日期,流水号,摘要,收入金额,支出金额,余额,对方户名,对方账号,用途,附言\r
2026/12/01,CB20261201000001,转账,1200.00,,101200.00,张伟,6222020000000001,供暖费,户号：2301004417\r
2026/12/01,CB20261201000002,转账,800.50,,102000.50,\"王芳,李娜\",6222020000000002,2301009999 采暖,\r
2026/12/01,CB20261201000003,退款,,300.00,101700.50,张伟,6222020000000001,退多缴,户号2301004417\r
合计,,,2000.50,300.00,,,,,\r
";

fn profile() -> BankProfile {
    serde_json::from_str(PROFILE_JSON).unwrap()
}

#[test]
fn a_profile_is_stored_as_json() {
    let p = profile();
    assert_eq!(p.skip_rows, 1);
    assert!(matches!(p.memo_rule, MemoRule::Prefix { min_len: 6, .. }));
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<BankProfile>(&json).unwrap(), p);
    for p in [fixtures::credit_debit_profile(), fixtures::signed_profile()] {
        let json = serde_json::to_string_pretty(&p).unwrap();
        assert_eq!(serde_json::from_str::<BankProfile>(&json).unwrap(), p);
    }
}

#[test]
fn a_hand_written_statement_is_read_through_its_profile() {
    for bytes in [SMALL.as_bytes().to_vec(), fixtures::gbk(SMALL)] {
        let s = parse_bank_csv(&bytes, &profile(), &Limits::default()).unwrap();
        assert_eq!(s.channel, Channel::Bank);
        assert_eq!(s.lines.len(), 3, "the 合计 line ends the rows");
        let a = &s.lines[0];
        assert_eq!(a.line_no, 3);
        assert_eq!(a.kind, LineKind::Payment);
        assert_eq!(a.channel_txn, "CB20261201000001");
        assert_eq!(a.amount.to_string(), "1200.00");
        assert_eq!(a.fee.to_string(), "0.00");
        assert_eq!(a.time.to_string(), "2026-12-01 00:00:00");
        assert_eq!(a.memo.as_deref(), Some("转账 供暖费 户号：2301004417"));
        assert_eq!(a.account_hint.as_deref(), Some("2301004417"));
        assert_eq!(a.counterparty.as_deref(), Some("张伟 6222020000000001"));
        let b = &s.lines[1];
        assert_eq!(
            b.account_hint, None,
            "no 户号 in the memo: left to a person"
        );
        assert_eq!(
            b.counterparty.as_deref(),
            Some("王芳,李娜 6222020000000002")
        );
        let c = &s.lines[2];
        assert_eq!(c.kind, LineKind::Refund);
        assert_eq!(c.amount.to_string(), "-300.00");
        assert_eq!(s.totals.payments, dec("2000.50"));
        assert_eq!(s.totals.refunds, dec("-300"));
    }
}

#[test]
fn generated_statements_read_back_in_both_layouts() {
    let day = fixtures::day(Channel::Bank, 31, date(), 2_000, 40);
    for (profile, gbk) in [
        (fixtures::credit_debit_profile(), true),
        (fixtures::signed_profile(), false),
    ] {
        let bytes = fixtures::bank_csv(&profile, &day.payments, &day.refunds, &BankOpts { gbk });
        let s = parse_bank_csv(&bytes, &profile, &Limits::default()).unwrap();
        assert_eq!(s.totals.payment_count, 2_000, "{}", profile.name);
        assert_eq!(s.totals.refund_count, 40);
        let paid: Decimal = day.payments.iter().map(|p| p.amount).sum();
        assert_eq!(s.totals.payments, paid);
        assert_eq!(s.lines[0].line_no, profile.skip_rows as u64 + 2);
        let accounts: std::collections::HashMap<&str, &str> = day
            .payments
            .iter()
            .map(|p| (p.txn.as_str(), p.account.as_str()))
            .collect();
        for line in s.lines.iter().filter(|l| l.kind == LineKind::Payment) {
            assert_eq!(
                line.account_hint.as_deref(),
                Some(accounts[line.channel_txn.as_str()]),
                "{}: {:?}",
                profile.name,
                line.memo
            );
        }
        // The time column (credit-debit) or the date-time format (signed) gives the time.
        let first = day.payments.iter().map(|p| p.time).min().unwrap();
        assert!(s.lines.iter().any(|l| l.time == first));
    }
}

#[test]
fn a_missing_column_names_the_profile_column() {
    let mut p = profile();
    p.memo_columns.push("备注".into());
    let e = parse_bank_csv(SMALL.as_bytes(), &p, &Limits::default()).unwrap_err();
    match &e {
        StatementError::MissingColumn {
            column,
            line_no,
            expected,
            ..
        } => {
            assert_eq!(column, "备注");
            assert_eq!(*line_no, 2);
            assert!(expected.contains("city-bank"));
        }
        other => panic!("{other:?}"),
    }
    // skip_rows wrong: the title line is taken for the header.
    let mut p = profile();
    p.skip_rows = 0;
    let e = parse_bank_csv(SMALL.as_bytes(), &p, &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::MissingColumn { line_no: 1, column, .. } if column == "日期"),
        "{e}"
    );
}

#[test]
fn rows_that_are_wrong_say_what_to_fix() {
    let cases = [
        (
            "2026/12/01,CB20261201000001",
            "2026-12-01,CB20261201000001",
            "日期",
            "%Y/%m/%d (e.g. 2026/12/01)",
        ),
        (
            "2026/12/01,CB20261201000001",
            "2026/02/30,CB20261201000001",
            "日期",
            "not a date",
        ),
        (
            ",1200.00,,101200.00",
            ",1200.00,5.00,101200.00",
            "",
            "both 收入金额 and 支出金额",
        ),
        (",1200.00,,101200.00", ",,,101200.00", "", "neither"),
        (
            ",1200.00,,101200.00",
            ",-1200.00,,101200.00",
            "收入金额",
            "no negative amounts",
        ),
        (
            ",1200.00,,101200.00",
            ",\"1,200.00\",,101200.00",
            "收入金额",
            "no thousands separator",
        ),
        (
            ",1200.00,,101200.00",
            ",1.2E3,,101200.00",
            "收入金额",
            "no exponent",
        ),
        (
            ",1200.00,,101200.00",
            ",1200.005,,101200.00",
            "收入金额",
            "3 decimals",
        ),
        ("CB20261201000001,", ",", "", "transaction id"),
    ];
    for (from, to, column, words) in cases {
        let bad = SMALL.replacen(from, to, 1);
        assert_ne!(bad, SMALL, "{from}");
        let e = parse_bank_csv(bad.as_bytes(), &profile(), &Limits::default()).unwrap_err();
        let rows = e.row_errors();
        assert_eq!(rows.len(), 1, "{to}: {e}");
        assert_eq!(rows[0].line_no, 3);
        if !column.is_empty() {
            assert_eq!(rows[0].column.as_deref(), Some(column), "{to}: {e}");
        }
        assert!(e.to_string().contains(words), "{to}: {e}");
    }
    // With the profile's permission, grouped digits are fine.
    let mut p = profile();
    p.thousands_separator = true;
    let grouped = SMALL.replacen(",1200.00,,", ",\"1,200.00\",,", 1);
    let s = parse_bank_csv(grouped.as_bytes(), &p, &Limits::default()).unwrap();
    assert_eq!(s.lines[0].amount, dec("1200"));
}

#[test]
fn the_same_bank_reference_twice_is_refused() {
    let twice = SMALL.replacen("CB20261201000002", "CB20261201000001", 1);
    let e = parse_bank_csv(twice.as_bytes(), &profile(), &Limits::default()).unwrap_err();
    assert_eq!(e.row_errors()[0].line_no, 4);
    assert_eq!(e.row_errors()[0].column.as_deref(), Some("流水号"));
    assert!(e.row_errors()[0].problem.contains("already on line 3"));
}

#[test]
fn a_profile_that_cannot_work_is_refused_not_panicked_on() {
    let mut bad = profile();
    bad.date_format = "%Y-%Q".into();
    let e = parse_bank_csv(SMALL.as_bytes(), &bad, &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::Profile { name, .. } if name == "city-bank"),
        "{e}"
    );
    let mut bad = profile();
    bad.memo_rule = MemoRule::FirstRun {
        min_len: 9,
        max_len: 3,
        extra_chars: String::new(),
    };
    assert!(matches!(
        parse_bank_csv(SMALL.as_bytes(), &bad, &Limits::default()),
        Err(StatementError::Profile { .. })
    ));
    let mut bad = profile();
    bad.amounts = AmountColumns::Signed { amount: " ".into() };
    assert!(matches!(
        parse_bank_csv(SMALL.as_bytes(), &bad, &Limits::default()),
        Err(StatementError::Profile { .. })
    ));
}

#[test]
fn hostile_bank_files() {
    // Neither UTF-8 nor GBK.
    let mut bytes = SMALL.as_bytes().to_vec();
    bytes.extend_from_slice(&[0xFF, 0xFE, 0x00]);
    let e = parse_bank_csv(&bytes, &profile(), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, StatementError::Encoding { line_no: 7, .. }),
        "{e:?}"
    );
    // Over the size limit.
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(
        parse_bank_csv(SMALL.as_bytes(), &profile(), &limits),
        Err(StatementError::TooLarge { .. })
    ));
    // A missing field, an extra field.
    let bad =
        SMALL
            .replacen(",101200.00,", ",", 1)
            .replacen("户号2301004417\r", "户号2301004417,x\r", 1);
    let e = parse_bank_csv(bad.as_bytes(), &profile(), &Limits::default()).unwrap_err();
    let lines: Vec<u64> = e.row_errors().iter().map(|r| r.line_no).collect();
    assert_eq!(lines, [3, 5], "{e}");
    // Formula text kept as written.
    let formula = SMALL.replacen("张伟", "=1+2", 1);
    let s = parse_bank_csv(formula.as_bytes(), &profile(), &Limits::default()).unwrap();
    assert!(
        s.lines[0]
            .counterparty
            .as_deref()
            .unwrap()
            .starts_with("=1+2")
    );
    // Damaged anywhere: never a panic.
    let mut rng = fixtures::Rng::new(77);
    for _ in 0..1_000 {
        let mut damaged = SMALL.as_bytes().to_vec();
        let at = rng.below(damaged.len() as u64) as usize;
        damaged[at] = rng.below(256) as u8;
        let _ = parse_bank_csv(&damaged, &profile(), &Limits::default());
    }
}
