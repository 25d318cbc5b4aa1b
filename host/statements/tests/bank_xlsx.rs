//! Bank statements as XLSX workbooks: the same rows as the CSV, and what a hostile workbook does.

use chrono::NaiveDate;
use heatbill_statements::fixtures::{self, BankOpts, BankXlsxOpts};
use heatbill_statements::{
    BankProfile, Channel, Limits, LineKind, Statement, StatementError, parse_bank, parse_bank_csv,
    parse_bank_xlsx,
};
use rust_decimal::Decimal;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The profile of `tests/bank.rs`'s hand-written statement: a title row, credit and debit
/// columns, the memo over three columns, a `合计` footer.
fn profile() -> BankProfile {
    serde_json::from_str(
        r#"{
          "name": "city-bank",
          "skip_rows": 1,
          "date_column": "日期",
          "date_format": "%Y/%m/%d",
          "amounts": {"kind": "credit-debit", "credit": "收入金额", "debit": "支出金额"},
          "txn_column": "流水号",
          "counterparty_name_column": "对方户名",
          "counterparty_account_column": "对方账号",
          "memo_columns": ["摘要", "用途", "附言"],
          "memo_rule": {"kind": "prefix", "prefix": "户号", "min_len": 6, "max_len": 12},
          "footer_markers": ["合计"]
        }"#,
    )
    .unwrap()
}

/// A cell holding a shared string.
fn s(at: &str, i: usize) -> String {
    format!("<c r=\"{at}\" t=\"s\"><v>{i}</v></c>")
}

/// A number cell.
fn n(at: &str, v: &str) -> String {
    format!("<c r=\"{at}\" s=\"1\"><v>{v}</v></c>")
}

/// An inline string cell.
fn inline(at: &str, t: &str) -> String {
    format!("<c r=\"{at}\" t=\"inlineStr\"><is><t>{t}</t></is></c>")
}

fn sheet(rows: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<worksheet \
         xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>{}\
         </sheetData></worksheet>",
        rows.concat()
    )
}

fn row(r: u32, cells: &[String]) -> String {
    format!("<row r=\"{r}\">{}</row>", cells.concat())
}

fn sst(items: &[&str]) -> String {
    let mut out =
        String::from("<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">");
    for item in items {
        if item.starts_with('<') {
            out.push_str(&format!("<si>{item}</si>"));
        } else {
            out.push_str(&format!("<si><t>{item}</t></si>"));
        }
    }
    out.push_str("</sst>");
    out
}

/// The header of [`profile`]'s statement, as shared strings 1 to 10 (0 is the title).
const STRINGS: [&str; 11] = [
    "城市商业银行 对公账户交易明细",
    "日期",
    "流水号",
    "摘要",
    "收入金额",
    "支出金额",
    "余额",
    "对方户名",
    "对方账号",
    "用途",
    "附言",
];

/// The header (A to J) in row `r`.
fn header_row(r: u32) -> String {
    let cols = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"];
    let cells: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| s(&format!("{c}{r}"), i + 1))
        .collect();
    row(r, &cells)
}

/// The title in row 1 and the header in row 2.
fn header_rows() -> Vec<String> {
    vec![row(1, &[s("A1", 0)]), header_row(2)]
}

/// A workbook of [`profile`]'s layout with `rows` after the header and `extra` shared strings
/// after [`STRINGS`] (numbered from 11).
fn workbook(rows: &[String], extra: &[&str]) -> Vec<u8> {
    let mut all = header_rows();
    all.extend_from_slice(rows);
    let mut strings: Vec<&str> = STRINGS.to_vec();
    strings.extend_from_slice(extra);
    fixtures::xlsx_package(&sheet(&all), Some(&sst(&strings)))
}

/// The cells of a payment of [`profile`]'s layout in row `r`: date (text), id, credit (a
/// number).
fn payment_cells(r: u32, txn: &str, credit: &str) -> Vec<String> {
    vec![
        inline(&format!("A{r}"), "2026/12/01"),
        inline(&format!("B{r}"), txn),
        n(&format!("D{r}"), credit),
    ]
}

fn payment(r: u32, txn: &str, credit: &str) -> String {
    row(r, &payment_cells(r, txn, credit))
}

