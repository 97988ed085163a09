//! The job queue between the producer and the workers.
//!
//! [`JobQueue`] is the one narrow trait; [`open`] picks a backend by URL. Backends: an embedded
//! SQLite queue with SQS semantics (`sqlite:///path/queue.db`) and SQS itself (queue URLs).

mod error;
mod job_queue;
mod sqlite;
mod sqs;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::QueueError;
pub use job_queue::{
    BatchOutcome, JobQueue, OutgoingMessage, QueueStats, Receipt, ReceivedMessage, MAX_BATCH,
    SENDS_IN_FLIGHT,
};
pub use sqlite::{SqliteQueue, SqliteQueueOptions};
pub use sqs::{SqsQueue, SqsQueueSpec};

use std::sync::Arc;

/// Opens the queue a URL names: `sqlite:///path/queue.db[?in_flight_cap=N&max_receives=N]`.
pub async fn open(url: &str) -> Result<Arc<dyn JobQueue>, QueueError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteQueue::open(url).await?));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Arc::new(SqsQueue::open(url).await?));
    }
    Err(QueueError::BadUrl {
        url: url.to_owned(),
        reason:
            "unknown queue URL; expected sqlite:///path/queue.db or an SQS queue URL (https://...)"
                .to_owned(),
    })
}
