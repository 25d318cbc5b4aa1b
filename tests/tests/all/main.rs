//! heatbill's integration tests: one test binary (one link of wasmtime), one module per area.
//!
//! They run the real engine on real components built from `plugins/` (`./dev plugins` builds
//! them; `./dev test` does that first). A missing component fails the test with the command
//! that builds it: nothing is skipped.

mod engine;
mod hostile;
mod support;
