//! The sandbox around one plugin instance: WASI with nothing granted, the memory limiter and the
//! bounded log.
//!
//! The contract's world imports nothing. Components built with Rust's standard library for
//! `wasm32-wasip2` still import parts of WASI (stdio for `println!` and panics, the environment
//! and arguments, clocks, random for `HashMap` seeds, filesystem preopens). The engine links
//! exactly those interfaces, each with nothing behind it:
//!
//! | interface | what the plugin gets |
//! |---|---|
//! | `wasi:cli/environment` | no variables, no arguments, no working directory |
//! | `wasi:cli/stdin` | an empty stream |
//! | `wasi:cli/stdout`, `stderr` | the instance's bounded log (see [`LogBuffer`]) |
//! | `wasi:cli/exit` | exit traps the call (`exit` trap kind) |
//! | `wasi:cli/terminal-*` | no terminal |
//! | `wasi:clocks/wall-clock` | a fixed time, 1970-01-01T00:00:00Z |
//! | `wasi:clocks/monotonic-clock` | a fixed instant, 0; a sleep returns at once |
//! | `wasi:random/*` | a fixed byte sequence and a fixed seed |
//! | `wasi:filesystem/types`, `preopens` | no preopened directory, so no file can be opened |
//! | `wasi:io/*` | streams and polls over the above |
//! | `heatbill:rules/types` | the contract's type definitions (no functions) |
//!
//! Sockets and HTTP are not linked at all, nor is anything else: a component that imports
//! another interface fails to load with an error naming the import. Clocks and random are fixed
//! rather than denied because plugins must be pure (same input, same output) and Rust's standard
//! library reads them behind the plugin's back (`HashMap` seeds); fixing them keeps such code
//! deterministic instead of broken. The monotonic clock's pollables are always ready so that no
//! host call can block: a deadline is enforced by epoch interruption, which only interrupts
//! guest code, so a host call that slept would escape it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{HostWallClock, WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The WASI interfaces linked (by name without version; any `0.2.x` patch version is accepted).
/// Everything else a component imports is denied.
pub(crate) const GRANTED_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
];

/// The data of one plugin instance's store.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// The current call's deadline, in the thread's CPU time (`crate::cpu`).
    pub(crate) deadline: crate::cpu::CpuDeadline,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// A fresh sandbox whose stdout and stderr go to `log`.
    pub(crate) fn new(
        log: &LogBuffer,
        max_memory: usize,
        max_table_elements: usize,
        tick: std::time::Duration,
    ) -> Self {
        let mut b = WasiCtx::builder();
        b.stdout(log.clone())
            .stderr(log.clone())
            .wall_clock(FixedWallClock)
            .secure_random(FixedRandom)
            .insecure_random(FixedRandom)
            .insecure_random_seed(0x6865_6174_6269_6c6c_0000_0000_0000_0001)
            .max_random_size(4096);
        Self {
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory,
                max_table_elements,
                denied_memory: None,
            },
            deadline: crate::cpu::CpuDeadline::new(tick),
        }
    }
}

/// The "random" bytes every plugin sees, cycled.
const FIXED_RANDOM: [u8; 16] = *b"heatbill-fixed-0";

/// A random source without memory: every read starts again at the first byte of
/// [`FIXED_RANDOM`]. A source that advanced (a cycle, a seeded generator) would give a plugin
/// that reads randomness different values on the second customer-day of an instance than on
/// the first, and so different bills for the same input depending on what ran before; this one
/// makes each read a function of its size alone. (A Rust `HashMap`'s seed is not covered: std
/// draws it once per instance and varies it per map, so iteration order is not reproducible
/// across calls. The plugin guide tells authors to use `BTreeMap` where order matters.)
struct FixedRandom;

impl rand_core::TryRng for FixedRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for (d, s) in dst.iter_mut().zip(FIXED_RANDOM.iter().cycle()) {
            *d = *s;
        }
        Ok(())
    }
}

/// Caps memory and tables and records a denied `memory.grow`, so that the trap the plugin's
/// allocator raises next (an abort, which is `unreachable`) is reported as `memory-limit`.
pub(crate) struct Limiter {
    max_memory: usize,
    max_table_elements: usize,
    /// The size last asked for past the cap, if any since the last reset.
    pub(crate) denied_memory: Option<usize>,
}