fn parse(bytes: &[u8]) -> Result<Statement, StatementError> {
    parse_bank(bytes, &profile(), &Limits::default())
}

/// What two parses of the same statement must share: everything but the file's digest.
fn same(a: &Statement, b: &Statement, what: &str) {
    assert_eq!(a.channel, b.channel, "{what}");
    assert_eq!(a.lines, b.lines, "{what}");
    assert_eq!(a.totals, b.totals, "{what}");
    assert_eq!(a.period, b.period, "{what}");
    assert_ne!(a.digest, b.digest, "{what}: different files");
}

#[test]
fn a_workbook_and_the_csv_of_the_same_rows_are_the_same_statement() {
    let day = fixtures::day(Channel::Bank, 31, date(), 2_000, 40);
    for profile in [fixtures::credit_debit_profile(), fixtures::signed_profile()] {
        let csv = fixtures::bank_csv(&profile, &day.payments, &day.refunds, &BankOpts::default());
        let from_csv = parse_bank_csv(&csv, &profile, &Limits::default()).unwrap();
        assert_eq!(from_csv.totals.count, 2_040);
        for opts in [
            BankXlsxOpts::default(),
            BankXlsxOpts {
                serial_dates: true,
                ..BankXlsxOpts::default()
            },
            BankXlsxOpts {
                serial_dates: true,
                inline_strings: true,
            },
        ] {
            let xlsx = fixtures::bank_xlsx(&profile, &day.payments, &day.refunds, &opts);
            assert!(xlsx.starts_with(b"PK\x03\x04"));
            let what = format!("{} {opts:?}", profile.name);
            let from_xlsx = parse_bank_xlsx(&xlsx, &profile, &Limits::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            same(&from_csv, &from_xlsx, &what);
            // One entry point for both, by the first bytes.
            assert_eq!(
                parse_bank(&xlsx, &profile, &Limits::default()).unwrap(),
                from_xlsx
            );
            assert_eq!(
                parse_bank(&csv, &profile, &Limits::default()).unwrap(),
                from_csv
            );
        }
    }
}

#[test]
fn rich_text_inline_strings_formulas_and_empty_cells() {
    // Row 3: an inline 摘要 with entities, the balance, a rich-text 对方户名 (two runs, the
    // phonetic run left out), 对方账号 from a formula's cached result, an inline 附言; 支出金额
    // (E) and 用途 (I) absent. Row 4 and 5 are absent; in row 6, cells without references
    // follow the previous one (two empty ones, then 支出金额).
    let rich = "<r><rPr><b/></rPr><t>张</t></r><r><t xml:space=\"preserve\">伟</t></r>\
                <rPh sb=\"0\" eb=\"1\"><t>ちょう</t></rPh>";
    let bytes = workbook(
        &[
            row(
                3,
                &[
                    inline("A3", "2026/12/01"),
                    s("B3", 11),
                    inline("C3", "转账 A&amp;B &lt;x&gt; &#20013;&#x6587;"),
                    n("D3", "1200.5"),
                    n("F3", "101200.5"),
                    s("G3", 12),
                    "<c r=\"H3\" t=\"str\"><f>\"6222\"&amp;\"0001\"</f><v>62220001</v></c>"
                        .to_string(),
                    inline("J3", "户号：2301004417"),
                ],
            ),
            "<row r=\"6\"><c t=\"inlineStr\"><is><t>2026/12/02</t></is></c>\
             <c t=\"inlineStr\"><is><r><t>CB2026</t></r><r><t>1202000002</t></r></is></c>\
             <c/><c/><c t=\"n\"><v>300</v></c></row>"
                .to_string(),
            row(
                7,
                &[inline("A7", "合计"), n("D7", "1200.5"), n("E7", "300")],
            ),
            row(8, &[inline("A8", "制表人：这一行在合计之后，不读")]),
        ],
        &["CB20261201000001", rich],
    );
    let st = parse(&bytes).unwrap();
    assert_eq!(st.lines.len(), 2, "the 合计 row ends the rows");
    let a = &st.lines[0];
    assert_eq!(a.line_no, 3, "the line is the sheet's row number");
    assert_eq!(a.channel_txn, "CB20261201000001");
    assert_eq!(a.kind, LineKind::Payment);
    assert_eq!(a.amount.to_string(), "1200.50");
    assert_eq!(a.counterparty.as_deref(), Some("张伟 62220001"));
    assert_eq!(
        a.memo.as_deref(),
        Some("转账 A&B <x> 中文 户号：2301004417")
    );
    assert_eq!(a.account_hint.as_deref(), Some("2301004417"));
    let b = &st.lines[1];
    assert_eq!(b.line_no, 6);
    assert_eq!(b.channel_txn, "CB20261202000002");
    assert_eq!(b.kind, LineKind::Refund, "the fifth cell, 支出金额");
    assert_eq!(b.amount.to_string(), "-300.00");
    assert_eq!(b.counterparty, None);
    assert_eq!(b.time.to_string(), "2026-12-02 00:00:00");
}

#[test]
fn skip_rows_count_the_sheets_rows_and_a_wrong_one_is_named() {
    // The title in row 1, row 2 empty, the header in row 3: skip_rows 2, as the CSV saved from
    // the sheet would have it (an empty line 2).
    let mut p = profile();
    p.skip_rows = 2;
    let body = [row(1, &[s("A1", 0)]), header_row(3), payment(4, "CB1", "5")];
    let bytes = fixtures::xlsx_package(&sheet(&body), Some(&sst(&STRINGS)));
    let st = parse_bank_xlsx(&bytes, &p, &Limits::default()).unwrap();
    assert_eq!(st.lines[0].line_no, 4);
    assert_eq!(st.lines[0].amount, dec("5"));
    // skip_rows 0: the title row is taken for the header.
    p.skip_rows = 0;
    let e = parse_bank_xlsx(&bytes, &p, &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::MissingColumn { line_no: 1, column, .. } if column == "日期"),
        "{e}"
    );
    // Nothing after the skipped rows.
    p.skip_rows = 9;
    let e = parse_bank_xlsx(&bytes, &p, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("after 9 skipped rows"), "{e}");
}

