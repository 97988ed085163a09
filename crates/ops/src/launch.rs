//! `launch`'s core: create or resume a run and enqueue one message per couple, checkpointed, and
//! `--requeue`'s: send again what the run has not finished. No command-line types here.

use std::future::Future;
use std::time::Duration;

use recast_catalog::{Catalog, CatalogError, CoupleJob, JobAttempt, Run};
use recast_core::{JobMessage, RunSettings, Tally, JOB_MESSAGE_VERSION};
use recast_queue::{JobQueue, OutgoingMessage, QueueError};

/// Couples read from the catalog per statement, sent together, and checkpointed once.
const PAGE: u32 = 1000;
/// A message whose photo list would make it larger than this carries only the couple id, and the
/// worker reads the photos from the catalog: ten of them stay under SQS's 256 KiB batch payload.
const MAX_INLINE_BODY: usize = 24 * 1024;
/// Tries of one send batch whose entries failed, before launch gives up (it can be re-run).
const SEND_TRIES: u32 = 5;
/// Tries of one catalog statement that failed transiently (PostgreSQL restarting, a failover),
/// waiting 0.5 s doubling to 30 s between them: about two minutes in all, so that a
/// launch of hours rides out a failover instead of stopping for the operator to re-run it.
const CATALOG_TRIES: u32 = 10;
const CATALOG_MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LaunchReport {
    pub created: bool,
    pub enqueued_now: u64,
    pub enqueued_total: u64,
}

/// Why a launch stopped. Whatever was checkpointed stays: re-running the launch resumes it.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("failed to send jobs: {0}")]
    Queue(#[source] QueueError),
    #[error("{0} messages could not be sent after {SEND_TRIES} tries; re-run launch to resume")]
    Unsent(usize),
}

fn message(run: &Run, job: &CoupleJob) -> OutgoingMessage {
    let mut msg = JobMessage {
        v: JOB_MESSAGE_VERSION,
        run: run.name.clone(),
        couple: job.couple,
        photos: Some(job.photos.clone()),
    };
    let mut body = msg.to_body();
    if body.len() > MAX_INLINE_BODY {
        msg.photos = None;
        body = msg.to_body();
    }
    OutgoingMessage {
        dedup_id: msg.dedup_id(),
        body,
    }
}

/// Enqueues every couple after the run's checkpoint, a page at a time: one catalog read, one
/// [`JobQueue::send_many`] (batches of ten, several in flight, or one transaction on the SQLite
/// queue) and one checkpoint write per page. A launch killed at any point and re-run continues
/// from the last page checkpointed; it re-sends at most that one page, which the embedded queue
/// drops as duplicates (by dedup id) and the workers' idempotent writes absorb on other queues.
pub async fn launch(
    catalog: &dyn Catalog,
    queue: &dyn JobQueue,
    name: &str,
    settings: &RunSettings,
) -> Result<(Run, LaunchReport), LaunchError> {
    let started = now_ms();
    let (run, created) = retrying("create or read the run", || {
        catalog.ensure_run(name, settings)
    })
    .await?;
    if !created && run.settings != *settings {
        tracing::warn!(stored = ?run.settings, given = ?settings, "run exists; its stored settings apply, not the flags");
    }
    let tally = Tally::default();
    let mut checkpoint = retrying("read the checkpoint", || catalog.checkpoint(&run)).await?;
    let mut report = LaunchReport {
        created,
        ..LaunchReport::default()
    };
    loop {
        let page = retrying("read couples", || {
            catalog.couples_after(checkpoint.last_couple, PAGE, &tally)
        })
        .await?;
        let Some(last) = page.last().map(|j| j.couple) else {
            break;
        };
        let messages: Vec<OutgoingMessage> = page
            .iter()
            .filter(|j| !j.photos.is_empty())
            .map(|j| message(&run, j))
            .collect();
        send_all(queue, &messages, &tally).await?;
        let sent = messages.len() as u64;
        // Guarded by the page's last couple: a retry after an answer lost in a commit counts
        // the page once.
        retrying("save the checkpoint", || {
            catalog.save_checkpoint(&run, last, sent, &tally)
        })
        .await?;
        report.enqueued_now += sent;
        checkpoint.last_couple = Some(last);
    }
    retrying("finish the checkpoint", || catalog.finish_checkpoint(&run)).await?;
    report.enqueued_total = retrying("read the checkpoint", || catalog.checkpoint(&run))
        .await?
        .enqueued;
    let attempt = JobAttempt {
        run: run.id,
        couple: None,
        worker: "producer".into(),
        outcome: recast_core::JobOutcome::Producer,
        photos: 0,
        requests: tally.snapshot(),
        started_at_ms: started,
        finished_at_ms: now_ms(),
    };
    retrying("record the producer's requests", || {
        catalog.record_attempt(&attempt, &tally)
    })
    .await?;
    Ok((run, report))
}

