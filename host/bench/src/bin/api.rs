//! The admin API's benchmark of BENCHMARKS.md (`./dev bench-api`).
//!
//! One invocation, on one fresh PostgreSQL database and two companies of the same generated
//! customers (the demo's mix, the reference chain with Harbin's figures), measures side by side:
//!
//! - **imports**: each of the company's files through the runtime directly (what
//!   `heatbill import` does) and uploaded over HTTP to `heatbill serve` (streamed);
//! - **the run**: `run::run` directly (what `heatbill run` does) and requested over HTTP
//!   (`POST …/runs`, then polled until it completes);
//! - **reads**: every bill of the date through the keyset pages (1,000 a page) and through the
//!   streamed CSV export;
//! - **dry runs**: one customer-day at a time, sequentially: latency p50 / p99;
//! - **the receivables report**: every customer's balance aged and added up by community.
//!
//! The server runs in this process on a loopback port (the same code as `heatbill serve`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Parser;
use heatbill_api::{self as api, AppState};
use heatbill_engine::{Engine, EngineConfig};
use heatbill_runtime::company::{self, CompanyFile, Components, params_json};
use heatbill_runtime::demo;
use heatbill_runtime::import::{self, ImportOutcome};
use heatbill_runtime::model::ImportKind;
use heatbill_runtime::run;
use heatbill_runtime::services::Services;
use heatbill_runtime::settings::{ImportSettings, Settings};
use heatbill_runtime::store::{self, prelude::*};
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Customers of each company.
    #[arg(long, default_value_t = 300_000)]
    customers: usize,
    /// Dry runs to time.
    #[arg(long, default_value_t = 500)]
    dry_runs: usize,
    /// A PostgreSQL database the benchmark may create databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The bill date.
    #[arg(long, default_value = "2026-01-15")]
    date: NaiveDate,
    /// The built components (default: this checkout's plugins/ build output).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/target/wasm32-wasip2/release"))]
    plugins: PathBuf,
}

const OPERATOR: &str = "bench-operator-token-0123456789";

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn send(&self, r: reqwest::RequestBuilder, want: u16) -> Result<Value> {
        let resp = r.bearer_auth(OPERATOR).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if status != want {
            bail!("expected {want}, got {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(std::env::temp_dir().join("heatbill-bench-cache")),
        ..EngineConfig::default()
    })?;
    rt.block_on(bench(args, engine))
}

