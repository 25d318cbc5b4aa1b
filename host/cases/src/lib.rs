//! Case files (`docs/case-format.md`): a rule chain with its parameters, and the customer-days
//! to run through it with what they must produce.
//!
//! - [`file`]: the model, read and checked ([`CaseFile::load`], [`CaseFile::parse`]), and the
//!   dates a case covers ([`Case::dates`]). Every bound (the file's size, the customer-days its
//!   cases bill and the memory they take) is checked before anything is allocated for it, so a
//!   hostile file costs a refusal, not the host's memory ([`MAX_FILE_BYTES`],
//!   [`MAX_CUSTOMER_DAYS`], [`MAX_INPUT_BYTES`]).
//! - [`compare`]: what came out for a customer-day in neutral terms ([`Bill`], [`BillError`])
//!   and its comparison with what a case expects ([`compare()`]).
//!
//! The crate knows neither the engine nor the SDK: the host's harness (`heatbill plugin test`,
//! the benchmark, the admin API's case runner) runs case files through the sandbox, and the
//! guest workspace's `cases-check` runs the same files natively through the SDK; each converts
//! its own results to [`DayResult`]s and both compare with the same code. Parameters stay TOML
//! values ([`ChainEntrySpec::params_on`]): each side converts them to the JSON its `configure`
//! takes.

pub mod compare;
pub mod file;

/// The date type of the model (chrono's), for users that do not depend on chrono themselves.
pub use chrono::NaiveDate;
pub use compare::{
    Bill, BillError, CaseOutcome, DayResult, Line, Payer, PayerTotals, brief, compare, summary,
};
pub use file::{
    Case, CaseFile, ChainEntrySpec, CustomerSpec, DateRange, Expect, ExpectLine, ExpectTotals,
    HeatUnit, MAX_CHAIN_ENTRIES, MAX_CUSTOMER_DAYS, MAX_FILE_BYTES, MAX_INPUT_BYTES,
    MAX_PARAMS_VERSIONS, ParamsVersion, Refused, SeasonSpec,
};

#[cfg(test)]
mod tests;
