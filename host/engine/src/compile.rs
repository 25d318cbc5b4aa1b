//! Bounded compilation: a component's shape is checked before it is compiled, and compiling
//! happens in a child process with a wall-clock and a memory limit.
//!
//! The size cap does not bound the work of compiling: the security review's bomb of nested
//! `loop`s took 30 s and 303 MB at 83 KB, and at 7.5 MB it was killed at 24 GB, taking the
//! process down. Two layers stop that:
//!
//! 1. [`check_structure`] walks the component with wasmparser (linear in its size, a few
//!    milliseconds per MiB) and refuses the shapes whose compile cost grows faster than their
//!    bytes: too many functions, a huge body, too many locals, deep nesting, deep or many
//!    loops, many locals across many blocks, tables and memories past the pool. Each refusal
//!    names its setting.
//! 2. [`compile_in_child`] runs the compiler in a child process ([`CompileConfig::program`]
//!    with [`COMPILE_COMMAND`]): the child caps its own data segment (`RLIMIT_DATA`) and CPU
//!    time before reading anything, the parent kills it at the wall-clock deadline. Whatever
//!    shape slips past the first layer costs at most that time and memory, and the host goes
//!    on. The child sends back the precompiled artifact, which the parent deserializes.

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use wasmparser::{Operator, Parser, Payload, TypeRef};

use crate::config::{CompileConfig, EngineConfig, Limits, PoolConfig};
use crate::error::LoadError;

/// The first argument that makes a program the engine's compiler child
/// ([`compile_child_main`]).
pub const COMPILE_COMMAND: &str = "__heatbill-compile-component";

/// The environment variable through which the child receives the engine configuration (JSON,
/// without the cache settings): the child must compile exactly as the parent's engine would.
const CONFIG_ENV: &str = "HEATBILL_COMPILE_CONFIG";

/// The child's answer on stdout starts with one of these.
const OK: &[u8] = b"HBOK";
const ERR: &[u8] = b"HBER";

/// What the structural check counted in a component (all core modules together, the largest
/// of each per-function figure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Structure {
    /// Core modules.
    pub modules: u64,
    /// Functions defined (with a body), all modules together.
    pub functions: u64,
    /// The largest function body, in bytes.
    pub max_function_bytes: u64,
    /// The most locals one function declares.
    pub max_locals: u64,
    /// The deepest nesting of blocks in one function.
    pub max_nesting_depth: u64,
    /// The deepest nesting of loops in one function.
    pub max_loop_depth: u64,
    /// Loops, all functions together.
    pub loops: u64,
    /// Tables defined, all modules together.
    pub tables: u64,
    /// Memories defined, all modules together.
    pub memories: u64,
    /// Core module instances the component creates when it is instantiated.
    pub core_instances: u64,
    /// Locals × blocks, all functions together: each function's locals (its parameters
    /// included) times its blocks (`block`, `loop`, `if`, `else`, `br_if`, `br_table`, `try`),
    /// the work of building its SSA form.
    pub locals_times_blocks: u64,
    /// The largest locals × blocks of one function.
    pub max_function_locals_times_blocks: u64,
}

