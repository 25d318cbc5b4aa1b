//! Lifting a `batch-output` with heatbill's own bound on what the host allocates.
//!
//! The canonical ABI copies every string and list a plugin returns into host memory before the
//! host sees any of it. A `batch-output` whose row errors all point at one large string in the
//! plugin's memory would make the host allocate that string once per error: the security review
//! made one call allocate ~150 MB this way, and nothing but the plugin's memory bounded it. So
//! `evaluate-batch` is called through a typed function whose result type lifts the row errors
//! with bounds: at most one error per customer-day of the call, and each message at most
//! `limits.max_message_bytes`. Past a bound, nothing is copied: the length alone is kept, and
//! the output is refused as `invalid-output` naming the bound. The line columns are lists of
//! numbers, each copied once (at most the plugin's memory each).

// Implementing wasmtime's lifting traits is `unsafe` (the type must match its lowered layout),
// and so is what their derives generate; each impl below says why it holds.
#![allow(unsafe_code)]

use std::cell::Cell;

use wasmtime::ValRaw;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

use crate::bindings::wit;

thread_local! {
    /// (the most row errors, the longest message) of the call being lifted on this thread.
    static BOUNDS: Cell<(usize, usize)> = const { Cell::new((usize::MAX, usize::MAX)) };
}

/// The bounds of the lifts on this thread while it lives (one `evaluate-batch` call).
pub(crate) struct Bounds(());

impl Bounds {
    pub(crate) fn set(max_errors: usize, max_message_bytes: usize) -> Bounds {
        BOUNDS.with(|b| b.set((max_errors, max_message_bytes)));
        Bounds(())
    }
}

impl Drop for Bounds {
    fn drop(&mut self) {
        BOUNDS.with(|b| b.set((usize::MAX, usize::MAX)));
    }
}

/// A string or list lifted only if its length is within the bound: `Over` keeps the length.
#[derive(Debug)]
pub(crate) enum Bounded<T> {
    Within(T),
    Over(usize),
}

/// The length of a string or list from its lowered (pointer, length) pair. For strings in
/// UTF-16 the top bit tags the encoding; it is masked off (the bound is in code units then).
fn flat_len(src: &[ValRaw; 2]) -> usize {
    (src[1].get_u32() & !(1 << 31)) as usize
}

fn memory_len(bytes: &[u8]) -> usize {
    let len = bytes
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(u32::MAX, u32::from_le_bytes);
    (len & !(1 << 31)) as usize
}

// SAFETY: the same lowered representation and ABI as `String`, whose type check it delegates
// to; lifting reads the (pointer, length) pair and then defers to `String`'s own lift.
unsafe impl ComponentType for Bounded<String> {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as above.
unsafe impl Lift for Bounded<String> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let len = flat_len(src);
        if len > BOUNDS.with(|b| b.get().1) {
            return Ok(Bounded::Over(len));
        }
        String::linear_lift_from_flat(cx, ty, src).map(Bounded::Within)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let len = memory_len(bytes);
        if len > BOUNDS.with(|b| b.get().1) {
            return Ok(Bounded::Over(len));
        }
        String::linear_lift_from_memory(cx, ty, bytes).map(Bounded::Within)
    }
}

// SAFETY: the same lowered representation and ABI as `Vec<T>`, whose type check it delegates
// to; lifting reads the (pointer, length) pair and then defers to `Vec<T>`'s own lift.
unsafe impl<T: Lift> ComponentType for Bounded<Vec<T>> {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<T> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as above.
unsafe impl<T: Lift> Lift for Bounded<Vec<T>> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let len = flat_len(src);
        if len > BOUNDS.with(|b| b.get().0) {
            return Ok(Bounded::Over(len));
        }
        Vec::<T>::linear_lift_from_flat(cx, ty, src).map(Bounded::Within)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let len = memory_len(bytes);
        if len > BOUNDS.with(|b| b.get().0) {
            return Ok(Bounded::Over(len));
        }
        Vec::<T>::linear_lift_from_memory(cx, ty, bytes).map(Bounded::Within)
    }
}

/// `rule-error` with bounded messages.
#[derive(ComponentType, Lift, Debug)]
#[component(variant)]
pub(crate) enum RuleError {
    #[component(name = "bad-params")]
    BadParams(Bounded<String>),
    #[component(name = "missing-input")]
    MissingInput(Bounded<String>),
    #[component(name = "invalid-input")]
    InvalidInput(Bounded<String>),
    #[component(name = "unsupported")]
    Unsupported(Bounded<String>),
}

/// `row-error` with a bounded message.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct RowError {
    row: u32,
    error: RuleError,
}

/// `batch-output` of contract 0.1.0, its row errors bounded.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct BatchOutputV0_1_0 {
    lines: crate::bindings::v0_1_0::wit::LineColumnResult,
    errors: Bounded<Vec<RowError>>,
    season: Option<crate::bindings::v0_1_0::wit::SeasonColumn>,
}

impl BatchOutputV0_1_0 {
    /// The output in the newest version's shape (no season amounts), its bounds kept.
    pub(crate) fn into_latest(self) -> BatchOutput {
        use crate::bindings::since_v0_1_0::{line_column, season_column};
        BatchOutput {
            lines: line_column(self.lines),
            errors: self.errors,
            season: self.season.map(season_column),
        }
    }
}

/// `batch-output`, its row errors bounded.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct BatchOutput {
    lines: wit::LineColumnResult,
    errors: Bounded<Vec<RowError>>,
    season: Option<wit::SeasonColumn>,
}

impl BatchOutput {
    /// The output as the rest of the engine reads it, or why it is refused: more row errors than
    /// customer-days, or a message over `max_message_bytes` (neither was copied).
    pub(crate) fn into_wit(
        self,
        rows: usize,
        max_message_bytes: usize,
    ) -> Result<wit::BatchOutput, String> {
        let errors = match self.errors {
            Bounded::Within(e) => e,
            Bounded::Over(n) => {
                return Err(format!(
                    "{n} row errors for a call of {rows} customer-days; the contract allows one \
                     per customer-day (not copied)"
                ));
            }
        };
        let mut out = Vec::with_capacity(errors.len());
        for RowError { row, error } in errors {
            let (make, message): (fn(String) -> wit::RuleError, _) = match error {
                RuleError::BadParams(m) => (wit::RuleError::BadParams, m),
                RuleError::MissingInput(m) => (wit::RuleError::MissingInput, m),
                RuleError::InvalidInput(m) => (wit::RuleError::InvalidInput, m),
                RuleError::Unsupported(m) => (wit::RuleError::Unsupported, m),
            };
            match message {
                Bounded::Within(m) => out.push(wit::RowError {
                    row,
                    error: make(m),
                }),
                Bounded::Over(len) => {
                    return Err(format!(
                        "a rule error with a message of {len} bytes; the limit is \
                         {max_message_bytes} (limits.max_message_bytes; not copied)"
                    ));
                }
            }
        }
        Ok(wit::BatchOutput {
            lines: self.lines,
            errors: out,
            season: self.season,
        })
    }
}
