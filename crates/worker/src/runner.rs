//! The worker loop: receive messages while there is room, run each as a job, and settle its
//! message by the job's outcome (delete, release for retry, or dead-letter); beside it, the
//! sweeper deletes what switched photos no longer need.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recast_catalog::{Catalog, Run};
use recast_core::{CoupleId, JobMessage, JobOutcome, RunId, Tally};
use recast_queue::{JobQueue, ReceivedMessage, MAX_BATCH};
use recast_store::ObjectStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use crate::budgeted::BudgetedStore;
use crate::events::Event;
use crate::fleet::{Fleet, FleetSettings};
use crate::heartbeat::{with_heartbeat, LeaseRenewal};
use crate::job::{JobContext, JobStop};
use crate::settle::Settler;
use crate::sweep::SweepBuffer;
use crate::{now_ms, redact_id, CountingStore, CpuPool, JobError, Progress};

mod lease;
mod messages;

use messages::Disposition;
mod tail;

/// How long to wait before receiving again after the queue answered OverLimit.
const QUEUE_TROUBLE_PAUSE: Duration = Duration::from_secs(1);
/// Longest long poll of a worker that exits when idle: it must notice the queue drained soon
/// after its last job (within two seconds of its last record), not after a 20 s poll.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Longest wait of a finished job's message for others to fill a delete batch.
const SETTLE_LINGER: Duration = Duration::from_secs(5);

/// Default of [`WorkerConfig::sweep_max_wait`].
pub const DEFAULT_SWEEP_MAX_WAIT: Duration = Duration::from_secs(30);

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
    /// Longest a switched photo's keys wait for a DeleteObjects request to fill: a partial
    /// request goes out once its keys have waited this long.
    pub sweep_max_wait: Duration,
    /// The fleet the worker joins: registry, budgets, database latency target.
    pub fleet: FleetSettings,
    /// A job running longer is stopped: what it did is recorded and its message released.
    pub max_job_duration: Duration,
    /// After a stop (SIGTERM, spot notice), the time to finish or release the jobs in hand and
    /// leave; jobs still running at four fifths of it are stopped and released.
    pub drain_deadline: Duration,
}

/// Couples in hand at once by default (the CPU pool, one thread per core, bounds the
/// conversions running at once).
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Photos of one couple converted at once by default.
pub const DEFAULT_PHOTO_PARALLELISM: usize = 4;
/// Photos per progress record (one database statement each) by default.
pub const DEFAULT_RECORD_BATCH: usize = 32;

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: format!("worker-{}", std::process::id()),
            concurrency: DEFAULT_CONCURRENCY,
            photo_parallelism: DEFAULT_PHOTO_PARALLELISM,
            record_batch: DEFAULT_RECORD_BATCH,
            visibility: Duration::from_secs(120),
            poll_wait: Duration::from_secs(20),
            exit_when_idle: false,
            max_pixels: recast_codec::DEFAULT_MAX_PIXELS,
            sweep_lease: Duration::from_secs(300),
            sweep_max_wait: DEFAULT_SWEEP_MAX_WAIT,
            fleet: FleetSettings::default(),
            max_job_duration: Duration::from_secs(30 * 60),
            drain_deadline: Duration::from_secs(90),
        }
    }
}

/// What a worker did, for the operator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSummary {
    pub jobs_completed: u64,
    pub jobs_retried: u64,
    pub jobs_dead_lettered: u64,
    /// Jobs stopped by a drain or their maximum duration, released at once for another worker.
    pub jobs_released: u64,
    /// Duplicate deliveries of couples another live worker held: kept until its lease ended, or
    /// put back (a duplicate of a couple running in this same worker, or one held at a drain).
    pub jobs_deferred: u64,
}

