//! The operator console (`/console`): the pages a heating company's operators, cashiers and
//! integrators use in a browser, served by the same binary as the API.
//!
//! | module | owns |
//! |---|---|
//! | this one | routes, sessions (sign-in with a token, a signed cookie), CSRF, security headers, the error page |
//! | [`pages`] | the screens: dashboard, runs, customers and their accounts, the counter, receipts, the day's close |
//! | [`charts`] | the small SVG charts the pages draw on the server |
//! | [`office`] | data files imported (bad rows as a table), channel statements uploaded and reconciled |
//! | [`plugins`] | components uploaded, their limits profile, case files attached and run |
//! | [`rules`] | the chain's versions, a plugin's parameters edited in a form, compared by dry runs, activated |
//! | [`schema_form`] | a JSON Schema as an HTML form, and the form read back |
//! | [`i18n`] | the message catalogues (Simplified Chinese and English) |
//! | [`assets`] | the vendored, embedded scripts and styles, and the API reference page `/docs` |
//!
//! **One path to the data.** A page asks the API's own handler functions for what it shows
//! (`accounts::account`, `runs::trigger`, …), with the tenancy check the API makes
//! ([`Tenant::of`](crate::auth::Tenant::of)): a page cannot see or do what the caller's token
//! could not do over the API, and it answers the same 403 and 404.
//!
//! **Sessions.** An operator or cashier signs in with a token (the operator's, or a company
//! token the operator issued). The session is a cookie signed with HMAC-SHA256 under a key
//! derived from the operator token (every host of a deployment shares it, so a session works
//! on any host): it names the token by its SHA-256 (what the store keys tokens by), expires
//! after `api.console_session_minutes`, and carries a random nonce from which the CSRF token is
//! derived. The token itself is never stored in the browser. Each request looks the token up
//! again, so revoking a token ends its sessions at once. Cookies are `HttpOnly`,
//! `SameSite=Strict`, and `Secure` when the request came over TLS (`X-Forwarded-Proto: https`
//! from the proxy).
//!
//! **CSRF.** Every state change is a POST that carries the session's CSRF token, in the form
//! (`_csrf`, checked by [`Posted`]) or in the `X-CSRF-Token` header (htmx requests, checked by
//! [`Session`]); a POST whose `Origin` is another site is refused as well. The sign-in form is
//! protected by a double-submit cookie.
//!
//! **No inline script, nothing from the internet.** The Content-Security-Policy allows scripts,
//! styles and connections from the server alone; the few behaviours beyond htmx are in
//! `assets/console.js`, declared by `data-` attributes. Templates are askama's, which escapes
//! every value.

pub mod assets;
pub mod charts;
pub mod i18n;
pub mod office;
pub mod pages;
pub mod plugins;
pub mod rules;
pub mod schema_form;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::{ApiError, App};
use i18n::Lang;

/// The session cookie.
const SESSION: &str = "hb_session";
/// The sign-in form's double-submit cookie.
const PRE: &str = "hb_pre";
/// The language chosen by the user (`zh` or `en`).
const LANG: &str = "hb_lang";

