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
    /// The queue does not exist (SQS `NonExistentQueue`): permanent.
    #[error("the queue does not exist ({message}); check --queue, or create it with `recast queue create`")]
    NoSuchQueue { message: String },
    /// The queue refused the request for lack of permission or credentials: permanent until the
    /// operator changes a policy or the credentials.
    #[error("access to the queue is denied ({message}); grant the worker's role sqs:ReceiveMessage, sqs:SendMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes")]
    Denied { message: String },
    #[error("queue request failed: {message}")]
    Service { message: String, transient: bool },
    /// The embedded queue's database failed; `transient` when it may pass (connection or pool
    /// trouble, a busy file). The source is boxed so that the shared trait names no driver.
    #[error("queue database failed: {source}")]
    Database {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        transient: bool,
    },
}

impl QueueError {
    pub fn is_over_limit(&self) -> bool {
        matches!(self, QueueError::OverLimit { .. })
    }

    /// Worth retrying later with the same arguments.
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::OverLimit { .. } => true,
            QueueError::Service { transient, .. } | QueueError::Database { transient, .. } => {
                *transient
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> QueueError {
        let transient = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLITE_BUSY, SQLITE_LOCKED and their extended codes (low byte).
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|n| matches!(n & 0xff, 5 | 6)),
            _ => false,
        };
        QueueError::Database {
            source: Box::new(e),
            transient,
        }
    }
}
