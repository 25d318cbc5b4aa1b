//! The console's screens. Each asks the API's handlers (or, for what the API serves as a whole
//! company's aggregate, the same store calls they make) for what it shows, through the
//! API's tenancy check, and renders a template of `templates/console/`.

use std::str::FromStr;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::charts::{self, Bar};
use super::i18n::{Lang, Msgs};
use super::{Fail, NoSession, Posted, Session, see_other, set_cookie};
use crate::auth::{Access, Caller, Tenant, access};
use crate::{ApiError, App, accounts, bills, directory, notices, runs};
use heatbill_runtime::ledger;
use heatbill_runtime::model::Company;
use heatbill_runtime::run::RunReport;

/// What every page's frame shows: the language, the user, the company, the menu, and the
/// CSRF token its forms and htmx requests carry.
#[derive(Debug, Clone)]
pub struct Base {
    /// The words.
    pub t: Msgs,
    /// The language.
    pub lang: Lang,
    /// The session's CSRF token.
    pub csrf: String,
    /// The company's slug (empty on pages of no company).
    pub slug: String,
    /// The company's name.
    pub company_name: String,
    /// Who is signed in, as shown.
    pub who: String,
    /// The menu item of this page.
    pub nav: &'static str,
    /// Whether the user may import and run, and take payments (staff, the operator).
    pub can_data: bool,
    /// Whether the user may try parameters by dry runs (integrators, staff, the operator).
    pub can_dry_run: bool,
    /// Whether the user is the platform operator.
    pub operator: bool,
    /// This page's path, for the language switch to come back to.
    pub here: String,
    /// The page's title.
    pub title: String,
}

impl Base {
    pub(super) fn new(s: &Session, c: Option<&Company>, nav: &'static str, here: String) -> Base {
        let lang = s.lang(c.map(|c| c.time_zone.as_str()));
        let t = Msgs(lang);
        let who = match &s.caller {
            Caller::Operator => t.get("who.operator").to_string(),
            Caller::Company { role, token_id, .. } => {
                format!("{} · {} {token_id}", t.of("role", role), t.get("who.token"))
            }
        };
        Base {
            t,
            lang,
            csrf: s.csrf.clone(),
            slug: c.map(|c| c.slug.clone()).unwrap_or_default(),
            company_name: c.map(|c| c.name.clone()).unwrap_or_default(),
            who,
            nav,
            can_data: s.caller.may(Access::Data),
            can_dry_run: s.caller.may(Access::DryRun),
            operator: s.caller.is_operator(),
            here,
            title: String::new(),
        }
    }

    pub(super) fn titled(mut self, key: &str) -> Base {
        self.title = self.t.get(key).to_string();
        self
    }

    /// The text of `key` (the pages' code names its keys as `tr("…")` calls).
    pub(super) fn tr<'a>(&self, key: &'a str) -> &'a str {
        self.t.get(key)
    }
}

/// The company `slug` reached by the session's caller with the access `A` (the API's check).
pub(super) async fn tenant<A: access::Need>(
    app: &App,
    s: &Session,
    slug: &str,
) -> Result<Tenant<A>, Fail> {
    Ok(Tenant::<A>::of(app, s.caller.clone(), slug).await?)
}

pub(super) fn html<T: Template>(page: &T) -> Result<Response, Fail> {
    Ok(Html(page.render()?).into_response())
}

/// Percent-encodes a URL component.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A place inside the console to go back to (never another site).
fn local(next: Option<&str>) -> Option<String> {
    next.filter(|n| n.starts_with("/console") && !n.contains("//") && !n.contains('\\'))
        .map(str::to_string)
}

