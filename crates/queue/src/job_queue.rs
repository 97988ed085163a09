use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::QueueError;

/// The most messages one send, receive or delete call takes (SQS's batch limit).
pub const MAX_BATCH: usize = 10;

/// Batches that [`JobQueue::send_many`] keeps in flight at once by default: SQS answers each in a
/// round trip, and ten at a time hide most of it.
pub const SENDS_IN_FLIGHT: usize = 10;

/// A message to send. `dedup_id` names what the message is about (a run and a couple): a backend
/// that can deduplicate sends drops a second message with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub dedup_id: String,
    pub body: String,
}

/// The handle of one receipt of a message; deleting or extending needs the latest one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub id: String,
    pub body: String,
    pub receipt: Receipt,
    /// How many times the message has been received, this time included (SQS's
    /// ApproximateReceiveCount).
    pub receive_count: u32,
}

/// Approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub visible: u64,
    pub in_flight: u64,
    pub dead: u64,
}

impl QueueStats {
    pub fn is_drained(&self) -> bool {
        self.visible == 0 && self.in_flight == 0
    }
}

/// Per-entry outcome of a batch call, in the order of the request.
pub type BatchOutcome = Vec<Result<(), QueueError>>;

/// A queue with SQS semantics.
///
/// Contract, the same for every backend:
/// - Delivery is at least once. A received message is invisible for the visibility timeout given at
///   receive (or set later by `change_visibility`), then visible again unless deleted.
/// - Batches hold at most [`MAX_BATCH`] entries ([`QueueError::BatchTooLarge`] otherwise); each entry's
///   outcome is reported separately.
/// - `receive` waits up to `wait` for a message (long polling) and answers [`QueueError::OverLimit`]
///   when the queue already has its cap of messages in flight.
/// - A message received more than the queue's maximum receives without being deleted moves to the
///   dead-letter queue; `dead_letter` moves one there at once, with a reason.
/// - Deleting or extending with a receipt that is no longer the message's latest (or of a deleted
///   message) is [`QueueError::ReceiptInvalid`].
#[async_trait]
pub trait JobQueue: Send + Sync + Debug {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome, QueueError>;

    /// Sends any number of messages and reports each one's outcome, in order. By default in
    /// batches of [`MAX_BATCH`], [`SENDS_IN_FLIGHT`] batches at once; a backend that writes many
    /// messages cheaper at once overrides it (the SQLite queue: one transaction). An error of a
    /// whole batch is the call's error, once the other batches in flight have answered: some
    /// messages may then have been sent, and a retry sends them again (a duplicate, which jobs
    /// absorb).
    async fn send_many(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome, QueueError> {
        let mut out = Vec::with_capacity(messages.len());
        for group in messages.chunks(MAX_BATCH * SENDS_IN_FLIGHT) {
            // Collected before the await, so that the future holds no closure (it must be Send).
            let sends: Vec<_> = group
                .chunks(MAX_BATCH)
                .map(|b| self.send_batch(b))
                .collect();
            let answers = futures::future::join_all(sends).await;
            for answer in answers {
                out.extend(answer?);
            }
        }
        Ok(out)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    async fn delete_batch(&self, receipts: &[Receipt]) -> Result<BatchOutcome, QueueError>;

    /// Sets a received message's remaining invisibility; zero releases it to other workers now.
    async fn change_visibility(
        &self,
        receipt: &Receipt,
        visibility: Duration,
    ) -> Result<(), QueueError>;

    /// Moves a received message to the dead-letter queue with the reason it can never be processed.
    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError>;

    async fn stats(&self) -> Result<QueueStats, QueueError>;
}

/// Refuses a batch over [`MAX_BATCH`] entries; every backend calls this first.
pub(crate) fn check_batch(n: usize) -> Result<(), QueueError> {
    if n > MAX_BATCH {
        Err(QueueError::BatchTooLarge(n))
    } else {
        Ok(())
    }
}
