//! Test fixture: a plugin that misbehaves on purpose, for the host's sandbox tests.
//!
//! The misbehaviour is the `mode` parameter. Most modes are triggered only for customer-days
//! tagged `"hostile"`: every other customer-day gets one normal 1.00 line, so a test can show that
//! the customers after the hostile one in the same batch are still billed (by a fresh instance).
//!
//! | mode | what a hostile customer-day does |
//! |---|---|
//! | `loop` | loops forever (the deadline must stop it) |
//! | `memory` | allocates 1 MiB blocks until the memory cap stops it (a trap) |
//! | `trap` | executes `unreachable` |
//! | `panic` | panics (prints the message on stderr, then traps) |
//! | `recursion` | recurses without end (the call stack overflows) |
//! | `exit` | calls `std::process::exit(3)` |
//! | `lines` | returns 1,000 lines |
//! | `big-string` | returns a rule error with a 10 MB message |
//! | `bad-amount` | returns an amount with three decimals (1.005) |
//! | `bad-spec` | returns a line whose spec index is out of range |
//! | `bad-payer` | returns a line whose payer code is 7 (there are three payers) |
//! | `line-and-error` | returns a line *and* a rule error for the same customer-day |
//! | `season` | a tariff that returns season positions (for the whole batch) |
//! | `wrong-count` | returns one result fewer than the batch's days |
//! | `stdout` | prints 1 MiB to stdout and to stderr, then bills normally |
//! | `clock` | reads the wall clock and the monotonic clock (across a 1 s sleep); see below |
//! | `random` | reads every random source WASI has; see below |
//! | `min-amount` | returns a line of amount `i64::MIN` fen |
//! | `max-lines` | returns 64 lines of `i64::MAX` fen (their sum overflows an `s64`) |
//! | `overpriced` | returns a line of quantity 1 × unit price 1.00 and amount 10,000.00 |
//! | `positive-refund` | returns a refund line of +5.00 |
//! | `subsidy-skim` | returns subsidy lines of −0.10 for the customer and +999.99 for the government |
//! | `negative-heating` | returns a heating line of −1.00 |
//! | `government-late-fee` | returns a late-fee line of 1.00 paid by the government |
//! | `huge-quantity` | returns a heating line of quantity −9,223,372,036,854,775,808 (`i64::MIN`) × unit price 9.22 and amount 1.00 |
//! | `huge-unit-price` | returns a heating line of quantity 0.000000000000000001 × unit price −9,223,372,036,854,775,808 and amount 1.00 |
//! | `skim` | *every* customer-day: 1.00, plus 0.01 for each customer-day before it in the same call |
//! | `previous` | *every* customer-day: 1.00, plus the previous customer-day's building area (in whole m², mod 100) in fen, remembered across calls |
//! | `after-n` | *every* customer-day: 1.00, and 1.50 once the instance has billed 1,000 customer-days |
//! | `slow-retry` | *every* call of two or more customer-days returns a malformed output (columns of different lengths); a call of one customer-day spins `spin` iterations (a parameter), then bills 1.00 |
//! | `mixed-class` | *every* customer-day: 1.00, or 1.10 when its call holds customer-days of more than one class (residential and non-residential) |
//! | `spin` | spins `spin` iterations, then bills 1.00: an honest rule that is merely slow (its time is CPU time) |
//! | `many-errors` | returns 1,000 row errors of 8 KiB each for its batch (a row has at most one) |
//! | `escape-message` | returns a rule error whose message carries CR, ANSI colour, an OSC title and a fake "ok" |
//!
//! The `clock` and `random` modes show what a plugin that breaks the purity rule sees: they
//! return, instead of the 1.00 line, lines of kind 1 (`reading`, amount 0.00) whose quantities
//! are the values read:
//!
//! - `clock`: line 0, the wall clock as seconds since 1970-01-01T00:00:00Z, to the nanosecond
//!   (`SystemTime::now()`); line 1, the seconds that `Instant` says passed over a 1 s
//!   `std::thread::sleep`, to the nanosecond.
//! - `random`: line 0, `RandomState::new().hash_one("heatbill")` (what a `HashMap` does: the
//!   standard library seeds it from `wasi:random/insecure-seed`); line 1, `get-random-u64`; lines 2
//!   and 3, `get-random-bytes(16)` as two little-endian `u64`; line 4, `get-insecure-random-u64`;
//!   lines 5 and 6, the two halves of `insecure-seed`. Each `u64` is carried as the `s64` with
//!   the same bits, at scale 18 (so that every value is within the quantity bound).
//!
//! Other modes misbehave in `configure`, whatever the customer-day (a plugin configured with
//! them never evaluates anything):
//!
//! | mode | what `configure` does |
//! |---|---|
//! | `configure-panic` | panics |
//! | `configure-loop` | loops forever |
//! | `many-kinds` | announces 65 line kinds (the default limit is 64) |
//! | `long-code` | announces a kind with a 32-byte code, then one with a 33-byte code |
//! | `empty-code` | announces a kind with code `hostile`, then one with an empty code |
//! | `long-description` | announces a kind with a 200-byte description (66 × `费` and `xx`), then one with a 201-byte description (67 × `费`, only 67 characters) |
//! | `long-unit` | announces a kind with a 16-byte unit, then one with a 17-byte unit (`元元元元元xx`) |
//! | `configure-slow` | spins `spin` iterations in `configure`, then configures normally |
//! | `bidi-description` | announces a kind whose description holds a right-to-left override (U+202E) |
//! | `zero-width-unit` | announces a kind whose unit holds a zero-width space (U+200B) |
//! | `separator-description` | announces a kind whose description holds a line separator (U+2028) |
//!
//! (`many-kinds` configures fine under a limit of 65 or more, and then bills every customer-day
//! normally.)
//!
//! It implements the generated `Guest` trait directly (not [`heatbill_sdk::Plugin`]), because
//! the SDK's safety nets (result count, message length, line-spec checks) would otherwise repair
//! the breakage.
//!
//! One file, though long: a test fixture whose forty-odd modes are each a few lines; one table of
//! modes above and one `match` below keep each misbehaviour beside its documentation.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heatbill_sdk::bindings::exports::heatbill::rules::rules::Guest;
use heatbill_sdk::prelude::*;
use heatbill_sdk::{
    BatchOutput, Configuration, DayBatch, DecimalColumn, LineColumn, RowError, SeasonColumn,
};
use serde::Deserialize;

