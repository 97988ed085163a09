//! Settles finished jobs' messages: deletes them from the queue in batches of up to ten, so that a
//! couple costs a tenth of a delete request rather than a whole one.

use std::sync::Arc;
use std::time::Duration;

use recast_core::Tally;
use recast_queue::{JobQueue, Receipt, MAX_BATCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::fleet::Fleet;

pub(crate) struct Settler {
    tx: mpsc::UnboundedSender<Settle>,
    task: JoinHandle<()>,
}

enum Settle {
    Delete(Receipt),
    /// Delete what is pending now (the worker is idle: nothing else will fill the batch).
    Flush,
}

impl Settler {
    /// `linger`: the longest a receipt waits for others to fill its batch. It must stay well inside
    /// the visibility timeout, or the message is redelivered before it is deleted (harmless, since
    /// a redelivered finished job records only its attempt, but wasted).
    pub fn start(
        queue: Arc<dyn JobQueue>,
        overhead: Arc<Tally>,
        linger: Duration,
        fleet: Arc<Fleet>,
    ) -> Settler {
        let (tx, mut rx) = mpsc::unbounded_channel::<Settle>();
        let task = tokio::spawn(async move {
            let mut batch: Vec<Receipt> = Vec::with_capacity(MAX_BATCH);
            let mut open = true;
            while open || !batch.is_empty() {
                if batch.is_empty() {
                    match rx.recv().await {
                        Some(Settle::Delete(r)) => batch.push(r),
                        Some(Settle::Flush) => continue,
                        None => break,
                    }
                }
                let deadline = tokio::time::Instant::now() + linger;
                while open && batch.len() < MAX_BATCH {
                    tokio::select! {
                        r = rx.recv() => match r {
                            Some(Settle::Delete(r)) => batch.push(r),
                            Some(Settle::Flush) => break,
                            None => open = false,
                        },
                        _ = tokio::time::sleep_until(deadline) => break,
                    }
                }
                overhead.sqs(1);
                match queue.delete_batch(&batch).await {
                    Ok(outcome) => {
                        for r in outcome.into_iter().filter_map(Result::err) {
                            warn!(error = %r, "a finished job's message was not deleted; its redelivery will find the job done");
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "finished jobs' messages were not deleted; their redeliveries will find the jobs done")
                    }
                }
                fleet.settled(batch.len());
                batch.clear();
            }
        });
        Settler { tx, task }
    }

    pub fn settle(&self, receipt: Receipt) {
        // The task only stops after `close`, so the channel is open while jobs run.
        let _ = self.tx.send(Settle::Delete(receipt));
    }

    /// Deletes the pending messages now rather than after the linger.
    pub fn flush(&self) {
        let _ = self.tx.send(Settle::Flush);
    }

    /// Deletes what is pending and stops.
    pub async fn close(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            warn!(error = %e, "the settler task failed");
        }
    }
}