/// Sends again every couple of the run with a photo not yet recorded, page by page. The messages
/// get dedup ids of their own (the first ones' may be remembered by the queue); a couple delivered
/// twice is harmless, since jobs are idempotent.
pub async fn requeue(
    catalog: &dyn Catalog,
    queue: &dyn JobQueue,
    run: &Run,
) -> Result<u64, LaunchError> {
    let stamp = now_ms();
    let tally = Tally::default();
    let mut after = None;
    let mut sent = 0u64;
    loop {
        let page = retrying("read unfinished couples", || {
            catalog.unfinished_couples_after(run, after, PAGE, &tally)
        })
        .await?;
        let Some(last) = page.last().map(|j| j.couple) else {
            break;
        };
        let messages: Vec<OutgoingMessage> = page
            .iter()
            .filter(|j| !j.photos.is_empty())
            .map(|j| {
                let mut m = message(run, j);
                m.dedup_id = format!("{}/requeue-{stamp}", m.dedup_id);
                m
            })
            .collect();
        send_all(queue, &messages, &tally).await?;
        sent += messages.len() as u64;
        after = Some(last);
    }
    Ok(sent)
}

/// Runs a catalog statement, again after a backoff while it fails transiently; any other error,
/// or the last try's, ends the launch (re-running it resumes from its checkpoint).
async fn retrying<T, F, Fut>(what: &str, mut statement: F) -> Result<T, CatalogError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CatalogError>>,
{
    let mut wait = Duration::from_millis(500);
    for _ in 1..CATALOG_TRIES {
        match statement().await {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?wait, "failed to {what}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(CATALOG_MAX_WAIT);
            }
            other => return other,
        }
    }
    statement().await
}

/// Sends messages, re-sending the entries that failed (all of them after an error of the whole
/// call), with backoff; the tally counts one request per batch of ten.
async fn send_all(
    queue: &dyn JobQueue,
    messages: &[OutgoingMessage],
    tally: &Tally,
) -> Result<(), LaunchError> {
    let mut pending: Vec<OutgoingMessage> = messages.to_vec();
    for attempt in 1..=SEND_TRIES {
        if pending.is_empty() {
            return Ok(());
        }
        tally.sqs(pending.len().div_ceil(recast_queue::MAX_BATCH) as u64);
        let outcome = match queue.send_many(&pending).await {
            Ok(o) => o,
            Err(e) if e.is_transient() && attempt < SEND_TRIES => {
                tracing::warn!(error = %e, "send failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                continue;
            }
            Err(e) => return Err(LaunchError::Queue(e)),
        };
        pending = pending
            .into_iter()
            .zip(outcome)
            .filter_map(|(m, r)| {
                r.err().map(|e| {
                tracing::warn!(error = %e, dedup_id = %m.dedup_id, "message not sent; retrying");
                m
            })
            })
            .collect();
    }
    if !pending.is_empty() {
        return Err(LaunchError::Unsent(pending.len()));
    }
    Ok(())
}

/// Unix time in milliseconds, as the catalog records times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
