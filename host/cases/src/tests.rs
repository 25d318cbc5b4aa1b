use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::compare::{compare_day, compare_range};
use std::path::Path;

use crate::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A case file of one chain entry and the given cases.
fn file(cases: &str) -> CaseFile {
    CaseFile::parse(
        &format!("[[chain]]\nplugin = \"area-tariff\"\n\n{cases}"),
        "t.toml",
    )
    .unwrap()
}

fn one_case(case: &str) -> Case {
    file(case).cases.remove(0)
}

fn refusal(text: &str) -> String {
    format!("{:#}", CaseFile::parse(text, "t.toml").unwrap_err())
}

fn line(code: &str, amount: &str, payer: Payer) -> Line {
    Line {
        code: code.into(),
        amount: dec(amount),
        quantity: dec("60"),
        unit_price: dec("0.21"),
        payer,
        category: "heating".into(),
    }
}

/// A heat line of 12.56 and a government subsidy of -3.14.
fn bill() -> Bill {
    Bill::from_lines(vec![
        line("heat", "12.56", Payer::Customer),
        line("subsidy", "-3.14", Payer::Government),
    ])
}

fn error(kind: &str, message: &str) -> BillError {
    BillError {
        kind: kind.into(),
        message: message.into(),
        text: format!("company `t`, customer `case`, 2026-01-15: {message}"),
    }
}

const DAY: &str = r#"
[[case]]
name = "day"
customer = { date = "2026-01-15", building_area = "75" }
expect.lines = [
  { code = "heat", amount = "12.56", quantity = "60", unit_price = "0.21" },
  { code = "subsidy", amount = "-3.14", payer = "government" },
]
expect.totals = { total = "9.42", customer = "12.56", government = "-3.14", employer = "0" }
"#;

#[test]
fn a_matching_bill_passes() {
    let case = one_case(DAY);
    let outcome = compare_day(&case, &Ok(bill()));
    assert!(outcome.passed(), "{:?}", outcome.diffs);
    assert_eq!(outcome.name, "day");
    assert_eq!(
        outcome.got,
        "heat 12.56, subsidy -3.14 (government) | total 9.42"
    );
    assert_eq!(compare(&case, &[Ok(bill())]), outcome);
}

#[test]
fn a_wrong_amount_quantity_or_payer_is_a_diff() {
    let case = one_case(DAY);
    let mut b = bill();
    b.lines[0].amount = dec("12.57");
    b.lines[0].quantity = dec("61");
    b.lines[1].payer = Payer::Employer;
    b.lines[1].code = "refund".into();
    let b = Bill::from_lines(b.lines);
    let outcome = compare_day(&case, &Ok(b));
    assert_eq!(
        outcome.diffs,
        [
            "line 1 heat: amount expected 12.56, got 12.57",
            "line 1 heat: quantity expected 60, got 61",
            "line 2: code expected subsidy, got refund",
            "line 2 subsidy: payer expected government, got employer",
            "totals.total: expected 9.42, got 9.43",
            "totals.customer: expected 12.56, got 12.57",
            "totals.government: expected -3.14, got 0",
            "totals.employer: expected 0, got -3.14",
        ]
    );
    assert!(!outcome.passed());
}

#[test]
fn a_missing_line_is_a_diff() {
    let case = one_case(DAY);
    let outcome = compare_day(
        &case,
        &Ok(Bill::from_lines(vec![line(
            "heat",
            "12.56",
            Payer::Customer,
        )])),
    );
    assert_eq!(
        outcome.diffs[0],
        "line 2: expected subsidy -3.14 (government), got no line"
    );
}

#[test]
fn an_unexpected_line_is_a_diff() {
    let case = one_case(
        r#"
[[case]]
name = "one line"
customer = { date = "2026-01-15" }
expect.lines = [{ code = "heat", amount = "12.56" }]
"#,
    );
    let outcome = compare_day(&case, &Ok(bill()));
    assert_eq!(
        outcome.diffs,
        ["line 2: unexpected subsidy -3.14 (government)"]
    );
    // Without `totals`, no total is compared; with the matching lines alone, it passes.
    let alone = Bill::from_lines(vec![line("heat", "12.56", Payer::Customer)]);
    assert!(compare_day(&case, &Ok(alone)).passed());
}

#[test]
fn totals_are_compared_only_when_given() {
    let case = one_case(
        r#"
[[case]]
name = "totals"
customer = { date = "2026-01-15" }
expect.totals = { customer = "12.56" }
"#,
    );
    assert!(compare_day(&case, &Ok(bill())).passed());
    let cheaper = Bill::from_lines(vec![line("heat", "10.00", Payer::Customer)]);
    assert_eq!(
        compare_day(&case, &Ok(cheaper)).diffs,
        ["totals.customer: expected 12.56, got 10.00"]
    );
}