#[test]
fn float_artefacts_are_the_fen_but_a_third_decimal_is_refused() {
    let bytes = workbook(
        &[
            payment(3, "CB1", "0.30000000000000004"),
            payment(4, "CB2", "1200.4999999999998"),
            payment(5, "CB3", "1.2E3"),
        ],
        &[],
    );
    let st = parse(&bytes).unwrap();
    let amounts: Vec<String> = st.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(amounts, ["0.30", "1200.50", "1200.00"]);

    let bytes = workbook(
        &[payment(3, "CB1", "1.005"), payment(4, "CB2", "0.001")],
        &[],
    );
    let e = parse(&bytes).unwrap_err();
    let rows = e.row_errors();
    assert_eq!(rows.len(), 2, "{e}");
    assert_eq!(rows[0].line_no, 3);
    assert_eq!(rows[0].column.as_deref(), Some("收入金额"));
    assert_eq!(rows[0].value.as_deref(), Some("1.005"));
    assert!(rows[0].problem.contains("3 decimals"), "{e}");
    assert!(rows[1].problem.contains("3 decimals"), "{e}");

    // Text amounts are read as in a CSV: exactly, two decimals at most.
    let bytes = workbook(
        &[row(
            3,
            &[
                inline("A3", "2026/12/01"),
                inline("B3", "CB1"),
                inline("D3", "1.005"),
            ],
        )],
        &[],
    );
    assert!(
        parse(&bytes)
            .unwrap_err()
            .to_string()
            .contains("3 decimals")
    );
}

