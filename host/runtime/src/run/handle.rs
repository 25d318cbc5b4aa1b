//! The run handle: what a process holds to run dates in the foreground, start them in the
//! background, follow, cancel and wind down the runs it works on, serve other hosts' runs, and
//! schedule the nights. The CLI, the admin server and the worker all call it; none of them puts
//! a run's steps ([`prepare`], [`open`], [`complete`]) together itself.

use super::*;

/// Counters of the runs this process worked on (the admin server's `/metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Runs started here (requests and the scheduler).
    pub started: AtomicU64,
    /// Runs completed here.
    pub completed: AtomicU64,
    /// Runs that stopped with an error here.
    pub failed: AtomicU64,
    /// Customers settled by runs completed here.
    pub customers: AtomicU64,
    /// Bills written (first versions and revisions).
    pub bills: AtomicU64,
    /// Customers parked.
    pub parked: AtomicU64,
    /// Microseconds of completed runs.
    pub run_micros: AtomicU64,
    /// Customers per second of the last completed run, ×1000.
    pub last_rate_milli: AtomicU64,
    /// Runs the scheduler started.
    pub scheduled: AtomicU64,
    /// Microseconds runs spent claiming shards and renewing their leases (the waits of
    /// coordination between hosts).
    pub coordination_micros: AtomicU64,
}

