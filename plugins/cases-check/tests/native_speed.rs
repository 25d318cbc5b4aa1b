//! A rough native speed check of the reference chain (season → area-tariff →
//! low-income-subsidy → late-fee): `cargo test --release -p cases-check --test native_speed --
//! --ignored --nocapture`. The host's benchmark measures the same chain natively and sandboxed.

use std::time::Instant;

use heatbill_sdk::native::{Chain, configure};
use heatbill_sdk::testing::day;

#[test]
#[ignore = "a measurement, not a check: run it in release"]
#[allow(clippy::float_arithmetic)]
fn reference_chain_native_speed() {
    let chain = Chain::new()
        .with(configure::<season::Season>(r#"{"start": "2025-10-20", "end": "2026-04-20"}"#).unwrap())
        .with(
            configure::<area_tariff::AreaTariff>(
                r#"{"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"}}"#,
            )
            .unwrap(),
        )
        .with(
            configure::<low_income_subsidy::LowIncomeSubsidy>(
                r#"{"area_cap": "45", "area_basis": "usable"}"#,
            )
            .unwrap(),
        )
        .with(
            configure::<late_fee::LateFee>(r#"{"daily_rate": "0.001", "due_date": "2026-01-01"}"#)
                .unwrap(),
        );
    let batch: Vec<_> = (0..512)
        .map(|i| {
            let mut b = day("2026-01-05").usable_area(&format!("{}.{:02}", 40 + i % 60, i % 100));
            if i % 10 == 0 {
                b = b.low_income();
            }
            if i % 7 == 0 {
                b = b.arrears("1149.60", Some("2025-12-01"));
            }
            b.build()
        })
        .collect();
    let rounds = 400;
    let start = Instant::now();
    let mut lines = 0;
    for _ in 0..rounds {
        for bill in chain.evaluate(&batch) {
            lines += bill.unwrap().lines.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let days = (rounds * batch.len()) as f64;
    println!(
        "chain: {days} customer-days in {secs:.3} s: {:.0} customer-days/s ({lines} lines)",
        days / secs
    );
    // Each plugin alone, on days with the season position the chain gives them.
    let positioned: Vec<_> = chain
        .evaluate(&batch)
        .into_iter()
        .zip(&batch)
        .map(|(bill, d)| {
            let mut d = d.clone();
            d.season = bill.unwrap().season;
            d
        })
        .collect();
    let area = configure::<area_tariff::AreaTariff>(
        r#"{"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"}}"#,
    )
    .unwrap();
    let start = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        for d in &positioned {
            n += area.evaluate(d).unwrap().lines.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "area-tariff alone: {:.0} ns per customer-day ({n} lines)",
        secs * 1e9 / days
    );
}
