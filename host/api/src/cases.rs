//! Case files: attached to a plugin version and run at once, in the production engine with the
//! plugin developer kit's case runner (the table of `heatbill plugin test`): a file whose cases
//! fail is refused with its report, and nothing is stored. [`super::chains`] runs them again
//! against a chain before activating it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use heatbill_cases::CaseFile;
use heatbill_engine::LoadedPlugin;
use heatbill_harness::{Catalog, runner};
use heatbill_runtime::model::PluginCases;
use heatbill_runtime::run::blocking;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Tenant, access};
use super::error::{ErrorBody, read_capped};
use super::plugins::find_plugin;
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/companies/{company}/plugins/{digest}/cases",
            get(list_cases),
        )
        .route(
            "/companies/{company}/plugins/{digest}/cases/{name}",
            put(put_cases),
        )
}

/// Customer-days a case file may bill at upload (its cases run in the request); reading the file
/// has already held it to the case-file bounds (`heatbill_cases::MAX_FILE_BYTES`, …).
const MAX_CASE_DAYS: u64 = 20_000;

/// The result of running a case file.
#[derive(Debug, Serialize, ToSchema)]
pub struct CasesResult {
    /// The file's name.
    pub name: String,
    /// Whether every case passed.
    pub passed: bool,
    /// The runner's report (each case, what came out, the differences).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
    /// The same report as `heatbill plugin test` prints it.
    pub table: String,
}

/// The plugins a case file's chain may draw from: the company's plugins by described name,
/// with `pinned` (name → digest) replacing every other version of its name.
pub(crate) async fn catalog(
    app: &App,
    company_id: i32,
    pinned: &BTreeMap<String, String>,
) -> Result<Catalog, ApiError> {
    let mut plugins: BTreeMap<String, Vec<(PathBuf, Arc<LoadedPlugin>)>> = BTreeMap::new();
    for p in app.services.store.company_plugins(company_id).await? {
        if pinned.get(&p.name).is_some_and(|d| *d != p.digest) {
            continue;
        }
        let record = app.services.store.plugin(&p.digest).await?;
        let loaded = {
            let bytes = record.component;
            blocking(&app.engine, move |engine| engine.load(&bytes)).await
        };
        let plugin = loaded
            .map_err(|e| ApiError::internal(format!("a stored plugin does not load: {e:#}")))?;
        plugins
            .entry(p.name.clone())
            .or_default()
            .push((PathBuf::from(format!("uploaded {}", p.digest)), plugin));
    }
    Ok(Catalog {
        plugins,
        rejected: Vec::new(),
    })
}

/// Runs a case file against `catalog`.
pub(crate) async fn run_cases(
    app: &App,
    catalog: Catalog,
    name: &str,
    text: &str,
) -> Result<CasesResult, ApiError> {
    let mut file = CaseFile::parse(text, name).map_err(|e| {
        ApiError::unprocessable(heatbill_engine::text::terminal_safe(
            &format!("{e:#}"),
            2000,
        ))
    })?;
    // Versions pinned in the case file give way to the catalog's (the chain under test).
    for entry in &mut file.chain {
        if catalog
            .plugins
            .get(&entry.plugin)
            .is_some_and(|v| v.len() == 1)
        {
            entry.version = None;
        }
    }
    // Counted from the dates, before any customer-day is made.
    let days = file.customer_days();
    if days > MAX_CASE_DAYS {
        return Err(ApiError::unprocessable(format!(
            "case file {name} bills {days} customer-days; an uploaded case file may bill at \
             most {MAX_CASE_DAYS} (run larger ones with heatbill plugin test)"
        )));
    }
    let report = blocking(&app.engine, move |engine| {
        runner::run_file(engine, &catalog, &file)
    })
    .await;
    let passed = report.setup_error.is_none()
        && !report.outcomes.is_empty()
        && report.outcomes.iter().all(|o| o.passed());
    Ok(CasesResult {
        name: name.to_string(),
        passed,
        table: report.to_string(),
        report: report.to_json(),
    })
}

