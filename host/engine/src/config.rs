//! The engine's configuration: limits as data.
//!
//! Every limit the sandbox enforces is a field here, with its default documented where it is
//! defined. The structs are `deny_unknown_fields`: a misspelt limit in a settings file is an error,
//! never a silently ignored line that leaves the default in force. Every field has a default, so a
//! settings file names only what it changes.
//!
//! The defaults are sized for the nightly run: a batch of up to 1,024 customer-days per call, a
//! 4-plugin chain per company, one evaluator per core. They are generous for an honest plugin (the
//! reference plugins use a few hundred KiB of memory and a few microseconds per customer-day) and
//! tight enough that a hostile one costs a worker a fraction of a second, not the night.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole engine configuration: limits, pool sizes, the epoch tick and the on-disk cache.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// What one plugin may do. See [`Limits`].
    pub limits: Limits,
    /// How many instances the pooling allocator keeps room for. See [`PoolConfig`].
    pub pool: PoolConfig,
    /// Where precompiled components are kept between processes, keyed by digest and engine
    /// configuration. Default: none (compile in memory on every start).
    ///
    /// Every artifact is authenticated before it is loaded (an HMAC-SHA256 over the component's
    /// digest, the engine's compatibility hash and the artifact, with
    /// [`cache_key`](Self::cache_key)): an artifact swapped, changed or truncated is refused and
    /// compiled again, never run. The directory must belong to this user and be writable by it
    /// alone (the engine refuses it otherwise), and artifacts are read into memory, not mapped,
    /// so a file changed under a running process cannot crash it.
    pub cache_dir: Option<PathBuf>,
    /// The key that authenticates the cache's artifacts: 64 hex digits (32 bytes). Hosts that
    /// share a cache directory share this key (a secret: it is redacted in `Debug`). Default:
    /// none, and then a key of this user's own, kept in the file `<cache_dir>.key` (created
    /// with mode 0600 on first use; refused if others can read it).
    pub cache_key: Option<String>,
    /// The most compiled components the engine keeps in memory. Default: 256. Past it (or past
    /// [`memory_cache_bytes`](Self::memory_cache_bytes)) the least recently used is dropped
    /// from the cache; a plugin loaded from it keeps working, and the next load of the same
    /// bytes comes from the disk cache or compiles again. Only components that loaded are
    /// kept: an upload refused after compiling (its world, imports or `describe`) leaves
    /// nothing in memory or on disk.
    pub memory_cache_entries: usize,
    /// The most bytes of compiled code the memory cache keeps, all components together.
    /// Default: 536,870,912 (512 MiB). A Rust plugin's compiled code is about 1 MB, a Python or
    /// JavaScript one's about 36 MB; a component larger than this alone is not kept.
    pub memory_cache_bytes: u64,
    /// The most precompiled artifacts kept in [`cache_dir`](Self::cache_dir). Default: 1,024.
    /// Past it (or past [`disk_cache_bytes`](Self::disk_cache_bytes)) the least recently used
    /// artifacts are deleted after each write (a disk hit counts as a use); the directory's
    /// other files are left alone. Hosts sharing a directory share its caps.
    pub disk_cache_entries: usize,
    /// The most bytes of precompiled artifacts kept in [`cache_dir`](Self::cache_dir).
    /// Default: 2,147,483,648 (2 GiB). An artifact larger than this alone is not written.
    pub disk_cache_bytes: u64,
    /// How components are compiled: in a child process, within time and memory. See
    /// [`CompileConfig`].
    pub compile: CompileConfig,
    /// Named sets of larger limits that an operator grants to particular components (see
    /// [`Profile`]). Default: one profile, `interpreted`, sized for components built from
    /// Python and JavaScript ([`Profile::interpreted`]). A settings file's `[profiles]` table
    /// replaces the built-in one (name `interpreted` there to keep it); a profile names only the
    /// figures it changes, the rest are the standard ones. The name `standard` is reserved for
    /// [`limits`](Self::limits) and [`pool`](Self::pool).
    pub profiles: BTreeMap<String, Profile>,
    /// Which components may use which profile: the component's SHA-256 digest (64 hex digits,
    /// as `heatbill plugin check` prints it) to the profile's name. Default: none, so every
    /// component runs under the standard limits. A grant is keyed by digest, not by plugin
    /// name, because the size and compile limits apply before the component has said what it
    /// is: a grant covers exactly the bytes an operator reviewed, and a new build needs a new
    /// grant. Digests are read in lower case, as `heatbill plugin check` prints them and as
    /// components are looked up (`"ABCD…"` grants the same component as `"abcd…"`; the two
    /// spellings granting different profiles is an error).
    #[serde(deserialize_with = "lowercase_grants")]
    pub grants: BTreeMap<String, String>,
    /// How often the engine's ticker thread advances the epoch that deadlines are counted in,
    /// in microseconds. Default: 1,000 (1 ms). A deadline is exact to within one tick; a shorter
    /// tick costs a wake-up more often and nothing on the hot path.
    pub epoch_tick_us: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            pool: PoolConfig::default(),
            cache_dir: None,
            cache_key: None,
            memory_cache_entries: 256,
            memory_cache_bytes: 512 << 20,
            disk_cache_entries: 1_024,
            disk_cache_bytes: 2 << 30,
            compile: CompileConfig::default(),
            profiles: BTreeMap::from([(INTERPRETED.to_string(), Profile::interpreted())]),
            grants: BTreeMap::new(),
            epoch_tick_us: 1_000,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("limits", &self.limits)
            .field("pool", &self.pool)
            .field("cache_dir", &self.cache_dir)
            .field("cache_key", &self.cache_key.as_ref().map(|_| "***"))
            .field("memory_cache_entries", &self.memory_cache_entries)
            .field("memory_cache_bytes", &self.memory_cache_bytes)
            .field("disk_cache_entries", &self.disk_cache_entries)
            .field("disk_cache_bytes", &self.disk_cache_bytes)
            .field("compile", &self.compile)
            .field("profiles", &self.profiles)
            .field("grants", &self.grants)
            .field("epoch_tick_us", &self.epoch_tick_us)
            .finish()
    }
}

