//! The sandbox's limits against the hostile fixture plugin: each misbehaviour gives its own named
//! error for the hostile customer-day, the customer-days after it in the same batch are billed,
//! and the evaluator (and the engine) keep working afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use heatbill_engine::{
    Bill, BillError, BillErrorKind, Chain, DayInput, Engine, EngineConfig, Evaluator, TrapKind,
};
use serde_json::json;

use crate::engine::{date, dec, load, test_config};

/// Tighter limits than production so that the tests are quick; the behaviour is the same.
fn hostile_config() -> EngineConfig {
    let mut c = test_config();
    c.limits.deadline_base_ms = 100;
    c.limits.max_memory_bytes = 16 << 20;
    c
}

fn evaluator(engine: &Engine, mode: &str) -> Evaluator {
    let chain = Chain::new(
        "hostile-co",
        [(load(engine, "hostile"), json!({ "mode": mode }))],
    )
    .expect("chain");
    engine.evaluator(Arc::new(chain)).expect("configure")
}

fn day(id: &str, hostile: bool) -> DayInput {
    let mut d = DayInput::new(id, date("2025-11-01"));
    if hostile {
        d.tags = vec!["hostile".into()];
    }
    d
}

/// [before, hostile, after]: returns the hostile customer's error; asserts the others are billed.
fn run_batch(ev: &mut Evaluator) -> BillError {
    let results = ev.evaluate(&[day("before", false), day("evil", true), day("after", false)]);
    assert_eq!(results.len(), 3);
    assert_billed(&results[0]);
    assert_billed(&results[2]);
    results[1]
        .clone()
        .expect_err("the hostile customer-day must fail")
}

fn assert_billed(r: &Result<Bill, BillError>) {
    let bill = r
        .as_ref()
        .unwrap_or_else(|e| panic!("should be billed: {e}"));
    assert_eq!(bill.lines.len(), 1);
    assert_eq!(bill.total, dec("1.00"));
}

/// The evaluator still works after the misbehaviour, and a fresh one does too.
fn still_works(engine: &Engine, ev: &mut Evaluator, mode: &str) {
    let again = ev.evaluate(&[day("next-1", false), day("next-2", false)]);
    again.iter().for_each(assert_billed);
    let mut fresh = evaluator(engine, mode);
    assert_billed(&fresh.evaluate(&[day("fresh", false)])[0]);
}

fn check_names(e: &BillError) {
    assert_eq!(e.company, "hostile-co");
    assert_eq!(e.customer, "evil");
    assert_eq!(e.plugin, "hostile");
    assert_eq!(e.plugin_version, "1.0.0");
    let text = e.to_string();
    assert!(
        text.contains("hostile-co")
            && text.contains("`evil`")
            && text.contains("2025-11-01")
            && text.contains("hostile 1.0.0"),
        "{text}"
    );
}

fn trap_kind(e: &BillError) -> (TrapKind, &str) {
    match &e.kind {
        BillErrorKind::Trap { kind, message } => (*kind, message.as_str()),
        other => panic!("expected a trap, got {other}"),
    }
}

fn invalid_output(e: &BillError) -> &str {
    match &e.kind {
        BillErrorKind::InvalidOutput { message } => message.as_str(),
        other => panic!("expected invalid output, got {other}"),
    }
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "loop");
    let t = Instant::now();
    let e = run_batch(&mut ev);
    let took = t.elapsed();
    check_names(&e);
    let (kind, message) = trap_kind(&e);
    assert_eq!(kind, TrapKind::Deadline, "{message}");
    assert!(message.contains("deadline"), "{message}");
    // The batch call and the lone retry each ran to the deadline (100 ms + allowance), no more.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    still_works(&engine, &mut ev, "loop");
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "memory");
    let e = run_batch(&mut ev);
    check_names(&e);
    let (kind, message) = trap_kind(&e);
    assert_eq!(kind, TrapKind::MemoryLimit, "{message}");
    assert!(message.contains("max_memory_bytes"), "{message}");
    still_works(&engine, &mut ev, "memory");
}

#[test]
fn unreachable_is_a_trap() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "trap");
    let e = run_batch(&mut ev);
    check_names(&e);
    let (kind, message) = trap_kind(&e);
    assert_eq!(kind, TrapKind::Unreachable, "{message}");
    assert!(message.contains("unreachable"), "{message}");
    still_works(&engine, &mut ev, "trap");
}

#[test]
fn a_panic_is_a_trap_that_quotes_the_message() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "panic");
    let e = run_batch(&mut ev);
    check_names(&e);
    let (kind, message) = trap_kind(&e);
    assert_eq!(kind, TrapKind::Panic, "{message}");
    assert!(message.contains("panicking on purpose"), "{message}");
    // The panic message is in the plugin's log too.
    assert!(ev.take_log().contains("panicking on purpose"));
    still_works(&engine, &mut ev, "panic");
}

#[test]
fn too_many_lines_are_invalid_output() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "lines");
    let e = run_batch(&mut ev);
    check_names(&e);
    let message = invalid_output(&e);
    assert!(
        message.contains("1000 lines") && message.contains("max_lines_per_day"),
        "{message}"
    );
    still_works(&engine, &mut ev, "lines");
}