/// The WASI random interfaces, imported directly (`wit/hostile.wit`).
#[allow(unsafe_code, missing_docs, clippy::all)]
mod wasi_reads {
    wit_bindgen::generate!({ path: "wit", world: "wasi-reads", generate_all });
}

/// What a hostile customer-day (or, for the `configure-*` and line-kind modes, `configure`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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
    /// Recurse until the call stack overflows.
    Recursion,
    /// Call `exit(3)`.
    Exit,
    /// Return 1,000 lines.
    Lines,
    /// Return a 10 MB error message.
    BigString,
    /// Return an amount of 1.005.
    BadAmount,
    /// Return a line with an out-of-range spec index.
    BadSpec,
    /// Return a line with payer code 7.
    BadPayer,
    /// Return a line and a rule error for the same customer-day.
    LineAndError,
    /// Return season positions although the plugin is a tariff.
    Season,
    /// Return line columns of different lengths.
    WrongCount,
    /// Flood stdout and stderr, then bill normally.
    Stdout,
    /// Return what the clocks say.
    Clock,
    /// Return what the random sources say.
    Random,
    /// Panic in `configure`.
    ConfigurePanic,
    /// Loop forever in `configure`.
    ConfigureLoop,
    /// Announce 65 line kinds.
    ManyKinds,
    /// Announce a line kind whose code is 33 bytes.
    LongCode,
    /// Announce a line kind whose code is empty.
    EmptyCode,
    /// Announce a line kind whose description is 201 bytes.
    LongDescription,
    /// Announce a line kind whose unit is 17 bytes.
    LongUnit,
    /// Return a random `batch-output` (columns of random lengths, rows, codes, decimals, errors
    /// and season columns), seeded by the hostile customer-days' building area: the host's
    /// checks of a plugin's output, fuzzed through a real component.
    Garbage,
    /// Bill 2.00 through the single-day `evaluate` and 1.00 through `evaluate-batch`: two
    /// entry points that disagree, which the harness must catch.
    TwoFaced,
    /// Return an amount of `i64::MIN` fen.
    MinAmount,
    /// Return 64 lines of `i64::MAX` fen.
    MaxLines,
    /// Return 10,000.00 for quantity 1 at 1.00.
    Overpriced,
    /// Return a refund of +5.00.
    PositiveRefund,
    /// Return a subsidy pair of −0.10 (customer) and +999.99 (government).
    SubsidySkim,
    /// Return a heating line of −1.00.
    NegativeHeating,
    /// Return a late fee paid by the government.
    GovernmentLateFee,
    /// Return a heating line of quantity `i64::MIN` × 9.22 = 1.00.
    HugeQuantity,
    /// Return a heating line of quantity 10^-18 × unit price `i64::MIN` = 1.00.
    HugeUnitPrice,
    /// Bill more the later a customer-day comes in its call.
    Skim,
    /// Bill by the previous customer-day's area.
    Previous,
    /// Bill more once the instance has billed 1,000 customer-days.
    AfterN,
    /// Malformed batch outputs; single-day calls that spin.
    SlowRetry,
    /// Spin in `configure`.
    ConfigureSlow,
    /// Bill 1.10 instead of 1.00 when the call mixes customer classes.
    MixedClass,
    /// Spin `spin` iterations per hostile customer-day, then bill normally.
    Spin,
    /// Return 1,000 row errors for the batch.
    ManyErrors,
    /// Return a rule error whose message is made to rewrite a terminal.
    EscapeMessage,
    /// Announce a line kind whose description holds U+202E.
    BidiDescription,
    /// Announce a line kind whose unit holds U+200B.
    ZeroWidthUnit,
    /// Announce a line kind whose description holds U+2028.
    SeparatorDescription,
}