impl Counters {
    /// Adds a completed run's report.
    pub fn record_report(&self, r: &RunReport) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.customers
            .fetch_add(r.this_process.customers, Ordering::Relaxed);
        self.bills.fetch_add(
            r.this_process.written + r.this_process.revised,
            Ordering::Relaxed,
        );
        self.parked
            .fetch_add(r.this_process.parked, Ordering::Relaxed);
        self.run_micros
            .fetch_add((r.seconds * 1e6) as u64, Ordering::Relaxed);
        self.last_rate_milli
            .store((r.customers_per_second * 1000.0) as u64, Ordering::Relaxed);
        self.coordination_micros
            .fetch_add((r.coordination_seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// A run this process works on in the background.
#[derive(Debug)]
struct Live {
    company_id: i32,
    task: tokio::task::JoinHandle<()>,
    /// Stops the task: it drops the shards in flight (each commits whole or not at all).
    stop: CancellationToken,
    started: Instant,
}

/// A process's handle on runs. Cheap to clone (one shared state).
#[derive(Clone, Debug)]
pub struct Runs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    env: Env,
    live: Mutex<HashMap<i64, Live>>,
    counters: Counters,
}

impl Runs {
    /// The runs of a process with these services, engine and settings.
    pub fn new(env: Env) -> Runs {
        Runs {
            inner: Arc::new(Inner {
                env,
                live: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// The process's services, engine and settings.
    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    /// What the runs started here did.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Live>> {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs (or joins, or resumes) the run of `company` for `date` to its end, in the
    /// foreground: what `heatbill run` does. See the module docs of [`crate::run`].
    pub async fn run(
        &self,
        company: &str,
        date: NaiveDate,
        on_progress: impl FnMut(&Progress) + Send,
    ) -> Result<RunReport, RunError> {
        run(&self.inner.env, company, date, on_progress).await
    }

    /// Starts (or joins) the run of `company` for `date` on this process: checked and opened
    /// before this returns (a run that cannot start says why here), worked on in the
    /// background. Returns the run: a new attempt, the one already running, or (nothing having
    /// changed since the date's last completed run) the completed run recorded for this request.
    /// What run requests and the scheduler call.
    pub async fn start(&self, company: &Company, date: NaiveDate) -> Result<RunRecord, RunError> {
        let env = &self.inner.env;
        let counters = &self.inner.counters;
        let started = Instant::now();
        let p = prepare(env, &company.slug, date).await?;
        let running = match open(env, &p, started).await? {
            Opened::Unchanged(report) => {
                counters.started.fetch_add(1, Ordering::Relaxed);
                counters.completed.fetch_add(1, Ordering::Relaxed);
                return Ok(env.services.store.run(report.run_id).await?);
            }
            Opened::Running(running) => running,
        };
        let record = running.run.clone();
        let id = record.id;
        let mut live = self.live();
        if live.get(&id).is_some_and(|l| !l.task.is_finished()) {
            return Ok(record);
        }
        // Finished runs are in the database; only those in hand stay here.
        live.retain(|_, l| !l.task.is_finished());
        counters.started.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.clone().work(p, running, started, stop.clone()));
        live.insert(
            id,
            Live {
                company_id: company.id,
                task,
                stop,
                started,
            },
        );
        Ok(record)
    }

    /// A run started here, worked on until it completes, fails, or is stopped.
    async fn work(self, p: Prepared, running: Running, started: Instant, stop: CancellationToken) {
        let env = &self.inner.env;
        let id = running.run.id;
        let mut quiet = |_: &Progress| {};
        let wind_down = CancellationToken::new();
        let r = tokio::select! {
            r = complete(env, &p, running, started, &mut quiet, &wind_down) => r,
            _ = stop.cancelled() => {
                tracing::info!(run = id, "stopped here; the unfinished shards are handed back");
                return;
            }
        };
        match r {
            Ok(report) => {
                self.inner.counters.record_report(&report);
                if let Err(e) = refresh_ranking(&env.services, p.company.id, p.ctx.date).await {
                    tracing::warn!(run = id, error = %e, "the arrears ranking was not refreshed");
                }
                tracing::info!(
                    run = id,
                    customers = report.counts.customers,
                    parked = report.counts.parked,
                    seconds = report.seconds,
                    "run completed"
                );
            }
            Err(e) => {
                self.inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    run = id,
                    error = %terminal_safe(&e.to_string(), 2000),
                    "run stopped; it resumes when started again"
                );
            }
        }
    }

    /// How long this process has been working on run `id`, while it does.
    pub fn working_for(&self, id: i64) -> Option<Duration> {
        self.live()
            .get(&id)
            .filter(|l| !l.task.is_finished())
            .map(|l| l.started.elapsed())
    }

    /// How many runs this process is working on now.
    pub fn working(&self) -> usize {
        self.live()
            .values()
            .filter(|l| !l.task.is_finished())
            .count()
    }

    /// Whether this process is working on a run of the company.
    pub fn busy(&self, company_id: i32) -> bool {
        self.live()
            .values()
            .any(|l| l.company_id == company_id && !l.task.is_finished())
    }

    /// Cancels run `id`: marks it failed with `report` (which says who cancelled it), so no
    /// host claims its shards again, and stops this process's work on it (the shards in flight
    /// are dropped; each commits whole or not at all). False when the run had finished: then
    /// nothing changed.
    pub async fn cancel(&self, id: i64, report: &serde_json::Value) -> Result<bool, StoreError> {
        if !self
            .inner
            .env
            .services
            .store
            .finish_run(id, "failed", report)
            .await?
        {
            return Ok(false);
        }
        let live = self.live().remove(&id);
        if let Some(live) = live {
            live.stop.cancel();
            let _ = live.task.await;
        }
        Ok(true)
    }

    /// At shutdown: waits up to `grace` for the runs this process works on, then stops them
    /// (their claimed shards' leases lapse, and any host resumes them).
    pub async fn wind_down(&self, grace: Duration) {
        let tasks: Vec<(i64, Live)> = self.live().drain().collect();
        let deadline = tokio::time::Instant::now() + grace;
        for (id, mut live) in tasks {
            if tokio::time::timeout_at(deadline, &mut live.task)
                .await
                .is_err()
            {
                tracing::warn!(
                    run = id,
                    "shutting down mid-run: its unfinished shards are handed back"
                );
                live.stop.cancel();
                let _ = live.task.await;
            }
        }
    }

    /// Serves every running run of every company until `stop` resolves: what `heatbill worker`
    /// runs and the admin server embeds. See [`serve`].
    pub async fn serve(&self, stop: impl Future<Output = ()>) -> Result<Served, RunError> {
        serve(&self.inner.env, stop).await
    }
}
