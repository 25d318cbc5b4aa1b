//! The `heatbill` binary's library: the command line, the runtime's commands and the plugin
//! test harness.
//!
//! The harness is a library so the integration tests drive exactly the code the binary runs.

pub mod api;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod harness;
pub mod kits;
pub mod runner;
pub mod scaffold;
