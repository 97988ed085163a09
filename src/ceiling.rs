//! `recast ceiling`: the conversion ceiling of a run — decode, encode and quality search of exactly
//! the photos the run converted, read from its store, with its frozen settings, on a CPU pool of
//! the given threads, and nothing else (no queue, no catalog writes, no sweep). A worker's photos/s
//! divided by this is the share of the machine the pipeline turns into migrated photos.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use recast_catalog::Catalog;
use recast_core::{PhotoId, PhotoState, RunSettings, Tally};
use recast_store::ObjectStore;
use recast_worker::CpuPool;

use crate::cli::CeilingArgs;

/// Photos read ahead of the pool per thread: one converting, one waiting, as in a worker.
const AHEAD_PER_THREAD: usize = 2;

pub async fn run(a: CeilingArgs) -> anyhow::Result<()> {
    let catalog = a.db.open().await?;
    let store = recast_store::open(&a.store)
        .await
        .context("failed to open the store")?;
    let run = match &a.run {
        Some(name) => crate::preflight::run(catalog.as_ref(), name).await?,
        None => catalog
            .run(None)
            .await
            .context("failed to read the most recent run")?,
    };
    let keys = converted_originals(catalog.as_ref(), &run).await?;
    if keys.is_empty() {
        anyhow::bail!(
            "run '{}' has converted no photo yet; run `recast work` first",
            run.name
        );
    }
    let cpu = a.cpu_threads.map_or_else(CpuPool::per_core, CpuPool::new);
    let ceiling = codec_ceiling(&cpu, store.as_ref(), &keys, &run.settings)
        .await
        .context(
            "failed to read the run's originals (under --originals delete they are gone: \
             measure the ceiling of a run that keeps them)",
        )?;
    catalog.close().await;
    // One line, stable for scripts/bench-work to read.
    println!(
        "ceiling: {} photos of run {} in {:.2} s on {} threads: {:.3} photos/s",
        keys.len(),
        run.name,
        keys.len() as f64 / ceiling,
        cpu.threads(),
        ceiling
    );
    Ok(())
}

/// The originals of every photo the run has put through the codec and recorded (switched, with a
/// WebP or with its original kept for quality or saving, and beyond), in catalog order. Photos
/// still pending, and failed ones (most never reached the codec), are left out.
pub async fn converted_originals(
    catalog: &dyn Catalog,
    run: &recast_catalog::Run,
) -> anyhow::Result<Vec<String>> {
    let states: HashMap<PhotoId, PhotoState> = catalog
        .all_progress(run)
        .await
        .context("failed to read the run's progress")?
        .into_iter()
        .map(|r| (r.photo, r.state))
        .collect();
    let converted = |id: &PhotoId| {
        matches!(
            states.get(id),
            Some(PhotoState::Switched | PhotoState::ThumbsGone | PhotoState::Done)
        )
    };
    Ok(all_photos(catalog)
        .await?
        .into_iter()
        .filter(|(id, _)| converted(id))
        .map(|(_, key)| key)
        .collect())
}

/// Every photo of the catalog with its original's key, in catalog order.
pub async fn all_photos(catalog: &dyn Catalog) -> anyhow::Result<Vec<(PhotoId, String)>> {
    let tally = Tally::default();
    let mut photos = Vec::new();
    let mut after = None;
    loop {
        let page = catalog.couples_after(after, 100, &tally).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.couple);
        photos.extend(
            page.into_iter()
                .flat_map(|j| j.photos.into_iter().map(|p| (p.id, p.key))),
        );
    }
    Ok(photos)
}

/// Photos per second of the conversion alone, on exactly `keys`, all at once on `cpu`: the same
/// conversion a worker runs (quality search included), the same threads. Reads run ahead of the
/// pool, bounded to two photos per thread in memory, so the pool never waits for a read; nothing
/// else is done.
pub async fn codec_ceiling(
    cpu: &CpuPool,
    store: &dyn ObjectStore,
    keys: &[String],
    settings: &RunSettings,
) -> anyhow::Result<f64> {
    let options = recast_worker::conversion_options(settings, recast_codec::DEFAULT_MAX_PIXELS);
    let ahead = Arc::new(tokio::sync::Semaphore::new(
        AHEAD_PER_THREAD * cpu.threads(),
    ));
    let started = Instant::now();
    let jobs = keys.iter().map(|k| {
        let ahead = ahead.clone();
        async move {
            let _held = ahead.acquire_owned().await.expect("never closed");
            let bytes = store
                .get(k)
                .await
                .with_context(|| format!("failed to get {k}"))?;
            // As a worker does: the header's pixels take their share of the pool's budget.
            let pixels =
                recast_codec::probe(&bytes).map_or(0, |i| u64::from(i.width) * u64::from(i.height));
            cpu.run_image(pixels, move || {
                recast_codec::convert(&bytes, &options).is_ok()
            })
            .await;
            anyhow::Ok(())
        }
    });
    for r in futures::future::join_all(jobs).await {
        r?;
    }
    Ok(keys.len() as f64 / started.elapsed().as_secs_f64())
}
