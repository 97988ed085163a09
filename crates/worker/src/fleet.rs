//! The worker's place in its fleet: it registers and heartbeats in the catalog, learns how many
//! workers are live and what the run's budgets are, and enforces its share of them — S3 request
//! rates through token buckets, messages in flight through its receives, database work through
//! its concurrency, which follows the database's latency.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recast_catalog::{Catalog, FleetView, Heartbeat, WorkerSample};
use recast_core::{BudgetOverrides, Budgets, Tally};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::limiter::{RateGate, RECOVER_STEP};
use crate::now_ms;

/// How often rates recover and the database controller looks at latency.
const TICK: Duration = Duration::from_secs(1);
/// Database latencies are judged over windows of this length.
const DB_WINDOW: Duration = Duration::from_secs(5);
/// Fewest latencies in a window for it to be judged.
const DB_MIN_SAMPLES: usize = 5;
/// Seconds of its rate a delete bucket holds: the largest DeleteObjects a worker sends is its
/// share of two seconds (capped at S3's 1,000 keys), so per-minute counts stay even.
const DELETE_BURST_SECS: f64 = 2.0;
const REQUEST_BURST_SECS: f64 = 0.5;

/// How a worker takes part in its fleet.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The run whose fleet the worker joins: its registry and its budgets.
    pub run_name: String,
    /// Heartbeat period; a worker silent for three periods counts as gone.
    pub heartbeat: Duration,
    /// Budgets given on this worker's command line, stored in the run for the whole fleet.
    pub budgets: BudgetOverrides,
    /// p95 database latency above which the worker runs fewer jobs at once.
    pub db_latency_target: Duration,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            run_name: "main".to_owned(),
            heartbeat: Duration::from_secs(10),
            budgets: BudgetOverrides::default(),
            db_latency_target: Duration::from_millis(250),
        }
    }
}

impl FleetSettings {
    pub fn stale_after(&self) -> Duration {
        self.heartbeat * 3
    }
}

#[derive(Debug)]
pub(crate) struct Fleet {
    pub name: String,
    pub settings: FleetSettings,
    catalog: Arc<dyn Catalog>,
    started_at_ms: i64,
    /// Every request the worker makes (job tallies and overhead are its children).
    pub totals: Arc<Tally>,
    pub deletes: RateGate,
    pub puts: RateGate,
    pub gets: RateGate,
    live: AtomicU32,
    budgets: Mutex<Budgets>,
    /// AIMD factor of the in-flight share (SQS OverLimit halves it).
    in_flight_factor: Mutex<(f64, Option<Instant>)>,
    /// Messages received and not yet deleted or released.
    held: AtomicU64,
    /// Jobs running.
    running: AtomicUsize,
    /// Jobs allowed at once (adaptive, up to `max_concurrency`).
    allowed: AtomicUsize,
    max_concurrency: usize,
    /// Something that bounds receives changed (a message settled, a job ended, a share moved).
    pub room: Notify,
    latencies: Mutex<(Instant, Vec<Duration>)>,
    sample: SampleCounters,
    last_sample_at: AtomicU64,
    /// Cuts of the concurrency, for tests and metrics.
    pub db_backoffs: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct SampleCounters {
    pub jobs: AtomicU64,
    pub photos: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub throttles: AtomicU64,
    pub limiter_wait_ms: AtomicU64,
}

/// Which budget a wait or a throttle belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    Deletes,
    Puts,
    Gets,
}

impl Budget {
    fn label(self) -> &'static str {
        match self {
            Budget::Deletes => "s3_deletes",
            Budget::Puts => "s3_puts",
            Budget::Gets => "s3_gets",
        }
    }
}

