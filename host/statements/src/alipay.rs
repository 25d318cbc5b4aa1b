//! Alipay's trade statement (账务明细 / 业务明细), as the merchant platform and the
//! `alipay.data.dataservice.bill.downloadurl.query` API (bill type `trade`) deliver it.
//!
//! Layout, as Alipay's documentation for the downloaded bill publishes it:
//!
//! - A ZIP holding one or more GBK CSV files; the detail file's name contains `业务明细` and
//!   not `汇总` (the other is the summary, `业务明细(汇总)`). Names inside the ZIP are usually GBK
//!   bytes without the UTF-8 flag; both are read.
//! - The detail file starts with `#` lines: `#支付宝业务明细查询`, `#账号：[2088…]`,
//!   `#起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]`; then the
//!   header `支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,
//!   终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,
//!   商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,
//!   服务费（元）,分润（元）,备注`; the rows; and `#` lines again: `#-----业务明细列表结束-----`,
//!   `#交易合计：N笔，商家实收共计：X元`, `#退款合计：M笔，商家实收共计：-Y元`, `#导出时间：[…]`.
//! - 业务类型 `交易` is a payment, `退款` a refund, whose amounts are negative. Identifiers carry
//!   trailing tabs and spaces (so a spreadsheet keeps them as text); they are trimmed.
//!
//! A payment's amount is 订单金额（元）, its fee 服务费（元） as stated; the time is 完成时间
//! (创建时间 when empty). A refund's `channel_txn` is [`alipay_refund_txn`] of its 支付宝交易号
//! and 退款批次号/请求号 (one payment can be refunded several times), its `original_txn` the
//! 支付宝交易号. When the `#交易合计` / `#退款合计` trailers are present, their counts and their
//! 商家实收 sums are checked against the rows. The period is the `#起始日期`/`终止日期` line's,
//! made inclusive (an end at 00:00:00 is the day before).

use crate::archive::{Archive, Budget};
use crate::error::RowError;
use crate::money::{self, AMOUNT};
use crate::table::{self, Header, Reader, Rows};
use crate::{
    Channel, Limits, LineKind, Statement, StatementError, StatementLine, SummaryMismatch, text,
};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use csv::StringRecord;
use rust_decimal::Decimal;

const WHAT: &str = "an Alipay statement's detail file (业务明细, as downloaded)";
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The `channel_txn` of an Alipay refund: the payment's 支付宝交易号 and the refund's
/// 退款批次号/请求号, joined by `/`. Whoever records an Alipay refund in heatbill records it
/// under this id, so that the statement's line finds it.
pub fn alipay_refund_txn(trade_no: &str, request_no: &str) -> String {
    format!("{trade_no}/{request_no}")
}

/// Parses an Alipay statement ZIP: finds its detail file and reads it as
/// [`parse_alipay_csv`] does. The ZIP is checked against [`Limits::max_bytes`] and
/// [`Limits::max_zip_entries`]; the detail file is inflated through a bound of
/// [`Limits::max_uncompressed_bytes`] whatever its header declares. The digest is the ZIP's.
pub fn parse_alipay_zip(bytes: &[u8], limits: &Limits) -> Result<Statement, StatementError> {
    limits.check_size(bytes.len())?;
    let mut archive = Archive::open(bytes, limits.max_zip_entries)?;
    let detail: Vec<usize> = archive
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, (name, dir))| name.contains("业务明细") && !name.contains("汇总") && !dir)
        .map(|(i, _)| i)
        .collect();
    let index = match detail.as_slice() {
        [one] => *one,
        [] => {
            return Err(StatementError::DetailFile {
                problem: "the ZIP has no detail file (a name with 业务明细 and without 汇总): is \
                          this an Alipay statement?"
                    .to_string(),
                names: archive.listed(),
            });
        }
        _ => {
            return Err(StatementError::DetailFile {
                problem: "the ZIP has more than one detail file (业务明细): upload each \
                          statement on its own"
                    .to_string(),
                names: archive.listed(),
            });
        }
    };
    let csv = archive.read(index, &mut Budget::new(limits.max_uncompressed_bytes))?;
    let (lines, period) = parse_detail(&csv, limits)?;
    Ok(Statement::build(Channel::Alipay, bytes, lines, period))
}

/// Parses an Alipay detail CSV (业务明细, GBK or UTF-8) taken out of its ZIP. The digest is
/// the CSV's.
pub fn parse_alipay_csv(bytes: &[u8], limits: &Limits) -> Result<Statement, StatementError> {
    limits.check_size(bytes.len())?;
    let (lines, period) = parse_detail(bytes, limits)?;
    Ok(Statement::build(Channel::Alipay, bytes, lines, period))
}