#[test]
fn serial_dates_and_times() {
    let mut p = profile();
    p.time_column = Some("时间".into());
    p.memo_columns = vec![];
    let header = row(
        2,
        &[
            inline("A2", "日期"),
            inline("B2", "时间"),
            inline("C2", "流水号"),
            inline("D2", "收入金额"),
            inline("E2", "支出金额"),
            inline("F2", "对方户名"),
            inline("G2", "对方账号"),
        ],
    );
    let line = |r: u32, date: &str, time: &str| {
        row(
            r,
            &[
                n(&format!("A{r}"), date),
                n(&format!("B{r}"), time),
                inline(&format!("C{r}"), &format!("CB{r}")),
                n(&format!("D{r}"), "10"),
            ],
        )
    };
    let book = |rows: Vec<String>| {
        fixtures::xlsx_package(&sheet(&[vec![header.clone()], rows].concat()), None)
    };
    let bytes = book(vec![
        line(3, "46357", "0.34375"),
        // A date-time serial in the date column, a text time: the time column wins.
        row(
            4,
            &[
                n("A4", "46357.5"),
                inline("B4", "23:59:59"),
                inline("C4", "CB4"),
                n("D4", "10"),
            ],
        ),
        // A date written as digits (not a serial: out of range), the profile's format reads it.
        line(5, "20261201", "0"),
    ]);
    let mut digits = p.clone();
    digits.date_format = "%Y%m%d".into();
    let e = parse_bank_xlsx(&bytes, &p, &Limits::default()).unwrap_err();
    assert_eq!(e.row_errors().len(), 1, "{e}");
    assert_eq!(e.row_errors()[0].line_no, 5, "{e}");
    assert!(e.row_errors()[0].problem.contains("%Y/%m/%d"), "{e}");
    let st = parse_bank_xlsx(&bytes, &digits, &Limits::default()).unwrap();
    let times: Vec<String> = st.lines.iter().map(|l| l.time.to_string()).collect();
    assert_eq!(
        times,
        [
            "2026-12-01 08:15:00",
            "2026-12-01 23:59:59",
            "2026-12-01 00:00:00"
        ]
    );

    // Excel's 1900-02-29 is not a date.
    let bytes = book(vec![line(3, "60", "0")]);
    let e = parse_bank_xlsx(&bytes, &p, &Limits::default()).unwrap_err();
    assert!(e.row_errors()[0].problem.contains("1900-02-29"), "{e}");
    assert_eq!(
        parse_bank_xlsx(&book(vec![line(3, "61", "0")]), &p, &Limits::default())
            .unwrap()
            .lines[0]
            .time
            .to_string(),
        "1900-03-01 00:00:00"
    );
}

#[test]
fn a_workbook_in_the_1904_date_system() {
    let mut p = profile();
    p.memo_columns = vec![];
    let sheet_xml = sheet(&[
        row(
            2,
            &[
                inline("A2", "日期"),
                inline("B2", "流水号"),
                inline("C2", "收入金额"),
                inline("D2", "支出金额"),
                inline("E2", "对方户名"),
                inline("F2", "对方账号"),
            ],
        ),
        row(3, &[n("A3", "44895"), inline("B3", "CB1"), n("C3", "10")]),
    ]);
    let workbook = "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
                    xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
                    <workbookPr date1904=\"1\"/><sheets><sheet name=\"a\" sheetId=\"1\" r:id=\"rId1\"/>\
                    </sheets></workbook>";
    let rels = "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
                <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" \
                Target=\"worksheets/sheet1.xml\"/></Relationships>";
    let bytes = fixtures::zip_of(&[
        ("xl/workbook.xml", workbook.as_bytes()),
        ("xl/_rels/workbook.xml.rels", rels.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet_xml.as_bytes()),
    ]);
    let st = parse_bank_xlsx(&bytes, &p, &Limits::default()).unwrap();
    assert_eq!(st.lines[0].time.to_string(), "2026-12-01 00:00:00");
}

/// A workbook whose `xl/workbook.xml` lists `sheets` (name, relationship id, state) and whose
/// relationships map rId1 to sheet1.xml, rId2 to sheet2.xml, rId3 to a chart sheet.
fn two_sheets(sheets: &[(&str, &str, &str)], sheet1: &str, sheet2: &str) -> Vec<u8> {
    let list: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, id, state))| {
            format!(
                "<sheet name=\"{name}\" sheetId=\"{}\" {state} r:id=\"{id}\"/>",
                i + 1
            )
        })
        .collect();
    let workbook = format!(
        "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
         xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
         <sheets>{list}</sheets></workbook>"
    );
    let rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let rels = format!(
        "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
         <Relationship Id=\"rId1\" Type=\"{rel}/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
         <Relationship Id=\"rId2\" Type=\"{rel}/worksheet\" Target=\"/xl/worksheets/sheet2.xml\"/>\
         <Relationship Id=\"rId3\" Type=\"{rel}/chartsheet\" Target=\"chartsheets/sheet1.xml\"/>\
         <Relationship Id=\"rId4\" Type=\"{rel}/sharedStrings\" Target=\"sharedStrings.xml\"/>\
         </Relationships>"
    );
    let strings = sst(&STRINGS);
    fixtures::zip_of(&[
        ("xl/workbook.xml", workbook.as_bytes()),
        ("xl/_rels/workbook.xml.rels", rels.as_bytes()),
        ("xl/sharedStrings.xml", strings.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet1.as_bytes()),
        ("xl/worksheets/sheet2.xml", sheet2.as_bytes()),
        ("xl/chartsheets/sheet1.xml", b"<chartsheet/>"),
    ])
}

