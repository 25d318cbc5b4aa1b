//! Test fixture: a plugin that misbehaves on purpose, for the host's sandbox tests.
//!
//! The misbehaviour is the `mode` parameter, and it is triggered only for customer-days tagged
//! `"hostile"`: every other customer-day gets one normal 1.00 line, so a test can show that the
//! customers after the hostile one in the same batch are still billed (by a fresh instance).
//!
//! | mode | what a hostile customer-day does |
//! |---|---|
//! | `loop` | loops forever (the deadline must stop it) |
//! | `memory` | allocates 1 MiB blocks until the memory cap stops it (a trap) |
//! | `trap` | executes `unreachable` |
//! | `panic` | panics (prints the message on stderr, then traps) |
//! | `lines` | returns 1,000 lines |
//! | `big-string` | returns a rule error with a 10 MB message |
//! | `bad-amount` | returns an amount with three decimals (1.005) |
//! | `bad-spec` | returns a line whose spec index is out of range |
//! | `wrong-count` | returns one result fewer than the batch's days |
//! | `stdout` | prints 1 MiB to stdout and to stderr, then bills normally |
//!
//! It implements the generated `Guest` trait directly (not [`heatbill_sdk::Plugin`]), because
//! the SDK's safety nets (result count, message length) would otherwise repair the breakage.

use std::io::Write;
use std::sync::OnceLock;

use heatbill_sdk::bindings::exports::heatbill::rules::rules::Guest;
use heatbill_sdk::prelude::*;
use heatbill_sdk::{BatchOutput, Configuration, DayBatch};
use serde::Deserialize;

/// What a hostile customer-day does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Loop forever.
    Loop,
    /// Allocate until the memory cap.
    Memory,
    /// Execute `unreachable`.
    Trap,
    /// Panic.
    Panic,
    /// Return 1,000 lines.
    Lines,
    /// Return a 10 MB error message.
    BigString,
    /// Return an amount of 1.005.
    BadAmount,
    /// Return a line with an out-of-range spec index.
    BadSpec,
    /// Return line columns of different lengths.
    WrongCount,
    /// Flood stdout and stderr, then bill normally.
    Stdout,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    mode: Mode,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// The fixture.
pub struct Hostile;

fn one() -> Line {
    let one = WitDecimal {
        units: 100,
        scale: 2,
    };
    Line {
        spec: 0,
        quantity: one,
        unit_price: one,
        amount: one,
        payer: Payer::Customer,
    }
}

fn normal() -> Result<DayOutput, RuleError> {
    Ok(DayOutput::lines(vec![one()]))
}

/// What `mode` does to one hostile customer-day (all modes but `wrong-count`).
pub fn misbehave(mode: Mode) -> Result<DayOutput, RuleError> {
    match mode {
        Mode::Loop => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Mode::Memory => {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                // Written, not just reserved, so the pages are really used.
                let block = vec![0xA5u8; 1 << 20];
                hog.push(std::hint::black_box(block));
            }
        }
        Mode::Trap => trap(),
        Mode::Panic => panic!("hostile plugin: panicking on purpose"),
        Mode::Lines => Ok(DayOutput::lines(vec![one(); 1000])),
        Mode::BigString => Err(RuleError::Unsupported("x".repeat(10_000_000))),
        Mode::BadAmount => {
            let mut l = one();
            l.amount = WitDecimal {
                units: 1005,
                scale: 3,
            };
            Ok(DayOutput::lines(vec![l]))
        }
        Mode::BadSpec => {
            let mut l = one();
            l.spec = 7;
            Ok(DayOutput::lines(vec![l]))
        }
        Mode::WrongCount => normal(),
        Mode::Stdout => {
            let chunk = "hostile plugin output ".repeat(64);
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            for _ in 0..(1 << 20) / chunk.len() {
                // A host that closes the streams must not make the plugin fail.
                let _ = writeln!(out, "{chunk}");
                let _ = writeln!(err, "{chunk}");
            }
            normal()
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Tariff,
            description: "Test fixture: misbehaves as `mode` says for customer-days tagged \"hostile\"; bills 1.00 to every other customer-day.".into(),
            params: vec![param(
                "mode",
                ParamType::Text,
                true,
                "loop, memory, trap, panic, lines, big-string, bad-amount, bad-spec, wrong-count or stdout.",
            )],
        }
    }

    fn configure(params: String) -> Result<Configuration, RuleError> {
        let p: Params = heatbill_sdk::params::parse(&params)?;
        MODE.set(p.mode)
            .map_err(|_| RuleError::BadParams("already configured".into()))?;
        Ok(Configuration {
            lines: vec![line_spec(
                "hostile",
                "Hostile fixture",
                "CNY",
                LineCategory::Other,
            )],
            applies_to: DayFilter::ALL,
        })
    }

    fn evaluate(day: CustomerDay) -> Result<DayOutput, RuleError> {
        let Some(&mode) = MODE.get() else {
            return Err(RuleError::Unsupported("not configured".into()));
        };
        if is_hostile(&day) {
            misbehave(mode)
        } else {
            normal()
        }
    }

    fn evaluate_batch(batch: DayBatch) -> BatchOutput {
        let Some(&mode) = MODE.get() else {
            let e = RuleError::Unsupported("not configured".into());
            return heatbill_sdk::batch::encode(vec![Err(e); batch.len as usize]);
        };
        let days = match heatbill_sdk::batch::decode(&batch) {
            Ok(days) => days,
            Err(e) => {
                let e = RuleError::InvalidInput(e.0);
                return heatbill_sdk::batch::encode(vec![Err(e); batch.len as usize]);
            }
        };
        let results = days
            .iter()
            .map(|d| {
                if is_hostile(d) {
                    misbehave(mode)
                } else {
                    normal()
                }
            })
            .collect();
        let mut out = heatbill_sdk::batch::encode(results);
        if mode == Mode::WrongCount && days.iter().any(is_hostile) {
            // Columns of different lengths: the host must refuse the whole output.
            out.lines.payers.pop();
        }
        out
    }
}

/// Whether a customer-day carries the tag that triggers the misbehaviour.
pub fn is_hostile(day: &CustomerDay) -> bool {
    day.tags.iter().any(|t| t == "hostile")
}

heatbill_sdk::export_guest!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;
    use heatbill_sdk::testing::day;

    #[test]
    fn harmless_modes_on_hostile_days() {
        assert_eq!(misbehave(Mode::Lines).unwrap().lines.len(), 1000);
        assert!(
            !misbehave(Mode::BadAmount).unwrap().lines[0]
                .amount
                .is_whole_fen()
        );
        assert_eq!(misbehave(Mode::BadSpec).unwrap().lines[0].spec, 7);
        assert_eq!(
            misbehave(Mode::BigString).unwrap_err().message().len(),
            10_000_000
        );
    }

    #[test]
    fn only_tagged_days_are_hostile() {
        assert!(is_hostile(&day("2026-01-01").tag("hostile").build()));
        assert!(!is_hostile(
            &day("2026-01-01").tag("district:nangang").build()
        ));
        let info = Hostile::describe();
        assert_eq!(info.name, "hostile");
    }
}
