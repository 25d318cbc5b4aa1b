//! What went wrong with a statement file, said so that a person can fix it.

use std::fmt;

use serde::Serialize;

/// One row that cannot be taken, as an import report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The line of the file the row starts on (1-based).
    pub line_no: u64,
    /// The column, by its header name, when one is at fault.
    pub column: Option<String>,
    /// The offending value, escaped (control characters as `\u{..}`) and cut at 40 characters.
    pub value: Option<String>,
    /// What is wrong and what is expected.
    pub problem: String,
}

impl RowError {
    pub(crate) fn new(line_no: u64, problem: impl Into<String>) -> RowError {
        RowError {
            line_no,
            column: None,
            value: None,
            problem: problem.into(),
        }
    }

    pub(crate) fn at(
        line_no: u64,
        column: &str,
        value: &str,
        problem: impl Into<String>,
    ) -> RowError {
        RowError {
            line_no,
            column: Some(column.to_string()),
            value: Some(crate::text::escape(value)),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line_no)?;
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(value) = &self.value {
            write!(f, ", value \"{value}\"")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// A figure of a file's own totals that its rows do not add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryMismatch {
    /// The figure, by the file's name for it (e.g. `应结订单总金额`).
    pub field: String,
    /// What the file states.
    pub stated: String,
    /// What its rows add up to.
    pub computed: String,
}

/// Why a statement file was refused. Every message names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// The file is larger than [`crate::Limits::max_bytes`].
    #[error(
        "the file is {size} bytes, over the limit of {limit} bytes: upload one day's statement \
         at a time, or raise the limit"
    )]
    TooLarge {
        /// Its size (or the bytes read before stopping).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading the caller's reader failed.
    #[error("the file could not be read: {detail}")]
    Read {
        /// The reader's error.
        detail: String,
    },
    /// The file is empty (or has nothing but blank and comment lines).
    #[error("the file is empty: {expected}")]
    Empty {
        /// What was expected instead.
        expected: String,
    },
    /// The bytes are not valid in the file's encoding.
    #[error(
        "line {line_no}: the file is not valid {expected} (bytes {bytes} at offset {offset}): {hint}"
    )]
    Encoding {
        /// The encoding the file must be in.
        expected: &'static str,
        /// The line of the first invalid byte.
        line_no: u64,
        /// Its byte offset in the file.
        offset: u64,
        /// The invalid bytes, in hex.
        bytes: String,
        /// What probably happened and what to do.
        hint: String,
    },
    /// The header lacks a column the parser needs.
    #[error("line {line_no}: the header has no column \"{column}\" (it has: {found}); {expected}")]
    MissingColumn {
        /// The header's line.
        line_no: u64,
        /// The missing column's name.
        column: String,
        /// The header's first columns, escaped.
        found: String,
        /// What file was expected.
        expected: String,
    },
    /// A column the parser needs appears twice in the header.
    #[error(
        "line {line_no}: the header has the column \"{column}\" twice: which one to read is unclear"
    )]
    DuplicateColumn {
        /// The header's line.
        line_no: u64,
        /// The column.
        column: String,
    },
    /// More detail rows than [`crate::Limits::max_rows`].
    #[error(
        "line {line_no}: the file has more than {limit} rows: upload one day's statement at a time, \
         or raise the limit"
    )]
    TooManyRows {
        /// The line where the limit was passed.
        line_no: u64,
        /// The limit.
        limit: u64,
    },
    /// The file's layout is wrong (a summary missing or out of place, text after the end).
    #[error("line {line_no}: {problem}")]
    Structure {
        /// Where.
        line_no: u64,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The ZIP cannot be read.
    #[error(
        "the ZIP cannot be read ({detail}): it is damaged or cut short; download the statement \
         again"
    )]
    Zip {
        /// The reader's error.
        detail: String,
    },
    /// The ZIP has more entries than [`crate::Limits::max_zip_entries`] (an Alipay statement)
    /// or [`crate::Limits::max_xlsx_entries`] (an XLSX workbook).
    #[error(
        "the ZIP has {count} entries, over the limit of {limit}: an Alipay statement has a few, \
         an .xlsx workbook a few dozen at most; is this the right file?"
    )]
    TooManyEntries {
        /// Its entries.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A ZIP entry inflates to more than [`crate::Limits::max_uncompressed_bytes`].
    #[error(
        "the ZIP entry \"{name}\" {how} more than {limit} bytes uncompressed: refused (a \
         statement this large is not a day's statement)"
    )]
    ZipBomb {
        /// The entry, escaped.
        name: String,
        /// `declares` (its header says so) or `inflates to` (found while reading).
        how: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The ZIP has no (or more than one) detail file.
    #[error("{problem} (the ZIP holds: {names})")]
    DetailFile {
        /// What is wrong.
        problem: String,
        /// The entries' names, escaped.
        names: String,
    },
    /// The file's own totals do not match its rows: the file is refused whole.
    #[error("line {line_no}: the file's totals do not match its rows ({}): the file is damaged or was edited; download it again", list_mismatches(.mismatches))]
    Summary {
        /// The line of the totals.
        line_no: u64,
        /// Each figure that differs.
        mismatches: Vec<SummaryMismatch>,
    },
    /// Rows that cannot be taken; nothing of the file is taken.
    #[error("{}", list_rows(*.total, .errors))]
    Rows {
        /// The first [`crate::Limits::max_errors`] of them, in file order.
        errors: Vec<RowError>,
        /// How many rows are wrong in all.
        total: u64,
    },
    /// An XLSX workbook that cannot be read: a part missing, XML that is not well-formed, a
    /// cell that points outside the sheet or at a shared string the workbook does not have.
    #[error(
        "the workbook cannot be read: {part}: {problem}; if the file opens in a spreadsheet, save \
         it there again as .xlsx, or as CSV"
    )]
    Workbook {
        /// The part (the ZIP entry) at fault, e.g. `xl/worksheets/sheet1.xml`.
        part: String,
        /// What is wrong, with the row or the byte where it is.
        problem: String,
    },
    /// A legacy Excel 97-2003 workbook (OLE2 compound file), which is not read.
    #[error(
        "an .xls (Excel 97) file: save it as .xlsx or CSV (a password-protected .xlsx looks the \
         same: save it without the password)"
    )]
    LegacyXls,
    /// A bank profile that cannot be used.
    #[error("the bank profile \"{name}\" cannot be used: {problem}")]
    Profile {
        /// The profile's name.
        name: String,
        /// What to fix in it.
        problem: String,
    },
}

