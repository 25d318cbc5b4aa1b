//! `heatbill import`: CSV files of customers, meter readings, indoor temperatures, payments and
//! opening balances, streamed into the store.
//!
//! A file is hostile input until proven otherwise, and an import is **all or nothing**:
//!
//! - the header is checked first (an unknown or missing column fails the file at once, naming
//!   the columns the kind takes);
//! - each row is parsed and typed column by column on a blocking thread, and handed to the
//!   store in chunks over a bounded channel, so a million rows need a chunk of memory, not a
//!   million rows of it; a row longer than `import.max_row_bytes` fails the file instead of
//!   growing a buffer;
//! - the store stages the rows in its transaction and checks them as a set (unknown customers,
//!   the same key twice); only a file without a single bad row is merged and committed, and
//!   the report then says what was inserted, changed and already there (a re-upload changes
//!   nothing);
//! - every bad row is reported with its line number, column, the value (control characters
//!   escaped, shortened) and what to write instead; the first `import.max_row_errors` are
//!   listed, all are counted.
//!
//! The columns of each kind are documented in `docs/import-formats.md`.
//!
//! One file, though long: one streaming, all-or-nothing parser serves the five kinds of file, and
//! what is shared (header checks, bounded rows, typed columns, the error report) is most of it;
//! an eighth of the file is its unit tests.

use std::cell::Cell;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use heatbill_engine::HeatUnit;

use crate::model::*;
use crate::settings::ImportSettings;
use crate::store::{ImportFile, StoreError, prelude::*};

/// Why an import could not even be checked row by row.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file as a whole is unusable (header, encoding, a row over the size limit).
    #[error("{file}: {problem}")]
    File {
        /// The file.
        file: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of an import.
#[derive(Debug, Clone)]
pub enum ImportOutcome {
    /// Every row was good: the file is merged.
    Imported(ImportCounts),
    /// Bad rows: nothing was changed.
    Refused {
        /// The first bad rows, in file order.
        errors: Vec<RowError>,
        /// How many bad rows there are in all (at least `errors.len()`; rows found bad while
        /// parsing plus the first rows found bad as a set).
        total: u64,
    },
}

pub use crate::model::shown;

/// Characters that change how text renders without being control characters (the engine's one
/// definition, shared by the imports, the bills' line kinds and every printed report).
pub use heatbill_engine::text::is_invisible;

/// One column a kind of file takes.
struct Column {
    name: &'static str,
    required: bool,
}

const fn req(name: &'static str) -> Column {
    Column {
        name,
        required: true,
    }
}
const fn opt(name: &'static str) -> Column {
    Column {
        name,
        required: false,
    }
}

const CUSTOMERS: &[Column] = &[
    req("customer_id"),
    opt("valid_from"),
    req("class"),
    opt("special_class"),
    opt("status"),
    opt("metered"),
    opt("low_income"),
    req("building_area"),
    opt("usable_area"),
    opt("ceiling_height"),
    opt("tags"),
    opt("attributes"),
];
/// A reading is given in exactly one of `heat_gj`, `heat_kwh` and `heat_mwh` (the meter's
/// unit); it is stored in GJ, converted exactly (1 kWh = 0.0036 GJ, 1 MWh = 3.6 GJ).
const READINGS: &[Column] = &[
    req("customer_id"),
    opt("date"),
    opt("time"),
    opt("heat_gj"),
    opt("heat_kwh"),
    opt("heat_mwh"),
];
const TEMPERATURES: &[Column] = &[req("customer_id"), req("date"), req("celsius")];
const PAYMENTS: &[Column] = &[
    req("payment_id"),
    req("customer_id"),
    req("paid_on"),
    req("amount"),
];
const BALANCES: &[Column] = &[
    req("customer_id"),
    req("as_of"),
    req("arrears"),
    opt("arrears_since"),
];
/// The directory ([`crate::directory`]): every field but the customer optional.
const PROFILES: &[Column] = &[
    req("customer_id"),
    opt("valid_from"),
    opt("account_no"),
    opt("name"),
    opt("phone"),
    opt("community"),
    opt("building"),
    opt("unit"),
    opt("room"),
    opt("reason"),
];

fn columns(kind: ImportKind) -> &'static [Column] {
    match kind {
        ImportKind::Customers => CUSTOMERS,
        ImportKind::Readings => READINGS,
        ImportKind::Temperatures => TEMPERATURES,
        ImportKind::Payments => PAYMENTS,
        ImportKind::Balances => BALANCES,
        ImportKind::Profiles => PROFILES,
    }
}

