//! The store side of a channel statement (`./dev bench-statements`): a WeChat Pay trade bill of
//! 200,000 lines (by default) reconciled against the ledger and stored, on PostgreSQL and
//! SQLite, side by side.
//!
//! One company of one customer per payment. The ledger holds the day's WeChat payments as the
//! notifications recorded them, except that one in a hundred was lost (missing in heatbill),
//! one in a hundred was recorded a yuan too high (an amount mismatch), and a thousand payments
//! the channel does not have were recorded (missing in the channel); the day's refunds were
//! never recorded (lost refunds). The figures: the file parsed (pure), reconciled and stored
//! (`record_statement`, what the API's upload and `heatbill statement import` call after the
//! parse), the same file again (found by its digest, nothing stored), and its discrepancies
//! read back.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::Parser;
use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::ledger::{Channel, EntryKind, NewEntry};
use heatbill_runtime::model::{CompanySpec, ImportKind, Season};
use heatbill_runtime::settings::ImportSettings;
use heatbill_runtime::store::statements::{NewStatement, StatementRecorded, account_rule};
use heatbill_runtime::store::{self, prelude::*};
use heatbill_statements::fixtures::{self, WechatOpts};
use heatbill_statements::{Limits, parse_wechat};
use rust_decimal::Decimal;

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Payment lines in the statement.
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    /// Refund lines in the statement.
    #[arg(long, default_value_t = 1_000)]
    refunds: usize,
    /// A PostgreSQL database the benchmark may create databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

/// What the ledger recorded of payment `i`: nothing (lost), a yuan more, or its amount.
fn recorded_amount(i: usize, amount: Decimal) -> Option<Decimal> {
    match i % 100 {
        0 => None,
        50 => Some(amount + Decimal::ONE),
        _ => Some(amount),
    }
}