fn csv(name: &str, header_row: &[&str], rows: Vec<Vec<String>>) -> Response {
    let mut out = String::new();
    out.push('\u{feff}'); // Excel reads UTF-8 (Chinese names) only with the byte-order mark.
    out.push_str(&header_row.join(","));
    out.push_str("\r\n");
    for r in rows {
        out.push_str(
            &r.iter()
                .map(|f| ledger::csv_cell(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        out,
    )
        .into_response()
}

/// The error page.
#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong.
    pub message: String,
    /// The details the API gives with it (a failed case file's report), as JSON.
    pub details: String,
}

/// `/console/…` that is no page.
pub async fn not_found_page() -> Fail {
    Fail(ApiError::not_found("no such page of the console"))
}

// ---- sign-in, sign-out, language ----

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    t: Msgs,
    lang: Lang,
    pre: String,
    next: String,
    error: String,
}

/// Where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn sign_in_form(
    headers: &HeaderMap,
    next: Option<String>,
    error: String,
) -> Result<Response, Fail> {
    let (chosen, prefers_zh) = super::languages(headers);
    let lang = chosen.unwrap_or(if prefers_zh { Lang::Zh } else { Lang::En });
    let pre = super::nonce()?;
    let page = SignInPage {
        t: Msgs(lang),
        lang,
        pre: pre.clone(),
        next: local(next.as_deref()).unwrap_or_default(),
        error,
    };
    let status = if page.error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut r = (status, Html(page.render()?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(headers, super::PRE, &pre, 3600)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /console/sign-in`.
pub async fn sign_in_page(
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Result<Response, Fail> {
    sign_in_form(&headers, q.next, String::new())
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(rename = "_csrf")]
    csrf: String,
    next: Option<String>,
}

/// `POST /console/sign-in`: a token in, a session cookie out.
pub async fn sign_in(
    State(app): State<App>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<SignInForm>,
) -> Result<Response, Fail> {
    let (chosen, prefers_zh) = super::languages(&headers);
    let t = Msgs(chosen.unwrap_or(if prefers_zh { Lang::Zh } else { Lang::En }));
    if !super::pre_ok(&headers, &f.csrf) || super::foreign_origin(&headers) {
        return sign_in_form(&headers, f.next, t.get("sign_in.expired").to_string());
    }
    let caller = match Caller::of_token(&app, f.token.trim()).await {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return sign_in_form(&headers, f.next, t.get("sign_in.unknown").to_string());
        }
        Err(e) => return Err(e.into()),
    };
    let cookie = super::new_session(&app, &caller, f.token.trim())?;
    tracing::info!(who = %caller.who(), "console sign-in");
    let mut r = see_other(&local(f.next.as_deref()).unwrap_or_else(|| "/console".into()));
    let max_age = app.settings.api.console_session_minutes.max(1) * 60;
    for c in [
        set_cookie(&headers, super::SESSION, &cookie, max_age),
        set_cookie(&headers, super::PRE, "", 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /console/sign-out`.
pub async fn sign_out(headers: HeaderMap, p: Posted<Empty>) -> Response {
    tracing::info!(who = %p.session.caller.who(), "console sign-out");
    let mut r = see_other("/console/sign-in");
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&headers, super::SESSION, "", 0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// Where to come back to.
#[derive(Debug, Deserialize)]
pub struct BackQuery {
    back: Option<String>,
}

/// `GET /console/lang/{zh|en}`: remembers the language for a year.
pub async fn set_lang(
    headers: HeaderMap,
    Path(lang): Path<String>,
    Query(q): Query<BackQuery>,
) -> Result<Response, Fail> {
    let lang =
        Lang::parse(&lang).ok_or_else(|| ApiError::not_found("the console speaks zh and en"))?;
    let mut r = see_other(&local(q.back.as_deref()).unwrap_or_else(|| "/console".into()));
    if let Ok(v) =
        HeaderValue::from_str(&set_cookie(&headers, super::LANG, lang.code(), 31_536_000))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

// ---- home: the operator's companies, or the token's company ----

#[derive(Template)]
#[template(path = "console/companies.html")]
struct CompaniesPage {
    b: Base,
    companies: Vec<Company>,
}

/// `GET /console`.
pub async fn home(
    State(app): State<App>,
    s: Result<Session, NoSession>,
) -> Result<Response, Response> {
    let s = s.map_err(IntoResponse::into_response)?;
    let companies = app
        .services
        .store
        .companies()
        .await
        .map_err(|e| Fail(e.into()).into_response())?;
    match &s.caller {
        Caller::Company { company_id, .. } => {
            match companies.iter().find(|c| c.id == *company_id) {
                Some(c) => Ok(see_other(&format!("/console/companies/{}", c.slug))),
                None => {
                    Err(Fail(ApiError::not_found("the token's company is gone")).into_response())
                }
            }
        }
        Caller::Operator => {
            let b = Base::new(&s, None, "companies", "/console".into()).titled("nav.companies");
            html(&CompaniesPage { b, companies }).map_err(IntoResponse::into_response)
        }
    }
}

// ---- the dashboard ----

/// One night on the dashboard.
#[derive(Debug, Clone)]
pub struct Night {
    /// The run.
    pub id: i64,
    /// The date billed.
    pub date: NaiveDate,
    /// `running`, `completed`, `failed`.
    pub state: String,
    /// Customers billed (settled less parked).
    pub bills: u64,
    /// Customers parked.
    pub parked: u64,
    /// Seconds the run took (on the host that reported it).
    pub seconds: String,
    /// What it billed.
    pub billed: Decimal,
}

fn night(r: &heatbill_runtime::model::RunRecord) -> Night {
    let report: Option<RunReport> = r
        .report
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let (bills, parked, seconds, billed) = match &report {
        Some(rep) => (
            rep.counts.customers.saturating_sub(rep.counts.parked),
            rep.counts.parked,
            format!("{:.1}", rep.seconds),
            rep.by_payer.values().copied().sum::<Decimal>(),
        ),
        None => (0, 0, String::new(), Decimal::ZERO),
    };
    Night {
        id: r.id,
        date: r.bill_date,
        state: r.state.clone(),
        bills,
        parked,
        seconds,
        billed,
    }
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    b: Base,
    arrears_ready: bool,
    latest: Option<Night>,
    nights: Vec<Night>,
    next_date: String,
    run_key: String,
    chart_bills: String,
    chart_seconds: String,
    chart_billed: String,
}

/// The date a new night would bill: the day after the latest completed date, or today.
fn next_night(c: &Company, nights: &[Night]) -> NaiveDate {
    nights
        .iter()
        .filter(|n| n.state == "completed")
        .map(|n| n.date)
        .max()
        .and_then(|d| d.succ_opt())
        .unwrap_or_else(|| ledger::local_today(&c.time_zone))
}

/// `GET /console/companies/{company}`: tonight's run, the last 30 nights, arrears by age (loaded
/// after the page, since it reads every account).
pub async fn dashboard(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
) -> Result<Response, Fail> {
    let Tenant(c, ..) = tenant::<access::Read>(&app, &s, &slug).await?;
    let records = app.services.store.recent_runs(c.id, 30).await?;
    let nights: Vec<Night> = records.iter().map(night).collect();
    let mut oldest_first: Vec<&Night> = nights.iter().filter(|n| n.state == "completed").collect();
    oldest_first.sort_by_key(|n| (n.date, n.id));
    let b = Base::new(
        &s,
        Some(&c),
        "dashboard",
        format!("/console/companies/{slug}"),
    )
    .titled("nav.dashboard");
    let label = |n: &Night| n.date.format("%m-%d").to_string();
    let chart_bills = charts::columns(
        b.tr("dash.chart_bills"),
        b.tr("chart.max"),
        &oldest_first
            .iter()
            .map(|n| Bar::of(label(n), n.bills as f64, n.bills.to_string()))
            .collect::<Vec<_>>(),
    );
    let chart_seconds = charts::columns(
        b.tr("dash.chart_seconds"),
        b.tr("chart.max"),
        &oldest_first
            .iter()
            .map(|n| {
                let mut bar = Bar::of(
                    label(n),
                    n.seconds.parse().unwrap_or(0.0),
                    format!("{} s", n.seconds),
                );
                bar.class = "alt";
                bar
            })
            .collect::<Vec<_>>(),
    );
    // Billed (each night's run, by the date it billed) against collected (payments less what
    // was given back, by the day it moved), over the last 30 days.
    let today = ledger::local_today(&c.time_zone);
    let from = today - chrono::Days::new(29);
    let collected = app.services.store.collections(c.id, from, today).await?;
    let slots: Vec<(String, Bar, Bar)> = from
        .iter_days()
        .take(30)
        .map(|day| {
            let billed = oldest_first
                .iter()
                .filter(|n| n.date == day)
                .map(|n| n.billed)
                .sum::<Decimal>();
            let got = collected
                .iter()
                .find(|d| d.date == day)
                .map(|d| d.paid + d.given_back)
                .unwrap_or_default();
            let label = day.format("%m-%d").to_string();
            let mut alt = Bar::money("", got);
            alt.class = "alt";
            (label, Bar::money("", billed), alt)
        })
        .collect();
    let chart_billed = charts::pairs(
        b.tr("dash.chart_billed"),
        b.tr("chart.max"),
        (b.tr("dash.billed"), b.tr("dash.collected")),
        &slots,
    );
    let page = DashboardPage {
        arrears_ready: arrears_ready(&app, &c).await?,
        next_date: next_night(&c, &nights).to_string(),
        run_key: super::nonce()?,
        latest: nights.first().cloned(),
        nights,
        chart_bills,
        chart_seconds,
        chart_billed,
        b,
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "console/arrears.html")]
struct ArrearsFragment {
    t: Msgs,
    slug: String,
    seconds: String,
    found: bool,
    as_of: String,
    billed_through: String,
    customers: u64,
    owing: u64,
    owed: Decimal,
    credit: Decimal,
    chart: String,
    communities: Vec<(String, heatbill_runtime::receivables::Buckets)>,
}

/// The arrears fragment's format.
#[derive(Debug, Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

/// What the arrears report was computed for: the date, the company's data version (bumped by
/// every import, payment and other ledger entry) and the latest run. Any change computes it
/// again; nothing else does.
type ArrearsKey = (NaiveDate, i64, Option<(i64, String)>);

/// A company's last arrears report: what it was computed for, the report, and the seconds it
/// took.
type ArrearsEntry = (
    ArrearsKey,
    Option<heatbill_runtime::receivables::Receivables>,
    f64,
);

/// The receivables report reads every account (seconds on a 1 M-customer company), so each
/// process keeps the last one of each company, for as long as nothing it depends on changed.
static ARREARS: std::sync::Mutex<Option<std::collections::HashMap<i32, ArrearsEntry>>> =
    std::sync::Mutex::new(None);

async fn arrears_key(app: &App, c: &Company) -> Result<ArrearsKey, Fail> {
    let latest = app.services.store.recent_runs(c.id, 1).await?;
    Ok((
        ledger::local_today(&c.time_zone),
        c.data_version,
        latest.first().map(|r| (r.id, r.state.clone())),
    ))
}

/// The cached report of `c` for `key`, with the seconds it took, if there is one.
fn cached_arrears(
    c: &Company,
    key: &ArrearsKey,
) -> Option<(Option<heatbill_runtime::receivables::Receivables>, f64)> {
    let cache = ARREARS.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .as_ref()?
        .get(&c.id)
        .filter(|(k, ..)| k == key)
        .map(|(_, r, secs)| (r.clone(), *secs))
}

/// Whether the dashboard can show the arrears at once (computed since the last change).
async fn arrears_ready(app: &App, c: &Company) -> Result<bool, Fail> {
    let key = arrears_key(app, c).await?;
    Ok(cached_arrears(c, &key).is_some())
}

/// `GET /console/companies/{company}/arrears`: balances by age (the receivables report), as a
/// fragment of the dashboard, or CSV. Computed once per change of the company's data (see
/// [`ARREARS`]); the dashboard asks for it on a click until then.
pub async fn arrears(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<FormatQuery>,
) -> Result<Response, Fail> {
    let Tenant(c, ..) = tenant::<access::Read>(&app, &s, &slug).await?;
    let t = Msgs(s.lang(Some(&c.time_zone)));
    let key = arrears_key(&app, &c).await?;
    let as_of = key.0;
    let (report, seconds) = match cached_arrears(&c, &key) {
        Some(hit) => hit,
        None => {
            let started = std::time::Instant::now();
            let report = app.services.store.receivables(c.id, as_of, 20_000).await?;
            let seconds = started.elapsed().as_secs_f64();
            let mut cache = ARREARS.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get_or_insert_with(Default::default)
                .insert(c.id, (key.clone(), report.clone(), seconds));
            (report, seconds)
        }
    };
    if q.format.as_deref() == Some("csv") {
        let Some(r) = report else {
            return Err(ApiError::conflict("no completed run yet: run a night first").into());
        };
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{slug}-receivables-{as_of}.csv\""),
                ),
            ],
            r.csv(),
        )
            .into_response());
    }
    let page = match report {
        None => ArrearsFragment {
            t,
            slug,
            seconds: format!("{seconds:.2}"),
            found: false,
            as_of: as_of.to_string(),
            billed_through: String::new(),
            customers: 0,
            owing: 0,
            owed: Decimal::ZERO,
            credit: Decimal::ZERO,
            chart: String::new(),
            communities: Vec::new(),
        },
        Some(r) => {
            let tot = &r.total;
            let mut bars = vec![
                Bar::money(t.get("age.current"), tot.current),
                Bar::money(t.get("age.30"), tot.days_30),
                Bar::money(t.get("age.60"), tot.days_60),
                Bar::money(t.get("age.90"), tot.days_90),
            ];
            bars[3].class = "bad";
            ArrearsFragment {
                chart: charts::rows(t.get("dash.arrears"), &bars),
                t,
                slug,
                seconds: format!("{seconds:.2}"),
                found: true,
                as_of: r.as_of.to_string(),
                billed_through: r.cuts.billed_through.to_string(),
                customers: tot.customers,
                owing: tot.owing,
                owed: tot.owed,
                credit: tot.credit,
                communities: r
                    .communities
                    .into_iter()
                    .take(20)
                    .map(|(k, v)| (k.unwrap_or_else(|| "—".into()), v))
                    .collect(),
            }
        }
    };
    html(&page)
}

