//! Bank statements: CSV exports read through a saved [`BankProfile`] per bank.
//!
//! Every bank's export differs (the column names, the date format, one signed amount column
//! or separate credit and debit columns, title lines above the header, totals below the rows),
//! so the layout is data: a profile names the header of each field, stored as JSON next to the
//! company. The text is UTF-8 when it is valid UTF-8 (a BOM is dropped), else GBK, which is
//! what Chinese banks' exports use. A credit (贷方, 收入) is a payment; a debit (借方, 支出) is a
//! refund or a reversal, negative. The profile's [`MemoRule`] finds the customer's account
//! number in the memo (摘要/用途/附言), which is where a payer writes it.
//!
//! **XLSX** ([`parse_bank_xlsx`]): the first worksheet of the workbook is read as the rows a
//! CSV saved from it would have, through the same profile and the same row logic as a CSV: the
//! line of a row is its row number in the sheet, `skip_rows` skips the sheet's first rows,
//! `footer_markers` end the rows, an empty cell is an empty field. Excel keeps types a CSV does
//! not: a number cell in an amount column is Excel's binary float (`0.30000000000000004`), read
//! from its text and taken as the fen it is within 1e-6 yuan of, or refused (`1.005`); a number
//! cell in the date column is a serial date (and its fraction the time), taken as is, while a
//! text date goes through `date_format`; a number in a separate time column is a fraction of a
//! day. A number cell in the transaction id column must be plain digits: written with a point or
//! an exponent, Excel has rounded it to 15 digits. A sheet leaves out its empty trailing cells,
//! so a row shorter than the header is complete; a value right of the header's last column is
//! refused. [`parse_bank`] takes either, by the file's first bytes, and refuses a legacy `.xls`.
//!
//! Why not `calamine`, the maintained pure-Rust reader: it has no feature to leave out the
//! legacy XLS, ODS and XLSB readers, turns on zip's full `deflate` (zopfli and zlib-rs besides
//! the inflate used here) and adds quick-xml, atoi_simd, fast-float2, codepage and byteorder:
//! measured here, 41 crates and 75 s of a clean build on two cores, for more code to trust
//! with hostile input than the part of XLSX a statement needs (`xlsx.rs` and `xml.rs`, with the
//! ZIP read through the same budget as Alipay's).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use csv::StringRecord;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::RowError;
use crate::money::{self, Format};
use crate::table::{self, Field, Header, Reader, Rows};
use crate::xlsx::{self, DateSystem, SheetRow, SheetRows, Workbook};
use crate::{Channel, Limits, LineKind, Statement, StatementError, StatementLine, text};

/// How a bank states amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AmountColumns {
    /// A credit column (money in: a payment) and a debit column (money out: a refund or a
    /// reversal); on each row one is filled, the other empty or zero.
    CreditDebit {
        /// The credit column's header, e.g. `贷方发生额` or `收入金额`.
        credit: String,
        /// The debit column's header, e.g. `借方发生额` or `支出金额`.
        debit: String,
    },
    /// One signed column: positive money in, negative money out.
    Signed {
        /// Its header, e.g. `交易金额`.
        amount: String,
    },
}

/// Where the customer's account number is in a memo. No regular expressions: two plain
/// patterns cover what payers write (`户号12345678 供暖费`, `12345678 张三 采暖费`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MemoRule {
    /// The memo is not searched.
    None,
    /// After `prefix` (e.g. `户号`), skipping blanks and `:`/`：`, the run of account characters
    /// (ASCII letters and digits, and `extra_chars`), if its length is within
    /// `min_len..=max_len`. Each occurrence of the prefix is tried in turn.
    Prefix {
        /// The text before the number.
        prefix: String,
        /// The shortest account number.
        min_len: usize,
        /// The longest account number.
        max_len: usize,
        /// Characters allowed in an account number besides ASCII letters and digits (e.g. `-`).
        #[serde(default)]
        extra_chars: String,
    },
    /// The first run of account characters whose length is within `min_len..=max_len`.
    FirstRun {
        /// The shortest account number.
        min_len: usize,
        /// The longest account number.
        max_len: usize,
        /// Characters allowed besides ASCII letters and digits.
        #[serde(default)]
        extra_chars: String,
    },
}

