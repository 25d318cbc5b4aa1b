//! What the three parsers share: a CSV reader over decoded text, columns found by header name,
//! and the per-row checks (field count, field size, duplicates).

use std::collections::HashMap;

use csv::StringRecord;

use crate::error::{Errors, RowError};
use crate::{Limits, StatementError, text::escape};

/// A CSV reader over decoded text that knows each record's line. The csv crate's own record
/// positions point at the end of the previous record (before its line break, any blank lines
/// and any comment lines), and count a `\r\n` as no line at all, so the line is computed here
/// from the byte where the record really starts. Row lengths are not checked by the reader
/// (they are checked by [`Header::check_row`], with a message).
pub(crate) struct Reader<'a> {
    csv: csv::Reader<&'a [u8]>,
    text: &'a [u8],
    comments: bool,
    /// Where `line` was counted up to.
    at: usize,
    line: u64,
}

impl<'a> Reader<'a> {
    /// A reader of `text`, whose first line is line `first_line` of the file; `comments`: lines
    /// starting with `#` are skipped.
    pub(crate) fn new(text: &'a str, comments: bool, first_line: u64) -> Reader<'a> {
        Reader {
            csv: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .comment(if comments { Some(b'#') } else { None })
                .from_reader(text.as_bytes()),
            text: text.as_bytes(),
            comments,
            at: 0,
            line: first_line,
        }
    }

    /// The file's line at byte `b` of the text, where a record was reported to start.
    fn line_at(&mut self, reported: usize) -> u64 {
        let text = self.text;
        let mut b = reported.max(self.at).min(text.len());
        loop {
            while b < text.len() && matches!(text[b], b'\r' | b'\n') {
                b += 1;
            }
            if self.comments && b < text.len() && text[b] == b'#' {
                b = text[b..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(text.len(), |n| b + n + 1);
                continue;
            }
            break;
        }
        self.line += text[self.at..b].iter().filter(|&&c| c == b'\n').count() as u64;
        self.at = b;
        self.line
    }

    /// The next record and the line it starts on; `None` at the end. The reader reads `&str`
    /// bytes, so its only errors are structural; they are reported with their line.
    pub(crate) fn next(
        &mut self,
        record: &mut StringRecord,
    ) -> Result<Option<u64>, StatementError> {
        match self.csv.read_record(record) {
            Ok(true) => {
                let reported = record.position().map_or(0, |p| p.byte()) as usize;
                Ok(Some(self.line_at(reported)))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                let reported = e.position().map_or(0, |p| p.byte()) as usize;
                Err(StatementError::Structure {
                    line_no: self.line_at(reported),
                    problem: format!("the CSV cannot be read: {e}"),
                })
            }
        }
    }
}

/// A record with nothing in it (a blank line, or only separators).
pub(crate) fn is_blank(record: &StringRecord) -> bool {
    record.iter().all(|f| f.trim().is_empty())
}

/// One field of a row, as the checks see it: its position, its text, and its size in bytes (a
/// sheet's reader keeps only the start of an over-long cell, so the size is carried apart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub index: usize,
    pub text: &'a str,
    pub bytes: usize,
}

/// The fields of a CSV record.
pub(crate) fn fields(record: &StringRecord) -> impl Iterator<Item = Field<'_>> {
    record.iter().enumerate().map(|(index, text)| Field {
        index,
        text,
        bytes: text.len(),
    })
}

/// What [`Header::check_row`] adds to a CSV field's size error: the usual cause.
pub(crate) const CSV_LONG_FIELD: &str =
    " (an unclosed double quote runs a field on to the end of the file)";

/// A header: the columns by name.
#[derive(Debug)]
pub(crate) struct Header {
    pub line_no: u64,
    names: Vec<String>,
    index: HashMap<String, usize>,
    twice: Vec<String>,
    /// What file the header belongs to, for messages.
    expected: String,
}

impl Header {
    /// `clean` turns a raw header field into its name (trimming, a BOM, a backtick).
    pub(crate) fn new(
        record: &StringRecord,
        line_no: u64,
        clean: impl Fn(&str) -> &str,
        expected: &str,
    ) -> Header {
        Header::from_fields(record.iter(), line_no, clean, expected)
    }

