//! The charging office's paperwork in the console: data files imported (with their bad rows
//! shown as a table), channel statements uploaded and reconciled (a suggested match confirmed,
//! or the line given to another customer).
//!
//! Files go to the API's own upload handlers unchanged: the browser sends the file as the
//! request's body (`assets/console.js`, `[data-upload]`), with the session's CSRF token in
//! `X-CSRF-Token`, so an import streams as it does over the API (bounded by
//! `api.max_import_bytes`) and a statement is read and checked as the API reads it. What comes
//! back is a fragment the page shows in place.

use askama::Template;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pages::{Base, html, tenant};
use super::{Fail, Posted, Session, see_other};
use crate::auth::access;
use crate::{ApiError, App, data, statements};

/// What an upload answered, shown in place of the form's result area.
#[derive(Template)]
#[template(path = "console/upload_result.html")]
pub struct UploadResult {
    /// The words.
    pub t: super::i18n::Msgs,
    /// Whether it was taken.
    pub ok: bool,
    /// What happened (or what is wrong and what to do).
    pub message: String,
    /// Counts shown as a small table (label key, value).
    pub counts: Vec<(&'static str, String)>,
    /// The bad rows of a refused import: row, column, value, problem.
    pub rows: Vec<[String; 4]>,
    /// How many bad rows there were in all (the table shows at most the first 1,000).
    pub total: u64,
    /// A report to show as preformatted text (a case file's `plugin test` table).
    pub report: String,
    /// A page where the upload's result lives, linked.
    pub link: String,
    /// Whether the page goes there at once (a statement reconciled, a plugin stored).
    pub go: bool,
}

impl UploadResult {
    /// An empty result in the page's language.
    pub fn new(b: &Base, ok: bool, message: impl Into<String>) -> UploadResult {
        UploadResult {
            t: b.t,
            ok,
            message: message.into(),
            counts: Vec::new(),
            rows: Vec::new(),
            total: 0,
            report: String::new(),
            link: String::new(),
            go: false,
        }
    }

    /// The API's refusal as a result: its message, and the bad rows of an import.
    pub fn refused(b: &Base, e: &ApiError) -> UploadResult {
        let message = if e.status.is_server_error() {
            "the server failed; the error is in its log"
        } else {
            e.message.as_str()
        };
        // A message's first line is the sentence; what follows is a report (the table of a
        // failed case file), shown as it was printed.
        let (message, report) = message.split_once('\n').unwrap_or((message, ""));
        let mut r = UploadResult::new(b, false, message);
        r.report = report.to_string();
        if let Some(d) = &e.details {
            r.total = d.get("total").and_then(|v| v.as_u64()).unwrap_or(0);
            let text = |v: &serde_json::Value, k: &str| match v.get(k) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            if let Some(errors) = d.get("errors").and_then(|v| v.as_array()) {
                r.rows = errors
                    .iter()
                    .take(1000)
                    .map(|e| {
                        [
                            text(e, "row"),
                            text(e, "column"),
                            text(e, "value"),
                            text(e, "problem"),
                        ]
                    })
                    .collect();
            }
        }
        r
    }

    /// The result as an answer: its status, and `X-Console-Go` when the page should move on.
    pub fn answer(self, status: StatusCode) -> Result<Response, Fail> {
        let go = (self.go && self.ok && !self.link.is_empty()).then(|| self.link.clone());
        let mut r = (status, html(&self)?).into_response();
        if let Some(go) = go
            && let Ok(v) = HeaderValue::from_str(&go)
        {
            r.headers_mut().insert("x-console-go", v);
        }
        Ok(r)
    }
}

/// An upload's tenancy check, and the frame of its answer: the API's handler gets the check's
/// outcome (a refused caller is answered by it, the body drained, as over the API), and the
/// answer is in the company's language when the caller reaches the company.
pub(super) async fn upload_tenant<A: access::Need>(
    app: &App,
    s: &Session,
    slug: &str,
    nav: &'static str,
) -> (Result<crate::auth::Tenant<A>, ApiError>, Base) {
    let t = tenant::<A>(app, s, slug).await.map_err(|f| f.0);
    let b = Base::new(s, t.as_ref().ok().map(|t| &t.0), nav, String::new());
    (t, b)
}

// ---- data files ----

#[derive(Template)]
#[template(path = "console/data.html")]
struct DataPage {
    b: Base,
    kinds: &'static [&'static str],
}

/// The kinds of file the import takes, in the order an operator loads a new company.
const KINDS: &[&str] = &[
    "customers",
    "profiles",
    "balances",
    "readings",
    "temperatures",
    "payments",
];

/// `GET /console/companies/{company}/data`: import a file of each kind (staff), with the bad
/// rows of a refused file shown as a table.
pub async fn data_page(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
) -> Result<Response, Fail> {
    let c = tenant::<access::Read>(&app, &s, &slug).await?.0;
    html(&DataPage {
        b: Base::new(
            &s,
            Some(&c),
            "data",
            format!("/console/companies/{slug}/data"),
        )
        .titled("nav.data"),
        kinds: KINDS,
    })
}