/// The message of `escape-message`: a carriage return, colour, an OSC window title and a line
/// that, printed raw, would overwrite the failing case's row with a passing one.
pub const ESCAPE_MESSAGE: &str =
    "\r\x1b[2K\x1b[32mok\x1b[0m   every case\x1b]0;all passed\x07\n1 passed, 0 failed\x1b[8m";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// How the plugin misbehaves (for customer-days tagged "hostile", or in configure).
    mode: Mode,
    /// Iterations of the `slow-retry` and `configure-slow` spins.
    #[serde(default)]
    spin: u64,
}

static MODE: OnceLock<Mode> = OnceLock::new();
static SPIN: OnceLock<u64> = OnceLock::new();

/// Spins `n` iterations that the compiler cannot remove.
fn spin(n: u64) {
    let mut x: u64 = 0;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_add(i));
    }
    std::hint::black_box(x);
}

/// The fixture.
pub struct Hostile;

/// The line kind of the 1.00 line.
const NORMAL: u16 = 0;
/// The line kind of a value read by `clock` or `random`.
const READING: u16 = 1;

fn one() -> Line {
    let one = WitDecimal {
        units: 100,
        scale: 2,
    };
    Line {
        spec: NORMAL,
        quantity: one,
        unit_price: one,
        amount: one,
        payer: Payer::Customer,
        season_amount: None,
    }
}

fn normal() -> Result<DayOutput, RuleError> {
    Ok(DayOutput::lines(vec![one()]))
}