// ---- runs ----

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    b: Base,
    stale: Vec<NaiveDate>,
    stale_more: usize,
    nights: Vec<Night>,
    limit: usize,
    more: bool,
    next_date: String,
    run_key: String,
}

/// How many runs to list.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /console/companies/{company}/runs`: runs, newest first.
pub async fn runs(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = tenant.0.clone();
    let Json(stale) = runs::stale_dates(State(app.clone()), tenant).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let records = app.services.store.recent_runs(c.id, limit + 1).await?;
    let more = records.len() > limit;
    let nights: Vec<Night> = records.iter().take(limit).map(night).collect();
    let page = RunsPage {
        b: Base::new(
            &s,
            Some(&c),
            "runs",
            format!("/console/companies/{slug}/runs"),
        )
        .titled("nav.runs"),
        // The first stale date is the one to run again (each waits for the day before).
        next_date: stale
            .dates
            .first()
            .copied()
            .unwrap_or_else(|| next_night(&c, &nights))
            .to_string(),
        run_key: super::nonce()?,
        stale_more: stale.dates.len().saturating_sub(20),
        stale: stale.dates.into_iter().take(20).collect(),
        nights,
        limit,
        more,
    };
    html(&page)
}

/// `GET /console/companies/{company}/runs.csv`.
pub async fn runs_csv(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, Fail> {
    let Tenant(c, ..) = tenant::<access::Read>(&app, &s, &slug).await?;
    let limit = q.limit.unwrap_or(500).clamp(1, 500);
    let records = app.services.store.recent_runs(c.id, limit).await?;
    let rows = records
        .iter()
        .map(|r| {
            let n = night(r);
            vec![
                n.id.to_string(),
                n.date.to_string(),
                r.attempt.to_string(),
                n.state,
                n.bills.to_string(),
                n.parked.to_string(),
                n.seconds,
                n.billed.round_dp(2).to_string(),
            ]
        })
        .collect();
    Ok(csv(
        &format!("{slug}-runs.csv"),
        &[
            "run", "date", "attempt", "state", "bills", "parked", "seconds", "billed",
        ],
        rows,
    ))
}

/// The run form.
#[derive(Debug, Deserialize)]
pub struct RunForm {
    date: String,
    /// The form's own idempotency key: sending the form twice opens one run.
    key: String,
}

/// `POST /console/companies/{company}/runs`: runs a night (staff), then shows it.
pub async fn run_night(
    State(app): State<App>,
    Path(slug): Path<String>,
    p: Posted<RunForm>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Data>(&app, &p.session, &slug).await?;
    let date = crate::error::parse_date("date", p.form.date.trim())?;
    let mut headers = HeaderMap::new();
    headers.insert(
        "idempotency-key",
        HeaderValue::from_str(&format!("console-{}", p.form.key))
            .map_err(|_| ApiError::bad_request("the form's key is damaged: reload the page"))?,
    );
    let (_, Json(run)) = runs::trigger(
        State(app.clone()),
        tenant,
        headers,
        crate::error::JsonBody(runs::RunBody { date }),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/companies/{slug}/runs/{}",
        run.id
    )))
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    b: Base,
    run: runs::RunView,
    report: Option<RunReport>,
    totals: Vec<(String, Decimal)>,
}

