//! Deterministic generators of real-looking statement files, for the tests and the benchmark.
//!
//! A [`Day`] of payments and refunds is generated from a seed (a xorshift, no `rand`); the
//! writers turn it into a WeChat bill ([`wechat_bill`]), an Alipay ZIP ([`alipay_zip`]), a
//! bank CSV ([`bank_csv`]) or the same bank statement as an XLSX workbook ([`bank_xlsx`], built
//! by [`xlsx_package`] around its sheet) laid out as the channels' files are, and [`scenario`]
//! pairs it with the entries heatbill would have recorded, with each kind of discrepancy
//! injected on demand.
//! The options of each writer damage the file in the ways the tests need (a summary that does
//! not add up, another currency, a BOM, GBK).

use std::io::Write;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::bank::{AmountColumns, BankProfile, MemoRule};
use crate::reconcile::Recorded;
use crate::{Channel, alipay_refund_txn};

/// A xorshift64* generator: deterministic, good enough for fixtures.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is moved off zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `n` decimal digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// A payment as the channel saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixturePayment {
    /// The channel's id: 微信订单号, 支付宝交易号, or the bank's 流水号.
    pub txn: String,
    /// The merchant's order number (商户订单号), carrying the account.
    pub order_no: String,
    /// The customer's account number (户号).
    pub account: String,
    /// When it was paid.
    pub time: NaiveDateTime,
    /// What was paid (positive, two decimals).
    pub amount: Decimal,
    /// The channel's fee (0.6%, to the fen; zero for banks).
    pub fee: Decimal,
    /// The payer (an openid, a masked Alipay login, a bank customer's name).
    pub payer: String,
    /// The product name or the bank memo.
    pub memo: String,
}

/// A refund as the channel saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureRefund {
    /// The channel's refund id: 微信退款单号, or the bank's 流水号; for Alipay the 退款批次号
    /// (the statement's id is [`FixtureRefund::statement_txn`]).
    pub refund_txn: String,
    /// The payment refunded.
    pub original_txn: String,
    /// The payment's order number.
    pub order_no: String,
    /// The customer's account.
    pub account: String,
    /// When it was refunded.
    pub time: NaiveDateTime,
    /// What was refunded (positive; the statement line is negative).
    pub amount: Decimal,
    /// The fee given back (positive).
    pub fee: Decimal,
}

impl FixtureRefund {
    /// The refund's `channel_txn` in a parsed statement of `channel`.
    pub fn statement_txn(&self, channel: Channel) -> String {
        match channel {
            Channel::Alipay => alipay_refund_txn(&self.original_txn, &self.refund_txn),
            Channel::Wechat | Channel::Bank => self.refund_txn.clone(),
        }
    }
}

/// A channel's day: payments and refunds, each sorted by time.
#[derive(Debug, Clone)]
pub struct Day {
    /// The statement's date.
    pub date: NaiveDate,
    /// The payments.
    pub payments: Vec<FixturePayment>,
    /// The refunds (of some of the payments).
    pub refunds: Vec<FixtureRefund>,
}

const NAMES: [&str; 12] = [
    "张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周婷", "吴强", "徐丽", "孙浩",
];

