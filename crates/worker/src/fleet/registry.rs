//! [`Fleet`]'s registry side: registering, heartbeating with a sample of what the worker did,
//! taking its share of the run's budgets from the answer, and leaving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use recast_catalog::{FleetView, Heartbeat, WorkerSample};
use recast_core::Tally;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Fleet, TICK};
use crate::now_ms;

impl Fleet {
    pub(super) fn apply(&self, view: FleetView) {
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
        let c = self.events.sample();
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
        let c = self.events.sample();
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
