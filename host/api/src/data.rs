//! Streaming imports: the body is CSV (the formats of `heatbill import`, see
//! `docs/import-formats.md`), or JSON (lines, or an array, of objects whose fields are the
//! CSV's columns, turned into the same CSV as they arrive), parsed as it arrives, in one
//! transaction: every row is good and
//! the file is merged, or nothing changes and the answer lists the bad rows (row number,
//! column, value, what is wrong). Memory does not grow with the file: the body flows through a
//! bounded channel into the parser, which stages rows in chunks; a CSV row, and a JSON record,
//! is read no further than `import.max_row_bytes` before it is refused, and a JSON record has
//! at most one field per column of its kind. At shutdown an import in progress stops (503,
//! nothing imported) instead of holding the server up.

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

use super::auth::{Tenant, access};
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
    /// Customers' profiles (the directory: account number, name, phone, address).
    Profiles,
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

/// How large a JSON record may be, and how many fields it may have.
struct RecordBounds {
    /// The most bytes of one record's JSON text, separators and whitespace around it included
    /// (`import.max_row_bytes`, as a CSV row).
    max_bytes: usize,
    /// The kind's columns: a record has at most one field for each.
    columns: &'static [&'static str],
    kind: ImportKind,
}

/// Writes JSON records as CSV into `tx`: the header is the first object's fields; every other
/// object may leave fields out (empty cells) but not add any. Strings are taken as they are,
/// numbers and booleans as their JSON text, `null` as an empty cell, arrays (tags) as `a;b`
/// and objects (attributes) as `k=v;k=v`, as the CSV writes them. A record that is not an
/// object, or JSON that does not parse, fails the import with where.
///
/// Bounded and linear: a record's text is read no further than `bounds.max_bytes` before it is
/// refused (JSON Lines: its line; an array: the bytes since the previous element), so no record
/// is ever held or parsed whole past that; a record with more fields than the kind has columns
/// is refused by its count; and checking a record's fields against the header is a lookup per
/// field.
fn json_to_csv(
    input: ChannelReader,
    format: Format,
    bounds: RecordBounds,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
) {
    use serde::de::{Deserializer as _, SeqAccess, Visitor};
    use std::cell::Cell;
    use std::collections::HashSet;
    use std::rc::Rc;

    struct Sink {
        tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
        header: Option<(Vec<String>, HashSet<String>)>,
        bounds: RecordBounds,
        buf: Vec<u8>,
        n: u64,
    }

    impl Sink {
        /// "record 3 (row 4)": the record about to be read, or the one just read.
        fn at(&self, n: u64) -> String {
            format!("record {n} (row {})", n + 1)
        }

        /// The refusal of the record after the last one read, for being too long.
        fn too_long(&self, line: Option<u64>) -> String {
            format!(
                "{}{} is longer than {} bytes (import.max_row_bytes), the most one record may be; \
                 nothing was imported. Is each record one {} object of the columns in \
                 docs/import-formats.md?",
                self.at(self.n + 1),
                line.map_or_else(String::new, |l| format!(", on line {l},")),
                self.bounds.max_bytes,
                self.bounds.kind
            )
        }

        fn record(&mut self, v: serde_json::Value) -> Result<(), String> {
            self.n += 1;
            let serde_json::Value::Object(map) = v else {
                return Err(format!("record {}: give a JSON object", self.n));
            };
            let columns = self.bounds.columns;
            if map.len() > columns.len() {
                return Err(format!(
                    "{} has {} fields; a {} record has at most {}, one per column: {}",
                    self.at(self.n),
                    map.len(),
                    self.bounds.kind,
                    columns.len(),
                    columns.join(", ")
                ));
            }
            if self.header.is_none() {
                let h: Vec<String> = map.keys().cloned().collect();
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(&h).map_err(|e| e.to_string())?;
                self.buf.extend(w.into_inner().map_err(|e| e.to_string())?);
                let set = h.iter().cloned().collect();
                self.header = Some((h, set));
            }
            let (header, known) = self.header.as_ref().expect("just set");
            if let Some(k) = map.keys().find(|k| !known.contains(k.as_str())) {
                return Err(format!(
                    "{} has the field {:?}, which the first record lacks: give every record the \
                     same fields",
                    self.at(self.n),
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

    /// Counts the bytes read since the current array element began, and fails the read once
    /// they pass the bound (serde_json reads a byte at a time, so the count is exact).
    struct Counted<R> {
        inner: R,
        since: Rc<Cell<usize>>,
        max: usize,
        over: Rc<Cell<bool>>,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let room = (self.max + 1).saturating_sub(self.since.get());
            if room == 0 {
                self.over.set(true);
                return Err(std::io::Error::other("a record is over the size bound"));
            }
            let end = buf.len().min(room);
            let n = self.inner.read(&mut buf[..end])?;
            self.since.set(self.since.get() + n);
            Ok(n)
        }
    }

    struct Records<'a> {
        sink: &'a mut Sink,
        since: Rc<Cell<usize>>,
    }

    impl<'de> Visitor<'de> for Records<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            loop {
                self.since.set(0);
                match seq.next_element::<serde_json::Value>()? {
                    Some(v) => self.sink.record(v).map_err(serde::de::Error::custom)?,
                    None => return Ok(()),
                }
            }
        }
    }

    let max = bounds.max_bytes;
    let mut sink = Sink {
        tx: tx.clone(),
        header: None,
        bounds,
        buf: Vec::new(),
        n: 0,
    };
    let mut input = std::io::BufReader::with_capacity(64 * 1024, input);
    let result: Result<(), String> = match format {
        Format::JsonLines => {
            let mut line = Vec::new();
            let mut line_no = 0u64;
            loop {
                line_no += 1;
                match read_line_capped(&mut input, &mut line, max) {
                    Err(e) => break Err(e.to_string()),
                    Ok(Line::End) => break Ok(()),
                    Ok(Line::TooLong) => break Err(sink.too_long(Some(line_no))),
                    Ok(Line::Read) if line.trim_ascii().is_empty() => continue,
                    Ok(Line::Read) => {
                        let r = serde_json::from_slice(&line)
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
            let since = Rc::new(Cell::new(0));
            let over = Rc::new(Cell::new(false));
            let counted = Counted {
                inner: input,
                since: since.clone(),
                max,
                over: over.clone(),
            };
            let mut de = serde_json::Deserializer::from_reader(counted);
            let parsed = de
                .deserialize_seq(Records {
                    sink: &mut sink,
                    since,
                })
                .and_then(|()| de.end());
            match parsed {
                Ok(()) => Ok(()),
                Err(_) if over.get() => Err(sink.too_long(None)),
                Err(e) => Err(format!("the JSON array: {e}")),
            }
        }
    };
    let result = result.and_then(|()| sink.flush());
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(heatbill_engine::text::terminal_safe(&e, 400)));
    }
}

/// What [`read_line_capped`] found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (without its `\n`) is in the buffer.
    Read,
    /// The line is longer than the cap: it was read no further.
    TooLong,
    /// The input ended before another line.
    End,
}

/// Reads the next line of `input` into `line` (cleared first, without the `\n`), reading no
/// further than `max` bytes of it: a longer line is [`Line::TooLong`], never held whole.
fn read_line_capped(
    input: &mut impl std::io::BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut any = false;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(if any { Line::Read } else { Line::End });
        }
        any = true;
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take + usize::from(done));
        if done {
            return Ok(Line::Read);
        }
    }
}