#[test]
fn an_expected_error_compares_kind_and_message() {
    let case = one_case(
        r#"
[[case]]
name = "refused"
customer = { date = "2026-01-15" }
expect = { error = "missing-input", message = "usable_area" }
"#,
    );
    let right = error(
        "missing-input",
        "rule error (missing-input): no usable_area",
    );
    let outcome = compare_day(&case, &Err(right.clone()));
    assert!(outcome.passed(), "{:?}", outcome.diffs);
    assert_eq!(outcome.got, format!("error missing-input: {}", right.text));

    let other_kind = error("unsupported", "rule error (unsupported): no usable_area");
    assert_eq!(
        compare_day(&case, &Err(other_kind)).diffs,
        ["error: expected missing-input, got unsupported"]
    );
    let other_message = error("missing-input", "rule error (missing-input): no heat");
    assert_eq!(
        compare_day(&case, &Err(other_message.clone())).diffs,
        [format!(
            "error: expected a message containing \"usable_area\", got: {}",
            other_message.text
        )]
    );
    assert_eq!(
        compare_day(&case, &Ok(bill())).diffs,
        ["expected error missing-input, got a bill"]
    );

    let day = one_case(DAY);
    assert_eq!(
        compare_day(&day, &Err(right.clone())).diffs,
        [format!("expected a bill, got an error: {}", right.text)]
    );
}

const RANGE: &str = r#"
[[case]]
name = "range"
dates = { from = "2026-01-30", to = "2026-02-02" }
expect.sum = { heat = "37.68", subsidy = "-9.42" }
expect.totals = { total = "28.26", government = "-9.42" }
expect.days = 3
"#;

#[test]
fn a_range_case_covers_its_dates_and_compares_sums() {
    let case = one_case(RANGE);
    assert_eq!(
        case.dates(),
        [
            date("2026-01-30"),
            date("2026-01-31"),
            date("2026-02-01"),
            date("2026-02-02")
        ]
    );
    let results = [Ok(bill()), Ok(bill()), Ok(Bill::default()), Ok(bill())];
    let outcome = compare(&case, &results);
    assert!(outcome.passed(), "{:?}", outcome.diffs);
    assert_eq!(
        outcome.got,
        "3 days billed, heat 37.68, subsidy -9.42 | total 28.26"
    );

    // A day more with lines: every sum, the totals and the day count differ.
    let results = [Ok(bill()), Ok(bill()), Ok(bill()), Ok(bill())];
    assert_eq!(
        compare_range(&case, &results).diffs,
        [
            "sum.heat: expected 37.68, got 50.24",
            "sum.subsidy: expected -9.42, got -12.56",
            "totals.total: expected 28.26, got 37.68",
            "totals.government: expected -9.42, got -12.56",
            "days: expected 3, got 4",
        ]
    );

    // A failed date is reported with the first error.
    let e = error("trap", "trap (unreachable): boom");
    let results = [Ok(bill()), Err(e.clone()), Ok(Bill::default()), Ok(bill())];
    let diffs = compare_range(&case, &results).diffs;
    assert_eq!(diffs[0], format!("1 of 4 dates failed; first: {}", e.text));
}

#[test]
fn a_range_case_expecting_an_error_needs_it_on_every_date() {
    let case = one_case(
        r#"
[[case]]
name = "range refused"
dates = { from = "2026-01-01", to = "2026-01-02" }
expect = { error = "unsupported", message = "class" }
"#,
    );
    let e = error("unsupported", "rule error (unsupported): special class");
    assert!(compare_range(&case, &[Err(e.clone()), Err(e.clone())]).passed());
    let want = "expected error unsupported on every date; 1 of 2 dates failed";
    assert_eq!(
        compare_range(&case, &[Err(e.clone()), Ok(bill())]).diffs,
        [want]
    );
    let other = error("unsupported", "rule error (unsupported): status");
    assert_eq!(
        compare_range(&case, &[Err(e), Err(other)]).diffs,
        ["expected error unsupported on every date; 2 of 2 dates failed"]
    );
}

#[test]
fn a_single_day_case_covers_its_date_and_wants_one_result() {
    let case = one_case(DAY);
    assert_eq!(case.dates(), [date("2026-01-15")]);
    assert_eq!(
        compare(&case, &[Ok(bill()), Ok(bill())]).diffs,
        ["expected the result of one date, got 2"]
    );
}