/// The names of the columns `kind` takes, in the order `docs/import-formats.md` lists them.
pub fn column_names(kind: ImportKind) -> &'static [&'static str] {
    const fn names<const N: usize>(cols: &[Column]) -> [&'static str; N] {
        let mut out = [""; N];
        let mut i = 0;
        while i < N {
            out[i] = cols[i].name;
            i += 1;
        }
        out
    }
    const C: [&str; CUSTOMERS.len()] = names(CUSTOMERS);
    const R: [&str; READINGS.len()] = names(READINGS);
    const T: [&str; TEMPERATURES.len()] = names(TEMPERATURES);
    const P: [&str; PAYMENTS.len()] = names(PAYMENTS);
    const B: [&str; BALANCES.len()] = names(BALANCES);
    const F: [&str; PROFILES.len()] = names(PROFILES);
    match kind {
        ImportKind::Customers => &C,
        ImportKind::Readings => &R,
        ImportKind::Temperatures => &T,
        ImportKind::Payments => &P,
        ImportKind::Balances => &B,
        ImportKind::Profiles => &F,
    }
}

/// The date a customer version without `valid_from` takes effect: the beginning.
pub const BEGINNING: NaiveDate = NaiveDate::from_ymd_opt(1, 1, 1).expect("a valid date");

/// Counts the bytes read since the last record boundary and fails the read when one row grows
/// past the limit; hashes everything it reads.
struct Guard<R> {
    inner: R,
    since_record: Rc<Cell<usize>>,
    limit: usize,
    hash: Sha256,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.since_record.get() > self.limit {
            return Err(std::io::Error::other(format!(
                "a row is longer than {} bytes (import.max_row_bytes); is this a CSV file?",
                self.limit
            )));
        }
        let n = self.inner.read(buf)?;
        self.since_record.set(self.since_record.get() + n);
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// What the parsing thread found.
struct Parsed {
    rows: u64,
    errors: Vec<RowError>,
    error_count: u64,
    sha256: String,
}

/// Imports one CSV file of `kind` into `company`. See the module docs.
pub async fn import_file(
    store: &dyn Store,
    company: &Company,
    kind: ImportKind,
    path: &Path,
    settings: &ImportSettings,
) -> Result<ImportOutcome, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    import_reader(store, company, kind, &name, file, settings).await
}

/// Imports CSV text from any reader (a file, an upload body).
pub async fn import_reader<R: Read + Send + 'static>(
    store: &dyn Store,
    company: &Company,
    kind: ImportKind,
    name: &str,
    reader: R,
    settings: &ImportSettings,
) -> Result<ImportOutcome, ImportError> {
    let mut sink = store.begin_import(company, kind).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ImportRows>(2);
    let settings2 = settings.clone();
    let file_name = name.to_string();
    let parser =
        tokio::task::spawn_blocking(move || parse(kind, reader, &settings2, &file_name, tx));
    let mut push_error = None;
    while let Some(chunk) = rx.recv().await {
        if push_error.is_none()
            && let Err(e) = sink.push(chunk).await
        {
            push_error = Some(e);
        }
    }
    let parsed = parser.await.map_err(|e| ImportError::File {
        file: name.to_string(),
        problem: format!("the parser stopped: {e}"),
    })??;
    if let Some(e) = push_error {
        return Err(e.into());
    }
    let file = ImportFile {
        name: name.to_string(),
        sha256: parsed.sha256.clone(),
        rows: parsed.rows,
    };
    let outcome = sink
        .finish(&file, parsed.error_count as usize, settings.max_row_errors)
        .await?;
    Ok(match outcome {
        Ok(counts) => ImportOutcome::Imported(counts),
        Err(set_errors) => {
            let total = parsed.error_count + set_errors.len() as u64;
            let mut errors = parsed.errors;
            errors.extend(set_errors);
            errors.sort_by_key(|e| e.row);
            errors.truncate(settings.max_row_errors);
            ImportOutcome::Refused { errors, total }
        }
    })
}