/// Walks every core module of the component and refuses it, naming the limit, if its shape is
/// over one of `limits` or `pool`. Linear in the size of the component; the walk stops at the
/// first limit crossed, so a bomb is refused after reading no more than it must.
pub fn check_structure(
    bytes: &[u8],
    limits: &Limits,
    pool: &PoolConfig,
) -> Result<Structure, LoadError> {
    let malformed = |e: wasmparser::BinaryReaderError| LoadError::Malformed {
        message: e.to_string(),
    };
    let over = |key: &str, what: String, found: u64, limit: u64| {
        Err(LoadError::OverLimit {
            key: key.to_string(),
            what,
            found,
            limit,
        })
    };
    let mut s = Structure::default();
    // Per module: its index (for messages) and how many of its functions were seen.
    let mut module = 0u64;
    let mut function = 0u64;
    // Per module: the parameter count of each function type, the type of each defined
    // function, and how many defined functions' bodies were seen.
    let mut type_params: Vec<u64> = Vec::new();
    let mut function_types: Vec<u32> = Vec::new();
    let mut defined = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::Version {
                encoding: wasmparser::Encoding::Module,
                ..
            } => {
                s.modules += 1;
                module = s.modules - 1;
                function = 0;
                type_params.clear();
                function_types.clear();
                defined = 0;
            }
            Payload::TypeSection(reader) => {
                for group in reader {
                    for ty in group.map_err(malformed)?.into_types() {
                        type_params.push(match &ty.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => f.params().len() as u64,
                            _ => 0,
                        });
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                if u64::from(reader.count()) > limits.max_functions {
                    return over(
                        "limits.max_functions",
                        "functions".to_string(),
                        u64::from(reader.count()),
                        limits.max_functions,
                    );
                }
                for ty in reader {
                    function_types.push(ty.map_err(malformed)?);
                }
            }
            Payload::ImportSection(reader) => {
                // Imported functions take the first indices of the function space.
                for import in reader.into_imports() {
                    if let TypeRef::Func(_) | TypeRef::FuncExact(_) = import.map_err(malformed)?.ty
                    {
                        function += 1;
                    }
                }
            }
            Payload::InstanceSection(reader) => {
                // Each instantiation takes a core instance slot of the pool; one instance per
                // plugin is what the pool sizes for, so the count is checked here, naming the
                // setting, rather than failing at the first instantiation.
                for instance in reader {
                    if let wasmparser::Instance::Instantiate { .. } = instance.map_err(malformed)? {
                        s.core_instances += 1;
                    }
                }
                if s.core_instances > u64::from(pool.max_core_instances_per_component) {
                    return over(
                        "pool.max_core_instances_per_component",
                        "core instances".to_string(),
                        s.core_instances,
                        u64::from(pool.max_core_instances_per_component),
                    );
                }
            }
            Payload::TableSection(reader) => {
                if reader.count() > pool.max_tables_per_module {
                    return over(
                        "pool.max_tables_per_module",
                        format!("tables in module {module}"),
                        u64::from(reader.count()),
                        u64::from(pool.max_tables_per_module),
                    );
                }
                for (i, table) in reader.into_iter().enumerate() {
                    let table = table.map_err(malformed)?;
                    s.tables += 1;
                    let elements = table.ty.initial;
                    if elements > limits.max_table_elements as u64 {
                        return over(
                            "limits.max_table_elements",
                            format!("initial elements in table {i} of module {module}"),
                            elements,
                            limits.max_table_elements as u64,
                        );
                    }
                }
                if s.tables > u64::from(pool.max_tables_per_component) {
                    return over(
                        "pool.max_tables_per_component",
                        "tables".to_string(),
                        s.tables,
                        u64::from(pool.max_tables_per_component),
                    );
                }
            }
            Payload::MemorySection(reader) => {
                if reader.count() > pool.max_memories_per_module {
                    return over(
                        "pool.max_memories_per_module",
                        format!("memories in module {module}"),
                        u64::from(reader.count()),
                        u64::from(pool.max_memories_per_module),
                    );
                }
                for (i, memory) in reader.into_iter().enumerate() {
                    let memory = memory.map_err(malformed)?;
                    s.memories += 1;
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16).min(63);
                    let initial = memory.initial.saturating_mul(page);
                    if initial > limits.max_memory_bytes as u64 {
                        return over(
                            "limits.max_memory_bytes",
                            format!("bytes of initial memory in memory {i} of module {module}"),
                            initial,
                            limits.max_memory_bytes as u64,
                        );
                    }
                }
                if s.memories > u64::from(pool.max_memories_per_component) {
                    return over(
                        "pool.max_memories_per_component",
                        "memories".to_string(),
                        s.memories,
                        u64::from(pool.max_memories_per_component),
                    );
                }
            }
            Payload::CodeSectionStart { count, .. } => {
                let total = s.functions.saturating_add(u64::from(count));
                if total > limits.max_functions {
                    return over(
                        "limits.max_functions",
                        "functions".to_string(),
                        total,
                        limits.max_functions,
                    );
                }
            }
            Payload::CodeSectionEntry(body) => {
                s.functions += 1;
                let index = function;
                function += 1;
                let size = body.range().len() as u64;
                s.max_function_bytes = s.max_function_bytes.max(size);
                if size > limits.max_function_bytes {
                    return over(
                        "limits.max_function_bytes",
                        format!("bytes in the body of function {index} of module {module}"),
                        size,
                        limits.max_function_bytes,
                    );
                }
                // Parameters are locals too.
                let mut locals = function_types
                    .get(defined)
                    .and_then(|t| type_params.get(*t as usize))
                    .copied()
                    .unwrap_or(0);
                defined += 1;
                for group in body.get_locals_reader().map_err(malformed)? {
                    let (count, _) = group.map_err(malformed)?;
                    locals = locals.saturating_add(u64::from(count));
                }
                s.max_locals = s.max_locals.max(locals);
                if locals > limits.max_locals {
                    return over(
                        "limits.max_locals",
                        format!("locals in function {index} of module {module}"),
                        locals,
                        limits.max_locals,
                    );
                }
                let mut ops = body.get_operators_reader().map_err(malformed)?;
                // The open blocks, innermost last: whether each is a loop. Bounded by the
                // nesting limit, checked on every push.
                let mut open: Vec<bool> = Vec::new();
                let mut loop_depth = 0u64;
                // Blocks of the function's control flow: each construct and each conditional
                // branch starts one.
                let mut blocks = 0u64;
                while !ops.eof() {
                    let is_loop = match ops.read().map_err(malformed)? {
                        Operator::Block { .. }
                        | Operator::If { .. }
                        | Operator::Try { .. }
                        | Operator::TryTable { .. } => false,
                        Operator::Loop { .. } => true,
                        Operator::End => {
                            if open.pop() == Some(true) {
                                loop_depth -= 1;
                            }
                            continue;
                        }
                        Operator::Else | Operator::BrIf { .. } | Operator::BrTable { .. } => {
                            blocks += 1;
                            continue;
                        }
                        _ => continue,
                    };
                    blocks += 1;
                    open.push(is_loop);
                    let depth = open.len() as u64;
                    s.max_nesting_depth = s.max_nesting_depth.max(depth);
                    if depth > limits.max_nesting_depth {
                        return over(
                            "limits.max_nesting_depth",
                            format!("nested blocks in function {index} of module {module}"),
                            depth,
                            limits.max_nesting_depth,
                        );
                    }
                    if is_loop {
                        loop_depth += 1;
                        s.loops += 1;
                        s.max_loop_depth = s.max_loop_depth.max(loop_depth);
                        if loop_depth > limits.max_loop_depth {
                            return over(
                                "limits.max_loop_depth",
                                format!("nested loops in function {index} of module {module}"),
                                loop_depth,
                                limits.max_loop_depth,
                            );
                        }
                        if s.loops > limits.max_loops {
                            return over(
                                "limits.max_loops",
                                "loops".to_string(),
                                s.loops,
                                limits.max_loops,
                            );
                        }
                    }
                }
                // Building a function's SSA form looks each local up across the blocks between
                // its uses and its definitions: 4,000 blocks and 10,000 locals (72 KB) ran the
                // compiler out of 1 GiB after 20 s.
                let product = locals.saturating_mul(blocks);
                s.max_function_locals_times_blocks =
                    s.max_function_locals_times_blocks.max(product);
                if product > limits.max_function_locals_times_blocks {
                    return over(
                        "limits.max_function_locals_times_blocks",
                        format!(
                            "locals × blocks in function {index} of module {module} ({locals} \
                             locals × {blocks} blocks)"
                        ),
                        product,
                        limits.max_function_locals_times_blocks,
                    );
                }
                s.locals_times_blocks = s.locals_times_blocks.saturating_add(product);
                if s.locals_times_blocks > limits.max_locals_times_blocks {
                    return over(
                        "limits.max_locals_times_blocks",
                        format!(
                            "locals × blocks, all functions together (function {index} of \
                             module {module}, {locals} locals × {blocks} blocks, brings it there)"
                        ),
                        s.locals_times_blocks,
                        limits.max_locals_times_blocks,
                    );
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Compiles `bytes` in a child process (`program` [`COMPILE_COMMAND`]) under the time and
/// memory of `config.compile`, and returns the precompiled artifact.
///
/// The child gets the component on stdin and the engine configuration in its environment, and
/// answers on stdout with the artifact or the compiler's error. Stdout and stderr are read
/// concurrently (so a full pipe never stalls the child) into bounded buffers.
pub(crate) fn compile_in_child(
    program: &std::path::Path,
    config: &EngineConfig,
    bytes: &[u8],
) -> Result<Vec<u8>, LoadError> {
    let c = &config.compile;
    let failed = |message: String| LoadError::Compiler { message };
    let child_config = EngineConfig {
        cache_dir: None,
        cache_key: None,
        compile: CompileConfig {
            program: None,
            ..c.clone()
        },
        ..config.clone()
    };
    let json = serde_json::to_string(&child_config).map_err(|e| failed(e.to_string()))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .arg(COMPILE_COMMAND)
        .env(CONFIG_ENV, json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    let (stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err(failed("the child's pipes were not opened".to_string())),
        };
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        // A child that dies early closes its end: the write fails, the exit status says why.
        let _ = stdin.write_all(&input);
    });
    // The artifact cannot be larger than the memory the child may use.
    let out_limit = c.max_memory_bytes;
    let reader = std::thread::spawn(move || read_bounded(stdout, out_limit));
    let err_reader = std::thread::spawn(move || read_bounded(stderr, 16 << 10));

    let deadline = started + Duration::from_millis(c.timeout_ms);
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("cannot wait for the child: {e}")));
            }
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let timeout = || LoadError::CompileLimit {
        key: "compile.timeout_ms".to_string(),
        what: format!("took longer than {} ms", c.timeout_ms),
    };
    let memory = || LoadError::CompileLimit {
        key: "compile.max_memory_bytes".to_string(),
        what: format!("needed more than {} bytes of memory", c.max_memory_bytes),
    };
    let Some(status) = status else {
        return Err(timeout());
    };
    let stderr_text = String::from_utf8_lossy(&err);
    if status.success() {
        if let Some(artifact) = out.strip_prefix(OK) {
            return Ok(artifact.to_vec());
        }
        if let Some(message) = out.strip_prefix(ERR) {
            let message = String::from_utf8_lossy(message).into_owned();
            if is_out_of_memory(&message) {
                return Err(memory());
            }
            return Err(LoadError::Malformed { message });
        }
        return Err(failed("the child answered nothing".to_string()));
    }
    if is_out_of_memory(&stderr_text) {
        return Err(memory());
    }
    {
        use std::os::unix::process::ExitStatusExt;
        // SIGXCPU: the child's CPU-time limit, the backstop of the wall clock.
        if status.signal() == Some(24) {
            return Err(timeout());
        }
    }
    let tail: String = stderr_text
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .chars()
        .take(300)
        .flat_map(char::escape_debug)
        .collect();
    Err(failed(format!("{status}: {tail}")))
}

