//! heatbill's configuration: one typed struct, read from a TOML file and then overridden by
//! `HEATBILL_<SECTION>__<KEY>` environment variables.
//!
//! Every key is optional and every default is documented where it is defined. Unknown keys are
//! an error, in the file and in the environment alike: `HEATBILL_RUN__SHARDSIZE=5000` fails
//! loudly instead of leaving the default in force. Secrets (the database password) are redacted
//! in `Debug`, so settings can be logged.
//!
//! ```toml
//! [database]
//! url = "postgres://heatbill:secret@db.internal/heatbill"
//! max_connections = 8
//! [run]
//! shard_size = 10000
//! [engine.limits]
//! max_memory_bytes = 67108864
//! ```
//! is the same as `HEATBILL_DATABASE__URL=postgres://… HEATBILL_RUN__SHARD_SIZE=10000
//! HEATBILL_ENGINE__LIMITS__MAX_MEMORY_BYTES=67108864`.

use std::fmt;
use std::path::{Path, PathBuf};

use heatbill_engine::EngineConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the system of record is.
    pub database: DatabaseSettings,
    /// Redis: the cache, locks and progress of a deployment of many hosts (absent: all of them
    /// in the process, the embedded default).
    pub redis: RedisSettings,
    /// What is cached.
    pub cache: CacheSettings,
    /// How a daily run cuts, evaluates and writes.
    pub run: RunSettings,
    /// How files are imported.
    pub import: ImportSettings,
    /// The rules engine: limits per plugin call, instance pool, compile cache (see
    /// `heatbill_engine::EngineConfig`).
    pub engine: EngineConfig,
    /// The admin API (`heatbill serve`).
    pub api: ApiSettings,
    /// Events out: the MQTT broker the publisher delivers to (docs/events.md).
    pub events: EventSettings,
}

/// Events out (`heatbill serve` publishes them; see docs/events.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    /// The MQTT broker, `mqtt://HOST:PORT` (absent: events of companies whose target is `mqtt`
    /// wait in the outbox, pending, until one is configured).
    pub mqtt_url: Option<String>,
    /// The topics' first level: events go to `PREFIX/COMPANY/KIND`, valve reports come from
    /// `PREFIX/COMPANY/valve_state`. Default `heatbill`.
    pub topic_prefix: String,
    /// The MQTT client id of the publishing host (one host publishes at a time: the holder of
    /// the publisher's lock). Default `heatbill-events`.
    pub client_id: String,
    /// How often the publisher looks for due events, in milliseconds. Default 200.
    pub poll_ms: u64,
    /// Events published per connection and round (each acknowledged by the broker, QoS 1).
    /// Default 500.
    pub batch: usize,
    /// Whether `heatbill serve` runs the publisher (and the escalation of unacknowledged
    /// close requests). Default true.
    pub publisher: bool,
    /// Fault injection for the reliability tests: the publisher stops itself (SIGSTOP) once,
    /// after the broker acknowledged a round's events and before they are marked delivered.
    pub fault_stop_after_publish: bool,
    /// How long a webhook receiver has to answer one delivery, in milliseconds. Default 5000.
    pub webhook_timeout_ms: u64,
    /// When a failed webhook delivery is tried again: after the first attempt fails, wait the
    /// first of these (milliseconds), after the second the next, …; when the last retry fails
    /// too the delivery is `dead` (an operator replays it). Default 5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h: eight attempts over about 28 hours, the schedule webhook senders
    /// commonly use.
    pub webhook_retry_ms: Vec<u64>,
    /// Webhook deliveries in flight at once (different customers; one customer's events go one
    /// after another, in order). Default 16.
    pub webhook_concurrency: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            mqtt_url: None,
            topic_prefix: "heatbill".into(),
            client_id: "heatbill-events".into(),
            poll_ms: 200,
            batch: 500,
            publisher: true,
            fault_stop_after_publish: false,
            webhook_timeout_ms: 5_000,
            webhook_retry_ms: vec![
                5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
            ],
            webhook_concurrency: 16,
        }
    }
}