/// The console's routes, with its own security headers and HTML errors (outside the API's
/// JSON error layer).
pub fn routes() -> Router<App> {
    use pages::*;
    Router::new()
        .route("/console", get(home))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/lang/{lang}", get(set_lang))
        .route("/console/companies/{company}", get(dashboard))
        .route("/console/companies/{company}/arrears", get(arrears))
        .route(
            "/console/companies/{company}/runs",
            get(runs).post(run_night),
        )
        .route("/console/companies/{company}/runs.csv", get(runs_csv))
        .route("/console/companies/{company}/runs/{id}", get(run))
        .route(
            "/console/companies/{company}/runs/{id}/events",
            get(run_events),
        )
        .route("/console/companies/{company}/customers", get(customers))
        .route(
            "/console/companies/{company}/customers.csv",
            get(customers_csv),
        )
        .route(
            "/console/companies/{company}/customers/{customer}",
            get(account),
        )
        .route(
            "/console/companies/{company}/customers/{customer}/bills/{date}",
            get(bill_versions),
        )
        .route(
            "/console/companies/{company}/counter",
            get(counter).post(take_payment),
        )
        .route(
            "/console/companies/{company}/receipts/{entry}",
            get(receipt),
        )
        .route("/console/companies/{company}/day-close", get(day_close))
        .route(
            "/console/companies/{company}/notices/{id}/print",
            get(print_notice),
        )
        .route("/console/companies/{company}/operations", get(operations))
        .route("/console/companies/{company}/data", get(office::data_page))
        .route("/console/companies/{company}/imports", post(office::import))
        .route(
            "/console/companies/{company}/statements",
            get(office::statements_page).post(office::upload_statement),
        )
        .route(
            "/console/companies/{company}/statements/{id}",
            get(office::statement_page),
        )
        .route(
            "/console/companies/{company}/statements/{id}/items/{item}/recover",
            post(office::recover),
        )
        .route(
            "/console/companies/{company}/plugins",
            get(plugins::plugins_page).post(plugins::upload),
        )
        .route(
            "/console/companies/{company}/plugins/{digest}",
            get(plugins::plugin_page),
        )
        .route(
            "/console/companies/{company}/plugins/{digest}/cases",
            post(plugins::attach_cases),
        )
        .route("/console/companies/{company}/chains", get(rules::chains))
        .route("/console/companies/{company}/chains/edit", get(rules::edit))
        .route(
            "/console/companies/{company}/chains/preview",
            post(rules::preview),
        )
        .route(
            "/console/companies/{company}/chains/activate",
            post(rules::activate),
        )
        .route("/console/{*rest}", get(not_found_page).post(not_found_page))
        .route("/assets/{name}", get(assets::serve))
        .route("/docs", get(assets::docs))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The headers every console page, asset and `/docs` answer carries: a Content-Security-Policy
/// that allows nothing from another origin and no inline script, no framing, no sniffing, no
/// referrer beyond the origin, and no caching of pages (they show personal data and money).
async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let docs = req.uri().path() == "/docs";
    let asset = req.uri().path().starts_with("/assets/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    // Scalar's reference page sets styles from its script; the console's pages need none.
    let csp = if docs {
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    } else {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !asset && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A page that failed: the API's error (its status and message), shown as a page. The page's
/// own words are in both languages, since a failure may come before the language is known.
#[derive(Debug)]
pub struct Fail(pub ApiError);

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Fail {
        Fail(e)
    }
}

impl From<heatbill_runtime::store::StoreError> for Fail {
    fn from(e: heatbill_runtime::store::StoreError) -> Fail {
        Fail(e.into())
    }
}

impl From<askama::Error> for Fail {
    fn from(e: askama::Error) -> Fail {
        Fail(ApiError::internal(e))
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status.is_server_error() {
            tracing::error!(status = %e.status, error = %e.message, "console page failed");
        }
        let page = pages::ErrorPage {
            status: e.status.as_u16(),
            message: if e.status.is_server_error() {
                "the server failed; the error is in its log".to_string()
            } else {
                e.message
            },
            details: e
                .details
                .filter(|_| !e.status.is_server_error())
                .and_then(|d| serde_json::to_string_pretty(&d).ok())
                .unwrap_or_default(),
        };
        let body = askama::Template::render(&page)
            .unwrap_or_else(|_| "the server failed; the error is in its log".to_string());
        (
            e.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

/// The cookies of a request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/` (the console, its assets and its
/// event streams), Secure behind TLS.
pub(crate) fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age_s: u64) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The key sessions and CSRF tokens are signed with: derived from the operator token's hash,
/// which every host of a deployment shares and which is never stored.
fn key(app: &App) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"heatbill console sessions v1\0");
    h.update(app.operator_hash);
    h.finalize().into()
}

fn mac(app: &App, what: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key(app)).expect("any key length");
    m.update(what.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Compares two strings in time that depends on their lengths only.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 16 random bytes in hex.
pub(crate) fn nonce() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(ApiError::internal)?;
    Ok(hex::encode(b))
}

/// A new session's cookie value for a caller who signed in with `token`.
fn new_session(app: &App, caller: &Caller, token: &str) -> Result<String, ApiError> {
    let who = match caller {
        Caller::Operator => "op".to_string(),
        Caller::Company { .. } => format!("t{}", hex::encode(crate::auth::hash(token))),
    };
    let expires = now_s() + app.settings.api.console_session_minutes.max(1) * 60;
    let body = format!("{who}.{expires}.{}", nonce()?);
    let sig = mac(app, &format!("session|{body}"));
    Ok(format!("{body}.{sig}"))
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who signed in: the operator, or a company token (its role decides what it may do).
    pub caller: Caller,
    /// The CSRF token of the session, for the pages' forms and htmx's requests.
    pub csrf: String,
    /// The language the user chose, if any.
    pub chosen: Option<Lang>,
    /// Whether the browser prefers Chinese.
    pub prefers_zh: bool,
}

impl Session {
    /// The language of a page: the user's choice, else Chinese for a company in China's time
    /// zones, else the browser's preference.
    pub fn lang(&self, time_zone: Option<&str>) -> Lang {
        if let Some(l) = self.chosen {
            return l;
        }
        if let Some(tz) = time_zone {
            return if i18n::china(tz) { Lang::Zh } else { Lang::En };
        }
        if self.prefers_zh { Lang::Zh } else { Lang::En }
    }
}

/// The user's chosen language and the browser's preference.
fn languages(headers: &HeaderMap) -> (Option<Lang>, bool) {
    let chosen = cookie(headers, LANG).and_then(Lang::parse);
    let prefers_zh = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("zh"));
    (chosen, prefers_zh)
}

/// Why a request has no session: sent to the sign-in page (a page), told to sign in again
/// (htmx, event streams), or refused (a forged state change).
#[derive(Debug)]
pub enum NoSession {
    /// Not signed in, or the session expired or its token was revoked.
    SignIn(String),
    /// A state change without the session's CSRF token, or from another site.
    Forged,
    /// The store failed.
    Failed(ApiError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn(path) => {
                let next = if path.starts_with("/console/") && !path.contains("//") {
                    format!("?next={}", pages::url_encode(&path))
                } else {
                    String::new()
                };
                let to = format!("/console/sign-in{next}");
                let mut r = Redirect::to(&to).into_response();
                // htmx follows a redirect inside the page; this makes it load the sign-in page.
                if let Ok(v) = HeaderValue::from_str(&to) {
                    r.headers_mut().insert("hx-redirect", v);
                }
                r
            }
            NoSession::Forged => Fail(ApiError::forbidden(
                "this change did not come from a console page of this server (no or wrong CSRF \
                 token, or another site's Origin): reload the page and try again",
            ))
            .into_response(),
            NoSession::Failed(e) => Fail(e).into_response(),
        }
    }
}