/// `GET /console/companies/{company}/runs/{id}`: a run, live while it runs (server-sent
/// events), then its report with the parked customers grouped by reason.
pub async fn run(
    State(app): State<App>,
    s: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = tenant.0.clone();
    let Json(run) = runs::read(State(app.clone()), tenant, Path((slug.clone(), id))).await?;
    let report: Option<RunReport> = run
        .report
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let totals = report
        .as_ref()
        .map(|r| r.totals.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    let mut b = Base::new(
        &s,
        Some(&c),
        "runs",
        format!("/console/companies/{slug}/runs/{id}"),
    );
    b.title = format!("{} {} · {}", b.tr("run.title"), run.id, run.date);
    html(&RunPage {
        b,
        run,
        report,
        totals,
    })
}

/// `GET /console/companies/{company}/runs/{id}/events`: the API's progress stream, for the
/// session's caller.
pub async fn run_events(
    State(app): State<App>,
    s: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    Ok(runs::events(State(app.clone()), tenant, Path((slug, id)))
        .await?
        .into_response())
}

// ---- customers ----

/// A search of the directory.
#[derive(Debug, Deserialize, Default)]
pub struct SearchForm {
    /// What was typed.
    q: Option<String>,
    /// What it is: `account_no`, `name`, `phone` or `community`.
    by: Option<String>,
    limit: Option<usize>,
    /// A customer id to open.
    id: Option<String>,
}

impl SearchForm {
    fn query(&self, limit: usize) -> Option<directory::SearchQuery> {
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())?;
        let mut s = directory::SearchQuery {
            account_no: None,
            name: None,
            phone: None,
            community: None,
            building: None,
            unit: None,
            room: None,
            limit: Some(limit),
            reveal: None,
        };
        let v = Some(q.to_string());
        match self.by.as_deref().unwrap_or("account_no") {
            "name" => s.name = v,
            "phone" => s.phone = v,
            "community" => s.community = v,
            _ => s.account_no = v,
        }
        Some(s)
    }
}

