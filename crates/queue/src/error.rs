#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue has its cap of messages in flight (SQS's OverLimit): receive again later.
    #[error("queue has {in_flight} messages in flight, its cap; wait for jobs to finish")]
    OverLimit { in_flight: u64 },
    #[error("batch of {0} entries is over the limit of {max}", max = crate::MAX_BATCH)]
    BatchTooLarge(usize),
    #[error("receipt {0:?} is not the message's latest (or the message is gone)")]
    ReceiptInvalid(String),
    #[error("bad queue URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("queue database failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueueError {
    pub fn is_over_limit(&self) -> bool {
        matches!(self, QueueError::OverLimit { .. })
    }

    /// Worth retrying later with the same arguments.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::OverLimit { .. } | QueueError::Database(_))
    }
}