/// The admin API.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// The address to listen on. Default `127.0.0.1:8080` (put a TLS-terminating proxy in
    /// front to serve beyond the host).
    pub listen: String,
    /// The platform operator's token (manages companies and issues their tokens). Unset,
    /// `heatbill serve` makes one at start and prints it once. Never logged or serialized.
    #[serde(skip_serializing)]
    pub operator_token: Option<String>,
    /// Largest plugin upload, bytes. Default 32 MiB plus a margin, the component cap of the
    /// built-in `interpreted` profile (Python and JavaScript components): the engine's own
    /// caps decide what loads (`engine.limits.max_component_bytes`, 8 MiB, for a component
    /// without a grant).
    pub max_upload_bytes: usize,
    /// Largest import body, bytes (streamed: memory does not grow with it). Default 2 GiB.
    pub max_import_bytes: u64,
    /// Largest JSON or TOML body (companies, chains, case files, run requests), bytes.
    /// Default 1 MiB.
    pub max_body_bytes: usize,
    /// Hours an idempotency key answers with its run; an older key is refused. Default 24.
    pub idempotency_hours: u64,
    /// How long a console session lasts after its sign-in, minutes. Default 480 (a working
    /// day); revoking the token ends its sessions at once.
    pub console_session_minutes: u64,
    /// Whether this host takes part in the nightly scheduler (one host leads, by a lease).
    /// Default true.
    pub scheduler: bool,
    /// Days a scheduler catches up after downtime (the oldest missed nights beyond are left to
    /// an operator). Default 7.
    pub catch_up_days: u32,
    /// Whether a plugin needs at least one passing case file before a chain may use it.
    /// Default true.
    pub require_cases: bool,
    /// Seconds a shutdown waits for the runs in hand before handing their shards back.
    /// Default 30.
    pub shutdown_grace_s: u64,
    /// Requests that may use the rules engine at once (uploads, which compile; case files and
    /// chain activations, which run cases; dry runs). More wait up to `queue_wait_ms`, then get
    /// 503 with `Retry-After`. Default 4: bounded CPU and memory whatever integrators send.
    pub engine_slots: usize,
    /// Engine slots one company's requests may hold at once; its further requests queue for
    /// its own share (up to `queue_wait_ms`), so that one company's slow uploads never keep
    /// another company waiting for a slot. Default: none, which is half of `engine_slots`
    /// (at least 1; 2 of the default 4). At most `engine_slots`.
    pub engine_slots_per_company: Option<usize>,
    /// How long a request waits for an engine slot, or an upload for room among the upload
    /// bytes in flight, before it is answered 503 with `Retry-After`, in milliseconds.
    /// Default 30,000.
    pub queue_wait_ms: u64,
    /// Bytes of plugin uploads the server holds at once, bodies being read and waiting for an
    /// engine slot together. An upload reserves its `Content-Length` (the whole
    /// `max_upload_bytes` when it sends none) before its body is read; one that does not fit
    /// waits (up to `queue_wait_ms`) while the bytes stay in the client's socket, so that
    /// memory does not grow with the number of concurrent uploads. Default 134,479,872 (four
    /// uploads at the default `max_upload_bytes` cap). An upload larger than this is admitted
    /// alone.
    pub max_upload_bytes_in_flight: usize,
    /// Progress streams (server-sent events) open at once, all companies together; more get
    /// 503. Default 256.
    pub max_event_streams: usize,
    /// Progress streams one company's tokens may hold open at once; more get 503, so that one
    /// company cannot take every stream. Default 32.
    pub max_event_streams_per_company: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            operator_token: None,
            max_upload_bytes: 32 * 1024 * 1024 + 64 * 1024,
            max_import_bytes: 2 * 1024 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            idempotency_hours: 24,
            console_session_minutes: 480,
            scheduler: true,
            catch_up_days: 7,
            require_cases: true,
            shutdown_grace_s: 30,
            engine_slots: 4,
            engine_slots_per_company: None,
            queue_wait_ms: 30_000,
            max_upload_bytes_in_flight: 128 * 1024 * 1024 + 256 * 1024,
            max_event_streams: 256,
            max_event_streams_per_company: 32,
        }
    }
}