/// Parses the file on a blocking thread, sending typed chunks to the store.
fn parse<R: Read>(
    kind: ImportKind,
    reader: R,
    settings: &ImportSettings,
    name: &str,
    tx: tokio::sync::mpsc::Sender<ImportRows>,
) -> Result<Parsed, ImportError> {
    let since_record = Rc::new(Cell::new(0usize));
    // The csv reader buffers up to its capacity ahead of the record it parses.
    const BUFFER: usize = 64 * 1024;
    let guard = Guard {
        inner: reader,
        since_record: since_record.clone(),
        limit: settings.max_row_bytes + BUFFER,
        hash: Sha256::new(),
    };
    let mut csv = csv::ReaderBuilder::new()
        .buffer_capacity(BUFFER)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(guard);
    let file_error = |problem: String| ImportError::File {
        file: name.to_string(),
        problem,
    };
    let header = csv
        .byte_headers()
        .map_err(|e| file_error(format!("cannot read the header row: {e}")))?
        .clone();
    let cols = columns(kind);
    let allowed = || {
        cols.iter()
            .map(|c| {
                if c.required {
                    c.name.to_string()
                } else {
                    format!("[{}]", c.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut index: Vec<Option<usize>> = vec![None; cols.len()];
    for (i, h) in header.iter().enumerate() {
        let h = std::str::from_utf8(h)
            .map_err(|_| file_error("the header row is not UTF-8; save the file as UTF-8".into()))?
            .trim_start_matches('\u{FEFF}');
        let Some(c) = cols.iter().position(|c| c.name == h) else {
            return Err(file_error(format!(
                "unknown column \"{}\" in the header; {kind} files take the columns {} \
                 (optional ones in brackets)",
                shown(h),
                allowed()
            )));
        };
        if index[c].is_some() {
            return Err(file_error(format!(
                "the column \"{h}\" appears twice in the header"
            )));
        }
        index[c] = Some(i);
    }
    for (c, col) in cols.iter().enumerate() {
        if col.required && index[c].is_none() {
            return Err(file_error(format!(
                "the header has no \"{}\" column; {kind} files take the columns {} (optional \
                 ones in brackets)",
                col.name,
                allowed()
            )));
        }
    }
    if kind == ImportKind::Readings && index[1].is_none() && index[2].is_none() {
        return Err(file_error(
            "a readings file needs a \"date\" column (daily readings) or a \"time\" column \
             (hourly readings, e.g. 2026-01-15T13:00)"
                .into(),
        ));
    }
    if kind == ImportKind::Readings && index[3..6].iter().all(Option::is_none) {
        return Err(file_error(
            "a readings file needs a \"heat_gj\", \"heat_kwh\" or \"heat_mwh\" column: the \
             reading in the meter's unit (converted to GJ exactly)"
                .into(),
        ));
    }
    since_record.set(0);

    let mut parsed = Parsed {
        rows: 0,
        errors: Vec::new(),
        error_count: 0,
        sha256: String::new(),
    };
    let mut chunk = Chunk::new(kind, settings.chunk_rows);
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(file_error(match e.kind() {
                    csv::ErrorKind::Io(io) => io.to_string(),
                    _ => format!("cannot read the file as CSV: {e}"),
                }));
            }
        }
        since_record.set(0);
        parsed.rows += 1;
        let line = record.position().map_or(parsed.rows + 1, |p| p.line());
        let mut row = Row {
            line,
            record: &record,
            index: &index,
            cols,
            errors: Vec::new(),
        };
        if record.len() != header.len() {
            row.errors.push(RowError {
                row: line,
                column: String::new(),
                value: String::new(),
                problem: format!(
                    "{} fields, but the header has {}; quote a value that contains a comma",
                    record.len(),
                    header.len()
                ),
            });
        } else {
            chunk.add(&mut row);
        }
        if !row.errors.is_empty() {
            parsed.error_count += row.errors.len() as u64;
            let room = settings.max_row_errors.saturating_sub(parsed.errors.len());
            parsed.errors.extend(row.errors.into_iter().take(room));
        }
        if chunk.full() {
            // A closed channel means the store failed; its error is reported by the caller.
            if tx.blocking_send(chunk.take()).is_err() {
                break;
            }
        }
    }
    if !chunk.rows.is_empty() {
        let _ = tx.blocking_send(chunk.take());
    }
    let guard = csv.into_inner();
    parsed.sha256 = hex::encode(guard.hash.finalize());
    Ok(parsed)
}

/// One record being typed.
struct Row<'a> {
    line: u64,
    record: &'a csv::ByteRecord,
    index: &'a [Option<usize>],
    cols: &'static [Column],
    errors: Vec<RowError>,
}

impl Row<'_> {
    /// The raw text of column `c` (empty when absent from the file).
    fn raw(&mut self, c: usize) -> Option<&str> {
        let i = self.index[c]?;
        let bytes = self.record.get(i)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Some(s),
            Err(_) => {
                self.errors.push(RowError {
                    row: self.line,
                    column: self.cols[c].name.into(),
                    value: shown(&String::from_utf8_lossy(bytes)),
                    problem: "not UTF-8 text; save the file as UTF-8".into(),
                });
                None
            }
        }
    }

    fn fail(&mut self, c: usize, value: &str, problem: impl Into<String>) {
        self.errors.push(RowError {
            row: self.line,
            column: self.cols[c].name.into(),
            value: shown(value),
            problem: problem.into(),
        });
    }

    /// The non-empty text of column `c`, or `None` (with an error if it is required).
    fn text(&mut self, c: usize) -> Option<String> {
        let v = self.raw(c).map(str::to_string).filter(|s| !s.is_empty());
        if v.is_none() && self.cols[c].required {
            self.fail(c, "", "required; the cell is empty");
        }
        v
    }

    /// An identifier: 1–64 characters, no control or invisible characters.
    fn id(&mut self, c: usize) -> Option<String> {
        let v = self.text(c)?;
        if v.chars().count() > 64 {
            self.fail(c, &v, "longer than 64 characters");
            return None;
        }
        if v.chars().any(|ch| ch.is_control() || is_invisible(ch)) {
            self.fail(
                c,
                &v,
                "contains control or invisible characters; use letters, digits and punctuation",
            );
            return None;
        }
        Some(v)
    }

    fn date(&mut self, c: usize) -> Option<NaiveDate> {
        let v = self.text(c)?;
        match NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
            Ok(d) if v.len() == 10 => Some(d),
            _ => {
                self.fail(c, &v, "not a date; write it as YYYY-MM-DD, e.g. 2026-01-15");
                None
            }
        }
    }

    /// A decimal with at most `scale` digits after the point, within `min..=max`.
    fn decimal(&mut self, c: usize, scale: u32, min: Decimal, max: Decimal) -> Option<Decimal> {
        let v = self.text(c)?;
        let d = match Decimal::from_str_exact(&v) {
            Ok(d)
                if v.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') =>
            {
                d
            }
            _ => {
                self.fail(
                    c,
                    &v,
                    "not a decimal number; write digits with a point, e.g. 60.25 (no \
                     exponent, no thousands separator)",
                );
                return None;
            }
        };
        if d.scale() > scale {
            self.fail(
                c,
                &v,
                format!("more than {scale} digits after the decimal point"),
            );
            return None;
        }
        if d < min || d > max {
            self.fail(c, &v, format!("out of range: must be from {min} to {max}"));
            return None;
        }
        Some(d)
    }

    fn boolean(&mut self, c: usize) -> Option<bool> {
        let v = self.text(c)?;
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Some(true),
            "false" | "0" | "no" | "n" => Some(false),
            _ => {
                self.fail(c, &v, "not a boolean; write true or false");
                None
            }
        }
    }
}

