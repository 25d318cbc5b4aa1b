//! Shared helpers: where the built plugin components are.

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `./dev plugins` leaves the built components.
pub fn plugins_dir() -> PathBuf {
    repo_root().join("plugins/target/wasm32-wasip2/release")
}

/// The path of a built component, by crate name (`area-tariff` or `area_tariff`).
pub fn component_path(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let path = plugins_dir().join(file);
    assert!(
        path.exists(),
        "component {} is missing: build the plugins first with `./dev plugins` \
         (or run the whole suite with `./dev test`)",
        path.display()
    );
    path
}

/// The bytes of a built component, by crate name.
pub fn component(name: &str) -> Vec<u8> {
    std::fs::read(component_path(name)).expect("read component")
}

/// The bytes of a component built by a plugin kit (`python` or `js`), by plugin name: `./dev
/// plugins` builds them into `plugins/<kit>/target/<name>.wasm`.
pub fn kit_component(kit: &str, name: &str) -> Vec<u8> {
    let path = repo_root().join(format!("plugins/{kit}/target/{name}.wasm"));
    assert!(
        path.exists(),
        "component {} is missing: build the plugins first with `./dev plugins` \
         (or run the whole suite with `./dev test`)",
        path.display()
    );
    std::fs::read(path).expect("read component")
}

/// Databases for the runtime's tests: a fresh one per test, on the real servers.
pub mod db {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, OnceLock};

    use heatbill_engine::Engine;
    use heatbill_runtime::company::Components;
    use heatbill_runtime::store::{self, prelude::*};

    /// Where the tests' PostgreSQL server is: `HEATBILL_TEST_POSTGRES` (a URL of a database the
    /// user may create databases from), default the local server's `postgres` database.
    pub fn admin_url() -> String {
        std::env::var("HEATBILL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// The URL of database `name` on the tests' server.
    pub fn url_of(name: &str) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    /// Which backend a test runs on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Sqlite,
        Postgres,
    }

    /// A fresh, migrated database, removed when dropped.
    pub struct TestDb {
        pub store: Arc<dyn Store>,
        pub url: String,
        pub kind: Kind,
        pg_name: Option<String>,
        _dir: Option<tempfile::TempDir>,
    }

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    impl TestDb {
        /// The store with in-process coordination and cache.
        pub fn services(&self) -> heatbill_runtime::services::Services {
            heatbill_runtime::services::Services::embedded(
                self.store.clone(),
                &heatbill_runtime::settings::CacheSettings::default(),
            )
        }

        pub async fn new(kind: Kind) -> TestDb {
            match kind {
                Kind::Sqlite => Self::sqlite().await,
                Kind::Postgres => Self::postgres().await,
            }
        }

        /// A SQLite file in a temporary directory.
        pub async fn sqlite() -> TestDb {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("heatbill.db").display());
            let store = store::open(&url, 8, 30).await.expect("open SQLite");
            store.migrate().await.expect("migrate SQLite");
            TestDb {
                store,
                url,
                kind: Kind::Sqlite,
                pg_name: None,
                _dir: Some(dir),
            }
        }

        /// A new database on the PostgreSQL server. A server that cannot be reached fails the
        /// test with how to start it: nothing is skipped.
        pub async fn postgres() -> TestDb {
            let name = format!(
                "heatbill_test_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let admin = admin_url();
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin} ({e}): start it (on this machine: \
                         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) \
                         or point HEATBILL_TEST_POSTGRES at a server"
                    )
                });
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let url = url_of(&name);
            let store = store::open(&url, 8, 30).await.expect("open PostgreSQL");
            store.migrate().await.expect("migrate PostgreSQL");
            TestDb {
                store,
                url,
                kind: Kind::Postgres,
                pg_name: Some(name),
                _dir: None,
            }
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some(name) = self.pg_name.take() {
                // Dropping runs outside any async runtime: a thread of its own with one.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        if let Ok(mut c) =
                            <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url()).await
                        {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&mut c)
                            .await;
                        }
                    })
                })
                .join();
            }
        }
    }

    /// One engine for the whole test binary (components compile once), with a small pool.
    pub fn engine() -> &'static Engine {
        static ENGINE: OnceLock<Engine> = OnceLock::new();
        ENGINE.get_or_init(|| Engine::new(crate::engine::test_config()).expect("engine"))
    }

    /// Every built component of `plugins/`, loaded once.
    pub fn components() -> &'static Components {
        static C: OnceLock<Components> = OnceLock::new();
        C.get_or_init(|| {
            super::component_path("area-tariff");
            let mut files: Vec<_> = std::fs::read_dir(super::plugins_dir())
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                .collect();
            files.sort();
            Components::load(engine(), &files).expect("components")
        })
    }
}

/// This process's memory, from `/proc/self/status`, for tests that bound what a request costs.
/// Measure in a process of its own ([`in_own_process`]): the other tests of this binary run on
/// threads of the same process.
pub mod memory {
    fn field(name: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"));
        kib * 1024
    }

    /// The resident set now, in bytes (`VmRSS`).
    pub fn resident() -> u64 {
        field("VmRSS:")
    }

    /// The peak resident set since the last [`reset_peak`], in bytes (`VmHWM`).
    pub fn peak() -> u64 {
        field("VmHWM:")
    }

    /// Resets the peak resident set to the current one (`echo 5 > /proc/self/clear_refs`).
    pub fn reset_peak() {
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    }

    /// Mebibytes, for messages.
    pub fn mib(bytes: u64) -> u64 {
        bytes >> 20
    }
}

/// Runs the test `name` (its path in this binary, e.g. `import::a_test`) alone in a process of
/// its own, and returns `true` in the calling process once it passed there; in that process,
/// returns `false`, and the test's body runs. For tests that measure the process's memory: the
/// other tests of this binary run on threads of the same process, so only a process of one test
/// measures that test. The wait is bounded (10 minutes); the child's output is shown on failure.
pub fn in_own_process(name: &str) -> bool {
    const ALONE: &str = "HEATBILL_TEST_ALONE";
    if std::env::var(ALONE).as_deref() == Ok(name) {
        return false;
    }
    let log = tempfile::NamedTempFile::new().expect("a log file");
    // One open file for both streams, so that they share its offset.
    let out = log.reopen().expect("the log");
    let err = out.try_clone().expect("the log");
    let mut child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(ALONE, name)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("run the test in a process of its own");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the test's process") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        None => panic!("{name} did not finish in 10 minutes in its own process:\n{output}"),
        Some(s) if !s.success() => panic!("{name} failed in its own process ({s}):\n{output}"),
        Some(_) => assert!(
            output.contains(&format!("test {name} ... "))
                && output.contains("test result: ok. 1 passed"),
            "{name} did not run in its own process (is the name its full path?):\n{output}"
        ),
    }
    true
}
