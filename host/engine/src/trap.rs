//! Telling traps apart.
//!
//! A failed call into a plugin comes back as a `wasmtime::Error`. The engine names its kind
//! precisely, because an operator acts differently on each: a deadline (the plugin is slow or
//! loops), a memory limit (it allocates without bound), a panic (a bug, with the plugin's own
//! message), an exit, a stack overflow, or anything else (a bad pointer returned to the
//! canonical ABI, invalid UTF-8, an out-of-bounds access).
//!
//! The memory limit needs care: a denied `memory.grow` is not a trap. The plugin's allocator
//! sees it fail and aborts, which traps as `unreachable`. The store's limiter records the denial,
//! so an `unreachable` after a denial is reported as `memory-limit`.

use wasmtime::{Store, Trap};
use wasmtime_wasi::I32Exit;

use crate::error::error_chain;
use crate::model::TrapKind;
use crate::sandbox::{LogBuffer, StoreState};

/// Classifies a failed call. `log_mark` is the log's length when the call began, so that only
/// this call's panic message is quoted; `deadline_ms` is for the message.
pub(crate) fn classify(
    err: &wasmtime::Error,
    store: &mut Store<StoreState>,
    log: &LogBuffer,
    log_mark: u64,
    deadline_ms: u64,
) -> (TrapKind, String) {
    let denied = store.data_mut().limiter.denied_memory.take();
    let max_memory = store.data().limiter.max_memory();
    let memory = |base: String| {
        let asked = denied.unwrap_or_default();
        (
            TrapKind::MemoryLimit,
            format!(
                "the plugin tried to grow its memory to {asked} bytes, over the limit of \
                 {max_memory} bytes (limits.max_memory_bytes); {base}"
            ),
        )
    };
    if let Some(trap) = err.downcast_ref::<Trap>() {
        let base = trap.to_string();
        return match trap {
            Trap::Interrupt if store.data().deadline.wall_exceeded => (
                TrapKind::Deadline,
                format!(
                    "the call ran for {} times its deadline of {deadline_ms} ms in wall-clock \
                     time without spending it in CPU time: the plugin waited, or the host was \
                     stuck; {base}",
                    crate::cpu::WALL_CEILING_MULTIPLE
                ),
            ),
            Trap::Interrupt => (
                TrapKind::Deadline,
                format!(
                    "the call used more than its deadline of {deadline_ms} ms of CPU time \
                     (limits.deadline_base_ms + deadline_per_day_us per customer-day); {base}"
                ),
            ),
            _ if denied.is_some() => memory(base),
            Trap::StackOverflow => (TrapKind::StackOverflow, base),
            Trap::UnreachableCodeReached => match log.last_exception_since(log_mark) {
                Some(exception) => (TrapKind::Panic, format!("{exception}; {base}")),
                None => match log.last_panic_since(log_mark) {
                    Some(panic) => (
                        TrapKind::Panic,
                        format!("the plugin panicked: {panic}; {base}"),
                    ),
                    None => (TrapKind::Unreachable, base),
                },
            },
            _ => (TrapKind::Other, base),
        };
    }
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return (
            TrapKind::Exit,
            format!("the plugin called exit({})", exit.0),
        );
    }
    // A host function's own error (a trapped import's "not granted") comes wrapped in the wasm
    // backtrace, dozens of frames of the plugin's runtime: its root cause is the message.
    let base = match err.downcast_ref::<wasmtime::WasmBacktrace>() {
        Some(_) => err.root_cause().to_string(),
        None => error_chain(err),
    };
    if denied.is_some() {
        return memory(base);
    }
    (TrapKind::Other, base)
}
