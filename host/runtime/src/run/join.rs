//! Joining a run: one process's work on an open run's shards, as a pipeline of named stages.
//!
//! ```text
//!  claim ──────► load ─────────► evaluate ─────► write ──────────► progress
//!  one at a      a task each,    the CPU pool,   a task each,      counted, reported
//!  time, leased  `run.prefetch`  two shards in   `run.writers` at
//!  (renewed      ahead           flight          once (1 on SQLite),
//!  beside)                                       fenced by the token
//! ```
//!
//! Each stage is a method of [`Job`], which holds what the stages share (the run, its
//! context, the leases this process holds, the time spent coordinating) and is passed to each
//! stage's task as an `Arc`: the stages own what they use, so the whole pipeline's future is
//! `Send` and can be spawned like any other task. Backpressure is the streams': the pipeline
//! pulls a claim only when a load slot is free, so a process holds only the shards it is
//! working on and leaves the rest to the others.

use super::*;

/// What one process did for a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Joined {
    /// The counts of the shards it wrote.
    pub counts: ShardCounts,
    /// Shards it wrote.
    pub shards: u64,
    /// Shards it computed whose write the fencing token refused.
    pub writes_refused: u64,
    /// Claims it made.
    pub claims: u64,
    /// Seconds spent claiming shards and renewing their leases (the cost of sharing a run
    /// between hosts; claims overlap the other shards' work).
    pub coordination_seconds: f64,
}

/// Seconds spent on claims and renewals, shared by a run's tasks (microseconds), and the
/// claims made.
#[derive(Default)]
struct Spent(AtomicU64, AtomicU64);

impl Spent {
    fn add(&self, since: Instant) {
        self.0
            .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// One process's work on one run: what its pipeline's stages share.
struct Job {
    store: Arc<dyn Store>,
    cache: Arc<crate::cache::Cached>,
    /// This process among the run's workers.
    worker: String,
    ctx: Arc<RunContext>,
    run_id: i64,
    company_id: i32,
    /// `run.retry_s`: how long a failing database call is retried.
    budget: Duration,
    /// `run.lease_s`.
    lease: Duration,
    /// `run.claim_poll_ms`: how often to look again while nothing is claimable.
    poll: Duration,
    /// The claims this process holds (shard → token), renewed every third of the lease.
    held: Mutex<HashMap<i32, i64>>,
    spent: Spent,
    stall: Mutex<Stall>,
    wind_down: CancellationToken,
    /// Shards evaluated and shards written here, for the fault-injection settings
    /// (`run.fault_stop_in_copy`, `run.fault_stop_after_write`).
    evaluated: AtomicU64,
    written: AtomicU64,
    fault_stop_in_copy: u64,
    fault_stop_after_write: u64,
}

/// A claimed shard, loaded: its day's data, and its customers when read through the cache.
type Loaded = (Claim, ShardData, Option<Arc<Vec<CustomerState>>>);

/// Works on an open run: claims its shards (and those whose holders went silent) until every
/// shard is done, and returns what this process did. What `heatbill run` and `heatbill worker`
/// both do. Once `wind_down` is cancelled it claims nothing more, writes the shards it holds,
/// and returns.
pub async fn join(
    env: &Env,
    p: &Prepared,
    run: &RunRecord,
    done_before: u64,
    on_progress: &mut (impl FnMut(&Progress) + Send),
    wind_down: &CancellationToken,
) -> Result<Joined, RunError> {
    let started = Instant::now();
    let settings = &env.settings.run;
    let lease = Duration::from_secs(settings.lease_s.max(1));
    let job = Arc::new(Job {
        store: env.services.store.clone(),
        cache: env.services.cache.clone(),
        worker: env.services.worker.clone(),
        ctx: p.ctx.clone(),
        run_id: run.id,
        company_id: p.company.id,
        budget: Duration::from_secs(settings.retry_s),
        lease,
        poll: Duration::from_millis(settings.claim_poll_ms.max(10)),
        held: Mutex::new(HashMap::new()),
        spent: Spent::default(),
        stall: Mutex::new(Stall::new(
            lease,
            Duration::from_secs(settings.stall_s.max(1)),
        )),
        wind_down: wind_down.clone(),
        evaluated: AtomicU64::new(0),
        written: AtomicU64::new(0),
        fault_stop_in_copy: settings.fault_stop_in_copy,
        fault_stop_after_write: settings.fault_stop_after_write,
    });
    let pool = Arc::new(pool::Pool::new(
        &env.engine,
        p.schedule.clone(),
        settings.worker_count(),
    ));
    let writers = match job.store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => settings.writers.max(1),
    };
    let _renewer = AbortOnDrop(tokio::spawn(job.clone().renew_leases()));

    let written = job
        .clone()
        .claims()
        .map(|claim| tokio::spawn(job.clone().load(claim)))
        .buffered(settings.prefetch.max(1))
        .map(|loaded| {
            job.clone()
                .evaluate(pool.clone(), loaded.expect("a shard's load panicked"))
        })
        .buffered(2)
        .map(|write| tokio::spawn(job.clone().write(write)))
        .buffer_unordered(writers);
    let mut written = std::pin::pin!(written);

    let mut joined = Joined::default();
    while let Some(r) = written.next().await {
        joined.coordination_seconds = job.spent.seconds();
        match r.expect("a shard's write panicked")? {
            Some(c) => {
                joined.counts.add(&c);
                joined.shards += 1;
                if let Err(e) = env.services.coord.add_progress(run.id, &c).await {
                    tracing::debug!(error = %e, "live progress not recorded");
                }
            }
            None => joined.writes_refused += 1,
        }
        on_progress(&Progress {
            shards: run.shard_count as u64,
            shards_done: done_before + joined.shards,
            counts: joined.counts,
            elapsed: started.elapsed(),
        });
    }
    joined.coordination_seconds = job.spent.seconds();
    joined.claims = job.spent.1.load(Ordering::Relaxed);
    Ok(joined)
}

impl Job {
    /// Beside the pipeline: renews the leases of the claims this process holds, every third of
    /// the lease, until dropped.
    async fn renew_leases(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            let held: Vec<(i32, i64)> = self
                .held
                .lock()
                .expect("the leases are not poisoned")
                .iter()
                .map(|(s, t)| (*s, *t))
                .collect();
            for (shard, token) in held {
                let t = Instant::now();
                let renewed = self
                    .store
                    .renew_lease(self.run_id, shard, token, self.lease)
                    .await;
                self.spent.add(t);
                match renewed {
                    Ok(true) => {}
                    // (A shard this process has just written still renews as its own.)
                    Ok(false) => tracing::warn!(
                        run = self.run_id,
                        shard,
                        "lost the claim of a shard (its lease lapsed and another worker took \
                         it); its write will be refused"
                    ),
                    Err(e) => {
                        tracing::warn!(run = self.run_id, shard, error = %e, "renewing a lease failed")
                    }
                }
            }
        }
    }