fn fee_of(amount: Decimal) -> Decimal {
    (amount * Decimal::new(6, 3)).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// A day of `payments` payments and `refunds` refunds (of random payments, at most what was
/// paid) in `channel`, from `seed`.
pub fn day(channel: Channel, seed: u64, date: NaiveDate, payments: usize, refunds: usize) -> Day {
    let mut rng = Rng::new(seed);
    let ymd = date.format("%Y%m%d").to_string();
    let start = date.and_time(NaiveTime::MIN);
    let mut times: Vec<u64> = (0..payments).map(|_| rng.below(86_400)).collect();
    times.sort_unstable();
    let mut pays = Vec::with_capacity(payments);
    for (seq, second) in times.into_iter().enumerate() {
        let account = format!("23{}", rng.digits(8));
        let amount = Decimal::new(5_000 + rng.below(495_001) as i64, 2);
        let txn = match channel {
            Channel::Wechat => format!("4200{}{ymd}{:010}", rng.digits(6), seq + 1),
            Channel::Alipay => format!("{ymd}22001{}{:09}", rng.digits(6), seq + 1),
            Channel::Bank => format!("HQ{ymd}{:010}", seq + 1),
        };
        let (fee, payer, memo) = match channel {
            Channel::Wechat => (
                fee_of(amount),
                format!("oUpF8u{}", rng.digits(22)),
                format!("供暖费-户号{account}"),
            ),
            Channel::Alipay => (
                fee_of(amount),
                format!("13{}****{}", rng.below(10), rng.digits(4)),
                format!("供暖费-户号{account}"),
            ),
            Channel::Bank => (
                Decimal::new(0, 2),
                NAMES[rng.below(NAMES.len() as u64) as usize].to_string(),
                format!("户号{account} 采暖费"),
            ),
        };
        pays.push(FixturePayment {
            txn,
            order_no: format!("HB{account}{ymd}{:06}", seq + 1),
            account,
            time: start + Duration::seconds(second as i64),
            amount,
            fee,
            payer,
            memo,
        });
    }
    let mut refs = Vec::with_capacity(refunds);
    if !pays.is_empty() {
        for seq in 0..refunds {
            let p = &pays[rng.below(pays.len() as u64) as usize];
            let cents = p.amount.mantissa() as u64;
            let amount = if rng.below(2) == 0 {
                p.amount
            } else {
                Decimal::new(1 + rng.below(cents) as i64, 2)
            };
            let left = 86_399 - (p.time - start).num_seconds().min(86_399);
            let time = p.time + Duration::seconds(rng.below(left as u64 + 1) as i64);
            refs.push(FixtureRefund {
                refund_txn: match channel {
                    Channel::Wechat => format!("5030{}{ymd}{:011}", rng.digits(6), seq + 1),
                    Channel::Alipay => format!("RF{ymd}{:06}", seq + 1),
                    Channel::Bank => format!("HQ{ymd}9{:09}", seq + 1),
                },
                original_txn: p.txn.clone(),
                order_no: p.order_no.clone(),
                account: p.account.clone(),
                time,
                amount,
                fee: if channel == Channel::Bank {
                    Decimal::new(0, 2)
                } else {
                    fee_of(amount)
                },
            });
        }
        refs.sort_by_key(|r| r.time);
    }
    Day {
        date,
        payments: pays,
        refunds: refs,
    }
}

/// Discrepancies to inject into a [`scenario`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Inject {
    /// The last N payments are not recorded (lost notifications).
    pub only_in_statement: usize,
    /// N recorded payments that the statement does not have.
    pub only_recorded: usize,
    /// The first N recorded payments are recorded one yuan more than the channel says.
    pub amount_mismatch: usize,
}

/// A day and what heatbill recorded of it.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The channel.
    pub channel: Channel,
    /// The channel's day.
    pub day: Day,
    /// The ledger's entries: every payment and refund of the day, with `inject` applied.
    pub recorded: Vec<Recorded>,
}

/// A day in `channel` and the entries heatbill recorded of it, with discrepancies injected.
pub fn scenario(
    channel: Channel,
    seed: u64,
    date: NaiveDate,
    payments: usize,
    refunds: usize,
    inject: Inject,
) -> Scenario {
    let day = day(channel, seed, date, payments, refunds);
    let mut recorded = Vec::with_capacity(payments + refunds + inject.only_recorded);
    let mut entry_id = 0;
    let kept = day.payments.len().saturating_sub(inject.only_in_statement);
    for (i, p) in day.payments.iter().take(kept).enumerate() {
        entry_id += 1;
        let mut amount = p.amount;
        if i < inject.amount_mismatch {
            amount += Decimal::ONE;
        }
        recorded.push(Recorded {
            entry_id,
            customer_id: p.account.clone(),
            channel_txn: p.txn.clone(),
            amount,
            on_date: date,
        });
    }
    for r in &day.refunds {
        entry_id += 1;
        recorded.push(Recorded {
            entry_id,
            customer_id: r.account.clone(),
            channel_txn: r.statement_txn(channel),
            amount: -r.amount,
            on_date: date,
        });
    }
    for i in 0..inject.only_recorded {
        entry_id += 1;
        recorded.push(Recorded {
            entry_id,
            customer_id: format!("2399{:06}", i),
            channel_txn: format!("NOT-IN-STATEMENT-{i:06}"),
            amount: Decimal::new(10_000, 2),
            on_date: date,
        });
    }
    Scenario {
        channel,
        day,
        recorded,
    }
}

/// A CSV field: quoted when it holds a separator, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `amount` with at least `dp` decimals.
fn dp(amount: Decimal, places: u32) -> String {
    let mut a = amount;
    if a.scale() < places {
        a.rescale(places);
    }
    a.to_string()
}

