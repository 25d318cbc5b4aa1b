//! Parses and reconciles a generated day of WeChat Pay payments (200,000 rows by default, or
//! the number given) and prints the figures: `cargo run -p heatbill-statements --release --bin
//! statements-bench [-- ROWS]`.

use std::time::Instant;

use chrono::NaiveDate;
use heatbill_statements::fixtures::{self, AlipayOpts, BankOpts, BankXlsxOpts, Inject, WechatOpts};
use heatbill_statements::{
    Channel, Limits, Statement, parse_alipay_zip, parse_bank, parse_wechat, reconcile,
};

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
    let refunds = rows / 50;
    let inject = Inject {
        only_in_statement: 10,
        only_recorded: 10,
        amount_mismatch: 10,
    };
    let limits = Limits::default();
    println!(
        "| file | rows | bytes | parse ms | MB/s | reconcile ms | matched | missing in heatbill | missing in channel | amount mismatch |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // The bank twice: its CSV, and the same rows as an XLSX workbook with serial dates.
    for (channel, xlsx) in [
        (Channel::Wechat, false),
        (Channel::Alipay, false),
        (Channel::Bank, false),
        (Channel::Bank, true),
    ] {
        let s = fixtures::scenario(channel, 1, date, rows - refunds, refunds, inject);
        let d = &s.day;
        let profile = fixtures::credit_debit_profile();
        let (name, bytes) = match channel {
            Channel::Wechat => (
                "WeChat bill (UTF-8)",
                fixtures::wechat_bill(date, &d.payments, &d.refunds, &WechatOpts::default()),
            ),
            Channel::Alipay => (
                "Alipay ZIP (GBK)",
                fixtures::alipay_zip(date, &d.payments, &d.refunds, &AlipayOpts::default()),
            ),
            Channel::Bank if xlsx => (
                "bank XLSX (shared strings, serial dates)",
                fixtures::bank_xlsx(
                    &profile,
                    &d.payments,
                    &d.refunds,
                    &BankXlsxOpts {
                        serial_dates: true,
                        inline_strings: false,
                    },
                ),
            ),
            Channel::Bank => (
                "bank CSV (GBK)",
                fixtures::bank_csv(&profile, &d.payments, &d.refunds, &BankOpts { gbk: true }),
            ),
        };
        let started = Instant::now();
        let parsed: Result<Statement, _> = match channel {
            Channel::Wechat => parse_wechat(&bytes, &limits),
            Channel::Alipay => parse_alipay_zip(&bytes, &limits),
            Channel::Bank => parse_bank(&bytes, &profile, &limits),
        };
        let parse = started.elapsed();
        let statement = match parsed {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        };
        let started = Instant::now();
        let r = reconcile(&statement, &s.recorded);
        let reconcile_time = started.elapsed();
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
            statement.lines.len(),
            bytes.len(),
            parse.as_secs_f64() * 1e3,
            bytes.len() as f64 / 1e6 / parse.as_secs_f64(),
            reconcile_time.as_secs_f64() * 1e3,
            r.matched.count,
            r.missing_in_heatbill.count,
            r.missing_in_channel.count,
            r.amount_mismatch.count,
        );
    }
}