#[derive(Debug, Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: WorkerConfig,
    fleet: Arc<Fleet>,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    cpu: CpuPool,
    /// Runs by name: their settings are frozen, so a worker reads each once.
    runs: Mutex<HashMap<String, Run>>,
    /// Requests that serve no single job (receives, empty ones included, message deletes, sweeps),
    /// attributed to the next job that records its attempt.
    overhead: Arc<Tally>,
    /// Photos claimed by this worker's sweeper, by run; one round at a time.
    sweep: tokio::sync::Mutex<HashMap<RunId, SweepBuffer>>,
    /// Thumbnail keys switched here since the last sweep.
    unswept_keys: AtomicU64,
    sweep_wake: tokio::sync::Notify,
    /// Couples with a job running here: a duplicate delivered to this same worker waits too (the
    /// catalog lease is per worker).
    in_hand: Mutex<std::collections::HashSet<(RunId, CoupleId)>>,
    /// Cancelled when a job meets an error no job can get past (see [`JobError::Fatal`]).
    halt: CancellationToken,
    /// Why the worker halted.
    fatal: Mutex<Option<String>>,
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
        let fleet = Arc::new(
            Fleet::new(
                config.name.clone(),
                config.fleet.clone(),
                catalog.clone(),
                config.concurrency,
            )
            .reporting_to(progress),
        );
        let store: Arc<dyn ObjectStore> = Arc::new(BudgetedStore::new(store, fleet.clone()));
        let overhead = Arc::new(Tally::child_of(fleet.totals.clone()));
        Worker {
            inner: Arc::new(Inner {
                config,
                fleet,
                catalog,
                store,
                queue,
                cpu,
                runs: Mutex::new(HashMap::new()),
                overhead,
                sweep: tokio::sync::Mutex::new(HashMap::new()),
                unswept_keys: AtomicU64::new(0),
                sweep_wake: tokio::sync::Notify::new(),
                in_hand: Mutex::new(std::collections::HashSet::new()),
                halt: CancellationToken::new(),
                fatal: Mutex::new(None),
            }),
        }
    }

    /// Runs until `stop` is cancelled (then drains: finishes or releases the jobs in hand within
    /// the drain deadline, and leaves the fleet) or, with `exit_when_idle`, until the queue is
    /// drained and every photo it recorded is swept.
    pub async fn run(&self, stop: CancellationToken) -> WorkerSummary {
        let me = &self.inner;
        // The worker's own stop: the caller's, or a halt on a fatal error.
        let outer = stop;
        let stop = CancellationToken::new();
        tokio::spawn({
            let (stop, halt) = (stop.clone(), me.halt.clone());
            async move {
                tokio::select! {
                    _ = outer.cancelled() => {}
                    _ = halt.cancelled() => {}
                }
                stop.cancel();
            }
        });
        let fleet = me.fleet.clone();
        fleet.register().await;
        // The run it works for is swept even if no job of it ever arrives here.
        if let Err(e) = self.run_of(&me.config.fleet.run_name, &me.overhead).await {
            warn!(run = %me.config.fleet.run_name, error = %e, "failed to read the worker's run; it is swept once a job of it arrives");
        }
        let poll_wait = if me.config.exit_when_idle {
            me.config.poll_wait.min(IDLE_POLL)
        } else {
            me.config.poll_wait
        };
        let fleet_stop = CancellationToken::new();
        let fleet_task = tokio::spawn({
            let fleet = fleet.clone();
            let stop = fleet_stop.clone();
            async move { fleet.run(stop).await }
        });
        let jobs = TaskTracker::new();
        // Cancelled when a drain runs out of time: the jobs still running record and release.
        let jobs_stop = CancellationToken::new();
        let linger = SETTLE_LINGER.min(me.config.visibility / 4);
        let settler = Arc::new(Settler::start(
            me.queue.clone(),
            me.overhead.clone(),
            linger,
            fleet.clone(),
        ));
        let sweeper = tokio::spawn({
            let worker = self.clone();
            let stop = stop.clone();
            async move { worker.sweep_loop(stop).await }
        });
        info!(worker = %me.config.name, run = %me.config.fleet.run_name, concurrency = me.config.concurrency, "worker started");
        self.receive_loop(&settler, &stop, &jobs, &jobs_stop, poll_wait)
            .await;
        let draining = stop.is_cancelled();
        self.wind_down(draining, &jobs, &jobs_stop).await;
        sweeper.abort();
        let _ = sweeper.await;
        self.release_sweeps().await;
        match Arc::try_unwrap(settler) {
            Ok(s) => s.close().await,
            Err(_) => warn!("settler still shared at exit; pending deletes are left to redelivery"),
        }
        self.flush_overhead().await;
        fleet_stop.cancel();
        let _ = fleet_task.await;
        fleet
            .deregister(if draining { "drained" } else { "idle" })
            .await;
        let summary = me.fleet.events().summary();
        info!(?summary, "worker stopped");
        summary
    }

    /// Receives while there is room (free job slots and the fleet's in-flight share) and runs
    /// each message as a job, until `stop`, a halt, or (under `--exit-when-idle`) an empty queue
    /// with every photo swept.
    async fn receive_loop(
        &self,
        settler: &Arc<Settler>,
        stop: &CancellationToken,
        jobs: &TaskTracker,
        jobs_stop: &CancellationToken,
        poll_wait: Duration,
    ) {
        let me = &self.inner;
        let fleet = &me.fleet;
        let mut queue_failures = 0u32;
        // The last receive came back empty (see the wait below).
        let mut seen_empty = false;
        loop {
            // Receive a full batch when there is room for one (or anything when nothing runs), so
            // that one receive serves many couples; never more than the in-flight share.
            let want = if fleet.running() == 0 {
                1
            } else {
                fleet.batch_target()
            };
            if !wait_for_room(fleet, want, settler, stop).await {
                break;
            }
            let n = fleet.room().clamp(1, MAX_BATCH);
            tracing::debug!(
                n,
                held = fleet.held(),
                running = fleet.running(),
                share = fleet.in_flight_share(),
                "receiving"
            );
            // Under --exit-when-idle, once the queue has come back empty the jobs still running
            // are most likely the last: rather than long-poll an empty queue (the end would then
            // be seen up to a whole poll after the last job), wait for them to end (at most
            // IDLE_POLL, so receives stay under one a second) and look with a short poll.
            let wait = if me.config.exit_when_idle && seen_empty && fleet.running() > 0 {
                if !until_jobs_end(fleet, IDLE_POLL, stop).await {
                    break;
                }
                Duration::ZERO
            } else {
                poll_wait
            };
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                r = me.queue.receive(n, me.config.visibility, wait) => r,
            };
            me.overhead.sqs(1);
            let messages = match received {
                Ok(m) => m,
                Err(e) if e.is_over_limit() => {
                    // The queue's in-flight cap: hold fewer messages; no job sees this.
                    fleet.over_limit();
                    warn!(error = %e, share = fleet.in_flight_share(), "queue is at its in-flight cap; holding fewer messages");
                    pause(stop, QUEUE_TROUBLE_PAUSE).await;
                    continue;
                }
                Err(e) if e.is_transient() => {
                    queue_failures += 1;
                    let wait = trouble_backoff(queue_failures);
                    metrics::counter!("recast_transient_errors_total", "service" => "sqs", "op" => "receive").increment(1);
                    warn!(error = %e, retry_in = ?wait, "failed to receive; retrying");
                    pause(stop, wait).await;
                    continue;
                }
                Err(e) => {
                    // The queue is gone or forbidden: no receive will ever succeed.
                    self.halt(format!("failed to receive from the queue: {e}"));
                    break;
                }
            };
            queue_failures = 0;
            fleet.events().record(Event::Request {
                service: "sqs",
                op: "receive",
                result: "ok",
            });
            seen_empty = messages.is_empty();
            if messages.is_empty() {
                if fleet.running() == 0 {
                    settler.flush();
                    if me.config.exit_when_idle && self.idle_and_done(stop).await {
                        info!("queue drained and every photo swept; exiting");
                        break;
                    }
                }
                continue;
            }
            fleet.received(messages.len());
            for message in messages {
                let worker = self.clone();
                let settler = settler.clone();
                let stop = JobStop {
                    token: jobs_stop.child_token(),
                    deadline: std::time::Instant::now() + me.config.max_job_duration,
                };
                fleet.job_started();
                jobs.spawn(async move {
                    worker.handle(message, &settler, &stop).await;
                    worker.inner.fleet.job_ended();
                });
            }
        }
    }

    /// After the last receive: the jobs in hand get four fifths of the drain deadline to end by
    /// themselves; then they are stopped, record what they did and release their messages,
    /// inside the last fifth.
    async fn wind_down(&self, draining: bool, jobs: &TaskTracker, jobs_stop: &CancellationToken) {
        let me = &self.inner;
        let fleet = &me.fleet;
        if draining {
            metrics::counter!("recast_drain_events_total").increment(1);
            info!(jobs = fleet.running(), deadline = ?me.config.drain_deadline, "draining: no more receives; finishing the jobs in hand");
        }
        jobs.close();
        let grace = me.config.drain_deadline.mul_f64(0.8);
        if tokio::time::timeout(grace, jobs.wait()).await.is_err() {
            warn!(
                jobs = fleet.running(),
                "drain deadline near: stopping the jobs in hand and releasing their messages"
            );
            jobs_stop.cancel();
            jobs.wait().await;
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
            .map_err(JobError::catalog)?;
        self.inner
            .runs
            .lock()
            .expect("runs lock")
            .insert(name.to_owned(), run.clone());
        Ok(run)
    }

    async fn handle(&self, message: ReceivedMessage, settler: &Settler, stop: &JobStop) {
        let me = &self.inner;
        let job = match JobMessage::parse(&message.body) {
            Ok(job) => job,
            Err(e) => {
                self.dead_letter(&message, &e.to_string()).await;
                me.fleet
                    .events()
                    .record(Event::JobSettled(JobOutcome::DeadLettered));
                return;
            }
        };
        let span = info_span!("job", run = %job.run, couple = %redact_id(job.couple.0), attempt = message.receive_count);
        async {
            let tally = Arc::new(Tally::child_of(me.fleet.totals.clone()));
            let store = CountingStore::new(me.store.clone(), tally.clone());
            let result = async {
                let run = self.run_of(&job.run, &tally).await?;
                let _in_hand = InHand::take(&me.in_hand, run.id, job.couple).ok_or_else(|| {
                    JobError::Busy {
                        owner: me.config.name.clone(),
                        until_ms: now_ms() + SAME_WORKER_DUPLICATE_PAUSE.as_millis() as i64,
                    }
                })?;
                self.lease_or_wait(&run, job.couple, &message, &tally, stop)
                    .await?;
                // The attempt starts with its lease (a duplicate may have waited for it).
                let started = now_ms();
                let ctx = JobContext {
                    catalog: me.catalog.as_ref(),
                    store: &store,
                    cpu: &me.cpu,
                    fleet: &me.fleet,
                    tally: &tally,
                    overhead: &me.overhead,
                    worker: &me.config.name,
                    started_at_ms: started,
                    photo_parallelism: me.config.photo_parallelism,
                    record_batch: me.config.record_batch,
                    max_pixels: me.config.max_pixels,
                };
                let migrate = ctx.migrate_couple(
                    &run,
                    job.couple,
                    job.photos.clone(),
                    message.receive_count <= 1,
                    stop,
                );
                let renewal = LeaseRenewal {
                    catalog: me.catalog.as_ref(),
                    run: &run,
                    couple: job.couple,
                    owner: &me.config.name,
                    stale_after: me.config.fleet.stale_after(),
                };
                with_heartbeat(
                    migrate,
                    me.queue.as_ref(),
                    &message.receipt,
                    me.config.visibility,
                    &tally,
                    renewal,
                )
                .await
            }
            .await;
            let disposition = Disposition::from(result);
            let outcome = self
                .settle_job(&message, disposition, &tally, settler)
                .await;
            me.fleet.events().record(Event::JobSettled(outcome));
        }
        .instrument(span)
        .await
    }

    /// The keys one DeleteObjects request may carry: the worker's delete share of two seconds,
    /// at most S3's 1,000.
    fn delete_batch(&self) -> usize {
        (self.inner.fleet.deletes.burst() as usize).clamp(1, recast_store::MAX_DELETE_BATCH)
    }
}