/// How a WeChat bill's summary is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SummaryMode {
    /// As the rows add up.
    #[default]
    Correct,
    /// Left out (a truncated file).
    Omitted,
    /// The count and the settled sum off by these.
    Off {
        /// Added to 总交易单数.
        count: i64,
        /// Added to 应结订单总金额.
        settled: Decimal,
    },
}

/// How [`wechat_bill`] writes the bill.
#[derive(Debug, Clone)]
pub struct WechatOpts {
    /// A UTF-8 BOM first.
    pub bom: bool,
    /// 货币种类 (CNY).
    pub currency: String,
    /// The summary.
    pub summary: SummaryMode,
}

impl Default for WechatOpts {
    fn default() -> Self {
        WechatOpts {
            bom: false,
            currency: "CNY".to_string(),
            summary: SummaryMode::Correct,
        }
    }
}

/// WeChat Pay's ALL trade bill header (27 columns).
pub const WECHAT_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";

/// WeChat Pay's summary header.
pub const WECHAT_SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// A WeChat Pay trade bill (type ALL) of `payments` and `refunds` on `date`, rows in time
/// order, every field backtick-prefixed, the summary after.
pub fn wechat_bill(
    _date: NaiveDate,
    payments: &[FixturePayment],
    refunds: &[FixtureRefund],
    opts: &WechatOpts,
) -> Vec<u8> {
    let wx = |s: &str| field(&format!("`{s}"));
    let time = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut rows: Vec<(NaiveDateTime, String)> = Vec::with_capacity(payments.len() + refunds.len());
    let (mut settled, mut refunded, mut fees) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for p in payments {
        settled += p.amount;
        fees += p.fee;
        let cols = [
            time(p.time),
            "wx2421b1c4370ec43b".into(),
            "1900000109".into(),
            "0".into(),
            String::new(),
            p.txn.clone(),
            p.order_no.clone(),
            p.payer.clone(),
            "JSAPI".into(),
            "SUCCESS".into(),
            "OTHERS".into(),
            opts.currency.clone(),
            dp(p.amount, 2),
            "0.00".into(),
            String::new(),
            String::new(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            String::new(),
            p.memo.clone(),
            String::new(),
            dp(p.fee, 2),
            "0.60%".into(),
            dp(p.amount, 2),
            "0.00".into(),
            String::new(),
        ];
        rows.push((
            p.time,
            cols.iter().map(|c| wx(c)).collect::<Vec<_>>().join(","),
        ));
    }
    for r in refunds {
        refunded += r.amount;
        fees -= r.fee;
        let cols = [
            time(r.time),
            "wx2421b1c4370ec43b".into(),
            "1900000109".into(),
            "0".into(),
            String::new(),
            r.original_txn.clone(),
            r.order_no.clone(),
            String::new(),
            "JSAPI".into(),
            "REFUND".into(),
            "OTHERS".into(),
            opts.currency.clone(),
            "0.00".into(),
            "0.00".into(),
            r.refund_txn.clone(),
            format!("RF{}", r.refund_txn),
            dp(r.amount, 2),
            "0.00".into(),
            "ORIGINAL".into(),
            "SUCCESS".into(),
            "供暖费退款".into(),
            String::new(),
            dp(-r.fee, 2),
            "0.60%".into(),
            "0.00".into(),
            dp(r.amount, 2),
            String::new(),
        ];
        rows.push((
            r.time,
            cols.iter().map(|c| wx(c)).collect::<Vec<_>>().join(","),
        ));
    }
    rows.sort_by_key(|(t, _)| *t);
    let mut out = String::with_capacity(rows.len() * 330 + 1024);
    if opts.bom {
        out.push('\u{feff}');
    }
    out.push_str(WECHAT_HEADER);
    out.push_str("\r\n");
    let mut count = rows.len() as i64;
    for (_, row) in rows {
        out.push_str(&row);
        out.push_str("\r\n");
    }
    match opts.summary {
        SummaryMode::Omitted => return out.into_bytes(),
        SummaryMode::Off {
            count: dc,
            settled: ds,
        } => {
            count += dc;
            settled += ds;
        }
        SummaryMode::Correct => {}
    }
    out.push_str(WECHAT_SUMMARY_HEADER);
    out.push_str("\r\n");
    let figures = [
        count.to_string(),
        dp(settled, 2),
        dp(refunded, 2),
        "0.00".into(),
        dp(fees, 5),
        dp(settled, 2),
        dp(refunded, 2),
    ];
    out.push_str(&figures.iter().map(|f| wx(f)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    out.into_bytes()
}

/// How [`alipay_zip`] writes the statement.
#[derive(Debug, Clone, Default)]
pub struct AlipayOpts {
    /// Write the detail file as UTF-8 instead of GBK.
    pub utf8: bool,
    /// Leave out the `#交易合计` / `#退款合计` trailers.
    pub no_trailer: bool,
    /// Added to the `#交易合计` sum (a trailer that does not add up).
    pub trailer_off: Decimal,
}

/// Alipay's detail header (25 columns).
pub const ALIPAY_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

/// The text of an Alipay detail file (业务明细) for `date`, `#` lines, header, rows (time order)
/// and trailers, with `\r\n` line ends; [`alipay_zip`] encodes it and puts it in a ZIP.
pub fn alipay_detail_text(
    date: NaiveDate,
    payments: &[FixturePayment],
    refunds: &[FixtureRefund],
    opts: &AlipayOpts,
) -> String {
    let zh = |d: NaiveDate| d.format("%Y年%m月%d日").to_string();
    let time = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut out = String::with_capacity((payments.len() + refunds.len()) * 260 + 1024);
    out.push_str("#支付宝业务明细查询\r\n#账号：[20880012345678900156]\r\n");
    out.push_str(&format!(
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]\r\n",
        zh(date),
        zh(date + Duration::days(1))
    ));
    out.push_str("#-----------------------------------------业务明细列表----------------------------------------\r\n");
    out.push_str(ALIPAY_HEADER);
    out.push_str("\r\n");
    let mut rows: Vec<(NaiveDateTime, String)> = Vec::new();
    let (mut paid, mut refunded) = (Decimal::ZERO, Decimal::ZERO);
    for p in payments {
        paid += p.amount;
        let cols = [
            format!("{}\t", p.txn),
            format!("{}\t", p.order_no),
            "交易".into(),
            p.memo.clone(),
            time(p.time - Duration::seconds(3)),
            time(p.time),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            p.payer.clone(),
            dp(p.amount, 2),
            dp(p.amount, 2),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            String::new(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            dp(p.fee, 2),
            "0.00".into(),
            String::new(),
        ];
        rows.push((
            p.time,
            cols.iter().map(|c| field(c)).collect::<Vec<_>>().join(","),
        ));
    }
    for r in refunds {
        refunded -= r.amount;
        let cols = [
            format!("{}\t", r.original_txn),
            format!("{}\t", r.order_no),
            "退款".into(),
            "供暖费退款".into(),
            time(r.time - Duration::seconds(1)),
            time(r.time),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            dp(-r.amount, 2),
            dp(-r.amount, 2),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            String::new(),
            "0.00".into(),
            "0.00".into(),
            format!("{}\t", r.refund_txn),
            dp(-r.fee, 2),
            "0.00".into(),
            String::new(),
        ];
        rows.push((
            r.time,
            cols.iter().map(|c| field(c)).collect::<Vec<_>>().join(","),
        ));
    }
    rows.sort_by_key(|(t, _)| *t);
    for (_, row) in rows {
        out.push_str(&row);
        out.push_str("\r\n");
    }
    out.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    if !opts.no_trailer {
        out.push_str(&format!(
            "#交易合计：{}笔，商家实收共计：{}元\r\n",
            payments.len(),
            dp(paid + opts.trailer_off, 2)
        ));
        out.push_str(&format!(
            "#退款合计：{}笔，商家实收共计：{}元\r\n",
            refunds.len(),
            dp(refunded, 2)
        ));
    }
    out.push_str(&format!(
        "#导出时间：[{} 09:12:45]\r\n",
        zh(date + Duration::days(1))
    ));
    out
}

/// Text as GBK bytes.
pub fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

/// A ZIP of `entries` (name, content), deflated.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        // Writing to memory: the only failures are programming errors in the fixture.
        out.start_file(*name, options).expect("fixture zip entry");
        out.write_all(content).expect("fixture zip write");
    }
    out.finish().expect("fixture zip").into_inner()
}

/// An Alipay statement ZIP for `date`: the detail file (GBK unless `opts.utf8`) and its summary
/// file, named as Alipay names them.
pub fn alipay_zip(
    date: NaiveDate,
    payments: &[FixturePayment],
    refunds: &[FixtureRefund],
    opts: &AlipayOpts,
) -> Vec<u8> {
    let text = alipay_detail_text(date, payments, refunds, opts);
    let detail = if opts.utf8 {
        text.into_bytes()
    } else {
        gbk(&text)
    };
    let ymd = date.format("%Y%m%d");
    let summary = gbk(&format!(
        "#支付宝业务汇总查询\r\n#账号：[20880012345678900156]\r\n门店编号,门店名称,交易订单总笔数,退款订单总笔数\r\n,,{},{}\r\n",
        payments.len(),
        refunds.len()
    ));
    zip_of(&[
        (&format!("20880012345678900156_{ymd}_业务明细.csv"), &detail),
        (
            &format!("20880012345678900156_{ymd}_业务明细(汇总).csv"),
            &summary,
        ),
    ])
}

/// A bank profile like a large bank's corporate export: two title lines, `交易日期` as
/// `%Y%m%d` with a `交易时间` column, credit and debit columns, the memo in 摘要 and 附言, the
/// account after `户号`, a `合计` line below.
pub fn credit_debit_profile() -> BankProfile {
    BankProfile {
        name: "credit-debit".into(),
        skip_rows: 2,
        date_column: "交易日期".into(),
        date_format: "%Y%m%d".into(),
        time_column: Some("交易时间".into()),
        time_format: Some("%H:%M:%S".into()),
        amounts: AmountColumns::CreditDebit {
            credit: "贷方发生额".into(),
            debit: "借方发生额".into(),
        },
        thousands_separator: true,
        txn_column: "流水号".into(),
        counterparty_name_column: Some("对方户名".into()),
        counterparty_account_column: Some("对方账号".into()),
        memo_columns: vec!["摘要".into(), "附言".into()],
        memo_rule: MemoRule::Prefix {
            prefix: "户号".into(),
            min_len: 6,
            max_len: 12,
            extra_chars: String::new(),
        },
        footer_markers: vec!["合计".into()],
    }
}

/// A bank profile with one signed amount column, dates as `%Y-%m-%d %H:%M:%S`, and the first
/// run of 8 to 12 account characters in `用途` as the account.
pub fn signed_profile() -> BankProfile {
    BankProfile {
        name: "signed".into(),
        skip_rows: 0,
        date_column: "交易时间".into(),
        date_format: "%Y-%m-%d %H:%M:%S".into(),
        time_column: None,
        time_format: None,
        amounts: AmountColumns::Signed {
            amount: "交易金额".into(),
        },
        thousands_separator: false,
        txn_column: "交易流水号".into(),
        counterparty_name_column: Some("对方户名".into()),
        counterparty_account_column: None,
        memo_columns: vec!["用途".into()],
        memo_rule: MemoRule::FirstRun {
            min_len: 8,
            max_len: 12,
            extra_chars: String::new(),
        },
        footer_markers: Vec::new(),
    }
}

/// How [`bank_csv`] writes the statement.
#[derive(Debug, Clone, Default)]
pub struct BankOpts {
    /// Write GBK (as banks do) instead of UTF-8.
    pub gbk: bool,
}

/// `amount` with thousands separators.
fn grouped(amount: Decimal) -> String {
    let s = dp(amount, 2);
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}.{frac}")
}

