//! Streaming imports: the body is CSV (the formats of `heatbill import`, see
//! `docs/import-formats.md`), parsed as it arrives, in one transaction: every row is good and
//! the file is merged, or nothing changes and the answer lists the bad rows (row number,
//! column, value, what is wrong). Memory does not grow with the file: the body flows through a
//! bounded channel into the parser, which stages rows in chunks.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use heatbill_runtime::import::{ImportError, ImportOutcome, import_reader};
use heatbill_runtime::model::ImportKind;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Access, Caller};
use super::error::ErrorBody;
use super::{ApiError, App};

/// The routes of this module.
pub fn routes() -> axum::Router<App> {
    axum::Router::new().route(
        "/companies/{company}/imports/{kind}",
        axum::routing::post(import),
    )
}

/// The kinds of import (the `{kind}` of the path).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum KindName {
    /// Customers and their effective-dated versions.
    Customers,
    /// Meter readings, daily or hourly.
    Readings,
    /// Indoor temperatures.
    Temperatures,
    /// Payments.
    Payments,
    /// Opening balances.
    Balances,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// The kind imported.
    pub kind: String,
    /// Rows in the file.
    pub rows: u64,
    /// Records added.
    pub inserted: u64,
    /// Records changed.
    pub updated: u64,
    /// Records already stored as the file has them (a re-upload changes nothing).
    pub unchanged: u64,
}

/// A `Read` over the chunks of a request body, for the import's blocking parser.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

fn kind_of(s: &str) -> Result<ImportKind, ApiError> {
    Ok(match s {
        "customers" => ImportKind::Customers,
        "readings" => ImportKind::Readings,
        "temperatures" => ImportKind::Temperatures,
        "payments" => ImportKind::Payments,
        "balances" => ImportKind::Balances,
        _ => {
            return Err(ApiError::not_found(format!(
                "no import kind {:?}: give customers, readings, temperatures, payments or balances",
                heatbill_engine::text::safe(s)
            )));
        }
    })
}

/// Imports a CSV file of customers, readings (daily or hourly), temperatures, payments or
/// opening balances (staff). All rows or none.
#[utoipa::path(post, operation_id = "data_import", path = "/v1/companies/{company}/imports/{kind}", tag = "data",
    params(("company" = String, Path, description = "The company's slug"),
        ("kind" = KindName, Path, description = "What the file holds")),
    request_body(content = String, content_type = "text/csv"),
    security(("bearer" = [])),
    responses((status = 200, body = ImportResult),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Bad rows (listed in `details.errors`); nothing was changed")))]
pub async fn import(
    State(app): State<App>,
    caller: Caller,
    Path((company, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportResult>, ApiError> {
    let c = match caller.company(&app, &company, Access::Data).await {
        Ok(c) => c,
        Err(e) => {
            super::error::drain(body, 1 << 20).await;
            return Err(e);
        }
    };
    let kind = match kind_of(&kind) {
        Ok(k) => k,
        Err(e) => {
            super::error::drain(body, 1 << 20).await;
            return Err(e);
        }
    };
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if !csv {
        super::error::drain(body, 1 << 20).await;
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid-body",
            "send the file as CSV with `Content-Type: text/csv` (the columns are those of \
             heatbill import, in docs/import-formats.md)",
        ));
    }
    let cap = app.settings.api.max_import_bytes;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    // The body flows through a channel of four chunks: the parser's pace holds the upload back.
    let feeder = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut seen: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let msg = match chunk {
                Ok(b) => {
                    seen += b.len() as u64;
                    if seen > cap {
                        let _ = tx
                            .send(Err(format!(
                                "the file is larger than {cap} bytes (api.max_import_bytes)"
                            )))
                            .await;
                        return true;
                    }
                    Ok(b)
                }
                Err(e) => Err(format!("the upload was cut off: {e}")),
            };
            let failed = msg.is_err();
            if tx.send(msg).await.is_err() || failed {
                return false;
            }
        }
        false
    });
    let reader = ChannelReader {
        rx,
        chunk: Bytes::new(),
    };
    let name = format!("upload ({kind})");
    let outcome = import_reader(
        app.services.store.as_ref(),
        &c,
        kind,
        &name,
        reader,
        &app.settings.import,
    )
    .await;
    let too_large = feeder.await.unwrap_or(false);
    if too_large {
        return Err(ApiError::too_large(format!(
            "the file is larger than {cap} bytes (api.max_import_bytes); nothing was imported"
        )));
    }
    match outcome {
        Ok(ImportOutcome::Imported(n)) => {
            tracing::info!(company = %c.slug, %kind, rows = n.rows, inserted = n.inserted,
                updated = n.updated, "imported");
            Ok(Json(ImportResult {
                kind: kind.to_string(),
                rows: n.rows,
                inserted: n.inserted,
                updated: n.updated,
                unchanged: n.unchanged,
            }))
        }
        Ok(ImportOutcome::Refused { errors, total }) => {
            let first: Vec<String> = errors.iter().take(5).map(|e| e.to_string()).collect();
            Err(ApiError::unprocessable(format!(
                "{total} bad row(s); nothing was imported. Fix them and upload the file again: {}",
                first.join("; ")
            ))
            .with_details(serde_json::json!({ "total": total, "errors": errors })))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::unprocessable(format!(
            "the file could not be imported: {}",
            heatbill_engine::text::terminal_safe(&e.to_string(), 1000)
        ))),
    }
}