/// How long a duplicate of a couple running in this same worker is put back for.
const SAME_WORKER_DUPLICATE_PAUSE: Duration = Duration::from_secs(5);

/// A couple marked as running here, unmarked when the job ends (however it ends).
struct InHand<'a> {
    set: &'a Mutex<std::collections::HashSet<(RunId, CoupleId)>>,
    key: (RunId, CoupleId),
}

impl<'a> InHand<'a> {
    fn take(
        set: &'a Mutex<std::collections::HashSet<(RunId, CoupleId)>>,
        run: RunId,
        couple: CoupleId,
    ) -> Option<InHand<'a>> {
        let key = (run, couple);
        // Not `then_some`: it would build (and drop) a guard while the lock is held.
        let inserted = set.lock().expect("in-hand lock").insert(key);
        if inserted {
            Some(InHand { set, key })
        } else {
            None
        }
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.set.lock().expect("in-hand lock").remove(&self.key);
    }
}

/// Photos one sweep claim takes: about ten seconds of the worker's delete share (at some 6 keys a
/// photo), between 1 and 400. Small claims at low budgets keep the work spread over the fleet, so
/// that no worker sits idle while another still holds minutes of deletes; at production budgets
/// a claim fills several 1,000-key requests.
fn claim_photos(deletes_per_sec: f64) -> u32 {
    (deletes_per_sec * 10.0 / 6.0).clamp(1.0, 400.0) as u32
}