impl EngineConfig {
    /// The epoch tick as a duration (at least 1 µs).
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_micros(self.epoch_tick_us.max(1))
    }

    /// The profile granted to the component with this digest (hex, either case), or
    /// [`STANDARD`]. A configuration read from settings has its digests in lower case already;
    /// one built in code may not, so a miss looks again without regard to case.
    pub fn granted_profile(&self, digest: &str) -> &str {
        self.grants
            .get(digest)
            .or_else(|| {
                self.grants
                    .iter()
                    .find(|(d, _)| d.eq_ignore_ascii_case(digest))
                    .map(|(_, p)| p)
            })
            .map(String::as_str)
            .unwrap_or(STANDARD)
    }

    /// The names of every profile, [`STANDARD`] first, then by the component size they allow
    /// (smallest first): the order in which `heatbill plugin check` looks for the profile a
    /// component needs.
    pub fn profile_names(&self) -> Vec<String> {
        let mut named: Vec<(&String, &Profile)> = self.profiles.iter().collect();
        named.sort_by_key(|(n, p)| (p.max_component_bytes, p.max_memory_bytes, n.as_str()));
        std::iter::once(STANDARD.to_string())
            .chain(named.into_iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// The configuration a component granted `profile` is loaded and run under: this one with
    /// the profile's limits in place of the standard ones. `None` for an unknown profile.
    pub fn effective(&self, profile: &str) -> Option<EngineConfig> {
        if profile == STANDARD {
            return Some(self.clone());
        }
        let p = self.profiles.get(profile)?;
        let mut c = self.clone();
        c.limits.max_component_bytes = p.max_component_bytes;
        c.limits.max_memory_bytes = p.max_memory_bytes;
        c.limits.max_functions = p.max_functions;
        c.limits.deadline_base_ms = p.deadline_base_ms;
        c.limits.max_configure_ms = p.max_configure_ms;
        c.pool.max_core_instances_per_component = p.max_core_instances;
        c.pool.max_memories_per_component = p.max_memories;
        c.pool.max_tables_per_component = p.max_tables;
        c.compile.timeout_ms = p.compile_timeout_ms;
        c.compile.max_memory_bytes = p.compile_max_memory_bytes;
        Some(c)
    }

    /// The pool's per-component sizes: the largest any profile allows, so that one pool serves
    /// every profile. Each component is held to its own profile's figures when it is loaded
    /// ([`check_structure`](crate::check_structure)) and by its store's limiter when it runs.
    pub(crate) fn pool_for_all_profiles(&self) -> (PoolConfig, usize) {
        let mut pool = self.pool.clone();
        let mut memory = self.limits.max_memory_bytes;
        for p in self.profiles.values() {
            pool.max_core_instances_per_component = pool
                .max_core_instances_per_component
                .max(p.max_core_instances);
            pool.max_memories_per_component = pool.max_memories_per_component.max(p.max_memories);
            pool.max_tables_per_component = pool.max_tables_per_component.max(p.max_tables);
            memory = memory.max(p.max_memory_bytes);
        }
        (pool, memory)
    }

    /// Whether a component granted `profile` may import `interface` (a name without its
    /// version, e.g. `wasi:sockets/tcp`) linked to functions that trap.
    pub fn traps_import(&self, profile: &str, interface: &str) -> bool {
        self.profiles.get(profile).is_some_and(|p| {
            p.trapped_imports.iter().any(|t| match t.strip_suffix('*') {
                Some(prefix) => interface.starts_with(prefix),
                None => interface == t,
            })
        })
    }
}

/// Reads `[grants]` with every digest in lower case; two spellings of one digest may not grant
/// different profiles.
fn lowercase_grants<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(d)?;
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (digest, profile) in raw {
        let lower = digest.to_ascii_lowercase();
        if let Some(other) = out.get(&lower)
            && *other != profile
        {
            return Err(serde::de::Error::custom(format!(
                "grants: {} is granted both `{}` and `{}` (digests are the same in either \
                 case); keep one",
                crate::text::safe(&lower),
                crate::text::safe(other),
                crate::text::safe(&profile)
            )));
        }
        out.insert(lower, profile);
    }
    Ok(out)
}

