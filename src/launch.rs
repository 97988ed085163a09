//! `recast launch`: create or resume a run and enqueue one message per couple, checkpointed.

use anyhow::{bail, Context};
use recast_catalog::{Catalog, CoupleJob, JobAttempt, Run};
use recast_core::{JobMessage, RunSettings, Tally, JOB_MESSAGE_VERSION};
use recast_queue::{JobQueue, OutgoingMessage};

use crate::cli::LaunchArgs;

/// Couples read from the catalog per statement, sent together, and checkpointed once.
const PAGE: u32 = 1000;
/// A message whose photo list would make it larger than this carries only the couple id, and the
/// worker reads the photos from the catalog: ten of them stay under SQS's 256 KiB batch payload.
const MAX_INLINE_BODY: usize = 24 * 1024;
/// Tries of one send batch whose entries failed, before launch gives up (it can be re-run).
const SEND_TRIES: u32 = 5;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LaunchReport {
    pub created: bool,
    pub enqueued_now: u64,
    pub enqueued_total: u64,
}

pub async fn run(a: LaunchArgs) -> anyhow::Result<()> {
    crate::preflight::credentials(&[&a.queue]).await?;
    let catalog = crate::preflight::catalog_opened(
        recast_catalog::open_with(&a.db.db, a.db.db_pool).await,
        &a.db.db,
    )?;
    let queue = recast_queue::open(&a.queue)
        .await
        .context("failed to open the queue")?;
    crate::preflight::queue(queue.as_ref(), &a.queue).await?;
    let settings = a.settings.settings()?;
    // An existing run is checked against its queue before anything is sent; a new one (or one
    // launched before runs were bound) is bound once launched.
    if let Ok(existing) = catalog.run(Some(&a.run)).await {
        crate::preflight::queue_binding(catalog.as_ref(), &existing, &a.queue, false).await?;
    }
    let (run, r) = launch(catalog.as_ref(), queue.as_ref(), &a.run, &settings).await?;
    crate::preflight::queue_binding(catalog.as_ref(), &run, &a.queue, true).await?;
    if a.requeue {
        let n = requeue(catalog.as_ref(), queue.as_ref(), &run).await?;
        println!("run {:?}: requeued {n} couples not complete", run.name);
        let unblocked = catalog.unblock_sweeps(&run).await?;
        if unblocked > 0 {
            println!(
                "run {:?}: {unblocked} photos whose thumbnails the store refused to delete will be swept again",
                run.name
            );
        }
    }
    catalog.close().await;
    println!(
        "run {:?} {}: enqueued {} couples now, {} in all (originals: {}, quality {}, target score {}, max quality {})",
        run.name,
        if r.created { "created" } else { "resumed" },
        r.enqueued_now,
        r.enqueued_total,
        run.settings.originals,
        run.settings.quality,
        run.settings.target_score,
        run.settings.max_quality
    );
    Ok(())
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
) -> anyhow::Result<(Run, LaunchReport)> {
    let started = now_ms();
    let (run, created) = catalog.ensure_run(name, settings).await?;
    if !created && run.settings != *settings {
        tracing::warn!(stored = ?run.settings, given = ?settings, "run exists; its stored settings apply, not the flags");
    }
    let tally = Tally::default();
    let mut checkpoint = catalog.checkpoint(&run).await?;
    let mut report = LaunchReport {
        created,
        ..LaunchReport::default()
    };
    loop {
        let page = catalog
            .couples_after(checkpoint.last_couple, PAGE, &tally)
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
        catalog.save_checkpoint(&run, last, sent, &tally).await?;
        report.enqueued_now += sent;
        checkpoint.last_couple = Some(last);
    }
    catalog.finish_checkpoint(&run).await?;
    report.enqueued_total = catalog.checkpoint(&run).await?.enqueued;
    let attempt = JobAttempt {
        run: run.id,
        couple: None,
        worker: "producer".into(),
        outcome: "producer".into(),
        photos: 0,
        requests: tally.snapshot(),
        started_at_ms: started,
        finished_at_ms: now_ms(),
    };
    catalog.record_attempt(&attempt, &tally).await?;
    Ok((run, report))
}

/// Sends again every couple of the run with a photo not yet recorded, page by page. The messages
/// get dedup ids of their own (the first ones' may be remembered by the queue); a couple delivered
/// twice is harmless, since jobs are idempotent.
pub async fn requeue(
    catalog: &dyn Catalog,
    queue: &dyn JobQueue,
    run: &Run,
) -> anyhow::Result<u64> {
    let stamp = now_ms();
    let tally = Tally::default();
    let mut after = None;
    let mut sent = 0u64;
    loop {
        let page = catalog
            .unfinished_couples_after(run, after, PAGE, &tally)
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

/// Sends messages, re-sending the entries that failed (all of them after an error of the whole
/// call), with backoff; the tally counts one request per batch of ten.
async fn send_all(
    queue: &dyn JobQueue,
    messages: &[OutgoingMessage],
    tally: &Tally,
) -> anyhow::Result<()> {
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
            Err(e) => return Err(e).context("failed to send jobs"),
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
        bail!(
            "{} messages could not be sent after {SEND_TRIES} tries; re-run launch to resume",
            pending.len()
        );
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
