//! Plugin uploads, their case files, and rule chains.
//!
//! A plugin is uploaded as the component's bytes, validated by the engine exactly as a run
//! loads it (world, contract version, imports, limits, `describe`), and stored by digest: the
//! same bytes twice are one plugin. Case files are attached to a plugin version and run at
//! once, in the production engine with the harness's runner (the table of `heatbill plugin
//! test`): a file whose cases fail is refused with its report, and nothing is stored. A chain
//! is activated only when every case file attached to its plugins passes against it.
//!
//! One file, though long: uploads, case files and chains are one workflow (a chain is activated
//! only when its plugins' case files pass against it), and their handlers share its checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};
use chrono::NaiveDate;
use heatbill_engine::{LoadError, LoadedPlugin};
use heatbill_runtime::company::plugin_record;
use heatbill_runtime::model::{ChainEntryDef, ChainVersion, CompanyPlugin, PluginCases};
use heatbill_runtime::run::blocking;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Tenant, access};
use super::error::{ErrorBody, JsonBody, read_capped};
use super::{ApiError, App};
use crate::harness::Catalog;
use crate::runner;
use heatbill_cases::CaseFile;

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/plugins", post(upload).get(list))
        .route("/companies/{company}/plugins/{digest}", get(read))
        .route(
            "/companies/{company}/plugins/{digest}/cases",
            get(list_cases),
        )
        .route(
            "/companies/{company}/plugins/{digest}/cases/{name}",
            put(put_cases),
        )
        .route(
            "/companies/{company}/chains",
            post(activate).get(list_chains),
        )
        .route(
            "/companies/{company}/chains/{effective_from}/rollback",
            post(rollback),
        )
}

/// Customer-days a case file may bill at upload (its cases run in the request); reading the file
/// has already held it to the case-file bounds (`heatbill_cases::MAX_FILE_BYTES`, …).
const MAX_CASE_DAYS: u64 = 20_000;

/// A plugin as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    /// SHA-256 of the component, hex: its identity.
    pub digest: String,
    /// Described name.
    pub name: String,
    /// Described version.
    pub version: String,
    /// Kind: tariff, season, subsidy, fee.
    pub kind: String,
    /// The contract version it targets.
    pub contract_version: String,
    /// Its `describe()`: parameters, line codes, documentation.
    #[schema(value_type = Object)]
    pub describe: serde_json::Value,
    /// When this company uploaded it.
    pub uploaded_at: String,
    /// Its case files, with whether each passed.
    pub cases: Vec<CaseSummary>,
}

/// A case file as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseSummary {
    /// The file's name.
    pub name: String,
    /// Whether every case passed when it was attached.
    pub passed: bool,
}

async fn plugin_view(app: &App, company_id: i32, p: CompanyPlugin) -> Result<PluginView, ApiError> {
    let cases = app
        .services
        .store
        .plugin_cases(company_id, &p.digest)
        .await?;
    Ok(PluginView {
        digest: p.digest,
        name: p.name,
        version: p.version,
        kind: p.kind,
        contract_version: p.contract_version,
        describe: p.info,
        uploaded_at: p.uploaded_at,
        cases: cases
            .into_iter()
            .map(|c| CaseSummary {
                name: c.name,
                passed: c.passed,
            })
            .collect(),
    })
}

/// Uploads a plugin component (integrator): the body is the `.wasm` file.
#[utoipa::path(post, operation_id = "plugins_upload", path = "/v1/companies/{company}/plugins", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The component, as `heatbill plugin build` wrote it (any content type; \
                       `application/wasm` is customary)"),
    security(("bearer" = [])),
    responses((status = 201, body = PluginView, description = "Stored"),
        (status = 200, body = PluginView, description = "The same bytes were already stored"),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Not a loadable heatbill plugin"),
        (status = 503, body = ErrorBody, description = "Busy: no room among the upload bytes in flight, or no engine slot, within `api.queue_wait_ms`; `Retry-After` says when to try again")))]