async fn bench(args: Args, engine: Engine) -> Result<()> {
    let n = args.customers;
    let date = args.date;
    let url = heatbill_bench::fresh_database(&args.postgres, "heatbill_bench_api").await?;
    let store: Arc<dyn Store> = store::open(&url, 8, 60).await?;
    store.migrate().await?;
    let services = Services::embedded(store.clone(), &Default::default());
    let mut settings = Settings::default();
    settings.database.url = url.clone();
    // The benchmark's company has no case files: the chain is the demo's.
    settings.api.require_cases = false;
    settings.api.scheduler = false;
    settings.api.max_import_bytes = 8 << 30;

    let dir = tempfile::tempdir()?;
    let files = demo::write_files(dir.path(), n, date)?;
    let kinds = [
        (ImportKind::Customers, &files.customers, "customers"),
        (ImportKind::Readings, &files.readings, "readings"),
        (
            ImportKind::Temperatures,
            &files.temperatures,
            "temperatures",
        ),
        (ImportKind::Balances, &files.balances, "balances"),
        (ImportKind::Payments, &files.payments, "payments"),
    ];
    let mut table: Vec<String> = Vec::new();

    // The runtime directly: company "direct".
    let mut comp_files: Vec<PathBuf> = std::fs::read_dir(&args.plugins)
        .with_context(|| {
            format!(
                "no built plugins in {}: run ./dev plugins",
                args.plugins.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    comp_files.sort();
    let components = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || Components::load(&engine, &comp_files)).await??
    };
    let file =
        CompanyFile::parse(&demo::reference_company("direct")).map_err(anyhow::Error::msg)?;
    let applied = company::apply(store.as_ref(), &file, &components).await?;
    let mut direct_import = Vec::new();
    for (kind, path, _) in kinds {
        let t = Instant::now();
        let out = import::import_file(
            store.as_ref(),
            &applied.company,
            kind,
            path,
            &ImportSettings::default(),
        )
        .await?;
        if let ImportOutcome::Refused { errors, .. } = out {
            bail!(
                "the generated {kind} file was refused: {:?}",
                errors.first()
            );
        }
        direct_import.push(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    let env = run::Env::new(services.clone(), engine.clone(), settings.clone());
    let direct = run::run(&env, "direct", date, |_| {}).await?;
    let direct_run = t.elapsed().as_secs_f64();

    // The API: company "http", made and fed over HTTP.
    let app = Arc::new(AppState::new(
        services.clone(),
        engine.clone(),
        settings.clone(),
        OPERATOR,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = Http {
        base: format!("http://{}", listener.local_addr()?),
        client: reqwest::Client::new(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(app, listener, async {
        let _ = stop_rx.await;
    }));
    let c = &file;
    http.send(
        http.client.post(http.url("/v1/companies")).json(&json!({
            "slug": "http", "name": c.name, "time_zone": c.time_zone,
            "seasons": c.seasons.iter().map(|s| json!({"start": s.start, "end": s.end})).collect::<Vec<_>>(),
        })),
        201,
    )
    .await?;
    let chain = c.chains.first().context("the demo company has a chain")?;
    for e in &chain.entries {
        let path = args
            .plugins
            .join(format!("{}.wasm", e.plugin.replace('-', "_")));
        let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
        http.send(
            http.client
                .post(http.url("/v1/companies/http/plugins"))
                .header("content-type", "application/wasm")
                .body(bytes),
            201,
        )
        .await?;
    }
    let entries: Vec<Value> = chain
        .entries
        .iter()
        .map(|e| {
            json!({
                "plugin": e.plugin,
                "params": e.params.as_ref().map(params_json).unwrap_or_else(|| json!({})),
            })
        })
        .collect();
    http.send(
        http.client
            .post(http.url("/v1/companies/http/chains"))
            .json(&json!({"effective_from": chain.effective_from, "entries": entries})),
        201,
    )
    .await?;
    let mut http_import = Vec::new();
    for (_, path, name) in kinds {
        let bytes = std::fs::read(path)?;
        let t = Instant::now();
        http.send(
            http.client
                .post(http.url(&format!("/v1/companies/http/imports/{name}")))
                .header("content-type", "text/csv")
                .body(bytes),
            200,
        )
        .await?;
        http_import.push(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    let opened = http
        .send(
            http.client
                .post(http.url("/v1/companies/http/runs"))
                .header("idempotency-key", "bench")
                .json(&json!({"date": date})),
            202,
        )
        .await?;
    let id = opened["id"].as_i64().context("a run id")?;
    let done = loop {
        let v = http
            .send(
                http.client
                    .get(http.url(&format!("/v1/companies/http/runs/{id}"))),
                200,
            )
            .await?;
        if v["state"] != "running" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let http_run = t.elapsed().as_secs_f64();
    if done["state"] != "completed" || done["customers"].as_u64() != Some(n as u64) {
        bail!("the run over HTTP did not bill every customer: {done}");
    }

    // Reads: pages and the export.
    let t = Instant::now();
    let mut after: Option<String> = None;
    let mut paged = 0usize;
    loop {
        let mut url = format!("/v1/companies/http/bills?date={date}&limit=1000");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let v = http.send(http.client.get(http.url(&url)), 200).await?;
        paged += v["bills"].as_array().map_or(0, Vec::len);
        match v["next_after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    let pages_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let csv = http
        .client
        .get(http.url(&format!("/v1/companies/http/bills/export?date={date}")))
        .bearer_auth(OPERATOR)
        .send()
        .await?
        .bytes()
        .await?;
    let export_secs = t.elapsed().as_secs_f64();
    let export_rows = csv
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1);

    // Dry runs, one after the other, spread over the company.
    let mut lat = Vec::with_capacity(args.dry_runs);
    for i in 0..args.dry_runs {
        let customer = demo::customer_id(i * (n / args.dry_runs.max(1)).max(1) % n);
        let t = Instant::now();
        http.send(
            http.client
                .post(http.url("/v1/companies/http/dry-run"))
                .json(&json!({"customer": customer, "date": date})),
            200,
        )
        .await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    // The receivables report of the company run directly, over HTTP (every customer aged).
    let t = Instant::now();
    let recv = http
        .send(
            http.client
                .get(http.url(&format!("/v1/companies/direct/receivables?as_of={date}"))),
            200,
        )
        .await?;
    let receivables_secs = t.elapsed().as_secs_f64();
    if recv["total"]["customers"].as_u64() != Some(n as u64) {
        bail!(
            "the receivables report did not count every customer: {}",
            recv["total"]
        );
    }
    let _ = stop_tx.send(());
    server.await??;

    table.push("| step | runtime directly (s) | over HTTP (s) | HTTP / direct |".into());
    table.push("|---|---|---|---|".into());
    for (i, (_, _, name)) in kinds.iter().enumerate() {
        table.push(format!(
            "| import {name} | {:.2} | {:.2} | {:.2} |",
            direct_import[i],
            http_import[i],
            http_import[i] / direct_import[i]
        ));
    }
    table.push(format!(
        "| run of {n} customers (request to completed) | {direct_run:.2} | {http_run:.2} | {:.2} |",
        http_run / direct_run
    ));
    println!("\n{}\n", table.join("\n"));
    println!(
        "direct run: {} customers, {} written, {:.0} customers/s",
        direct.counts.customers,
        direct.counts.written,
        n as f64 / direct_run
    );
    println!(
        "reads over HTTP: {paged} bills in pages of 1,000: {pages_secs:.2} s ({:.0} bills/s); \
         CSV export: {export_rows} lines, {:.1} MB in {export_secs:.2} s ({:.0} lines/s)",
        paged as f64 / pages_secs,
        csv.len() as f64 / 1e6,
        export_rows as f64 / export_secs
    );
    println!(
        "receivables report over HTTP: {n} customers aged in {receivables_secs:.2} s ({:.0} \
         customers/s)",
        n as f64 / receivables_secs
    );
    println!(
        "dry runs: {} sequential, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