impl ApiSettings {
    /// Engine slots one company may hold: `engine_slots_per_company`, or half of
    /// `engine_slots`, at least 1 and at most `engine_slots`.
    pub fn company_engine_slots(&self) -> usize {
        let total = self.engine_slots.max(1);
        self.engine_slots_per_company
            .unwrap_or(total / 2)
            .clamp(1, total)
    }
}

impl fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSettings")
            .field("listen", &self.listen)
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "***"),
            )
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("max_import_bytes", &self.max_import_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("idempotency_hours", &self.idempotency_hours)
            .field("console_session_minutes", &self.console_session_minutes)
            .field("scheduler", &self.scheduler)
            .field("catch_up_days", &self.catch_up_days)
            .field("require_cases", &self.require_cases)
            .field("shutdown_grace_s", &self.shutdown_grace_s)
            .field("engine_slots", &self.engine_slots)
            .field("engine_slots_per_company", &self.engine_slots_per_company)
            .field("queue_wait_ms", &self.queue_wait_ms)
            .field(
                "max_upload_bytes_in_flight",
                &self.max_upload_bytes_in_flight,
            )
            .field("max_event_streams", &self.max_event_streams)
            .field(
                "max_event_streams_per_company",
                &self.max_event_streams_per_company,
            )
            .finish()
    }
}

/// The database.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (the embedded default: one file, created if missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (production). Default `sqlite://heatbill.db`,
    /// a file in the working directory.
    pub url: String,
    /// Connections in the pool. Default 8: a run uses `run.prefetch` loaders and `run.writers`
    /// writers at once, plus one for bookkeeping.
    pub max_connections: u32,
    /// Seconds to wait for a free connection (or for the server) before failing. Default 30.
    pub acquire_timeout_s: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://heatbill.db".into(),
            max_connections: 8,
            acquire_timeout_s: 30,
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_s", &self.acquire_timeout_s)
            .finish()
    }
}

/// A database URL with its password replaced by `***`, safe to print and log.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The authority ends at the first '/' after the scheme; credentials end at its last '@'.
    let end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.rfind('@') {
        Some(at) => {
            let creds = &authority[..at];
            let user = creds.split_once(':').map_or(creds, |(u, _)| u);
            let masked = if creds.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Redis. Redis holds nothing that cannot be rebuilt from the database: losing it (a restart,
/// a flush) slows the next runs down and never changes a bill.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]`. Default none: the cache, locks and progress
    /// counters live in the process (enough for one host). Also `HEATBILL_REDIS_URL`.
    pub url: Option<String>,
    /// The prefix of every key, so deployments (and tests) can share a server. Default
    /// `heatbill`.
    pub prefix: String,
    /// Milliseconds to wait for a connection. Default 2,000.
    pub connect_timeout_ms: u64,
    /// Milliseconds to wait for an answer; a slower Redis counts as absent for that call.
    /// Default 2,000.
    pub response_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            prefix: "heatbill".into(),
            connect_timeout_ms: 2000,
            response_timeout_ms: 2000,
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("prefix", &self.prefix)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .finish()
    }
}

/// The cache (Redis, or in the process).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Whether a run reads each shard's customer data through the cache (one packed value per
    /// shard and customer-data version) instead of from the database. Default false: measured
    /// here, reading the shard from PostgreSQL is as fast and the cache only adds memory (see
    /// BENCHMARKS.md); set it where the database is the bottleneck shared by many hosts.
    pub shards: bool,
    /// Seconds an entry lives. Default 172,800 (two days: a warm-up the evening before, the
    /// run at night, a re-run the next day).
    pub ttl_s: u64,
    /// The in-process cache's size in MiB. Default 512.
    pub memory_mb: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            shards: false,
            ttl_s: 172_800,
            memory_mb: 512,
        }
    }
}

