//! Faults on purpose, for the fault tests and the soak (`run.fault_stop_in_copy`,
//! `run.fault_stop_after_write`): a process that stops itself at one exact point, so that a test
//! meets that point every time instead of by chance.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process has stopped itself already: each fault fires once, so the write that a
/// resumed process retries goes through.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// [`stop_this_process`], the first time only.
pub fn stop_this_process_once(where_: &str) {
    if !STOPPED.swap(true, Ordering::SeqCst) {
        stop_this_process(where_);
    }
}

/// Stops this process with SIGSTOP (as an operator's `kill -STOP` would) until something sends
/// it SIGCONT. Says so on stderr first, with `where_`, so a test can wait for the line.
pub fn stop_this_process(where_: &str) {
    let pid = std::process::id();
    eprintln!("heatbill fault: process {pid} stopping itself {where_}");
    // `kill` in a child: the workspace denies unsafe code, and this path is for tests only. The
    // child exits at once; this thread then waits for it while the process is stopped, and
    // goes on after SIGCONT.
    match std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
    {
        Ok(s) if s.success() => {}
        other => eprintln!("heatbill fault: could not stop process {pid}: {other:?}"),
    }
}