#[derive(Template)]
#[template(path = "console/customers.html")]
struct CustomersPage {
    b: Base,
    q: String,
    by: String,
    searched: bool,
    found: Vec<directory::ProfileView>,
    more: bool,
    masked: bool,
    csv_link: String,
}

async fn search(
    app: &App,
    s: &Session,
    slug: &str,
    f: &SearchForm,
    limit: usize,
) -> Result<Option<directory::SearchView>, Fail> {
    let Some(q) = f.query(limit) else {
        return Ok(None);
    };
    let tenant = tenant::<access::Read>(app, s, slug).await?;
    let Json(v) = directory::search(State(app.clone()), tenant, Query(q)).await?;
    Ok(Some(v))
}

/// `GET /console/companies/{company}/customers`: the directory's search.
pub async fn customers(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(f): Query<SearchForm>,
) -> Result<Response, Fail> {
    let Tenant(c, ..) = tenant::<access::Read>(&app, &s, &slug).await?;
    if let Some(id) = f.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        return Ok(see_other(&format!(
            "/console/companies/{slug}/customers/{}",
            url_encode(id)
        )));
    }
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let found = search(&app, &s, &slug, &f, limit).await?;
    let q = f.q.clone().unwrap_or_default();
    let by = f.by.clone().unwrap_or_else(|| "account_no".into());
    let page = CustomersPage {
        b: Base::new(
            &s,
            Some(&c),
            "customers",
            format!("/console/companies/{slug}/customers"),
        )
        .titled("nav.customers"),
        csv_link: format!(
            "/console/companies/{slug}/customers.csv?by={}&q={}",
            url_encode(&by),
            url_encode(&q)
        ),
        q,
        by,
        searched: found.is_some(),
        more: found.as_ref().is_some_and(|v| v.more),
        masked: found.as_ref().is_none_or(|v| v.masked),
        found: found.map(|v| v.customers).unwrap_or_default(),
    };
    html(&page)
}

/// `GET /console/companies/{company}/customers.csv`: a search's customers (up to 200).
pub async fn customers_csv(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(f): Query<SearchForm>,
) -> Result<Response, Fail> {
    tenant::<access::Read>(&app, &s, &slug).await?;
    let found = search(&app, &s, &slug, &f, 200)
        .await?
        .ok_or_else(|| ApiError::bad_request("search for something first"))?;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let rows = found
        .customers
        .iter()
        .map(|p| {
            vec![
                p.customer_id.clone(),
                o(&p.account_no),
                o(&p.name),
                o(&p.phone),
                o(&p.community),
                o(&p.building),
                o(&p.unit),
                o(&p.room),
            ]
        })
        .collect();
    Ok(csv(
        &format!("{slug}-customers.csv"),
        &[
            "customer_id",
            "account_no",
            "name",
            "phone",
            "community",
            "building",
            "unit",
            "room",
        ],
        rows,
    ))
}

/// One event on an account's timeline, newest first.
#[derive(Debug)]
pub struct Event {
    /// The day.
    pub date: NaiveDate,
    /// `bill`, `payment`, `reversal`, `refund`, `adjustment`, `write-off`.
    pub kind: String,
    /// Its effect: a bill's customer total (owed), an entry's amount (paid, signed).
    pub amount: Decimal,
    /// A bill's lines, or an entry's channel, method, receipt and note.
    pub detail: String,
    /// A bill's version (1 unless corrected) or an entry's id.
    pub number: i64,
    /// The bill, for its lines.
    pub bill: Option<bills::BillView>,
}