/// A `reading` line whose quantity is `units × 10^-scale`, amount 0.00.
fn reading(units: i64, scale: u8) -> Line {
    Line {
        spec: READING,
        quantity: WitDecimal { units, scale },
        unit_price: WitDecimal { units: 0, scale: 0 },
        amount: WitDecimal { units: 0, scale: 2 },
        payer: Payer::Customer,
        season_amount: None,
    }
}

/// The line kinds the output-invariant modes use, after `normal` and `reading`.
const HEATING: u16 = 2;
const REFUND: u16 = 3;
const SUBSIDY: u16 = 4;
const LATE_FEE: u16 = 5;

/// A line of kind `spec`: quantity 1, unit price `price` fen, amount `amount` fen.
fn priced(spec: u16, price: i64, amount: i64, payer: Payer) -> Line {
    Line {
        spec,
        quantity: WitDecimal { units: 1, scale: 0 },
        unit_price: WitDecimal {
            units: price,
            scale: 2,
        },
        amount: WitDecimal {
            units: amount,
            scale: 2,
        },
        payer,
        season_amount: None,
    }
}

thread_local! {
    /// `previous`: the building area (whole m²) of the last customer-day billed.
    static PREVIOUS: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
    /// `after-n`: how many customer-days this instance has billed.
    static BILLED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What the state-carrying modes bill `day`, the `position`-th customer-day of its call: each
/// breaks the contract's purity rule (a bill depends on its customer-day alone) in its own way.
pub fn stateful(mode: Mode, day: &CustomerDay, position: usize) -> Option<DayOutput> {
    let extra = match mode {
        Mode::Skim => position as i64,
        Mode::Previous => {
            let area = day.building_area.units / 10i64.pow(u32::from(day.building_area.scale));
            PREVIOUS.with(|p| p.replace(area)) % 100
        }
        Mode::AfterN => {
            let n = BILLED.with(|b| b.replace(b.get() + 1));
            if n >= 1_000 { 50 } else { 0 }
        }
        _ => return None,
    };
    let amount = 100 + extra;
    Some(DayOutput::lines(vec![priced(
        NORMAL,
        amount,
        amount,
        Payer::Customer,
    )]))
}

/// A `u64` as the `s64` with the same bits.
fn bits(v: u64) -> i64 {
    i64::from_le_bytes(v.to_le_bytes())
}

/// A duration in nanoseconds, saturating.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Recurses `n` deep; not a tail call (the result is used after the call), so it cannot become
/// a loop, and it keeps nothing in linear memory, so it is the wasm call stack that overflows.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    recurse(n - 1).rotate_left(1) ^ n
}

