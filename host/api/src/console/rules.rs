//! The console's rules screens: the chain's versions, and a plugin's parameters edited through
//! a form generated from its JSON Schema ([`super::schema_form`]), compared by dry runs on
//! sample customers (the chain in force against the draft), then activated from a date. Each
//! step is the API's: `chains::list_chains`, `plugins::read` (the schema), `bills::dry_run`
//! with a draft chain (which validates the parameters as activation does), `chains::activate`
//! (which runs the case files).

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::pages::{Base, html, tenant};
use super::{Fail, Posted, Session, schema_form, see_other};
use crate::auth::{Access, access};
use crate::chains::{ChainBody, ChainView, EntryBody};
use crate::{ApiError, App, bills, chains, plugins};
use heatbill_runtime::ledger;

#[derive(Template)]
#[template(path = "console/chains.html")]
struct ChainsPage {
    b: Base,
    chains: Vec<ChainView>,
    can_edit: bool,
    activated: Option<i32>,
}

/// Which chain was just activated.
#[derive(Debug, Deserialize)]
pub struct ChainsQuery {
    activated: Option<i32>,
}

/// `GET /console/companies/{company}/chains`: the chain's versions, newest first.
pub async fn chains(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<ChainsQuery>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = tenant.0.clone();
    let Json(mut list) = chains::list_chains(State(app.clone()), tenant).await?;
    list.reverse();
    html(&ChainsPage {
        b: Base::new(
            &s,
            Some(&c),
            "chains",
            format!("/console/companies/{slug}/chains"),
        )
        .titled("nav.chains"),
        can_edit: s.caller.may(Access::DryRun),
        chains: list,
        activated: q.activated,
    })
}

/// The newest chain and its entry `i`'s plugin schema.
async fn newest(
    app: &App,
    s: &Session,
    slug: &str,
    i: usize,
) -> Result<(ChainView, serde_json::Value), Fail> {
    let t = tenant::<access::Read>(app, s, slug).await?;
    let Json(list) = chains::list_chains(State(app.clone()), t.clone()).await?;
    let chain = list
        .into_iter()
        .max_by_key(|c| (c.effective_from, c.id))
        .ok_or_else(|| ApiError::not_found("the company has no chain yet"))?;
    let entry = chain
        .entries
        .get(i)
        .ok_or_else(|| ApiError::not_found(format!("the chain has no entry {i}")))?;
    let Json(plugin) = plugins::read(
        State(app.clone()),
        t,
        Path((slug.to_string(), entry.digest.clone())),
    )
    .await?;
    let schema = plugin
        .describe
        .get("params_schema")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    Ok((chain, schema))
}

#[derive(Template)]
#[template(path = "console/params.html")]
struct ParamsPage {
    b: Base,
    entry: usize,
    form: String,
    customers: String,
    date: String,
    effective_from: String,
}

/// The entry to edit.
#[derive(Debug, Deserialize)]
pub struct EntryQuery {
    entry: usize,
}

/// Sample customers for the comparison: the first of the latest completed night's bills.
async fn samples(app: &App, company_id: i32, date: NaiveDate) -> Result<Vec<String>, Fail> {
    let bills = app
        .services
        .store
        .bills_page(company_id, date, None, 5)
        .await?;
    Ok(bills.into_iter().map(|b| b.customer_id).collect())
}