    /// Stage 1: the run's shards, claimed one at a time as the pipeline pulls them, until
    /// every shard is done (or the run was cancelled, or this process winds down). While
    /// nothing is claimable (the last shards are held by others, whose leases may lapse) it
    /// polls, and looks for stalled writers ([`check_stall`]).
    fn claims(self: Arc<Self>) -> impl Stream<Item = Result<Claim, StoreError>> + Send {
        futures::stream::unfold(self, |job| async move {
            let next = job.next_claim().await.transpose()?;
            Some((next, job))
        })
    }

    /// The next claim; `Ok(None)` when there is nothing more to claim.
    async fn next_claim(self: &Arc<Self>) -> Result<Option<Claim>, StoreError> {
        let (store, run_id, budget) = (&self.store, self.run_id, self.budget);
        loop {
            // Winding down: no new claim; the shards in hand go on to their writes.
            if self.wind_down.is_cancelled() {
                return Ok(None);
            }
            // A task of its own: the pipeline stops pulling this stream while it is full, and
            // a claim suspended half-way would hold SQLite's write lock against the writer
            // that has to finish first.
            let claim = {
                let job = self.clone();
                tokio::spawn(async move {
                    let _counted = Counted(&job.spent, Instant::now());
                    retry("claiming a shard", job.budget, || {
                        job.store.claim_shard(job.run_id, &job.worker, job.lease)
                    })
                    .await
                })
                .await
                .expect("a claim panicked")?
            };
            if let Some(c) = claim {
                self.held
                    .lock()
                    .expect("the leases are not poisoned")
                    .insert(c.shard.shard_no, c.token);
                return Ok(Some(c));
            }
            let t = retry("reading the run's shards", budget, || {
                store.run_totals(run_id, 0)
            })
            .await?;
            if t.shards_done >= t.shard_count {
                return Ok(None);
            }
            // A cancelled run (ended while shards were pending) has nothing left to claim: its
            // shards stay as they are.
            if let Ok(r) = store.run(run_id).await
                && r.state != "running"
            {
                return Ok(None);
            }
            check_stall(store, run_id, &self.stall, t.shards_done).await?;
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wind_down.cancelled() => return Ok(None),
            }
        }
    }

    /// Stage 2 (a task of its own, on the async runtime's threads: decoding a shard's rows is
    /// real work, and the future that drives the pipeline runs on one thread): a claimed
    /// shard's data.
    async fn load(self: Arc<Self>, claim: Result<Claim, StoreError>) -> Result<Loaded, StoreError> {
        let claim = claim?;
        let (data, cached) = load(
            &self.store,
            &self.cache,
            &self.ctx,
            &claim.shard,
            self.budget,
        )
        .await?;
        Ok((claim, data, cached))
    }

    /// Stage 3: a loaded shard's bills, on the CPU pool; a plugin the purity check caught is
    /// quarantined before the shard's bills are written (the caught call is not among them: it
    /// was billed again alone).
    async fn evaluate(
        self: Arc<Self>,
        pool: Arc<pool::Pool>,
        loaded: Result<Loaded, StoreError>,
    ) -> Result<ShardWrite, StoreError> {
        let (claim, data, cached) = loaded?;
        let out = compute(
            self.store.clone(),
            &pool,
            self.ctx.clone(),
            &claim.shard,
            data,
            cached,
            self.budget,
        )
        .await?;
        if let Some(mut q) = out.caught.clone() {
            q.run_id = Some(self.run_id);
            retry("quarantining a plugin", self.budget, || {
                self.store.quarantine_plugin(self.company_id, &q)
            })
            .await?;
        }
        Ok(ShardWrite {
            run_id: self.run_id,
            shard_no: claim.shard.shard_no,
            token: claim.token,
            lease: self.lease,
            company_id: self.company_id,
            date: self.ctx.date,
            chain_version_id: self.ctx.chain_version_id,
            rows: out.rows,
            parked: out.parked,
            counts: out.counts,
            totals: out.totals,
            stop_in_copy: self.evaluated.fetch_add(1, Ordering::Relaxed) + 1
                == self.fault_stop_in_copy,
        })
    }

    /// Stage 4 (a task of its own): a shard's bills written, fenced by its claim's token.
    /// `Some(counts)` when written (or found written by this token's own earlier commit, whose
    /// answer was lost), `None` when the token check refused the write (the claim had lapsed
    /// and another worker took the shard).
    async fn write(
        self: Arc<Self>,
        w: Result<ShardWrite, StoreError>,
    ) -> Result<Option<ShardCounts>, StoreError> {
        let w = w?;
        let r = retry("writing a shard", self.budget, || {
            self.store.write_shard(&w)
        })
        .await;
        self.held
            .lock()
            .expect("the leases are not poisoned")
            .remove(&w.shard_no);
        if r.is_ok()
            && self.written.fetch_add(1, Ordering::Relaxed) + 1 == self.fault_stop_after_write
        {
            crate::fault::stop_this_process_once("after writing a shard");
        }
        match r {
            Ok(()) => Ok(Some(w.counts)),
            // The COMMIT went through but its answer was lost: the retry finds it.
            Err(StoreError::ClaimLost {
                done_with_this_token: true,
                ..
            }) => Ok(Some(w.counts)),
            Err(StoreError::ClaimLost { shard_no, why, .. }) => {
                tracing::warn!(run = self.run_id, shard = shard_no, %why, "write refused: the claim was lost");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// What a process knows, while it can claim nothing, about a run's progress and its stalled
/// writers.
struct Stall {
    lease: Duration,
    /// `run.stall_s`.
    give_up: Duration,
    /// Shards done when last seen, and since when.
    done: u64,
    moved: Instant,
    /// When stalled writers were last looked for.
    looked: Option<Instant>,
}

impl Stall {
    fn new(lease: Duration, give_up: Duration) -> Stall {
        Stall {
            lease,
            give_up,
            done: 0,
            moved: Instant::now(),
            looked: None,
        }
    }
}

/// While nothing is claimable: once a lease, ends the database sessions of writers that have
/// held a shard's row two leases past its lapsed lease (see [`Store::end_stalled_writers`]);
/// and fails when the run has not moved for `run.stall_s` while such shards remain, naming
/// them, rather than polling for ever.
async fn check_stall(
    store: &Arc<dyn Store>,
    run_id: i64,
    stall: &Mutex<Stall>,
    done: u64,
) -> Result<(), StoreError> {
    let lease = {
        let mut s = stall.lock().expect("the stall is not poisoned");
        if done != s.done {
            s.done = done;
            s.moved = Instant::now();
        }
        if s.looked.is_some_and(|t| t.elapsed() < s.lease) {
            return Ok(());
        }
        s.looked = Some(Instant::now());
        s.lease
    };
    let stalled = match store.end_stalled_writers(run_id, lease * 2).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(run = run_id, error = %e, "looking for stalled writers failed");
            return Ok(());
        }
    };
    for s in &stalled {
        tracing::warn!(
            run = run_id,
            shard = s.shard_no,
            claimed_by = s.claimed_by.as_deref().unwrap_or("-"),
            lapsed_ms = s.lapsed_ms,
            session = s.session,
            ended = s.ended,
            "a shard stays locked past its lease: its writer stalled inside its transaction"
        );
    }
    let s = stall.lock().expect("the stall is not poisoned");
    if stalled.is_empty() || s.moved.elapsed() < s.give_up {
        return Ok(());
    }
    let list: Vec<String> = stalled
        .iter()
        .map(|x| {
            format!(
                "shard {} (claimed by {}, lease lapsed {} s ago{})",
                x.shard_no,
                x.claimed_by.as_deref().unwrap_or("nobody"),
                x.lapsed_ms / 1000,
                match x.session {
                    Some(pid) => format!(", writer session {pid}"),
                    None => ", no writer session found".to_string(),
                }
            )
        })
        .collect();
    Err(StoreError::Stalled(format!(
        "run {run_id} has not moved for {} s (run.stall_s): {} stay(s) locked by a writer that \
         stalled inside its transaction and could not be ended; end that session (SELECT \
         pg_terminate_backend(PID)) or the process that holds it, then start the run again to \
         resume it",
        s.give_up.as_secs(),
        list.join("; ")
    )))
}

/// Adds the time since its start to a [`Spent`] when dropped.
struct Counted<'a>(&'a Spent, Instant);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.add(self.1);
        self.0.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Loads a shard: the day's data from the database; the customers from the cache when the run