/// What `mode` does to one hostile customer-day (all modes but the output-shape ones, which
/// `evaluate_batch` applies to the whole output, and the configure-time ones).
pub fn misbehave(mode: Mode) -> Result<DayOutput, RuleError> {
    match mode {
        Mode::Spin => {
            spin(SPIN.get().copied().unwrap_or(0));
            normal()
        }
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
        Mode::Recursion => {
            let depth = recurse(std::hint::black_box(u64::MAX));
            Ok(DayOutput::lines(vec![reading(bits(depth), 0)]))
        }
        Mode::Exit => std::process::exit(3),
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
        Mode::Clock => {
            let wall = match SystemTime::now().duration_since(UNIX_EPOCH) {
                Ok(since) => nanos(since),
                Err(e) => -nanos(e.duration()),
            };
            let start = Instant::now();
            // A host whose sleep really waited would also have to stop the plugin at its
            // deadline (100 ms in the tests) once the sleep returned.
            std::thread::sleep(Duration::from_secs(1));
            let slept = nanos(start.elapsed());
            Ok(DayOutput::lines(vec![reading(wall, 9), reading(slept, 9)]))
        }
        Mode::Random => {
            use wasi_reads::wasi::random::{insecure, insecure_seed, random};
            let hashed = RandomState::new().hash_one("heatbill");
            let secure = random::get_random_u64();
            let bytes = random::get_random_bytes(16);
            let (lo, hi) = bytes.split_at(8);
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
            let insecure = insecure::get_insecure_random_u64();
            let (seed0, seed1) = insecure_seed::insecure_seed();
            Ok(DayOutput::lines(
                [hashed, secure, word(lo), word(hi), insecure, seed0, seed1]
                    .into_iter()
                    .map(|v| reading(bits(v), 18))
                    .collect(),
            ))
        }
        Mode::MinAmount => Ok(DayOutput::lines(vec![priced(
            NORMAL,
            i64::MAX,
            i64::MIN,
            Payer::Customer,
        )])),
        Mode::MaxLines => Ok(DayOutput::lines(vec![
            priced(
                NORMAL,
                i64::MAX,
                i64::MAX,
                Payer::Customer
            );
            64
        ])),
        Mode::Overpriced => Ok(DayOutput::lines(vec![priced(
            NORMAL,
            100,
            1_000_000,
            Payer::Customer,
        )])),
        Mode::PositiveRefund => Ok(DayOutput::lines(vec![priced(
            REFUND,
            500,
            500,
            Payer::Customer,
        )])),
        Mode::SubsidySkim => Ok(DayOutput::lines(vec![
            priced(SUBSIDY, 100_000, -10, Payer::Customer),
            priced(SUBSIDY, 100_000, 99_999, Payer::Government),
        ])),
        Mode::NegativeHeating => Ok(DayOutput::lines(vec![priced(
            HEATING,
            100,
            -100,
            Payer::Customer,
        )])),
        Mode::GovernmentLateFee => Ok(DayOutput::lines(vec![priced(
            LATE_FEE,
            100,
            100,
            Payer::Government,
        )])),
        Mode::HugeQuantity => Ok(DayOutput::lines(vec![Line {
            quantity: WitDecimal {
                units: i64::MIN,
                scale: 0,
            },
            ..priced(HEATING, 922, 100, Payer::Customer)
        }])),
        Mode::HugeUnitPrice => Ok(DayOutput::lines(vec![Line {
            quantity: WitDecimal {
                units: 1,
                scale: 18,
            },
            unit_price: WitDecimal {
                units: i64::MIN,
                scale: 0,
            },
            ..priced(HEATING, 0, 100, Payer::Customer)
        }])),
        Mode::EscapeMessage => Err(RuleError::InvalidInput(ESCAPE_MESSAGE.into())),
        Mode::BadPayer
        | Mode::LineAndError
        | Mode::Season
        | Mode::WrongCount
        | Mode::ConfigurePanic
        | Mode::ConfigureLoop
        | Mode::ManyKinds
        | Mode::LongCode
        | Mode::EmptyCode
        | Mode::LongDescription
        | Mode::LongUnit
        | Mode::SlowRetry
        | Mode::ManyErrors
        | Mode::ConfigureSlow
        | Mode::MixedClass
        | Mode::Skim
        | Mode::Previous
        | Mode::AfterN
        | Mode::BidiDescription
        | Mode::ZeroWidthUnit
        | Mode::SeparatorDescription
        | Mode::Garbage
        | Mode::TwoFaced => normal(),
    }
}

