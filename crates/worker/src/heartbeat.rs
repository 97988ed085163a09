use std::future::Future;
use std::time::Duration;

use recast_core::Tally;
use recast_queue::{JobQueue, Receipt};

/// Runs a job while keeping its message invisible: every half visibility timeout the visibility is
/// extended by another full timeout, so a long job is not handed to a second worker.
pub async fn with_heartbeat<F: Future>(
    job: F,
    queue: &dyn JobQueue,
    receipt: &Receipt,
    visibility: Duration,
    tally: &Tally,
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
            }
        }
    }
}
