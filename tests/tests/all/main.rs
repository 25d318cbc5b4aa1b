//! heatbill's integration tests: one test binary (one link of wasmtime), one module per area.
//!
//! They run the real engine on real components built from `plugins/` (`./dev plugins` builds
//! them; `./dev test` does that first), and the runtime on real databases: a fresh SQLite file
//! and a fresh PostgreSQL database per test (`HEATBILL_TEST_POSTGRES`, default the local
//! server). A missing component or an unreachable server fails the test with the command that
//! fixes it: nothing is skipped.

/// Runs an async test body once on SQLite and once on PostgreSQL: `both!(name)` for an
/// `async fn name(db: TestDb)`; the tests are `name::sqlite` and `name::postgres`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::db::TestDb::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::db::TestDb::postgres().await).await
            }
        }
    };
}

mod api;
mod coord;
mod directory;
mod engine;
mod hostile;
mod import;
mod layout;
mod ledger;
mod notices;
mod profiles;
mod runtime;
mod sandbox;
mod store;
mod subsidy;
mod support;