#[test]
fn the_first_worksheet_in_workbook_order_is_read() {
    let with = |txn: &str| sheet(&[header_rows(), vec![payment(3, txn, "1")]].concat());
    let (one, two) = (with("FROM-SHEET1"), with("FROM-SHEET2"));
    // sheet2.xml comes first in the workbook (the user moved it), after a chart.
    let bytes = two_sheets(
        &[
            ("图表", "rId3", ""),
            ("明细", "rId2", ""),
            ("旧", "rId1", ""),
        ],
        &one,
        &two,
    );
    assert_eq!(parse(&bytes).unwrap().lines[0].channel_txn, "FROM-SHEET2");
    // A hidden first worksheet is refused: what is read must be what a person sees.
    let bytes = two_sheets(
        &[("明细", "rId2", "state=\"hidden\""), ("旧", "rId1", "")],
        &one,
        &two,
    );
    let e = parse(&bytes).unwrap_err();
    assert!(
        matches!(&e, StatementError::Workbook { problem, .. } if problem.contains("hidden")),
        "{e}"
    );
    // A sheet pointing at a relationship that is not there.
    let bytes = two_sheets(&[("明细", "rId9", "")], &one, &two);
    assert!(parse(&bytes).unwrap_err().to_string().contains("rId9"));
    // Without the relationships part, sheet1.xml (and sharedStrings.xml) are read.
    let strings = sst(&STRINGS);
    let bytes = fixtures::zip_of(&[
        ("xl/worksheets/sheet1.xml", one.as_bytes()),
        ("xl/sharedStrings.xml", strings.as_bytes()),
    ]);
    assert_eq!(parse(&bytes).unwrap().lines[0].channel_txn, "FROM-SHEET1");
    // Two parts whose names differ only by case (part names are case-insensitive): which one a
    // reader takes is unclear, so the file is refused.
    let bytes = fixtures::zip_of(&[
        ("xl/worksheets/sheet1.xml", one.as_bytes()),
        ("xl/worksheets/Sheet1.xml", two.as_bytes()),
        ("xl/sharedStrings.xml", strings.as_bytes()),
    ]);
    let e = parse(&bytes).unwrap_err();
    assert!(
        matches!(&e, StatementError::Zip { detail } if detail.contains("two entries")),
        "{e}"
    );
}

