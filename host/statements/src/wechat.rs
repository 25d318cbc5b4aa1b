//! WeChat Pay's trade bill (交易账单), bill type ALL.
//!
//! Layout, as WeChat Pay's merchant documentation for 下载交易账单 (`downloadbill`, and the
//! v3 `tradebill` download) publishes it:
//!
//! - UTF-8 text (a BOM may lead), one header line, then one line per order event of the day:
//!   `交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,
//!   交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,
//!   充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,
//!   费率备注`. Other bill types (SUCCESS, REFUND) and newer versions have other column sets,
//!   so columns are found by name.
//! - Every data field starts with a backtick (`` ` ``) so a spreadsheet keeps long numbers as
//!   text; it is stripped.
//! - A payment is a row with 交易状态 `SUCCESS`; a refund is a row of its own with 交易状态
//!   `REFUND`, its 微信退款单号, 商户退款单号 and 退款金额 filled, and the original 微信订单号.
//! - Amounts are yuan (元) with two decimals; 手续费 (the fee) is stated to up to five
//!   decimals, and negative on a refund row (the fee given back).
//! - After the rows, a summary header `总交易单数,应结订单总金额,退款总金额,充值券退款总金额,
//!   手续费总金额,订单总金额,申请退款总金额` and one row of figures (backtick-prefixed too).
//!
//! What is checked: the header has the columns read; each row has the header's field count; 货币种类
//! is `CNY`; a payment's 应结订单金额 and a refund's 退款金额 are positive; the time is
//! `YYYY-MM-DD HH:MM:SS`; no 微信订单号 (or 微信退款单号) appears twice; and the summary's
//! 总交易单数, 应结订单总金额, 退款总金额 and 手续费总金额 equal the rows' count and sums. A missing
//! summary is a truncated file. Other states (`REVOKED`, 撤销) are refused with the row's line:
//! they are rare for a heating company and need a decision on how to book them. A payment's
//! amount is its 应结订单金额 (what WeChat settles to the company; the same as 订单金额 when no
//! coupon is used); 退款状态 is not read.

use chrono::NaiveDateTime;
use csv::StringRecord;
use rust_decimal::Decimal;

use crate::error::RowError;
use crate::money::{self, AMOUNT, Format};
use crate::table::{self, Header, Reader, Rows};
use crate::{
    Channel, Limits, LineKind, Statement, StatementError, StatementLine, SummaryMismatch, text,
};

const WHAT: &str = "a WeChat Pay trade bill (交易账单, bill type ALL, as downloaded)";
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// WeChat states fees (手续费) to five decimals.
const FEE: Format = Format {
    max_scale: 5,
    thousands: false,
};

/// The summary's first column: where the rows end.
const SUMMARY_START: &str = "总交易单数";

/// A field without its backtick and surrounding blanks.
fn clean(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('`').unwrap_or(f).trim()
}

fn clean_header(field: &str) -> &str {
    clean(field.trim_start_matches('\u{feff}'))
}

struct Columns {
    time: usize,
    txn: usize,
    order_no: usize,
    state: usize,
    currency: usize,
    settled: usize,
    fee: usize,
    refund_txn: Option<usize>,
    refund_amount: Option<usize>,
    user: Option<usize>,
    product: Option<usize>,
}

impl Columns {
    fn find(h: &Header) -> Result<Columns, StatementError> {
        Ok(Columns {
            time: h.require("交易时间")?,
            txn: h.require("微信订单号")?,
            order_no: h.require("商户订单号")?,
            state: h.require("交易状态")?,
            currency: h.require("货币种类")?,
            settled: h.require("应结订单金额")?,
            fee: h.require("手续费")?,
            refund_txn: h.optional("微信退款单号")?,
            refund_amount: h.optional("退款金额")?,
            user: h.optional("用户标识")?,
            product: h.optional("商品名称")?,
        })
    }
}

/// The sums the summary row is checked against.
#[derive(Default)]
struct Sums {
    count: u64,
    settled: Decimal,
    refunded: Decimal,
    fees: Decimal,
}

