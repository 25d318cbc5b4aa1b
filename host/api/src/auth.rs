//! Who is calling, and what they may do.
//!
//! Two kinds of bearer token:
//! - the **platform operator's** (from `api.operator_token`): manages companies and issues
//!   their tokens, and may do everything;
//! - **company tokens** (`hb_` and 64 hex digits, 256 random bits), issued by the operator with
//!   a role: `integrator` (plugins, case files, chains, dry runs), `staff` (imports, runs,
//!   dry runs) or `read-only`. Every role reads its company's resources.
//!
//! Only a token's SHA-256 is stored (a token has 256 bits of entropy, so a fast hash is as good
//! as a slow one here), and tokens never reach a log: they travel in the `Authorization`
//! header, which is not logged.

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use heatbill_runtime::model::Company;
use heatbill_runtime::store::StoreError;
use sha2::{Digest, Sha256};

use super::{ApiError, App};

/// The roles of company tokens.
pub const ROLES: [&str; 3] = ["integrator", "staff", "read-only"];

/// What a request wants to do to a company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read anything of the company.
    Read,
    /// Plugins, case files, chains (integrators).
    Rules,
    /// Imports and runs (staff).
    Data,
    /// Dry runs (integrators and staff).
    DryRun,
    /// The company itself and its tokens (the operator).
    Operator,
}

/// The access a handler needs, as a type, for [`Tenant`].
pub mod access {
    use super::Access;

    /// A kind of access to a company, for [`Tenant`](super::Tenant).
    pub trait Need: Send + Sync + 'static {
        /// The access it stands for.
        const ACCESS: Access;
    }

    macro_rules! need {
        ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;
            impl Need for $name {
                const ACCESS: Access = Access::$name;
            }
        )*};
    }

    need!(
        /// Reading anything of the company (every role).
        Read,
        /// Plugins, case files and chains (integrators).
        Rules,
        /// Imports and runs (staff).
        Data,
        /// Dry runs (integrators and staff).
        DryRun,
        /// The company itself and its tokens (the platform operator only).
        Operator,
    );
}

/// The company a request's `{company}` path segment names, reached by its caller with the
/// access `A` (an extractor). A handler says once, in its signature, which company it serves and
/// what the caller must be allowed to do there; the checks are [`Caller::company`]'s: another
/// company's (or an unknown) company answers 404 alike, a role without the access 403, and
/// [`access::Operator`] requires the operator's token first. The caller comes along for the
/// handlers that record who did something.
///
/// A handler that must answer a refused request in a particular way (an upload drains the body
/// it did not read, so that the client gets the answer) takes `Result<Tenant<A>, ApiError>`.
///
/// The `{company}` parameter is still written in each route's `params(...)` for the OpenAPI
/// document: with utoipa's `axum_extras`, an `IntoParams` type for it beside a route's tuple
/// `Path` of its other segments documents the company twice (tried; the document must not
/// change).
pub struct Tenant<A>(pub Company, pub Caller, pub PhantomData<A>);

impl<A: access::Need> FromRequestParts<App> for Tenant<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Tenant<A>, ApiError> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(|e| {
                ApiError::bad_request(heatbill_engine::text::terminal_safe(&e.body_text(), 500))
            })?;
        let Some(slug) = params.get("company") else {
            return Err(ApiError::internal(
                "a company's handler is routed on a path without {company}",
            ));
        };
        Tenant::of(app, caller, slug).await
    }
}

/// A checked tenant handed to several handlers of one request (a console page asks the API's
/// handlers for its parts): the check was made once, for the same access.
impl<A> Clone for Tenant<A> {
    fn clone(&self) -> Tenant<A> {
        Tenant(self.0.clone(), self.1.clone(), PhantomData)
    }
}