#[test]
fn a_zip_without_a_worksheet_says_what_is_missing() {
    let bytes = fixtures::zip_of(&[("xl/workbook.xml", b"<workbook/>"), ("readme.txt", b"x")]);
    let e = parse(&bytes).unwrap_err();
    assert!(e.to_string().contains("no worksheet"), "{e}");
    // An Alipay statement handed in as a bank statement.
    let bytes = fixtures::zip_of(&[("20880012345678900156_20261201_业务明细.csv", b"x")]);
    let e = parse(&bytes).unwrap_err();
    match &e {
        StatementError::Workbook { part, problem } => {
            assert_eq!(part, "xl/worksheets/sheet1.xml");
            assert!(problem.contains("业务明细.csv"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // An OpenDocument spreadsheet.
    let bytes = fixtures::zip_of(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        ),
        ("content.xml", b"<x/>"),
    ]);
    assert!(parse(&bytes).unwrap_err().to_string().contains(".ods"));
}

#[test]
fn a_legacy_xls_is_refused_with_what_to_do() {
    let mut xls = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    xls.extend_from_slice(&[0; 504]);
    for e in [
        parse(&xls).unwrap_err(),
        parse_bank_xlsx(&xls, &profile(), &Limits::default()).unwrap_err(),
        parse_bank_csv(&xls, &profile(), &Limits::default()).unwrap_err(),
    ] {
        assert_eq!(e, StatementError::LegacyXls);
        assert!(
            e.to_string()
                .contains("an .xls (Excel 97) file: save it as .xlsx or CSV"),
            "{e}"
        );
    }
}

#[test]
fn a_truncated_workbook_is_a_zip_error_wherever_it_is_cut() {
    let day = fixtures::day(Channel::Bank, 5, date(), 50, 2);
    let p = fixtures::credit_debit_profile();
    let bytes = fixtures::bank_xlsx(&p, &day.payments, &day.refunds, &BankXlsxOpts::default());
    assert!(parse_bank_xlsx(&bytes, &p, &Limits::default()).is_ok());
    for cut in (4..bytes.len()).step_by(97) {
        let e = parse_bank(&bytes[..cut], &p, &Limits::default()).unwrap_err();
        assert!(
            matches!(
                e,
                StatementError::Zip { .. } | StatementError::Encoding { .. }
            ),
            "cut at {cut}: {e:?}"
        );
    }
    let e = parse_bank_xlsx(&bytes[..bytes.len() / 2], &p, &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, StatementError::Zip { detail } if !detail.is_empty()),
        "{e}"
    );
    assert!(
        e.to_string().contains("download the statement again"),
        "{e}"
    );
}

#[test]
fn a_sheet_cut_short_inside_the_xml_is_refused() {
    let xml = sheet(&[header_rows(), vec![payment(3, "CB1", "1")]].concat());
    let cut = &xml[..xml.len() - 30];
    let bytes = fixtures::xlsx_package(cut, Some(&sst(&STRINGS)));
    let e = parse(&bytes).unwrap_err();
    assert!(
        matches!(&e, StatementError::Workbook { part, problem }
            if part == "xl/worksheets/sheet1.xml" && problem.contains("cut short")),
        "{e}"
    );
}

/// Sets the uncompressed size the ZIP declares for `name` (local header and central directory).
fn declare_size(zip: &mut [u8], name: &str, size: u32) {
    let name = name.as_bytes();
    let mut i = 0;
    while let Some(at) = zip[i..].windows(name.len()).position(|w| w == name) {
        let at = i + at;
        if at >= 30 && zip[at - 30..at - 26] == *b"PK\x03\x04" {
            zip[at - 30 + 22..at - 30 + 26].copy_from_slice(&size.to_le_bytes());
        } else if at >= 46 && zip[at - 46..at - 42] == *b"PK\x01\x02" {
            zip[at - 46 + 24..at - 46 + 28].copy_from_slice(&size.to_le_bytes());
        }
        i = at + 1;
    }
}

#[test]
fn a_zip_bomb_is_refused_within_the_budget() {
    // A sheet that inflates to 8 MiB (blanks between the rows) from a few kilobytes.
    let padding = " ".repeat(8 << 20);
    let xml = sheet(&[header_rows(), vec![padding, payment(3, "CB1", "1")]].concat());
    let bytes = fixtures::xlsx_package(&xml, Some(&sst(&STRINGS)));
    assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
    let limits = Limits {
        max_uncompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    assert!(parse(&bytes).is_ok(), "within the default limit");
    // Its header declares the size: refused before inflating.
    let e = parse_bank(&bytes, &profile(), &limits).unwrap_err();
    assert!(
        matches!(&e, StatementError::ZipBomb { name, how: "declares", limit: 1_048_576 }
            if name == "xl/worksheets/sheet1.xml"),
        "{e}"
    );
    // Its header lies (declares 100 bytes): the ZIP reader stops at the size declared, and the
    // budget would stop it anyway (see the `archive` unit tests); never more is held.
    let mut lying = bytes.clone();
    declare_size(&mut lying, "xl/worksheets/sheet1.xml", 100);
    let e = parse_bank(&lying, &profile(), &limits).unwrap_err();
    assert!(
        matches!(&e, StatementError::ZipBomb { how, .. } if how.contains("inflates"))
            || matches!(
                &e,
                StatementError::Zip { .. } | StatementError::Workbook { .. }
            ),
        "{e:?}"
    );
    // The parts count together: the shared strings and the sheet, each under the limit.
    let strings: Vec<String> = (0..20_000).map(|i| format!("字符串{i:08}")).collect();
    let mut all: Vec<&str> = STRINGS.to_vec();
    all.extend(strings.iter().map(String::as_str));
    let xml = sheet(&[header_rows(), vec![payment(3, "CB1", "1")]].concat());
    let padded = format!("{xml}{}", " ".repeat(600 << 10));
    let bytes = fixtures::xlsx_package(&padded, Some(&sst(&all)));
    let e = parse_bank(&bytes, &profile(), &limits).unwrap_err();
    assert!(
        matches!(&e, StatementError::ZipBomb { how, .. } if how.contains("before")),
        "{e}"
    );
}

#[test]
fn control_characters_in_a_cell_are_refused_like_the_csv() {
    for bad in ["张_x0001_伟", "张&#27;伟", "张\u{7}伟"] {
        let bytes = workbook(
            &[row(
                3,
                &[
                    inline("A3", "2026/12/01"),
                    inline("B3", "CB1"),
                    n("D3", "1"),
                    s("G3", 11),
                ],
            )],
            &[bad],
        );
        let e = parse(&bytes).unwrap_err();
        let rows = e.row_errors();
        assert_eq!(rows.len(), 1, "{bad}: {e}");
        assert_eq!(rows[0].column.as_deref(), Some("对方户名"), "{bad}: {e}");
        assert!(rows[0].problem.contains("control characters"), "{bad}: {e}");
    }
    // Excel's escape of an underscore: the text is kept as written.
    let bytes = workbook(
        &[row(
            3,
            &[
                inline("A3", "2026/12/01"),
                inline("B3", "CB1"),
                n("D3", "1"),
                s("G3", 11),
            ],
        )],
        &["a_x005F_x0001_b"],
    );
    assert_eq!(
        parse(&bytes).unwrap().lines[0].counterparty.as_deref(),
        Some("a_x0001_b")
    );
}

#[test]
fn cells_outside_the_sheet_or_the_table_are_refused() {
    for (cell, words) in [
        ("XFE3", "beyond column XFD"),
        ("A1048577", "beyond row 1,048,576"),
        ("A4", "inside row 3"),
        ("3A", "not a column's letters"),
    ] {
        let cells = [payment_cells(3, "CB1", "1"), vec![n(cell, "1")]].concat();
        let e = parse(&workbook(&[row(3, &cells)], &[])).unwrap_err();
        assert!(
            matches!(&e, StatementError::Workbook { problem, .. } if problem.contains(words)),
            "{cell}: {e}"
        );
    }
    // Out of order.
    let bytes = workbook(&[payment(4, "CB1", "1"), payment(3, "CB2", "1")], &[]);
    assert!(
        parse(&bytes)
            .unwrap_err()
            .to_string()
            .contains("out of order")
    );
    let bytes = workbook(&[row(3, &[n("D3", "1"), inline("A3", "2026/12/01")])], &[]);
    assert!(
        parse(&bytes)
            .unwrap_err()
            .to_string()
            .contains("out of order")
    );
    // A shared string that is not there.
    let bytes = workbook(&[row(3, &[s("A3", 99)])], &[]);
    assert!(
        parse(&bytes)
            .unwrap_err()
            .to_string()
            .contains("shared string \"99\"")
    );
    // A value right of the header's last column (J) is a row error; an empty cell there is not.
    let bytes = workbook(
        &[
            row(
                3,
                &[payment_cells(3, "CB1", "1"), vec![n("K3", "9")]].concat(),
            ),
            row(
                4,
                &[
                    payment_cells(4, "CB2", "1"),
                    vec!["<c r=\"Z4\" s=\"1\"/>".to_string()],
                ]
                .concat(),
            ),
        ],
        &[],
    );
    let e = parse(&bytes).unwrap_err();
    assert_eq!(e.row_errors().len(), 1, "{e}");
    assert_eq!(e.row_errors()[0].line_no, 3);
    assert!(
        e.row_errors()[0].problem.contains("right of the header"),
        "{e}"
    );
    assert_eq!(e.row_errors()[0].column.as_deref(), Some("K3"));
}

#[test]
fn limits_bound_rows_fields_strings_and_entries() {
    let rows: Vec<String> = (3..13)
        .map(|r| payment(r, &format!("CB{r}"), "1"))
        .collect();
    let bytes = workbook(&rows, &[]);
    let limits = Limits {
        max_rows: 5,
        ..Limits::default()
    };
    assert!(matches!(
        parse_bank(&bytes, &profile(), &limits),
        Err(StatementError::TooManyRows {
            line_no: 8,
            limit: 5
        })
    ));
    // A field over the limit: its size, not what is kept of it, is reported.
    let long = "长".repeat(2_000);
    let bytes = workbook(
        &[row(
            3,
            &[
                inline("A3", "2026/12/01"),
                inline("B3", "CB1"),
                inline("C3", &long),
                n("D3", "1"),
            ],
        )],
        &[],
    );
    let e = parse(&bytes).unwrap_err();
    assert_eq!(e.row_errors().len(), 1, "{e}");
    assert!(e.row_errors()[0].problem.contains("6000 bytes"), "{e}");
    // Too many entries.
    let names: Vec<String> = (0..65).map(|i| format!("xl/media/image{i}.png")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    assert_eq!(
        parse(&fixtures::zip_of(&entries)).unwrap_err(),
        StatementError::TooManyEntries {
            count: 65,
            limit: 64
        }
    );
    // Over the size limit, before anything is opened.
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(
        parse_bank(&bytes, &profile(), &limits),
        Err(StatementError::TooLarge { .. })
    ));
}

#[test]
fn numbers_that_are_not_amounts_or_ids() {
    // An id Excel wrote as a float has lost digits: refused. Plain digits are fine.
    let bytes = workbook(
        &[
            row(
                3,
                &[
                    inline("A3", "2026/12/01"),
                    n("B3", "6.2220200000000005E+18"),
                    n("D3", "1"),
                ],
            ),
            row(
                4,
                &[
                    inline("A4", "2026/12/01"),
                    n("B4", "20261201000001"),
                    n("D4", "1"),
                ],
            ),
        ],
        &[],
    );
    let e = parse(&bytes).unwrap_err();
    assert_eq!(e.row_errors().len(), 1, "{e}");
    assert_eq!(e.row_errors()[0].line_no, 3);
    assert!(e.row_errors()[0].problem.contains("15 digits"), "{e}");
    // Formula-looking text stays text, and booleans and errors are text too.
    let bytes = workbook(
        &[row(
            3,
            &[
                inline("A3", "2026/12/01"),
                inline("B3", "CB1"),
                "<c r=\"C3\" t=\"b\"><v>1</v></c>".to_string(),
                n("D3", "1"),
                inline("G3", "=HYPERLINK(\"http://x\")"),
                "<c r=\"H3\" t=\"e\"><v>#N/A</v></c>".to_string(),
            ],
        )],
        &[],
    );
    let st = parse(&bytes).unwrap();
    assert_eq!(
        st.lines[0].counterparty.as_deref(),
        Some("=HYPERLINK(\"http://x\") #N/A")
    );
    assert_eq!(st.lines[0].memo.as_deref(), Some("TRUE"));
}

#[test]
fn damaged_sheets_never_panic() {
    let day = fixtures::day(Channel::Bank, 9, date(), 5, 1);
    let p = fixtures::signed_profile();
    let good = fixtures::bank_xlsx(&p, &day.payments, &day.refunds, &BankXlsxOpts::default());
    assert!(parse_bank(&good, &p, &Limits::default()).is_ok());
    // Damage the sheet's XML (not the ZIP, whose checksums would catch it first).
    let xml = sheet(
        &[
            header_rows(),
            vec![payment(3, "CB1", "1"), payment(5, "CB2", "2")],
        ]
        .concat(),
    );
    let strings = sst(&STRINGS);
    let mut rng = fixtures::Rng::new(4242);
    for _ in 0..600 {
        let mut damaged = xml.as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(damaged.len() as u64) as usize;
            damaged[at] = b"<>/\"'=&;#x0A r9c\x01"[rng.below(17) as usize];
        }
        let damaged = String::from_utf8_lossy(&damaged);
        let _ = parse(&fixtures::xlsx_package(&damaged, Some(&strings)));
    }
    // And the ZIP itself.
    for _ in 0..600 {
        let mut damaged = good.clone();
        let at = rng.below(damaged.len() as u64) as usize;
        damaged[at] = rng.below(256) as u8;
        let _ = parse_bank(&damaged, &p, &Limits::default());
    }
}