/// Trims what Alipay pads its fields with (tabs, spaces, and a BOM on the first field).
fn clean(field: &str) -> &str {
    field.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// A `#…合计：N笔，商家实收共计：X元` trailer.
struct Trailer {
    line_no: u64,
    count: u64,
    sum: Decimal,
}

/// Reads `#交易合计：3笔，商家实收共计：300.00元` (colons and commas full-width or not).
fn trailer(line: &str, line_no: u64) -> Result<Trailer, StatementError> {
    let bad = || StatementError::Structure {
        line_no,
        problem: format!(
            "the totals line \"{}\" cannot be read: expected like #交易合计：3笔，商家实收共计：300.00元",
            text::escape(line)
        ),
    };
    let after_colon = |s: &str| -> Option<usize> {
        s.find(['：', ':'])
            .map(|i| i + s[i..].chars().next().map_or(1, char::len_utf8))
    };
    let start = after_colon(line).ok_or_else(bad)?;
    let rest = &line[start..];
    let count_end = rest.find('笔').ok_or_else(bad)?;
    let count: u64 = rest[..count_end].trim().parse().map_err(|_| bad())?;
    let rest = &rest[count_end..];
    let key = rest.find("共计").ok_or_else(bad)?;
    let rest = &rest[key..];
    let start = after_colon(rest).ok_or_else(bad)?;
    let rest = &rest[start..];
    let end = rest.find('元').ok_or_else(bad)?;
    let sum = money::parse(rest[..end].trim(), AMOUNT).map_err(|_| bad())?;
    Ok(Trailer {
        line_no,
        count,
        sum,
    })
}

/// Reads `#起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]`.
fn period(line: &str, line_no: u64) -> Result<(NaiveDate, NaiveDate), StatementError> {
    let bad = || StatementError::Structure {
        line_no,
        problem: format!(
            "the period line \"{}\" cannot be read: expected like \
             #起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]",
            text::escape(line)
        ),
    };
    let bracketed = |s: &str| -> Option<NaiveDateTime> {
        let open = s.find('[')?;
        let close = open + s[open..].find(']')?;
        NaiveDateTime::parse_from_str(s[open + 1..close].trim(), "%Y年%m月%d日 %H:%M:%S").ok()
    };
    let end_key = line.find("终止日期").ok_or_else(bad)?;
    let start = bracketed(&line[..end_key]).ok_or_else(bad)?;
    let end = bracketed(&line[end_key..]).ok_or_else(bad)?;
    if end < start {
        return Err(bad());
    }
    let mut last = end.date();
    if end.time() == chrono::NaiveTime::MIN && end > start {
        last -= Duration::days(1);
    }
    Ok((start.date(), last))
}

struct Columns {
    trade_no: usize,
    order_no: usize,
    kind: usize,
    created: usize,
    finished: usize,
    amount: usize,
    received: usize,
    fee: usize,
    refund_no: Option<usize>,
    counterparty: Option<usize>,
    product: Option<usize>,
    remark: Option<usize>,
}

impl Columns {
    fn find(h: &Header) -> Result<Columns, StatementError> {
        Ok(Columns {
            trade_no: h.require("支付宝交易号")?,
            order_no: h.require("商户订单号")?,
            kind: h.require("业务类型")?,
            created: h.require("创建时间")?,
            finished: h.require("完成时间")?,
            amount: h.require("订单金额（元）")?,
            received: h.require("商家实收（元）")?,
            fee: h.require("服务费（元）")?,
            refund_no: h.optional("退款批次号/请求号")?,
            counterparty: h.optional("对方账户")?,
            product: h.optional("商品名称")?,
            remark: h.optional("备注")?,
        })
    }
}

type Detail = (Vec<StatementLine>, Option<(NaiveDate, NaiveDate)>);

fn parse_detail(bytes: &[u8], limits: &Limits) -> Result<Detail, StatementError> {
    let text = text::utf8_or_gbk(bytes, "an Alipay statement")?;

    // The `#` lines: the period and the totals.
    let mut stated_period = None;
    let mut payments_total = None;
    let mut refunds_total = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let Some(comment) = line.strip_prefix('#') else {
            continue;
        };
        let comment = comment.trim();
        if comment.starts_with("起始日期") {
            stated_period = Some(period(comment, line_no)?);
        } else if comment.starts_with("交易合计") {
            payments_total = Some(trailer(comment, line_no)?);
        } else if comment.starts_with("退款合计") {
            refunds_total = Some(trailer(comment, line_no)?);
        }
    }

    let mut reader = Reader::new(&text, true, 1);
    let mut record = StringRecord::new();
    let header = loop {
        let Some(line_no) = reader.next(&mut record)? else {
            return Err(StatementError::Empty {
                expected: WHAT.to_string(),
            });
        };
        if !table::is_blank(&record) {
            break Header::new(&record, line_no, clean, WHAT);
        }
    };
    let columns = Columns::find(&header)?;
    let mut rows = Rows::new(limits);
    let mut received = [(0u64, Decimal::ZERO), (0u64, Decimal::ZERO)];
    while let Some(line_no) = reader.next(&mut record)? {
        if table::is_blank(&record) {
            continue;
        }
        rows.count(line_no)?;
        let line = header
            .check_row(&record, line_no, limits)
            .and_then(|()| row(&header, &columns, &record, line_no, &mut received));
        rows.take(line, "支付宝交易号");
    }
    rows.errors.into_result()?;

    let mut mismatches = Vec::new();
    let mut at = 0;
    for (trailer, (count, sum), what) in [
        (&payments_total, received[0], "交易合计"),
        (&refunds_total, received[1], "退款合计"),
    ] {
        let Some(t) = trailer else { continue };
        at = at.max(t.line_no);
        if t.count != count {
            mismatches.push(SummaryMismatch {
                field: format!("{what} 笔数"),
                stated: t.count.to_string(),
                computed: count.to_string(),
            });
        }
        if t.sum != sum {
            mismatches.push(SummaryMismatch {
                field: format!("{what} 商家实收共计"),
                stated: t.sum.to_string(),
                computed: sum.to_string(),
            });
        }
    }
    if !mismatches.is_empty() {
        return Err(StatementError::Summary {
            line_no: at,
            mismatches,
        });
    }
    Ok((rows.lines, stated_period))
}