/// A cell of a generated bank statement, before it is written as CSV or as XLSX.
#[derive(Debug, Clone)]
enum BankCell {
    /// Text: a shared (or inline) string in a workbook.
    Text(String),
    /// Money: as the profile writes it in a CSV, a number in a workbook.
    Amount(Decimal),
    /// A date or a time: its text as the profile's format writes it, and the serial a workbook
    /// stores when asked for serial dates (days since 1899-12-30, the time as a fraction).
    Date { text: String, serial: f64 },
}

/// Excel's serial of `t` (1900 system, after 1900-03-01): days since 1899-12-30 and the
/// fraction of the day.
fn serial_of(t: NaiveDateTime, with_time: bool) -> f64 {
    let base = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    let days = (t.date() - base).num_days() as f64;
    if with_time {
        days + f64::from(t.time().num_seconds_from_midnight()) / 86_400.0
    } else {
        days
    }
}

/// The rows of a bank statement laid out by `profile`: its title lines, the header, payments
/// as credits and refunds as debits in time order, and the footer.
fn bank_rows(
    profile: &BankProfile,
    payments: &[FixturePayment],
    refunds: &[FixtureRefund],
) -> Vec<Vec<Option<BankCell>>> {
    let text = |s: &str| Some(BankCell::Text(s.to_string()));
    let mut header: Vec<&str> = vec![&profile.date_column];
    if let Some(t) = &profile.time_column {
        header.push(t);
    }
    header.push(&profile.txn_column);
    match &profile.amounts {
        AmountColumns::CreditDebit { credit, debit } => {
            header.push(debit);
            header.push(credit);
        }
        AmountColumns::Signed { amount } => header.push(amount),
    }
    header.push("余额");
    if let Some(c) = &profile.counterparty_name_column {
        header.push(c);
    }
    if let Some(c) = &profile.counterparty_account_column {
        header.push(c);
    }
    for m in &profile.memo_columns {
        header.push(m);
    }
    // (time, credit or -debit, txn, name, account, memo)
    let mut rows: Vec<(NaiveDateTime, Decimal, &str, String, String, String)> = Vec::new();
    for p in payments {
        rows.push((
            p.time,
            p.amount,
            &p.txn,
            p.payer.clone(),
            format!("6222{}", &p.account),
            p.memo.clone(),
        ));
    }
    for r in refunds {
        rows.push((
            r.time,
            -r.amount,
            &r.refund_txn,
            "退款".to_string(),
            String::new(),
            format!("退款 原流水{}", r.original_txn),
        ));
    }
    rows.sort_by_key(|r| r.0);
    let mut out: Vec<Vec<Option<BankCell>>> = Vec::with_capacity(rows.len() + 8);
    for i in 0..profile.skip_rows {
        out.push(match i {
            0 => vec![
                text("账号：1902000109000012345"),
                text("户名：哈尔滨热力有限公司"),
            ],
            1 => vec![text("查询日期：20261201-20261201")],
            _ => Vec::new(),
        });
    }
    out.push(header.iter().map(|h| text(h)).collect());
    let date_has_time = profile.date_format.contains("%H") || profile.date_format.contains("%T");
    let mut balance = Decimal::new(100_000_000, 2);
    let (mut credits, mut debits) = (Decimal::ZERO, Decimal::ZERO);
    for (time, amount, txn, name, account, memo) in &rows {
        balance += amount;
        let mut cols: Vec<Option<BankCell>> = Vec::new();
        cols.push(Some(BankCell::Date {
            text: time.format(&profile.date_format).to_string(),
            serial: serial_of(*time, date_has_time),
        }));
        if profile.time_column.is_some() {
            let f = profile.time_format.as_deref().unwrap_or("%H:%M:%S");
            cols.push(Some(BankCell::Date {
                text: time.format(f).to_string(),
                serial: f64::from(time.time().num_seconds_from_midnight()) / 86_400.0,
            }));
        }
        cols.push(text(txn));
        match &profile.amounts {
            AmountColumns::CreditDebit { .. } => {
                if amount.is_sign_negative() {
                    debits -= amount;
                    cols.push(Some(BankCell::Amount(-amount)));
                    cols.push(None);
                } else {
                    credits += amount;
                    cols.push(None);
                    cols.push(Some(BankCell::Amount(*amount)));
                }
            }
            AmountColumns::Signed { .. } => cols.push(Some(BankCell::Amount(*amount))),
        }
        cols.push(Some(BankCell::Amount(balance)));
        if profile.counterparty_name_column.is_some() {
            cols.push(text(name));
        }
        if profile.counterparty_account_column.is_some() {
            cols.push(text(account).filter(|_| !account.is_empty()));
        }
        for (i, _) in profile.memo_columns.iter().enumerate() {
            cols.push(if i == 0 { text(memo) } else { None });
        }
        out.push(cols);
    }
    if let Some(marker) = profile.footer_markers.first() {
        out.push(vec![
            text(marker),
            None,
            None,
            Some(BankCell::Amount(debits)),
            Some(BankCell::Amount(credits)),
        ]);
    }
    out
}