/// Waits until `want` messages may be received (job slots and in-flight share both allow it), or
/// `stop`. Finished messages awaiting their batched delete count as held, so when the in-flight
/// share is what binds, the settler is told to delete them now rather than after its linger.
async fn wait_for_room(
    fleet: &Fleet,
    want: usize,
    settler: &Settler,
    stop: &CancellationToken,
) -> bool {
    loop {
        let notified = fleet.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if fleet.room() >= want.max(1) {
            return true;
        }
        if fleet.in_flight_share().saturating_sub(fleet.held()) < want.max(1) as u64 {
            // The in-flight share binds: finished messages waiting to fill a delete batch are
            // what holds the receive back, so delete them now.
            settler.flush();
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = &mut notified => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Waits until no job runs, or `at_most`; `false` on `stop`.
async fn until_jobs_end(fleet: &Fleet, at_most: Duration, stop: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + at_most;
    loop {
        let notified = fleet.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if fleet.running() == 0 {
            return true;
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return true,
        }
    }
}

/// Wait before the `n`-th receive after consecutive transient failures: 1 s doubling to 30 s,
/// with up to half of it as jitter so that a fleet does not come back in step.
fn trouble_backoff(n: u32) -> Duration {
    let exp = QUEUE_TROUBLE_PAUSE
        .saturating_mul(1u32 << n.saturating_sub(1).min(5))
        .min(Duration::from_secs(30));
    exp.mul_f64(0.5 + fastrand::f64() / 2.0)
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