/// Rows typed so far, sent to the store when full.
struct Chunk {
    rows: ImportRows,
    cap: usize,
}

impl Chunk {
    fn new(kind: ImportKind, cap: usize) -> Chunk {
        Chunk {
            rows: empty(kind),
            cap: cap.max(1),
        }
    }
    fn full(&self) -> bool {
        self.rows.len() >= self.cap
    }
    fn take(&mut self) -> ImportRows {
        let kind = match &self.rows {
            ImportRows::Customers(_) => ImportKind::Customers,
            ImportRows::Readings(_) => ImportKind::Readings,
            ImportRows::Temperatures(_) => ImportKind::Temperatures,
            ImportRows::Payments(_) => ImportKind::Payments,
            ImportRows::Balances(_) => ImportKind::Balances,
            ImportRows::Profiles(_) => ImportKind::Profiles,
        };
        std::mem::replace(&mut self.rows, empty(kind))
    }

    /// Types one record; a record with any bad column adds errors and no row. Each kind's
    /// columns are typed by a function of its own (`customer_row`, `reading_row`, …).
    fn add(&mut self, row: &mut Row<'_>) {
        match &mut self.rows {
            ImportRows::Customers(v) => v.extend(customer_row(row)),
            ImportRows::Readings(v) => v.extend(reading_row(row)),
            ImportRows::Temperatures(v) => v.extend(temperature_row(row)),
            ImportRows::Payments(v) => v.extend(payment_row(row)),
            ImportRows::Balances(v) => v.extend(balance_row(row)),
            ImportRows::Profiles(v) => v.extend(profile_row(row)),
        }
    }
}

