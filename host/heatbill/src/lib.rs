//! The `heatbill` binary's library: the command line, the plugin test harness and the demo.
//!
//! The harness is a library so the integration tests drive exactly the code the binary runs.

pub mod cases;
pub mod cli;
pub mod demo;
pub mod harness;
pub mod runner;
pub mod scaffold;