/// An import's kind.
#[derive(Debug, Deserialize)]
pub struct KindQuery {
    kind: String,
}

/// `POST /console/companies/{company}/imports?kind=…`: the file in the body, imported by the
/// API's import (all rows or none); answers a fragment with the counts, or the bad rows.
pub async fn import(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<KindQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    let (t, b) = upload_tenant::<access::Data>(&app, &s, &slug, "data").await;
    let outcome = data::import(State(app.clone()), t, Path((slug, q.kind)), headers, body).await;
    match outcome {
        Ok(Json(n)) => {
            let mut r = UploadResult::new(&b, true, b.tr("data.imported"));
            r.counts = vec![
                ("data.rows", n.rows.to_string()),
                ("data.inserted", n.inserted.to_string()),
                ("data.updated", n.updated.to_string()),
                ("data.unchanged", n.unchanged.to_string()),
            ];
            r.answer(StatusCode::OK)
        }
        Err(e) => UploadResult::refused(&b, &e).answer(e.status),
    }
}

// ---- channel statements ----

#[derive(Template)]
#[template(path = "console/statements.html")]
struct StatementsPage {
    b: Base,
    statements: Vec<statements::StatementView>,
    profiles: Vec<String>,
}

/// `GET /console/companies/{company}/statements`: the statements imported, newest first, and
/// the upload of a new one (staff).
pub async fn statements_page(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = t.0.clone();
    let Json(list) = statements::list(State(app.clone()), t.clone()).await?;
    let Json(profiles) = statements::profiles(State(app.clone()), t).await?;
    html(&StatementsPage {
        b: Base::new(
            &s,
            Some(&c),
            "statements",
            format!("/console/companies/{slug}/statements"),
        )
        .titled("nav.statements"),
        statements: list.statements,
        profiles: profiles.into_iter().map(|p| p.name).collect(),
    })
}

/// `POST /console/companies/{company}/statements?channel=…&profile=…&file_name=…`: the
/// statement file in the body, read, reconciled and kept by the API's upload; the page then
/// goes to the statement.
pub async fn upload_statement(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<statements::UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    let (t, b) = upload_tenant::<access::Data>(&app, &s, &slug, "statements").await;
    match statements::upload(State(app.clone()), t, Query(q), headers, body).await {
        Ok((status, Json(v))) => {
            let mut r = UploadResult::new(
                &b,
                true,
                if v.new {
                    b.tr("statements.reconciled")
                } else {
                    b.tr("statements.again")
                },
            );
            r.link = format!("/console/companies/{slug}/statements/{}", v.statement.id);
            r.go = true;
            r.answer(status)
        }
        Err(e) => UploadResult::refused(&b, &e).answer(e.status),
    }
}

#[derive(Template)]
#[template(path = "console/statement.html")]
struct StatementPage {
    b: Base,
    st: statements::StatementView,
    items: Vec<statements::ItemView>,
    filter: String,
}

/// Which discrepancies a statement's page lists.
#[derive(Debug, Deserialize)]
pub struct ItemsFilter {
    discrepancy: Option<String>,
}

/// `GET /console/companies/{company}/statements/{id}`: a statement's totals and its
/// discrepancies; a payment heatbill did not record can be recovered for the customer its memo
/// names (the suggestion confirmed) or for another one (the suggestion rejected).
pub async fn statement_page(
    State(app): State<App>,
    s: Session,
    Path((slug, id)): Path<(String, i64)>,
    Query(f): Query<ItemsFilter>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = t.0.clone();
    let filter = f.discrepancy.filter(|d| !d.is_empty());
    let Json(v) = statements::items(
        State(app.clone()),
        t,
        Path((slug.clone(), id)),
        Query(statements::ItemsQuery {
            discrepancy: filter.clone(),
        }),
    )
    .await?;
    let mut b = Base::new(
        &s,
        Some(&c),
        "statements",
        format!("/console/companies/{slug}/statements/{id}"),
    );
    b.title = format!(
        "{} {id} · {}",
        b.tr("statement.title"),
        v.statement.file_name
    );
    html(&StatementPage {
        b,
        st: v.statement,
        items: v.items,
        filter: filter.unwrap_or_default(),
    })
}

/// A recovery from the statement's page: empty `customer` confirms the suggested customer.
#[derive(Debug, Deserialize)]
pub struct RecoverForm {
    customer: Option<String>,
}

/// `POST /console/companies/{company}/statements/{id}/items/{item}/recover` (staff): the lost
/// payment (or refund) recorded by the API's recovery, then back to the statement.
pub async fn recover(
    State(app): State<App>,
    Path((slug, id, item)): Path<(String, i64, i32)>,
    p: Posted<RecoverForm>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Data>(&app, &p.session, &slug).await?;
    let customer_id = p
        .form
        .customer
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let _recorded = statements::recover(
        State(app.clone()),
        t,
        Path((slug.clone(), id, item)),
        crate::error::JsonBody(statements::RecoverBody { customer_id }),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/companies/{slug}/statements/{id}#item-{item}"
    )))
}