impl Limiter {
    pub(crate) fn max_memory(&self) -> usize {
        self.max_memory
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.max_memory {
            self.denied_memory = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

/// A wall clock stopped at the Unix epoch.
struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The monotonic clock: always 0, and every subscription is ready at once.
struct FixedMonotonic;

impl HasData for FixedMonotonic {
    type Data<'a> = ClockTable<'a>;
}

struct ClockTable<'a>(&'a mut ResourceTable);

impl monotonic_clock::Host for ClockTable<'_> {
    fn now(&mut self) -> Result<monotonic_clock::Instant> {
        Ok(0)
    }
    fn resolution(&mut self) -> Result<monotonic_clock::Duration> {
        Ok(1)
    }
    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> Result<Resource<DynPollable>> {
        ready_pollable(self.0)
    }
    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> Result<Resource<DynPollable>> {
        ready_pollable(self.0)
    }
}

fn ready_pollable(table: &mut ResourceTable) -> Result<Resource<DynPollable>> {
    let r = table.push(Ready)?;
    wasmtime_wasi::p2::subscribe(table, r)
}

/// A pollable that is always ready.
struct Ready;

#[async_trait::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// Links the contract's types and the granted WASI interfaces (see the module docs).
pub(crate) fn link_sandbox(linker: &mut Linker<StoreState>) -> Result<()> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};

    let l = linker;
    // wasi:io, the synchronous flavour: the engine never runs inside an async executor.
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<StoreState, Io>(l, |t| &mut t.table)?;
    sync::io::poll::add_to_linker::<StoreState, Io>(l, |t| &mut t.table)?;
    sync::io::streams::add_to_linker::<StoreState, Io>(l, |t| &mut t.table)?;

    clocks::wall_clock::add_to_linker::<StoreState, WasiClocks>(l, StoreState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<StoreState, FixedMonotonic>(l, |t| {
        ClockTable(&mut t.table)
    })?;

    random::random::add_to_linker::<StoreState, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<StoreState, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<StoreState, WasiRandom>(l, |t| t.wasi.random())?;

    cli::exit::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::environment::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::stdin::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::stdout::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::stderr::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::terminal_input::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::terminal_output::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::terminal_stdin::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::terminal_stdout::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;
    cli::terminal_stderr::add_to_linker::<StoreState, WasiCli>(l, StoreState::cli)?;

    filesystem::preopens::add_to_linker::<StoreState, WasiFilesystem>(l, StoreState::filesystem)?;
    sync::filesystem::types::add_to_linker::<StoreState, WasiFilesystem>(
        l,
        StoreState::filesystem,
    )?;
    Ok(())
}

struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// The bounded log of one plugin instance: its stdout and stderr, interleaved.
///
/// Writes never fail (a plugin whose `println!` failed would panic, turning a log line into a
/// trap); past the capacity they are counted and dropped, and [`take`](Self::take) ends the text
/// with a marker. The buffer outlives the instance's store, so that the output of a call that
/// trapped (Rust prints the panic message to stderr before aborting) is still there to read and
/// to quote in the error.
#[derive(Clone)]
pub(crate) struct LogBuffer {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    buf: Vec<u8>,
    cap: usize,
    dropped: usize,
    /// The last `TAIL` bytes written, kept even past the cap: a panic message must be found
    /// after a plugin filled its log.
    tail: Vec<u8>,
    /// Bytes written since the buffer was created (kept or dropped).
    written: u64,
}

/// How much of the most recent output is kept for finding a panic message.
const TAIL: usize = 2048;

impl LogBuffer {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LogInner {
                buf: Vec::new(),
                cap,
                dropped: 0,
                tail: Vec::new(),
                written: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        // A poisoned lock only means a writer panicked mid-append; the bytes are still bytes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, bytes: &[u8]) {
        let mut g = self.lock();
        let room = g.cap.saturating_sub(g.buf.len());
        let n = room.min(bytes.len());
        g.buf.extend_from_slice(&bytes[..n]);
        g.dropped += bytes.len() - n;
        g.written += bytes.len() as u64;
        let keep = &bytes[bytes.len().saturating_sub(TAIL)..];
        let excess = (g.tail.len() + keep.len()).saturating_sub(TAIL);
        g.tail.drain(..excess);
        g.tail.extend_from_slice(keep);
    }

    /// Whether anything was written since the last take.
    pub(crate) fn is_empty(&self) -> bool {
        let g = self.lock();
        g.buf.is_empty() && g.dropped == 0
    }