/// The name of the standard profile: [`EngineConfig::limits`] and [`EngineConfig::pool`] as
/// they are, for every component without a grant.
pub const STANDARD: &str = "standard";

/// The name of the built-in profile for components built from Python or JavaScript.
pub const INTERPRETED: &str = "interpreted";

/// Larger limits for the components an operator grants them to ([`EngineConfig::grants`]).
///
/// A component built from Python (componentize-py) or JavaScript (ComponentizeJS) carries its
/// interpreter: 12–19 MB instead of a Rust plugin's 0.2–0.5 MB, up to 40 core instances, 9–13
/// MiB of initial memory, seconds to compile. Raising the standard limits to fit them would
/// raise them for every upload; a profile raises them for the components granted it, and
/// nothing else. The limits a profile does not name (deadlines per customer-day, output, log,
/// the shape limits other than the function count) stay the standard ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// The largest component accepted, in bytes ([`Limits::max_component_bytes`]).
    pub max_component_bytes: usize,
    /// The most linear memory one instance may grow to ([`Limits::max_memory_bytes`]).
    pub max_memory_bytes: usize,
    /// The most functions, all core modules together ([`Limits::max_functions`]).
    pub max_functions: u64,
    /// The fixed part of every call's deadline ([`Limits::deadline_base_ms`]).
    pub deadline_base_ms: u64,
    /// The longest `configure` may take in CPU time ([`Limits::max_configure_ms`]).
    pub max_configure_ms: u64,
    /// The most core instances one component may contain
    /// ([`PoolConfig::max_core_instances_per_component`]).
    pub max_core_instances: u32,
    /// The most memories one component may contain
    /// ([`PoolConfig::max_memories_per_component`]).
    pub max_memories: u32,
    /// The most tables one component may contain ([`PoolConfig::max_tables_per_component`]).
    pub max_tables: u32,
    /// The longest a compilation may take ([`CompileConfig::timeout_ms`]).
    pub compile_timeout_ms: u64,
    /// The most memory the compiling process may use ([`CompileConfig::max_memory_bytes`]).
    pub compile_max_memory_bytes: u64,
    /// Interfaces the component may import that are linked to functions that trap when
    /// called (`wasi:sockets/*`: every name with that prefix). Nothing is granted by it: the
    /// interface exists so that the component links, and any call fails the customer-day
    /// with a trap that names the function. CPython's standard library, as componentize-py
    /// links it, imports `wasi:sockets` whether a plugin uses a socket or not.
    pub trapped_imports: Vec<String>,
}

