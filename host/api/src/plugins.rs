//! Plugin uploads: a plugin is uploaded as the component's bytes, validated by the engine exactly
//! as a run loads it (world, contract version, imports, limits, `describe`), and stored by
//! digest: the same bytes twice are one plugin. The company's plugins are listed and read here;
//! their case files are [`super::cases`]', the chains that use them [`super::chains`]'.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use heatbill_engine::LoadError;
use heatbill_runtime::company::plugin_record;
use heatbill_runtime::model::CompanyPlugin;
use heatbill_runtime::run::blocking;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Tenant, access};
use super::error::{ErrorBody, read_capped};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/companies/{company}/plugins", post(upload).get(list))
        .route("/companies/{company}/plugins/{digest}", get(read))
}

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

pub(crate) async fn find_plugin(
    app: &App,
    company_id: i32,
    digest: &str,
) -> Result<CompanyPlugin, ApiError> {
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