/// Types a record of the customers file: a customer (a version of its data from `valid_from`). `None` (and the record's
/// errors on `row`) when a column is bad.
fn customer_row(row: &mut Row<'_>) -> Option<CustomerRow> {
    let big = Decimal::new(1_000_000_000, 0);
    let line = row.line;
    let customer_id = row.id(0);
    let valid_from = if row.raw(1).is_some_and(|s| !s.is_empty()) {
        row.date(1)
    } else {
        Some(BEGINNING)
    };
    let class = row.text(2).and_then(|s| {
        parse_class(&s).or_else(|| {
            row.fail(2, &s, "write residential or non-residential");
            None
        })
    });
    let special_class = row.raw(3).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(s) = &special_class
        && (s.len() > 64 || s.chars().any(|c| c.is_control() || is_invisible(c)))
    {
        row.fail(
            3,
            s,
            "at most 64 characters, no control or invisible characters",
        );
    }
    let status = match row.text(4) {
        None => Some(heatbill_engine::ServiceStatus::Active),
        Some(s) => parse_status(&s).or_else(|| {
            row.fail(4, &s, "write active or suspended (报停)");
            None
        }),
    };
    let metered = row.boolean(5).or(Some(false));
    let low_income = row.boolean(6).or(Some(false));
    let building_area = row.decimal(7, 4, Decimal::ZERO, big);
    let usable_area = row.decimal(8, 4, Decimal::ZERO, big);
    let ceiling_height = row.decimal(9, 4, Decimal::ZERO, Decimal::new(1000, 0));
    let tags: Vec<String> = row
        .raw(10)
        .unwrap_or("")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut attributes = Vec::new();
    if let Some(raw) = row.raw(11).map(str::to_string) {
        for pair in raw.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    attributes.push((k.trim().to_string(), v.trim().to_string()))
                }
                _ => row.fail(
                    11,
                    pair,
                    "write attributes as key=value pairs separated by ;",
                ),
            }
        }
    }
    let text_ok = |s: &String| !s.chars().any(|c| c.is_control() || is_invisible(c));
    if !tags.iter().all(text_ok) || !attributes.iter().all(|(k, v)| text_ok(k) && text_ok(v)) {
        row.fail(
            10,
            "",
            "tags and attributes may not contain control or invisible characters",
        );
    }
    attributes.sort();
    if !row.errors.is_empty() {
        return None;
    }
    if let (
        Some(customer_id),
        Some(valid_from),
        Some(class),
        Some(status),
        Some(metered),
        Some(low_income),
        Some(building_area),
    ) = (
        customer_id,
        valid_from,
        class,
        status,
        metered,
        low_income,
        building_area,
    ) {
        return Some(CustomerRow {
            row: line,
            state: CustomerState {
                customer_id,
                valid_from,
                class,
                special_class,
                status,
                metered,
                low_income,
                building_area,
                usable_area,
                ceiling_height,
                tags,
                attributes,
            },
        });
    }
    None
}