fn row(
    h: &Header,
    c: &Columns,
    r: &StringRecord,
    line_no: u64,
    received: &mut [(u64, Decimal); 2],
) -> Result<StatementLine, RowError> {
    let get = |i: usize| clean(r.get(i).unwrap_or(""));
    let amount = |i: usize| -> Result<Decimal, RowError> {
        money::parse(get(i), AMOUNT).map_err(|p| RowError::at(line_no, h.name(i), get(i), p))
    };
    let (kind, sign) = match get(c.kind) {
        "交易" => (LineKind::Payment, Decimal::ONE),
        "退款" => (LineKind::Refund, Decimal::NEGATIVE_ONE),
        other => {
            return Err(RowError::at(
                line_no,
                h.name(c.kind),
                other,
                "业务类型 must be 交易 (a payment) or 退款 (a refund)",
            ));
        }
    };
    let time_i = if get(c.finished).is_empty() {
        c.created
    } else {
        c.finished
    };
    let time = NaiveDateTime::parse_from_str(get(time_i), TIME_FORMAT).map_err(|_| {
        RowError::at(
            line_no,
            h.name(time_i),
            get(time_i),
            "not a time: Alipay writes YYYY-MM-DD HH:MM:SS, like 2026-12-01 08:15:32",
        )
    })?;
    let value = amount(c.amount)?;
    let got = amount(c.received)?;
    let fee = if get(c.fee).is_empty() {
        Decimal::new(0, 2)
    } else {
        amount(c.fee)?
    };
    if value * sign <= Decimal::ZERO {
        return Err(RowError::at(
            line_no,
            h.name(c.amount),
            get(c.amount),
            if kind == LineKind::Payment {
                "a payment (交易) must have a positive amount"
            } else {
                "a refund (退款) must have a negative amount"
            },
        ));
    }
    let trade_no = get(c.trade_no);
    if trade_no.is_empty() {
        return Err(RowError::new(
            line_no,
            "支付宝交易号 is empty: every row needs its trade number",
        ));
    }
    let slot = usize::from(kind == LineKind::Refund);
    received[slot].0 += 1;
    received[slot].1 += got;
    let (channel_txn, original_txn) = match kind {
        LineKind::Payment => (trade_no.to_string(), None),
        LineKind::Refund => {
            let Some(no) = c.refund_no.map(get).filter(|s| !s.is_empty()) else {
                return Err(RowError::new(
                    line_no,
                    "a refund (退款) needs its 退款批次号/请求号 (the column is missing or empty)",
                ));
            };
            (alipay_refund_txn(trade_no, no), Some(trade_no.to_string()))
        }
    };
    let text_of = |i: Option<usize>| i.map(|i| get(i).to_string()).filter(|s| !s.is_empty());
    let memo = match (text_of(c.product), text_of(c.remark)) {
        (Some(p), Some(r)) => Some(format!("{p} {r}")),
        (p, r) => p.or(r),
    };
    Ok(StatementLine {
        line_no,
        kind,
        channel_txn,
        original_txn,
        order_no: Some(get(c.order_no).to_string()).filter(|s| !s.is_empty()),
        account_hint: None,
        time,
        amount: value,
        fee,
        counterparty: text_of(c.counterparty),
        memo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_and_periods() {
        let t = trailer("交易合计：3笔，商家实收共计：300.00元", 9).unwrap();
        assert_eq!((t.count, t.sum.to_string()), (3, "300.00".to_string()));
        let t = trailer("退款合计:1笔,商家实收共计:-50.00元", 10).unwrap();
        assert_eq!((t.count, t.sum.to_string()), (1, "-50.00".to_string()));
        assert!(trailer("交易合计：三笔", 1).is_err());
        let (from, to) = period(
            "起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]",
            3,
        )
        .unwrap();
        assert_eq!(from.to_string(), "2026-12-01");
        assert_eq!(to.to_string(), "2026-12-01");
        assert!(period("起始日期：[2026年13月01日 00:00:00] 终止日期：[x]", 3).is_err());
    }
}
