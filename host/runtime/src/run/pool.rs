//! The CPU pool of a run: one thread per core, each owning a [`Worker`] (its evaluator and its
//! sandbox instances), fed through a channel.
//!
//! Evaluation is CPU-bound and synchronous (wasmtime calls), so it runs on threads of its own
//! rather than on the async runtime, whose threads stay free to load the next shards and write
//! the previous ones. A shard is cut into one part per thread so that its evaluation takes
//! a thread's share of the time; each part's output comes back through a oneshot channel.

use std::ops::Range;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use heatbill_engine::{Engine, Schedule, ScheduleEvaluator};

use super::shard::Worker;

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// The pool.
pub struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// Customers below which a shard is not cut into parts (a part costs a channel round trip).
const MIN_PART: usize = 256;

impl Pool {
    /// Starts `threads` workers, each with its own evaluator of `schedule`.
    pub fn new(engine: &Engine, schedule: Arc<Schedule>, threads: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..threads.max(1))
            .map(|i| {
                let rx = rx.clone();
                let engine = engine.clone();
                let schedule = schedule.clone();
                std::thread::Builder::new()
                    .name(format!("heatbill-eval-{i}"))
                    .spawn(move || {
                        let mut worker = Worker::new(ScheduleEvaluator::new(&engine, schedule));
                        loop {
                            // The lock is held only to take a job, not to run it.
                            let job = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(&mut worker),
                                Err(_) => return,
                            }
                        }
                    })
                    .expect("spawning an evaluation thread")
            })
            .collect();
        Pool {
            jobs: Some(tx),
            threads,
        }
    }

    /// The number of threads.
    pub fn size(&self) -> usize {
        self.threads.len()
    }

    /// Runs `f` over `0..n` cut into one part per thread (parts of at least a few hundred
    /// items), on the pool's threads; the parts' results in order.
    pub async fn map_parts<T, F>(&self, n: usize, f: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(&mut Worker, Range<usize>) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let parts = (n / MIN_PART).clamp(1, self.size());
        let per = n.div_ceil(parts).max(1);
        let mut receivers = Vec::with_capacity(parts);
        for p in 0..parts {
            let range = (p * per).min(n)..((p + 1) * per).min(n);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let f = f.clone();
            let job: Job = Box::new(move |w: &mut Worker| {
                let _ = tx.send(f(w, range));
            });
            self.jobs
                .as_ref()
                .expect("the pool is running")
                .send(job)
                .expect("the evaluation threads are running");
            receivers.push(rx);
        }
        let mut out = Vec::with_capacity(parts);
        for rx in receivers {
            // A part whose thread panicked (a bug, not a plugin: plugins trap inside the
            // sandbox) brings the run down rather than losing customers silently.
            out.push(rx.await.expect("an evaluation thread panicked"));
        }
        out
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