/// The session of a request, checked: the cookie's signature and expiry, and the token it
/// names (still known, not revoked).
async fn authenticate(parts: &Parts, app: &App) -> Result<Session, NoSession> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let sign_in = || NoSession::SignIn(path.clone());
    let raw = cookie(&parts.headers, SESSION).ok_or_else(sign_in)?;
    let (body, sig) = raw.rsplit_once('.').ok_or_else(sign_in)?;
    if !same(sig, &mac(app, &format!("session|{body}"))) {
        return Err(sign_in());
    }
    let mut it = body.split('.');
    let (Some(who), Some(expires), Some(nonce), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(sign_in());
    };
    if expires.parse::<u64>().map_or(true, |e| e <= now_s()) {
        return Err(sign_in());
    }
    let caller = if who == "op" {
        Caller::Operator
    } else {
        let hash = who.strip_prefix('t').ok_or_else(sign_in)?;
        match app.services.store.token_by_hash(hash).await {
            Ok(Some(t)) if t.revoked_at.is_none() => Caller::Company {
                company_id: t.company_id,
                role: t.role,
                token_id: t.id,
            },
            Ok(_) => return Err(sign_in()),
            Err(e) => return Err(NoSession::Failed(e.into())),
        }
    };
    let (chosen, prefers_zh) = languages(&parts.headers);
    Ok(Session {
        caller,
        csrf: mac(app, &format!("csrf|{nonce}")),
        chosen,
        prefers_zh,
    })
}

/// A POST from another site: its `Origin` names another host than the request's `Host`.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, h)| h)
        .unwrap_or(origin)
        .trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

impl FromRequestParts<App> for Session {
    type Rejection = NoSession;

    /// A page's session; a state change must also carry the CSRF token in `X-CSRF-Token`
    /// (htmx sends it from the page's `hx-headers`). Forms use [`Posted`].
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Session, NoSession> {
        let s = authenticate(parts, app).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if foreign_origin(&parts.headers) || !same(given, &s.csrf) {
                return Err(NoSession::Forged);
            }
        }
        Ok(s)
    }
}

/// A form posted from a console page: the session, and the form `T`, whose `_csrf` field must
/// be the session's CSRF token.
#[derive(Debug)]
pub struct Posted<T> {
    /// The session.
    pub session: Session,
    /// The form.
    pub form: T,
}

impl<T: serde::de::DeserializeOwned + Send> FromRequest<App> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Posted<T>, Response> {
        let (parts, body) = req.into_parts();
        let session = authenticate(&parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let req = Request::from_parts(parts, body);
        let foreign = foreign_origin(req.headers());
        let bytes = Bytes::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            Fail(ApiError::bad_request("the form could not be read")).into_response()
        })?;
        let given = fields
            .iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if foreign || !same(given, &session.csrf) {
            return Err(NoSession::Forged.into_response());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            Fail(ApiError::bad_request(format!(
                "the form is not complete: {}",
                heatbill_engine::text::safe(&e.to_string())
            )))
            .into_response()
        })?;
        Ok(Posted { session, form })
    }
}

/// The sign-in form's check: the double-submit cookie equals the form's `_csrf`.
pub(crate) fn pre_ok(headers: &HeaderMap, given: &str) -> bool {
    cookie(headers, PRE).is_some_and(|c| c.len() == 32 && same(c, given))
}

/// A redirect after a POST (303: the browser GETs the target).
pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hb_session=x.y; b=2"),
        );
        assert_eq!(cookie(&h, "hb_session"), Some("x.y"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn another_sites_origin_is_foreign() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            !foreign_origin(&h),
            "no Origin: a same-origin form in older browsers"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!foreign_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(foreign_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(foreign_origin(&h));
    }

    #[test]
    fn comparison_needs_equal_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
