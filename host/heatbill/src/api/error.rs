//! The one error shape: every 4xx and 5xx is `{"error": {"status", "code", "message",
//! "details"?}}`, with a message that says what to fix.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
    /// A stable code: `unauthorized`, `forbidden`, `not-found`, `invalid-body`,
    /// `invalid-request`, `conflict`, `too-large`, `unavailable`, `internal`.
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
        r
    }
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
/// as soon as it passes the cap.
pub async fn read_capped(
    body: axum::body::Body,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
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