/// `GET /console/companies/{company}/chains/edit?entry=i`: the form of entry `i`'s parameters.
pub async fn edit(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<EntryQuery>,
) -> Result<Response, Fail> {
    let c = tenant::<access::DryRun>(&app, &s, &slug).await?.0;
    let (chain, schema) = newest(&app, &s, &slug, q.entry).await?;
    let entry = &chain.entries[q.entry];
    let runs = app.services.store.recent_runs(c.id, 30).await?;
    let last = runs
        .iter()
        .filter(|r| r.state == "completed")
        .map(|r| r.bill_date)
        .max();
    let date = last.unwrap_or_else(|| ledger::local_today(&c.time_zone));
    let customers = match last {
        Some(d) => samples(&app, c.id, d).await?.join(", "),
        None => String::new(),
    };
    let mut b = Base::new(
        &s,
        Some(&c),
        "chains",
        format!("/console/companies/{slug}/chains/edit?entry={}", q.entry),
    );
    b.title = format!(
        "{} · {} {}",
        b.tr("params.title"),
        entry.plugin,
        entry.version
    );
    html(&ParamsPage {
        form: schema_form::render(
            &schema,
            &entry.params,
            schema_form::Words {
                optional: b.tr("form.optional"),
                parameters: b.tr("chains.params"),
                new_key: b.tr("form.new_key"),
                its_value: b.tr("form.its_value"),
            },
        ),
        entry: q.entry,
        customers,
        date: date.to_string(),
        effective_from: date.succ_opt().unwrap_or(date).to_string(),
        b,
    })
}

/// One sample customer's bill under the chain in force and under the draft.
#[derive(Debug)]
pub struct Compared {
    /// The customer.
    pub customer: String,
    /// Its total now (or the error).
    pub now: String,
    /// Its total with the draft (or the error).
    pub draft: String,
    /// Whether they differ.
    pub differs: bool,
    /// The lines that differ: code, now, draft.
    pub lines: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/preview.html")]
struct PreviewPage {
    b: Base,
    entry: usize,
    chain_id: i32,
    params_json: String,
    params_pretty: String,
    date: String,
    effective_from: String,
    rows: Vec<Compared>,
    can_activate: bool,
}

/// The lines of a dry run's answer, by code, summed.
fn lines_of(v: &serde_json::Value) -> Result<Vec<(String, Decimal)>, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Err(e
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()));
    }
    let mut out: Vec<(String, Decimal)> = Vec::new();
    for l in v["bill"]["lines"].as_array().into_iter().flatten() {
        let code = l["code"].as_str().unwrap_or("").to_string();
        let amount: Decimal = l["amount"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .or_else(|| l["amount"].as_f64().and_then(|f| Decimal::try_from(f).ok()))
            .unwrap_or_default();
        match out.iter_mut().find(|(c, _)| *c == code) {
            Some((_, a)) => *a += amount,
            None => out.push((code, amount)),
        }
    }
    Ok(out)
}

fn total(lines: &Result<Vec<(String, Decimal)>, String>) -> String {
    match lines {
        Ok(l) => l
            .iter()
            .map(|(_, a)| *a)
            .sum::<Decimal>()
            .round_dp(2)
            .to_string(),
        Err(e) => format!("error: {e}"),
    }
}

