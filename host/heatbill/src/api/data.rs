//! Streaming imports: the body is CSV (the formats of `heatbill import`, see
//! `docs/import-formats.md`), or JSON (lines, or an array, of objects whose fields are the
//! CSV's columns, turned into the same CSV as they arrive), parsed as it arrives, in one
//! transaction: every row is good and
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

/// How an import's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// CSV, with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
    /// A JSON array of objects.
    JsonArray,
}

/// Writes JSON records as CSV into `tx`: the header is the first object's fields; every other
/// object may leave fields out (empty cells) but not add any. Strings are taken as they are,
/// numbers and booleans as their JSON text, `null` as an empty cell, arrays (tags) as `a;b`
/// and objects (attributes) as `k=v;k=v`, as the CSV writes them. A record that is not an object, or JSON that does not
/// parse, fails the import with where.
fn json_to_csv(
    input: ChannelReader,
    format: Format,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
) {
    use serde::de::{Deserializer as _, SeqAccess, Visitor};

    struct Sink {
        tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
        header: Option<Vec<String>>,
        buf: Vec<u8>,
        n: u64,
    }

    impl Sink {
        fn record(&mut self, v: serde_json::Value) -> Result<(), String> {
            self.n += 1;
            let serde_json::Value::Object(map) = v else {
                return Err(format!("record {}: give a JSON object", self.n));
            };
            let header = match &self.header {
                Some(h) => h,
                None => {
                    let h: Vec<String> = map.keys().cloned().collect();
                    let mut w = csv::Writer::from_writer(Vec::new());
                    w.write_record(&h).map_err(|e| e.to_string())?;
                    self.buf.extend(w.into_inner().map_err(|e| e.to_string())?);
                    self.header = Some(h);
                    self.header.as_ref().expect("just set")
                }
            };
            if let Some(k) = map.keys().find(|k| !header.contains(k)) {
                return Err(format!(
                    "record {} (row {}) has the field {:?}, which the first record lacks: give \
                     every record the same fields",
                    self.n,
                    self.n + 1,
                    heatbill_engine::text::terminal_safe(k, 40)
                ));
            }
            let cells: Vec<String> = header
                .iter()
                .map(|k| match map.get(k) {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    // Tags and attributes, written as in the CSV: `a;b`, `k=v;k=v`.
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(";"),
                    Some(serde_json::Value::Object(pairs)) => pairs
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                v.as_str().map_or_else(|| v.to_string(), str::to_string)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(";"),
                    Some(other) => other.to_string(),
                })
                .collect();
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(&cells).map_err(|e| e.to_string())?;
            self.buf.extend(w.into_inner().map_err(|e| e.to_string())?);
            if self.buf.len() >= 64 * 1024 {
                self.flush()?;
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), String> {
            if !self.buf.is_empty() {
                let chunk = Bytes::from(std::mem::take(&mut self.buf));
                self.tx
                    .blocking_send(Ok(chunk))
                    .map_err(|_| "the import stopped".to_string())?;
            }
            Ok(())
        }
    }

    struct Records<'a>(&'a mut Sink);

    impl<'de> Visitor<'de> for Records<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<serde_json::Value>()? {
                self.0.record(v).map_err(serde::de::Error::custom)?;
            }
            Ok(())
        }
    }

    let mut sink = Sink {
        tx: tx.clone(),
        header: None,
        buf: Vec::new(),
        n: 0,
    };
    let result: Result<(), String> = match format {
        Format::JsonLines => {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(input).lines();
            let mut line_no = 0u64;
            loop {
                line_no += 1;
                match lines.next() {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e.to_string()),
                    Some(Ok(l)) if l.trim().is_empty() => continue,
                    Some(Ok(l)) => {
                        let r = serde_json::from_str(&l)
                            .map_err(|e| format!("line {line_no}: not JSON: {e}"))
                            .and_then(|v| sink.record(v));
                        if let Err(e) = r {
                            break Err(e);
                        }
                    }
                }
            }
        }
        _ => {
            let mut de = serde_json::Deserializer::from_reader(input);
            de.deserialize_seq(Records(&mut sink))
                .and_then(|()| de.end())
                .map_err(|e| format!("the JSON array: {e}"))
        }
    };
    let result = result.and_then(|()| sink.flush());
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(heatbill_engine::text::terminal_safe(&e, 300)));
    }
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

/// Imports a file of customers, readings (daily or hourly), temperatures, payments or opening
/// balances (staff): CSV, JSON Lines or a JSON array of objects whose fields are the CSV's
/// columns. All rows or none.
#[utoipa::path(post, operation_id = "data_import", path = "/v1/companies/{company}/imports/{kind}", tag = "data",
    params(("company" = String, Path, description = "The company's slug"),
        ("kind" = KindName, Path, description = "What the file holds")),
    request_body(content(
        (String = "text/csv"),
        (String = "application/x-ndjson"),
        (Vec<Object> = "application/json"),
    )),
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
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = if content_type.starts_with("text/csv") {
        Format::Csv
    } else if content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/jsonl")
    {
        Format::JsonLines
    } else if content_type.starts_with("application/json") {
        Format::JsonArray
    } else {
        super::error::drain(body, 1 << 20).await;
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid-body",
            "send the file as CSV (`Content-Type: text/csv`), JSON Lines \
             (`application/x-ndjson`, one object per line) or a JSON array of objects \
             (`application/json`); the columns and fields are those of heatbill import, in \
             docs/import-formats.md",
        ));
    };
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
    // JSON is turned into the same CSV on a thread of its own, as it arrives.
    let (reader, converter) = match format {
        Format::Csv => (reader, None),
        json => {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let task = tokio::task::spawn_blocking(move || json_to_csv(reader, json, tx));
            (
                ChannelReader {
                    rx,
                    chunk: Bytes::new(),
                },
                Some(task),
            )
        }
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
    if let Some(task) = converter {
        let _ = task.await;
    }
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