/// Parses a WeChat Pay trade bill (type ALL). See the module's documentation for the layout
/// and what is checked.
pub fn parse_wechat(bytes: &[u8], limits: &Limits) -> Result<Statement, StatementError> {
    limits.check_size(bytes.len())?;
    let text = text::utf8(bytes, "a WeChat Pay bill")?;
    let mut reader = Reader::new(text, false, 1);
    let mut record = StringRecord::new();

    // The header: the first line that is not blank.
    let header = loop {
        let Some(line_no) = reader.next(&mut record)? else {
            return Err(StatementError::Empty {
                expected: WHAT.to_string(),
            });
        };
        if !table::is_blank(&record) {
            break Header::new(&record, line_no, clean_header, WHAT);
        }
    };
    let columns = Columns::find(&header)?;

    let mut rows = Rows::new(limits);
    let mut sums = Sums::default();
    let mut summary: Option<(Header, StringRecord, u64)> = None;
    let mut last_line = header.line_no;
    while let Some(line_no) = reader.next(&mut record)? {
        last_line = line_no;
        if table::is_blank(&record) {
            continue;
        }
        if clean(record.get(0).unwrap_or("")) == SUMMARY_START {
            let summary_header = Header::new(&record, line_no, clean_header, WHAT);
            let mut figures = StringRecord::new();
            let figures_line = loop {
                let Some(figures_line) = reader.next(&mut figures)? else {
                    return Err(StatementError::Structure {
                        line_no,
                        problem: "the summary header has no row of figures after it: the file \
                                  is cut short; download it again"
                            .to_string(),
                    });
                };
                if !table::is_blank(&figures) {
                    break figures_line;
                }
            };
            summary = Some((summary_header, figures, figures_line));
            break;
        }
        rows.count(line_no)?;
        sums.count += 1;
        let row = header
            .check_row(&record, line_no, limits)
            .map_err(RowFail::from)
            .and_then(|()| row(&header, &columns, &record, line_no, &mut sums));
        match row {
            Ok(line) => {
                let column = match line.kind {
                    LineKind::Payment => "微信订单号",
                    LineKind::Refund => "微信退款单号",
                };
                rows.take(Ok(line), column)
            }
            Err(RowFail::Row(e)) => rows.take(Err(e), ""),
            Err(RowFail::File(e)) => return Err(*e),
        }
    }
    // Nothing but blank lines may follow the summary.
    while let Some(line_no) = reader.next(&mut record)? {
        if !table::is_blank(&record) {
            return Err(StatementError::Structure {
                line_no,
                problem: "text after the summary row: a bill ends with its summary; was another \
                          file appended?"
                    .to_string(),
            });
        }
    }
    rows.errors.into_result()?;
    let Some((summary_header, figures, figures_line)) = summary else {
        return Err(StatementError::Structure {
            line_no: last_line,
            problem: format!(
                "the summary ({SUMMARY_START},应结订单总金额,…) is missing: the file is cut \
                 short; download it again"
            ),
        });
    };
    check_summary(&summary_header, &figures, figures_line, &sums)?;
    Ok(Statement::build(Channel::Wechat, bytes, rows.lines, None))
}

/// A row's failure: a row error, or (a refund row in a bill without refund columns) an error
/// for the whole file.
enum RowFail {
    Row(RowError),
    File(Box<StatementError>),
}

impl From<RowError> for RowFail {
    fn from(e: RowError) -> RowFail {
        RowFail::Row(e)
    }
}