impl Fleet {
    pub fn new(
        name: String,
        settings: FleetSettings,
        catalog: Arc<dyn Catalog>,
        max_concurrency: usize,
    ) -> Fleet {
        // Until the first heartbeat answers, the worker assumes it is alone under the defaults
        // or the budgets it was given.
        let budgets = settings.budgets.or_defaults();
        let share = budgets.share(1);
        let max_concurrency = max_concurrency.max(1);
        Fleet {
            name,
            settings,
            catalog,
            started_at_ms: now_ms(),
            totals: Arc::new(Tally::default()),
            deletes: RateGate::new(share.deletes_per_sec, DELETE_BURST_SECS),
            puts: RateGate::new(share.puts_per_sec, REQUEST_BURST_SECS),
            gets: RateGate::new(share.gets_per_sec, REQUEST_BURST_SECS),
            live: AtomicU32::new(1),
            budgets: Mutex::new(budgets),
            in_flight_factor: Mutex::new((1.0, None)),
            held: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            allowed: AtomicUsize::new(max_concurrency),
            max_concurrency,
            room: Notify::new(),
            latencies: Mutex::new((Instant::now(), Vec::new())),
            sample: SampleCounters::default(),
            last_sample_at: AtomicU64::new(now_ms() as u64),
            db_backoffs: AtomicU64::new(0),
        }
    }

    pub fn counters(&self) -> &SampleCounters {
        &self.sample
    }

    pub fn gate(&self, b: Budget) -> &RateGate {
        match b {
            Budget::Deletes => &self.deletes,
            Budget::Puts => &self.puts,
            Budget::Gets => &self.gets,
        }
    }

    /// Waits for `n` cells of a budget, counting the wait.
    pub async fn spend(&self, b: Budget, n: u32) {
        let waited = self.gate(b).acquire(n).await;
        if waited >= Duration::from_millis(1) {
            self.sample
                .limiter_wait_ms
                .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
            metrics::histogram!("recast_limiter_wait_seconds", "budget" => b.label())
                .record(waited.as_secs_f64());
        }
    }

    /// The service answered "slow down" for a budget's requests.
    pub fn throttled(&self, b: Budget) {
        self.gate(b).throttled();
        self.sample.throttles.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("recast_throttles_total", "service" => "s3", "budget" => b.label())
            .increment(1);
        warn!(
            budget = b.label(),
            rate = self.gate(b).rate(),
            "S3 is throttling; rate cut"
        );
    }

    /// The queue answered OverLimit: hold fewer messages.
    pub fn over_limit(&self) {
        let mut f = self.in_flight_factor.lock().expect("factor lock");
        self.sample.throttles.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("recast_throttles_total", "service" => "sqs", "budget" => "in_flight")
            .increment(1);
        if f.1.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        f.0 = (f.0 * 0.5).max(0.02);
        f.1 = Some(Instant::now());
    }

    /// Messages this worker may hold: its share of `max_in_flight`, cut by OverLimit answers.
    pub fn in_flight_share(&self) -> u64 {
        let share = self
            .budgets
            .lock()
            .expect("budgets lock")
            .share(self.live.load(Ordering::Relaxed))
            .in_flight;
        let factor = self.in_flight_factor.lock().expect("factor lock").0;
        ((share as f64 * factor).floor() as u64).max(1)
    }

