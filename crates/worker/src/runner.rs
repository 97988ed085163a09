//! The worker loop: receive messages while there is room, run each as a job, and settle its
//! message by the job's outcome (delete, release for retry, or dead-letter).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recast_catalog::{Catalog, CatalogError, JobAttempt, Run};
use recast_core::{JobMessage, Tally};
use recast_queue::{JobQueue, ReceivedMessage, MAX_BATCH};
use recast_store::ObjectStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use crate::error::retry_backoff;
use crate::heartbeat::with_heartbeat;
use crate::job::JobContext;
use crate::{redact_id, CountingStore, CpuPool, JobError, Progress};

/// How long to wait before receiving again after the queue answered OverLimit or failed.
const QUEUE_TROUBLE_PAUSE: Duration = Duration::from_secs(1);

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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: format!("worker-{}", std::process::id()),
            concurrency: 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            photo_parallelism: 4,
            record_batch: 32,
            visibility: Duration::from_secs(120),
            poll_wait: Duration::from_secs(20),
            exit_when_idle: false,
            max_pixels: recast_codec::DEFAULT_MAX_PIXELS,
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
    /// Requests that serve no single job (receives, empty ones included), attributed to the next
    /// job that records its attempt.
    overhead: Tally,
    summary: Mutex<WorkerSummary>,
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
                overhead: Tally::default(),
                summary: Mutex::new(WorkerSummary::default()),
            }),
        }
    }

    /// Runs until `stop` is cancelled (then finishes the jobs in hand) or, with `exit_when_idle`,
    /// until the queue is drained.
    pub async fn run(&self, stop: CancellationToken) -> WorkerSummary {
        let me = &self.inner;
        let slots = Arc::new(Semaphore::new(me.config.concurrency.max(1)));
        let jobs = TaskTracker::new();
        info!(worker = %me.config.name, concurrency = me.config.concurrency, "worker started");
        loop {
            let Some(permits) = take_slots(&slots, &stop).await else {
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
                if me.config.exit_when_idle && jobs.is_empty() && self.queue_drained().await {
                    info!("queue drained; exiting");
                    break;
                }
                continue;
            }
            for (message, permit) in messages.into_iter().zip(permits) {
                let worker = self.clone();
                jobs.spawn(async move {
                    worker.handle(message).await;
                    drop(permit);
                });
            }
        }
        jobs.close();
        jobs.wait().await;
        self.flush_overhead().await;
        let summary = *me.summary.lock().expect("summary lock");
        info!(?summary, "worker stopped");
        summary
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

    async fn handle(&self, message: ReceivedMessage) {
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
            let started = recast_catalog_now();
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
                    photo_parallelism: me.config.photo_parallelism,
                    record_batch: me.config.record_batch,
                    max_pixels: me.config.max_pixels,
                };
                let report = ctx
                    .migrate_couple(&run, job.couple, job.photos.clone(), message.receive_count <= 1)
                    .await?;
                Ok::<_, JobError>((run, report))
            };
            let result = with_heartbeat(work, me.queue.as_ref(), &message.receipt, me.config.visibility, &tally).await;
            match result {
                Ok((run, report)) if report.complete => {
                    tally.sqs(1); // the delete below
                    self.record_attempt(&run, &job, "complete", report.photos, &tally, started).await;
                    match me.queue.delete_batch(std::slice::from_ref(&message.receipt)).await {
                        Ok(r) if r.iter().all(Result::is_ok) => {}
                        Ok(r) => warn!(outcome = ?r, "message was not deleted; a redelivery will find the job done"),
                        Err(e) => warn!(error = %e, "message was not deleted; a redelivery will find the job done"),
                    }
                    Progress::add(&me.progress.jobs_completed, 1);
                    me.summary.lock().expect("summary lock").jobs_completed += 1;
                    info!(photos = report.photos, "job complete");
                }
                Ok((run, report)) => {
                    self.record_attempt(&run, &job, "retry", report.photos, &tally, started).await;
                    self.release(&message, "some photos are not finished", &tally).await;
                }
                Err(JobError::Retry { reason }) => {
                    let run = me.runs.lock().expect("runs lock").get(&job.run).cloned();
                    if let Some(run) = run {
                        self.record_attempt(&run, &job, "retry", 0, &tally, started).await;
                    }
                    self.release(&message, &reason, &tally).await;
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

    async fn record_attempt(
        &self,
        run: &Run,
        job: &JobMessage,
        outcome: &str,
        photos: u32,
        tally: &Tally,
        started: i64,
    ) {
        let me = &self.inner;
        let requests = tally.snapshot() + me.overhead.take();
        let attempt = JobAttempt {
            run: run.id,
            couple: Some(job.couple),
            worker: me.config.name.clone(),
            outcome: outcome.to_owned(),
            photos,
            requests,
            started_at_ms: started,
            finished_at_ms: recast_catalog_now(),
        };
        if let Err(e) = me.catalog.record_attempt(&attempt, tally).await {
            warn!(error = %e, "failed to record the job's attempt; its request counts are lost");
        }
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
        let now = recast_catalog_now();
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

fn recast_catalog_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Waits for at least one free job slot, then takes every free one up to a receive batch.
async fn take_slots(
    slots: &Arc<Semaphore>,
    stop: &CancellationToken,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = tokio::select! {
        _ = stop.cancelled() => return None,
        p = slots.clone().acquire_owned() => p.expect("slots are never closed"),
    };
    let mut permits = vec![first];
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
