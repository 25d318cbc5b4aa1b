//! XLSX workbooks (Office Open XML spreadsheets) read as hostile input: the first worksheet,
//! row by row, as the cells' text.
//!
//! An `.xlsx` is a ZIP of XML parts. [`Workbook::open`] reads, through one budget of
//! [`Limits::max_uncompressed_bytes`] for all of them together:
//!
//! - `xl/workbook.xml`: the sheets in workbook order (the first `<sheet>` whose relationship is a
//!   worksheet, not a chart, is read; a hidden one is refused: what is read is what a person
//!   opening the file sees first) and the date system (`date1904`);
//! - `xl/_rels/workbook.xml.rels`: where that sheet's part is (without it, or without the
//!   workbook, `xl/worksheets/sheet1.xml`) and where the shared strings are (else
//!   `xl/sharedStrings.xml`, if present);
//! - the shared strings: the text of `<si>` items, rich text runs (`<r><t>`) joined, phonetic
//!   runs (`<rPh>`) left out; at most [`max_shared_strings`] of them, stored in one buffer;
//! - the sheet, scanned row by row ([`SheetRows`]), never built as a grid.
//!
//! Cells keep their positions by their reference (`r="C5"`; a cell or a row without one follows
//! the previous), so an empty cell or row is simply absent, as in the file. References beyond
//! column XFD (16,384) or row 1,048,576, or out of order, are refused. A cell's text is: the
//! shared string (`t="s"`), the inline string (`t="inlineStr"`), the formula's cached result
//! (`t="str"`, and `<v>` of any formula; the formula itself is never read or run), `TRUE` or
//! `FALSE` (`t="b"`), the error (`t="e"`, e.g. `#N/A`), or the number as written in `<v>` (no
//! `t`), marked as a number so that the reader of amounts and dates knows it is Excel's float.
//! Entities are decoded (see [`crate::xml::decode`]) and so is OOXML's `_xHHHH_` escape, which is
//! how Excel writes a control character in a string: the checks then see and refuse it.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

use crate::archive::{Archive, Budget};
use crate::xml::{self, Event, Scanner, local};
use crate::{Limits, StatementError};

/// A sheet's last column, XFD.
pub(crate) const MAX_COLUMNS: usize = 16_384;
/// A sheet's last row.
pub(crate) const MAX_ROWS: u64 = 1_048_576;
/// Shared strings allowed per row of [`Limits::max_rows`]: a shared string is a text cell, and
/// no bank's statement has this many text columns. The table is also bounded by the bytes of its
/// part; this bounds the index kept beside the text (8 bytes a string).
const SHARED_STRINGS_PER_ROW: u64 = 32;
/// Of a cell longer than [`Limits::max_field_bytes`], the bytes kept for the message (which
/// shows 40 characters); its size is kept beside it.
const KEPT_OF_LONG_CELL: usize = 256;

const WORKBOOK: &str = "xl/workbook.xml";
const WORKBOOK_RELS: &str = "xl/_rels/workbook.xml.rels";
const FIRST_SHEET: &str = "xl/worksheets/sheet1.xml";
const SHARED_STRINGS: &str = "xl/sharedStrings.xml";

/// The most shared strings a workbook may have under `limits`.
pub(crate) fn max_shared_strings(limits: &Limits) -> u64 {
    limits
        .max_rows
        .saturating_mul(SHARED_STRINGS_PER_ROW)
        .max(4096)
}