    #[cfg(test)]
    pub fn live_workers(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub fn allowed(&self) -> usize {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Messages that may be received now: bounded by free job slots and the in-flight share.
    pub fn room(&self) -> usize {
        let slots = self.allowed().saturating_sub(self.running());
        let messages = self.in_flight_share().saturating_sub(self.held());
        slots.min(messages as usize)
    }

    /// The most messages one receive should wait for room for: a full batch when the limits
    /// allow one, else whatever they allow.
    pub fn batch_target(&self) -> usize {
        recast_queue::MAX_BATCH
            .min(self.allowed())
            .min(self.in_flight_share() as usize)
            .max(1)
    }

    pub fn received(&self, n: usize) {
        self.held.fetch_add(n as u64, Ordering::Relaxed);
        metrics::gauge!("recast_messages_in_flight").set(self.held() as f64);
    }

    /// Messages deleted, released or dead-lettered: no longer held.
    pub fn settled(&self, n: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n as u64))
            });
        metrics::gauge!("recast_messages_in_flight").set(self.held() as f64);
        self.room.notify_waiters();
    }

    pub fn job_started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub fn job_ended(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.sample.jobs.fetch_add(1, Ordering::Relaxed);
        self.room.notify_waiters();
    }

    /// Runs a database call, keeping its latency for the concurrency controller.
    pub async fn timed<F: Future>(&self, f: F) -> F::Output {
        let started = Instant::now();
        let out = f.await;
        self.db_latency(started.elapsed());
        out
    }

    pub fn db_latency(&self, d: Duration) {
        metrics::histogram!("recast_db_latency_seconds").record(d.as_secs_f64());
        self.latencies.lock().expect("latency lock").1.push(d);
    }

    /// Judges the latency window when it is due: p95 over the target cuts the jobs allowed by a
    /// quarter; p95 under half the target lets one more run.
    pub fn adjust_concurrency(&self) {
        let p95 = {
            let mut w = self.latencies.lock().expect("latency lock");
            if w.0.elapsed() < DB_WINDOW {
                return;
            }
            let mut v = std::mem::take(&mut w.1);
            w.0 = Instant::now();
            if v.len() < DB_MIN_SAMPLES {
                None
            } else {
                v.sort_unstable();
                Some(v[(v.len() * 95).div_ceil(100) - 1])
            }
        };
        let target = self.settings.db_latency_target;
        let allowed = self.allowed();
        let next = match p95 {
            Some(p) if p > target => {
                self.db_backoffs.fetch_add(1, Ordering::Relaxed);
                (allowed * 3 / 4).max(1)
            }
            Some(p) if p < target / 2 => (allowed + 1).min(self.max_concurrency),
            // Too few calls to judge: the database is not what limits this worker.
            None => (allowed + 1).min(self.max_concurrency),
            Some(_) => allowed,
        };
        if next != allowed {
            if next < allowed {
                warn!(p95 = ?p95, target = ?target, jobs = next, "database latency is high; running fewer jobs");
            } else {
                debug!(jobs = next, "database latency is fine; running more jobs");
            }
            self.allowed.store(next, Ordering::Relaxed);
            self.room.notify_waiters();
        }
        if let Some(p) = p95 {
            metrics::gauge!("recast_db_latency_p95_seconds").set(p.as_secs_f64());
        }
        metrics::gauge!("recast_jobs_allowed").set(next as f64);
    }

    /// One quiet second: rates recover additively, and the database controller looks.
    pub fn tick(&self) {
        for g in [&self.deletes, &self.puts, &self.gets] {
            g.recover(RECOVER_STEP);
        }
        {
            let mut f = self.in_flight_factor.lock().expect("factor lock");
            f.0 = (f.0 + RECOVER_STEP).min(1.0);
        }
        self.adjust_concurrency();
        self.room.notify_waiters();
    }

    fn apply(&self, view: FleetView) {
        let before = self.live.swap(view.live_workers.max(1), Ordering::Relaxed);
        let changed_budgets = {
            let mut b = self.budgets.lock().expect("budgets lock");
            let changed = *b != view.budgets;
            *b = view.budgets;
            changed
        };
        let share = view.budgets.share(view.live_workers);
        self.deletes.set_share(share.deletes_per_sec);
        self.puts.set_share(share.puts_per_sec);
        self.gets.set_share(share.gets_per_sec);
        if before != view.live_workers || changed_budgets {
            info!(
                live_workers = view.live_workers,
                deletes_per_min = (share.deletes_per_sec * 60.0).round(),
                in_flight = share.in_flight,
                "fleet share"
            );
        }
        metrics::gauge!("recast_live_workers").set(f64::from(view.live_workers));
        metrics::gauge!("recast_budget_rate", "budget" => "s3_deletes_per_sec")
            .set(self.deletes.rate());
        metrics::gauge!("recast_budget_rate", "budget" => "s3_puts_per_sec").set(self.puts.rate());
        metrics::gauge!("recast_budget_rate", "budget" => "s3_gets_per_sec").set(self.gets.rate());
        metrics::gauge!("recast_in_flight_share").set(self.in_flight_share() as f64);
        self.room.notify_waiters();
    }

    fn take_sample(&self) -> WorkerSample {
        let now = now_ms();
        let since = self.last_sample_at.swap(now as u64, Ordering::Relaxed) as i64;
        let c = &self.sample;
        let take = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        WorkerSample {
            worker: self.name.clone(),
            at_ms: now,
            interval_ms: (now - since).max(0),
            jobs: take(&c.jobs),
            photos: take(&c.photos),
            failed: take(&c.failed),
            bytes_in: take(&c.bytes_in),
            bytes_out: take(&c.bytes_out),
            requests: self.totals.take(),
            throttles: take(&c.throttles),
            limiter_wait_ms: take(&c.limiter_wait_ms),
            in_flight: self.held(),
            concurrency: self.allowed() as u64,
        }
    }

    fn restore_sample(&self, s: &WorkerSample) {
        let c = &self.sample;
        for (a, v) in [
            (&c.jobs, s.jobs),
            (&c.photos, s.photos),
            (&c.failed, s.failed),
            (&c.bytes_in, s.bytes_in),
            (&c.bytes_out, s.bytes_out),
            (&c.throttles, s.throttles),
            (&c.limiter_wait_ms, s.limiter_wait_ms),
        ] {
            a.fetch_add(v, Ordering::Relaxed);
        }
        self.totals.absorb(s.requests);
        self.last_sample_at
            .store((s.at_ms - s.interval_ms) as u64, Ordering::Relaxed);
    }

    /// This worker's heartbeat now, carrying `sample`.
    fn heartbeat_with<'a>(&'a self, sample: &'a WorkerSample) -> Heartbeat<'a> {
        Heartbeat {
            run_name: &self.settings.run_name,
            worker: &self.name,
            started_at_ms: self.started_at_ms,
            now_ms: now_ms(),
            stale_after: self.settings.stale_after(),
            sample: Some(sample),
        }
    }

    /// Registers (storing the budgets this worker was given) or heartbeats, with a sample.
    pub async fn beat(&self) -> bool {
        let sample = self.take_sample();
        let beat = self.heartbeat_with(&sample);
        let tally = Tally::child_of(self.totals.clone());
        match self.timed(self.catalog.heartbeat(&beat, &tally)).await {
            Ok(view) => {
                self.apply(view);
                true
            }
            Err(e) => {
                self.restore_sample(&sample);
                warn!(error = %e, "heartbeat failed; keeping the last fleet share");
                false
            }
        }
    }

    /// Stores the budgets given on the command line, then registers.
    pub async fn register(&self) {
        if !self.settings.budgets.is_empty() {
            match self
                .catalog
                .set_budgets(&self.settings.run_name, &self.settings.budgets)
                .await
            {
                Ok(b) => {
                    info!(run = %self.settings.run_name, budgets = ?b, "fleet budgets stored in the run")
                }
                Err(e) => {
                    warn!(error = %e, "failed to store the fleet budgets; enforcing them here only")
                }
            }
        }
        self.beat().await;
    }

    /// Heartbeats and ticks until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_beat = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.tick();
            if last_beat.elapsed() >= self.settings.heartbeat {
                last_beat = Instant::now();
                self.beat().await;
            }
        }
    }

    /// Leaves the fleet: the worker no longer counts as live, and its last sample is stored.
    pub async fn deregister(&self, reason: &str) {
        let sample = self.take_sample();
        let beat = self.heartbeat_with(&sample);
        if let Err(e) = self
            .catalog
            .deregister(&beat, reason, &Tally::default())
            .await
        {
            warn!(error = %e, "failed to deregister; the fleet will count this worker gone when its heartbeat goes stale");
        } else {
            info!(reason, "left the fleet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fleet(max: usize, target_ms: u64) -> (Fleet, tempfile::TempDir) {
        let settings = FleetSettings {
            db_latency_target: Duration::from_millis(target_ms),
            budgets: BudgetOverrides {
                max_in_flight: Some(20),
                ..Default::default()
            },
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = recast_catalog::open(&url).await.unwrap();
        (Fleet::new("t".into(), settings, catalog, max), dir)
    }

    fn judge(f: &Fleet, latency_ms: u64, calls: usize) {
        for _ in 0..calls {
            f.db_latency(Duration::from_millis(latency_ms));
        }
        // Age the window so it is due.
        f.latencies.lock().unwrap().0 = Instant::now() - DB_WINDOW;
        f.adjust_concurrency();
    }

    #[tokio::test]
    async fn slow_database_lowers_concurrency_and_fast_raises_it() {
        let (f, _dir) = fleet(16, 100).await;
        judge(&f, 400, 20);
        assert_eq!(f.allowed(), 12);
        judge(&f, 400, 20);
        assert_eq!(f.allowed(), 9);
        // Between half the target and the target: hold.
        judge(&f, 70, 20);
        assert_eq!(f.allowed(), 9);
        for _ in 0..10 {
            judge(&f, 5, 20);
        }
        assert_eq!(f.allowed(), 16, "back up to the maximum, one step a window");
        for _ in 0..20 {
            judge(&f, 1000, 20);
        }
        assert_eq!(f.allowed(), 1, "never below one job");
        assert!(f.db_backoffs.load(Ordering::Relaxed) >= 2);
    }

    #[tokio::test]
    async fn receives_stay_inside_the_in_flight_share() {
        let (f, _dir) = fleet(16, 100).await;
        f.apply(FleetView {
            live_workers: 3,
            budgets: BudgetOverrides {
                max_in_flight: Some(20),
                ..Default::default()
            }
            .or_defaults(),
        });
        assert_eq!(f.in_flight_share(), 6);
        assert_eq!(f.batch_target(), 6);
        assert_eq!(f.room(), 6);
        f.received(4);
        assert_eq!(f.room(), 2);
        f.settled(1);
        assert_eq!(f.room(), 3);
        // OverLimit halves the share; quiet ticks bring it back.
        f.over_limit();
        assert_eq!(f.in_flight_share(), 3);
        assert_eq!(f.room(), 0);
        for _ in 0..10 {
            f.tick();
        }
        assert_eq!(f.in_flight_share(), 6);
    }

    #[tokio::test]
    async fn heartbeats_share_the_budgets_among_live_workers() {
        let (a, dir) = fleet(16, 100).await;
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let settings = FleetSettings {
            budgets: BudgetOverrides {
                s3_deletes_per_min: Some(600),
                ..Default::default()
            },
            ..Default::default()
        };
        let b = Fleet::new(
            "u".into(),
            settings,
            recast_catalog::open(&url).await.unwrap(),
            16,
        );
        a.register().await;
        assert_eq!(a.live_workers(), 1);
        assert_eq!(a.in_flight_share(), 20);
        // b stores its delete budget for the run; both see both.
        b.register().await;
        a.beat().await;
        assert_eq!((a.live_workers(), b.live_workers()), (2, 2));
        assert!(
            (a.deletes.rate() - 5.0).abs() < 0.01,
            "{}",
            a.deletes.rate()
        );
        assert_eq!(a.in_flight_share(), 10);
        b.deregister("drained").await;
        a.beat().await;
        assert_eq!(a.live_workers(), 1);
        assert!((a.deletes.rate() - 10.0).abs() < 0.01);
        let samples = a.catalog.samples("main").await.unwrap();
        assert!(samples.len() >= 4, "{samples:?}");
    }
}
