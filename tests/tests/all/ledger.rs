//! The account ledger on real databases (`both!`): the store's contract for every ledger
//! method, and a stretch of a season billed night after night with payments, an overpayment,
//! a bounced transfer, adjustments and a payment recorded late, checked day by day against a
//! recomputation written here from the stored bills and entries alone.

use chrono::NaiveDate;
use heatbill_runtime::import::ImportOutcome;
use heatbill_runtime::ledger::{self, Allocation, Channel, EntryKind, NewEntry, Recorded, Undo};
use heatbill_runtime::model::*;
use heatbill_runtime::store::StoreError;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::import::{import_csv, import_ok};
use crate::support::db::TestDb;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub(crate) fn payment(
    customer: &str,
    amount: &str,
    channel: Channel,
    txn: &str,
    on: &str,
) -> NewEntry {
    NewEntry {
        customer_id: customer.into(),
        kind: EntryKind::Payment,
        on_date: d(on),
        amount: dec(amount),
        channel: Some(channel),
        channel_txn: Some(txn.into()),
        method: Some("cash".into()),
        receipt_no: None,
        cashier: Some("li".into()),
        reason_code: None,
        note: None,
        recorded_by: "the tests".into(),
        source: "test".into(),
    }
}

fn adjustment(customer: &str, kind: EntryKind, amount: &str, on: &str) -> NewEntry {
    NewEntry {
        customer_id: customer.into(),
        kind,
        on_date: d(on),
        amount: dec(amount),
        channel: None,
        channel_txn: None,
        method: None,
        receipt_no: None,
        cashier: None,
        reason_code: Some("meter-error".into()),
        note: Some("the meter was read wrong".into()),
        recorded_by: "the tests".into(),
        source: "test".into(),
    }
}

fn undo(payment: i64, kind: EntryKind, amount: Option<&str>, txn: Option<&str>, on: &str) -> Undo {
    Undo {
        payment,
        kind,
        amount: amount.map(dec),
        on_date: d(on),
        channel_txn: txn.map(Into::into),
        cashier: None,
        note: "the tests undo it".into(),
        recorded_by: "the tests".into(),
        source: "test".into(),
    }
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, says: &str) {
    match r {
        Err(StoreError::Conflict(m)) => assert!(m.contains(says), "{m:?} should say {says:?}"),
        other => panic!("expected a conflict saying {says:?}, got {other:?}"),
    }
}