impl Profile {
    /// The built-in `interpreted` profile: 32 MiB components, 256 MiB of memory, a 500 ms
    /// base deadline and 100 ms for `configure`, two minutes to compile in 2 GiB, `wasi:sockets`
    /// linked to traps; the shape limits stay the standard ones, which the interpreters fit.
    /// Measured here (`heatbill plugin check` prints the shape): a componentize-py 0.25.1
    /// component is about 19 MB with 14 core instances and 13,400 functions, a ComponentizeJS
    /// 0.23 one about 12.4 MB with 4 core instances and 12,700 functions (a Rust plugin: 0.2–0.5
    /// MB, 3 core instances, a few hundred functions); BENCHMARKS.md, "Python and JavaScript
    /// plugins: the kits side by side".
    pub fn interpreted() -> Profile {
        Profile {
            max_component_bytes: 32 << 20,
            max_memory_bytes: 256 << 20,
            deadline_base_ms: 500,
            max_configure_ms: 100,
            compile_timeout_ms: 120_000,
            compile_max_memory_bytes: 2 << 30,
            trapped_imports: vec!["wasi:sockets/*".to_string()],
            ..Profile::default()
        }
    }
}

impl Default for Profile {
    /// The standard limits' figures, so that a settings file's profile names only what it
    /// raises.
    fn default() -> Self {
        let l = Limits::default();
        let p = PoolConfig::default();
        let c = CompileConfig::default();
        Profile {
            max_component_bytes: l.max_component_bytes,
            max_memory_bytes: l.max_memory_bytes,
            max_functions: l.max_functions,
            deadline_base_ms: l.deadline_base_ms,
            max_configure_ms: l.max_configure_ms,
            max_core_instances: p.max_core_instances_per_component,
            max_memories: p.max_memories_per_component,
            max_tables: p.max_tables_per_component,
            compile_timeout_ms: c.timeout_ms,
            compile_max_memory_bytes: c.max_memory_bytes,
            trapped_imports: Vec::new(),
        }
    }
}