    /// Takes the text written so far (lossily decoded as UTF-8), with a truncation marker.
    pub(crate) fn take(&self) -> String {
        let mut g = self.lock();
        let bytes = std::mem::take(&mut g.buf);
        let dropped = std::mem::replace(&mut g.dropped, 0);
        drop(g);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if dropped > 0 {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "[log truncated: {dropped} more bytes dropped (limit {} bytes)]\n",
                self.lock().cap
            ));
        }
        text
    }

    /// How many bytes were written so far: a mark for
    /// [`last_panic_since`](Self::last_panic_since).
    pub(crate) fn mark(&self) -> u64 {
        self.lock().written
    }

    /// The last uncaught exception a Python or JavaScript plugin printed after `mark`, if any:
    /// from a Python traceback (componentize-py prints it before it traps), the exception line
    /// and the innermost frame; from the JavaScript kit's adapter, its `uncaught` line. Rust's
    /// panics are [`last_panic_since`](Self::last_panic_since)'s.
    pub(crate) fn last_exception_since(&self, mark: u64) -> Option<String> {
        let g = self.lock();
        let since = usize::try_from(g.written.saturating_sub(mark)).unwrap_or(usize::MAX);
        let recent = &g.tail[g.tail.len().saturating_sub(since)..];
        let text = String::from_utf8_lossy(recent);
        let found = if let Some(start) = text.rfind("Traceback (most recent call last):") {
            // The frames are indented; the first line that is not is the exception.
            let mut frame = "";
            let mut exception = None;
            for line in text[start..].lines().skip(1) {
                if line.starts_with("  File ") {
                    frame = line.trim();
                } else if line.starts_with(' ') {
                    continue;
                } else if !line.is_empty() {
                    exception = Some(line);
                    break;
                }
            }
            let exception = exception?;
            let frame = frame.trim_start_matches("File ").replace('"', "");
            format!("the plugin raised {exception} ({frame})")
        } else {
            let line = text.lines().rev().find(|l| l.contains(": uncaught "))?;
            let (_, rest) = line.split_once(": uncaught ")?;
            format!("the plugin threw {rest}")
        };
        Some(crate::text::terminal_safe(&found, 300))
    }

    /// The last panic message the plugin printed (`panicked at ...`) after `mark`, if any
    /// (searched in the last 2 KiB written, whether or not the log had room for them).
    pub(crate) fn last_panic_since(&self, mark: u64) -> Option<String> {
        let g = self.lock();
        let since = usize::try_from(g.written.saturating_sub(mark)).unwrap_or(usize::MAX);
        let recent = &g.tail[g.tail.len().saturating_sub(since)..];
        let text = String::from_utf8_lossy(recent);
        let start = text.rfind("panicked at")?;
        let tail = &text[start..];
        // Rust prints "panicked at src/lib.rs:10:5:\n<message>\n"; keep both lines, short.
        let mut lines = tail.lines();
        let location = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("panicked at ")
            .trim_end_matches(':');
        let message = lines.next().unwrap_or_default();
        let mut s = format!("{message} ({location})");
        if s.len() > 300 {
            let mut cut = 300;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        Some(s)
    }
}

impl IsTerminal for LogBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogBuffer {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogBuffer {
    async fn ready(&mut self) {}
}

impl OutputStream for LogBuffer {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always willing: past the cap the bytes are dropped, not refused.
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for LogBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_bounded_with_a_marker() {
        let log = LogBuffer::new(8);
        log.append(b"hello ");
        log.append(b"world\n");
        let text = log.take();
        assert!(text.starts_with("hello wo\n"), "{text}");
        assert!(text.contains("4 more bytes dropped"), "{text}");
        assert!(log.is_empty());
    }

    #[test]
    fn finds_the_panic_message_even_in_a_full_log() {
        let log = LogBuffer::new(16);
        log.append(&[b'x'; 100]);
        let mark = log.mark();
        log.append(b"\nthread '<unnamed>' panicked at src/lib.rs:3:1:\nboom\n");
        assert_eq!(
            log.last_panic_since(mark).as_deref(),
            Some("boom (src/lib.rs:3:1)")
        );
        assert_eq!(log.last_panic_since(log.mark()), None);
    }

    #[test]
    fn finds_the_panic_message() {
        let log = LogBuffer::new(1024);
        log.append(b"\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nhostile panic\nnote: x\n");
        assert_eq!(
            log.last_panic_since(0).as_deref(),
            Some("hostile panic (src/lib.rs:10:5)")
        );
    }
}