/// reads shards through it (their versions as of the date; `Some`), else their digests from the
/// database too.
async fn load(
    store: &Arc<dyn Store>,
    cache: &Arc<crate::cache::Cached>,
    ctx: &RunContext,
    shard: &ShardRange,
    budget: Duration,
) -> Result<(ShardData, Option<Arc<Vec<CustomerState>>>), StoreError> {
    let (cid, date) = (ctx.company_id, ctx.date);
    if !ctx.use_cache {
        let data = retry("loading a shard", budget, || {
            store.load_shard(cid, date, shard, true)
        })
        .await?;
        return Ok((data, None));
    }
    let key = customers_key(
        cid,
        ctx.customers_version,
        &shard.first,
        shard.end.as_deref(),
    );
    let loader = {
        let (store, shard) = (store.clone(), shard.clone());
        move || async move {
            let v = store.load_customer_versions(cid, &shard).await?;
            Ok::<_, CacheLoadError>(pack_customers(&v))
        }
    };
    let packed = match cache.get_or_load(&key, loader).await {
        Ok(p) => p,
        Err(e) => {
            return Err(StoreError::Corrupt(format!(
                "loading a shard's customers: {e}"
            )));
        }
    };
    let versions = match unpack_customers(&packed) {
        Some(v) => v,
        None => {
            retry("loading a shard's customers", budget, || {
                store.load_customer_versions(cid, shard)
            })
            .await?
        }
    };
    let customers = as_of(&versions, date);
    let mut data = retry("loading a shard", budget, || {
        store.load_shard(cid, date, shard, false)
    })
    .await?;
    data.customers = customers
        .iter()
        .map(|c| CustomerKey {
            customer_id: c.customer_id.clone(),
            digest: c.digest(),
        })
        .collect();
    Ok((data, Some(Arc::new(customers))))
}