    /// A header from its fields in column order (a CSV record's, or a sheet row's with its
    /// empty cells as empty fields).
    pub(crate) fn from_fields<'r>(
        fields: impl Iterator<Item = &'r str>,
        line_no: u64,
        clean: impl Fn(&str) -> &str,
        expected: &str,
    ) -> Header {
        let names: Vec<String> = fields.map(|f| clean(f).to_string()).collect();
        let mut index = HashMap::new();
        let mut twice = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if index.contains_key(name) {
                twice.push(name.clone());
            } else {
                index.insert(name.clone(), i);
            }
        }
        Header {
            line_no,
            names,
            index,
            twice,
            expected: expected.to_string(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The column `name`: missing or repeated is an error naming it.
    pub(crate) fn require(&self, name: &str) -> Result<usize, StatementError> {
        match self.optional(name)? {
            Some(i) => Ok(i),
            None => Err(self.missing(name)),
        }
    }

    /// The column `name` if the header has it; repeated is an error naming it.
    pub(crate) fn optional(&self, name: &str) -> Result<Option<usize>, StatementError> {
        if self.twice.iter().any(|t| t == name) {
            return Err(StatementError::DuplicateColumn {
                line_no: self.line_no,
                column: name.to_string(),
            });
        }
        Ok(self.index.get(name).copied())
    }

    pub(crate) fn missing(&self, name: &str) -> StatementError {
        const SHOWN: usize = 8;
        let mut found: Vec<String> = self
            .names
            .iter()
            .take(SHOWN)
            .map(|n| format!("\"{}\"", escape(n)))
            .collect();
        if self.names.len() > SHOWN {
            found.push(format!("… {} in all", self.names.len()));
        }
        StatementError::MissingColumn {
            line_no: self.line_no,
            column: name.to_string(),
            found: found.join(", "),
            expected: self.expected.clone(),
        }
    }

    pub(crate) fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", String::as_str)
    }

    /// A CSV row has as many fields as the header, and none longer than the limit or holding a
    /// control character.
    pub(crate) fn check_row(
        &self,
        record: &StringRecord,
        line_no: u64,
        limits: &Limits,
    ) -> Result<(), RowError> {
        self.check_width(record.len(), line_no)?;
        self.check_fields(fields(record), line_no, limits, CSV_LONG_FIELD)
    }

    /// A CSV row has as many fields as the header.
    pub(crate) fn check_width(&self, len: usize, line_no: u64) -> Result<(), RowError> {
        if len != self.len() {
            return Err(RowError::new(
                line_no,
                format!(
                    "the row has {len} fields but the header has {}: a field is missing or extra \
                     (a value with a comma must be in double quotes)",
                    self.len()
                ),
            ));
        }
        Ok(())
    }

    /// No field is longer than the limit or holds a control character; `long_hint` follows the
    /// size error (the usual cause, for the file's kind).
    pub(crate) fn check_fields<'f>(
        &self,
        fields: impl IntoIterator<Item = Field<'f>>,
        line_no: u64,
        limits: &Limits,
        long_hint: &str,
    ) -> Result<(), RowError> {
        for field in fields {
            if field.bytes > limits.max_field_bytes {
                return Err(RowError::at(
                    line_no,
                    self.name(field.index),
                    field.text,
                    format!(
                        "the field is {} bytes, over the limit of {}{long_hint}",
                        field.bytes, limits.max_field_bytes
                    ),
                ));
            }
            // Nothing a statement carries holds a control character (a tab, which Alipay pads
            // its identifiers with, is trimmed later); one is damage or an attack, and the
            // database would refuse a NUL.
            if field.text.chars().any(|c| c.is_control() && c != '\t') {
                return Err(RowError::at(
                    line_no,
                    self.name(field.index),
                    field.text,
                    "the field holds control characters: the file is damaged; download it again",
                ));
            }
        }
        Ok(())
    }
}

/// The rows taken so far, checked for the limits and for duplicate channel ids.
#[derive(Debug)]
pub(crate) struct Rows {
    pub lines: Vec<crate::StatementLine>,
    pub errors: Errors,
    seen: HashMap<String, u64>,
    count: u64,
    max_rows: u64,
}

impl Rows {
    pub(crate) fn new(limits: &Limits) -> Rows {
        Rows {
            lines: Vec::new(),
            errors: Errors::new(limits.max_errors),
            seen: HashMap::new(),
            count: 0,
            max_rows: limits.max_rows,
        }
    }

    /// Counts a detail row (taken or not) against the row limit.
    pub(crate) fn count(&mut self, line_no: u64) -> Result<(), StatementError> {
        self.count += 1;
        if self.count > self.max_rows {
            return Err(StatementError::TooManyRows {
                line_no,
                limit: self.max_rows,
            });
        }
        Ok(())
    }

    /// Takes a row's result: a line (refused if its channel id was seen before) or its error.
    pub(crate) fn take(&mut self, row: Result<crate::StatementLine, RowError>, txn_column: &str) {
        match row {
            Ok(line) => {
                if let Some(first) = self.seen.get(&line.channel_txn) {
                    self.errors.push(RowError::at(
                        line.line_no,
                        txn_column,
                        &line.channel_txn,
                        format!(
                            "the same transaction is already on line {first}: a statement lists \
                             each transaction once; the file was edited or joined from two"
                        ),
                    ));
                    self.lines = Vec::new();
                } else {
                    self.seen.insert(line.channel_txn.clone(), line.line_no);
                    // Lines are only kept while the file is clean: a file with errors is
                    // refused whole, so there is no point holding its lines.
                    if self.errors.is_empty() {
                        self.lines.push(line);
                    }
                }
            }
            Err(e) => {
                self.errors.push(e);
                self.lines = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, comments: bool, first: u64) -> Vec<(u64, String)> {
        let mut reader = Reader::new(text, comments, first);
        let mut record = StringRecord::new();
        let mut out = Vec::new();
        while let Some(line) = reader.next(&mut record).unwrap() {
            out.push((line, record.get(0).unwrap_or("").to_string()));
        }
        out
    }

    #[test]
    fn records_know_their_lines() {
        let want = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
            v.iter().map(|(l, s)| (*l, s.to_string())).collect()
        };
        assert_eq!(
            lines("a,b\r\nc,d\r\n\r\ne,f\r\n", false, 1),
            want(&[(1, "a"), (2, "c"), (4, "e")])
        );
        assert_eq!(
            lines("#x\na,b\n#y\nc,d\n\ne,f", true, 1),
            want(&[(2, "a"), (4, "c"), (6, "e")])
        );
        // A quoted field over two lines: the next record starts two lines on.
        assert_eq!(
            lines("\"a\nb\",1\nc,2\n", false, 3),
            want(&[(3, "a\nb"), (5, "c")])
        );
    }
}