pub async fn upload(
    State(app): State<App>,
    tenant: Result<Tenant<access::Rules>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    let cap = app.settings.api.max_upload_bytes;
    let c = match tenant {
        Ok(Tenant(c, ..)) => c,
        Err(e) => {
            super::error::drain(body, cap).await;
            return Err(e);
        }
    };
    // Admission before buffering: the body stays in the client's socket until there is room
    // for it among the upload bytes the server holds (api.max_upload_bytes_in_flight).
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = length
        && n > cap as u64
    {
        // Read and dropped (up to twice the cap), so that the client gets the answer.
        super::error::drain(body, n.min(2 * cap as u64) as usize).await;
        return Err(ApiError::too_large(format!(
            "the component is {n} bytes, larger than {cap} bytes, the most this server takes \
             (api.max_upload_bytes)"
        )));
    }
    let _room = match app.upload_room(length).await {
        Ok(r) => r,
        Err(e) => {
            super::error::drain(body, cap).await;
            return Err(e);
        }
    };
    let bytes = read_capped(body, cap, "the component", length).await?;
    let _slot = app.engine_slot(c.id).await?;
    let bytes = Arc::new(bytes);
    let loaded = {
        let bytes = bytes.clone();
        blocking(&app.engine, move |engine| engine.load(&bytes)).await
    };
    let plugin = loaded.map_err(|e| {
        // Over a standard limit: perhaps a Python or JavaScript component, which runs under a
        // larger profile once an operator grants it. Finding out which profile would mean
        // compiling under the larger limits for anyone who uploads; the integrator's own
        // `heatbill plugin check` says it, and the grant names the digest.
        let hint = match &e {
            LoadError::TooLarge { .. }
            | LoadError::OverLimit { .. }
            | LoadError::CompileLimit { .. }
            | LoadError::ImportNotGranted { .. } => format!(
                "; a Python or JavaScript component needs a limits profile (`heatbill plugin \
                 check` names it), which the operator grants to this component by its digest, \
                 {}, in the engine settings ([engine.grants])",
                heatbill_engine::component_digest(&bytes)
            ),
            _ => String::new(),
        };
        ApiError::unprocessable(format!(
            "this is not a plugin heatbill can run: {}{hint}",
            heatbill_engine::text::terminal_safe(&format!("{e:#}"), 2000)
        ))
    })?;
    let record = plugin_record(&plugin, &bytes);
    app.services.store.put_plugin(&record).await?;
    let new = app.services.store.add_company_plugin(c.id, &record).await?;
    let stored = find_plugin(&app, c.id, &record.digest).await?;
    tracing::info!(company = %c.slug, plugin = %heatbill_engine::text::safe(&record.name),
        version = %heatbill_engine::text::safe(&record.version), digest = %record.digest, new, "plugin uploaded");
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(plugin_view(&app, c.id, stored).await?)))
}

async fn find_plugin(app: &App, company_id: i32, digest: &str) -> Result<CompanyPlugin, ApiError> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found(format!(
            "no plugin {:?}: a plugin is named by the SHA-256 of its component, 64 hex digits",
            heatbill_engine::text::terminal_safe(digest, 80)
        )));
    }
    app.services
        .store
        .company_plugins(company_id)
        .await?
        .into_iter()
        .find(|p| p.digest == digest)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no plugin {:?} uploaded by this company",
                heatbill_engine::text::safe(digest)
            ))
        })
}

/// Lists the company's plugins.
#[utoipa::path(get, operation_id = "plugins_list", path = "/v1/companies/{company}/plugins", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<PluginView>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
) -> Result<Json<Vec<PluginView>>, ApiError> {
    let mut out = Vec::new();
    for p in app.services.store.company_plugins(c.id).await? {
        out.push(plugin_view(&app, c.id, p).await?);
    }
    Ok(Json(out))
}