/// A daily run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Customers per shard: the unit that is loaded, evaluated and written in one transaction,
    /// and (with several hosts) claimed by one worker. Memory grows with it, not with the
    /// company. Default 10,000.
    pub shard_size: usize,
    /// Evaluation threads, each with its own sandbox instances. Default: one per core.
    pub workers: Option<usize>,
    /// Shards loaded ahead of the one being evaluated. Default 2.
    pub prefetch: usize,
    /// Shards written at once, each on its own connection (SQLite: always 1, it has one
    /// writer). Default 2.
    pub writers: usize,
    /// Customer-days per plugin call (at most the engine's `limits.max_batch`). Default 1024.
    pub batch: usize,
    /// Customer-days of every plugin call that are billed a second time alone, from fresh
    /// instances, and compared: a bill that differs depends on the other customers of its batch
    /// (a plugin that keeps state), and its customer is parked (`invalid-output`, "purity")
    /// instead of billed. Chosen pseudo-randomly, the same on a re-run. Default 1; 0 turns the
    /// check off. Costs one fresh instantiation of the chain per call (BENCHMARKS.md).
    pub purity_sample: usize,
    /// Compare every customer's input digest even when nothing the run depends on changed
    /// since the date's last completed run (same data version, chain, previous day and heatbill
    /// version). Default false: such a re-run records itself and computes nothing. Set it after
    /// changing the database by other means than heatbill (`heatbill run --verify`).
    pub always_compare: bool,
    /// Seconds a shard claim lasts without renewal. Its holder renews it every third of that
    /// while it works; a holder that stops (dies, or is paused) loses the shard to another
    /// worker after it, and its late write is refused by the fencing token. Default 30.
    pub lease_s: u64,
    /// Milliseconds between looks for a claimable shard while the last ones are held by other
    /// workers. Default 250.
    pub claim_poll_ms: u64,
    /// Seconds a run keeps retrying a database call that failed for a reason that passes (a
    /// lost connection, a restarting server), with backoff, before it stops. Default 120.
    pub retry_s: u64,
    /// Seconds a run waits for the lock of its company and date while another host opens or
    /// finishes it. Default 30.
    pub lock_wait_s: u64,
    /// Seconds a process working on a run waits while it can claim nothing, no shard gets
    /// done, and some shard stays pending two leases past its lapsed lease (its writer stalled
    /// inside its transaction, and ending the writer's database session, which the process
    /// does after two leases, did not free it), before it stops with an error that names the
    /// shards. Starting the run again resumes it. Default 300.
    pub stall_s: u64,
    /// For fault tests only: the process stops itself (SIGSTOP) half-way through sending the
    /// bills of its N-th shard write to PostgreSQL, and goes on when it gets SIGCONT. 0, the
    /// default, never.
    pub fault_stop_in_copy: u64,
    /// For fault tests only: the process stops itself (SIGSTOP) right after its N-th shard
    /// write commits, and goes on when it gets SIGCONT. 0, the default, never.
    pub fault_stop_after_write: u64,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            shard_size: 10_000,
            workers: None,
            prefetch: 2,
            writers: 2,
            batch: 1024,
            purity_sample: 1,
            always_compare: false,
            lease_s: 30,
            claim_poll_ms: 250,
            retry_s: 120,
            lock_wait_s: 30,
            stall_s: 300,
            fault_stop_in_copy: 0,
            fault_stop_after_write: 0,
        }
    }
}