/// `POST /console/companies/{company}/chains/preview`: reads the form into parameters and
/// compares each sample customer's bill under the chain in force and under the draft.
pub async fn preview(
    State(app): State<App>,
    Path(slug): Path<String>,
    p: Posted<Vec<(String, String)>>,
) -> Result<Response, Fail> {
    let s = &p.session;
    let c = tenant::<access::DryRun>(&app, s, &slug).await?.0;
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in &p.form {
        form.entry(k.clone())
            .and_modify(|e| {
                e.push('\n');
                e.push_str(v)
            })
            .or_insert_with(|| v.clone());
    }
    let get = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let i: usize = get("entry")
        .parse()
        .map_err(|_| ApiError::bad_request("the form has no entry: reload the page"))?;
    let (chain, schema) = newest(&app, s, &slug, i).await?;
    let params = schema_form::read(&schema, &form).map_err(ApiError::unprocessable)?;
    let date = crate::error::parse_date("date", &get("date"))?;
    let customers: Vec<String> = get("customers")
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .take(10)
        .map(str::to_string)
        .collect();
    if customers.is_empty() {
        return Err(ApiError::unprocessable("name at least one sample customer").into());
    }
    let draft = draft_entries(&chain, i, params.clone());
    let mut rows = Vec::new();
    for customer in customers {
        let run = |chain: Option<Vec<EntryBody>>| {
            let app = app.clone();
            let customer = customer.clone();
            let slug = slug.clone();
            let caller = s.caller.clone();
            async move {
                bills::dry_run(
                    State(app.clone()),
                    crate::auth::Tenant::<access::DryRun>::of(&app, caller, &slug).await?,
                    crate::error::JsonBody(bills::DryRunBody {
                        customer,
                        date,
                        chain,
                    }),
                )
                .await
            }
        };
        let Json(now) = run(None).await?;
        let Json(new) = run(Some(draft.clone())).await?;
        let (a, b) = (lines_of(&now), lines_of(&new));
        let mut lines = Vec::new();
        if let (Ok(x), Ok(y)) = (&a, &b) {
            let mut codes: Vec<&String> = x.iter().chain(y.iter()).map(|(c, _)| c).collect();
            codes.sort();
            codes.dedup();
            for code in codes {
                let find =
                    |l: &Vec<(String, Decimal)>| l.iter().find(|(c, _)| c == code).map(|(_, a)| *a);
                let (p, q) = (find(x), find(y));
                if p != q {
                    let show = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or("—".into());
                    lines.push((code.clone(), show(p), show(q)));
                }
            }
        }
        let (now_total, draft_total) = (total(&a), total(&b));
        rows.push(Compared {
            differs: now_total != draft_total || !lines.is_empty(),
            customer,
            now: now_total,
            draft: draft_total,
            lines,
        });
    }
    let mut b = Base::new(
        s,
        Some(&c),
        "chains",
        format!("/console/companies/{slug}/chains/edit?entry={i}"),
    );
    b.title = format!("{} · {}", b.tr("params.compare"), chain.entries[i].plugin);
    let effective_from = get("effective_from");
    html(&PreviewPage {
        params_json: serde_json::to_string(&params).map_err(ApiError::internal)?,
        params_pretty: serde_json::to_string_pretty(&params).map_err(ApiError::internal)?,
        chain_id: chain.id,
        entry: i,
        date: date.to_string(),
        effective_from: if effective_from.is_empty() {
            date.succ_opt().unwrap_or(date).to_string()
        } else {
            effective_from
        },
        rows,
        can_activate: s.caller.may(Access::Rules),
        b,
    })
}

/// The chain's entries with entry `i`'s parameters replaced.
fn draft_entries(chain: &ChainView, i: usize, params: serde_json::Value) -> Vec<EntryBody> {
    chain
        .entries
        .iter()
        .enumerate()
        .map(|(k, e)| EntryBody {
            plugin: e.plugin.clone(),
            version: Some(e.version.clone()),
            params: if k == i {
                params.clone()
            } else {
                e.params.clone()
            },
        })
        .collect()
}

/// The activation form.
#[derive(Debug, Deserialize)]
pub struct ActivateForm {
    entry: usize,
    /// The chain the form was made from: activation refuses a chain changed since.
    chain_id: i32,
    params_json: String,
    effective_from: String,
}

/// `POST /console/companies/{company}/chains/activate`: activates the chain with the edited
/// parameters from a date (integrator): the API's activation, which runs the case files.
pub async fn activate(
    State(app): State<App>,
    Path(slug): Path<String>,
    p: Posted<ActivateForm>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Rules>(&app, &p.session, &slug).await?;
    let f = p.form;
    let (chain, _) = newest(&app, &p.session, &slug, f.entry).await?;
    if chain.id != f.chain_id {
        return Err(ApiError::conflict(
            "the chain changed since this comparison (someone activated another): edit the \
             parameters again",
        )
        .into());
    }
    let params: serde_json::Value = serde_json::from_str(&f.params_json)
        .map_err(|_| ApiError::bad_request("the form's parameters are damaged: compare again"))?;
    let effective_from = crate::error::parse_date("effective_from", f.effective_from.trim())?;
    let (_, Json(view)) = chains::activate(
        State(app.clone()),
        tenant,
        crate::error::JsonBody(ChainBody {
            effective_from,
            entries: draft_entries(&chain, f.entry, params),
        }),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/companies/{slug}/chains?activated={}",
        view.id
    )))
}
