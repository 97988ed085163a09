//! What a worker does with a message once its job has ended (release for a retry, put back,
//! dead-letter), the requests no job took, and halting the worker on an error no job can get past.

use std::sync::atomic::Ordering;
use std::time::Duration;

use recast_catalog::JobAttempt;
use recast_core::{JobOutcome, Tally};
use recast_queue::ReceivedMessage;
use tracing::{info, warn};

use super::lease::{DUPLICATE_MIN_WAIT, DUPLICATE_RECHECK};
use super::Worker;
use crate::error::retry_backoff;
use crate::job::JobReport;
use crate::settle::Settler;
use crate::{now_ms, JobError};

/// What becomes of a job's message, decided once from how the job ended and acted on by
/// [`Worker::settle_job`] alone. Only `DeadLetter` and `Halt` come from errors; a drain's release
/// and a duplicate delivery's deferral are ordinary ends.
pub(super) enum Disposition {
    /// Every photo recorded: the message is deleted (batched by the settler).
    Complete(JobReport),
    /// Transient trouble: the message comes back after a backoff.
    Retry { reason: String },
    /// Stopped by a drain or its maximum duration after recording what it did: visible again at
    /// once, for any worker.
    Release { reason: String },
    /// A duplicate delivery of a couple a live worker holds: put back until its lease ends.
    Defer { owner: String, until_ms: i64 },
    /// The message can never be processed.
    DeadLetter { reason: String },
    /// Nothing can proceed on this worker: the message is put back and the worker stops.
    Halt { reason: String },
}

impl From<Result<JobReport, JobError>> for Disposition {
    fn from(r: Result<JobReport, JobError>) -> Disposition {
        match r {
            Ok(report) => Disposition::Complete(report),
            Err(JobError::Retry { reason }) => Disposition::Retry { reason },
            Err(JobError::Release { reason }) => Disposition::Release { reason },
            Err(JobError::Busy { owner, until_ms }) => Disposition::Defer { owner, until_ms },
            Err(JobError::Abort { reason }) => Disposition::DeadLetter { reason },
            Err(JobError::Fatal { reason }) => Disposition::Halt { reason },
        }
    }
}

impl Worker {
    /// Acts on how a job ended: the message's fate, the worker's counts, and (for a halt) the
    /// worker's stop. What an unfinished attempt did not record is counted with a later one.
    pub(super) async fn settle_job(
        &self,
        message: &ReceivedMessage,
        disposition: Disposition,
        tally: &Tally,
        settler: &Settler,
    ) -> JobOutcome {
        let me = &self.inner;
        if !matches!(
            disposition,
            Disposition::Complete(_) | Disposition::DeadLetter { .. }
        ) {
            me.overhead.absorb(tally.take());
        }
        match disposition {
            Disposition::Complete(report) => {
                settler.settle(message.receipt.clone());
                info!(photos = report.photos, "job complete");
                let unswept = me
                    .unswept_keys
                    .fetch_add(report.keys_to_sweep, Ordering::Relaxed)
                    + report.keys_to_sweep;
                if unswept >= self.delete_batch() as u64 {
                    me.sweep_wake.notify_one();
                }
                JobOutcome::Complete
            }
            Disposition::Retry { reason } => {
                self.release(message, &reason).await;
                JobOutcome::Retry
            }
            Disposition::Release { reason } => {
                self.put_back(message, Duration::ZERO, &reason).await;
                JobOutcome::Released
            }
            Disposition::Defer { owner, until_ms } => {
                // Until the lease ends, but no longer than DUPLICATE_RECHECK (the holder usually
                // finishes well before its lease would) and no shorter than DUPLICATE_MIN_WAIT.
                let wait = Duration::from_millis((until_ms - now_ms()).max(0) as u64)
                    .clamp(DUPLICATE_MIN_WAIT, DUPLICATE_RECHECK);
                if owner == me.config.name {
                    info!(retry_in = ?wait, "couple is already running in this worker (duplicate delivery); put back until it ends");
                } else {
                    info!(holder = %owner, retry_in = ?wait, "couple is in another live worker's hands (duplicate delivery); put back until its lease ends");
                }
                self.put_back(message, wait, "duplicate delivery").await;
                JobOutcome::Deferred
            }
            Disposition::DeadLetter { reason } => {
                self.dead_letter(message, &reason).await;
                JobOutcome::DeadLettered
            }
            Disposition::Halt { reason } => {
                self.put_back(message, Duration::ZERO, &reason).await;
                self.halt(reason);
                JobOutcome::Halted
            }
        }
    }

    /// Stops the worker because of an error no job can get past; the binary reports `reason`.
    pub(super) fn halt(&self, reason: String) {
        tracing::error!(%reason, "stopping the worker");
        self.inner
            .fatal
            .lock()
            .expect("fatal lock")
            .get_or_insert(reason);
        self.inner.halt.cancel();
    }

    /// Why the worker stopped by itself, if it did (a store that denies its writes, a queue that
    /// does not exist): the process should exit non-zero with this line.
    pub fn fatal(&self) -> Option<String> {
        self.inner.fatal.lock().expect("fatal lock").clone()
    }

    /// Makes a message visible again after `after` (zero: at once, for any worker).
    pub(super) async fn put_back(&self, message: &ReceivedMessage, after: Duration, reason: &str) {
        let me = &self.inner;
        me.overhead.sqs(1);
        if let Err(e) = me.queue.change_visibility(&message.receipt, after).await {
            warn!(error = %e, reason, "failed to release the message; its visibility timeout will");
        }
        me.fleet.settled(1);
    }

    /// Puts a job back for a retry after a backoff that grows with its receives.
    pub(super) async fn release(&self, message: &ReceivedMessage, reason: &str) {
        let backoff = retry_backoff(message.receive_count);
        warn!(reason, retry_in = ?backoff, "job released for a retry");
        self.put_back(message, backoff, reason).await;
    }

    pub(super) async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) {
        let me = &self.inner;
        warn!(message_id = %message.id, reason, "message can never be processed; moving it to the dead-letter queue");
        me.overhead.sqs(1);
        if let Err(e) = me.queue.dead_letter(message, reason).await {
            warn!(error = %e, "failed to dead-letter; the queue's redrive will do it after its maximum receives");
        }
        me.fleet.settled(1);
    }

    /// Records the requests no job has taken yet, so that `status` counts every request.
    pub(super) async fn flush_overhead(&self) {
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
            outcome: JobOutcome::Overhead,
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
