//! The database-latency controller of [`Fleet`]: the jobs a worker runs at once follow the p95
//! latency of its database calls over a window.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::{Fleet, DB_MIN_SAMPLES, DB_WINDOW};

impl Fleet {
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
}