/// A customer as the account page and the counter show it: the profile in force on `as_of`,
/// the account at its end, and what is owed by notice. Three reads, each the API's handler's.
async fn customer_now(
    app: &App,
    t: &Tenant<access::Read>,
    customer: &str,
    as_of: NaiveDate,
) -> Result<
    (
        Option<directory::ProfileView>,
        accounts::AccountView,
        notices::CustomerNotices,
    ),
    Fail,
> {
    let path = || Path((t.0.slug.clone(), customer.to_string()));
    let Json(profile) = directory::profile(
        State(app.clone()),
        t.clone(),
        path(),
        Query(directory::ProfileQuery {
            as_of: Some(as_of),
            history: None,
            reveal: None,
        }),
    )
    .await?;
    let Json(account) = accounts::account(
        State(app.clone()),
        t.clone(),
        path(),
        Query(accounts::AsOfQuery { as_of: Some(as_of) }),
    )
    .await?;
    let Json(standing) = notices::standing(
        State(app.clone()),
        t.clone(),
        path(),
        Query(accounts::AsOfQuery { as_of: Some(as_of) }),
    )
    .await?;
    Ok((profile.revisions.into_iter().next(), account, standing))
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    b: Base,
    customer: String,
    profile: Option<directory::ProfileView>,
    account: accounts::AccountView,
    standing: notices::CustomerNotices,
    timeline: Vec<Event>,
    from: NaiveDate,
}

/// The account page's date.
#[derive(Debug, Deserialize)]
pub struct AsOfForm {
    as_of: Option<NaiveDate>,
}