impl MemoRule {
    /// The account number the rule finds in `text`, if any. The same rule can be applied to a
    /// WeChat or Alipay line's `order_no`.
    pub fn find(&self, text: &str) -> Option<String> {
        fn is_account(extra: &str, c: char) -> bool {
            c.is_ascii_alphanumeric() || extra.contains(c)
        }
        fn run_at<'a>(s: &'a str, extra: &str) -> &'a str {
            let end = s
                .char_indices()
                .find(|&(_, c)| !is_account(extra, c))
                .map_or(s.len(), |(i, _)| i);
            &s[..end]
        }
        match self {
            MemoRule::None => None,
            MemoRule::Prefix {
                prefix,
                min_len,
                max_len,
                extra_chars,
            } => {
                if prefix.is_empty() {
                    return None;
                }
                let mut from = 0;
                while let Some(at) = text[from..].find(prefix.as_str()) {
                    let after = from + at + prefix.len();
                    let rest = text[after..].trim_start_matches([' ', '\u{3000}', ':', '：']);
                    let run = run_at(rest, extra_chars);
                    if (*min_len..=*max_len).contains(&run.len()) {
                        return Some(run.to_string());
                    }
                    from = after;
                }
                None
            }
            MemoRule::FirstRun {
                min_len,
                max_len,
                extra_chars,
            } => {
                let mut rest = text;
                while let Some(start) = rest.find(|c: char| is_account(extra_chars, c)) {
                    let run = run_at(&rest[start..], extra_chars);
                    if (*min_len..=*max_len).contains(&run.len()) {
                        return Some(run.to_string());
                    }
                    rest = &rest[start + run.len()..];
                }
                None
            }
        }
    }
}

/// A bank's CSV layout, saved once per bank (serde: stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankProfile {
    /// The profile's name, for messages (e.g. `icbc-corporate`).
    pub name: String,
    /// Lines before the header (a title, the account, the period); for an XLSX sheet, its first
    /// rows, empty or not.
    #[serde(default)]
    pub skip_rows: usize,
    /// The date column's header (e.g. `交易日期`).
    pub date_column: String,
    /// Its chrono format: a date (`%Y-%m-%d`, `%Y%m%d`, `%Y/%m/%d`) or a date and time
    /// (`%Y-%m-%d %H:%M:%S`). In an XLSX sheet, a date cell that is a number (Excel's serial
    /// date) is read as such, whatever the format.
    pub date_format: String,
    /// A separate time column, if the bank has one (e.g. `交易时间`), with `time_format`.
    #[serde(default)]
    pub time_column: Option<String>,
    /// The time column's chrono format (default `%H:%M:%S`).
    #[serde(default)]
    pub time_format: Option<String>,
    /// Where the amounts are.
    pub amounts: AmountColumns,
    /// `1,234.56` allowed in amounts (some banks' exports group digits).
    #[serde(default)]
    pub thousands_separator: bool,
    /// The transaction id's header (流水号, 交易流水号, 凭证号).
    pub txn_column: String,
    /// The counterparty's name (对方户名).
    #[serde(default)]
    pub counterparty_name_column: Option<String>,
    /// The counterparty's account (对方账号).
    #[serde(default)]
    pub counterparty_account_column: Option<String>,
    /// The memo columns (摘要, 用途, 附言), joined with a space in this order.
    #[serde(default)]
    pub memo_columns: Vec<String>,
    /// How to find the customer's account number in the memo.
    pub memo_rule: MemoRule,
    /// A row whose first field starts with one of these ends the rows (e.g. `合计`, `共`):
    /// banks put totals and signatures below the rows.
    #[serde(default)]
    pub footer_markers: Vec<String>,
}

impl BankProfile {
    /// Checks the profile itself (its date formats, its memo rule) before any file is read.
    pub fn check(&self) -> Result<(), StatementError> {
        let bad = |problem: &str| StatementError::Profile {
            name: self.name.clone(),
            problem: problem.to_string(),
        };
        let mut columns = vec![&self.date_column, &self.txn_column];
        match &self.amounts {
            AmountColumns::CreditDebit { credit, debit } => {
                columns.push(credit);
                columns.push(debit);
            }
            AmountColumns::Signed { amount } => columns.push(amount),
        }
        if columns.iter().any(|c| c.trim().is_empty()) {
            return Err(bad(
                "a column's header is empty: name the date, transaction id and amount columns",
            ));
        }
        if self.date_format.trim().is_empty() {
            return Err(bad("date_format is empty: e.g. %Y-%m-%d"));
        }
        let invalid = |f: &str| {
            chrono::format::StrftimeItems::new(f).any(|i| matches!(i, chrono::format::Item::Error))
        };
        if invalid(&self.date_format) {
            return Err(bad(
                "date_format is not a valid chrono format: use %Y, %m, %d (and %H:%M:%S)",
            ));
        }
        if self.time_format.as_deref().is_some_and(invalid) {
            return Err(bad(
                "time_format is not a valid chrono format: use %H, %M, %S",
            ));
        }
        self.memo_rule.check().map_err(|p| bad(&p))
    }
}

