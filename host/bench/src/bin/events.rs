//! `./dev bench-events`: what fee control (费控) adds to a night, and how fast the outbox
//! drains to an MQTT broker.
//!
//! On a company `heatbill demo` loaded and billed (12 % of its customers in arrears), on
//! PostgreSQL: the night's run time (its report), then fee control evaluated over that night
//! twice (the first writes every warning and close request a policy with a 100 元 limit asks
//! for: the worst night, a season's first; the second writes nothing: a following night with
//! nothing new), then the outbox delivered to the broker (QoS 1, each event acknowledged), then
//! the same events delivered again as signed webhooks to a receiver on loopback that checks
//! every signature.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use heatbill_runtime::events::FeeControl;
use heatbill_runtime::services::Services;
use heatbill_runtime::settings::EventSettings;
use heatbill_runtime::store;

#[derive(Parser)]
struct Args {
    /// The database `heatbill demo` loaded.
    #[arg(long)]
    database: String,
    /// The company.
    #[arg(long, default_value = "harbin-demo")]
    company: String,
    /// The broker.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Events per publishing round.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    let store = store::open(&args.database, 8, 60).await?;
    let company = store.company(&args.company).await?;
    let date = store
        .latest_billed_date(company.id)
        .await?
        .context("the company has no billed night: run heatbill demo first")?;
    let runs = store.runs(company.id, date).await?;
    let first = runs
        .iter()
        .find(|r| r.state == "completed")
        .context("no completed run of the night")?;
    let run_s = first
        .report
        .as_ref()
        .and_then(|r| r["seconds"].as_f64())
        .context("the run's report has no seconds")?;
    let customers = first
        .report
        .as_ref()
        .and_then(|r| r["counts"]["customers"].as_u64())
        .unwrap_or_default();
    let policies = serde_json::json!({
        "fee_control": [{"from": "2025-10-01", "credit_limit": "100", "warning": "50",
                         "days_in_arrears": 0}],
        "events": {"targets": ["mqtt"]}});
    let policy = FeeControl::of(&policies)
        .map_err(anyhow::Error::msg)?
        .context("a policy")?;
    let pool = sqlx::PgPool::connect(&args.database).await?;
    sqlx::query("UPDATE companies SET policies = $1::jsonb WHERE id = $2")
        .bind(policies.to_string())
        .bind(company.id)
        .execute(&pool)
        .await?;
    for t in ["event_deliveries", "events", "valve_states"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {t}")))
            .execute(&pool)
            .await?;
    }

    let t = Instant::now();
    let first_night = store.fee_night(company.id, date, &policy).await?;
    let first_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = store.fee_night(company.id, date, &policy).await?;
    let again_s = t.elapsed().as_secs_f64();

    let services = Services::embedded(store.clone(), &Default::default());
    let settings = EventSettings {
        mqtt_url: Some(args.broker.clone()),
        topic_prefix: "heatbill-bench".into(),
        client_id: format!("heatbill-bench-{}", std::process::id()),
        batch: args.batch,
        ..Default::default()
    };
    let t = Instant::now();
    let mut delivered = 0usize;
    loop {
        let n = heatbill_runtime::publish::round_mqtt(&services, &settings)
            .await
            .map_err(anyhow::Error::msg)?;
        if n == 0 {
            break;
        }
        delivered += n;
    }
    let publish_s = t.elapsed().as_secs_f64();

    // The same events as signed webhooks, to a receiver on loopback that checks each signature.
    let secret = store
        .webhook_secret(
            company.id,
            &heatbill_runtime::webhook::new_secret().map_err(anyhow::Error::msg)?,
            heatbill_runtime::events::now_ms(),
            None,
        )
        .await?
        .secret;
    let (url, received) = receiver(secret).await?;
    let policies = serde_json::json!({
        "fee_control": policies["fee_control"],
        "events": {"targets": ["webhook"], "webhook": {"url": url}}});
    sqlx::query("UPDATE companies SET policies = $1::jsonb WHERE id = $2")
        .bind(policies.to_string())
        .bind(company.id)
        .execute(&pool)
        .await?;
    sqlx::query(
        "UPDATE event_deliveries SET target = 'webhook', state = 'pending', attempts = 0,
            next_at_ms = 0, delivered_at = NULL WHERE company_id = $1",
    )
    .bind(company.id)
    .execute(&pool)
    .await?;
    let http = heatbill_runtime::webhook::client(&settings).map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    let mut hooked = 0usize;
    loop {
        let n = heatbill_runtime::webhook::round(&services, &settings, &http)
            .await
            .map_err(anyhow::Error::msg)?;
        if n == 0 {
            break;
        }
        hooked += n;
    }
    let hook_s = t.elapsed().as_secs_f64();
    let verified = received.load(std::sync::atomic::Ordering::Relaxed);

    println!(
        "heatbill-bench-events: company {}, night {date}, {customers} customers (PostgreSQL)",
        company.slug
    );
    println!();
    println!("| step | seconds | of the run | what |");
    println!("|---|---:|---:|---|");
    println!("| the night's run (its report) | {run_s:.2} | 1.00 | {customers} customers billed |");
    println!(
        "| fee control, first evaluation | {first_s:.2} | {:.3} | {} customers evaluated; {} warnings, {} close requests, {} opens written |",
        first_s / run_s,
        first_night.evaluated,
        first_night.warnings,
        first_night.closes,
        first_night.opens
    );
    println!(
        "| fee control, again (nothing new) | {again_s:.2} | {:.3} | {} evaluated, {} events written |",
        again_s / run_s,
        again.evaluated,
        again.warnings + again.closes + again.opens
    );
    println!(
        "| the outbox to MQTT (QoS 1, batch {}) | {publish_s:.2} | | {delivered} events, {:.0} events/s |",
        args.batch,
        delivered as f64 / publish_s.max(1e-9)
    );
    println!(
        "| the outbox to webhooks (batch {}, {} in flight) | {hook_s:.2} | | {hooked} events, {:.0} events/s; {verified} signatures checked by the receiver |",
        args.batch,
        settings.webhook_concurrency,
        hooked as f64 / hook_s.max(1e-9)
    );
    Ok(())
}

/// A receiver on a loopback port that checks each delivery's signature (401 when it does not
/// verify) and counts the ones that do: its URL and the count.
async fn receiver(
    secret: String,
) -> Result<(String, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let count = Arc::new(AtomicU64::new(0));
    let state = (Arc::new(secret), count.clone());
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::post(
                |axum::extract::State((secret, count)): axum::extract::State<(
                    Arc<String>,
                    Arc<AtomicU64>,
                )>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let header = headers
                        .get(heatbill_runtime::webhook::SIGNATURE)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("");
                    let now = chrono::Utc::now().timestamp();
                    match heatbill_runtime::webhook::verify(header, &secret, &body, now, 300) {
                        Ok(_) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            axum::http::StatusCode::OK
                        }
                        Err(_) => axum::http::StatusCode::UNAUTHORIZED,
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, count))
}