/// Reads and drops what is left of a refused import's body: at most `limit` bytes, for at most
/// 5 s, and not past a shutdown.
async fn linger(
    stream: &mut axum::body::BodyDataStream,
    limit: u64,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) {
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
    tokio::pin!(deadline);
    let mut seen: u64 = 0;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            true = stopped(stopping) => return,
            chunk = stream.next() => match chunk {
                Some(Ok(c)) => {
                    seen += c.len() as u64;
                    if seen > limit {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

/// Resolves to `true` once the server begins to shut down (`false` if it never can).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    stopping.wait_for(|s| *s).await.is_ok()
}

/// How the feed of an import's body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fed {
    /// The body ended, or the parser stopped taking it.
    Whole,
    /// The body passed `api.max_import_bytes`.
    TooLarge,
    /// The server began to shut down.
    Stopped,
}

/// Why an import stopped at shutdown.
const STOPPING: &str = "the server is shutting down: the import stopped and nothing was \
                        imported; upload the file again (to another host, or to this one once it \
                        is back)";

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
        "profiles" => ImportKind::Profiles,
        _ => {
            return Err(ApiError::not_found(format!(
                "no import kind {:?}: give customers, readings, temperatures, payments, \
                 balances or profiles",
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
    tenant: Result<Tenant<access::Data>, ApiError>,
    Path((_company, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportResult>, ApiError> {
    let c = match tenant {
        Ok(Tenant(c, ..)) => c,
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
    let mut stopping = app.stopping.subscribe();
    // The body flows through a channel of four chunks: the parser's pace holds the upload back.
    // A shutdown stops the feed with an error, so the parser (and the JSON converter) stop at
    // their next read and nothing is imported: an import never holds the shutdown.
    let feeder = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut seen: u64 = 0;
        loop {
            let next = tokio::select! {
                chunk = stream.next() => Some(chunk),
                true = stopped(&mut stopping) => None,
            };
            let Some(chunk) = next else {
                let _ = tx.send(Err(STOPPING.to_string())).await;
                return Fed::Stopped;
            };
            let Some(chunk) = chunk else {
                return Fed::Whole;
            };
            let msg = match chunk {
                Ok(b) => {
                    seen += b.len() as u64;
                    if seen > cap {
                        let _ = tx
                            .send(Err(format!(
                                "the file is larger than {cap} bytes (api.max_import_bytes)"
                            )))
                            .await;
                        return Fed::TooLarge;
                    }
                    Ok(b)
                }
                Err(e) => Err(format!("the upload was cut off: {e}")),
            };
            let failed = msg.is_err();
            if tx.send(msg).await.is_err() {
                // The parser refused the file before its end (a bad header, a record over the
                // bound): the rest is read and dropped for a few seconds, so that a client
                // still sending gets the answer instead of a broken connection.
                linger(&mut stream, cap.saturating_sub(seen), &mut stopping).await;
                return Fed::Whole;
            }
            if failed {
                return Fed::Whole;
            }
        }
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
            let bounds = RecordBounds {
                max_bytes: app.settings.import.max_row_bytes,
                columns: heatbill_runtime::import::column_names(kind),
                kind,
            };
            let task = tokio::task::spawn_blocking(move || json_to_csv(reader, json, bounds, tx));
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
    let fed = feeder.await.unwrap_or(Fed::Whole);
    if let Some(task) = converter {
        let _ = task.await;
    }
    match fed {
        Fed::TooLarge => {
            return Err(ApiError::too_large(format!(
                "the file is larger than {cap} bytes (api.max_import_bytes); nothing was imported"
            )));
        }
        Fed::Stopped if !matches!(outcome, Ok(ImportOutcome::Imported(_))) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                STOPPING,
            ));
        }
        _ => {}
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
