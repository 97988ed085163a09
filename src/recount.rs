//! `recast status --recount`: the run's status by a full scan, checked against the counters that
//! `status` reads; counters that differ are rewritten from the scan.

use recast_catalog::{Catalog, Run, RunStatus};

/// The run's status counted from every row; repairs the counters when they do not agree.
pub async fn recount(catalog: &dyn Catalog, run: &Run) -> anyhow::Result<RunStatus> {
    let counted = catalog.status(run).await?;
    let scanned = catalog.recount(run).await?;
    let (before, after) = (catalog.totals().await?, catalog.recount_totals().await?);
    if serde_json::to_value(&counted)? != serde_json::to_value(&scanned)? || before != after {
        catalog.repair_counters(run).await?;
        eprintln!(
            "recount: the counters of run {:?} or of the catalog differed from the scan; they are repaired",
            run.name
        );
    } else {
        eprintln!("recount: the counters agree with the scan");
    }
    Ok(scanned)
}
