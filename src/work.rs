//! `recast work`: one worker process.

use std::sync::Arc;

use anyhow::Context;
use recast_worker::{CpuPool, FleetSettings, Progress, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{FleetArgs, SpotWatch, WorkArgs, WorkTuning};

pub fn worker_config(
    name: String,
    t: &WorkTuning,
    f: &FleetArgs,
    exit_when_idle: bool,
) -> WorkerConfig {
    WorkerConfig {
        name,
        concurrency: t.concurrency,
        photo_parallelism: t.photo_parallelism,
        record_batch: t.record_batch,
        visibility: t.visibility_timeout,
        poll_wait: t.poll_wait,
        exit_when_idle,
        max_pixels: t.max_pixels,
        sweep_lease: t.sweep_lease,
        sweep_max_wait: t.sweep_max_wait,
        fleet: FleetSettings {
            run_name: f.run.clone(),
            heartbeat: f.heartbeat,
            budgets: f.budgets.overrides(),
            db_latency_target: f.db_latency_target,
        },
        max_job_duration: f.max_job_duration,
        drain_deadline: f.drain_deadline,
    }
}

pub async fn run(a: WorkArgs) -> anyhow::Result<()> {
    if let Some(addr) = a.fleet.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("failed to serve metrics on {addr}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    crate::preflight::credentials(&[&a.store, &a.queue]).await?;
    let catalog = crate::preflight::catalog_opened(
        recast_catalog::open_with(&a.db.db, a.db.db_pool).await,
        &a.db.db,
    )?;
    let store = recast_store::open_existing(&a.store)
        .await
        .context("failed to open the store")?;
    let queue = recast_queue::open(&a.queue)
        .await
        .context("failed to open the queue")?;
    crate::preflight::queue(queue.as_ref(), &a.queue).await?;
    let run = crate::preflight::run(catalog.as_ref(), &a.fleet.run).await?;
    crate::preflight::queue_binding(catalog.as_ref(), &run, &a.queue, false).await?;
    crate::preflight::store(store.as_ref(), catalog.as_ref(), &a.store).await?;
    let cpu = a
        .tuning
        .cpu_threads
        .map_or_else(CpuPool::per_core, CpuPool::new);
    let name = a.worker_name.unwrap_or_else(default_worker_name);
    let config = worker_config(name, &a.tuning, &a.fleet, a.exit_when_idle);
    let worker = Worker::new(
        config,
        catalog.clone(),
        store,
        queue,
        cpu.clone(),
        Arc::new(Progress::default()),
    );
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    // Off EC2 (decided locally), `auto` sends nothing to the metadata address.
    let watch = match a.fleet.spot_watch {
        SpotWatch::On => true,
        SpotWatch::Off => false,
        SpotWatch::Auto => recast_aws::on_ec2(),
    };
    if watch {
        tokio::spawn(stop_on_interruption(
            stop.clone(),
            a.fleet.spot_poll,
            a.fleet.spot_watch == SpotWatch::On,
        ));
    }
    let summary = worker.run(stop).await;
    // Folds an SQLite catalog's WAL back into its file.
    catalog.close().await;
    println!(
        "worker done: {} jobs completed, {} released for retry, {} released by a drain or their time limit, {} duplicates deferred, {} dead-lettered",
        summary.jobs_completed,
        summary.jobs_retried,
        summary.jobs_released,
        summary.jobs_deferred,
        summary.jobs_dead_lettered
    );
    // Where the worker's time went, for the operator and scripts/bench-work: the conversion
    // threads' time not spent converting (start-up, waits for I/O or the queue, the tail).
    let usage = cpu.usage();
    println!(
        "cpu threads busy {:.1}% of {:.2} s on {} threads ({:.2} s of thread time without a photo to convert)",
        100.0 * usage.busy_share(),
        usage.elapsed.as_secs_f64(),
        usage.threads,
        usage.starved().as_secs_f64()
    );
    if let Some(reason) = worker.fatal() {
        anyhow::bail!("the worker stopped: {reason}");
    }
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

/// SIGTERM or SIGINT: drain.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler installs");
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "stopping: draining the jobs in hand");
    metrics::counter!("recast_drain_signals_total", "cause" => which).increment(1);
    stop.cancel();
}

/// A spot interruption notice or rebalance recommendation: drain, as on SIGTERM.
async fn stop_on_interruption(stop: CancellationToken, every: std::time::Duration, required: bool) {
    let notice = tokio::select! {
        _ = stop.cancelled() => return,
        n = recast_aws::watch_interruptions(every, required) => n,
    };
    if let Some(n) = notice {
        tracing::warn!(cause = n.cause(), notice = ?n, "the instance is going away: draining the jobs in hand");
        metrics::counter!("recast_drain_signals_total", "cause" => n.cause()).increment(1);
        stop.cancel();
    }
}
