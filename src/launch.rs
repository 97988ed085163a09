//! `recast launch`: create or resume a run and enqueue one message per couple, checkpointed (the
//! core is `recast_ops::launch`).

use anyhow::Context;
pub use recast_ops::launch::{launch, now_ms, requeue};

use crate::cli::LaunchArgs;

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
        "run {:?} {}: enqueued {} couples now, {} in all (originals: {}, {})",
        run.name,
        if r.created { "created" } else { "resumed" },
        r.enqueued_now,
        r.enqueued_total,
        run.settings.originals,
        match run.settings.target_score {
            Some(t) => format!("target score {t}, max quality {}", run.settings.max_quality),
            None => format!("quality {}", run.settings.quality),
        }
    );
    Ok(())
}