/// A column's letters: 0 is `A`, 26 is `AA`, 16,383 is `XFD`.
pub(crate) fn column_name(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// A cell reference (`C5`): its column (0-based) and row, or why it is refused.
fn cell_ref(r: &str) -> Result<(usize, u64), String> {
    let bad = || {
        format!(
            "the cell reference \"{}\" is not a column's letters and a row's number, like C5",
            crate::text::escape(r)
        )
    };
    let letters = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (col_part, row_part) = r.split_at(letters);
    if letters == 0 || row_part.is_empty() || !row_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut col: usize = 0;
    for b in col_part.bytes() {
        col = col * 26 + usize::from(b.to_ascii_uppercase() - b'A' + 1);
        if col > MAX_COLUMNS {
            return Err(format!(
                "the cell reference \"{}\" is beyond column XFD, the last a sheet has: the file is \
                 damaged or was built to hurt",
                crate::text::escape(r)
            ));
        }
    }
    let row = row_number(row_part).map_err(|p| format!("the cell reference \"{r}\": {p}"))?;
    Ok((col - 1, row))
}

/// A row number (`r` of a row, or a cell reference's digits): 1 to 1,048,576.
fn row_number(digits: &str) -> Result<u64, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "\"{}\" is not a row number",
            crate::text::escape(digits)
        ));
    }
    match digits.parse::<u64>() {
        Ok(n) if (1..=MAX_ROWS).contains(&n) => Ok(n),
        _ => Err(format!(
            "row {} is row 0 or beyond row 1,048,576, the last a sheet has: the file is damaged \
             or was built to hurt",
            crate::text::escape(digits)
        )),
    }
}