impl StatementError {
    /// The row errors, if this is [`StatementError::Rows`] (else none).
    pub fn row_errors(&self) -> &[RowError] {
        match self {
            StatementError::Rows { errors, .. } => errors,
            _ => &[],
        }
    }
}

fn list_mismatches(mismatches: &[SummaryMismatch]) -> String {
    mismatches
        .iter()
        .map(|m| {
            format!(
                "{} states {} but the rows add up to {}",
                m.field, m.stated, m.computed
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn list_rows(total: u64, errors: &[RowError]) -> String {
    let mut out = format!(
        "{total} row{} cannot be taken; nothing of the file was taken: fix {} and upload it again",
        if total == 1 { "" } else { "s" },
        if total == 1 { "it" } else { "them" },
    );
    if (errors.len() as u64) < total {
        out.push_str(&format!(" (the first {} are listed)", errors.len()));
    }
    for e in errors {
        out.push_str("\n  ");
        out.push_str(&e.to_string());
    }
    out
}

/// Collects row errors up to a cap, counting the rest.
#[derive(Debug)]
pub(crate) struct Errors {
    list: Vec<RowError>,
    total: u64,
    max: usize,
}

impl Errors {
    pub(crate) fn new(max: usize) -> Errors {
        Errors {
            list: Vec::new(),
            total: 0,
            max,
        }
    }

    pub(crate) fn push(&mut self, e: RowError) {
        self.total += 1;
        if self.list.len() < self.max {
            self.list.push(e);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub(crate) fn into_result(self) -> Result<(), StatementError> {
        if self.total == 0 {
            Ok(())
        } else {
            Err(StatementError::Rows {
                errors: self.list,
                total: self.total,
            })
        }
    }
}