/// The line kinds `configure` announces in `mode` (the configure-time modes break them).
pub fn line_kinds(mode: Mode) -> Vec<LineSpec> {
    let normal = line_spec("hostile", "Hostile fixture", "CNY", LineCategory::Other);
    let reading = line_spec(
        "reading",
        "A value the plugin read from its environment",
        "",
        LineCategory::Other,
    );
    let with = |f: &dyn Fn(&mut LineSpec)| {
        let mut s = normal.clone();
        f(&mut s);
        s
    };
    match mode {
        Mode::ManyKinds => (0..65)
            .map(|i| line_spec(&format!("k{i}"), "One of many", "CNY", LineCategory::Other))
            .collect(),
        Mode::LongCode => vec![
            with(&|s| s.code = "c".repeat(32)),
            with(&|s| s.code = "c".repeat(33)),
        ],
        Mode::EmptyCode => vec![normal.clone(), with(&|s| s.code = String::new())],
        Mode::LongDescription => vec![
            with(&|s| s.description = "费".repeat(66) + "xx"),
            with(&|s| s.description = "费".repeat(67)),
        ],
        Mode::LongUnit => vec![
            with(&|s| s.unit = "u".repeat(16)),
            with(&|s| s.unit = "元".repeat(5) + "xx"),
        ],
        Mode::BidiDescription => vec![with(&|s| s.description = "Heat \u{202E}eef".into())],
        Mode::ZeroWidthUnit => vec![with(&|s| s.unit = "C\u{200B}NY".into())],
        Mode::SeparatorDescription => {
            vec![with(&|s| s.description = "Heat\u{2028}fee".into())]
        }
        Mode::MinAmount
        | Mode::MaxLines
        | Mode::Overpriced
        | Mode::PositiveRefund
        | Mode::SubsidySkim
        | Mode::NegativeHeating
        | Mode::GovernmentLateFee
        | Mode::HugeQuantity
        | Mode::HugeUnitPrice => {
            let kind = |code: &str, category| line_spec(code, "Hostile fixture", "CNY", category);
            vec![
                normal,
                reading,
                kind("heat", LineCategory::Heating),
                kind("refund", LineCategory::Refund),
                kind("subsidy", LineCategory::Subsidy),
                kind("late-fee", LineCategory::LateFee),
            ]
        }
        _ => vec![normal, reading],
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
            description: "Test fixture: misbehaves as `mode` says for customer-days tagged \"hostile\" (or in configure); bills 1.00 to every other customer-day.".into(),
            params_schema: heatbill_sdk::params::schema::<Params>(),
        }
    }

    fn configure(params: String) -> Result<Configuration, RuleError> {
        let p: Params = heatbill_sdk::params::parse(&params)?;
        MODE.set(p.mode)
            .map_err(|_| RuleError::BadParams("already configured".into()))?;
        let _ = SPIN.set(p.spin);
        if p.mode == Mode::ConfigureSlow {
            spin(p.spin);
        }
        match p.mode {
            Mode::ConfigurePanic => panic!("hostile plugin: panicking in configure on purpose"),
            Mode::ConfigureLoop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            mode => Ok(Configuration {
                lines: line_kinds(mode),
                applies_to: DayFilter::ALL,
            }),
        }
    }

    fn evaluate(day: CustomerDay) -> Result<DayOutput, RuleError> {
        let Some(&mode) = MODE.get() else {
            return Err(RuleError::Unsupported("not configured".into()));
        };
        if let Some(out) = stateful(mode, &day, 0) {
            return Ok(out);
        }
        if !is_hostile(&day) {
            return normal();
        }
        if mode == Mode::TwoFaced {
            let mut l = one();
            l.unit_price.units = 200;
            l.amount.units = 200;
            return Ok(DayOutput::lines(vec![l]));
        }
        misbehave(mode)
    }

    fn evaluate_batch(batch: DayBatch) -> BatchOutput {
        let Some(&mode) = MODE.get() else {
            let e = RuleError::Unsupported("not configured".into());
            return heatbill_sdk::batch::encode(vec![Err(e); batch.len as usize]);
        };
        if mode == Mode::SlowRetry {
            if batch.len == 1 {
                spin(SPIN.get().copied().unwrap_or(0));
                return heatbill_sdk::batch::encode(vec![normal()]);
            }
            let mut out = heatbill_sdk::batch::encode(vec![normal(); batch.len as usize]);
            out.lines.payers.pop();
            return out;
        }
        let days = match heatbill_sdk::batch::decode(&batch) {
            Ok(days) => days,
            Err(e) => {
                let e = RuleError::InvalidInput(e.0);
                return heatbill_sdk::batch::encode(vec![Err(e); batch.len as usize]);
            }
        };
        let mixed = days.iter().any(|d| d.class != days[0].class);
        let results = days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if mode == Mode::MixedClass {
                    let amount = if mixed { 110 } else { 100 };
                    Ok(DayOutput::lines(vec![priced(
                        NORMAL,
                        amount,
                        amount,
                        Payer::Customer,
                    )]))
                } else if let Some(out) = stateful(mode, d, i) {
                    Ok(out)
                } else if is_hostile(d) {
                    misbehave(mode)
                } else {
                    normal()
                }
            })
            .collect();
        let mut out = heatbill_sdk::batch::encode(results);
        let hostile: Vec<u32> = (0..days.len() as u32)
            .filter(|&r| is_hostile(&days[r as usize]))
            .collect();
        let seed = hostile
            .iter()
            .map(|&r| days[r as usize].building_area.units as u64)
            .fold(0u64, u64::wrapping_add);
        SEED.with(|s| s.set(seed));
        if !hostile.is_empty() {
            break_output(mode, &mut out, &hostile, days.len());
        }
        out
    }
}