impl MemoRule {
    /// Checks the rule itself: a prefix to look after, and `1 <= min_len <= max_len`.
    pub fn check(&self) -> Result<(), String> {
        match self {
            MemoRule::Prefix {
                prefix,
                min_len,
                max_len,
                ..
            } => {
                if prefix.is_empty() {
                    return Err("the memo rule's prefix is empty".into());
                }
                if min_len > max_len || *min_len == 0 {
                    return Err("the memo rule needs 1 ≤ min_len ≤ max_len".into());
                }
            }
            MemoRule::FirstRun {
                min_len, max_len, ..
            } => {
                if min_len > max_len || *min_len == 0 {
                    return Err("the memo rule needs 1 ≤ min_len ≤ max_len".into());
                }
            }
            MemoRule::None => {}
        }
        Ok(())
    }
}

/// A field without surrounding blanks (and a BOM on the first).
fn clean(field: &str) -> &str {
    field.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

struct Columns {
    date: usize,
    time: Option<usize>,
    txn: usize,
    amounts: Amounts,
    name: Option<usize>,
    account: Option<usize>,
    memo: Vec<usize>,
}

enum Amounts {
    CreditDebit(usize, usize),
    Signed(usize),
}

impl Columns {
    fn find(h: &Header, p: &BankProfile) -> Result<Columns, StatementError> {
        let optional = |c: &Option<String>| -> Result<Option<usize>, StatementError> {
            c.as_deref().map(|c| h.require(c)).transpose()
        };
        Ok(Columns {
            date: h.require(&p.date_column)?,
            time: optional(&p.time_column)?,
            txn: h.require(&p.txn_column)?,
            amounts: match &p.amounts {
                AmountColumns::CreditDebit { credit, debit } => {
                    Amounts::CreditDebit(h.require(credit)?, h.require(debit)?)
                }
                AmountColumns::Signed { amount } => Amounts::Signed(h.require(amount)?),
            },
            name: optional(&p.counterparty_name_column)?,
            account: optional(&p.counterparty_account_column)?,
            memo: p
                .memo_columns
                .iter()
                .map(|c| h.require(c))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The first bytes of an OLE2 compound file: a legacy `.xls` (or a password-protected `.xlsx`).
const OLE2_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0";

/// Parses a bank's statement through `profile`, an XLSX workbook ([`parse_bank_xlsx`]) when the
/// file is a ZIP (it starts `PK\x03\x04`, or is an empty ZIP), else a CSV ([`parse_bank_csv`]).
/// A legacy `.xls` is refused with what to do ([`StatementError::LegacyXls`]).
pub fn parse_bank(
    bytes: &[u8],
    profile: &BankProfile,
    limits: &Limits,
) -> Result<Statement, StatementError> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        parse_bank_xlsx(bytes, profile, limits)
    } else {
        parse_bank_csv(bytes, profile, limits)
    }
}

/// Parses a bank's CSV statement through `profile`. See the module's documentation.
pub fn parse_bank_csv(
    bytes: &[u8],
    profile: &BankProfile,
    limits: &Limits,
) -> Result<Statement, StatementError> {
    limits.check_size(bytes.len())?;
    if bytes.starts_with(OLE2_MAGIC) {
        return Err(StatementError::LegacyXls);
    }
    profile.check()?;
    let text = text::utf8_or_gbk(bytes, "a bank statement")?;
    // Skip the title lines before handing the rest to the CSV reader (they need not be CSV).
    let mut body: &str = &text;
    for _ in 0..profile.skip_rows {
        body = body.split_once('\n').map_or("", |(_, rest)| rest);
    }
    let source = CsvRows {
        reader: Reader::new(body, false, profile.skip_rows as u64 + 1),
        record: StringRecord::new(),
    };
    parse_rows(source, bytes, profile, limits)
}

/// Parses a bank's XLSX statement through `profile`: the workbook's first worksheet, read as
/// [`parse_bank_csv`] reads a CSV (see the module's documentation for what differs). The
/// workbook is bounded by [`Limits::max_bytes`], [`Limits::max_xlsx_entries`] and
/// [`Limits::max_uncompressed_bytes`] (its parts together, counted as they inflate), its rows
/// and cells by [`Limits::max_rows`] and [`Limits::max_field_bytes`]. The digest is the
/// file's.
pub fn parse_bank_xlsx(
    bytes: &[u8],
    profile: &BankProfile,
    limits: &Limits,
) -> Result<Statement, StatementError> {
    limits.check_size(bytes.len())?;
    if bytes.starts_with(OLE2_MAGIC) {
        return Err(StatementError::LegacyXls);
    }
    profile.check()?;
    let workbook = Workbook::open(bytes, limits)?;
    let source = SheetSource {
        rows: workbook.rows(profile.skip_rows as u64, limits.max_field_bytes),
        dates: workbook.dates,
    };
    parse_rows(source, bytes, profile, limits)
}

/// A row of a bank statement, whichever file it comes from.
trait BankRow {
    /// The field at `i`, empty when the row has none there.
    fn get(&self, i: usize) -> &str;
    /// Whether the field at `i` is a spreadsheet's number (a CSV has none).
    fn is_number(&self, i: usize) -> bool;
    /// The fields the row has, for the checks.
    fn fields(&self) -> impl Iterator<Item = Field<'_>>;
    /// One past its last field.
    fn width(&self) -> usize;
    /// Whether the row must have as many fields as the header: a CSV row must; a sheet leaves
    /// out its empty cells, so its short row is complete.
    const FIXED_WIDTH: bool;
    /// What follows a field size error: the usual cause.
    const LONG_FIELD: &'static str;
}

impl BankRow for StringRecord {
    fn get(&self, i: usize) -> &str {
        StringRecord::get(self, i).unwrap_or("")
    }
    fn is_number(&self, _: usize) -> bool {
        false
    }
    fn fields(&self) -> impl Iterator<Item = Field<'_>> {
        table::fields(self)
    }
    fn width(&self) -> usize {
        self.len()
    }
    const FIXED_WIDTH: bool = true;
    const LONG_FIELD: &'static str = table::CSV_LONG_FIELD;
}

impl BankRow for SheetRow {
    fn get(&self, i: usize) -> &str {
        SheetRow::get(self, i)
    }
    fn is_number(&self, i: usize) -> bool {
        SheetRow::is_number(self, i)
    }
    fn fields(&self) -> impl Iterator<Item = Field<'_>> {
        self.cells()
            .map(|(index, text, bytes)| Field { index, text, bytes })
    }
    fn width(&self) -> usize {
        SheetRow::width(self)
    }
    const FIXED_WIDTH: bool = false;
    const LONG_FIELD: &'static str = "";
}

/// Where the rows come from: a CSV's records or a sheet's rows.
trait RowSource {
    type Row: BankRow;
    /// What a row is called in messages (`lines`, `rows`).
    const ROWS: &'static str;
    /// The next row and its line (the CSV's line, the sheet's row number); `None` at the end.
    fn next_row(&mut self) -> Result<Option<(u64, &Self::Row)>, StatementError>;
    /// The header's width, once known.
    fn set_width(&mut self, _width: usize) {}
    /// How number cells count dates.
    fn dates(&self) -> DateSystem {
        DateSystem::Excel1900
    }
}

struct CsvRows<'a> {
    reader: Reader<'a>,
    record: StringRecord,
}