/// What one plugin may do: sizes, memory, time, output.
///
/// These are the limits of the sandbox, the same for every plugin of the process. Each is
/// enforced (a violation is a [`LoadError`](crate::LoadError), a [`ChainError`](crate::ChainError)
/// or a [`BillError`](crate::BillError) naming the plugin) and each has a hostile test plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest component accepted, in bytes. Default: 8 MiB (8,388,608). The reference
    /// plugins are 300–500 KiB; a component is checked against this before it is parsed.
    pub max_component_bytes: usize,
    /// The most linear memory one plugin instance may grow to, in bytes. Default: 64 MiB
    /// (67,108,864). A `memory.grow` past it fails inside the plugin (whose allocator then
    /// aborts) and the customer-days of that call fail with a `memory-limit` trap.
    pub max_memory_bytes: usize,
    /// The most elements a table of one instance may grow to. Default: 20,000 (wasmtime's own
    /// pool default; a Rust plugin needs a few hundred).
    pub max_table_elements: usize,
    /// The fixed part of the deadline of one call into a plugin, in milliseconds of the CPU
    /// time of the thread that runs it (waiting for a core does not count, so the outcome does
    /// not depend on the machine's load; a wall-clock ceiling of 20 times the deadline remains
    /// against a stuck host). Default: 100. Covers the call's entry, `describe` and
    /// `configure`.
    pub deadline_base_ms: u64,
    /// The part of an `evaluate` deadline added per customer-day of the batch, in microseconds.
    /// Default: 200 (a batch of 1,024 gets 100 ms + 205 ms). An honest plugin needs well under
    /// 1 µs per customer-day, so the allowance is slack of more than 100×.
    pub deadline_per_day_us: u64,
    /// The most lines one customer-day's bill may have, all plugins of the chain together.
    /// Default: 64.
    pub max_lines_per_day: usize,
    /// The most kinds of line one configured plugin may announce. Default: 64.
    pub max_line_specs: usize,
    /// The longest message of a rule error, in bytes. Default: 1,000 (the contract's own limit,
    /// `rule-error` in `wit/rules.wit`).
    pub max_message_bytes: usize,
    /// The longest text `describe` may return in one field (the plugin's description, a
    /// parameter's description), in bytes. Default: 4,096. Names and versions are held to
    /// [`max_name_bytes`](Self::max_name_bytes).
    pub max_describe_bytes: usize,
    /// The longest plugin name, plugin version or parameter name, in bytes. Default: 64.
    pub max_name_bytes: usize,
    /// The most parameters (top-level properties of its parameter schema) a plugin may declare.
    /// Default: 64.
    pub max_params: usize,
    /// The largest parameter schema a plugin's `describe()` may return, in bytes of JSON.
    /// Default: 65,536 (the reference plugins' are 1–9 KiB).
    pub max_params_schema_bytes: usize,
    /// The most nodes (JSON values) a parameter schema may have once its `$ref`s are expanded.
    /// Default: 20,000 (the reference plugins' have a few hundred). This bounds what validating
    /// a parameter object costs: a few kilobytes of references to references can stand for
    /// billions of nodes, and such a schema is refused in microseconds, without expanding it.
    pub max_params_schema_nodes: usize,
    /// The longest parameter object (as JSON) a chain entry may pass, in bytes. Default: 65,536.
    /// Checked before the object is validated against the plugin's schema.
    pub max_params_bytes: usize,
    /// The most memory the `pattern`s of a parameter schema may compile to, all of them
    /// together, each counted once for every place it applies with the schema's `$ref`s
    /// expanded, in bytes (as the regex engine measures a compiled pattern: its automata and
    /// prefilters). Default: 131,072 (128 KiB; `^[0-9]{4}-[0-9]{2}-[0-9]{2}$` takes about
    /// 1.9 KiB, an alternation of four words 15 KiB). Patterns run on a linear-time engine, but
    /// a pattern whose automaton explodes falls back to a search whose time is its compiled
    /// size times the text's length: `(?:a|b)*a(?:a|b){5000}c` (236 KiB) took 11.7 s against
    /// a 100 KB parameter and froze the admin API. A schema over this limit is refused when
    /// the plugin loads, naming it. With it, [`max_params_bytes`](Self::max_params_bytes)
    /// and [`max_params_string_bytes`](Self::max_params_string_bytes), validating one
    /// parameter object is bounded by (this × the parameters' bytes).
    pub max_params_pattern_bytes: usize,
    /// The longest string (a value or a key, at any depth) a parameter object may hold, in
    /// bytes. Default: 4,096 (parameters are prices, dates, codes and names). Checked before
    /// the object is validated against the plugin's schema, whose patterns take time in
    /// proportion to the strings they check.
    pub max_params_string_bytes: usize,
    /// The most customer-days the engine passes to one `evaluate` call; a longer batch is cut
    /// into calls of this size. Default: 1,024.
    pub max_batch: usize,
    /// How many bytes of a plugin's stdout and stderr one instance keeps until the caller takes
    /// them. Default: 65,536. Past it, output is dropped and the log ends with a marker that
    /// says how much was dropped.
    pub max_log_bytes: usize,
    /// The most functions a component may define, all its core modules together. Default:
    /// 50,000. Compiling costs per function: a million empty functions (7 MB) took 43 s and
    /// 5.5 GB to compile; a Rust plugin has a few hundred to a few thousand.
    pub max_functions: u64,
    /// The largest body of one function, in bytes. Default: 1,048,576 (1 MiB); a Rust plugin's
    /// largest is a few KiB.
    pub max_function_bytes: u64,
    /// The most locals one function may declare. Default: 10,000.
    pub max_locals: u64,
    /// The deepest nesting of blocks (`block`, `loop`, `if`, `try`) in one function. Default:
    /// 4,096: a `match` lowered to `br_table` nests a block per arm, so honest code can be deep.
    pub max_nesting_depth: u64,
    /// The deepest nesting of `loop`s in one function. Default: 32. Compiling a loop costs more
    /// the deeper it is nested: the security review's bomb of nested loops took 30 s and 303 MB
    /// to compile at 83 KB; honest code nests loops a few deep.
    pub max_loop_depth: u64,
    /// The most `loop`s a component may contain, all functions together. Default: 100,000
    /// (each costs about 10 µs to compile; a Rust plugin has a few hundred).
    pub max_loops: u64,
    /// The most locals × blocks one function may have: its locals (parameters included)
    /// times its blocks (`block`, `loop`, `if`, `else`, `br_if`, `br_table`, `try`). Default:
    /// 4,000,000. Building a function's SSA form looks its locals up across its blocks, so the
    /// compiler's time and memory grow with this product, not with the bytes: 4,000 blocks in
    /// a row and 10,000 locals read after them (72 KB) ran the compiler out of 1 GiB after
    /// 20 s, and from about 14 million its address space outgrows the compiler's 1 GiB; at this
    /// limit a function compiles in about 0.5 s and 60 MB. A Rust reference plugin's largest is
    /// 0.12 million, a Python component's 0.15 million, a JavaScript one's 0.4 million.
    pub max_function_locals_times_blocks: u64,
    /// The most locals × blocks a component may have, all its functions together (see
    /// [`max_function_locals_times_blocks`](Self::max_function_locals_times_blocks)). Default:
    /// 32,000,000: eight functions at the per-function limit compile in about 3 s and 140 MB.
    /// A Rust reference plugin's total is 0.1 to 0.4 million, a Python component's 4.0
    /// million, a JavaScript one's 6.4 million.
    pub max_locals_times_blocks: u64,
    /// The time one plugin may spend, over the life of one evaluator (a worker thread's share
    /// of a run), retrying customer-days one at a time after failed batches, in milliseconds of
    /// the thread's CPU time.
    /// Default: 10,000. The retries of one batch are bounded too, by twice the batch call's own
    /// deadline. A customer-day left when a budget is spent fails as `skipped`, naming the
    /// budget, and is billed by a re-run of the date. These budgets are the circuit breaker:
    /// what a failing plugin can cost is time, so time is what they bound; a plugin that traps
    /// quickly on some customers stays far inside them and every other customer is billed.
    pub retry_budget_ms: u64,
    /// The longest a plugin's `configure` may take, in milliseconds of the thread's CPU time
    /// (waiting for a core does not count). Default: 10 (an honest
    /// `configure` parses its parameters in microseconds). A slower one fails its chain entry
    /// (`trap deadline`, "configure is too slow") every time, rather than overrunning its hard
    /// deadline (`deadline_base_ms`) now and then when it is configured again after a trap or
    /// for a new batch, which would fail customers at random.
    pub max_configure_ms: u64,
    /// After how many customer-days an instance is replaced by a freshly instantiated and
    /// configured one, before its next call (dry runs count as one). Default: 65,536. Plugins
    /// must be pure, but one that keeps state in its memory could otherwise make a bill depend
    /// on every customer billed before it on the same thread; this bounds how far such state
    /// reaches. 1 gives every call a fresh instance, which measured here costs about 110 µs per
    /// plugin and call, a third of the chain's speed at batches of 1,024 (BENCHMARKS.md,
    /// "Purity"); the runtime also starts every shard from fresh instances, so that a shard's
    /// bills never depend on which worker or host billed what before it. 0: never.
    pub fresh_instance_after: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_component_bytes: 8 << 20,
            max_memory_bytes: 64 << 20,
            max_table_elements: 20_000,
            deadline_base_ms: 100,
            deadline_per_day_us: 200,
            max_lines_per_day: 64,
            max_line_specs: 64,
            max_message_bytes: crate::contract::MAX_MESSAGE_BYTES,
            max_describe_bytes: 4_096,
            max_name_bytes: 64,
            max_params: 64,
            max_params_schema_bytes: 64 << 10,
            max_params_schema_nodes: 20_000,
            max_params_bytes: 64 << 10,
            max_params_pattern_bytes: 128 << 10,
            max_params_string_bytes: 4_096,
            max_batch: 1_024,
            max_log_bytes: 64 << 10,
            max_functions: 50_000,
            max_function_bytes: 1 << 20,
            max_locals: 10_000,
            max_nesting_depth: 4_096,
            max_loop_depth: 32,
            max_loops: 100_000,
            max_function_locals_times_blocks: 4_000_000,
            max_locals_times_blocks: 32_000_000,
            retry_budget_ms: 10_000,
            max_configure_ms: 10,
            fresh_instance_after: 65_536,
        }
    }
}

