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
///
/// The renewals run **beside** the job, both polled by one `select!`, never the job paused while
/// a renewal is awaited: the job may be inside a catalog transaction (on SQLite, holding the
/// write lock) when a renewal comes due, and a renewal that waited for that lock with the job
/// paused would wait on itself until the busy timeout (30 s), with every other job's writes
/// queued behind it. (That was how it was written; the crash test fell into such storms under
/// load, `sigkilled_workers_lose_nothing` taking 548 s.)
pub(crate) async fn with_heartbeat<F: Future>(
    job: F,
    queue: &dyn JobQueue,
    receipt: &Receipt,
    visibility: Duration,
    tally: &Tally,
    lease: LeaseRenewal<'_>,
) -> F::Output {
    let period = visibility / 2;
    let renewals = async {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            tally.sqs(1);
            if let Err(e) = queue.change_visibility(receipt, visibility).await {
                tracing::warn!(error = %e, "failed to extend the visibility of a running job");
            }
            let l = &lease;
            match l
                .catalog
                .lease_couple(l.run, l.couple, l.owner, visibility, l.stale_after, tally)
                .await
            {
                Ok(Lease::Granted { .. }) => {}
                Ok(Lease::HeldBy { owner, .. }) => {
                    tracing::warn!(holder = %owner, "lost the couple's lease to another worker; the guarded writes keep the progress right")
                }
                Err(e) => tracing::warn!(error = %e, "failed to renew the couple's lease"),
            }
        }
    };
    tokio::pin!(job);
    tokio::pin!(renewals);
    tokio::select! {
        biased;
        out = &mut job => out,
        () = &mut renewals => unreachable!("the renewals loop for as long as the job runs"),
    }
}