/// Reads one plugin of the company, by digest.
#[utoipa::path(get, operation_id = "plugins_read", path = "/v1/companies/{company}/plugins/{digest}", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug"),
        ("digest" = String, Path, description = "SHA-256 of the component, hex")),
    security(("bearer" = [])),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
    Path((_company, digest)): Path<(String, String)>,
) -> Result<Json<PluginView>, ApiError> {
    let p = find_plugin(&app, c.id, &digest).await?;
    Ok(Json(plugin_view(&app, c.id, p).await?))
}

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
async fn catalog(
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
async fn run_cases(
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

/// A chain version to activate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainBody {
    /// The first date the chain bills.
    pub effective_from: NaiveDate,
    /// The entries, in order.
    pub entries: Vec<EntryBody>,
}

/// A chain entry.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// The plugin's described name.
    pub plugin: String,
    /// Its described version (required when the company has several).
    #[serde(default)]
    pub version: Option<String>,
    /// Its parameters (validated against the plugin's schema).
    #[serde(default = "empty")]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

fn empty() -> serde_json::Value {
    serde_json::json!({})
}

/// A chain version as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainView {
    /// Its id.
    pub id: i32,
    /// The first date it bills.
    pub effective_from: NaiveDate,
    /// SHA-256 of its definition.
    pub digest: String,
    /// Its entries.
    pub entries: Vec<ChainEntryView>,
}

/// A stored chain entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainEntryView {
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// Its digest.
    pub digest: String,
    /// Its parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

impl From<ChainVersion> for ChainView {
    fn from(v: ChainVersion) -> ChainView {
        ChainView {
            id: v.id,
            effective_from: v.effective_from,
            digest: v.digest,
            entries: v
                .entries
                .into_iter()
                .map(|e| ChainEntryView {
                    plugin: e.name,
                    version: e.version,
                    digest: e.plugin,
                    params: e.params,
                })
                .collect(),
        }
    }
}