/// How components are compiled.
///
/// Compiling is the one step whose cost an uploader controls: the size cap does not bound it
/// (a few hundred KiB of nested loops can take minutes and gigabytes). The engine first checks
/// the component's shape against [`Limits`] (functions, body sizes, locals, nesting, loops,
/// tables, memories), which refuses the known bombs in milliseconds, and then, when
/// [`program`](Self::program) is set, compiles in a child process that has at most
/// [`timeout_ms`](Self::timeout_ms) of wall-clock time and
/// [`max_memory_bytes`](Self::max_memory_bytes) of memory. So the worst an upload can do is be
/// refused with a named limit: it cannot stop the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompileConfig {
    /// The program that compiles in a child process: an executable that runs
    /// [`compile_child_main`](crate::compile_child_main) when its first argument is
    /// [`COMPILE_COMMAND`](crate::COMPILE_COMMAND). Default: none, which compiles in this
    /// process (with the structural limits only). The `heatbill` command sets itself.
    pub program: Option<PathBuf>,
    /// The longest a compilation may take, wall-clock, in milliseconds. Default: 30,000. An
    /// honest component compiles at about 1.5 MB/s on one core of a small machine, so an 8 MiB
    /// one needs about 5 s.
    pub timeout_ms: u64,
    /// The most memory the compiling process may use (its data segment, `RLIMIT_DATA`), in
    /// bytes. Default: 1 GiB (1,073,741,824). An honest 300 KiB plugin needs about 40 MB; the
    /// costliest component known within the structural limits, at the size cap, about 330 MB.
    pub max_memory_bytes: u64,
}

