//! Deadlines in the plugin's own CPU time.
//!
//! A limit whose outcome depends on what else runs on the host is a bug: on a machine loaded to
//! 5–10 runnable threads per core, a call that needs 20 ms of CPU takes 100–200 ms of wall time,
//! and a wall-clock deadline then fails an honest plugin (and, at night, parks its customers) at
//! random. So every deadline of a call into a plugin is counted in the CPU time of the thread
//! that runs it: wasm runs synchronously on that thread, and a thread waiting for a core
//! accumulates none.
//!
//! The mechanism is wasmtime's epoch interruption, kept for its cost (a counter check at loop
//! heads and function entries; fuel metering costs far more on every instruction). The ticker
//! advances the epoch in wall time; when a call's epoch deadline comes, the store's callback
//! ([`CpuDeadline::on_epoch`]) reads the thread's CPU clock: if the CPU budget is not spent, it
//! extends the deadline by the CPU time left (wall time is never shorter than CPU time on one
//! thread, so the next look is never late), else it interrupts the call as a deadline trap. A
//! wall-clock ceiling far above the budget ([`WALL_CEILING_MULTIPLE`] times it) remains only
//! against a stuck host or a call that waits without using the CPU.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// The wall-clock ceiling of a call, as a multiple of its CPU budget. A load of 20 runnable
/// threads per core would be needed for an honest call to reach it.
pub(crate) const WALL_CEILING_MULTIPLE: u32 = 20;

/// The CPU time the calling thread has used. Unlike wall time it does not grow while the thread
/// waits for a core, so a busy machine (several workers and the database on two cores) does not
/// make an honest plugin look slow.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid pointer to a local.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// One store's current deadline: a CPU budget from the moment it was armed, and the wall-clock
/// ceiling.
#[derive(Debug, Clone)]
pub(crate) struct CpuDeadline {
    tick: Duration,
    budget: Duration,
    cpu_start: Duration,
    wall_start: Instant,
    /// Set when the last interruption was the wall-clock ceiling's, not the CPU budget's.
    pub(crate) wall_exceeded: bool,
}

impl CpuDeadline {
    /// A deadline counted in epoch ticks of `tick`, not armed yet (an empty budget).
    pub(crate) fn new(tick: Duration) -> CpuDeadline {
        CpuDeadline {
            tick: tick.max(Duration::from_micros(1)),
            budget: Duration::ZERO,
            cpu_start: thread_cpu_time(),
            wall_start: Instant::now(),
            wall_exceeded: false,
        }
    }

    /// Starts a budget of `budget` CPU time from now, on this thread; the epoch ticks to set as
    /// the store's deadline for the first look.
    pub(crate) fn arm(&mut self, budget: Duration) -> u64 {
        self.budget = budget;
        self.cpu_start = thread_cpu_time();
        self.wall_start = Instant::now();
        self.wall_exceeded = false;
        self.ticks(budget)
    }

    /// Epoch ticks covering `d`, one more than the quotient (the first tick may come at once).
    fn ticks(&self, d: Duration) -> u64 {
        let t = self.tick.as_nanos().max(1);
        (d.as_nanos().div_ceil(t) as u64).saturating_add(1)
    }

    /// The store's epoch callback: extend by the CPU time left, or interrupt.
    pub(crate) fn on_epoch(&mut self) -> UpdateDeadline {
        let used = thread_cpu_time().saturating_sub(self.cpu_start);
        if used >= self.budget {
            return UpdateDeadline::Interrupt;
        }
        if self.wall_start.elapsed() >= self.budget * WALL_CEILING_MULTIPLE {
            self.wall_exceeded = true;
            return UpdateDeadline::Interrupt;
        }
        UpdateDeadline::Continue(self.ticks(self.budget - used))
    }
}
