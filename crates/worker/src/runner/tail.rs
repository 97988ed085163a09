//! The tail of a worker's work: sweeping on a timer so that no switched photo waits more than the
//! sweep's maximum wait, releasing sweep claims when the worker stops, and deciding from the
//! catalog (never from what this worker saw) that a run has nothing left to sweep.

use std::sync::atomic::Ordering;
use std::time::Duration;

use recast_catalog::Run;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{claim_photos, Worker};
use crate::fleet::Fleet;
use crate::sweep::SweepContext;
use crate::CountingStore;

/// How long an idle worker waits for other workers' sweep claims to end before looking again.
const BACKLOG_PAUSE: Duration = Duration::from_secs(1);
/// Longest wait of an idle worker for the queue's deletes of its finished jobs to go out.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// Sweep timer and age at which a partial batch goes out, from the maximum wait: a key is claimed
/// at the latest one tick after its photo switched, and sent at the latest one tick after it
/// has been held for half the maximum wait, so a quarter-wait tick keeps the whole within it.
pub(super) fn sweep_timing(max_wait: Duration) -> (Duration, Duration) {
    let tick = (max_wait / 4).max(Duration::from_millis(100));
    (tick, max_wait / 2)
}

impl Worker {
    /// Sweeps when jobs have switched a request's worth of keys, and on a timer so that a partial
    /// batch goes out once it has waited its time. On a stop, hands its claims back at once.
    pub(super) async fn sweep_loop(&self, stop: CancellationToken) {
        let (tick, _) = sweep_timing(self.inner.config.sweep_max_wait);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.release_sweeps().await;
                    return;
                }
                _ = self.inner.sweep_wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            self.inner.unswept_keys.store(0, Ordering::Relaxed);
            self.sweep_all(false).await;
        }
    }

    /// The runs this worker sweeps: its own (named by `--run`) and every run it received a job of.
    fn sweep_runs(&self) -> Vec<Run> {
        self.inner
            .runs
            .lock()
            .expect("runs lock")
            .values()
            .cloned()
            .collect()
    }

    /// One sweep round over every run this worker works for.
    pub(super) async fn sweep_all(&self, final_round: bool) {
        let me = &self.inner;
        let store = CountingStore::new(me.store.clone(), me.overhead.clone());
        let (_, partial_after) = sweep_timing(me.config.sweep_max_wait);
        let ctx = SweepContext {
            catalog: me.catalog.as_ref(),
            store: &store,
            tally: &me.overhead,
            owner: &me.config.name,
            lease: me.config.sweep_lease,
            batch: self.delete_batch(),
            claim: claim_photos(me.fleet.deletes.rate()),
            fleet: &me.fleet,
            partial_after,
        };
        let mut buffers = me.sweep.lock().await;
        for run in self.sweep_runs() {
            let buffer = buffers.entry(run.id).or_default();
            match ctx.round(&run, buffer, final_round).await {
                Err(e) if e.is_fatal() => self.halt(e.to_string()),
                Err(e) => warn!(run = %run.name, error = %e, "sweep failed; it will be retried"),
                Ok(()) => {}
            }
        }
    }

    /// Hands back every sweep claim of this worker, so that other workers take the photos now
    /// rather than after the claims' lease (a drained or exiting worker).
    pub(super) async fn release_sweeps(&self) {
        let me = &self.inner;
        let mut buffers = me.sweep.lock().await;
        for run in self.sweep_runs() {
            match me
                .catalog
                .release_sweep(&run, &me.config.name, &me.overhead)
                .await
            {
                Ok(0) => {}
                Ok(n) => info!(run = %run.name, photos = n, "sweep claims handed back"),
                Err(e) => {
                    warn!(run = %run.name, error = %e, "failed to hand back sweep claims; they pass to others when their lease ends")
                }
            }
        }
        buffers.clear();
    }

    /// Sweeps everything left; true when the catalog says no photo of the runs this worker works
    /// for has anything left to delete (photos still claimed by other workers count as left).
    pub(super) async fn final_sweep(&self) -> bool {
        self.sweep_all(true).await;
        for run in self.sweep_runs() {
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

    /// Idle under `--exit-when-idle`: true once the queue is drained and every photo swept (then
    /// the worker exits); otherwise it pauses a little when only others' claims are left.
    pub(super) async fn idle_and_done(&self, stop: &CancellationToken) -> bool {
        wait_settled(&self.inner.fleet).await;
        if !self.queue_drained().await {
            return false;
        }
        if self.final_sweep().await {
            return true;
        }
        super::pause(stop, BACKLOG_PAUSE).await;
        false
    }

    pub(super) async fn queue_drained(&self) -> bool {
        self.inner.overhead.sqs(1);
        match self.inner.queue.stats().await {
            Ok(s) => s.is_drained(),
            Err(e) => {
                warn!(error = %e, "failed to read queue stats");
                false
            }
        }
    }
}

/// Waits (briefly) until the finished jobs' messages are deleted, so the queue counts them gone.
async fn wait_settled(fleet: &Fleet) {
    let until = tokio::time::Instant::now() + SETTLE_WAIT;
    while fleet.held() > fleet.running() as u64 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