/// Attaches a case file (TOML, as `heatbill plugin test` reads it) to a plugin of the company
/// and runs it (integrator). The plugin must be in the file's chain; the other entries draw on
/// the company's plugins. A file whose cases fail is refused with its report, and nothing is
/// stored; a passing file replaces the plugin's file of the same name.
#[utoipa::path(put, operation_id = "plugins_put_cases", path = "/v1/companies/{company}/plugins/{digest}/cases/{name}", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug"),
        ("digest" = String, Path, description = "SHA-256 of the component, hex"),
        ("name" = String, Path, description = "The case file's name, e.g. `w1.toml`")),
    request_body(content = String, content_type = "text/plain",
        description = "The case file, TOML (any content type; `application/toml` is customary)"),
    security(("bearer" = [])),
    responses((status = 200, body = CasesResult), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The cases failed (the report is in `details`) or the file is not valid"),
        (status = 503, body = ErrorBody, description = "Busy: the company's share of the engine slots, or the server's, stayed taken for `api.queue_wait_ms`; `Retry-After` says when to try again")))]
pub async fn put_cases(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Rules>,
    Path((_company, digest, name)): Path<(String, String, String)>,
    body: Body,
) -> Result<Json<CasesResult>, ApiError> {
    let p = find_plugin(&app, c.id, &digest).await?;
    if name.is_empty()
        || name.len() > 100
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        return Err(ApiError::unprocessable(
            "the case file's name: 1 to 100 of a-z, A-Z, 0-9, -, _ and .",
        ));
    }
    let cap = app
        .settings
        .api
        .max_body_bytes
        .min(heatbill_cases::MAX_FILE_BYTES as usize);
    let bytes = read_capped(body, cap, "the case file", None).await?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::unprocessable("the case file is not UTF-8 text"))?;
    let file = CaseFile::parse(&text, &name).map_err(|e| {
        ApiError::unprocessable(heatbill_engine::text::terminal_safe(
            &format!("{e:#}"),
            2000,
        ))
    })?;
    if !file.chain.iter().any(|e| e.plugin == p.name) {
        return Err(ApiError::unprocessable(format!(
            "the case file's chain ({}) does not use {}: attach it to a plugin it tests",
            heatbill_engine::text::safe(&file.chain_summary()),
            heatbill_engine::text::safe(&p.name)
        )));
    }
    let pinned = BTreeMap::from([(p.name.clone(), p.digest.clone())]);
    let _slot = app.engine_slot(c.id).await?;
    let cat = catalog(&app, c.id, &pinned).await?;
    let result = run_cases(&app, cat, &name, &text).await?;
    if !result.passed {
        return Err(ApiError::unprocessable(format!(
            "the cases of {name} do not pass against {} {}; nothing was stored:\n{}",
            heatbill_engine::text::safe(&p.name),
            heatbill_engine::text::safe(&p.version),
            result.table
        ))
        .with_details(serde_json::json!({ "report": result.report })));
    }
    app.services
        .store
        .put_plugin_cases(
            c.id,
            &PluginCases {
                digest: p.digest.clone(),
                name: name.clone(),
                body: text,
                passed: true,
                report: result.report.clone(),
            },
        )
        .await?;
    Ok(Json(result))
}

/// Lists a plugin's case files with their bodies.
#[utoipa::path(get, operation_id = "plugins_list_cases", path = "/v1/companies/{company}/plugins/{digest}/cases", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug"),
        ("digest" = String, Path, description = "SHA-256 of the component, hex")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<CaseFileView>), (status = 404, body = ErrorBody)))]
pub async fn list_cases(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, digest)): Path<(String, String)>,
) -> Result<Json<Vec<CaseFileView>>, ApiError> {
    find_plugin(&app, c.id, &digest).await?;
    let list = app.services.store.plugin_cases(c.id, &digest).await?;
    Ok(Json(
        list.into_iter()
            .map(|c| CaseFileView {
                name: c.name,
                passed: c.passed,
                body: c.body,
            })
            .collect(),
    ))
}

/// A case file.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseFileView {
    /// Its name.
    pub name: String,
    /// Whether it passed when attached.
    pub passed: bool,
    /// The file (TOML).
    pub body: String,
}