impl<A: access::Need> Tenant<A> {
    /// The company `slug` reached by `caller` with the access `A`: the one tenancy check,
    /// which the extractor makes for the API and the console makes for its pages (a console
    /// session's caller is the token it signed in with).
    pub async fn of(app: &App, caller: Caller, slug: &str) -> Result<Tenant<A>, ApiError> {
        if A::ACCESS == Access::Operator {
            caller.operator()?;
        }
        let company = caller.company(app, slug, A::ACCESS).await?;
        Ok(Tenant(company, caller, PhantomData))
    }
}

/// The caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The platform operator.
    Operator,
    /// A company token.
    Company {
        /// The company.
        company_id: i32,
        /// The token's role.
        role: String,
        /// The token's id.
        token_id: i64,
    },
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new company token: `hb_` and 64 hex digits from the operating system's generator.
pub fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(format!("hb_{}", hex::encode(bytes)))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized(
                "no token: send `Authorization: Bearer <token>` (the operator's token, or a \
                 company token the operator issued)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        Caller::of_token(app, token).await
    }
}

impl Caller {
    /// The caller a token stands for: the operator, or a company token that is not revoked
    /// (the console's sign-in asks the same).
    pub async fn of_token(app: &App, token: &str) -> Result<Caller, ApiError> {
        if token.is_empty() || token.len() > 256 {
            return Err(unauthorized("unknown token"));
        }
        let h = hash(token);
        // Hashes compared, so the comparison's time says nothing about the operator's token.
        if h == app.operator_hash {
            return Ok(Caller::Operator);
        }
        match app.services.store.token_by_hash(&hex::encode(h)).await? {
            Some(t) if t.revoked_at.is_none() => Ok(Caller::Company {
                company_id: t.company_id,
                role: t.role,
                token_id: t.id,
            }),
            Some(_) => Err(unauthorized(
                "this token was revoked; ask the operator for a new one",
            )),
            None => Err(unauthorized("unknown token")),
        }
    }
}

impl Caller {
    /// Whether the caller is the platform operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Caller::Operator)
    }

    /// Who the caller is, as records name them (`the operator`, `token 12`).
    pub fn who(&self) -> String {
        match self {
            Caller::Operator => "the operator".to_string(),
            Caller::Company { token_id, .. } => format!("token {token_id}"),
        }
    }

    /// Requires the operator.
    pub fn operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only the platform operator's token may do this",
            ))
        }
    }

    /// Whether the caller's role allows `access` in its own company (the operator may do
    /// everything). The console asks this to show only the buttons a caller may use; the
    /// answer to a request is still [`Caller::company`]'s.
    pub fn may(&self, access: Access) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Company { role, .. } => match access {
                Access::Read => true,
                Access::Rules => role == "integrator",
                Access::Data => role == "staff",
                Access::DryRun => role == "integrator" || role == "staff",
                Access::Operator => false,
            },
        }
    }

    /// The company `slug`, if the caller may reach it with `access`. Another company's (and an
    /// unknown) company answers 404 alike; a role without the access answers 403.
    pub async fn company(
        &self,
        app: &App,
        slug: &str,
        access: Access,
    ) -> Result<Company, ApiError> {
        let shown = heatbill_engine::text::safe(slug);
        let not_found = || ApiError::not_found(format!("no company {shown:?}"));
        if heatbill_runtime::company::check_slug(slug).is_err() {
            return Err(not_found());
        }
        let company = match app.services.store.company(slug).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        match self {
            Caller::Operator => Ok(company),
            Caller::Company {
                company_id, role, ..
            } => {
                if *company_id != company.id {
                    return Err(not_found());
                }
                if self.may(access) {
                    Ok(company)
                } else {
                    Err(ApiError::forbidden(format!(
                        "a {role} token may not do this; {}",
                        match access {
                            Access::Rules =>
                                "plugins, case files and chains take an integrator token",
                            Access::Data => "imports and runs take a staff token",
                            Access::DryRun => "dry runs take an integrator or staff token",
                            _ => "only the platform operator may",
                        }
                    )))
                }
            }
        }
    }
}

/// `State` re-exported for handlers.
pub type AppState = State<App>;
