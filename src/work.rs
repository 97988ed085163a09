//! `recast work`: one worker process.

use std::sync::Arc;

use anyhow::Context;
use recast_worker::{CpuPool, Progress, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{WorkArgs, WorkTuning};

pub fn worker_config(name: String, t: &WorkTuning, exit_when_idle: bool) -> WorkerConfig {
    let defaults = WorkerConfig::default();
    WorkerConfig {
        name,
        concurrency: t.concurrency.unwrap_or(defaults.concurrency),
        photo_parallelism: t.photo_parallelism,
        record_batch: t.record_batch,
        visibility: t.visibility_timeout,
        poll_wait: t.poll_wait,
        exit_when_idle,
        max_pixels: t.max_pixels,
        sweep_lease: t.sweep_lease,
    }
}

pub async fn run(a: WorkArgs) -> anyhow::Result<()> {
    let catalog = a.db.open().await?;
    let store = recast_store::open(&a.store)
        .await
        .context("failed to open the store")?;
    let queue = recast_queue::open(&a.queue)
        .await
        .context("failed to open the queue")?;
    let cpu = a
        .tuning
        .cpu_threads
        .map_or_else(CpuPool::per_core, CpuPool::new);
    let name = a.worker_name.unwrap_or_else(default_worker_name);
    let config = worker_config(name, &a.tuning, a.exit_when_idle);
    let worker = Worker::new(
        config,
        catalog,
        store,
        queue,
        cpu,
        Arc::new(Progress::default()),
    );
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let summary = worker.run(stop).await;
    println!(
        "worker done: {} jobs completed, {} released for retry, {} dead-lettered",
        summary.jobs_completed, summary.jobs_retried, summary.jobs_dead_lettered
    );
    Ok(())
}

fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{}-{}",
        if host.is_empty() { "host" } else { &host },
        std::process::id()
    )
}

/// SIGTERM or SIGINT: stop receiving and finish the jobs in hand.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler installs");
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "stopping: finishing the jobs in hand");
    stop.cancel();
}
