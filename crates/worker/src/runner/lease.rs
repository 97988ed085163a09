//! The couple's lease: taken before a job runs, so that a duplicate delivery is never worked on
//! by two live workers at once; a duplicate waits for it, invisible, rather than be received
//! again (see [`Worker::lease_or_wait`]).

use std::time::Duration;

use recast_catalog::{Lease, Run};
use recast_core::{CoupleId, Tally};
use recast_queue::ReceivedMessage;
use tracing::{info, warn};

use super::Worker;
use crate::events::Event;
use crate::job::JobStop;
use crate::JobError;

/// Longest a duplicate delivery is put back for before it looks at the couple's lease again.
pub(super) const DUPLICATE_RECHECK: Duration = Duration::from_secs(30);
/// Shortest a duplicate delivery is put back for: every look at it is a receive, which counts
/// toward the queue's dead-letter threshold, so a couple whose lease is about to be renewed must
/// not be received again every second.
pub(super) const DUPLICATE_MIN_WAIT: Duration = Duration::from_secs(5);
/// How often a duplicate delivery looks at the lease it waits for (one catalog statement): the
/// holder usually ends long before its lease would, and the message is settled soon after.
const DUPLICATE_POLL: Duration = Duration::from_secs(1);

impl Worker {
    /// Takes the couple's lease, so that a duplicate delivery is not worked on by two live
    /// workers at once; recording the job's attempt ends it.
    async fn lease(&self, run: &Run, couple: CoupleId, tally: &Tally) -> Result<(), JobError> {
        let me = &self.inner;
        let lease = me
            .fleet
            .timed(me.catalog.lease_couple(
                run,
                couple,
                &me.config.name,
                me.config.visibility,
                me.config.fleet.stale_after(),
                tally,
            ))
            .await
            .map_err(JobError::catalog)?;
        match lease {
            Lease::Granted { .. } => Ok(()),
            Lease::HeldBy { owner, until_ms } => Err(JobError::Busy { owner, until_ms }),
        }
    }

    /// Takes the couple's lease; while another live worker holds it (a duplicate delivery),
    /// keeps this message invisible and waits for that lease to end instead of putting the
    /// message back to be received again. Every receive counts toward the queue's dead-letter
    /// threshold: a holder slowed by faults, or one whose message became visible while SQS was
    /// unreachable, would otherwise see its couple received every few seconds and dead-lettered.
    /// Once the lease is free the job runs here (it finds done what the holder did). A drain or
    /// the job's maximum duration ends the wait: the message is then put back until the lease
    /// ends.
    pub(super) async fn lease_or_wait(
        &self,
        run: &Run,
        couple: CoupleId,
        message: &ReceivedMessage,
        tally: &Tally,
        stop: &JobStop,
    ) -> Result<(), JobError> {
        let me = &self.inner;
        let mut waited = false;
        let mut extended = tokio::time::Instant::now();
        loop {
            let (owner, until_ms) = match self.lease(run, couple, tally).await {
                Err(JobError::Busy { owner, until_ms }) => (owner, until_ms),
                other => return other,
            };
            if !waited {
                waited = true;
                me.fleet.events().record(Event::DuplicateHeld);
                info!(holder = %owner, "couple is in another live worker's hands (duplicate delivery); keeping the message until its lease ends");
            }
            tokio::select! {
                _ = tokio::time::sleep(DUPLICATE_POLL) => {}
                _ = stop.token.cancelled() => {}
            }
            if stop.is_stopped() {
                return Err(JobError::Busy { owner, until_ms });
            }
            if extended.elapsed() >= me.config.visibility / 2 {
                extended = tokio::time::Instant::now();
                tally.sqs(1);
                if let Err(e) = me
                    .queue
                    .change_visibility(&message.receipt, me.config.visibility)
                    .await
                {
                    warn!(error = %e, "failed to extend the visibility of a duplicate delivery");
                }
            }
        }
    }
}
