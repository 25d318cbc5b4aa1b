//! Reconciliation: each kind of discrepancy, in each channel, from generated files.

use chrono::NaiveDate;
use heatbill_statements::fixtures::{self, AlipayOpts, BankOpts, Inject, WechatOpts};
use heatbill_statements::{
    Channel, Discrepancy, Limits, LineKind, Recorded, Statement, parse_alipay_zip, parse_bank_csv,
    parse_wechat, reconcile,
};
use rust_decimal::Decimal;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn parsed(s: &fixtures::Scenario) -> Statement {
    let limits = Limits::default();
    let d = &s.day;
    match s.channel {
        Channel::Wechat => parse_wechat(
            &fixtures::wechat_bill(d.date, &d.payments, &d.refunds, &WechatOpts::default()),
            &limits,
        ),
        Channel::Alipay => parse_alipay_zip(
            &fixtures::alipay_zip(d.date, &d.payments, &d.refunds, &AlipayOpts::default()),
            &limits,
        ),
        Channel::Bank => {
            let profile = fixtures::credit_debit_profile();
            parse_bank_csv(
                &fixtures::bank_csv(&profile, &d.payments, &d.refunds, &BankOpts { gbk: true }),
                &profile,
                &limits,
            )
        }
    }
    .unwrap()
}

#[test]
fn every_kind_of_discrepancy_in_every_channel() {
    let inject = Inject {
        only_in_statement: 3,
        only_recorded: 2,
        amount_mismatch: 4,
    };
    for channel in [Channel::Wechat, Channel::Alipay, Channel::Bank] {
        let s = fixtures::scenario(channel, 99, date(), 2_000, 60, inject);
        let statement = parsed(&s);
        let r = reconcile(&statement, &s.recorded);
        assert_eq!(r.items.len(), 2_060 + 2, "{channel:?}");
        assert_eq!(r.missing_in_heatbill.count, 3, "{channel:?}");
        assert_eq!(r.missing_in_channel.count, 2, "{channel:?}");
        assert_eq!(r.amount_mismatch.count, 4, "{channel:?}");
        assert_eq!(r.matched.count, 2_060 - 3 - 4, "{channel:?}");
        assert_eq!(r.fees, statement.totals.fees);

        // The lost notifications are the last payments, with their order numbers to find the
        // customer by.
        let lost: Vec<&str> = r
            .items
            .iter()
            .filter(|i| i.discrepancy == Discrepancy::MissingInHeatbill)
            .map(|i| i.channel_txn.as_str())
            .collect();
        let last: Vec<&str> = s.day.payments[2_000 - 3..]
            .iter()
            .map(|p| p.txn.as_str())
            .collect();
        let mut lost_sorted = lost.clone();
        lost_sorted.sort_unstable();
        let mut last_sorted = last.clone();
        last_sorted.sort_unstable();
        assert_eq!(lost_sorted, last_sorted, "{channel:?}");
        for item in r
            .items
            .iter()
            .filter(|i| i.discrepancy == Discrepancy::MissingInHeatbill)
        {
            assert!(item.entry_id.is_none() && item.line_no.is_some());
            assert!(item.order_no.is_some() || channel == Channel::Bank);
        }
        // Mismatches carry both amounts; the recorded one is a yuan more.
        for item in r.items.iter() {
            if let Discrepancy::AmountMismatch {
                channel: c,
                recorded,
            } = item.discrepancy
            {
                assert_eq!(recorded - c, Decimal::ONE);
                assert_eq!(item.channel_amount, Some(c));
                assert_eq!(item.recorded_amount, Some(recorded));
                assert!(item.entry_id.is_some());
            }
        }
        // Entries the channel does not have come last, in the order given.
        let tail: Vec<i64> = r.items[2_060..].iter().filter_map(|i| i.entry_id).collect();
        assert_eq!(tail.len(), 2);
        assert!(tail[0] < tail[1]);
        // Refunds match by their own id.
        let refunds = r
            .items
            .iter()
            .filter(|i| i.kind == Some(LineKind::Refund) && i.discrepancy == Discrepancy::Matched)
            .count();
        assert_eq!(refunds, 60, "{channel:?}");
    }
}

#[test]
fn a_clean_day_and_the_totals() {
    let s = fixtures::scenario(Channel::Wechat, 5, date(), 500, 20, Inject::default());
    let statement = parsed(&s);
    let r = reconcile(&statement, &s.recorded);
    assert!(r.is_clean());
    assert_eq!(r.discrepancies().count(), 0);
    assert_eq!(r.matched.count, 520);
    assert_eq!(r.matched.channel, r.matched.recorded);
    assert_eq!(
        r.matched.channel,
        statement.totals.payments + statement.totals.refunds
    );
    // Nothing recorded: everything is missing in heatbill. An empty statement: everything
    // recorded is missing in the channel.
    let r = reconcile(&statement, &[]);
    assert_eq!(r.missing_in_heatbill.count, 520);
    let empty = Statement {
        lines: Vec::new(),
        ..statement.clone()
    };
    let r = reconcile(&empty, &s.recorded);
    assert_eq!(r.missing_in_channel.count, 520);
    assert_eq!(
        r.missing_in_channel.recorded,
        r.missing_in_channel.recorded.abs() * Decimal::ONE
    );
}

#[test]
fn an_id_recorded_twice_matches_once() {
    let s = fixtures::scenario(Channel::Wechat, 6, date(), 10, 0, Inject::default());
    let statement = parsed(&s);
    let mut recorded = s.recorded.clone();
    recorded.push(Recorded {
        entry_id: 999,
        ..recorded[0].clone()
    });
    let r = reconcile(&statement, &recorded);
    assert_eq!(r.matched.count, 10);
    assert_eq!(r.missing_in_channel.count, 1);
    assert_eq!(r.items.last().unwrap().entry_id, Some(999));
    // The report serializes (for the API and exports).
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["matched"]["count"], 10);
    assert_eq!(
        json["items"][10]["discrepancy"]["kind"],
        "missing-in-channel"
    );
}