impl RunSettings {
    /// The number of evaluation threads: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// File imports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportSettings {
    /// Row errors listed in an import's report (all are counted). Default 1,000.
    pub max_row_errors: usize,
    /// Rows sent to the database at once. Default 10,000.
    pub chunk_rows: usize,
    /// The longest row accepted, in bytes: a longer one fails the file instead of growing
    /// memory without bound. A JSON record of the admin API's imports (a JSON Lines line, an
    /// array's element) is held to it too, before it is parsed. Default 65,536.
    pub max_row_bytes: usize,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            max_row_errors: 1000,
            chunk_rows: 10_000,
            max_row_bytes: 65_536,
        }
    }
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or an environment variable is not valid.
    #[error("invalid settings ({origin}): {message}")]
    Invalid {
        /// The file, or "environment".
        origin: String,
        /// What is wrong (names the key).
        message: String,
    },
}

/// The prefix of settings variables; `HEATBILL_<SECTION>__<KEY>` sets `[section] key`.
pub const ENV_PREFIX: &str = "HEATBILL_";

impl Settings {
    /// Reads `file` (if given) and then the `HEATBILL_*__*` variables of the process
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`load`](Self::load) with an explicit environment (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| SettingsError::Invalid {
                        origin: path.display().to_string(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let mut vars: Vec<(String, String)> = Vec::new();
        for (k, v) in env {
            // The two URLs also have the short names operators expect.
            match k.as_str() {
                "HEATBILL_DATABASE_URL" => vars.push(("HEATBILL_DATABASE__URL".into(), v)),
                "HEATBILL_REDIS_URL" => vars.push(("HEATBILL_REDIS__URL".into(), v)),
                _ if k.starts_with(ENV_PREFIX) && k.contains("__") => vars.push((k, v)),
                _ => {}
            }
        }
        vars.sort();
        for (key, value) in &vars {
            let path: Vec<String> = key[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            set_path(&mut table, &path, env_value(value)).map_err(|message| {
                SettingsError::Invalid {
                    origin: format!("environment variable {key}"),
                    message,
                }
            })?;
        }
        let origin = match file {
            Some(p) => format!("{} and HEATBILL_* variables", p.display()),
            None => "HEATBILL_* variables".into(),
        };
        toml::Value::Table(table)
            .try_into::<Settings>()
            .map_err(|e| SettingsError::Invalid {
                origin,
                message: e.to_string(),
            })
    }
}

/// An environment value as TOML: integers, booleans and decimals keep their type; anything
/// else is a string.
fn env_value(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match v {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    toml::Value::String(v.to_string())
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut t = table;
    for p in parents {
        if p.is_empty() {
            return Err("an empty section name (two __ in a row)".into());
        }
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is a value, not a section"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://heatbill:s3cret@db:5432/hb"),
            "postgres://heatbill:***@db:5432/hb"
        );
        assert_eq!(
            redact_url("postgres://heatbill@db/hb"),
            "postgres://heatbill@db/hb"
        );
        assert_eq!(redact_url("sqlite://heatbill.db"), "sqlite://heatbill.db");
        assert_eq!(
            redact_url("postgres://u:p@ss@db/x"),
            "postgres://u:***@db/x"
        );
        let s = Settings {
            database: DatabaseSettings {
                url: "postgres://u:topsecret@h/d".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn environment_overrides_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h.toml");
        std::fs::write(&f, "[run]\nshard_size = 500\nwriters = 3\n").unwrap();
        let env = [
            ("HEATBILL_RUN__SHARD_SIZE".to_string(), "700".to_string()),
            (
                "HEATBILL_ENGINE__LIMITS__MAX_BATCH".to_string(),
                "64".to_string(),
            ),
            ("HEATBILL_SDK".to_string(), "/ignored".to_string()),
        ];
        let s = Settings::load_from(Some(&f), env).unwrap();
        assert_eq!(s.run.shard_size, 700);
        assert_eq!(s.run.writers, 3);
        assert_eq!(s.engine.limits.max_batch, 64);
        let bad = [("HEATBILL_RUN__SHARDSIZE".to_string(), "1".to_string())];
        let e = Settings::load_from(None, bad).unwrap_err().to_string();
        assert!(e.contains("shardsize"), "{e}");
        assert!(e.contains("HEATBILL_*"), "{e}");
    }
}