#[test]
fn brief_names_an_error_by_kind() {
    assert_eq!(brief(&Err(error("trap", "x"))), "error trap");
    assert_eq!(
        brief(&Ok(bill())),
        "heat 12.56, subsidy -3.14 (government) | total 9.42"
    );
}

#[test]
fn parameters_and_chain_versions_follow_their_dates() {
    let f = CaseFile::parse(
        r#"
[[chain]]
plugin = "area-tariff"
params = { price = "1" }
[[chain.from]]
date = "2026-01-01"
params = { price = "2" }
[[chain.from]]
date = "2026-03-01"
params = { price = "3" }

[[chain]]
plugin = "late-fee"
[[chain.from]]
date = "2026-01-01"
params = { rate = "0.003" }
"#,
        "versions.toml",
    )
    .unwrap();
    let price = |d: Option<&str>| {
        f.chain[0].params_on(d.map(date))["price"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(price(None), "1");
    assert_eq!(price(Some("2025-12-31")), "1");
    assert_eq!(price(Some("2026-01-01")), "2");
    assert_eq!(price(Some("2026-12-01")), "3");
    assert_eq!(f.version_dates(), [date("2026-01-01"), date("2026-03-01")]);
    assert_eq!(f.company(), "versions");
    assert_eq!(f.chain_summary(), "area-tariff → late-fee");
    assert!(f.chain[1].params.as_table().unwrap().is_empty());
}

#[test]
fn heat_is_converted_to_gj_exactly() {
    let case = one_case(
        r#"
[[case]]
name = "kwh"
customer = { date = "2026-01-15", heat = "120", heat_unit = "kWh" }
expect.totals = { total = "0" }
"#,
    );
    assert_eq!(case.customer.heat_unit, HeatUnit::Kwh);
    assert_eq!(case.customer.heat_gj(), Some(dec("0.432")));
    assert_eq!(case.customer.heat_gj().unwrap().to_string(), "0.432");
    let gj = one_case(
        r#"
[[case]]
name = "gj"
customer = { date = "2026-01-15", heat = "1.20" }
expect.totals = { total = "0" }
"#,
    );
    assert_eq!(gj.customer.heat_gj().unwrap().to_string(), "1.20");
}

#[test]
fn an_unknown_key_is_refused_with_its_name() {
    let e = refusal(
        r#"
[[chain]]
plugin = "area-tariff"

[[case]]
name = "typo"
customer = { date = "2026-01-15", buildng_area = "75" }
expect.totals = { total = "0" }
"#,
    );
    assert!(e.starts_with("case file t.toml is not valid"), "{e}");
    assert!(e.contains("unknown field `buildng_area`"), "{e}");

    let e = refusal("[[chain]]\nplugin = \"x\"\nparam = {}\n");
    assert!(e.contains("unknown field `param`"), "{e}");
    let e = refusal(
        "[[chain]]\nplugin = \"x\"\n[[case]]\nname = \"n\"\ncustomer = { date = \"2026-01-15\" }\nexpect = { total = \"0\" }\n",
    );
    assert!(e.contains("unknown field `total`"), "{e}");
}

#[test]
fn inconsistent_cases_are_refused() {
    let chain = "[[chain]]\nplugin = \"area-tariff\"\n";
    let case = |body: &str| refusal(&format!("{chain}[[case]]\nname = \"c\"\n{body}"));
    assert!(refusal("chain = []").contains("the chain is empty"));
    assert!(
        case("expect.totals = { total = \"0\" }\n")
            .contains("case \"c\": give the bill date as customer.date")
    );
    assert!(
        case("customer = { date = \"2026-01-15\" }\nexpect = {}\n").contains("expect nothing?")
    );
    assert!(
        case("customer = { date = \"2026-01-15\" }\nexpect = { error = \"boom\" }\n")
            .contains("expect.error = \"boom\" is not a kind")
    );
    assert!(
        case("customer = { date = \"2026-01-15\" }\nexpect.lines = [{ code = \"heat\", amount = \"1\", payer = \"landlord\" }]\n")
            .contains("payer \"landlord\" is not a payer")
    );
    assert!(
        case("dates = { from = \"2026-01-02\", to = \"2026-01-01\" }\nexpect.days = 0\n")
            .contains("dates.to is before dates.from")
    );
    assert!(
        case("customer = { date = \"2026-01-15\" }\nexpect.days = 1\n")
            .contains("`sum` and `days` are for range cases")
    );
    assert!(
        case("customer = { date = \"2026-01-15\", heat = \"79228162514264337593543950335\", heat_unit = \"MWh\" }\nexpect.totals = { total = \"0\" }\n")
            .contains("does not fit a decimal in GJ")
    );
}

/// The review's 257-byte file: one range over every date chrono has in common years. It is
/// refused from its dates alone; the count is arithmetic (no customer-day is made), so this
/// test would take gigabytes if it were not.
#[test]
fn a_range_over_millennia_is_refused_from_its_dates() {
    let text = "[[chain]]\nplugin = \"area-tariff\"\n[[case]]\nname = \"forever\"\n\
                dates = { from = \"0001-01-01\", to = \"9999-12-31\" }\nexpect.days = 0\n";
    assert!(text.len() < 300);
    let e = refusal(text);
    assert!(
        e.contains("the cases bill 3652059 customer-days")
            && e.contains(&format!("at most {MAX_CUSTOMER_DAYS}"))
            && e.contains("\"forever\""),
        "{e}"
    );
    // Many cases of ranges just under the cap each add up to the same refusal.
    let mut many = String::from("[[chain]]\nplugin = \"area-tariff\"\n");
    for i in 0..30 {
        many.push_str(&format!(
            "[[case]]\nname = \"c{i}\"\ndates = {{ from = \"2000-01-01\", to = \"2009-12-31\" }}\nexpect.days = 0\n"
        ));
    }
    let e = refusal(&many);
    assert!(e.contains("the cases bill 109590 customer-days"), "{e}");
    // At the cap, the file is read.
    let f = file(
        "[[case]]\nname = \"long\"\ndates = { from = \"2000-01-01\", to = \"2099-12-31\" }\nexpect.days = 0\n",
    );
    assert_eq!(f.customer_days(), 36_525);
    assert_eq!(f.cases[0].day_count(), 36_525);
}

/// Each customer-day copies its customer: a customer with many tags bounds the days it may span.
#[test]
fn heavy_customers_are_bounded_by_the_memory_their_days_take() {
    let tags: Vec<String> = (0..5_000).map(|i| format!("\"tag-{i:05}\"")).collect();
    let with = |when: &str| {
        format!(
            "[[chain]]\nplugin = \"area-tariff\"\n[[case]]\nname = \"tagged\"\n\
             customer = {{ {when}tags = [{}] }}\n{}",
            tags.join(","),
            if when.is_empty() {
                "dates = { from = \"2025-01-01\", to = \"2025-12-31\" }\nexpect.days = 0\n"
            } else {
                "expect.totals = { total = \"0\" }\n"
            }
        )
    };
    let e = refusal(&with(""));
    assert!(
        e.contains("take about") && e.contains("\"tagged\"") && e.contains("365 days"),
        "{e}"
    );
    // The same customer on one day is about 200 KiB: read.
    let f = CaseFile::parse(&with("date = \"2025-01-01\", "), "t.toml").unwrap();
    assert_eq!(f.customer_days(), 1);
    assert!(f.input_bytes() > 200_000 && f.input_bytes() < MAX_INPUT_BYTES);
}

#[test]
fn oversized_files_and_chains_are_refused_before_parsing() {
    let big = format!(
        "[[chain]]\nplugin = \"area-tariff\"\n# {}\n",
        "x".repeat(MAX_FILE_BYTES as usize)
    );
    let e = refusal(&big);
    assert!(e.contains("a case file is at most 1048576 bytes"), "{e}");

    let dir = std::env::temp_dir().join(format!("heatbill-cases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.toml");
    std::fs::write(&path, &big).unwrap();
    let e = format!("{:#}", CaseFile::load(&path).unwrap_err());
    assert!(e.contains("a case file is at most 1048576 bytes"), "{e}");
    // Whatever the path names is read no further than the cap (here, a device that never ends).
    let e = format!("{:#}", CaseFile::load(Path::new("/dev/zero")).unwrap_err());
    assert!(e.contains("over 1048576 bytes"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();

    let mut chain = String::new();
    for _ in 0..=MAX_CHAIN_ENTRIES {
        chain.push_str("[[chain]]\nplugin = \"area-tariff\"\n");
    }
    assert!(refusal(&chain).contains("a case file's chain has at most 64"));
    let mut versions = String::from("[[chain]]\nplugin = \"area-tariff\"\n");
    let mut d = date("2000-01-01");
    for _ in 0..=MAX_PARAMS_VERSIONS {
        versions.push_str(&format!("[[chain.from]]\ndate = \"{d}\"\nparams = {{}}\n"));
        d = d.succ_opt().unwrap();
    }
    assert!(refusal(&versions).contains("parameter versions; a case file has at most 1000"));
}