/// Every method of the ledger's store: idempotent payments, conflicts, refusals, undoing,
/// reads, a day's close, an account, and the payments and balances imports' ledger checks.
async fn ledger_contract(db: TestDb) {
    let s = db.store.as_ref();
    let c = s.put_company(&crate::store::spec("ledger")).await.unwrap();
    import_ok(
        &db,
        &c,
        ImportKind::Customers,
        "customer_id,class,building_area\nA,residential,50\nB,residential,60\nC,residential,70\n",
    )
    .await;
    import_ok(
        &db,
        &c,
        ImportKind::Balances,
        "customer_id,as_of,arrears,arrears_since\nC,2026-01-01,300.00,2025-12-01\n",
    )
    .await;
    let v0 = s.company("ledger").await.unwrap().data_version;

    // A payment, then the same payment again (a notification delivered twice): one entry.
    let p1 = s
        .record_entry(
            c.id,
            &payment("A", "100.00", Channel::Counter, "R-1", "2026-01-05"),
        )
        .await
        .unwrap();
    assert!(p1.is_new());
    let p1 = p1.entry().clone();
    assert_eq!(
        (p1.kind, p1.amount, p1.undoes),
        (EntryKind::Payment, dec("100.00"), None)
    );
    assert_eq!(p1.recorded_by, "the tests");
    assert!(s.company("ledger").await.unwrap().data_version > v0);
    let v1 = s.company("ledger").await.unwrap().data_version;
    assert_eq!(
        s.record_entry(
            c.id,
            &payment("A", "100.00", Channel::Counter, "R-1", "2026-01-05")
        )
        .await
        .unwrap(),
        Recorded::Again(p1.clone())
    );
    assert_eq!(
        s.company("ledger").await.unwrap().data_version,
        v1,
        "the same payment again changes nothing"
    );
    // The same transaction id with another amount: never an edit.
    conflict(
        s.record_entry(
            c.id,
            &payment("A", "90.00", Channel::Counter, "R-1", "2026-01-05"),
        )
        .await,
        &format!("entry {}", p1.id),
    );
    // The same id in another channel is another payment.
    let w = s
        .record_entry(
            c.id,
            &payment("A", "100.00", Channel::Wechat, "R-1", "2026-01-05"),
        )
        .await
        .unwrap();
    assert!(w.is_new());
    let w = w.entry().clone();
    // Unknown customer; dated before the opening balance; malformed amounts.
    assert!(matches!(
        s.record_entry(
            c.id,
            &payment("Z", "1.00", Channel::Counter, "R-2", "2026-01-05")
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    conflict(
        s.record_entry(
            c.id,
            &payment("C", "10.00", Channel::Counter, "R-3", "2025-12-31"),
        )
        .await,
        "opening balance as of 2026-01-01",
    );
    conflict(
        s.record_entry(
            c.id,
            &payment("A", "-1.00", Channel::Counter, "R-4", "2026-01-05"),
        )
        .await,
        "negative",
    );
    conflict(
        s.record_entry(
            c.id,
            &payment("A", "1.001", Channel::Counter, "R-4", "2026-01-05"),
        )
        .await,
        "two decimals",
    );

    // Refunds and a reversal of the counter payment.
    let r1 = s
        .undo_payment(
            c.id,
            &undo(
                p1.id,
                EntryKind::Refund,
                Some("30.00"),
                Some("RF-1"),
                "2026-01-06",
            ),
        )
        .await
        .unwrap();
    assert!(r1.is_new());
    let r1 = r1.entry().clone();
    assert_eq!(
        (r1.kind, r1.amount, r1.undoes, r1.customer_id.as_str()),
        (EntryKind::Refund, dec("-30.00"), Some(p1.id), "A")
    );
    assert_eq!(
        s.undo_payment(
            c.id,
            &undo(
                p1.id,
                EntryKind::Refund,
                Some("30.00"),
                Some("RF-1"),
                "2026-01-06"
            )
        )
        .await
        .unwrap(),
        Recorded::Again(r1.clone())
    );
    conflict(
        s.undo_payment(
            c.id,
            &undo(
                p1.id,
                EntryKind::Refund,
                Some("70.01"),
                Some("RF-2"),
                "2026-01-06",
            ),
        )
        .await,
        "more than what is left",
    );
    conflict(
        s.undo_payment(
            c.id,
            &undo(w.id, EntryKind::Reversal, None, None, "2026-01-04"),
        )
        .await,
        "before it",
    );
    let rv = s
        .undo_payment(
            c.id,
            &undo(p1.id, EntryKind::Reversal, None, None, "2026-01-06"),
        )
        .await
        .unwrap()
        .entry()
        .clone();
    assert_eq!(rv.amount, dec("-70.00"), "a reversal takes what is left");
    conflict(
        s.undo_payment(
            c.id,
            &undo(p1.id, EntryKind::Reversal, None, None, "2026-01-06"),
        )
        .await,
        "undone already",
    );
    // Adjustments and write-offs; only a payment is undone.
    let adj = s
        .record_entry(
            c.id,
            &adjustment("A", EntryKind::Adjustment, "-12.50", "2026-01-07"),
        )
        .await
        .unwrap()
        .entry()
        .clone();
    assert_eq!(adj.reason_code.as_deref(), Some("meter-error"));
    conflict(
        s.undo_payment(
            c.id,
            &undo(adj.id, EntryKind::Reversal, None, None, "2026-01-07"),
        )
        .await,
        "not a payment",
    );
    let mut no_reason = adjustment("A", EntryKind::Adjustment, "1.00", "2026-01-07");
    no_reason.reason_code = None;
    conflict(s.record_entry(c.id, &no_reason).await, "reason_code");
    conflict(
        s.record_entry(
            c.id,
            &adjustment("C", EntryKind::WriteOff, "-1.00", "2026-01-02"),
        )
        .await,
        "positive",
    );
    s.record_entry(
        c.id,
        &adjustment("C", EntryKind::WriteOff, "300.00", "2026-01-02"),
    )
    .await
    .unwrap();

    // Reads: one entry (only in its company), a customer's, a day's.
    assert_eq!(s.entry(c.id, p1.id).await.unwrap(), Some(p1.clone()));
    let other = s.put_company(&crate::store::spec("other")).await.unwrap();
    assert_eq!(s.entry(other.id, p1.id).await.unwrap(), None);
    let ids: Vec<i64> = s
        .customer_entries(c.id, "A", d("2026-01-31"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [p1.id, w.id, r1.id, rv.id, adj.id]);
    let up_to_5 = s
        .customer_entries(c.id, "A", d("2026-01-05"))
        .await
        .unwrap();
    assert_eq!(up_to_5.len(), 2);

    // The day's close: per cashier and channel, with the entries behind each total.
    let close = ledger::day_close(
        d("2026-01-05"),
        &s.entries_on(c.id, d("2026-01-05")).await.unwrap(),
    );
    assert_eq!(close.tills.len(), 2);
    assert_eq!(close.net, dec("200.00"));
    assert_eq!(close.tills[0].channel, Some(Channel::Counter));
    assert_eq!(close.tills[0].entries, [p1.id]);
    let close = ledger::day_close(
        d("2026-01-06"),
        &s.entries_on(c.id, d("2026-01-06")).await.unwrap(),
    );
    assert_eq!(
        (
            close.tills[0].undone,
            close.tills[0].undone_amount,
            close.net
        ),
        (2, dec("-100.00"), dec("-100.00"))
    );

    // Accounts without bills: A has paid 200, had 100 taken back and a debit of 12.50.
    let a = ledger::account(
        "A",
        d("2026-01-31"),
        Allocation::PrincipalFirst,
        s.account_facts(c.id, "A", d("2026-01-31")).await.unwrap(),
    );
    assert_eq!(a.credits, dec("87.50"));
    assert_eq!(a.dues.credit, dec("87.50"));
    assert_eq!(a.balance, dec("-87.50"));
    assert_eq!(a.entries.len(), 5);
    let at = |date: &str| {
        let date = d(date);
        async move {
            ledger::account(
                "C",
                date,
                Allocation::PrincipalFirst,
                s.account_facts(c.id, "C", date).await.unwrap(),
            )
        }
    };
    assert_eq!(at("2026-01-01").await.balance, dec("300.00"));
    assert_eq!(at("2026-01-02").await.balance, dec("0.00"));
    assert_eq!(
        at("2025-12-31").await.balance,
        dec("0"),
        "before the opening"
    );

    // Imports: a payments file lands in the ledger (channel `import`), idempotent; a changed
    // payment or one dated before its customer's opening balance is refused, nothing imported.
    let counts = import_ok(
        &db,
        &c,
        ImportKind::Payments,
        "payment_id,customer_id,paid_on,amount\nP-1,B,2026-01-05,50.00\n",
    )
    .await;
    assert_eq!(counts.inserted, 1);
    let again = import_ok(
        &db,
        &c,
        ImportKind::Payments,
        "payment_id,customer_id,paid_on,amount\nP-1,B,2026-01-05,50.00\n",
    )
    .await;
    assert_eq!((again.inserted, again.unchanged), (0, 1));
    let b = s
        .customer_entries(c.id, "B", d("2026-12-31"))
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        (
            b[0].channel,
            b[0].channel_txn.as_deref(),
            b[0].source.as_str()
        ),
        (Some(Channel::Import), Some("P-1"), "import")
    );
    for (file, says) in [
        (
            "payment_id,customer_id,paid_on,amount\nP-2,B,2026-01-06,5.00\nP-1,B,2026-01-05,55.00\n",
            "never changed",
        ),
        (
            "payment_id,customer_id,paid_on,amount\nP-3,C,2025-12-30,5.00\n",
            "opening balance (as of 2026-01-01)",
        ),
    ] {
        match import_csv(&db, &c, ImportKind::Payments, file).await {
            ImportOutcome::Refused { errors, .. } => {
                assert!(
                    errors.iter().any(|e| e.problem.contains(says)),
                    "{errors:?} should say {says:?}"
                );
            }
            ImportOutcome::Imported(c) => panic!("imported {c:?}"),
        }
    }
    assert_eq!(
        s.customer_entries(c.id, "B", d("2026-12-31"))
            .await
            .unwrap()
            .len(),
        1,
        "nothing of a refused file is imported"
    );
    match import_csv(
        &db,
        &c,
        ImportKind::Balances,
        "customer_id,as_of,arrears,arrears_since\nB,2026-02-01,10.00,\n",
    )
    .await
    {
        ImportOutcome::Refused { errors, .. } => {
            assert!(errors[0].problem.contains("2026-01-05"), "{errors:?}");
        }
        ImportOutcome::Imported(c) => panic!("imported {c:?}"),
    }
    // A large file (past the size where PostgreSQL's statistics are refreshed after it).
    let big: String = (0..10_001)
        .map(|i| format!("BULK-{i},A,2026-01-09,1.00\n"))
        .collect();
    let out = heatbill_runtime::import::import_reader(
        s,
        &c,
        ImportKind::Payments,
        "big.csv",
        std::io::Cursor::new(format!("payment_id,customer_id,paid_on,amount\n{big}").into_bytes()),
        &heatbill_runtime::settings::ImportSettings::default(),
    )
    .await
    .unwrap();
    match out {
        ImportOutcome::Imported(counts) => assert_eq!(counts.inserted, 10_001),
        ImportOutcome::Refused { errors, .. } => panic!("{errors:?}"),
    }
    // A company's entries go with it.
    s.delete_company("ledger").await.unwrap();
    assert_eq!(s.entry(c.id, p1.id).await.unwrap(), None);
}
both!(ledger_contract);

/// The company file of a Harbin company with the allocation order `policy`.
fn harbin(slug: &str, policy: &str) -> String {
    format!(
        "slug = \"{slug}\"\nname = \"Harbin\"\ntime_zone = \"Asia/Harbin\"\n\
         [policies]\nallocation = \"{policy}\"\n\
         [[season]]\nstart = \"2025-10-20\"\nend = \"2026-04-20\"\n\
         [[chain]]\neffective_from = \"2025-10-01\"\n{}",
        crate::runtime::HARBIN_CHAIN
    )
}

/// What a customer's bill of `date` must carry, recomputed here from the stored bills before
/// it, the opening balance and the entries: (principal before, late fees before, credits
/// before, unpaid principal).
fn expected(
    policy: Allocation,
    opening: Option<(NaiveDate, Decimal)>,
    bills: &[(NaiveDate, Decimal, Decimal)],
    entries: &[(NaiveDate, Decimal)],
    date: NaiveDate,
) -> (Decimal, Decimal, Decimal, Decimal) {
    let from = opening.map(|o| o.0);
    let principal = opening.map_or(Decimal::ZERO, |o| o.1)
        + bills
            .iter()
            .filter(|b| b.0 < date)
            .map(|b| b.1)
            .sum::<Decimal>();
    let fees: Decimal = bills.iter().filter(|b| b.0 < date).map(|b| b.2).sum();
    let credits: Decimal = entries
        .iter()
        .filter(|e| e.0 < date && from.is_none_or(|f| e.0 >= f))
        .map(|e| e.1)
        .sum();
    let unpaid = if credits <= Decimal::ZERO {
        principal - credits
    } else {
        match policy {
            Allocation::PrincipalFirst => (principal - credits).max(Decimal::ZERO),
            Allocation::FeesFirst => {
                (principal - (credits - fees).max(Decimal::ZERO)).max(Decimal::ZERO)
            }
        }
    };
    (principal, fees, credits, unpaid)
}

/// Twelve nights of two companies that differ only in allocation order, with counter, WeChat
/// and bank payments, an overpayment, a bounced transfer reversed, adjustments both ways, and a
/// payment recorded after the days it belongs to (the range run again, in order). Every bill's
/// balance, every late fee and every account at the end are checked against the recomputation.
async fn a_season_of_payments(db: TestDb) {
    let s = db.store.as_ref();
    let first = d("2025-12-28");
    let last = d("2026-01-08");
    let days: Vec<NaiveDate> = first.iter_days().take_while(|x| *x <= last).collect();
    for (slug, policy) in [
        ("season-pf", Allocation::PrincipalFirst),
        ("season-ff", Allocation::FeesFirst),
    ] {
        let c = crate::runtime::apply(&db, &harbin(slug, policy.as_str())).await;
        import_ok(
            &db,
            &c,
            ImportKind::Customers,
            "customer_id,class,building_area,usable_area\n\
             A,residential,75,60.00\nB,residential,75,60.00\nC,residential,100,80.00\n",
        )
        .await;
        import_ok(
            &db,
            &c,
            ImportKind::Balances,
            "customer_id,as_of,arrears,arrears_since\nA,2025-12-28,1149.60,2025-12-01\n",
        )
        .await;
        let rec = |e: NewEntry| async move { s.record_entry(c.id, &e).await.unwrap() };
        // A pays part of the old debt at the counter and by WeChat; a bank transfer bounces.
        rec(payment(
            "A",
            "600.00",
            Channel::Counter,
            "R-100",
            "2025-12-30",
        ))
        .await;
        rec(payment(
            "A",
            "0.50",
            Channel::Wechat,
            "4200001",
            "2026-01-02",
        ))
        .await;
        let bounced = rec(payment("A", "300.00", Channel::Bank, "B-77", "2026-01-03")).await;
        s.undo_payment(
            c.id,
            &undo(
                bounced.entry().id,
                EntryKind::Reversal,
                None,
                None,
                "2026-01-04",
            ),
        )
        .await
        .unwrap();
        // B pays the whole season ahead: credit, drawn on night after night.
        rec(payment(
            "B",
            "500.00",
            Channel::Alipay,
            "2026010122001",
            "2025-12-29",
        ))
        .await;
        // C is debited for a meter error, then credited a little back.
        rec(adjustment(
            "C",
            EntryKind::Adjustment,
            "-20.00",
            "2026-01-02",
        ))
        .await;
        rec(adjustment("C", EntryKind::Adjustment, "5.00", "2026-01-05")).await;
        for day in &days {
            crate::runtime::run(&db, slug, &day.to_string()).await;
        }
        // A payment taken on 2026-01-02 and recorded only now: the days after it are billed
        // again, in order, each a new version with the reason.
        let before = s.stale_dates(c.id).await.unwrap();
        assert_eq!(before, StaleDates::default(), "{slug}: nothing stale yet");
        rec(payment(
            "A",
            "100.00",
            Channel::Counter,
            "R-101",
            "2026-01-02",
        ))
        .await;
        let stale: Vec<NaiveDate> = days
            .iter()
            .copied()
            .filter(|x| *x > d("2026-01-02"))
            .collect();
        assert_eq!(
            s.stale_dates(c.id).await.unwrap(),
            StaleDates {
                from: Some(d("2026-01-03")),
                dates: stale.clone()
            }
        );
        for (i, day) in stale.iter().enumerate() {
            let r = crate::runtime::run(&db, slug, &day.to_string()).await;
            assert!(r.counts.revised >= 1, "{slug} {day}: {:?}", r.counts);
            // Each date run again moves the mark to the next.
            assert_eq!(s.stale_dates(c.id).await.unwrap().dates, stale[i + 1..]);
        }
        assert_eq!(s.stale_dates(c.id).await.unwrap().from, None);
        // A correction dated after every billed date makes nothing stale.
        rec(adjustment("C", EntryKind::Adjustment, "0.01", "2026-01-08")).await;
        assert_eq!(s.stale_dates(c.id).await.unwrap().from, None);
        let revised = s.bill(c.id, "A", d("2026-01-03")).await.unwrap().unwrap();
        assert_eq!(
            revised.row.reason.as_deref(),
            Some("changed: balance (earlier bills or payments)")
        );

        for customer in ["A", "B", "C"] {
            let opening = (customer == "A").then(|| (first, dec("1149.60")));
            let entries: Vec<(NaiveDate, Decimal)> = s
                .customer_entries(c.id, customer, last)
                .await
                .unwrap()
                .iter()
                .map(|e| (e.on_date, e.amount))
                .collect();
            let mut bills: Vec<(NaiveDate, Decimal, Decimal)> = Vec::new();
            for day in &days {
                let b = s.bill(c.id, customer, *day).await.unwrap().unwrap();
                let (principal, fees, credits, unpaid) =
                    expected(policy, opening, &bills, &entries, *day);
                let what = format!("{slug} {customer} {day}");
                assert_eq!(b.row.charged_before, principal, "{what}");
                assert_eq!(b.row.fees_before, fees, "{what}");
                assert_eq!(b.row.paid_before, credits, "{what}");
                assert_eq!(b.row.arrears, unpaid, "{what}");
                // The late fee: 1‰ a day of the unpaid principal from January 1st, rounded.
                let fee: Decimal = b
                    .lines
                    .iter()
                    .filter(|l| l.code == "late-fee")
                    .map(|l| l.amount)
                    .sum();
                let want = if *day >= d("2026-01-01") && unpaid > Decimal::ZERO {
                    (unpaid * dec("0.001"))
                        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
                } else {
                    Decimal::ZERO
                };
                assert_eq!(fee, want, "{what}: late fee on {unpaid}");
                let principal_today: Decimal = b
                    .lines
                    .iter()
                    .filter(|l| l.payer == "customer" && l.code != "late-fee")
                    .map(|l| l.amount)
                    .sum();
                assert_eq!(b.row.principal, principal_today, "{what}");
                bills.push((*day, principal_today, fee));
            }
            // The account at the end: billed less entries, as the last bill carries it.
            let acc = ledger::account(
                customer,
                last,
                policy,
                s.account_facts(c.id, customer, last).await.unwrap(),
            );
            let billed = opening.map_or(Decimal::ZERO, |o| o.1)
                + bills.iter().map(|b| b.1 + b.2).sum::<Decimal>();
            let credits: Decimal = entries.iter().map(|e| e.1).sum();
            assert_eq!(acc.credits, credits, "{slug} {customer}");
            assert_eq!(acc.balance, billed - credits, "{slug} {customer}");
            let last_bill = s.bill(c.id, customer, last).await.unwrap().unwrap();
            assert_eq!(
                acc.principal_billed,
                last_bill.row.charged_before + last_bill.row.principal,
                "{slug} {customer}"
            );
            assert_eq!(acc.last_bill_date, Some(last));
            // The day after the last night: what tomorrow's bill would start from.
            let (_, _, _, unpaid) = expected(
                policy,
                opening,
                &bills,
                &entries,
                last + chrono::Days::new(1),
            );
            assert_eq!(acc.dues.principal, unpaid, "{slug} {customer}");
        }
        // Statements: the whole stretch, a part of it, and a longer one (its bills are read 32
        // dates at a time: this one's fall in two groups) add up, and agree with the accounts.
        for customer in ["A", "B", "C"] {
            for (from, to) in [
                (first, last),
                (d("2026-01-01"), d("2026-01-05")),
                (first - chrono::Days::new(25), last),
            ] {
                let st = s.statement(c.id, customer, policy, from, to).await.unwrap();
                assert!(st.adds_up(), "{slug} {customer} {from}..{to}: {st:#?}");
                let acc = |at: NaiveDate| async move {
                    ledger::account(
                        customer,
                        at,
                        policy,
                        s.account_facts(c.id, customer, at).await.unwrap(),
                    )
                };
                assert_eq!(st.closing_balance, acc(to).await.balance);
                assert_eq!(
                    st.opening_balance,
                    acc(from.pred_opt().unwrap()).await.balance
                );
                let csv = st.csv();
                assert!(csv.starts_with("section,month,code,description,date,entry,kind,amount\n"));
                assert_eq!(
                    csv.lines().filter(|l| l.starts_with("charge,")).count(),
                    st.charges.len()
                );
            }
        }
        let whole = s.statement(c.id, "A", policy, first, last).await.unwrap();
        assert_eq!(whole.charges[0].code, "opening-balance", "{whole:#?}");
        assert_eq!(
            whole.payments.len(),
            5,
            "four payments and a reversal: {whole:#?}"
        );
        // B paid ahead: credit is left, never arrears.
        let b = ledger::account(
            "B",
            last,
            policy,
            s.account_facts(c.id, "B", last).await.unwrap(),
        );
        assert!(
            b.dues.credit > Decimal::ZERO && b.dues.principal.is_zero(),
            "{b:?}"
        );
        // The audit recomputes every stored balance from the ledger too: nothing to report.
        let report = heatbill_runtime::audit::audit(
            s,
            slug,
            &heatbill_runtime::audit::AuditOptions {
                from: Some(first),
                to: Some(last),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // The receivables report (two customers a page, so it pages) agrees with the accounts:
        // owed and credit add up, and the newest charges are what is still owed (A's old
        // opening balance, owed since 2025-12-01, is the only debt older than 30 days).
        import_ok(
            &db,
            &c,
            ImportKind::Profiles,
            "customer_id,community\nA,幸福小区\nB,幸福小区\n",
        )
        .await;
        let r = s.receivables(c.id, last, 2).await.unwrap().unwrap();
        assert_eq!(r.cuts.billed_through, last);
        assert_eq!(r.cuts.before, [None; 3], "no run 30 days before");
        let (mut owed, mut credit, mut current) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        for customer in ["A", "B", "C"] {
            let acc = ledger::account(
                customer,
                last,
                policy,
                s.account_facts(c.id, customer, last).await.unwrap(),
            );
            let opening = if customer == "A" {
                dec("1149.60")
            } else {
                Decimal::ZERO
            };
            // Debits (a bounced transfer, a refund, a debit adjustment) age as charges of
            // their dates, all in the stretch here.
            let debits: Decimal = acc
                .entries
                .iter()
                .filter(|e| e.amount < Decimal::ZERO)
                .map(|e| -e.amount)
                .sum();
            let stretch = acc.principal_billed + acc.fees_billed - opening + debits;
            if acc.balance > Decimal::ZERO {
                owed += acc.balance;
                current += acc.balance.min(stretch);
            } else {
                credit -= acc.balance;
            }
        }
        assert_eq!(r.total.customers, 3);
        assert_eq!((r.total.owed, r.total.credit), (owed, credit), "{r:#?}");
        assert_eq!(r.total.current, current, "{r:#?}");
        assert_eq!(r.total.days_30, owed - current, "{r:#?}");
        assert!(
            r.total.days_30 > Decimal::ZERO,
            "A still owes on the opening: {r:#?}"
        );
        assert!(r.total.adds_up());
        let names: Vec<Option<&str>> = r.communities.iter().map(|(c, _)| c.as_deref()).collect();
        assert_eq!(names, [None, Some("幸福小区")]);
        assert_eq!(r.communities[1].1.customers, 2);
        assert!(
            s.receivables(c.id, first.pred_opt().unwrap(), 2)
                .await
                .unwrap()
                .is_none(),
            "no run on or before the day before the first"
        );
    }
}
both!(a_season_of_payments);
