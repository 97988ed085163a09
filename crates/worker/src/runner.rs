//! The worker loop: receive messages while there is room, run each as a job, and settle its
//! message by the job's outcome (delete, release for retry, or dead-letter); beside it, the
//! sweeper deletes what switched photos no longer need.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recast_catalog::{Catalog, CatalogError, JobAttempt, Run};
use recast_core::{JobMessage, RunId, Tally};
use recast_queue::{JobQueue, ReceivedMessage, MAX_BATCH};
use recast_store::ObjectStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use crate::error::retry_backoff;
use crate::heartbeat::with_heartbeat;
use crate::job::JobContext;
use crate::settle::Settler;
use crate::sweep::{SweepBuffer, SweepContext};
use crate::{now_ms, redact_id, CountingStore, CpuPool, JobError, Progress};

/// How long to wait before receiving again after the queue answered OverLimit or failed.
const QUEUE_TROUBLE_PAUSE: Duration = Duration::from_secs(1);
/// How often the sweeper looks for photos it was not told of (switched by workers that died).
const SWEEP_POLL: Duration = Duration::from_secs(30);
/// How long an idle worker waits for other workers' sweep claims to end before looking again.
const BACKLOG_PAUSE: Duration = Duration::from_secs(1);
/// Longest wait of a finished job's message for others to fill a delete batch.
const SETTLE_LINGER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in the catalog's attempt records.
    pub name: String,
    /// Jobs (couples) in hand at once.
    pub concurrency: usize,
    /// Photos of one job converted at once.
    pub photo_parallelism: usize,
    /// Photos per progress record.
    pub record_batch: usize,
    /// Visibility timeout of received messages; a running job extends it every half of it.
    pub visibility: Duration,
    /// Long-poll wait of one receive.
    pub poll_wait: Duration,
    /// Stop once the queue has nothing visible or in flight and no job is running here.
    pub exit_when_idle: bool,
    pub max_pixels: u64,
    /// How long a sweep's claim on photos lasts; a dead worker's claims pass on after it.
    pub sweep_lease: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: format!("worker-{}", std::process::id()),
            concurrency: 16,
            photo_parallelism: 4,
            record_batch: 32,
            visibility: Duration::from_secs(120),
            poll_wait: Duration::from_secs(20),
            exit_when_idle: false,
            max_pixels: recast_codec::DEFAULT_MAX_PIXELS,
            sweep_lease: Duration::from_secs(300),
        }
    }
}

/// What a worker did, for the operator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSummary {
    pub jobs_completed: u64,
    pub jobs_retried: u64,
    pub jobs_dead_lettered: u64,
}