impl Default for CompileConfig {
    fn default() -> Self {
        Self {
            program: None,
            timeout_ms: 30_000,
            max_memory_bytes: 1 << 30,
        }
    }
}

/// The sizes of the pooling allocator.
///
/// The pool reserves (virtual) memory for all its slots when the engine is built, so that an
/// instantiation is a slot taken from a free list, not an `mmap`: the engine re-instantiates a
/// plugin after every trap, and each worker thread holds one instance per chain entry. Size it to
/// cores × chain entries × chain versions in use at once, with room to spare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// The most plugin instances alive at once in the process. Default: 1,000.
    pub total_component_instances: u32,
    /// The most core module instances alive at once. A Rust plugin for wasm32-wasip2 is one to
    /// a few core instances (its code plus small shims). Default: 8,000.
    pub total_core_instances: u32,
    /// The most linear memories alive at once (one per plugin instance for a Rust plugin).
    /// Default: 1,000.
    pub total_memories: u32,
    /// The most tables alive at once. Default: 4,000.
    pub total_tables: u32,
    /// The most core instances one plugin may contain. Default: 32.
    pub max_core_instances_per_component: u32,
    /// The most memories one plugin may contain. Default: 2.
    pub max_memories_per_component: u32,
    /// The most tables one plugin may contain. Default: 8.
    pub max_tables_per_component: u32,
    /// The most memories one core module of a plugin may define. Default: 1 (a Rust plugin's
    /// code module has one).
    pub max_memories_per_module: u32,
    /// The most tables one core module of a plugin may define. Default: 1 (a Rust plugin's
    /// code module has one, for indirect calls).
    pub max_tables_per_module: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            total_component_instances: 1_000,
            total_core_instances: 8_000,
            total_memories: 1_000,
            total_tables: 4_000,
            max_core_instances_per_component: 32,
            max_memories_per_component: 2,
            max_tables_per_component: 8,
            max_memories_per_module: 1,
            max_tables_per_module: 1,
        }
    }
}