impl RowSource for CsvRows<'_> {
    type Row = StringRecord;
    const ROWS: &'static str = "lines";
    fn next_row(&mut self) -> Result<Option<(u64, &StringRecord)>, StatementError> {
        Ok(self
            .reader
            .next(&mut self.record)?
            .map(|l| (l, &self.record)))
    }
}

struct SheetSource<'a> {
    rows: SheetRows<'a>,
    dates: DateSystem,
}

impl RowSource for SheetSource<'_> {
    type Row = SheetRow;
    const ROWS: &'static str = "rows";
    fn next_row(&mut self) -> Result<Option<(u64, &SheetRow)>, StatementError> {
        self.rows.next_row()
    }
    fn set_width(&mut self, width: usize) {
        self.rows.set_width(width);
    }
    fn dates(&self) -> DateSystem {
        self.dates
    }
}

/// A row with nothing in it.
fn is_blank(r: &impl BankRow) -> bool {
    r.fields().all(|f| f.text.trim().is_empty())
}

/// The rows of a statement, whichever file they come from, after its title lines: the header,
/// then the rows up to a footer marker. The size and the profile are checked by the caller.
fn parse_rows<S: RowSource>(
    mut source: S,
    bytes: &[u8],
    profile: &BankProfile,
    limits: &Limits,
) -> Result<Statement, StatementError> {
    let what = format!("the bank statement profile \"{}\" reads", profile.name);
    let header = loop {
        let Some((line_no, record)) = source.next_row()? else {
            return Err(StatementError::Empty {
                expected: format!("{what} (after {} skipped {})", profile.skip_rows, S::ROWS),
            });
        };
        if !is_blank(record) {
            let fields = (0..record.width()).map(|i| record.get(i));
            break Header::from_fields(fields, line_no, clean, &what);
        }
    };
    source.set_width(header.len());
    let columns = Columns::find(&header, profile)?;
    let format = Format {
        max_scale: 2,
        thousands: profile.thousands_separator,
    };
    let dates = source.dates();
    let mut rows = Rows::new(limits);
    while let Some((line_no, record)) = source.next_row()? {
        if is_blank(record) {
            continue;
        }
        let first = clean(record.get(0));
        if profile
            .footer_markers
            .iter()
            .any(|m| !m.is_empty() && first.starts_with(m.as_str()))
        {
            break;
        }
        rows.count(line_no)?;
        let line = check(&header, record, line_no, limits)
            .and_then(|()| row(&header, &columns, profile, format, dates, record, line_no));
        rows.take(line, &profile.txn_column);
    }
    rows.errors.into_result()?;
    Ok(Statement::build(Channel::Bank, bytes, rows.lines, None))
}

