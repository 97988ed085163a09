//! What a worker does with a message once its job has ended (release for a retry, put back,
//! dead-letter), the requests no job took, and halting the worker on an error no job can get past.

use std::time::Duration;

use recast_catalog::JobAttempt;
use recast_core::Tally;
use recast_queue::ReceivedMessage;
use tracing::warn;

use super::Worker;
use crate::error::retry_backoff;
use crate::{now_ms, Progress};

impl Worker {
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
        let me = &self.inner;
        let backoff = retry_backoff(message.receive_count);
        warn!(reason, retry_in = ?backoff, "job released for a retry");
        self.put_back(message, backoff, reason).await;
        Progress::add(&me.progress.jobs_retried, 1);
        me.summary.lock().expect("summary lock").jobs_retried += 1;
    }

    pub(super) async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) {
        let me = &self.inner;
        warn!(message_id = %message.id, reason, "message can never be processed; moving it to the dead-letter queue");
        me.overhead.sqs(1);
        if let Err(e) = me.queue.dead_letter(message, reason).await {
            warn!(error = %e, "failed to dead-letter; the queue's redrive will do it after its maximum receives");
        }
        me.fleet.settled(1);
        Progress::add(&me.progress.jobs_dead_lettered, 1);
        me.summary.lock().expect("summary lock").jobs_dead_lettered += 1;
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