/// OOXML's escape of characters XML cannot hold, `_xHHHH_` (`_x0001_` is U+0001; `_x005F_` is
/// `_`, which is how a literal `_x0001_` is written: `_x005F_x0001_`), decoded left to right.
fn unescape_ooxml(s: &str) -> Cow<'_, str> {
    if !s.contains("_x") {
        return Cow::Borrowed(s);
    }
    let hex4 = |t: &str| -> Option<u32> {
        let h = t.get(2..6)?;
        if t.as_bytes().get(6) != Some(&b'_') || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("_x") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match hex4(rest) {
            Some(hi @ 0xD800..=0xDBFF) => {
                // A surrogate pair, as two escapes.
                let lo = hex4(&rest[7..]).filter(|lo| (0xDC00..=0xDFFF).contains(lo));
                match lo
                    .and_then(|lo| char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)))
                {
                    Some(c) => {
                        out.push(c);
                        rest = &rest[14..];
                    }
                    None => {
                        out.push_str(&rest[..7]);
                        rest = &rest[7..];
                    }
                }
            }
            Some(code) => {
                match char::from_u32(code) {
                    Some(c) => out.push(c),
                    None => out.push_str(&rest[..7]),
                }
                rest = &rest[7..];
            }
            None => {
                out.push_str("_x");
                rest = &rest[2..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Which day a serial date counts from (`<workbookPr date1904="1"/>`: old Mac workbooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateSystem {
    /// Serial 1 is 1900-01-01, and 60 the 1900-02-29 that did not exist (Lotus 1-2-3's bug, kept
    /// by Excel): 61 is 1900-03-01.
    Excel1900,
    /// Serial 0 is 1904-01-01.
    Excel1904,
}

/// A number as a spreadsheet writes it in `<v>`: digits, a point, an exponent. Dates are not
/// money: the serial is a float by Excel's own definition, and a second is far coarser than its
/// precision, so `f64` is exact enough here (amounts never go through this).
fn sheet_float(v: &str) -> Option<f64> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 40
        && v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    v.parse::<f64>().ok().filter(|x| ok && x.is_finite())
}

/// A number cell of the date column as a date and time, when it is a serial date (1900 or
/// 1904 system; the fraction is the time of day, to the second). `Ok(None)` when it is not a
/// serial (not a number, or out of the range of dates up to 9999-12-31, such as `20261201`,
/// a date written as digits, which the profile's format then reads); an error for Excel's
/// 1900-02-29.
pub(crate) fn serial_datetime(
    v: &str,
    system: DateSystem,
) -> Result<Option<NaiveDateTime>, String> {
    let Some(x) = sheet_float(v) else {
        return Ok(None);
    };
    let (first, last) = match system {
        DateSystem::Excel1900 => (1.0, 2_958_466.0),
        DateSystem::Excel1904 => (0.0, 2_957_004.0),
    };
    if !(first..last).contains(&x) {
        return Ok(None);
    }
    let mut days = x.floor() as i64;
    let mut seconds = ((x - x.floor()) * 86_400.0).round() as i64;
    if seconds >= 86_400 {
        days += 1;
        seconds = 0;
    }
    let base = match system {
        DateSystem::Excel1900 if days == 60 => {
            return Err(format!(
                "the serial date {v} is 1900-02-29, a day that did not exist (a bug Excel keeps \
                 from Lotus 1-2-3): the cell is not a real date"
            ));
        }
        DateSystem::Excel1900 if days < 60 => NaiveDate::from_ymd_opt(1899, 12, 31),
        DateSystem::Excel1900 => NaiveDate::from_ymd_opt(1899, 12, 30),
        DateSystem::Excel1904 => NaiveDate::from_ymd_opt(1904, 1, 1),
    };
    Ok(base
        .and_then(|b| b.checked_add_signed(Duration::days(days)))
        .map(|d| d.and_time(NaiveTime::MIN) + Duration::seconds(seconds)))
}

/// A number cell of a time column as a time of day, when it is one (0 ≤ x < 1: Excel's time is a
/// fraction of a day), to the second.
pub(crate) fn serial_time(v: &str) -> Option<NaiveTime> {
    let x = sheet_float(v).filter(|x| (0.0..1.0).contains(x))?;
    let seconds = ((x * 86_400.0).round() as u32).min(86_399);
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)
}

/// The shared string table: the strings one after the other in one buffer, and where each ends.
#[derive(Debug, Default)]
struct SharedStrings {
    text: String,
    ends: Vec<usize>,
}

impl SharedStrings {
    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// A part as text: the workbook's XML is UTF-8 (Excel never writes the UTF-16 XML allows).
fn part_text(part: &str, bytes: Vec<u8>) -> Result<String, StatementError> {
    String::from_utf8(bytes).map_err(|e| StatementError::Workbook {
        part: part.to_string(),
        problem: format!(
            "the XML is not UTF-8 (byte {} is not)",
            e.utf8_error().valid_up_to()
        ),
    })
}

fn xml_error(part: &str, e: xml::XmlError) -> StatementError {
    StatementError::Workbook {
        part: part.to_string(),
        problem: e.to_string(),
    }
}

/// An attribute's value with its entities decoded.
fn attr_value(part: &str, at: usize, raw: &str) -> Result<String, StatementError> {
    let mut out = String::new();
    xml::decode(raw, &mut out).map_err(|problem| {
        xml_error(
            part,
            xml::XmlError {
                offset: at,
                problem,
            },
        )
    })?;
    Ok(out)
}

/// A relationship of the workbook: its type and target part.
struct Relationship {
    kind: String,
    target: String,
    external: bool,
}

/// `target` of a relationship of `xl/workbook.xml` as a part name: relative to `xl/`, or
/// absolute from the package's root; `..` cannot climb above it.
fn resolve(target: &str) -> Option<String> {
    let (mut parts, path): (Vec<&str>, &str) = match target.strip_prefix('/') {
        Some(absolute) => (Vec::new(), absolute),
        None => (vec!["xl"], target),
    };
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// The first worksheet of a workbook, with what is needed to read its cells.
#[derive(Debug)]
pub(crate) struct Workbook {
    /// The sheet's part, for messages.
    sheet_part: String,
    sheet_xml: String,
    strings: SharedStrings,
    /// The workbook's date system.
    pub dates: DateSystem,
}

/// The sheets `xl/workbook.xml` lists, in order: name, state, relationship id.
type SheetList = Vec<(String, String, String)>;

impl Workbook {
    /// Opens the workbook in `bytes` (a ZIP) and reads its first worksheet's part and the
    /// shared strings, within `limits`.
    pub(crate) fn open(bytes: &[u8], limits: &Limits) -> Result<Workbook, StatementError> {
        let mut archive = Archive::open(bytes, limits.max_xlsx_entries)?;
        // Part names are case-insensitive (OPC); two entries that differ only by case, or not
        // at all, are a ZIP built to show different readers different sheets.
        let twice = |name: &str| StatementError::Zip {
            detail: format!(
                "two entries are named \"{}\": a workbook names each part once",
                crate::text::escape(name)
            ),
        };
        if archive.has_duplicate_names() {
            return Err(StatementError::Zip {
                detail: "two entries have the same name: a workbook names each part once"
                    .to_string(),
            });
        }
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, (name, dir)) in archive.entries().iter().enumerate() {
            if *dir {
                continue;
            }
            let key = name.trim_start_matches('/').to_ascii_lowercase();
            if index.insert(key, i).is_some() {
                return Err(twice(name));
            }
        }
        let find = |name: &str| index.get(&name.to_ascii_lowercase()).copied();
        let listed = archive.listed();
        let missing = |part: &str, what: &str| StatementError::Workbook {
            part: part.to_string(),
            problem: format!("the ZIP has no such part, so {what} (the ZIP holds: {listed})"),
        };
        if find(WORKBOOK).is_none() && find("content.xml").is_some() && find("mimetype").is_some() {
            return Err(StatementError::Workbook {
                part: "mimetype".to_string(),
                problem: "this is an OpenDocument spreadsheet (.ods), not an .xlsx: save it as \
                          .xlsx or CSV"
                    .to_string(),
            });
        }
        let mut budget = Budget::new(limits.max_uncompressed_bytes);

        let mut dates = DateSystem::Excel1900;
        let mut sheets: Option<SheetList> = None;
        if let Some(i) = find(WORKBOOK) {
            let xml = part_text(WORKBOOK, archive.read(i, &mut budget)?)?;
            let (list, system) = read_workbook(&xml)?;
            sheets = Some(list);
            dates = system;
        }
        let mut rels: Option<HashMap<String, Relationship>> = None;
        if let Some(i) = find(WORKBOOK_RELS) {
            let xml = part_text(WORKBOOK_RELS, archive.read(i, &mut budget)?)?;
            rels = Some(read_rels(&xml)?);
        }

        let sheet_part = match (&sheets, &rels) {
            (Some(sheets), Some(rels)) => first_worksheet(sheets, rels)?,
            _ => FIRST_SHEET.to_string(),
        };
        let Some(sheet_index) = find(&sheet_part) else {
            return Err(missing(&sheet_part, "no worksheet to read"));
        };

        let strings_part = rels
            .as_ref()
            .and_then(|rels| {
                rels.values()
                    .find(|r| !r.external && r.kind.ends_with("/sharedStrings"))
                    .and_then(|r| resolve(&r.target))
            })
            .unwrap_or_else(|| SHARED_STRINGS.to_string());
        let strings = match find(&strings_part) {
            Some(i) => {
                let xml = part_text(&strings_part, archive.read(i, &mut budget)?)?;
                read_shared_strings(&strings_part, &xml, max_shared_strings(limits))?
            }
            None => SharedStrings::default(),
        };
        let sheet_xml = part_text(&sheet_part, archive.read(sheet_index, &mut budget)?)?;
        Ok(Workbook {
            sheet_part,
            sheet_xml,
            strings,
            dates,
        })
    }

    /// The sheet's rows after row `skip` (rows 1 to `skip` are read, for their structure, but
    /// not kept); cells longer than `max_field_bytes` are kept cut, with their size.
    pub(crate) fn rows(&self, skip: u64, max_field_bytes: usize) -> SheetRows<'_> {
        SheetRows {
            part: &self.sheet_part,
            scanner: Scanner::new(&self.sheet_xml),
            strings: &self.strings,
            skip,
            max_field_bytes,
            width: MAX_COLUMNS,
            row: SheetRow::default(),
            row_no: 0,
            last_col: None,
            cell: None,
            v_text: String::new(),
            t_text: String::new(),
        }
    }
}

/// `xl/workbook.xml`: the sheets in order and the date system.
fn read_workbook(xml: &str) -> Result<(SheetList, DateSystem), StatementError> {
    let mut scanner = Scanner::new(xml);
    let mut sheets = Vec::new();
    let mut dates = DateSystem::Excel1900;
    let err = |e| xml_error(WORKBOOK, e);
    while let Some(event) = scanner.next().map_err(err)? {
        let Event::Start { name, attrs } = event else {
            continue;
        };
        let at = scanner.offset();
        let value = |raw: Option<&str>| attr_value(WORKBOOK, at, raw.unwrap_or(""));
        let in_sheets = ends_with(scanner.path(), &["sheets", "sheet"]);
        match local(name) {
            "workbookPr" => {
                if matches!(value(attrs.get("date1904"))?.as_str(), "1" | "true") {
                    dates = DateSystem::Excel1904;
                }
            }
            "sheet" if in_sheets => sheets.push((
                value(attrs.get("name"))?,
                value(attrs.get("state"))?,
                value(attrs.get("id"))?,
            )),
            _ => {}
        }
    }
    Ok((sheets, dates))
}

/// `xl/_rels/workbook.xml.rels`: the relationships by id.
fn read_rels(xml: &str) -> Result<HashMap<String, Relationship>, StatementError> {
    let mut scanner = Scanner::new(xml);
    let mut rels = HashMap::new();
    while let Some(event) = scanner.next().map_err(|e| xml_error(WORKBOOK_RELS, e))? {
        let Event::Start { name, attrs } = event else {
            continue;
        };
        if local(name) != "Relationship" {
            continue;
        }
        let at = scanner.offset();
        let value = |raw: Option<&str>| attr_value(WORKBOOK_RELS, at, raw.unwrap_or(""));
        rels.insert(
            value(attrs.get("Id"))?,
            Relationship {
                kind: value(attrs.get("Type"))?,
                target: value(attrs.get("Target"))?,
                external: value(attrs.get("TargetMode"))? == "External",
            },
        );
    }
    Ok(rels)
}

/// The part of the first sheet in workbook order that is a worksheet (charts and dialogs are
/// passed over); refused if it is hidden.
fn first_worksheet(
    sheets: &SheetList,
    rels: &HashMap<String, Relationship>,
) -> Result<String, StatementError> {
    let bad = |problem: String| StatementError::Workbook {
        part: WORKBOOK.to_string(),
        problem,
    };
    for (name, state, id) in sheets {
        let shown = crate::text::escape(name);
        let Some(rel) = rels.get(id) else {
            return Err(bad(format!(
                "the sheet \"{shown}\" points at the relationship \"{}\", which {WORKBOOK_RELS} \
                 does not have",
                crate::text::escape(id)
            )));
        };
        if !rel.kind.ends_with("/worksheet") {
            continue;
        }
        if state == "hidden" || state == "veryHidden" {
            return Err(bad(format!(
                "the first worksheet, \"{shown}\", is hidden: the statement read must be the sheet \
                 a person sees first; unhide it, or delete it if it is not the statement"
            )));
        }
        return match resolve(&rel.target).filter(|_| !rel.external) {
            Some(part) => Ok(part),
            None => Err(bad(format!(
                "the sheet \"{shown}\" is at \"{}\", outside the workbook",
                crate::text::escape(&rel.target)
            ))),
        };
    }
    Err(bad(
        "the workbook lists no worksheet (only charts, or nothing)".to_string(),
    ))
}

/// Whether the open elements end with `tail` (local names).
fn ends_with(path: &[&str], tail: &[&str]) -> bool {
    path.len() >= tail.len()
        && path[path.len() - tail.len()..]
            .iter()
            .zip(tail)
            .all(|(p, t)| local(p) == *t)
}

/// The shared strings part: each `<si>`'s text (its `<t>`, or its runs' `<t>` joined; the
/// phonetic `<rPh>` left out), OOXML-unescaped.
fn read_shared_strings(part: &str, xml: &str, max: u64) -> Result<SharedStrings, StatementError> {
    let mut scanner = Scanner::new(xml);
    let mut table = SharedStrings::default();
    let mut item = String::new();
    let err = |e| xml_error(part, e);
    while let Some(event) = scanner.next().map_err(err)? {
        let path = scanner.path();
        // Only <sst><si><t> and <sst><si><r><t> hold the string's text.
        let in_text = path.len() >= 3
            && local(path[1]) == "si"
            && (ends_with(path, &["si", "t"]) && path.len() == 3
                || ends_with(path, &["si", "r", "t"]) && path.len() == 4);
        match event {
            Event::Start { name, .. } if path.len() == 2 && local(name) == "si" => item.clear(),
            Event::Text(raw) if in_text => {
                xml::decode(raw, &mut item).map_err(|problem| {
                    err(xml::XmlError {
                        offset: scanner.offset(),
                        problem,
                    })
                })?;
            }
            Event::CData(raw) if in_text => item.push_str(raw),
            Event::End { name } if path.len() == 1 && local(name) == "si" => {
                if table.len() as u64 >= max {
                    return Err(StatementError::Workbook {
                        part: part.to_string(),
                        problem: format!(
                            "more than {max} shared strings: more text than a statement of the \
                             row limit can hold"
                        ),
                    });
                }
                table.text.push_str(&unescape_ooxml(&item));
                table.ends.push(table.text.len());
            }
            _ => {}
        }
    }
    Ok(table)
}

/// One cell as the scanner is reading it.
#[derive(Debug)]
struct OpenCell<'a> {
    col: usize,
    /// Its `t`, as written (`n` when absent).
    kind: &'a str,
    /// Where `<c>` is in the path.
    depth: usize,
}

