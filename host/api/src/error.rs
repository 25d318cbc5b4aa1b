//! The one error shape: every 4xx and 5xx is `{"error": {"status", "code", "message",
//! "details"?}}`, with a message that says what to fix; and the checks of the plain values a
//! request names (an id, a date), shared by every handler module, that answer in it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use heatbill_runtime::run::{RunError, transient};
use heatbill_runtime::store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not-found`, `invalid-body`, …).
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// Structured details (row errors of an import, the case report of a failed plugin).
    pub details: Option<serde_json::Value>,
    /// Seconds after which a retry may succeed (`Retry-After`, on a 503 for a busy server).
    pub retry_after_s: Option<u64>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status.
    pub status: u16,
    /// A stable code: `unauthorized`, `forbidden`, `not-found`, `method-not-allowed`,
    /// `invalid-body`, `invalid-request`, `conflict`, `too-large`, `unprocessable`,
    /// `unavailable`, `internal`.
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Structured details, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error of `status` and `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_s: None,
        }
    }
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", message)
    }
    /// 422: well-formed, but refused.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 413.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", message)
    }
    /// 500: a fault of the server (logged; the answer says no more than that).
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %heatbill_engine::text::terminal_safe(&message.to_string(), 2000), "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; the error is in its log",
        )
    }
    /// With structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }
    /// With a `Retry-After` of `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"heatbill\""),
            );
        }
        if let Some(s) = self.retry_after_s {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Gives every error answer the one error shape, also those that axum makes before a handler
/// runs: a path or query that does not parse (`tokens/21833925505062113280` for an `i64`), a
/// method the endpoint does not take (405), a body over the cap (413) or of the wrong type
/// (415). Those come out of axum's extractors and router as plain text or an empty body; this
/// layer, outermost but for the request ids, turns any 4xx or 5xx that is not JSON into
/// [`ApiError`]'s shape, with axum's text (escaped) as the message. Headers such as `Allow`
/// are kept.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let r = next.run(req).await;
    let status = r.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return r;
    }
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    // axum's rejections are a line of text; nothing longer is kept.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = heatbill_engine::text::terminal_safe(&String::from_utf8_lossy(&text), 500);
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            format!(
                "this endpoint does not take {}; the methods it takes are in the Allow header \
                 and at /openapi.json",
                heatbill_engine::text::terminal_safe(method.as_str(), 20)
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too-large",
            "the body is larger than the API takes (api.max_body_bytes)".to_string(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "invalid-body",
            format!("the body's content type is not one this endpoint takes: {text}"),
        ),
        StatusCode::NOT_FOUND => ("not-found", format!("not found: {text}")),
        s if s.is_server_error() => {
            tracing::error!(status = %s, error = %text, "internal error");
            (
                "internal",
                "the server failed; the error is in its log".to_string(),
            )
        }
        _ => (
            "invalid-request",
            format!("the request's path or query is not valid: {text}"),
        ),
    };
    let mut out = ApiError {
        status,
        code,
        message,
        details: None,
        retry_after_s: None,
    }
    .into_response();
    let mut headers = std::mem::take(&mut parts.headers);
    headers.remove(header::CONTENT_LENGTH);
    for (name, value) in out.headers() {
        headers.insert(name.clone(), value.clone());
    }
    *out.headers_mut() = headers;
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound(m) => ApiError::not_found(m.clone()),
            StoreError::Conflict(m) => ApiError::conflict(m.clone()),
            _ if transient(&e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unreachable; try again",
            ),
            _ => ApiError::internal(e),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        match e {
            RunError::Store(s) => s.into(),
            RunError::Refused(m) => ApiError::unprocessable(m),
        }
    }
}

/// A JSON body, read within the API's body cap, whose errors are [`ApiError`]s that name the
/// field and position (axum's own `Json` answers in plain text).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid-body",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(
                        "the body is larger than the API takes (api.max_body_bytes)",
                    )
                } else {
                    ApiError::bad_request(format!("the body could not be read: {e}"))
                }
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                format!(
                    "the JSON body is not valid: {}",
                    heatbill_engine::text::terminal_safe(&e.to_string(), 500)
                ),
            )
        })
    }
}

/// Reads a whole body of at most `cap` bytes (a plugin, a case file), refusing a larger one
/// as soon as it passes the cap. `length` (the request's `Content-Length`, if it gave one)
/// sizes the buffer once, so that a body takes its own size in memory, not the doubling
/// steps of a growing buffer.
pub async fn read_capped(
    body: axum::body::Body,
    cap: usize,
    what: &str,
    length: Option<u64>,
) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut out = Vec::with_capacity(length.map_or(0, |n| n.min(cap as u64) as usize));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
        if out.len() + chunk.len() > cap {
            return Err(ApiError::too_large(format!(
                "{what} is larger than {cap} bytes, the most this server takes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads and drops what is left of a refused request's body (up to `limit` bytes), so the
/// client, still sending, gets the answer instead of a broken connection.
pub async fn drain(body: axum::body::Body, limit: usize) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0;
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            chunk = stream.next() => match chunk {
                Some(Ok(c)) => {
                    seen += c.len();
                    if seen > limit {
                        return;
                    }
                }
                _ => return,
            }
        }
    }
}

/// Parses a `YYYY-MM-DD` path or query value.
pub fn parse_date(what: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "{what} {:?}: give a date as YYYY-MM-DD",
            heatbill_engine::text::safe(s)
        ))
    })
}

/// A listing's page size: `asked`, or `max` when not asked; 1 to `max`, or a 400 saying so.
pub fn page_limit(asked: Option<usize>, max: usize) -> Result<usize, ApiError> {
    let limit = asked.unwrap_or(max);
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: give 1 to {max}"
        )));
    }
    Ok(limit)
}

/// Checks an identifier a request names (a customer id, a page cursor): 1 to 200 characters,
/// none of them a control or invisible character. Such ids cannot exist (imports refuse them),
/// and a NUL would not even reach PostgreSQL.
pub fn check_id(what: &str, s: &str) -> Result<(), ApiError> {
    if s.is_empty()
        || s.chars().count() > 200
        || s.chars()
            .any(|c| c.is_control() || heatbill_engine::text::is_invisible(c))
    {
        return Err(ApiError::bad_request(format!(
            "{what} {:?}: give 1 to 200 printable characters",
            heatbill_engine::text::terminal_safe(s, 60)
        )));
    }
    Ok(())
}