/// Types a record of the readings file: a metered reading, daily or hourly, in the meter's unit (stored in GJ). `None` (and the record's
/// errors on `row`) when a column is bad.
fn reading_row(row: &mut Row<'_>) -> Option<ReadingRow> {
    let line = row.line;
    let customer_id = row.id(0);
    let date = row.raw(1).filter(|s| !s.is_empty()).map(str::to_string);
    let time = row.raw(2).filter(|s| !s.is_empty()).map(str::to_string);
    let when = match (date, time) {
        (Some(_), Some(t)) => {
            row.fail(
                2,
                &t,
                "give either date (a daily reading) or time (an hourly one), not both",
            );
            None
        }
        (None, None) => {
            row.fail(
                1,
                "",
                "required: a date (daily reading) or a time (hourly reading)",
            );
            None
        }
        (Some(_), None) => row.date(1).map(|d| (d, None)),
        (None, Some(t)) => parse_hour(&t).map(|(d, h)| (d, Some(h))).or_else(|| {
            row.fail(
                2,
                &t,
                "not an hour; write the local start of the hour as \
                     YYYY-MM-DDTHH:00, e.g. 2026-01-15T13:00",
            );
            None
        }),
    };
    // One reading, in the meter's unit: (column, unit, decimals, largest value),
    // each bounded to at most 1,000,000 GJ like `heat_gj`.
    let units = [
        (3, HeatUnit::Gj, 6, Decimal::new(1_000_000, 0)),
        (4, HeatUnit::Kwh, 3, Decimal::new(277_777_777, 0)),
        (5, HeatUnit::Mwh, 6, Decimal::new(277_777, 0)),
    ];
    let given: Vec<_> = units
        .into_iter()
        .filter(|&(c, ..)| row.raw(c).is_some_and(|v| !v.is_empty()))
        .collect();
    let heat = match given.as_slice() {
        [] => {
            row.fail(
                3,
                "",
                "required: the reading, in heat_gj, heat_kwh or heat_mwh (the \
                     meter's unit)",
            );
            None
        }
        [(c, unit, scale, max)] => row
            .decimal(*c, *scale, Decimal::ZERO, *max)
            .and_then(|h| unit.to_gj(h)),
        [(_, a, ..), (c, ..), ..] => {
            let v = row.raw(*c).unwrap_or_default().to_string();
            row.fail(
                *c,
                &v,
                format!(
                    "the reading is also given in {}: give it in one unit only",
                    a.as_str()
                ),
            );
            None
        }
    };
    if let (Some(customer_id), Some((day, hour)), Some(heat_gj)) = (customer_id, when, heat)
        && row.errors.is_empty()
    {
        return Some(ReadingRow {
            row: line,
            customer_id,
            day,
            hour,
            heat_gj,
        });
    }
    None
}

/// Types a record of the temperatures file: an indoor temperature of a day. `None` (and the record's
/// errors on `row`) when a column is bad.
fn temperature_row(row: &mut Row<'_>) -> Option<TemperatureRow> {
    let line = row.line;
    let customer_id = row.id(0);
    let day = row.date(1);
    let celsius = row.decimal(2, 2, Decimal::new(-60, 0), Decimal::new(60, 0));
    if let (Some(customer_id), Some(day), Some(celsius)) = (customer_id, day, celsius)
        && row.errors.is_empty()
    {
        return Some(TemperatureRow {
            row: line,
            customer_id,
            day,
            celsius,
        });
    }
    None
}