/// Resolves chain entries by name and version to the company's plugins.
pub async fn resolve(
    app: &App,
    company_id: i32,
    entries: &[EntryBody],
) -> Result<Vec<ChainEntryDef>, ApiError> {
    if entries.is_empty() || entries.len() > 32 {
        return Err(ApiError::unprocessable("a chain has 1 to 32 entries"));
    }
    let plugins = app.services.store.company_plugins(company_id).await?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let found: Vec<&CompanyPlugin> = plugins
            .iter()
            .filter(|p| p.name == e.plugin && e.version.as_ref().is_none_or(|v| *v == p.version))
            .collect();
        let p = match found.as_slice() {
            [p] => *p,
            [] => {
                return Err(ApiError::unprocessable(format!(
                    "entry {}: the company has no plugin {:?}{}; upload it first",
                    i + 1,
                    heatbill_engine::text::safe(&e.plugin),
                    e.version
                        .as_ref()
                        .map(|v| format!(" version {:?}", heatbill_engine::text::safe(v)))
                        .unwrap_or_default()
                )));
            }
            several => {
                return Err(ApiError::unprocessable(format!(
                    "entry {}: the company has {} versions of {:?} ({}); give the entry a version",
                    i + 1,
                    several.len(),
                    heatbill_engine::text::safe(&e.plugin),
                    several
                        .iter()
                        .map(|p| heatbill_engine::text::safe(&p.version))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        if !e.params.is_object() {
            return Err(ApiError::unprocessable(format!(
                "entry {}: params must be a JSON object",
                i + 1
            )));
        }
        out.push(ChainEntryDef {
            plugin: p.digest.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
            params: e.params.clone(),
        });
    }
    Ok(out)
}

/// Activates a rule chain from a date (integrator). The chain must load and configure (every
/// entry's parameters valid), and every case file attached to its plugins must pass against
/// it (each file's entries use the chain's versions of the plugins it names); otherwise it is
/// refused with the reports, and nothing changes. The new chain reaches every host at once
/// (caches key on the company's data version, which this bumps).
#[utoipa::path(post, operation_id = "plugins_activate", path = "/v1/companies/{company}/chains", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug")),
    request_body = ChainBody, security(("bearer" = [])),
    responses((status = 201, body = ChainView), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Busy: the company's share of the engine slots, or the server's, stayed taken for `api.queue_wait_ms`; `Retry-After` says when to try again")))]
pub async fn activate(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Rules>,
    JsonBody(b): JsonBody<ChainBody>,
) -> Result<(StatusCode, Json<ChainView>), ApiError> {
    let defs = resolve(&app, c.id, &b.entries).await?;
    let _slot = app.engine_slot(c.id).await?;
    // The chain loads and configures as a run would.
    let label = format!("{}", b.effective_from);
    let chain =
        heatbill_runtime::run::load_chain(&app.services, &app.engine, &c, &defs, &label).await?;
    let setup = blocking(&app.engine, move |engine| {
        heatbill_engine::Evaluator::new(engine, chain).configure_all()
    })
    .await;
    setup.map_err(|e| {
        ApiError::unprocessable(format!(
            "the chain does not configure: {}",
            heatbill_engine::text::terminal_safe(&e.to_string(), 2000)
        ))
    })?;
    // Every case file of every plugin of the chain, against the chain's versions.
    let pinned: BTreeMap<String, String> = defs
        .iter()
        .map(|d| (d.name.clone(), d.plugin.clone()))
        .collect();
    // The chain's plugins and the company's others, read and loaded once for every file.
    let cat = catalog(&app, c.id, &pinned).await?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for d in &defs {
        let files = app.services.store.plugin_cases(c.id, &d.plugin).await?;
        if files.is_empty() {
            missing.push(format!("{} {}", d.name, d.version));
        }
        for f in files {
            results.push(run_cases(&app, cat.clone(), &f.name, &f.body).await?);
        }
    }
    if app.settings.api.require_cases && !missing.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "no case file is attached to {}: attach one that passes (PUT \
             /v1/companies/{}/plugins/{{digest}}/cases/{{name}}) before a chain uses it",
            heatbill_engine::text::safe(&missing.join(", ")),
            c.slug
        )));
    }
    let failed: Vec<&CasesResult> = results.iter().filter(|r| !r.passed).collect();
    if !failed.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "{} case file(s) do not pass against this chain; nothing changed:\n{}",
            failed.len(),
            failed
                .iter()
                .map(|r| r.table.as_str())
                .collect::<Vec<_>>()
                .join("")
        ))
        .with_details(serde_json::json!({
            "reports": failed.iter().map(|r| &r.report).collect::<Vec<_>>()
        })));
    }
    let v = app
        .services
        .store
        .put_chain_version(c.id, b.effective_from, &defs)
        .await?;
    tracing::info!(company = %c.slug, chain = v.id, effective_from = %v.effective_from,
        cases = results.len(), "chain activated");
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// Lists the company's active chain versions, by effective date.
#[utoipa::path(get, operation_id = "plugins_list_chains", path = "/v1/companies/{company}/chains", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ChainView>), (status = 404, body = ErrorBody)))]
pub async fn list_chains(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Read>,
) -> Result<Json<Vec<ChainView>>, ApiError> {
    let list = app.services.store.chain_versions(c.id).await?;
    Ok(Json(list.into_iter().map(ChainView::from).collect()))
}

/// What a rollback restored.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolledBack {
    /// The chain version active again from that date, or none (the date no longer starts a
    /// chain version: the one before it bills on).
    pub restored: Option<ChainView>,
}

/// Rolls back the chain version of a date (integrator): the version it replaced is active
/// again (or none, if it replaced none). Bills already written stay; re-run the dates to bill
/// them with the restored chain.
#[utoipa::path(post, operation_id = "plugins_rollback", path = "/v1/companies/{company}/chains/{effective_from}/rollback", tag = "plugins",
    params(("company" = String, Path, description = "The company's slug"),
        ("effective_from" = String, Path, description = "The chain version's first date, YYYY-MM-DD")),
    security(("bearer" = [])),
    responses((status = 200, body = RolledBack), (status = 404, body = ErrorBody)))]
pub async fn rollback(
    State(app): State<App>,
    Tenant(c, ..): Tenant<access::Rules>,
    Path((_company, effective_from)): Path<(String, String)>,
) -> Result<Json<RolledBack>, ApiError> {
    let date = super::error::parse_date("effective_from", &effective_from)?;
    let restored = app.services.store.rollback_chain(c.id, date).await?;
    tracing::info!(company = %c.slug, %date, restored = restored.as_ref().map(|v| v.id), "chain rolled back");
    Ok(Json(RolledBack {
        restored: restored.map(ChainView::from),
    }))
}