/// What the output-shape modes do to a batch's output, given the hostile rows (ascending).
fn break_output(mode: Mode, out: &mut BatchOutput, hostile: &[u32], len: usize) {
    match mode {
        // Columns of different lengths: the host must refuse the whole output.
        Mode::WrongCount => {
            out.lines.payers.pop();
        }
        Mode::BadPayer => {
            for (k, row) in out.lines.rows.iter().enumerate() {
                if hostile.contains(row) {
                    out.lines.payers[k] = 7;
                }
            }
        }
        // The rows keep their lines; the errors list was empty (every row succeeded).
        Mode::LineAndError => {
            out.errors = hostile
                .iter()
                .map(|&row| RowError {
                    row,
                    error: RuleError::Unsupported("and a line as well".into()),
                })
                .collect();
        }
        // A well-formed season column (regular day 1 of 1), from a plugin that is no season.
        Mode::Season => {
            out.season = Some(SeasonColumn {
                phase: vec![SeasonPhase::Regular as u8; len],
                day_index: vec![1; len],
                season_days: vec![1; len],
                charged: vec![0; len],
            });
        }
        Mode::Garbage => *out = garbage(SEED.with(|s| s.get()), len),
        // Far more errors than rows, each with a message far over the limit: what the host
        // lifts from it must stay bounded.
        Mode::ManyErrors => {
            out.errors = (0..1000)
                .map(|_| RowError {
                    row: 0,
                    error: RuleError::Unsupported("e".repeat(8192)),
                })
                .collect();
        }
        _ => {}
    }
}