/// Types a record of the payments file: a payment. `None` (and the record's
/// errors on `row`) when a column is bad.
fn payment_row(row: &mut Row<'_>) -> Option<PaymentRow> {
    let big = Decimal::new(1_000_000_000, 0);
    let line = row.line;
    let payment_id = row.id(0);
    let customer_id = row.id(1);
    let paid_on = row.date(2);
    let amount = row.decimal(3, 2, Decimal::new(1, 2), big);
    if let (Some(payment_id), Some(customer_id), Some(paid_on), Some(amount)) =
        (payment_id, customer_id, paid_on, amount)
        && row.errors.is_empty()
    {
        return Some(PaymentRow {
            row: line,
            payment_id,
            payment: Payment {
                customer_id,
                paid_on,
                amount,
            },
        });
    }
    None
}

/// Types a record of the balances file: an opening balance (arrears carried in from the old system). `None` (and the record's
/// errors on `row`) when a column is bad.
fn balance_row(row: &mut Row<'_>) -> Option<BalanceRow> {
    let big = Decimal::new(1_000_000_000, 0);
    let line = row.line;
    let customer_id = row.id(0);
    let as_of = row.date(1);
    let arrears = row.decimal(2, 2, Decimal::ZERO, big);
    let since = if row.raw(3).is_some_and(|s| !s.is_empty()) {
        row.date(3).map(Some)
    } else {
        Some(None)
    };
    if let (Some(customer_id), Some(as_of), Some(arrears), Some(arrears_since)) =
        (customer_id, as_of, arrears, since)
        && row.errors.is_empty()
    {
        return Some(BalanceRow {
            row: line,
            balance: OpeningBalance {
                customer_id,
                as_of,
                arrears,
                arrears_since,
            },
        });
    }
    None
}

/// Types a record of the profiles file (the directory). Names and phone numbers are personal
/// data: a row error about them does not quote the value.
fn profile_row(row: &mut Row<'_>) -> Option<ProfileRow> {
    let line = row.line;
    let customer_id = row.id(0);
    let valid_from = if row.raw(1).is_some_and(|s| !s.is_empty()) {
        row.date(1)
    } else {
        Some(BEGINNING)
    };
    let field = |row: &mut Row<'_>, c: usize| row.raw(c).map(str::to_string);
    let profile = crate::directory::Profile {
        account_no: field(row, 2),
        name: field(row, 3),
        phone: field(row, 4),
        community: field(row, 5),
        building: field(row, 6),
        unit: field(row, 7),
        room: field(row, 8),
    };
    let reason = field(row, 9).filter(|r| !r.trim().is_empty());
    if let Some(r) = &reason
        && let Err(e) = crate::ledger::check_text("reason", r, 200)
    {
        row.fail(9, r, e);
    }
    let profile = match profile.normalized() {
        Ok(p) => Some(p),
        Err((column, problem)) => {
            let c = PROFILES.iter().position(|c| c.name == column).unwrap_or(0);
            row.fail(c, "", problem);
            None
        }
    };
    if let (Some(customer_id), Some(valid_from), Some(profile)) = (customer_id, valid_from, profile)
        && row.errors.is_empty()
    {
        return Some(ProfileRow {
            row: line,
            customer_id,
            valid_from,
            profile,
            reason,
        });
    }
    None
}

fn empty(kind: ImportKind) -> ImportRows {
    match kind {
        ImportKind::Customers => ImportRows::Customers(Vec::new()),
        ImportKind::Readings => ImportRows::Readings(Vec::new()),
        ImportKind::Temperatures => ImportRows::Temperatures(Vec::new()),
        ImportKind::Payments => ImportRows::Payments(Vec::new()),
        ImportKind::Balances => ImportRows::Balances(Vec::new()),
        ImportKind::Profiles => ImportRows::Profiles(Vec::new()),
    }
}

