use std::future::Future;
use std::time::Duration;

use recast_catalog::{Catalog, Lease, Run};
use recast_core::{CoupleId, Tally};
use recast_queue::{JobQueue, Receipt};

/// A job's lease on its couple, renewed with its message's visibility.
pub(crate) struct LeaseRenewal<'a> {
    pub catalog: &'a dyn Catalog,
    pub run: &'a Run,
    pub couple: CoupleId,
    pub owner: &'a str,
    pub stale_after: Duration,
}

/// Runs a job while keeping its message invisible: every half visibility timeout the visibility is
/// extended by another full timeout (and the couple's lease with it), so a long job is not handed
/// to a second worker.
pub(crate) async fn with_heartbeat<F: Future>(
    job: F,
    queue: &dyn JobQueue,
    receipt: &Receipt,
    visibility: Duration,
    tally: &Tally,
    lease: LeaseRenewal<'_>,
) -> F::Output {
    let period = visibility / 2;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tokio::pin!(job);
    loop {
        tokio::select! {
            biased;
            out = &mut job => return out,
            _ = tick.tick() => {
                tally.sqs(1);
                if let Err(e) = queue.change_visibility(receipt, visibility).await {
                    tracing::warn!(error = %e, "failed to extend the visibility of a running job");
                }
                let l = &lease;
                match l.catalog.lease_couple(l.run, l.couple, l.owner, visibility, l.stale_after, tally).await {
                    Ok(Lease::Granted { .. }) => {}
                    Ok(Lease::HeldBy { owner, .. }) => tracing::warn!(holder = %owner, "lost the couple's lease to another worker; the guarded writes keep the progress right"),
                    Err(e) => tracing::warn!(error = %e, "failed to renew the couple's lease"),
                }
            }
        }
    }
}