thread_local! {
    /// The seed of a garbage output: the sum of the hostile rows' building areas (in units),
    /// set by `evaluate_batch` before it breaks the output.
    static SEED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A random `batch-output` for a batch of `len` rows. Most draws are well-formed in shape so
/// that the per-row checks are reached too; about one in four columns has a wrong length.
pub fn garbage(seed: u64, len: usize) -> BatchOutput {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = r.below(8) as usize;
    let size = |r: &mut Rng, n: usize| {
        if r.below(4) == 0 {
            n + 1 + r.below(2) as usize
        } else {
            n
        }
    };
    let mut rows: Vec<u32> = (0..size(&mut r, n))
        .map(|_| r.below(len as u64 + 2) as u32)
        .collect();
    if r.below(3) != 0 {
        rows.sort_unstable();
    }
    let column = |r: &mut Rng, n: usize| DecimalColumn {
        units: (0..n).map(|_| (r.next() as i64) >> r.below(64)).collect(),
        scales: (0..n).map(|_| r.below(21) as u8).collect(),
    };
    let kinds = (0..size(&mut r, n)).map(|_| r.below(4) as u16).collect();
    let payers = (0..size(&mut r, n)).map(|_| r.below(5) as u8).collect();
    let quantity = column(&mut r, n);
    let unit_price = column(&mut r, n);
    let mut amount = column(&mut r, n);
    // Often whole fen, so that lines get past the amount check.
    if r.below(2) == 0 {
        for (u, s) in amount.units.iter_mut().zip(amount.scales.iter_mut()) {
            *u %= 1_000_000;
            *s = 2;
        }
    }
    let mut error_rows: Vec<u32> = (0..r.below(3))
        .map(|_| r.below(len as u64 + 1) as u32)
        .collect();
    if r.below(3) != 0 {
        error_rows.sort_unstable();
        error_rows.dedup();
    }
    let errors = error_rows
        .into_iter()
        .map(|row| {
            let m = "e".repeat(r.below(1500) as usize);
            let error = match r.below(4) {
                0 => RuleError::BadParams(m),
                1 => RuleError::MissingInput(m),
                2 => RuleError::InvalidInput(m),
                _ => RuleError::Unsupported(m),
            };
            RowError { row, error }
        })
        .collect();
    let season = (r.below(3) == 0).then(|| {
        let m = size(&mut r, len);
        SeasonColumn {
            phase: (0..m).map(|_| r.below(6) as u8).collect(),
            day_index: (0..m).map(|_| r.below(400) as u32).collect(),
            season_days: (0..m).map(|_| r.below(400) as u32).collect(),
            charged: (0..m).map(|_| r.below(3) as u8).collect(),
        }
    });
    // Drawn last, so the draws before it are those of the 0.1.0 fixture.
    let season_amount = if r.below(2) == 0 {
        DecimalColumn {
            units: vec![0; n],
            scales: vec![0; n],
        }
    } else {
        column(&mut r, n)
    };
    BatchOutput {
        lines: LineColumn {
            rows,
            kinds,
            payers,
            quantity,
            unit_price,
            amount,
            season_amount,
        },
        errors,
        season,
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

    #[test]
    fn line_kinds_break_the_limits_by_one_byte() {
        assert_eq!(line_kinds(Mode::Trap).len(), 2);
        assert_eq!(line_kinds(Mode::ManyKinds).len(), 65);
        let lens = |mode, f: fn(&LineSpec) -> usize| -> Vec<usize> {
            line_kinds(mode).iter().map(f).collect()
        };
        assert_eq!(lens(Mode::LongCode, |s| s.code.len()), [32, 33]);
        assert_eq!(lens(Mode::EmptyCode, |s| s.code.len()), [7, 0]);
        assert_eq!(
            lens(Mode::LongDescription, |s| s.description.len()),
            [200, 201]
        );
        assert_eq!(
            lens(Mode::LongDescription, |s| s.description.chars().count()),
            [68, 67]
        );
        assert_eq!(lens(Mode::LongUnit, |s| s.unit.len()), [16, 17]);
    }

    #[test]
    fn output_shape_modes_touch_the_hostile_rows_only() {
        let results = vec![normal(), normal(), normal()];
        let mut out = heatbill_sdk::batch::encode(results.clone());
        break_output(Mode::BadPayer, &mut out, &[1], 3);
        assert_eq!(out.lines.payers, [0, 7, 0]);

        let mut out = heatbill_sdk::batch::encode(results.clone());
        break_output(Mode::LineAndError, &mut out, &[1], 3);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].row, 1);
        assert_eq!(out.lines.rows, [0, 1, 2]);

        let mut out = heatbill_sdk::batch::encode(results);
        break_output(Mode::Season, &mut out, &[1], 3);
        assert_eq!(out.season.unwrap().phase.len(), 3);
    }
}