/// Whether a message is the allocator's or the kernel's word for running out of memory.
fn is_out_of_memory(text: &str) -> bool {
    text.contains("memory allocation of")
        || text.contains("Cannot allocate memory")
        || text.contains("out of memory")
}

/// Reads all of `r` into memory, keeping at most `limit` bytes (and draining the rest, so the
/// writer is never blocked on a full pipe).
fn read_bounded(r: impl Read, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut r = r;
    let _ = (&mut r).take(limit).read_to_end(&mut buf);
    let _ = std::io::copy(&mut r, &mut std::io::sink());
    buf
}

/// The compiler child: the whole `main` of a program started with [`COMPILE_COMMAND`].
///
/// It limits its own memory and CPU time first, then reads the component from stdin and the
/// engine configuration from its environment, compiles, and writes the artifact (or the
/// compiler's error) to stdout. It never runs the component.
pub fn compile_child_main() -> ExitCode {
    let mut out = std::io::stdout().lock();
    match compile_child() {
        Ok(artifact) => {
            let _ = out.write_all(OK);
            let _ = out.write_all(&artifact);
        }
        Err(message) => {
            let _ = out.write_all(ERR);
            let _ = out.write_all(message.as_bytes());
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn compile_child() -> Result<Vec<u8>, String> {
    let json = std::env::var(CONFIG_ENV).map_err(|_| format!("{CONFIG_ENV} is not set"))?;
    let config: EngineConfig =
        serde_json::from_str(&json).map_err(|e| format!("{CONFIG_ENV} is not valid: {e}"))?;
    let c = &config.compile;
    rlimit::setrlimit(
        rlimit::Resource::DATA,
        c.max_memory_bytes,
        c.max_memory_bytes,
    )
    .map_err(|e| format!("cannot limit memory: {e}"))?;
    // A backstop for a parent that died before killing us: CPU time of all threads, so twice
    // the wall clock plus a margin.
    let cpu = (c.timeout_ms / 1_000 + 1).saturating_mul(2) + 5;
    rlimit::setrlimit(rlimit::Resource::CPU, cpu, cpu)
        .map_err(|e| format!("cannot limit CPU time: {e}"))?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(config.limits.max_component_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the component: {e}"))?;
    if bytes.len() > config.limits.max_component_bytes {
        return Err("the component is over limits.max_component_bytes".to_string());
    }
    let engine = wasmtime::Engine::new(&crate::config::wasmtime_config(&config, false))
        .map_err(|e| format!("{e:#}"))?;
    engine
        .precompile_component(&bytes)
        .map_err(|e| crate::error::error_chain(&e))
}
