//! Nothing here: the case checks are in `tests/cases.rs`.