/// The wasmtime configuration of an engine: the pooling allocator sized by `config.pool`,
/// memory capped by `config.limits`, epoch interruption, the component model. The compiler
/// child builds its engine from the same function, so that its artifacts load in the parent,
/// but without the pool (`pooling: false`): it never instantiates, and the pool's reservations
/// would count against its memory limit. The allocation strategy is not part of an artifact's
/// compatibility (a test loads the child's artifacts).
pub(crate) fn wasmtime_config(config: &EngineConfig, pooling: bool) -> wasmtime::Config {
    let l = &config.limits;
    let (p, max_memory) = config.pool_for_all_profiles();
    let p = &p;
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(p.total_component_instances)
        .total_core_instances(p.total_core_instances)
        .total_memories(p.total_memories)
        .total_tables(p.total_tables)
        .max_core_instances_per_component(p.max_core_instances_per_component)
        .max_memories_per_component(p.max_memories_per_component)
        .max_tables_per_component(p.max_tables_per_component)
        .max_memories_per_module(p.max_memories_per_module)
        .max_tables_per_module(p.max_tables_per_module)
        .table_elements(l.max_table_elements)
        // The pool's hard cap sits at the limit; the store's limiter enforces the same
        // limit first, so that a denial is recorded and reported as `memory-limit`.
        .max_memory_size(max_memory);
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true).epoch_interruption(true);
    if pooling {
        c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPPER: &str = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";

    /// A digest pasted in upper case used to load and never match: it is read in lower case.
    #[test]
    fn grants_are_read_in_lower_case() {
        let read = |grants: serde_json::Value| {
            serde_json::from_value::<EngineConfig>(serde_json::json!({
                "profiles": { "interpreted": {}, "big": {} },
                "grants": grants
            }))
        };
        let c = read(serde_json::json!({ UPPER: "interpreted" })).unwrap();
        let lower = UPPER.to_ascii_lowercase();
        assert_eq!(c.grants.keys().collect::<Vec<_>>(), [&lower]);
        assert_eq!(c.granted_profile(&lower), INTERPRETED);
        assert_eq!(c.granted_profile(&"0".repeat(64)), STANDARD);
        // The same digest twice in two cases is one grant when they agree ...
        let c = read(serde_json::json!({ UPPER: "interpreted", lower.clone(): "interpreted" }))
            .unwrap();
        assert_eq!(c.grants.len(), 1);
        // ... and an error when they do not.
        let e = read(serde_json::json!({ UPPER: "interpreted", lower.clone(): "big" }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is granted both") && e.contains(&lower), "{e}");
        // A configuration built in code finds its grant in either case.
        let mut c = EngineConfig::default();
        c.grants.insert(UPPER.into(), INTERPRETED.into());
        assert_eq!(c.granted_profile(&lower), INTERPRETED);
    }
}
