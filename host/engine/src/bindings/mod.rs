//! The generated bindings of the `heatbill:rules@0.1.0` world (`wit/rules.wit`).
//!
//! Synchronous (the engine runs on a CPU pool, never inside an async task) and *borrowing*: the
//! customer-days the host passes to `evaluate` borrow their strings and lists from the caller's
//! [`DayInput`](crate::DayInput)s and from one flat buffer of prior lines per batch, so lowering a
//! batch allocates nothing on the host per customer.

// Generated code: it uses `unsafe` internally (typed function handles) and leaves some host
// helpers unused; neither is ours to change.
#![allow(missing_docs, unsafe_code, unused, clippy::all)]

wasmtime::component::bindgen!({
    world: "rules-plugin",
    path: "../../wit",
    ownership: Borrowing { duplicate_if_necessary: true },
});

pub(crate) use heatbill::rules::types as wit;