/// `GET /console/companies/{company}/customers/{customer}`: the account page. Four reads,
/// whatever the account's size: the profile, the account with its entries, the notices, and
/// the last 31 days' bills with their lines (one query each, none per row).
pub async fn account(
    State(app): State<App>,
    s: Session,
    Path((slug, customer)): Path<(String, String)>,
    Query(q): Query<AsOfForm>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = t.0.clone();
    let as_of = q.as_of.unwrap_or_else(|| ledger::local_today(&c.time_zone));
    let (profile, account, standing) = customer_now(&app, &t, &customer, as_of).await?;
    let last = account.last_bill_date.unwrap_or(as_of).min(as_of);
    let from = last - chrono::Days::new(30);
    let Json(bill_list) = bills::by_customer(
        State(app.clone()),
        t.clone(),
        Path((slug.clone(), customer.clone())),
        Query(bills::RangeQuery { from, to: last }),
    )
    .await?;
    let mut timeline: Vec<Event> = account
        .entries
        .iter()
        .filter(|e| e.on_date >= from)
        .map(|e| Event {
            date: e.on_date,
            kind: e.kind.clone(),
            amount: e.amount,
            detail: [
                e.channel.clone(),
                e.method.clone(),
                e.receipt_no.clone(),
                e.note.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · "),
            number: e.id,
            bill: None,
        })
        .collect();
    for bill in bill_list {
        timeline.push(Event {
            date: bill.date,
            kind: if bill.status == "parked" {
                "parked".into()
            } else {
                "bill".into()
            },
            amount: bill.customer_total,
            detail: bill
                .error
                .clone()
                .or_else(|| bill.reason.clone())
                .unwrap_or_default(),
            number: i64::from(bill.version),
            bill: Some(bill),
        });
    }
    // Newest first; on one day the entries after the bill (they count from the next day).
    timeline.sort_by(|a, b| {
        b.date
            .cmp(&a.date)
            .then_with(|| (a.bill.is_some()).cmp(&b.bill.is_some()))
    });
    let mut b = Base::new(
        &s,
        Some(&c),
        "customers",
        format!(
            "/console/companies/{slug}/customers/{}",
            url_encode(&customer)
        ),
    );
    b.title = format!("{} {customer}", b.tr("account.title"));
    html(&AccountPage {
        b,
        profile,
        customer,
        account,
        standing,
        timeline,
        from,
    })
}

#[derive(Template)]
#[template(path = "console/versions.html")]
struct VersionsPage {
    b: Base,
    customer: String,
    versions: Vec<bills::BillView>,
}

/// `GET /console/companies/{company}/customers/{customer}/bills/{date}`: a customer-day's bill
/// and every version it replaced, with why.
pub async fn bill_versions(
    State(app): State<App>,
    s: Session,
    Path((slug, customer, date)): Path<(String, String, String)>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = tenant.0.clone();
    let Json(h) = bills::history(
        State(app.clone()),
        tenant,
        Path((slug.clone(), customer.clone(), date.clone())),
    )
    .await?;
    let mut versions = h.superseded;
    versions.extend(h.current);
    versions.reverse();
    let mut b = Base::new(
        &s,
        Some(&c),
        "customers",
        format!(
            "/console/companies/{slug}/customers/{}/bills/{date}",
            url_encode(&customer)
        ),
    );
    b.title = format!("{} {customer} · {date}", b.tr("versions.title"));
    html(&VersionsPage {
        b,
        customer,
        versions,
    })
}

// ---- the counter (收费台) ----

/// The counter's query: a customer, or a search for one.
#[derive(Debug, Deserialize, Default)]
pub struct CounterQuery {
    customer: Option<String>,
    q: Option<String>,
    by: Option<String>,
}

#[derive(Template)]
#[template(path = "console/counter.html")]
struct CounterPage {
    b: Base,
    q: String,
    by: String,
    found: Vec<directory::ProfileView>,
    searched: bool,
    customer: String,
    profile: Option<directory::ProfileView>,
    account: Option<accounts::AccountView>,
    overdue: Decimal,
    suggested: String,
    receipt_no: String,
}

/// `GET /console/companies/{company}/counter`: find a customer, see what is owed, take a
/// payment (staff).
pub async fn counter(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<CounterQuery>,
) -> Result<Response, Fail> {
    let c = tenant::<access::Read>(&app, &s, &slug).await?.0;
    let today = ledger::local_today(&c.time_zone);
    let mut page = CounterPage {
        b: Base::new(
            &s,
            Some(&c),
            "counter",
            format!("/console/companies/{slug}/counter"),
        )
        .titled("nav.counter"),
        q: q.q.clone().unwrap_or_default(),
        by: q.by.clone().unwrap_or_else(|| "account_no".into()),
        found: Vec::new(),
        searched: false,
        customer: String::new(),
        profile: None,
        account: None,
        overdue: Decimal::ZERO,
        suggested: String::new(),
        receipt_no: format!("{}-{}", today.format("%Y%m%d"), &super::nonce()?[..10]),
    };
    let mut customer = q.customer.clone().filter(|c| !c.trim().is_empty());
    if customer.is_none() {
        let f = SearchForm {
            q: q.q.clone(),
            by: q.by.clone(),
            limit: None,
            id: None,
        };
        if let Some(v) = search(&app, &s, &slug, &f, 20).await? {
            page.searched = true;
            if v.customers.len() == 1 {
                customer = Some(v.customers[0].customer_id.clone());
            } else {
                page.found = v.customers;
            }
        }
    }
    if let Some(customer) = customer {
        let t = tenant::<access::Read>(&app, &s, &slug).await?;
        let (profile, account, standing) = customer_now(&app, &t, &customer, today).await?;
        page.overdue = standing.overdue;
        page.suggested = if account.balance > Decimal::ZERO {
            account.balance.round_dp(2).to_string()
        } else {
            String::new()
        };
        page.profile = profile;
        page.account = Some(account);
        page.customer = customer;
    }
    html(&page)
}

/// A counter payment.
#[derive(Debug, Deserialize)]
pub struct PaymentForm {
    customer: String,
    amount: String,
    method: String,
    /// Made when the form was shown: sending it twice records one payment.
    receipt_no: String,
    cashier: Option<String>,
    note: Option<String>,
}

/// `POST /console/companies/{company}/counter`: records the payment (the API's
/// `POST …/payments`, channel `counter`), then shows its receipt.
pub async fn take_payment(
    State(app): State<App>,
    Path(slug): Path<String>,
    p: Posted<PaymentForm>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Data>(&app, &p.session, &slug).await?;
    let f = p.form;
    let amount = Decimal::from_str(f.amount.trim()).map_err(|_| {
        ApiError::unprocessable(format!(
            "amount {:?}: give yuan with at most two decimals, e.g. 120.50",
            heatbill_engine::text::safe(&f.amount)
        ))
    })?;
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let body = accounts::PaymentBody {
        customer_id: f.customer.trim().to_string(),
        amount,
        channel: "counter".into(),
        channel_txn: f.receipt_no.trim().to_string(),
        paid_on: None,
        method: text(Some(f.method)),
        receipt_no: None,
        cashier: text(f.cashier),
        note: text(f.note),
    };
    let (_, Json(recorded)) =
        accounts::pay(State(app.clone()), tenant, crate::error::JsonBody(body)).await?;
    Ok(see_other(&format!(
        "/console/companies/{slug}/receipts/{}",
        recorded.entry.id
    )))
}

#[derive(Template)]
#[template(path = "console/receipt.html")]
struct ReceiptPage {
    b: Base,
    entry: accounts::EntryView,
    in_words: String,
    balance: Decimal,
}

/// `GET /console/companies/{company}/receipts/{entry}`: a payment's receipt, to print.
pub async fn receipt(
    State(app): State<App>,
    s: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let t = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = t.0.clone();
    let Json(entry) =
        accounts::entry(State(app.clone()), t.clone(), Path((slug.clone(), id))).await?;
    let Json(account) = accounts::account(
        State(app.clone()),
        t,
        Path((slug.clone(), entry.customer_id.clone())),
        Query(accounts::AsOfQuery { as_of: None }),
    )
    .await?;
    let mut b = Base::new(
        &s,
        Some(&c),
        "counter",
        format!("/console/companies/{slug}/receipts/{id}"),
    );
    b.title = b.tr("receipt.title").to_string();
    html(&ReceiptPage {
        in_words: capital(entry.amount),
        balance: account.balance,
        entry,
        b,
    })
}

#[derive(Template)]
#[template(path = "console/day_close.html")]
struct DayClosePage {
    b: Base,
    day: accounts::DayCloseView,
}

/// The day of a close.
#[derive(Debug, Deserialize)]
pub struct DayForm {
    date: Option<NaiveDate>,
}

/// `GET /console/companies/{company}/day-close`: the day's takings per cashier and channel
/// (日结).
pub async fn day_close(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
    Query(q): Query<DayForm>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = tenant.0.clone();
    let date = q.date.unwrap_or_else(|| ledger::local_today(&c.time_zone));
    let Json(day) = accounts::day_close(
        State(app.clone()),
        tenant,
        Query(accounts::DayQuery { date }),
    )
    .await?;
    html(&DayClosePage {
        b: Base::new(
            &s,
            Some(&c),
            "counter",
            format!("/console/companies/{slug}/day-close"),
        )
        .titled("day.title"),
        day,
    })
}

/// `GET /console/companies/{company}/notices/{id}/print`: a payment notice to print (staff).
pub async fn print_notice(
    State(app): State<App>,
    s: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Data>(&app, &s, &slug).await?;
    Ok(notices::print(State(app.clone()), tenant, Path((slug, id))).await?)
}

/// An amount in Chinese capital numerals, as receipts write it (人民币大写): 壹佰贰拾元伍角整.
pub fn capital(amount: Decimal) -> String {
    const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
    const UNITS: [&str; 4] = ["", "拾", "佰", "仟"];
    const GROUPS: [&str; 3] = ["", "万", "亿"];
    let negative = amount.is_sign_negative() && !amount.is_zero();
    let fen = (amount.abs().round_dp(2) * Decimal::from(100))
        .trunc()
        .to_string()
        .parse::<u128>()
        .unwrap_or(0);
    let yuan = fen / 100;
    let (jiao, fen) = ((fen / 10 % 10) as usize, (fen % 10) as usize);
    if yuan >= 1_000_000_000_000 {
        return amount.to_string();
    }
    let mut out = String::new();
    if yuan > 0 {
        let mut groups = Vec::new();
        let mut y = yuan;
        while y > 0 {
            groups.push((y % 10_000) as usize);
            y /= 10_000;
        }
        let mut zero = false;
        for (gi, g) in groups.iter().enumerate().rev() {
            if *g == 0 {
                zero = true;
                continue;
            }
            if zero && !out.is_empty() || (*g < 1000 && !out.is_empty()) {
                out.push('零');
            }
            zero = false;
            let mut inner_zero = false;
            for pos in (0..4).rev() {
                let d = g / 10usize.pow(pos as u32) % 10;
                if d == 0 {
                    inner_zero = true;
                    continue;
                }
                if inner_zero && out.chars().last().is_some_and(|c| c != '零') && pos < 3 {
                    let leading = g / 10usize.pow(pos as u32 + 1) > 0;
                    if leading {
                        out.push('零');
                    }
                }
                inner_zero = false;
                out.push(DIGITS[d]);
                out.push_str(UNITS[pos]);
            }
            out.push_str(GROUPS[gi]);
        }
        out.push('元');
    }
    match (jiao, fen) {
        (0, 0) => {
            if out.is_empty() {
                out.push_str("零元");
            }
            out.push('整');
        }
        (j, 0) => {
            out.push(DIGITS[j]);
            out.push_str("角整");
        }
        (0, f) => {
            if !out.is_empty() {
                out.push('零');
            }
            out.push(DIGITS[f]);
            out.push('分');
        }
        (j, f) => {
            out.push(DIGITS[j]);
            out.push('角');
            out.push(DIGITS[f]);
            out.push('分');
        }
    }
    if negative { format!("负{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn amounts_in_capitals() {
        for (amount, words) in [
            ("0", "零元整"),
            ("1", "壹元整"),
            ("10", "壹拾元整"),
            ("120.50", "壹佰贰拾元伍角整"),
            ("1005.07", "壹仟零伍元零柒分"),
            ("2300", "贰仟叁佰元整"),
            ("10000", "壹万元整"),
            ("10500", "壹万零伍佰元整"),
            ("100001", "壹拾万零壹元整"),
            ("3004.5", "叁仟零肆元伍角整"),
            ("0.05", "伍分"),
            ("0.5", "伍角整"),
            ("1234567.89", "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"),
            ("-8", "负捌元整"),
        ] {
            assert_eq!(capital(d(amount)), words, "{amount}");
        }
    }

    #[test]
    fn only_console_paths_are_gone_back_to() {
        assert_eq!(
            local(Some("/console/companies/x")),
            Some("/console/companies/x".into())
        );
        assert_eq!(local(Some("https://evil.example/")), None);
        assert_eq!(local(Some("/console//evil.example")), None);
        assert_eq!(local(Some("//evil.example")), None);
    }
}

#[derive(Template)]
#[template(path = "console/operations.html")]
struct OperationsPage {
    b: Base,
    ready: bool,
    health: crate::ops::Health,
    scheduler_here: bool,
    daily_run_at: Option<String>,
    time_zone: String,
    running: Vec<Night>,
}

/// `GET /console/companies/{company}/operations`: readiness (the database, Redis when
/// configured), this host's part in the nightly scheduler, the company's schedule, the runs
/// running now, and the links to the API reference and the metrics.
pub async fn operations(
    State(app): State<App>,
    s: Session,
    Path(slug): Path<String>,
) -> Result<Response, Fail> {
    let tenant = tenant::<access::Read>(&app, &s, &slug).await?;
    let c = tenant.0.clone();
    let Json(company) = crate::companies::read(State(app.clone()), tenant).await?;
    let (status, Json(health)) = crate::ops::readyz(State(app.clone())).await;
    let running = app
        .services
        .store
        .recent_runs(c.id, 30)
        .await?
        .iter()
        .filter(|r| r.state == "running")
        .map(night)
        .collect();
    html(&OperationsPage {
        b: Base::new(
            &s,
            Some(&c),
            "operations",
            format!("/console/companies/{slug}/operations"),
        )
        .titled("nav.operations"),
        ready: status.is_success(),
        health,
        scheduler_here: app.settings.api.scheduler,
        daily_run_at: company.daily_run_at,
        time_zone: company.time_zone,
        running,
    })
}