#[derive(Debug, Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: WorkerConfig,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    cpu: CpuPool,
    progress: Arc<Progress>,
    /// Runs by name: their settings are frozen, so a worker reads each once.
    runs: Mutex<HashMap<String, Run>>,
    /// Requests that serve no single job (receives, empty ones included, message deletes, sweeps),
    /// attributed to the next job that records its attempt.
    overhead: Arc<Tally>,
    summary: Mutex<WorkerSummary>,
    /// Photos claimed by this worker's sweeper, by run; one round at a time.
    sweep: tokio::sync::Mutex<HashMap<RunId, SweepBuffer>>,
    /// Thumbnail keys switched here since the last sweep.
    unswept_keys: AtomicU64,
    sweep_wake: tokio::sync::Notify,
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        queue: Arc<dyn JobQueue>,
        cpu: CpuPool,
        progress: Arc<Progress>,
    ) -> Worker {
        Worker {
            inner: Arc::new(Inner {
                config,
                catalog,
                store,
                queue,
                cpu,
                progress,
                runs: Mutex::new(HashMap::new()),
                overhead: Arc::new(Tally::default()),
                summary: Mutex::new(WorkerSummary::default()),
                sweep: tokio::sync::Mutex::new(HashMap::new()),
                unswept_keys: AtomicU64::new(0),
                sweep_wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Runs until `stop` is cancelled (then finishes the jobs in hand) or, with `exit_when_idle`,
    /// until the queue is drained and every photo it recorded is swept.
    pub async fn run(&self, stop: CancellationToken) -> WorkerSummary {
        let me = &self.inner;
        let concurrency = me.config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let jobs = TaskTracker::new();
        let linger = SETTLE_LINGER.min(me.config.visibility / 4);
        let settler = Arc::new(Settler::start(
            me.queue.clone(),
            me.overhead.clone(),
            linger,
        ));
        let sweeper = tokio::spawn({
            let worker = self.clone();
            let stop = stop.clone();
            async move { worker.sweep_loop(stop).await }
        });
        info!(worker = %me.config.name, concurrency, "worker started");
        loop {
            // Receive a full batch when there is room for one (or anything when nothing runs), so
            // that one receive serves many couples.
            let want = if jobs.is_empty() {
                1
            } else {
                MAX_BATCH.min(concurrency)
            };
            let Some(permits) = take_slots(&slots, want, &stop).await else {
                break;
            };
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                r = me.queue.receive(permits.len(), me.config.visibility, me.config.poll_wait) => r,
            };
            me.overhead.sqs(1);
            let messages = match received {
                Ok(m) => m,
                Err(e) if e.is_over_limit() => {
                    warn!(error = %e, "queue is at its in-flight cap; waiting");
                    pause(&stop, QUEUE_TROUBLE_PAUSE).await;
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "failed to receive; retrying");
                    pause(&stop, QUEUE_TROUBLE_PAUSE).await;
                    continue;
                }
            };
            if messages.is_empty() {
                drop(permits);
                if jobs.is_empty() {
                    settler.flush();
                }
                if me.config.exit_when_idle && jobs.is_empty() && self.queue_drained().await {
                    if self.final_sweep().await {
                        info!("queue drained and every photo swept; exiting");
                        break;
                    }
                    pause(&stop, BACKLOG_PAUSE).await;
                }
                continue;
            }
            for (message, permit) in messages.into_iter().zip(permits) {
                let worker = self.clone();
                let settler = settler.clone();
                jobs.spawn(async move {
                    worker.handle(message, &settler).await;
                    drop(permit);
                });
            }
        }
        jobs.close();
        jobs.wait().await;
        sweeper.abort();
        match Arc::try_unwrap(settler) {
            Ok(s) => s.close().await,
            Err(_) => warn!("settler still shared at exit; pending deletes are left to redelivery"),
        }
        self.flush_overhead().await;
        let summary = *me.summary.lock().expect("summary lock");
        info!(?summary, "worker stopped");
        summary
    }

    /// Sweeps when jobs have switched a request's worth of keys, and now and then regardless.
    async fn sweep_loop(&self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.inner.sweep_wake.notified() => {}
                _ = tokio::time::sleep(SWEEP_POLL) => {}
            }
            self.inner.unswept_keys.store(0, Ordering::Relaxed);
            self.sweep_all(false).await;
        }
    }

    /// One sweep round over every run this worker has seen.
    async fn sweep_all(&self, final_round: bool) {
        let me = &self.inner;
        let runs: Vec<Run> = me
            .runs
            .lock()
            .expect("runs lock")
            .values()
            .cloned()
            .collect();
        let store = CountingStore::new(me.store.clone(), me.overhead.clone());
        let ctx = SweepContext {
            catalog: me.catalog.as_ref(),
            store: &store,
            tally: &me.overhead,
            progress: &me.progress,
            owner: &me.config.name,
            lease: me.config.sweep_lease,
        };
        let mut buffers = me.sweep.lock().await;
        for run in runs {
            let buffer = buffers.entry(run.id).or_default();
            if let Err(e) = ctx.round(&run, buffer, final_round).await {
                warn!(run = %run.name, error = %e, "sweep failed; it will be retried");
            }
        }
    }

    /// Sweeps everything left; true when no photo of the runs seen here has anything left to
    /// delete (photos still claimed by other workers count as left).
    async fn final_sweep(&self) -> bool {
        self.sweep_all(true).await;
        let runs: Vec<Run> = self
            .inner
            .runs
            .lock()
            .expect("runs lock")
            .values()
            .cloned()
            .collect();
        for run in runs {
            match self
                .inner
                .catalog
                .sweep_backlog(&run, &self.inner.overhead)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    info!(run = %run.name, photos = n, "waiting for photos still claimed by other sweepers");
                    return false;
                }
                Err(e) => {
                    warn!(error = %e, "failed to read the sweep backlog");
                    return false;
                }
            }
        }
        true
    }

    async fn queue_drained(&self) -> bool {
        self.inner.overhead.sqs(1);
        match self.inner.queue.stats().await {
            Ok(s) => s.is_drained(),
            Err(e) => {
                warn!(error = %e, "failed to read queue stats");
                false
            }
        }
    }

    async fn run_of(&self, name: &str, tally: &Tally) -> Result<Run, JobError> {
        if let Some(run) = self.inner.runs.lock().expect("runs lock").get(name) {
            return Ok(run.clone());
        }
        tally.db(1);
        let run = self
            .inner
            .catalog
            .run(Some(name))
            .await
            .map_err(|e| match e {
                CatalogError::NoSuchRun(_) => JobError::abort(e),
                e if e.is_transient() => JobError::retry(e),
                e => JobError::abort(e),
            })?;
        self.inner
            .runs
            .lock()
            .expect("runs lock")
            .insert(name.to_owned(), run.clone());
        Ok(run)
    }

    async fn handle(&self, message: ReceivedMessage, settler: &Settler) {
        let me = &self.inner;
        let job = match JobMessage::parse(&message.body) {
            Ok(job) => job,
            Err(e) => {
                self.dead_letter(&message, &e.to_string()).await;
                return;
            }
        };
        let span = info_span!("job", run = %job.run, couple = %redact_id(job.couple.0), attempt = message.receive_count);
        async {
            let started = now_ms();
            let tally = Arc::new(Tally::default());
            let store = CountingStore::new(me.store.clone(), tally.clone());
            let work = async {
                let run = self.run_of(&job.run, &tally).await?;
                let ctx = JobContext {
                    catalog: me.catalog.as_ref(),
                    store: &store,
                    cpu: &me.cpu,
                    progress: &me.progress,
                    tally: &tally,
                    overhead: &me.overhead,
                    worker: &me.config.name,
                    started_at_ms: started,
                    photo_parallelism: me.config.photo_parallelism,
                    record_batch: me.config.record_batch,
                    max_pixels: me.config.max_pixels,
                };
                ctx.migrate_couple(
                    &run,
                    job.couple,
                    job.photos.clone(),
                    message.receive_count <= 1,
                )
                .await
            };
            let result = with_heartbeat(
                work,
                me.queue.as_ref(),
                &message.receipt,
                me.config.visibility,
                &tally,
            )
            .await;
            match result {
                Ok(report) => {
                    settler.settle(message.receipt.clone());
                    Progress::add(&me.progress.jobs_completed, 1);
                    me.summary.lock().expect("summary lock").jobs_completed += 1;
                    info!(photos = report.photos, "job complete");
                    let unswept = me
                        .unswept_keys
                        .fetch_add(report.keys_to_sweep, Ordering::Relaxed)
                        + report.keys_to_sweep;
                    if unswept >= recast_store::MAX_DELETE_BATCH as u64 {
                        me.sweep_wake.notify_one();
                    }
                }
                Err(JobError::Retry { reason }) => {
                    // What this attempt did not get to record is counted with a later one.
                    me.overhead.absorb(tally.take());
                    self.release(&message, &reason, &me.overhead).await;
                }
                Err(JobError::Abort { reason }) => self.dead_letter(&message, &reason).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn release(&self, message: &ReceivedMessage, reason: &str, tally: &Tally) {
        let me = &self.inner;
        let backoff = retry_backoff(message.receive_count);
        warn!(reason, retry_in = ?backoff, "job released for a retry");
        tally.sqs(1);
        if let Err(e) = me.queue.change_visibility(&message.receipt, backoff).await {
            warn!(error = %e, "failed to set the retry backoff; the visibility timeout will release the job");
        }
        Progress::add(&me.progress.jobs_retried, 1);
        me.summary.lock().expect("summary lock").jobs_retried += 1;
    }

    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) {
        let me = &self.inner;
        warn!(message_id = %message.id, reason, "message can never be processed; moving it to the dead-letter queue");
        me.overhead.sqs(1);
        if let Err(e) = me.queue.dead_letter(message, reason).await {
            warn!(error = %e, "failed to dead-letter; the queue's redrive will do it after its maximum receives");
        }
        Progress::add(&me.progress.jobs_dead_lettered, 1);
        me.summary.lock().expect("summary lock").jobs_dead_lettered += 1;
    }

    /// Records the requests no job has taken yet, so that `status` counts every request.
    async fn flush_overhead(&self) {
        let me = &self.inner;
        let run = me
            .runs
            .lock()
            .expect("runs lock")
            .values()
            .max_by_key(|r| r.id)
            .cloned();
        let Some(run) = run else {
            return;
        };
        let requests = me.overhead.take();
        if requests == Default::default() {
            return;
        }
        let now = now_ms();
        let attempt = JobAttempt {
            run: run.id,
            couple: None,
            worker: me.config.name.clone(),
            outcome: "overhead".to_owned(),
            photos: 0,
            requests,
            started_at_ms: now,
            finished_at_ms: now,
        };
        if let Err(e) = me.catalog.record_attempt(&attempt, &Tally::default()).await {
            warn!(error = %e, "failed to record the worker's remaining request counts");
        }
    }
}

/// Waits until `want` job slots are free (or `stop`), then takes every free one up to a receive
/// batch, one permit per message.
async fn take_slots(
    slots: &Arc<Semaphore>,
    want: usize,
    stop: &CancellationToken,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let mut first = tokio::select! {
        _ = stop.cancelled() => return None,
        p = slots.clone().acquire_many_owned(want as u32) => p.expect("slots are never closed"),
    };
    let mut permits = Vec::with_capacity(MAX_BATCH);
    while first.num_permits() > 1 {
        permits.push(first.split(1).expect("more than one permit is held"));
    }
    permits.push(first);
    while permits.len() < MAX_BATCH {
        match slots.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
    Some(permits)
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
