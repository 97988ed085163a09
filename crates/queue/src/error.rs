#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue has its cap of messages in flight (SQS's OverLimit): receive again later.
    #[error("queue is at its cap of messages in flight ({detail}); wait for jobs to finish")]
    OverLimit { detail: String },
    #[error("batch of {0} entries is over the limit of {max}", max = crate::MAX_BATCH)]
    BatchTooLarge(usize),
    #[error("receipt {0:?} is not the message's latest (or the message is gone)")]
    ReceiptInvalid(String),
    #[error("bad queue URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("queue request failed: {message}")]
    Service { message: String, transient: bool },
    #[error("queue database failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueueError {
    pub fn is_over_limit(&self) -> bool {
        matches!(self, QueueError::OverLimit { .. })
    }

    /// Worth retrying later with the same arguments.
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::OverLimit { .. } | QueueError::Database(_) => true,
            QueueError::Service { transient, .. } => *transient,
            _ => false,
        }
    }
}
