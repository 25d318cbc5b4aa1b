//! The `heatbill` binary's library: the command line and its commands, thin over the crates
//! that do the work (the runtime, the admin API, the plugin developer kit).
//!
//! A library so the integration tests drive exactly the code the binary runs.

pub mod cli;
pub mod commands;