/// A sheet's row: the cells that hold text, in column order, their text in one buffer.
#[derive(Debug, Default)]
pub(crate) struct SheetRow {
    buf: String,
    cells: Vec<Cell>,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    col: usize,
    start: usize,
    end: usize,
    /// The text's size (more than kept when the cell is too long).
    bytes: usize,
    number: bool,
}

impl SheetRow {
    fn find(&self, col: usize) -> Option<&Cell> {
        self.cells
            .binary_search_by_key(&col, |c| c.col)
            .ok()
            .map(|i| &self.cells[i])
    }

    /// The text of the cell in column `col` (0-based), empty when there is none.
    pub(crate) fn get(&self, col: usize) -> &str {
        self.find(col).map_or("", |c| &self.buf[c.start..c.end])
    }

    /// Whether the cell in column `col` is a number (`<v>` of a cell without a type).
    pub(crate) fn is_number(&self, col: usize) -> bool {
        self.find(col).is_some_and(|c| c.number)
    }

    /// The cells: column, text (cut when too long), size in bytes.
    pub(crate) fn cells(&self) -> impl Iterator<Item = (usize, &str, usize)> {
        self.cells
            .iter()
            .map(|c| (c.col, &self.buf[c.start..c.end], c.bytes))
    }

    /// One past the last column with a cell.
    pub(crate) fn width(&self) -> usize {
        self.cells.last().map_or(0, |c| c.col + 1)
    }
}