/// A row's fields: as many as the header (a CSV), nothing right of the header (a sheet), none
/// too long or holding a control character.
fn check<R: BankRow>(h: &Header, r: &R, line_no: u64, limits: &Limits) -> Result<(), RowError> {
    if R::FIXED_WIDTH {
        h.check_width(r.width(), line_no)?;
    } else if let Some(f) = r
        .fields()
        .find(|f| f.index >= h.len() && !f.text.trim().is_empty())
    {
        let cell = format!("{}{line_no}", xlsx::column_name(f.index));
        return Err(RowError::at(
            line_no,
            &cell,
            f.text,
            format!(
                "a value in {cell}, right of the header's last column ({}): the table is wider \
                 than its header; delete the value, or give its column a header",
                xlsx::column_name(h.len().saturating_sub(1))
            ),
        ));
    }
    h.check_fields(r.fields(), line_no, limits, R::LONG_FIELD)
}

fn row(
    h: &Header,
    c: &Columns,
    p: &BankProfile,
    format: Format,
    dates: DateSystem,
    r: &impl BankRow,
    line_no: u64,
) -> Result<StatementLine, RowError> {
    let get = |i: usize| clean(r.get(i));
    let amount = |i: usize| -> Result<Decimal, RowError> {
        let v = get(i);
        if v.is_empty() {
            return Ok(Decimal::new(0, 2));
        }
        let parsed = if r.is_number(i) {
            money::from_sheet(v)
        } else {
            money::parse(v, format)
        };
        parsed.map_err(|e| RowError::at(line_no, h.name(i), v, e))
    };
    let date_text = get(c.date);
    let bad_date = || {
        RowError::at(
            line_no,
            h.name(c.date),
            date_text,
            format!(
                "not a date in the profile's format {} (e.g. {})",
                p.date_format,
                NaiveDate::from_ymd_opt(2026, 12, 1)
                    .unwrap_or_default()
                    .and_time(NaiveTime::MIN)
                    .format(&p.date_format)
            ),
        )
    };
    // A sheet's number in the date column is a serial date (unless it is out of the range of
    // serials, like 20261201, a date written as digits, which the format reads).
    let serial = if r.is_number(c.date) {
        xlsx::serial_datetime(date_text, dates)
            .map_err(|e| RowError::at(line_no, h.name(c.date), date_text, e))?
    } else {
        None
    };
    let mut time = match serial {
        Some(t) => t,
        None => match NaiveDateTime::parse_from_str(date_text, &p.date_format) {
            Ok(t) => t,
            Err(_) => NaiveDate::parse_from_str(date_text, &p.date_format)
                .map_err(|_| bad_date())?
                .and_time(NaiveTime::MIN),
        },
    };
    if let Some(i) = c.time {
        let time_format = p.time_format.as_deref().unwrap_or("%H:%M:%S");
        let serial = r.is_number(i).then(|| xlsx::serial_time(get(i))).flatten();
        let t = match serial {
            Some(t) => t,
            None => NaiveTime::parse_from_str(get(i), time_format).map_err(|_| {
                RowError::at(
                    line_no,
                    h.name(i),
                    get(i),
                    format!("not a time in the profile's format {time_format}"),
                )
            })?,
        };
        time = time.date().and_time(t);
    }
    let (kind, value) = match c.amounts {
        Amounts::CreditDebit(credit_i, debit_i) => {
            let credit = amount(credit_i)?;
            let debit = amount(debit_i)?;
            for (i, v) in [(credit_i, credit), (debit_i, debit)] {
                if v < Decimal::ZERO {
                    return Err(RowError::at(
                        line_no,
                        h.name(i),
                        get(i),
                        "a credit or debit column holds no negative amounts (which column the \
                         amount is in says its direction)",
                    ));
                }
            }
            match (credit.is_zero(), debit.is_zero()) {
                (false, true) => (LineKind::Payment, credit),
                (true, false) => (LineKind::Refund, -debit),
                (true, true) => {
                    return Err(RowError::new(
                        line_no,
                        format!(
                            "neither {} nor {} has an amount",
                            h.name(credit_i),
                            h.name(debit_i)
                        ),
                    ));
                }
                (false, false) => {
                    return Err(RowError::new(
                        line_no,
                        format!(
                            "both {} and {} have an amount: a row moves money one way",
                            h.name(credit_i),
                            h.name(debit_i)
                        ),
                    ));
                }
            }
        }
        Amounts::Signed(i) => {
            let v = amount(i)?;
            if v.is_zero() {
                return Err(RowError::at(
                    line_no,
                    h.name(i),
                    get(i),
                    "the amount is zero",
                ));
            }
            if v > Decimal::ZERO {
                (LineKind::Payment, v)
            } else {
                (LineKind::Refund, v)
            }
        }
    };
    let txn = get(c.txn);
    if txn.is_empty() {
        return Err(RowError::new(
            line_no,
            format!(
                "{} is empty: every row needs the bank's transaction id",
                h.name(c.txn)
            ),
        ));
    }
    if r.is_number(c.txn) && !txn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RowError::at(
            line_no,
            h.name(c.txn),
            txn,
            "the transaction id is a number written with a point or an exponent: Excel keeps \
             15 digits of a number, so the id may have been rounded; format the column as text \
             in the bank's export, or download the CSV",
        ));
    }
    let memo = c
        .memo
        .iter()
        .map(|&i| get(i))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let counterparty = [c.name, c.account]
        .iter()
        .flatten()
        .map(|&i| get(i))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(StatementLine {
        line_no,
        kind,
        channel_txn: txn.to_string(),
        original_txn: None,
        order_no: None,
        account_hint: p.memo_rule.find(&memo),
        time,
        amount: value,
        fee: Decimal::new(0, 2),
        counterparty: Some(counterparty).filter(|s| !s.is_empty()),
        memo: Some(memo).filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_rules() {
        let prefix = MemoRule::Prefix {
            prefix: "户号".into(),
            min_len: 6,
            max_len: 12,
            extra_chars: String::new(),
        };
        assert_eq!(
            prefix.find("供暖费 户号：2301004417 张三").as_deref(),
            Some("2301004417")
        );
        assert_eq!(
            prefix.find("户号 12 户号 2301004417").as_deref(),
            Some("2301004417")
        );
        assert_eq!(prefix.find("张三 采暖费"), None);
        let run = MemoRule::FirstRun {
            min_len: 5,
            max_len: 10,
            extra_chars: "-".into(),
        };
        assert_eq!(
            run.find("2026采暖 1-2-301 李四").as_deref(),
            Some("1-2-301")
        );
        assert_eq!(run.find("采暖费"), None);
        assert_eq!(MemoRule::None.find("户号2301004417"), None);
        let json = serde_json::to_string(&prefix).unwrap();
        assert_eq!(serde_json::from_str::<MemoRule>(&json).unwrap(), prefix);
    }
}