fn row(
    h: &Header,
    c: &Columns,
    r: &StringRecord,
    line_no: u64,
    sums: &mut Sums,
) -> Result<StatementLine, RowFail> {
    let get = |i: usize| clean(r.get(i).unwrap_or(""));
    let amount = |i: usize, format: Format| -> Result<Decimal, RowError> {
        money::parse(get(i), format).map_err(|p| RowError::at(line_no, h.name(i), get(i), p))
    };
    let currency = get(c.currency);
    if currency != "CNY" {
        return Err(RowError::at(
            line_no,
            h.name(c.currency),
            currency,
            "only CNY (人民币) bills are taken: a bill in another currency needs its own \
             reconciliation",
        )
        .into());
    }
    let time = NaiveDateTime::parse_from_str(get(c.time), TIME_FORMAT).map_err(|_| {
        RowError::at(
            line_no,
            h.name(c.time),
            get(c.time),
            "not a time: WeChat writes YYYY-MM-DD HH:MM:SS, like 2026-12-01 08:15:32",
        )
    })?;
    let settled = amount(c.settled, AMOUNT)?;
    let fee = amount(c.fee, FEE)?;
    let refunded = match c.refund_amount {
        Some(i) if !get(i).is_empty() => amount(i, AMOUNT)?,
        _ => Decimal::ZERO,
    };
    sums.settled += settled;
    sums.refunded += refunded;
    sums.fees += fee;

    let txn = get(c.txn);
    let order_no = Some(get(c.order_no).to_string()).filter(|s| !s.is_empty());
    let counterparty = c.user.map(|i| get(i).to_string()).filter(|s| !s.is_empty());
    let memo = c
        .product
        .map(|i| get(i).to_string())
        .filter(|s| !s.is_empty());
    let state = get(c.state);
    match state {
        "SUCCESS" => {
            if txn.is_empty() {
                return Err(
                    RowError::new(line_no, "微信订单号 is empty: a payment needs its id").into(),
                );
            }
            if settled <= Decimal::ZERO {
                return Err(RowError::at(
                    line_no,
                    h.name(c.settled),
                    get(c.settled),
                    "a payment's amount must be positive (a refund is a REFUND row of its own)",
                )
                .into());
            }
            if fee < Decimal::ZERO {
                return Err(RowError::at(
                    line_no,
                    h.name(c.fee),
                    get(c.fee),
                    "a payment's fee cannot be negative",
                )
                .into());
            }
            Ok(StatementLine {
                line_no,
                kind: LineKind::Payment,
                channel_txn: txn.to_string(),
                original_txn: None,
                order_no,
                account_hint: None,
                time,
                amount: settled,
                fee,
                counterparty,
                memo,
            })
        }
        "REFUND" => {
            let (Some(refund_txn), Some(refund_amount)) = (c.refund_txn, c.refund_amount) else {
                let missing = if c.refund_txn.is_none() {
                    "微信退款单号"
                } else {
                    "退款金额"
                };
                // A bill without refund columns (type SUCCESS) holding a refund row: the file
                // is not what it says, refused whole.
                return Err(RowFail::File(Box::new(h.missing(missing))));
            };
            let refund_id = get(refund_txn);
            if refund_id.is_empty() {
                return Err(RowError::new(
                    line_no,
                    "微信退款单号 is empty: a REFUND row needs its refund id",
                )
                .into());
            }
            if refunded <= Decimal::ZERO {
                return Err(RowError::at(
                    line_no,
                    h.name(refund_amount),
                    get(refund_amount),
                    "a refund's 退款金额 must be positive",
                )
                .into());
            }
            Ok(StatementLine {
                line_no,
                kind: LineKind::Refund,
                channel_txn: refund_id.to_string(),
                original_txn: Some(txn.to_string()).filter(|s| !s.is_empty()),
                order_no,
                account_hint: None,
                time,
                amount: -refunded,
                fee,
                counterparty,
                memo,
            })
        }
        other => Err(RowError::at(
            line_no,
            h.name(c.state),
            other,
            "交易状态 must be SUCCESS (a payment) or REFUND (a refund); other states (REVOKED) \
             are not taken yet",
        )
        .into()),
    }
}

fn check_summary(
    h: &Header,
    figures: &StringRecord,
    line_no: u64,
    sums: &Sums,
) -> Result<(), StatementError> {
    if figures.len() != h.len() {
        return Err(StatementError::Structure {
            line_no,
            problem: format!(
                "the summary row has {} fields but its header has {}",
                figures.len(),
                h.len()
            ),
        });
    }
    let get = |i: usize| clean(figures.get(i).unwrap_or(""));
    let unreadable = |i: usize, p: String| StatementError::Structure {
        line_no,
        problem: format!(
            "the summary's {} \"{}\" cannot be read: {p}",
            h.name(i),
            text::escape(get(i))
        ),
    };
    let count_i = h.require(SUMMARY_START)?;
    let stated_count: u64 = get(count_i)
        .parse()
        .map_err(|_| unreadable(count_i, "expected a whole number".to_string()))?;
    let mut mismatches = Vec::new();
    if stated_count != sums.count {
        mismatches.push(SummaryMismatch {
            field: SUMMARY_START.to_string(),
            stated: stated_count.to_string(),
            computed: sums.count.to_string(),
        });
    }
    for (name, computed, format) in [
        ("应结订单总金额", sums.settled, AMOUNT),
        ("退款总金额", sums.refunded, AMOUNT),
        ("手续费总金额", sums.fees, FEE),
    ] {
        let i = h.require(name)?;
        let stated = money::parse(get(i), format).map_err(|p| unreadable(i, p))?;
        if stated != computed {
            mismatches.push(SummaryMismatch {
                field: name.to_string(),
                stated: stated.to_string(),
                computed: computed.to_string(),
            });
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(StatementError::Summary {
            line_no,
            mismatches,
        })
    }
}