#[test]
fn a_huge_rule_error_message_is_invalid_output() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "big-string");
    let e = run_batch(&mut ev);
    check_names(&e);
    let message = invalid_output(&e);
    assert!(
        message.contains("10000000 bytes") && message.contains("max_message_bytes"),
        "{message}"
    );
    assert!(e.to_string().len() < 1000, "the error itself stays short");
    still_works(&engine, &mut ev, "big-string");
}

#[test]
fn an_amount_in_fractions_of_a_fen_is_invalid_output() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "bad-amount");
    let e = run_batch(&mut ev);
    check_names(&e);
    let message = invalid_output(&e);
    assert!(
        message.contains("1.005") && message.contains("whole number of fen"),
        "{message}"
    );
    still_works(&engine, &mut ev, "bad-amount");
}

#[test]
fn a_line_kind_never_announced_is_invalid_output() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "bad-spec");
    let e = run_batch(&mut ev);
    check_names(&e);
    let message = invalid_output(&e);
    assert!(message.contains("line kind 7"), "{message}");
    still_works(&engine, &mut ev, "bad-spec");
}

#[test]
fn a_malformed_output_fails_only_the_customer_it_happens_on() {
    let engine = Engine::new(hostile_config()).unwrap();
    let mut ev = evaluator(&engine, "wrong-count");
    let e = run_batch(&mut ev);
    check_names(&e);
    let message = invalid_output(&e);
    assert!(
        message.contains("line columns differ in length"),
        "{message}"
    );
    still_works(&engine, &mut ev, "wrong-count");
}

#[test]
fn a_flood_of_output_is_truncated_and_billing_goes_on() {
    let engine = Engine::new(hostile_config()).unwrap();
    let limit = engine.limits().max_log_bytes;
    let mut ev = evaluator(&engine, "stdout");
    let results = ev.evaluate(&[day("before", false), day("evil", true), day("after", false)]);
    results.iter().for_each(assert_billed);
    let log = ev.take_log();
    assert!(log.starts_with("[hostile 1.0.0]\n"), "{}", &log[..80]);
    assert!(log.contains("hostile plugin output"));
    assert!(
        log.contains("[log truncated:"),
        "{}",
        &log[log.len() - 200..]
    );
    assert!(log.len() < limit + 500, "{} bytes", log.len());
    // Taken: the next take is empty.
    assert!(ev.take_log().is_empty());
    still_works(&engine, &mut ev, "stdout");
}

#[test]
fn the_circuit_breaker_stops_retrying_a_plugin_that_traps_on_everyone() {
    let mut config = hostile_config();
    config.limits.circuit_breaker_traps = 3;
    let engine = Engine::new(config).unwrap();
    let mut ev = evaluator(&engine, "trap");
    let mut days: Vec<DayInput> = (0..10).map(|i| day(&format!("h{i}"), true)).collect();
    days.push(day("ok", false));
    let results = ev.evaluate(&days);
    for r in &results[..3] {
        let (kind, _) = trap_kind(r.as_ref().unwrap_err());
        assert_eq!(kind, TrapKind::Unreachable);
    }
    for r in &results[3..] {
        let e = r.as_ref().unwrap_err();
        let BillErrorKind::Skipped { reason } = &e.kind else {
            panic!("expected skipped, got {e}")
        };
        assert!(reason.contains("circuit_breaker_traps"), "{reason}");
        assert_eq!(e.plugin, "hostile");
    }
    // The breaker is per batch: the next batch is evaluated normally.
    let next = ev.evaluate(&[day("a", false), day("h", true), day("b", false)]);
    assert_billed(&next[0]);
    assert_billed(&next[2]);
    assert_eq!(
        trap_kind(next[1].as_ref().unwrap_err()).0,
        TrapKind::Unreachable
    );
}

#[test]
fn a_failing_plugin_does_not_reach_later_plugins_of_the_chain() {
    let engine = Engine::new(hostile_config()).unwrap();
    let chain = Chain::new(
        "hostile-co",
        [
            (load(&engine, "hostile"), json!({"mode": "trap"})),
            (
                load(&engine, "late-fee"),
                json!({"daily_rate": "0.001", "due_date": "2025-01-01"}),
            ),
        ],
    )
    .unwrap();
    let mut ev = engine.evaluator(Arc::new(chain)).unwrap();
    let mut days = [day("before", false), day("evil", true), day("after", false)];
    for d in &mut days {
        d.arrears = dec("100.00");
        d.arrears_since = Some(date("2025-01-01"));
    }
    let results = ev.evaluate(&days);
    for r in [&results[0], &results[2]] {
        let bill = r.as_ref().unwrap();
        let codes: Vec<&str> = bill.lines.iter().map(|l| l.code()).collect();
        assert_eq!(codes.len(), 2, "{codes:?}");
        assert_eq!(bill.lines[1].plugin(), "late-fee");
        assert_eq!(bill.total, dec("1.10"));
    }
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(
        e.plugin, "hostile",
        "the error names the plugin that failed"
    );
}
