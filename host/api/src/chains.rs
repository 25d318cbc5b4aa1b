//! Rule chains: a chain version is activated only when every case file attached to its
//! plugins passes against it (run by [`super::cases`]); the versions are listed, and the latest
//! rolled back. The dry run ([`super::bills`]) resolves a draft chain's entries here too.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::NaiveDate;
use heatbill_runtime::model::{ChainEntryDef, ChainVersion, CompanyPlugin, PluginCases};
use heatbill_runtime::run::blocking;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Tenant, access};
use super::cases::{CasesResult, catalog, run_cases};
use super::error::{ErrorBody, JsonBody};
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/companies/{company}/chains",
            post(activate).get(list_chains),
        )
        .route(
            "/companies/{company}/chains/{effective_from}/rollback",
            post(rollback),
        )
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
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for d in &defs {
        let attached = app.services.store.plugin_cases(c.id, &d.plugin).await?;
        if attached.is_empty() {
            missing.push(format!("{} {}", d.name, d.version));
        }
        files.extend(attached);
    }
    let mut results = Vec::new();
    for f in distinct(files) {
        results.push(run_cases(&app, cat.clone(), &f.name, &f.body).await?);
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

/// The case files to run at an activation: each text once. A file attached to several of the
/// chain's plugins (a chain's case file usually tests them all) bills the same chain the same
/// way whichever plugin it hangs on, so it runs once, under the name it was first attached by.
fn distinct(files: Vec<PluginCases>) -> Vec<PluginCases> {
    let mut seen = std::collections::HashSet::new();
    files
        .into_iter()
        .filter(|f| seen.insert(<sha2::Sha256 as sha2::Digest>::digest(f.body.as_bytes())))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(digest: &str, name: &str, body: &str) -> PluginCases {
        PluginCases {
            digest: digest.into(),
            name: name.into(),
            body: body.into(),
            passed: true,
            report: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_case_file_attached_to_several_plugins_runs_once() {
        let files = vec![
            file("season", "w1.toml", "[[case]] a"),
            file("tariff", "w1.toml", "[[case]] a"),
            file("tariff", "w1-copy.toml", "[[case]] a"),
            file("fee", "w6.toml", "[[case]] b"),
        ];
        let run: Vec<(String, String)> = distinct(files)
            .into_iter()
            .map(|f| (f.digest, f.name))
            .collect();
        assert_eq!(
            run,
            [
                ("season".to_string(), "w1.toml".to_string()),
                ("fee".to_string(), "w6.toml".to_string())
            ]
        );
    }
}