/// A bank statement CSV laid out by `profile` (as [`credit_debit_profile`] and
/// [`signed_profile`] describe), payments as credits and refunds as debits, in time order.
pub fn bank_csv(
    profile: &BankProfile,
    payments: &[FixturePayment],
    refunds: &[FixtureRefund],
    opts: &BankOpts,
) -> Vec<u8> {
    let money = |a: Decimal| {
        if profile.thousands_separator {
            grouped(a)
        } else {
            dp(a, 2)
        }
    };
    let rows = bank_rows(profile, payments, refunds);
    let mut out = String::with_capacity(rows.len() * 160 + 1024);
    for row in &rows {
        let fields: Vec<String> = row
            .iter()
            .map(|cell| match cell {
                None => String::new(),
                Some(BankCell::Text(t)) | Some(BankCell::Date { text: t, .. }) => field(t),
                Some(BankCell::Amount(a)) => field(&money(*a)),
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    if opts.gbk {
        gbk(&out)
    } else {
        out.into_bytes()
    }
}

/// How [`bank_xlsx`] writes the workbook.
#[derive(Debug, Clone, Default)]
pub struct BankXlsxOpts {
    /// Dates and times as Excel's serial numbers (styled as dates), as a workbook saved by
    /// Excel has them, instead of text in the profile's format.
    pub serial_dates: bool,
    /// Text as inline strings (`t="inlineStr"`, as streaming writers such as Apache POI's
    /// SXSSF write it) instead of shared strings.
    pub inline_strings: bool,
}

/// Text with XML's five special characters escaped.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// SpreadsheetML's namespace, and the relationships'.
const SML: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// The same statement as [`bank_csv`] writes, as an XLSX workbook: one sheet (交易明细) with the
/// same rows at the same row numbers (title rows, header, rows, footer), text as shared strings
/// (or inline strings), amounts as numbers as Excel writes them (`1200.5`), dates as text in
/// the profile's format or as serial numbers.
pub fn bank_xlsx(
    profile: &BankProfile,
    payments: &[FixturePayment],
    refunds: &[FixtureRefund],
    opts: &BankXlsxOpts,
) -> Vec<u8> {
    let rows = bank_rows(profile, payments, refunds);
    let mut strings: Vec<&str> = Vec::new();
    let mut string_index: std::collections::HashMap<&str, usize> = Default::default();
    let mut sheet = String::with_capacity(rows.len() * 400 + 1024);
    let width = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    sheet.push_str(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<worksheet \
         xmlns=\"{SML}\" xmlns:r=\"{REL}\"><dimension ref=\"A1:{}{}\"/><sheetViews><sheetView \
         workbookViewId=\"0\"/></sheetViews><sheetFormatPr defaultRowHeight=\"15\"/><sheetData>",
        crate::xlsx::column_name(width - 1),
        rows.len()
    ));
    for (r, row) in rows.iter().enumerate() {
        let r = r + 1;
        if row.iter().all(Option::is_none) {
            continue;
        }
        sheet.push_str(&format!("<row r=\"{r}\" spans=\"1:{}\">", row.len()));
        for (c, cell) in row.iter().enumerate() {
            let Some(cell) = cell else { continue };
            let at = format!("{}{r}", crate::xlsx::column_name(c));
            match cell {
                BankCell::Date { serial, .. } if opts.serial_dates => {
                    let style = if serial.fract() == 0.0 {
                        2
                    } else if *serial < 1.0 {
                        3
                    } else {
                        4
                    };
                    sheet.push_str(&format!("<c r=\"{at}\" s=\"{style}\"><v>{serial}</v></c>"));
                }
                BankCell::Text(t) | BankCell::Date { text: t, .. } => {
                    if opts.inline_strings {
                        sheet.push_str(&format!(
                            "<c r=\"{at}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                            xml_escape(t)
                        ));
                    } else {
                        let next = strings.len();
                        let i = *string_index.entry(t.as_str()).or_insert(next);
                        if i == next {
                            strings.push(t);
                        }
                        sheet.push_str(&format!("<c r=\"{at}\" t=\"s\"><v>{i}</v></c>"));
                    }
                }
                BankCell::Amount(a) => {
                    sheet.push_str(&format!(
                        "<c r=\"{at}\" s=\"1\"><v>{}</v></c>",
                        a.normalize()
                    ));
                }
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str(
        "</sheetData><pageMargins left=\"0.7\" right=\"0.7\" top=\"0.75\" bottom=\"0.75\" \
         header=\"0.3\" footer=\"0.3\"/></worksheet>",
    );
    let shared = (!opts.inline_strings).then(|| {
        let mut sst = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<sst xmlns=\"{SML}\" \
             count=\"{}\" uniqueCount=\"{}\">",
            strings.len(),
            strings.len()
        );
        for t in &strings {
            sst.push_str("<si><t>");
            sst.push_str(&xml_escape(t));
            sst.push_str("</t></si>");
        }
        sst.push_str("</sst>");
        sst
    });
    xlsx_package(&sheet, shared.as_deref())
}

/// A complete XLSX package around one worksheet's XML (`xl/worksheets/sheet1.xml`, named 交易明细
/// in the workbook) and, if given, the shared strings' XML: the content types, the package and
/// workbook relationships, the workbook, styles (0 general, 1 `#,##0.00`, 2 a date, 3 a time,
/// 4 a date and time) and the document properties, as Excel writes them, deflated.
pub fn xlsx_package(sheet_xml: &str, shared_strings_xml: Option<&str>) -> Vec<u8> {
    let head = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n";
    let sst_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml";
    let content_types = format!(
        "{head}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
         <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
         <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
         <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
         <Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
         {}\
         <Override PartName=\"/docProps/core.xml\" ContentType=\"application/vnd.openxmlformats-package.core-properties+xml\"/>\
         <Override PartName=\"/docProps/app.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.extended-properties+xml\"/>\
         </Types>",
        if shared_strings_xml.is_some() {
            format!("<Override PartName=\"/xl/sharedStrings.xml\" ContentType=\"{sst_type}\"/>")
        } else {
            String::new()
        }
    );
    let package_rels = format!(
        "{head}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
         <Relationship Id=\"rId3\" Type=\"{REL}/extended-properties\" Target=\"docProps/app.xml\"/>\
         <Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties\" Target=\"docProps/core.xml\"/>\
         <Relationship Id=\"rId1\" Type=\"{REL}/officeDocument\" Target=\"xl/workbook.xml\"/>\
         </Relationships>"
    );
    let workbook = format!(
        "{head}<workbook xmlns=\"{SML}\" xmlns:r=\"{REL}\"><workbookPr defaultThemeVersion=\"124226\"/>\
         <bookViews><workbookView xWindow=\"240\" yWindow=\"15\" windowWidth=\"16095\" windowHeight=\"9660\"/></bookViews>\
         <sheets><sheet name=\"交易明细\" sheetId=\"1\" r:id=\"rId1\"/></sheets><calcPr calcId=\"124519\"/></workbook>"
    );
    let workbook_rels = format!(
        "{head}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
         <Relationship Id=\"rId1\" Type=\"{REL}/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
         <Relationship Id=\"rId2\" Type=\"{REL}/styles\" Target=\"styles.xml\"/>\
         {}</Relationships>",
        if shared_strings_xml.is_some() {
            format!(
                "<Relationship Id=\"rId3\" Type=\"{REL}/sharedStrings\" Target=\"sharedStrings.xml\"/>"
            )
        } else {
            String::new()
        }
    );
    let styles = format!(
        "{head}<styleSheet xmlns=\"{SML}\"><fonts count=\"1\"><font><sz val=\"11\"/><name val=\"宋体\"/></font></fonts>\
         <fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill><fill><patternFill patternType=\"gray125\"/></fill></fills>\
         <borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
         <cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
         <cellXfs count=\"5\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>\
         <xf numFmtId=\"4\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/>\
         <xf numFmtId=\"14\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/>\
         <xf numFmtId=\"21\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/>\
         <xf numFmtId=\"22\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/></cellXfs>\
         <cellStyles count=\"1\"><cellStyle name=\"常规\" xfId=\"0\" builtinId=\"0\"/></cellStyles></styleSheet>"
    );
    let core = format!(
        "{head}<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><dc:creator>网上银行</dc:creator>\
         <dcterms:created xsi:type=\"dcterms:W3CDTF\">2026-12-02T01:12:45Z</dcterms:created></cp:coreProperties>"
    );
    let app = format!(
        "{head}<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\">\
         <Application>Microsoft Excel</Application></Properties>"
    );
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("[Content_Types].xml", content_types.as_bytes()),
        ("_rels/.rels", package_rels.as_bytes()),
        ("docProps/app.xml", app.as_bytes()),
        ("docProps/core.xml", core.as_bytes()),
        ("xl/workbook.xml", workbook.as_bytes()),
        ("xl/_rels/workbook.xml.rels", workbook_rels.as_bytes()),
        ("xl/styles.xml", styles.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet_xml.as_bytes()),
    ];
    if let Some(sst) = shared_strings_xml {
        entries.push(("xl/sharedStrings.xml", sst.as_bytes()));
    }
    zip_of(&entries)
}