async fn bench(args: Args) -> Result<()> {
    let date = NaiveDate::from_ymd_opt(2025, 12, 1).expect("a date");
    let day = fixtures::day(
        heatbill_statements::Channel::Wechat,
        7,
        date,
        args.lines,
        args.refunds,
    );
    let bill = fixtures::wechat_bill(date, &day.payments, &day.refunds, &WechatOpts::default());
    let t = Instant::now();
    let parsed = parse_wechat(&bill, &Limits::default())?;
    let parse_secs = t.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    let customers = dir.path().join("customers.csv");
    {
        let mut c = std::io::BufWriter::new(std::fs::File::create(&customers)?);
        writeln!(c, "customer_id,class,building_area")?;
        for i in 0..day.payments.len() {
            writeln!(c, "C{i:08},residential,75.00")?;
        }
    }
    let mut backends = vec![(
        "PostgreSQL",
        heatbill_bench::fresh_database(&args.postgres, "heatbill_bench_statements").await?,
    )];
    if !args.no_sqlite {
        backends.push((
            "SQLite",
            format!("sqlite://{}", dir.path().join("bench.db").display()),
        ));
    }
    println!(
        "a WeChat Pay trade bill of {} lines ({} payments, {} refunds), {} bytes; parsed in \
         {parse_secs:.2} s (pure)",
        parsed.lines.len(),
        day.payments.len(),
        day.refunds.len(),
        bill.len()
    );
    println!(
        "| backend | ledger entries | reconciled and stored (s) | same file again (s) | \
         discrepancies read (s) | matched | missing in heatbill | missing in channel | \
         amount mismatch |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, url) in backends {
        let store: Arc<dyn Store> = store::open(&url, 8, 60).await?;
        store.migrate().await?;
        let company = store
            .put_company(&CompanySpec {
                slug: "wx".into(),
                name: "Statements".into(),
                time_zone: "Asia/Harbin".into(),
                policies: serde_json::json!({}),
                seasons: vec![Season {
                    start: NaiveDate::from_ymd_opt(2025, 10, 20).expect("a date"),
                    end: NaiveDate::from_ymd_opt(2026, 4, 20).expect("a date"),
                }],
            })
            .await?;
        let out = import::import_file(
            store.as_ref(),
            &company,
            ImportKind::Customers,
            &customers,
            &ImportSettings::default(),
        )
        .await?;
        if let ImportOutcome::Refused { errors, .. } = out {
            bail!("the generated customers were refused: {:?}", errors.first());
        }
        // The ledger as the notifications left it (not measured).
        let mut entries = 0usize;
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for (i, p) in day.payments.iter().enumerate() {
            if let Some(a) = recorded_amount(i, p.amount) {
                rows.push((format!("C{i:08}"), p.txn.clone(), a.to_string()));
            }
        }
        for j in 0..1_000 {
            rows.push((
                format!("C{j:08}"),
                format!("4200EXTRA{j:08}"),
                "88.00".to_string(),
            ));
        }
        if label == "PostgreSQL" {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            for chunk in rows.chunks(20_000) {
                let (ids, txns, amounts): (Vec<&str>, Vec<&str>, Vec<&str>) = chunk
                    .iter()
                    .map(|(c, t, a)| (c.as_str(), t.as_str(), a.as_str()))
                    .fold((vec![], vec![], vec![]), |mut v, (c, t, a)| {
                        v.0.push(c);
                        v.1.push(t);
                        v.2.push(a);
                        v
                    });
                sqlx::query(
                    "INSERT INTO account_entries (company_id, customer_id, kind, on_date, amount,
                         channel, channel_txn, recorded_by, source)
                     SELECT $1, u.c, 'payment', $2, u.a::numeric, 'wechat', u.t, 'bench', 'api'
                     FROM unnest($3::text[], $4::text[], $5::text[]) AS u (c, t, a)",
                )
                .bind(company.id)
                .bind(date)
                .bind(&ids)
                .bind(&txns)
                .bind(&amounts)
                .execute(&mut conn)
                .await?;
                entries += chunk.len();
            }
        } else {
            for (c, t, a) in &rows {
                store
                    .record_entry(
                        company.id,
                        &NewEntry {
                            customer_id: c.clone(),
                            kind: EntryKind::Payment,
                            on_date: date,
                            amount: a.parse()?,
                            channel: Some(Channel::Wechat),
                            channel_txn: Some(t.clone()),
                            method: None,
                            receipt_no: None,
                            cashier: None,
                            reason_code: None,
                            note: None,
                            recorded_by: "bench".into(),
                            source: "api".into(),
                        },
                    )
                    .await?;
                entries += 1;
            }
        }
        let n = NewStatement {
            file_name: "wx-20251201.csv".into(),
            bank_profile: None,
            statement: &parsed,
            account_rule: account_rule(&serde_json::json!({})).map_err(anyhow::Error::msg)?,
            recorded_by: "bench".into(),
        };
        let t = Instant::now();
        let first = store.record_statement(company.id, &n).await?;
        let stored_secs = t.elapsed().as_secs_f64();
        let StatementRecorded::New(s) = first else {
            bail!("the statement was stored before");
        };
        let t = Instant::now();
        let again = store.record_statement(company.id, &n).await?;
        let again_secs = t.elapsed().as_secs_f64();
        if !matches!(again, StatementRecorded::Again(_)) {
            bail!("the same file was stored twice");
        }
        let t = Instant::now();
        let items = store
            .statement_items(company.id, s.id, None)
            .await?
            .map_or(0, |(_, i)| i.len());
        let items_secs = t.elapsed().as_secs_f64();
        let found = s.missing_in_heatbill + s.missing_in_channel + s.amount_mismatch;
        if items as i64 != found {
            bail!("{items} discrepancies read back, {found} stored");
        }
        println!(
            "| {label} | {entries} | {stored_secs:.2} | {again_secs:.3} | {items_secs:.2} | {} | \
             {} | {} | {} |",
            s.matched, s.missing_in_heatbill, s.missing_in_channel, s.amount_mismatch
        );
    }
    Ok(())
}
