//! The console's plugin screens: the company's plugins, a component uploaded (checked by the
//! engine as a run loads it; a Python or JavaScript component is told which limits profile the
//! operator must grant to its digest), and case files attached to a plugin and run at once (the
//! `heatbill plugin test` table shown whether they pass or not). Each step is the API's:
//! `plugins::list`, `plugins::upload`, `plugins::read`, `cases::list_cases`, `cases::put_cases`.
//! Files go as the request's body, as over the API (see [`super::office`]).

use askama::Template;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::office::UploadResult;
use super::pages::{Base, html, tenant};
use super::{Fail, Session};
use crate::auth::{Access, access};
use crate::{App, cases, plugins};

#[derive(Template)]
#[template(path = "console/plugins.html")]
struct PluginsPage {
    b: Base,
    plugins: Vec<plugins::PluginView>,
    can_upload: bool,
}

/// `GET /console/companies/{company}/plugins`: the company's plugins, and the upload of a new
/// component (integrators).
pub async fn plugins_page(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = t.0.clone();
    let Json(mut list) = plugins::list(State(app.clone()), t).await?;
    list.sort_by(|a, b| {
        (a.name.as_str(), b.uploaded_at.as_str()).cmp(&(b.name.as_str(), a.uploaded_at.as_str()))
    });
    html(&PluginsPage {
        b: Base::new(
            &s,
            Some(&c),
            "chains",
            format!("/console/companies/{slug}/plugins"),
        )
        .titled("nav.plugins"),
        can_upload: s.caller.may(Access::Rules),
        plugins: list,
    })
}

/// `POST /console/companies/{company}/plugins`: the component in the body, checked and stored
/// by the API's upload; the page then goes to the plugin, to attach its case files.
pub async fn upload(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    let (t, b) = super::office::upload_tenant::<access::Rules>(&app, &s, &slug, "chains").await;
    match plugins::upload(State(app.clone()), t, headers, body).await {
        Ok((status, Json(p))) => {
            let mut r = UploadResult::new(
                &b,
                true,
                format!(
                    "{} {} {} · {}",
                    if status == StatusCode::CREATED {
                        b.tr("plugins.stored")
                    } else {
                        b.tr("plugins.known")
                    },
                    p.name,
                    p.version,
                    p.digest
                ),
            );
            r.link = format!("/console/companies/{slug}/plugins/{}", p.digest);
            r.go = true;
            r.answer(StatusCode::OK)
        }
        Err(e) => UploadResult::refused(&b, &e).answer(e.status),
    }
}

#[derive(Template)]
#[template(path = "console/plugin.html")]
struct PluginPage {
    b: Base,
    p: plugins::PluginView,
    description: String,
    schema: String,
    profile: String,
    cases: Vec<cases::CaseFileView>,
    can_upload: bool,
}

/// `GET /console/companies/{company}/plugins/{digest}`: what the plugin describes, the limits
/// profile it runs under, its case files, and the attaching of another.
pub async fn plugin_page(
    State(app): State<App>,
    s: Session,
    Path((slug, digest)): Path<(String, String)>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = t.0.clone();
    let Json(p) = plugins::read(
        State(app.clone()),
        t.clone(),
        Path((slug.clone(), digest.clone())),
    )
    .await?;
    let Json(case_files) =
        cases::list_cases(State(app.clone()), t, Path((slug.clone(), digest.clone()))).await?;
    let mut b = Base::new(
        &s,
        Some(&c),
        "chains",
        format!("/console/companies/{slug}/plugins/{digest}"),
    );
    b.title = format!("{} {}", p.name, p.version);
    let description = p
        .describe
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .to_string();
    let schema = p
        .describe
        .get("params_schema")
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
        .unwrap_or_default();
    html(&PluginPage {
        b,
        description,
        schema,
        profile: app.engine.config().granted_profile(&p.digest).to_string(),
        cases: case_files,
        can_upload: s.caller.may(Access::Rules),
        p,
    })
}

/// A case file's name (the browser sends the file's own).
#[derive(Debug, Deserialize)]
pub struct CaseName {
    name: String,
}

/// `POST /console/companies/{company}/plugins/{digest}/cases?name=…`: the case file (TOML) in
/// the body, run against the plugin by the API and kept only if every case passes; the
/// `plugin test` table is shown either way.
pub async fn attach_cases(
    State(app): State<App>,
    s: Session,
    Path((slug, digest)): Path<(String, String)>,
    Query(q): Query<CaseName>,
    body: Body,
) -> Result<Response, Fail> {
    let t = tenant::<access::Rules>(&app, &s, &slug).await?;
    let b = Base::new(&s, Some(&t.0), "chains", String::new());
    match cases::put_cases(
        State(app.clone()),
        t,
        Path((slug.clone(), digest.clone(), q.name)),
        body,
    )
    .await
    {
        Ok(Json(result)) => {
            let mut r = UploadResult::new(
                &b,
                true,
                format!("{} {}", b.tr("plugins.cases_pass"), result.name),
            );
            r.report = result.table;
            r.link = format!("/console/companies/{slug}/plugins/{digest}");
            r.answer(StatusCode::OK)
        }
        Err(e) => UploadResult::refused(&b, &e).answer(e.status),
    }
}
