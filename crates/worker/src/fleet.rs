//! The worker's place in its fleet: it registers and heartbeats in the catalog, learns how many
//! workers are live and what the run's budgets are, and enforces its share of them — S3 request
//! rates through token buckets, messages in flight through its receives, database work through
//! its concurrency, which follows the database's latency.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recast_catalog::Catalog;
use recast_core::{BudgetOverrides, Budgets, Tally};
use tokio::sync::Notify;
use tracing::warn;

use crate::events::{Event, EventSink};
use crate::limiter::{RateGate, RECOVER_STEP};
use crate::now_ms;
use crate::Progress;

mod latency;
mod registry;

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
    /// Where this worker's events are counted (the heartbeat's sample among them).
    events: EventSink,
    last_sample_at: AtomicU64,
    /// Cuts of the concurrency, for tests and metrics.
    pub db_backoffs: AtomicU64,
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
            events: EventSink::default(),
            last_sample_at: AtomicU64::new(now_ms() as u64),
            db_backoffs: AtomicU64::new(0),
        }
    }

    /// Counts this worker's events into `progress` too (the process's live counters).
    pub fn reporting_to(mut self, progress: Arc<Progress>) -> Fleet {
        self.events = EventSink::new(progress);
        self
    }

    /// The sink every event of this worker is reported to.
    pub fn events(&self) -> &EventSink {
        &self.events
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
            self.events.record(Event::LimiterWait {
                budget: b.label(),
                waited,
            });
        }
    }

    /// The service answered "slow down" for a budget's requests.
    pub fn throttled(&self, b: Budget) {
        self.gate(b).throttled();
        self.events.record(Event::Throttled {
            service: "s3",
            budget: b.label(),
        });
        warn!(
            budget = b.label(),
            rate = self.gate(b).rate(),
            "S3 is throttling; rate cut"
        );
    }

    /// The queue answered OverLimit: hold fewer messages.
    pub fn over_limit(&self) {
        let mut f = self.in_flight_factor.lock().expect("factor lock");
        self.events.record(Event::Throttled {
            service: "sqs",
            budget: "in_flight",
        });
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
        self.events.record(Event::JobEnded);
        self.room.notify_waiters();
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
        f.apply(recast_catalog::FleetView {
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