/// The rows of a sheet, read one at a time: only the current row's cells are held.
pub(crate) struct SheetRows<'a> {
    part: &'a str,
    scanner: Scanner<'a>,
    strings: &'a SharedStrings,
    skip: u64,
    max_field_bytes: usize,
    /// Cells right of this column are not kept, but the first one holding text is (so that the
    /// reader can refuse it): a row costs at most the header's width, whatever its references.
    width: usize,
    row: SheetRow,
    row_no: u64,
    last_col: Option<usize>,
    cell: Option<OpenCell<'a>>,
    v_text: String,
    t_text: String,
}

impl SheetRows<'_> {
    /// Cells from column `width` on are not kept (but the first holding text, so that it can
    /// be refused).
    pub(crate) fn set_width(&mut self, width: usize) {
        self.width = width;
    }

    fn error(&self, problem: String) -> StatementError {
        StatementError::Workbook {
            part: self.part.to_string(),
            problem,
        }
    }

    /// The next row that has a cell holding text and comes after the skipped rows, with its
    /// row number; `None` at the end of the sheet.
    pub(crate) fn next_row(&mut self) -> Result<Option<(u64, &SheetRow)>, StatementError> {
        loop {
            let event = self.scanner.next().map_err(|e| xml_error(self.part, e))?;
            let Some(event) = event else {
                return Ok(None);
            };
            let path = self.scanner.path();
            match event {
                Event::Start { name, attrs } => {
                    if path.len() == 3 && local(name) == "row" && local(path[1]) == "sheetData" {
                        let r = match attrs.get("r") {
                            Some(raw) => row_number(raw)
                                .map_err(|p| self.error(format!("a row's number: {p}")))?,
                            None => self.row_no + 1,
                        };
                        if r <= self.row_no || r > MAX_ROWS {
                            return Err(self.error(format!(
                                "row {r} comes after row {}: rows out of order or beyond row \
                                 1,048,576; the file is damaged",
                                self.row_no
                            )));
                        }
                        self.row_no = r;
                        self.last_col = None;
                        self.row.buf.clear();
                        self.row.cells.clear();
                    } else if path.len() == 4
                        && local(name) == "c"
                        && local(path[2]) == "row"
                        && local(path[1]) == "sheetData"
                    {
                        let col = match attrs.get("r") {
                            Some(raw) => {
                                let (col, row) = cell_ref(raw)
                                    .map_err(|p| self.error(format!("row {}: {p}", self.row_no)))?;
                                if row != self.row_no {
                                    return Err(self.error(format!(
                                        "the cell {} is inside row {}: the file is damaged",
                                        crate::text::escape(raw),
                                        self.row_no
                                    )));
                                }
                                col
                            }
                            None => self.last_col.map_or(0, |c| c + 1),
                        };
                        if col >= MAX_COLUMNS {
                            return Err(self.error(format!(
                                "row {}: a cell beyond column XFD, the last a sheet has",
                                self.row_no
                            )));
                        }
                        if self.last_col.is_some_and(|last| col <= last) {
                            return Err(self.error(format!(
                                "row {}: the cell {}{} comes after {}{}: cells out of order; \
                                 the file is damaged",
                                self.row_no,
                                column_name(col),
                                self.row_no,
                                column_name(self.last_col.unwrap_or(0)),
                                self.row_no
                            )));
                        }
                        self.last_col = Some(col);
                        let kind = attrs.get("t").unwrap_or("n");
                        self.v_text.clear();
                        self.t_text.clear();
                        self.cell = Some(OpenCell {
                            col,
                            kind,
                            depth: path.len(),
                        });
                    }
                }
                Event::Text(_) | Event::CData(_) => {
                    let Some(cell) = &self.cell else { continue };
                    let below = &path[cell.depth.min(path.len())..];
                    let into = if ends_with(below, &["v"]) && below.len() == 1 {
                        &mut self.v_text
                    } else if local(below.first().copied().unwrap_or_default()) == "is"
                        && (ends_with(below, &["is", "t"]) && below.len() == 2
                            || ends_with(below, &["is", "r", "t"]) && below.len() == 3)
                    {
                        &mut self.t_text
                    } else {
                        continue;
                    };
                    match event {
                        Event::Text(raw) => xml::decode(raw, into).map_err(|problem| {
                            xml_error(
                                self.part,
                                xml::XmlError {
                                    offset: self.scanner.offset(),
                                    problem,
                                },
                            )
                        })?,
                        Event::CData(raw) => into.push_str(raw),
                        _ => {}
                    }
                }
                Event::End { name } => {
                    if self
                        .cell
                        .as_ref()
                        .is_some_and(|c| c.depth == path.len() + 1)
                        && local(name) == "c"
                    {
                        self.end_cell()?;
                    } else if path.len() == 2
                        && local(name) == "row"
                        && self.row_no > self.skip
                        && !self.row.cells.is_empty()
                    {
                        return Ok(Some((self.row_no, &self.row)));
                    }
                }
            }
        }
    }

    /// The cell just closed: its text by its type, kept if the row is kept and it holds text.
    fn end_cell(&mut self) -> Result<(), StatementError> {
        let Some(cell) = self.cell.take() else {
            return Ok(());
        };
        let at = || format!("{}{}", column_name(cell.col), self.row_no);
        let (text, number): (Cow<'_, str>, bool) = match cell.kind {
            "s" => {
                let i = self.v_text.trim();
                let found = i.parse::<usize>().ok().and_then(|i| self.strings.get(i));
                match found {
                    Some(s) => (Cow::Borrowed(s), false),
                    None => {
                        return Err(self.error(format!(
                            "the cell {} points at the shared string \"{}\", but the workbook \
                             has {}",
                            at(),
                            crate::text::escape(i),
                            self.strings.len()
                        )));
                    }
                }
            }
            "inlineStr" => (unescape_ooxml(&self.t_text), false),
            "str" => (unescape_ooxml(&self.v_text), false),
            "b" => (
                Cow::Borrowed(match self.v_text.trim() {
                    "1" => "TRUE",
                    "0" => "FALSE",
                    other => other,
                }),
                false,
            ),
            "e" | "d" => (Cow::Borrowed(self.v_text.as_str()), false),
            "n" => (Cow::Borrowed(self.v_text.trim()), true),
            other => {
                return Err(self.error(format!(
                    "the cell {} has the type \"{}\", which no spreadsheet writes",
                    at(),
                    crate::text::escape(other)
                )));
            }
        };
        if self.row_no <= self.skip || text.is_empty() {
            return Ok(());
        }
        let outside = cell.col >= self.width;
        if outside
            && (text.trim().is_empty()
                || self.row.cells.last().is_some_and(|c| c.col >= self.width))
        {
            // Right of the header: only the first that holds text is kept, to be refused.
            return Ok(());
        }
        let bytes = text.len();
        let keep = if bytes > self.max_field_bytes || outside {
            let mut n = bytes.min(KEPT_OF_LONG_CELL);
            while !text.is_char_boundary(n) {
                n -= 1;
            }
            n
        } else {
            bytes
        };
        let start = self.row.buf.len();
        self.row.buf.push_str(&text[..keep]);
        self.row.cells.push(Cell {
            col: cell.col,
            start,
            end: self.row.buf.len(),
            bytes,
            number,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_and_references() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(MAX_COLUMNS - 1), "XFD");
        assert_eq!(cell_ref("C5"), Ok((2, 5)));
        assert_eq!(cell_ref("XFD1048576"), Ok((MAX_COLUMNS - 1, MAX_ROWS)));
        assert!(cell_ref("XFE1").unwrap_err().contains("beyond column XFD"));
        assert!(cell_ref("AAAA1").unwrap_err().contains("beyond column XFD"));
        assert!(cell_ref("A1048577").unwrap_err().contains("beyond row"));
        assert!(cell_ref("A0").is_err());
        for bad in ["", "5", "C", "C-5", "C5x", "C+5", "Ç5", "$C$5"] {
            assert!(cell_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ooxml_escapes() {
        assert_eq!(unescape_ooxml("a_x0001_b"), "a\u{1}b");
        assert_eq!(unescape_ooxml("_x005F_x0001_"), "_x0001_");
        assert_eq!(unescape_ooxml("_xD83D__xDE00_"), "😀");
        assert_eq!(unescape_ooxml("_x12_ _xZZZZ_ x_"), "_x12_ _xZZZZ_ x_");
        assert_eq!(unescape_ooxml("_xD83D_"), "_xD83D_");
    }

    #[test]
    fn serial_dates_in_both_systems() {
        let d = |v: &str| {
            serial_datetime(v, DateSystem::Excel1900)
                .unwrap()
                .map(|t| t.to_string())
        };
        assert_eq!(d("1").as_deref(), Some("1900-01-01 00:00:00"));
        assert_eq!(d("59").as_deref(), Some("1900-02-28 00:00:00"));
        assert!(serial_datetime("60", DateSystem::Excel1900).is_err());
        assert_eq!(d("61").as_deref(), Some("1900-03-01 00:00:00"));
        assert_eq!(d("46357").as_deref(), Some("2026-12-01 00:00:00"));
        assert_eq!(d("46357.34375").as_deref(), Some("2026-12-01 08:15:00"));
        assert_eq!(
            d("46357.999999999").as_deref(),
            Some("2026-12-02 00:00:00"),
            "rounded to the second"
        );
        assert_eq!(d("2958465").as_deref(), Some("9999-12-31 00:00:00"));
        for not_serial in ["0", "-1", "20261201", "2958466", "x", "NaN", "inf", "1e400"] {
            assert_eq!(d(not_serial), None, "{not_serial}");
        }
        assert_eq!(
            serial_datetime("44895", DateSystem::Excel1904)
                .unwrap()
                .map(|t| t.date().to_string())
                .as_deref(),
            Some("2026-12-01"),
            "1,462 days after the 1900 system's 46357"
        );
        assert_eq!(
            serial_time("0.34375").map(|t| t.to_string()).as_deref(),
            Some("08:15:00")
        );
        assert_eq!(serial_time("1.5"), None);
    }

    #[test]
    fn part_names_resolve_inside_the_package() {
        assert_eq!(
            resolve("worksheets/sheet1.xml").as_deref(),
            Some("xl/worksheets/sheet1.xml")
        );
        assert_eq!(
            resolve("/xl/worksheets/s.xml").as_deref(),
            Some("xl/worksheets/s.xml")
        );
        assert_eq!(
            resolve("./worksheets/../worksheets/a.xml").as_deref(),
            Some("xl/worksheets/a.xml")
        );
        assert_eq!(resolve("../../etc/passwd"), None);
    }
}