/// A loaded shard's bills: the first pass finds the customers whose inputs changed, their data
/// is read (from the cached shard, or the database: all of them on a date's first run, none on
/// an unchanged re-run), and the second pass computes their bills.
async fn compute(
    store: Arc<dyn Store>,
    pool: &pool::Pool,
    ctx: Arc<RunContext>,
    shard: &ShardRange,
    data: ShardData,
    cached: Option<Arc<Vec<CustomerState>>>,
    budget: Duration,
) -> Result<shard::PartOutput, StoreError> {
    let data = Arc::new(data);
    let n = data.customers.len();
    let plans = {
        let (ctx, data) = (ctx.clone(), data.clone());
        pool.map_parts(n, move |_, r| shard::plan_part(&ctx, &data, r))
            .await
    };
    let mut out = shard::PartOutput::default();
    let mut changed = Vec::new();
    for (counts, c) in plans {
        out.counts.add(&counts);
        changed.extend(c);
    }
    if changed.is_empty() {
        return Ok(out);
    }
    let customers = match cached {
        Some(c) => c,
        None => {
            let ids: Option<Vec<String>> = (changed.len() < n)
                .then(|| changed.iter().map(|c| c.customer_id.clone()).collect());
            let (cid, date, shard) = (ctx.company_id, ctx.date, shard.clone());
            let loaded = tokio::spawn(async move {
                retry("loading customers", budget, || {
                    store.load_customers(cid, date, &shard, ids.as_deref())
                })
                .await
            })
            .await
            .expect("a shard's load panicked")?;
            Arc::new(loaded)
        }
    };
    let changed = Arc::new(changed);
    let parts = {
        let (ctx, changed) = (ctx.clone(), changed.clone());
        pool.map_parts(changed.len(), move |w, r| {
            shard::evaluate_part(w, &ctx, &customers, &changed[r])
        })
        .await
    };
    for p in parts {
        out.merge(p);
    }
    Ok(out)
}