/// The local day and hour of an hourly reading's time: `YYYY-MM-DDTHH:00[:00]` (or a space for
/// the `T`); minutes and seconds must be zero.
fn parse_hour(s: &str) -> Option<(NaiveDate, u8)> {
    let t = [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    (t.minute() == 0 && t.second() == 0).then(|| (t.date(), t.hour() as u8))
}

/// The parsing half of an import, without a store: the typed rows and row errors of a CSV
/// text (tests and `--check`).
pub fn parse_only(
    kind: ImportKind,
    text: &str,
    settings: &ImportSettings,
) -> Result<(Vec<ImportRows>, Vec<RowError>, u64), ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(usize::MAX >> 4);
    let parsed = parse(kind, text.as_bytes(), settings, "input", tx)?;
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    Ok((chunks, parsed.errors, parsed.error_count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ImportSettings {
        ImportSettings {
            chunk_rows: 2,
            ..Default::default()
        }
    }

    #[test]
    fn customers_are_typed_and_bad_rows_named() {
        let text = "customer_id,class,building_area,usable_area,status,metered,tags,attributes,valid_from\n\
                    C1,residential,60.00,48.00,active,false,a;b,floor=3;entrance=2,2025-10-01\n\
                    C2,villa,60,,,,,,\n\
                    C3,residential,6e1,,paused,maybe,,,2025-13-01\n\
                    C4,non-residential,100,,suspended,1,,,\n";
        let (chunks, errors, count) = parse_only(ImportKind::Customers, text, &settings()).unwrap();
        let rows: Vec<_> = chunks
            .into_iter()
            .flat_map(|c| match c {
                ImportRows::Customers(v) => v,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].state.tags, ["a", "b"]);
        assert_eq!(
            rows[0].state.attributes,
            [
                ("entrance".into(), "2".into()),
                ("floor".into(), "3".into())
            ]
        );
        assert_eq!(rows[1].state.valid_from, BEGINNING);
        assert_eq!(count, 5);
        let named: Vec<(u64, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
        assert_eq!(
            named,
            [
                (3, "class"),
                (4, "valid_from"),
                (4, "status"),
                (4, "metered"),
                (4, "building_area")
            ]
        );
    }

    #[test]
    fn header_problems_fail_the_file() {
        let e = parse_only(ImportKind::Customers, "customer_id,clas\n", &settings())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown column \"clas\""), "{e}");
        let e = parse_only(ImportKind::Temperatures, "customer_id,date\n", &settings())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no \"celsius\" column"), "{e}");
    }

    #[test]
    fn hourly_readings_and_escaped_values() {
        let text = "customer_id,time,heat_gj\nC1,2026-01-15T13:00,0.05\nC1,2026-01-15T13:30,0.05\nC\u{1b}[2J,2026-01-15 14:00,0.01\n";
        let (chunks, errors, _) = parse_only(ImportKind::Readings, text, &settings()).unwrap();
        match &chunks[0] {
            ImportRows::Readings(v) => assert_eq!(v[0].hour, Some(13)),
            _ => unreachable!(),
        }
        assert_eq!(errors[0].row, 3);
        assert_eq!(errors[1].row, 4);
        assert!(!errors[1].value.contains('\u{1b}'), "{:?}", errors[1]);
    }

    /// A reading in kWh or MWh is stored in GJ, exactly; one row gives one unit.
    #[test]
    fn readings_in_kwh_and_mwh_become_gj_exactly() {
        let text = "customer_id,date,heat_gj,heat_kwh,heat_mwh\nC1,2026-01-15,,120,\nC2,2026-01-15,,,0.12\nC3,2026-01-15,1.2,,\nC4,2026-01-15,1,120,\nC5,2026-01-15,,,\nC6,2026-01-15,,0.0001,\n";
        let (chunks, errors, _) = parse_only(ImportKind::Readings, text, &settings()).unwrap();
        let got: Vec<String> = chunks
            .iter()
            .flat_map(|c| match c {
                ImportRows::Readings(v) => v.iter().map(|r| r.heat_gj.to_string()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, ["0.432", "0.432", "1.2"]);
        let rows: Vec<(u64, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
        assert_eq!(
            rows,
            [(5, "heat_kwh"), (6, "heat_gj"), (7, "heat_kwh")],
            "{errors:?}"
        );
        assert!(errors[0].problem.contains("one unit only"), "{errors:?}");
        let e = parse_only(ImportKind::Readings, "customer_id,date\n", &settings())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("heat_kwh"), "{e}");
    }

    #[test]
    fn an_endless_row_fails_the_file() {
        let text = format!(
            "customer_id,date,celsius\nC1,2026-01-01,{}\n",
            "1".repeat(300_000)
        );
        let e = parse_only(ImportKind::Temperatures, &text, &settings())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("longer than"), "{e}");
    }
}
